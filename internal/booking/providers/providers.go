// Package providers adapts the integration clients (integrations/zoom,
// integrations/jira, calendar.Calendar backends) to the interfaces the
// booking domain declares (booking.Meetings, booking.Issues,
// booking.Calendars), and classifies provider failures: a failure the
// outbound transport classifies as permanent (a 4xx other than 408/429, bad
// credentials) becomes a booking.PermanentError; everything else is
// transient and retried by the saga.
package providers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/booking"
)

// Classify marks err permanent when the outbound transport classified the
// provider's answer as permanent. Context errors and transport failures stay
// transient; a transient failure that says how long to wait (a 429's
// Retry-After, an open circuit's cooldown) becomes a booking.RetryAfterError,
// so the saga waits that long instead of spending attempts.
func Classify(err error) error {
	if err == nil || booking.IsPermanent(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var oe *outbound.Error
	if !errors.As(err, &oe) {
		return err
	}
	if !errors.Is(err, outbound.ErrCircuitOpen) && !oe.Transient() && oe.Status >= 400 && oe.Status < 500 &&
		oe.Status != 408 && oe.Status != 429 {
		return booking.Permanent(err)
	}
	return booking.RetryAfter(err, oe.RetryAfter)
}

// Zoom adapts a zoom.Client to booking.Meetings.
type Zoom struct {
	Client *zoom.Client
	// Settings are applied to every created meeting.
	Settings zoom.MeetingSettings
}

var _ booking.Meetings = Zoom{}

// CreateMeeting creates the booking's meeting at most once (the client looks
// it up by booking marker before creating and after ambiguous failures).
func (z Zoom) CreateMeeting(ctx context.Context, spec booking.MeetingSpec) (booking.Meeting, error) {
	m, err := z.Client.CreateMeeting(ctx, spec.HostUser, spec.BookingID, zoom.MeetingRequest{
		Topic: spec.Topic, Agenda: spec.Agenda, StartTime: spec.Start, Duration: spec.Duration,
		Timezone: spec.TimeZone, Settings: z.Settings, Uncertain: spec.Uncertain,
	})
	if err != nil {
		return booking.Meeting{}, Classify(err)
	}
	return booking.Meeting{ID: strconv.FormatInt(m.ID, 10), JoinURL: m.JoinURL}, nil
}

// meetingID resolves ref, or looks the booking's meeting up when ref is "".
func (z Zoom) meetingID(ctx context.Context, ref string, spec booking.MeetingSpec) (int64, error) {
	if ref != "" {
		id, err := strconv.ParseInt(ref, 10, 64)
		if err != nil {
			return 0, booking.Permanent(fmt.Errorf("zoom: meeting ref %q: %w", ref, err))
		}
		return id, nil
	}
	m, err := z.Client.FindMeeting(ctx, spec.HostUser, spec.BookingID)
	if errors.Is(err, zoom.ErrMeetingNotFound) {
		return 0, booking.ErrGone
	}
	if err != nil {
		return 0, Classify(err)
	}
	return m.ID, nil
}

// UpdateMeeting moves the meeting to spec's time.
func (z Zoom) UpdateMeeting(ctx context.Context, ref string, spec booking.MeetingSpec) error {
	id, err := z.meetingID(ctx, ref, spec)
	if err != nil {
		return err
	}
	start, dur, tz, topic := spec.Start, spec.Duration, spec.TimeZone, spec.Topic
	err = z.Client.UpdateMeeting(ctx, id, zoom.MeetingUpdate{Topic: &topic, StartTime: &start, Duration: &dur, Timezone: &tz})
	if errors.Is(err, zoom.ErrMeetingNotFound) {
		return booking.ErrGone
	}
	return Classify(err)
}

// DeleteMeeting deletes the meeting; one already gone is fine.
func (z Zoom) DeleteMeeting(ctx context.Context, ref string, spec booking.MeetingSpec) error {
	id, err := z.meetingID(ctx, ref, spec)
	if errors.Is(err, booking.ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	err = z.Client.DeleteMeeting(ctx, id)
	if errors.Is(err, zoom.ErrMeetingNotFound) {
		return nil
	}
	if err != nil {
		return Classify(err)
	}
	if ref != "" {
		// A duplicate would only exist if something else created one for
		// the booking; make sure none is left behind.
		if m, ferr := z.Client.FindMeeting(ctx, spec.HostUser, spec.BookingID); ferr == nil {
			if derr := z.Client.DeleteMeeting(ctx, m.ID); derr != nil && !errors.Is(derr, zoom.ErrMeetingNotFound) {
				return Classify(derr)
			}
		}
	}
	return nil
}

// Jira adapts a jira.Client to booking.Issues.
type Jira struct {
	Client     *jira.Client
	ProjectKey string
	IssueType  string
	// CancelStatus is the status a cancelled booking's issue moves to
	// (default "Cancelled"); DoneStatus and ProgressStatus follow completed
	// and in_progress (default "Done", "In Progress").
	CancelStatus, DoneStatus, ProgressStatus string
}

var _ booking.Issues = Jira{}

func (j Jira) input(spec booking.IssueSpec) jira.IssueInput {
	return jira.IssueInput{ProjectKey: j.ProjectKey, IssueType: j.IssueType, Summary: summary(spec),
		Description: description(spec), BookingID: spec.BookingID, Uncertain: spec.Uncertain}
}

// summary is the issue's summary: one line (Jira refuses a summary with a
// line break, so the topic's line breaks become spaces) of at most 255
// characters (Jira's limit counts characters, not bytes).
func summary(spec booking.IssueSpec) string {
	topic := strings.TrimSpace(lineBreaks.Replace(spec.Topic))
	s := "Mentoring: " + topic
	if r := []rune(s); len(r) > 255 {
		s = string(r[:255])
	}
	return s
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func description(spec booking.IssueSpec) *jira.Node {
	loc, err := time.LoadLocation(spec.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	paras := []string{
		fmt.Sprintf("Mentor: %s\nCandidate: %s", spec.MentorID, spec.CandidateID),
		fmt.Sprintf("When: %s – %s (%s)", spec.Start.In(loc).Format("Mon 2 Jan 2006 15:04"), spec.End.In(loc).Format("15:04"), spec.TimeZone),
	}
	if spec.JoinURL != "" {
		paras = append(paras, "Join: "+spec.JoinURL)
	}
	if spec.Notes != "" {
		paras = append(paras, spec.Notes)
	}
	return jira.Document(paras, &jira.Link{Text: "Booking " + spec.BookingID, URL: spec.BookingURL})
}

// EnsureIssue returns the booking's issue key, creating the issue at most once.
func (j Jira) EnsureIssue(ctx context.Context, spec booking.IssueSpec) (string, error) {
	ref, _, err := j.Client.EnsureIssue(ctx, spec.BookingID, j.input(spec))
	if err != nil {
		return "", Classify(err)
	}
	return ref.Key, nil
}

func (j Jira) key(ctx context.Context, key string, spec booking.IssueSpec) (string, error) {
	if key != "" {
		return key, nil
	}
	ref, err := j.Client.FindBookingIssue(ctx, j.ProjectKey, spec.BookingID)
	if errors.Is(err, jira.ErrNotFound) {
		return "", booking.ErrGone
	}
	if err != nil {
		return "", Classify(err)
	}
	return ref.Key, nil
}

// UpdateIssue rewrites the issue's summary and description and moves it to
// the status that follows the booking's.
func (j Jira) UpdateIssue(ctx context.Context, key string, spec booking.IssueSpec) error {
	key, err := j.key(ctx, key, spec)
	if err != nil {
		return err
	}
	sum := summary(spec)
	err = j.Client.UpdateFields(ctx, key, jira.IssueUpdate{Summary: &sum, Description: description(spec)})
	if errors.Is(err, jira.ErrNotFound) {
		return booking.ErrGone
	}
	if err != nil {
		return Classify(err)
	}
	status := ""
	switch spec.Status {
	case booking.StatusCancelled, booking.StatusCancelling:
		status = or(j.CancelStatus, "Cancelled")
	case booking.StatusCompleted:
		status = or(j.DoneStatus, "Done")
	case booking.StatusInProgress:
		status = or(j.ProgressStatus, "In Progress")
	}
	if status == "" {
		return nil
	}
	err = j.transitionTo(ctx, key, status)
	if errors.Is(err, jira.ErrNoTransition) {
		return booking.Permanent(err)
	}
	return Classify(err)
}

// maxTransitionHops bounds the statuses an issue passes through on its way
// to the one a booking's status asks for.
const maxTransitionHops = 2

// transitionTo moves the issue to status, through up to maxTransitionHops
// other statuses when the workflow has no direct transition: workflows
// usually reach Done only through In Progress, and In Progress from
// Cancelled or Done only through To Do (Reopen). A way through In Progress
// is tried first; the cancel and done statuses are never passed through.
// ErrNoTransition when no such way exists.
func (j Jira) transitionTo(ctx context.Context, key, status string) error {
	progress := or(j.ProgressStatus, "In Progress")
	avoid := map[string]bool{strings.ToLower(or(j.CancelStatus, "Cancelled")): true, strings.ToLower(or(j.DoneStatus, "Done")): true}
	for hop := 0; ; hop++ {
		err := j.Client.TransitionTo(ctx, key, status)
		if !errors.Is(err, jira.ErrNoTransition) || hop == maxTransitionHops {
			return err
		}
		ts, terr := j.Client.Transitions(ctx, key)
		if terr != nil {
			return terr
		}
		next := ""
		for _, t := range ts {
			name := strings.ToLower(t.ToStatus)
			if avoid[name] {
				continue
			}
			if next == "" || strings.EqualFold(t.ToStatus, progress) {
				next = t.ToStatus
			}
		}
		if next == "" {
			return err
		}
		avoid[strings.ToLower(next)] = true // not twice
		if err := j.Client.TransitionTo(ctx, key, next); err != nil {
			return err
		}
	}
}

// DeleteIssue deletes the issue; one already gone is fine.
func (j Jira) DeleteIssue(ctx context.Context, key string, spec booking.IssueSpec) error {
	key, err := j.key(ctx, key, spec)
	if errors.Is(err, booking.ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	err = j.Client.DeleteIssue(ctx, key)
	if errors.Is(err, jira.ErrNotFound) {
		return nil
	}
	return Classify(err)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// StaticCalendars is a booking.Calendars over a fixed map of user id to
// calendar, for tests and the sandbox before the connect area lands. It is
// safe for concurrent use.
type StaticCalendars struct {
	mu   sync.RWMutex
	cals map[string]calendar.Calendar
}

var _ booking.Calendars = (*StaticCalendars)(nil)

// NewStaticCalendars returns an empty StaticCalendars.
func NewStaticCalendars() *StaticCalendars {
	return &StaticCalendars{cals: map[string]calendar.Calendar{}}
}

// Set connects user's calendar (nil disconnects).
func (s *StaticCalendars) Set(user string, c calendar.Calendar) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil {
		delete(s.cals, user)
		return
	}
	s.cals[user] = Classifying(c)
}

// CalendarFor returns the user's calendar or booking.ErrNotConnected.
func (s *StaticCalendars) CalendarFor(ctx context.Context, user string) (calendar.Calendar, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.cals[user]
	if !ok {
		return nil, fmt.Errorf("calendar of %s: %w", user, booking.ErrNotConnected)
	}
	return c, nil
}

// BusyCalendars returns the user's calendar, if any.
func (s *StaticCalendars) BusyCalendars(ctx context.Context, user string) ([]calendar.Calendar, error) {
	c, err := s.CalendarFor(ctx, user)
	if errors.Is(err, booking.ErrNotConnected) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []calendar.Calendar{c}, nil
}

// Classifying wraps a calendar so its errors are classified (Classify);
// calendar.ErrNotFound and ErrConflict still match with errors.Is.
func Classifying(c calendar.Calendar) calendar.Calendar {
	if _, ok := c.(classifying); ok {
		return c
	}
	return classifying{c}
}

type classifying struct{ c calendar.Calendar }

func (k classifying) FreeBusy(ctx context.Context, from, to time.Time) ([]calendar.Busy, error) {
	b, err := k.c.FreeBusy(ctx, from, to)
	return b, Classify(err)
}

func (k classifying) CreateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	e, err := k.c.CreateEvent(ctx, ev)
	return e, Classify(err)
}

func (k classifying) UpdateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	e, err := k.c.UpdateEvent(ctx, ev)
	return e, Classify(err)
}

func (k classifying) DeleteEvent(ctx context.Context, bookingID string) error {
	return Classify(k.c.DeleteEvent(ctx, bookingID))
}

func (k classifying) GetEvent(ctx context.Context, bookingID string) (calendar.Event, error) {
	e, err := k.c.GetEvent(ctx, bookingID)
	return e, Classify(err)
}

func (k classifying) Changes(ctx context.Context, cursor string) (calendar.ChangeSet, error) {
	cs, err := k.c.Changes(ctx, cursor)
	return cs, Classify(err)
}
