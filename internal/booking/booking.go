// Package booking is the gateway's booking domain: mentor schedules and
// availability, the booking state machine, and the durable saga that creates,
// reschedules and cancels the provider artefacts of a booking (a Zoom
// meeting, the mentor's and the candidate's calendar events and a Jira
// issue).
//
// The package reaches providers only through the small interfaces it
// declares here (Meetings, Issues, Calendars); cmd/gateway adapts the
// integration clients to them (see booking/providers). It knows nothing of
// HTTP.
//
// # Saga
//
// A booking and its four steps are written in one transaction together with
// a River job (Jobs.InsertTx) scheduled a little after the request's sync
// timeout. Right after the commit the service runs the saga in-process (the
// fast path); the job is the durable record: after a crash, or when steps are
// left to retry, the job runs the same code, and finds done steps done. A
// lease on the booking row (lease_owner, lease_until) makes sure only one
// runner (in-process or job, on any replica) works a booking at a time. A
// run cut short leaves its lease to expire rather than releasing it: a
// provider call it abandoned may still take effect, and the runner that
// takes an expired lease over knows to look for what that call made.
//
// Steps: Zoom first (the calendar events carry its join URL), then the
// mentor calendar, the candidate calendar and Jira in parallel. Every step
// is idempotent: calendar events have deterministic ids derived from the
// booking id, the Zoom meeting and Jira issue are looked up by booking
// marker/label before being created. Zoom and the mentor calendar are
// required: a permanent failure (or attempts exhausted) compensates — every
// artefact created so far is removed — and the booking ends "failed". The
// candidate calendar and Jira are optional: they retry with backoff and never
// fail a booking.
package booking

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
)

// Status is a booking's public status.
type Status string

// The booking statuses.
const (
	StatusPending      Status = "pending"
	StatusConfirmed    Status = "confirmed"
	StatusRescheduling Status = "rescheduling"
	StatusCancelling   Status = "cancelling"
	StatusCancelled    Status = "cancelled"
	StatusInProgress   Status = "in_progress"
	StatusCompleted    Status = "completed"
	StatusFailed       Status = "failed"
)

// StepName names a provider step of the saga.
type StepName string

// The steps, in the order they are shown.
const (
	StepZoom              StepName = "zoom"
	StepMentorCalendar    StepName = "mentor_calendar"
	StepCandidateCalendar StepName = "candidate_calendar"
	StepJira              StepName = "jira"
)

// Steps lists every step in display order.
var Steps = []StepName{StepZoom, StepMentorCalendar, StepCandidateCalendar, StepJira}

// Required reports whether a permanent failure of the step fails the booking.
func (n StepName) Required() bool { return n == StepZoom || n == StepMentorCalendar }

// calendar reports a calendar step (an event in a user's calendar).
func (n StepName) calendar() bool { return n == StepMentorCalendar || n == StepCandidateCalendar }

// StepState is the state of one step.
type StepState string

// The step states.
const (
	StepPending      StepState = "pending"
	StepRunning      StepState = "running"
	StepDone         StepState = "done"
	StepFailed       StepState = "failed"
	StepCompensating StepState = "compensating"
	StepCompensated  StepState = "compensated"
	StepSkipped      StepState = "skipped"
)

// Step is the progress of one provider step.
type Step struct {
	Name  StepName
	State StepState
	// Ref is the provider's id of what the step created (meeting id, event
	// id, issue key); "" until known.
	Ref string
	// LastError is the last failure, safe to show.
	LastError string
	Attempts  int
	// AppliedSpec is the booking SpecVersion the provider artefact reflects;
	// for a skipped step, or an optional one that gave up, the spec it was
	// skipped or gave up for.
	AppliedSpec int64
	UpdatedAt   time.Time

	// place is, for a calendar step, the calendar its event was written to
	// (see PlacedCalendars); "" when unknown.
	place string

	// failures counts failed attempts since the step last succeeded,
	// failingSince is when the first of them happened (zero: none), and
	// retryAt is when the step may be tried next (zero: now).
	failures     int
	failingSince time.Time
	retryAt      time.Time
}

// Booking is a booked session.
type Booking struct {
	ID          string
	MentorID    string
	CandidateID string
	Start, End  time.Time
	// Buffer is the mentor's buffer at booking time; the slot is blocked
	// until End+Buffer.
	Buffer   time.Duration
	TimeZone string
	Topic    string
	Notes    string
	// ZoomUser hosts the meeting.
	ZoomUser      string
	Status        Status
	JoinURL       string
	FailureReason string
	// RescheduleRefused is why a provider refused the booking's last
	// reschedule, which was undone (the booking kept its time); "" when
	// none was, and cleared by the next reschedule. Safe to show.
	RescheduleRefused string
	// Version increases with every change of the booking row: its status,
	// time, spec, refusal; not with its steps' progress. If-Match is
	// compared on it (see ETag).
	Version int64
	// SpecVersion increases when time or duration change (reschedule).
	SpecVersion int64
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Steps       []Step

	op string
	// confirmed is the restore point of a reschedule of a confirmed booking
	// in flight: the times it was confirmed at (nil otherwise).
	confirmed *timing
	// refusedSpec is the spec version whose change a provider refused last
	// (0: none).
	refusedSpec int64
	// takenOver: the run working the booking took its lease over from a
	// runner that did not release it (it crashed, was cut short or lost
	// the lease), whose provider calls may still take effect.
	takenOver bool
	// runner is the lease owner of the run working the booking: only it
	// records the steps' outcomes.
	runner string
}

// timing is when a booking takes place: what a reschedule changes, and
// where a refused reschedule takes it back to.
type timing struct {
	Start, End time.Time
	TimeZone   string
}

func (b Booking) timing() timing { return timing{b.Start, b.End, b.TimeZone} }

// Duration is the session length.
func (b Booking) Duration() time.Duration { return b.End.Sub(b.Start) }

// changeInFlight reports whether b's own change (its creation, a
// reschedule) is still propagating to the providers.
func (b Booking) changeInFlight() bool {
	return b.op == opEnsure && (b.Status == StatusPending || b.Status == StatusRescheduling)
}

// ETag is the entity tag of the booking's version, quotes included
// ("7"). If-Match is compared on the version: this tag matches, and so does
// any tag "7.<digest>" the HTTP layer sends, which adds a digest of the
// representation (steps included) so that the tag changes whenever the
// representation does. See VersionOfTag.
func (b Booking) ETag() string { return fmt.Sprintf("%q", fmt.Sprint(b.Version)) }

// VersionOfTag returns the booking version an entity tag names: tag is a
// strong tag "7" or "7.<anything>" (quotes included). A weak tag (W/"7"),
// or one that names no version, reports false.
func VersionOfTag(tag string) (int64, bool) {
	if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return 0, false
	}
	v := tag[1 : len(tag)-1]
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
		return 0, false
	}
	return n, true
}

// Step returns the named step (zero Step with State pending when absent).
func (b Booking) Step(n StepName) Step {
	for _, s := range b.Steps {
		if s.Name == n {
			return s
		}
	}
	return Step{Name: n, State: StepPending}
}

// AuditRecord is one state change of a booking.
type AuditRecord struct {
	ID        string
	Seq       int64
	BookingID string
	At        time.Time
	// Actor is a user id, "service:<client id>", "system" or "webhook:<provider>".
	Actor  string
	Action string
	// From is "" on creation.
	From    Status
	To      Status
	Reason  string
	Changes map[string]Change
}

// Change is the old and new value of one field.
type Change struct {
	From, To string
}

// Errors of the service. The HTTP layer maps them to problems.
var (
	ErrNotFound = errors.New("booking: not found")
	// ErrOverlap: the slot overlaps another active booking of the mentor or
	// a busy block of the mentor's calendar (or, as ErrCandidateOverlap,
	// another active booking of the candidate).
	ErrOverlap = errors.New("booking: overlaps another booking")
	// ErrCandidateOverlap: the session's time overlaps another active
	// booking of its candidate, who cannot attend two sessions at once. Only
	// the session times count ([start, end)); the mentor's buffer is the
	// mentor's. It is also ErrOverlap, so that whatever refuses an overlap
	// refuses this one; check it first to tell the two apart.
	ErrCandidateOverlap = fmt.Errorf("%w: the candidate already has a session at that time", ErrOverlap)
	// ErrStale: If-Match does not match the current ETag.
	ErrStale = errors.New("booking: stale etag")
	// ErrPreconditionRequired: If-Match is missing.
	ErrPreconditionRequired = errors.New("booking: If-Match required")
	// ErrIdempotencyMismatch: the Idempotency-Key was used with another body.
	ErrIdempotencyMismatch = errors.New("booking: idempotency key reused with a different request")
	// ErrNoSchedule: the mentor has no schedule.
	ErrNoSchedule = errors.New("booking: mentor has no schedule")
	// ErrNotConnected is returned by Calendars when the user has no calendar.
	ErrNotConnected = errors.New("booking: calendar not connected")
	// ErrGone is returned by Meetings and Issues removal when nothing exists.
	ErrGone = errors.New("booking: provider object does not exist")
	// ErrCalendarUnavailable: a calendar needed for availability failed.
	ErrCalendarUnavailable = errors.New("booking: calendar unavailable")
	// ErrRescheduleRefused: a provider permanently refused a required step
	// of a reschedule; the booking keeps the time it was confirmed at (the
	// providers that took the new time are being moved back). Returned as a
	// *RescheduleRefusedError carrying the provider's reason.
	ErrRescheduleRefused = errors.New("booking: a provider refused the new time; the booking keeps its previous time")
	// ErrChangeInFlight: RescheduleAs or CancelAs found the booking's own
	// change (its creation, a reschedule) still propagating to the
	// providers; the artefact's time, or its absence, may be the gateway's
	// old or new state. Try again once the booking has settled.
	ErrChangeInFlight = errors.New("booking: the booking's own change is still propagating")
)

// RescheduleRefusedError is ErrRescheduleRefused with the provider's
// reason (safe to show).
type RescheduleRefusedError struct{ Reason string }

// Error implements error.
func (e *RescheduleRefusedError) Error() string {
	return ErrRescheduleRefused.Error() + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrRescheduleRefused) hold.
func (e *RescheduleRefusedError) Unwrap() error { return ErrRescheduleRefused }

// ForbiddenError reports an action the caller's role does not allow.
type ForbiddenError struct{ Reason string }

// Error implements error.
func (e *ForbiddenError) Error() string { return "booking: forbidden: " + e.Reason }

// ConflictError reports an action the booking's status does not allow.
type ConflictError struct {
	Status Status
	Action string
}

// Error implements error.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("booking: cannot %s a booking that is %s", e.Action, e.Status)
}

// ValidationError reports invalid input the request schema cannot express.
type ValidationError struct {
	// Field names the offending value as the API's problems do:
	// "body.start", "body.working_hours.2.end", "query.to".
	Field   string
	Message string
	// Also names further values the error is about (an overlap names both
	// working-hours entries); each gets the same message.
	Also []string
}

// Error implements error.
func (e *ValidationError) Error() string {
	// Field names the request's field for the API ("body.start"); the
	// message also reaches audit trails and webhook notes, where "start" reads
	// better.
	return "booking: " + strings.TrimPrefix(e.Field, "body.") + ": " + e.Message
}

// ParameterError reports a request parameter that is not what the API
// describes, which only the service can tell (a cursor it did not issue, a
// filter range that ends before it starts): a malformed request, where a
// ValidationError is well-formed input that breaks a rule.
type ParameterError struct {
	// Field names the parameter as the API's problems do: "query.cursor".
	Field   string
	Message string
}

// Error implements error.
func (e *ParameterError) Error() string { return "booking: " + e.Field + ": " + e.Message }

// PermanentError marks a provider failure that retrying cannot fix.
type PermanentError struct{ Err error }

// Error implements error.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// RetryAfterError marks a transient provider failure that should not be
// tried again before After has passed: the provider said so (Retry-After)
// or a circuit breaker in front of it is open for that long. The saga
// delays the step (the durable job sleeps) instead of counting attempts
// against it.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

// Error implements error.
func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err as a RetryAfterError (nil stays nil, and d <= 0
// returns err unchanged).
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &RetryAfterError{Err: err, After: d}
}

// retryDelay is the wait a RetryAfterError in err asks for, 0 if none.
func retryDelay(err error) time.Duration {
	var re *RetryAfterError
	if errors.As(err, &re) {
		return re.After
	}
	return 0
}

// MeetingSpec describes the video meeting of a booking.
type MeetingSpec struct {
	BookingID string
	HostUser  string
	Topic     string
	Agenda    string
	Start     time.Time
	Duration  time.Duration
	TimeZone  string
	// Uncertain says an earlier attempt to create the meeting may still
	// take effect (a run was cut short, or lost its lease, while the
	// provider worked on it): CreateMeeting looks for that meeting for a
	// while before creating one.
	Uncertain bool
}

// Meeting is a created video meeting.
type Meeting struct {
	ID      string
	JoinURL string
}

// Meetings creates the video meetings of bookings. Every method is
// idempotent per booking.
type Meetings interface {
	// CreateMeeting returns the booking's meeting, creating it at most once.
	CreateMeeting(ctx context.Context, spec MeetingSpec) (Meeting, error)
	// UpdateMeeting moves the meeting ref ("" = look it up by booking) to
	// spec's time; ErrGone when it no longer exists.
	UpdateMeeting(ctx context.Context, ref string, spec MeetingSpec) error
	// DeleteMeeting deletes the meeting ref, or the booking's meeting when
	// ref is ""; a meeting already gone is not an error.
	DeleteMeeting(ctx context.Context, ref string, spec MeetingSpec) error
}

// IssueSpec describes the tracking issue of a booking.
type IssueSpec struct {
	BookingID   string
	MentorID    string
	CandidateID string
	Topic       string
	Notes       string
	Start, End  time.Time
	TimeZone    string
	JoinURL     string
	// BookingURL links to the booking in the gateway API.
	BookingURL string
	Status     Status
	// Uncertain says an earlier attempt to create the issue may still
	// take effect (see MeetingSpec.Uncertain): EnsureIssue looks for that
	// issue for a while before creating one.
	Uncertain bool
}

// Issues keeps a tracking issue per booking.
type Issues interface {
	// EnsureIssue returns the booking's issue key, creating it at most once.
	EnsureIssue(ctx context.Context, spec IssueSpec) (key string, err error)
	// UpdateIssue writes spec's time and moves the issue to the status that
	// follows spec.Status. key "" looks the issue up; ErrGone when none.
	UpdateIssue(ctx context.Context, key string, spec IssueSpec) error
	// DeleteIssue removes the issue key (or the booking's, when key is "");
	// an issue already gone is not an error.
	DeleteIssue(ctx context.Context, key string, spec IssueSpec) error
}

// Calendars gives the connected calendars of users.
type Calendars interface {
	// CalendarFor returns the calendar the user's booking events go to, or
	// an error wrapping ErrNotConnected.
	CalendarFor(ctx context.Context, userID string) (calendar.Calendar, error)
	// BusyCalendars returns every connected calendar of the user whose busy
	// time counts (empty when none).
	BusyCalendars(ctx context.Context, userID string) ([]calendar.Calendar, error)
}

// PlacedCalendars is implemented by Calendars that can name the calendar a
// user's booking events go to (its place: provider and calendar) and reach
// a calendar the user has switched away from. A calendar step records the
// place of its event, so that moving or removing the event goes to the
// calendar that holds it, not only to the one the user has chosen since.
type PlacedCalendars interface {
	// PlacedCalendarFor is CalendarFor, with the calendar's place.
	PlacedCalendarFor(ctx context.Context, userID string) (calendar.Calendar, string, error)
	// CalendarAt opens the user's calendar at place (one PlacedCalendarFor
	// returned) with the user's current credentials, or returns an error
	// wrapping ErrNotConnected when it cannot be reached with them.
	CalendarAt(ctx context.Context, userID, place string) (calendar.Calendar, error)
}
