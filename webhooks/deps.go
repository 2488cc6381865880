package webhooks

import (
	"context"
	"errors"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
)

// ErrBookingNotFound is returned by Bookings lookups when nothing matches.
// Processing treats it as "not ours": the delivery is processed with a note.
var ErrBookingNotFound = errors.New("webhooks: no booking matches")

// ErrRefused is returned (wrapped) by Bookings actions the booking service
// refuses for good: a transition its state machine does not allow, a new
// time that overlaps another booking, an invalid time. Processing records
// the refusal on the delivery and does not retry.
var ErrRefused = errors.New("webhooks: booking refused the change")

// RefusedError is a refusal (errors.Is(err, ErrRefused) holds) that says
// why in words fit for the booking's audit trail, which its candidate and
// mentor read; Bookings returns it so that a put-back's reason can say why
// without the error chain.
type RefusedError struct {
	// Reason is why, as a clause: "the session is under way".
	Reason string
	// Err is the booking service's error, for logs and delivery notes.
	Err error
}

// Error implements error: the refusal with the booking service's error.
func (e *RefusedError) Error() string {
	if e.Err == nil {
		return ErrRefused.Error() + ": " + e.Reason
	}
	return ErrRefused.Error() + ": " + e.Err.Error()
}

// Unwrap makes errors.Is(err, ErrRefused) hold and reaches Err.
func (e *RefusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

// ErrCalendarUnavailable is returned (wrapped) by Calendars.Open when the
// calendar is no longer usable for good: the user disconnected it, must
// reconnect, or it was deleted. Syncing it does nothing and is not retried.
var ErrCalendarUnavailable = errors.New("webhooks: calendar no longer connected")

// Booking statuses the processors look at (as in the API).
const (
	BookingPending     = "pending"
	BookingConfirmed   = "confirmed"
	BookingRescheduled = "rescheduling"
	BookingCancelling  = "cancelling"
	BookingCancelled   = "cancelled"
	BookingInProgress  = "in_progress"
	BookingCompleted   = "completed"
	BookingFailed      = "failed"
)

// Booking is what the processors need to know about a booking.
type Booking struct {
	ID          string
	Status      string
	MentorID    string
	CandidateID string
	Start       time.Time
	End         time.Time
	// Issue is the key of the Jira issue the gateway created for the
	// booking ("" while it has none).
	Issue string
}

// ended reports whether the booking no longer reacts to external changes.
func (b Booking) ended() bool {
	switch b.Status {
	case BookingCancelled, BookingCancelling, BookingCompleted, BookingFailed:
		return true
	}
	return false
}

// Attendance is one participant joining or leaving a meeting.
type Attendance struct {
	// ParticipantID is Zoom's per-meeting participant user id.
	ParticipantID string
	Name          string
	Email         string
	// Joined is true for a join, false for a leave.
	Joined bool
	At     time.Time
}

// Bookings is the part of the booking service the processors use. Every
// action goes through the booking area's normal paths (cancel and
// reschedule propagate to every provider). Lookups return
// ErrBookingNotFound (wrapped or not) when nothing matches.
type Bookings interface {
	FindByMeeting(ctx context.Context, zoomMeetingID string) (Booking, error)
	FindByEvent(ctx context.Context, calendarEventID string) (Booking, error)
	FindByIssue(ctx context.Context, jiraIssueKey string) (Booking, error)
	Get(ctx context.Context, id string) (Booking, error)
	// Cancel cancels through the normal path; cancelling twice is fine.
	Cancel(ctx context.Context, id, actor, reason string) error
	// Reschedule moves the booking through the normal path because
	// someone moved its artefact changed (the meeting in Zoom, or the
	// mentor's own event, which the mentor's calendar's busy time is then
	// not held against).
	Reschedule(ctx context.Context, id string, start, end time.Time, changed Artefact, actor, reason string) error
	// Restore puts the booking's own state back on one of its artefacts
	// after it was changed outside the gateway in a way the booking refused
	// (ErrRefused): a meeting or mentor's event moved to a time the booking
	// cannot take, an issue cancelled while the session cannot be, the
	// candidate's copy of the event moved (the candidate's calendar does
	// not reschedule the session). Neither Zoom, a calendar nor Jira keeps
	// showing what will not happen. reason goes to the booking's audit trail as it is: sentences
	// for its candidate and mentor (see putBackReason).
	Restore(ctx context.Context, id string, artefact Artefact, actor, reason string) error
	// SetStatus records in_progress or completed.
	SetStatus(ctx context.Context, id, status, actor, reason string) error
	RecordAttendance(ctx context.Context, id string, a Attendance) error
	// MentorEvents lists the events the gateway wrote to src's calendar, as
	// the booking steps record where they wrote them, for the bookings of
	// which src's user is the mentor and that are not over: the session
	// events a complete listing of that calendar must show. A step that
	// does not record its calendar is left out (its event may be in another
	// one), and so is every event when src is not the calendar of the
	// user's connection.
	MentorEvents(ctx context.Context, src Source) ([]PlacedEvent, error)
}

// PlacedEvent is a booking's event the gateway wrote to a calendar.
type PlacedEvent struct {
	BookingID string
	// EventID is the event's provider identity, as a calendar.Change
	// names it: calendar.EventID(BookingID) for the events the gateway
	// writes.
	EventID string
}

// Artefact names what a booking put at a provider.
type Artefact string

// The artefacts Bookings.Restore puts back and Bookings.Reschedule follows.
const (
	ArtefactMeeting        Artefact = "meeting"         // the Zoom meeting
	ArtefactMentorEvent    Artefact = "mentor_event"    // the event in the mentor's calendar
	ArtefactCandidateEvent Artefact = "candidate_event" // the event in the candidate's calendar (Restore only)
	ArtefactIssue          Artefact = "issue"           // the Jira issue
)

// Meetings reads Zoom meetings as they are now. A meeting.updated that
// differs from its booking is judged against the meeting's current time, not
// the payload's: deliveries can arrive out of order, and the echo of the
// gateway's own earlier update can be processed after a later one (it waits
// while that later change is in flight), so a payload may describe a time the
// meeting no longer has.
type Meetings interface {
	// MeetingTime returns the meeting's current start and duration, or
	// ErrMeetingGone when the meeting no longer exists.
	MeetingTime(ctx context.Context, meetingID string) (start time.Time, duration time.Duration, err error)
}

// ErrMeetingGone: the Zoom meeting no longer exists.
var ErrMeetingGone = errors.New("webhooks: zoom meeting gone")

// MeetingLookup is optionally implemented by a Bookings: it finds the
// bookings of many Zoom meetings with one query. Processing then looks up
// the meetings of a whole job at once instead of one query per delivery.
type MeetingLookup interface {
	// FindByMeetings returns, by meeting id, the bookings of those of
	// meetingIDs that have one (as FindByMeeting would find them).
	FindByMeetings(ctx context.Context, meetingIDs []string) (map[string]Booking, error)
}

// Channel is a Google Calendar push channel the gateway opened.
type Channel struct {
	ID         string
	ResourceID string
	CalendarID string
	// UserID owns the connected calendar.
	UserID     string
	Expiration time.Time
	// ReplacedBy is the id of the channel that replaced this one when it
	// was renewed; "" for the channel in use.
	ReplacedBy string
}

// Channels holds Google push channels (the connect area opens them with
// gcal.Watch when a calendar is connected).
//
// A renewal opens and stores the new channel before it stops the old one,
// and keeps the old one, replaced, until it expires: a notification the old
// channel delivered is about the same calendar of the same user, whose sync
// cursor does not depend on the channel, so it is still synced when it is
// processed after the renewal. A notification the old channel sent before
// its stop but that arrives, or is retried, after it is refused: the
// service syncs each renewed channel's calendar once the renewal is done,
// which finds its change. Disconnecting or choosing another calendar
// forgets the user's channels, replaced ones included.
type Channels interface {
	// VerifyChannel returns the channel when token is its token, compared in
	// constant time, and Google may still deliver on it: it has not expired,
	// and a replaced channel has not been stopped yet (its stop failed).
	// Otherwise it returns an error wrapping ErrUnknownChannel, whether the
	// channel is unknown or the token wrong (not told apart). resourceID is the
	// notification's X-Goog-Resource-ID: with it a channel the gateway
	// opened but never learnt the resource id of (the replica that opened
	// it stopped during the call) is stopped at Google, and the error wraps
	// ErrOrphanedChannel.
	VerifyChannel(ctx context.Context, id, token, resourceID string) (Channel, error)
	// LookupChannel returns the channel a stored notification names, in use
	// or replaced (until it expires), or an error wrapping
	// ErrUnknownChannel for one the gateway forgot.
	LookupChannel(ctx context.Context, id string) (Channel, error)
	// RenewExpiring replaces the channels that expire before t, opens one
	// for each connected calendar that has none, and returns the new
	// channels (their calendars are synced).
	RenewExpiring(ctx context.Context, before time.Time) ([]Channel, error)
}

// Calendar providers of a Source.
const (
	SourceGoogle = "google"
	SourceCalDAV = "caldav"
)

// Source is one connected calendar whose changes the gateway follows.
type Source struct {
	// Provider is SourceGoogle or SourceCalDAV.
	Provider   string
	UserID     string
	CalendarID string
}

// Calendars opens users' connected calendars.
type Calendars interface {
	// Open returns a client of the connected calendar, or an error
	// wrapping ErrCalendarUnavailable when it is no longer connected.
	Open(ctx context.Context, src Source) (calendar.Calendar, error)
	// Polled lists the connected calendars without push (CalDAV), to poll.
	Polled(ctx context.Context) ([]Source, error)
	// Pushed lists the connected calendars with push (Google), synced
	// periodically too.
	Pushed(ctx context.Context) ([]Source, error)
}
