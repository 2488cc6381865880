package zoom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/outbound"
)

// BookingMarkerPrefix starts the agenda line that ties a meeting to its
// booking: "spotlight-booking:<booking id>", the agenda's first line.
const BookingMarkerPrefix = "spotlight-booking:"

// maxAgenda is Zoom's agenda limit in characters.
const maxAgenda = 2000

// listAgenda is how many characters of an agenda List meetings returns
// ("The length of agenda gets truncated to 250 characters when you list all
// meetings for a user"): the marker must lie within them to be found.
const listAgenda = 250

// createRounds bounds lookup-then-create rounds after ambiguous failures.
const createRounds = 3

// AutoRecording is Zoom's settings.auto_recording.
type AutoRecording string

// Auto recording modes.
const (
	AutoRecordingNone  AutoRecording = "none"
	AutoRecordingLocal AutoRecording = "local"
	AutoRecordingCloud AutoRecording = "cloud"
)

// MeetingSettings are the meeting settings the gateway controls.
type MeetingSettings struct {
	WaitingRoom    bool
	JoinBeforeHost bool
	// AutoRecording defaults to AutoRecordingNone.
	AutoRecording AutoRecording
}

// MeetingRequest describes a scheduled meeting (Zoom type 2) to create.
type MeetingRequest struct {
	Topic string
	// Agenda is free text; the client appends the booking marker line.
	Agenda    string
	StartTime time.Time
	// Duration is rounded up to whole minutes.
	Duration time.Duration
	// Timezone is an IANA zone name ("Europe/Berlin"); default "UTC".
	Timezone string
	Settings MeetingSettings
	// Uncertain says an earlier create for this booking may still take
	// effect (its caller gave up waiting for the answer, or another
	// process may be creating it right now): CreateMeeting looks for its
	// meeting for the settle time before creating one.
	Uncertain bool
}

// MeetingUpdate changes the non-nil fields of a meeting.
type MeetingUpdate struct {
	Topic     *string
	Agenda    *string // the booking marker is kept
	StartTime *time.Time
	Duration  *time.Duration
	Timezone  *string
	Settings  *MeetingSettings
}

// Meeting is a Zoom meeting.
type Meeting struct {
	ID        int64
	UUID      string
	HostID    string
	Topic     string
	Type      int
	Status    string
	StartTime time.Time
	Duration  time.Duration
	Timezone  string
	// Agenda is the agenda without the booking marker line.
	Agenda string
	// BookingID is read from the agenda marker; "" if there is none.
	BookingID string
	JoinURL   string
	// StartURL lets the host start the meeting; treat it as a secret (it
	// embeds a ZAK). Empty in list results.
	StartURL  string
	Password  string
	CreatedAt time.Time
	Settings  MeetingSettings
}

// wire shapes

type settingsJSON struct {
	WaitingRoom    *bool  `json:"waiting_room,omitempty"`
	JoinBeforeHost *bool  `json:"join_before_host,omitempty"`
	AutoRecording  string `json:"auto_recording,omitempty"`
}

type meetingBody struct {
	Topic     *string       `json:"topic,omitempty"`
	Type      int           `json:"type,omitempty"`
	StartTime string        `json:"start_time,omitempty"`
	Duration  *int          `json:"duration,omitempty"`
	Timezone  string        `json:"timezone,omitempty"`
	Agenda    *string       `json:"agenda,omitempty"`
	Settings  *settingsJSON `json:"settings,omitempty"`
}

type meetingJSON struct {
	ID        int64  `json:"id"`
	UUID      string `json:"uuid"`
	HostID    string `json:"host_id"`
	Topic     string `json:"topic"`
	Type      int    `json:"type"`
	Status    string `json:"status"`
	StartTime string `json:"start_time"`
	Duration  int    `json:"duration"`
	Timezone  string `json:"timezone"`
	Agenda    string `json:"agenda"`
	JoinURL   string `json:"join_url"`
	StartURL  string `json:"start_url"`
	Password  string `json:"password"`
	CreatedAt string `json:"created_at"`
	Settings  struct {
		WaitingRoom    bool   `json:"waiting_room"`
		JoinBeforeHost bool   `json:"join_before_host"`
		AutoRecording  string `json:"auto_recording"`
	} `json:"settings"`
}

type listJSON struct {
	NextPageToken string        `json:"next_page_token"`
	TotalRecords  int           `json:"total_records"`
	Meetings      []meetingJSON `json:"meetings"`
}

const zoomTime = "2006-01-02T15:04:05Z"

func (m *meetingJSON) meeting() Meeting {
	start, _ := time.Parse(time.RFC3339, m.StartTime)
	created, _ := time.Parse(time.RFC3339, m.CreatedAt)
	agenda, booking := splitMarker(m.Agenda)
	return Meeting{
		ID: m.ID, UUID: m.UUID, HostID: m.HostID, Topic: m.Topic, Type: m.Type, Status: m.Status,
		StartTime: start, Duration: time.Duration(m.Duration) * time.Minute, Timezone: m.Timezone,
		Agenda: agenda, BookingID: booking, JoinURL: m.JoinURL, StartURL: m.StartURL, Password: m.Password,
		CreatedAt: created,
		Settings: MeetingSettings{WaitingRoom: m.Settings.WaitingRoom, JoinBeforeHost: m.Settings.JoinBeforeHost,
			AutoRecording: AutoRecording(m.Settings.AutoRecording)},
	}
}

func marker(bookingID string) string { return BookingMarkerPrefix + bookingID }

// withMarker puts the booking marker line before agenda, shortening the
// agenda so the whole fits Zoom's limit. The marker comes first because List
// meetings, where FindMeeting looks for it, shows only the first 250
// characters of an agenda.
func withMarker(agenda, bookingID string) string {
	mk := marker(bookingID)
	room := maxAgenda - len([]rune(mk)) - 1
	if r := []rune(agenda); len(r) > room {
		agenda = string(r[:max(room, 0)])
	}
	if agenda == "" {
		return mk
	}
	return mk + "\n" + agenda
}

// splitMarker returns the agenda without its marker line and the booking id.
// The marker is the first line (withMarker puts it there; the agenda after
// it may quote another meeting's marker, as the notes of a follow-up session
// pasted from the previous one's invitation do). A meeting written before
// the marker moved to the front carries it as its last marker line.
func splitMarker(agenda string) (rest, bookingID string) {
	lines := strings.Split(agenda, "\n")
	if id, ok := strings.CutPrefix(strings.TrimSpace(lines[0]), BookingMarkerPrefix); ok && id != "" {
		return strings.Join(lines[1:], "\n"), id
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if id, ok := strings.CutPrefix(strings.TrimSpace(l), BookingMarkerPrefix); ok && id != "" {
			rest := slices.Delete(slices.Clone(lines), i, i+1)
			return strings.TrimRight(strings.Join(rest, "\n"), "\n"), id
		}
	}
	return agenda, ""
}

func minutes(d time.Duration) int { return int((d + time.Minute - 1) / time.Minute) }

func settingsBody(s MeetingSettings) *settingsJSON {
	ar := string(s.AutoRecording)
	if ar == "" {
		ar = string(AutoRecordingNone)
	}
	return &settingsJSON{WaitingRoom: &s.WaitingRoom, JoinBeforeHost: &s.JoinBeforeHost, AutoRecording: ar}
}

// ErrInvalidBookingID is returned for an empty booking id, one containing
// whitespace (it must fit on the marker line) or one so long that its marker
// line would not fit in the 250 characters List meetings shows of an agenda.
var ErrInvalidBookingID = errors.New("zoom: invalid booking id")

// CreateMeeting creates a scheduled meeting for userID (a Zoom user id or
// email) that belongs to bookingID, at most once per booking. The booking id
// is written into the agenda as its first line, "spotlight-booking:<id>". Before
// creating, and again after an ambiguous failure (timeout, lost connection,
// 5xx whose outcome is unknown), it looks for an upcoming meeting of the
// user carrying that marker and returns it instead of creating another one.
// Concurrent calls for the same booking on one Client are serialised.
//
// A lookup right after a create that went unanswered (a timeout, a lost
// connection, 502/504) proves nothing: Zoom may still be working on it, and
// its meeting shows only later. So does one after an earlier call whose
// caller gave up (req.Uncertain). Then CreateMeeting keeps looking, with
// backoff, for the settle time (WithCreateSettle) before creating. A
// create that shows only after the settle time still leaves a second
// meeting.
func (c *Client) CreateMeeting(ctx context.Context, userID, bookingID string, req MeetingRequest) (*Meeting, error) {
	if bookingID == "" || strings.ContainsFunc(bookingID, func(r rune) bool { return r == '\n' || r == '\r' || r == ' ' || r == '\t' }) ||
		len([]rune(marker(bookingID))) > listAgenda {
		return nil, fmt.Errorf("zoom: create meeting: %w", ErrInvalidBookingID)
	}
	tz := req.Timezone
	if tz == "" {
		tz = "UTC"
	}
	topic := req.Topic
	agenda := withMarker(req.Agenda, bookingID)
	dur := minutes(req.Duration)
	body := meetingBody{
		Topic: &topic, Type: 2, StartTime: req.StartTime.UTC().Format(zoomTime), Duration: &dur,
		Timezone: tz, Agenda: &agenda, Settings: settingsBody(req.Settings),
	}
	// In this process, creates of one booking take turns; across processes
	// the lookup before each create is the guard.
	unlock, err := c.creating.lock(ctx, userID+"\x00"+bookingID)
	if err != nil {
		return nil, fmt.Errorf("zoom: create meeting: %w", err)
	}
	defer unlock()
	var lastErr error
	settle := req.Uncertain
	for round := 0; round < createRounds; round++ {
		m, err := c.findSettled(ctx, userID, bookingID, settle)
		if err == nil {
			if round > 0 || settle {
				c.logger.InfoContext(ctx, "zoom meeting found after ambiguous create", "provider", Provider, "booking_id", bookingID)
			}
			return m, nil
		}
		if !errors.Is(err, ErrMeetingNotFound) {
			return nil, fmt.Errorf("zoom: create meeting: look up booking: %w", err)
		}
		var out meetingJSON
		err = c.do(ctx, call{op: "create_meeting", method: http.MethodPost,
			path: "/v2/users/" + url.PathEscape(userID) + "/meetings", body: body}, &out)
		if err == nil {
			m := out.meeting()
			return &m, nil
		}
		if !ambiguous(ctx, err) {
			return nil, err
		}
		c.logger.WarnContext(ctx, "zoom create outcome unknown; looking the meeting up", "provider", Provider,
			"booking_id", bookingID, "error", err.Error())
		lastErr = err
		settle = settle || unanswered(err)
	}
	return nil, lastErr
}

// findSettled is FindMeeting; with settle, a meeting not found is looked
// for again, with backoff, until the client's settle time has passed.
func (c *Client) findSettled(ctx context.Context, userID, bookingID string, settle bool) (*Meeting, error) {
	began := time.Now()
	wait := 100 * time.Millisecond
	for {
		m, err := c.FindMeeting(ctx, userID, bookingID)
		if !settle || !errors.Is(err, ErrMeetingNotFound) {
			return m, err
		}
		left := c.settle - time.Since(began)
		if left <= 0 {
			return nil, err
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("zoom: find meeting: %w", ctx.Err())
		}
		wait *= 2
	}
}

// ambiguous reports whether a failed create may nevertheless have created
// the meeting: transport errors and timeouts, and 5xx answers. It is false
// when the caller's context has ended (nothing more can be done now) and for
// answers that prove nothing was created (4xx, 429, an open circuit).
func ambiguous(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var oe *outbound.Error
	if !errors.As(err, &oe) || errors.Is(err, outbound.ErrCircuitOpen) {
		return false
	}
	return oe.Status == 0 || oe.Status >= 500
}

// unanswered reports whether an ambiguous failure came without Zoom's own
// answer (a timeout, a lost connection, a gateway's 502 or 504): the
// request may still be at work, and its meeting show only later.
func unanswered(err error) bool {
	var oe *outbound.Error
	return errors.As(err, &oe) && (oe.Status == 0 || oe.Status == http.StatusBadGateway || oe.Status == http.StatusGatewayTimeout)
}

// FindMeeting returns the user's upcoming meeting carrying bookingID's
// marker, or an error wrapping ErrMeetingNotFound. If several carry it (made
// by something else than CreateMeeting), the earliest created is returned.
func (c *Client) FindMeeting(ctx context.Context, userID, bookingID string) (*Meeting, error) {
	list, err := c.ListUpcomingMeetings(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("zoom: find meeting: %w", err)
	}
	var found *Meeting
	for i := range list {
		m := &list[i]
		if m.BookingID != bookingID {
			continue
		}
		if found == nil || m.CreatedAt.Before(found.CreatedAt) || (m.CreatedAt.Equal(found.CreatedAt) && m.ID < found.ID) {
			found = m
		}
	}
	if found == nil {
		return nil, fmt.Errorf("zoom: find meeting: booking %s: %w", bookingID, &outbound.Error{
			Provider: Provider, Operation: "find_meeting", Class: outbound.Permanent, Err: ErrMeetingNotFound,
			Message: "no upcoming meeting carries the booking marker"})
	}
	// List entries lack start_url, password and settings: read the whole meeting.
	return c.GetMeeting(ctx, found.ID)
}

// GetMeeting returns a meeting (GET /v2/meetings/{id}).
func (c *Client) GetMeeting(ctx context.Context, meetingID int64) (*Meeting, error) {
	var out meetingJSON
	if err := c.do(ctx, call{op: "get_meeting", method: http.MethodGet, path: meetingPath(meetingID)}, &out); err != nil {
		return nil, err
	}
	m := out.meeting()
	return &m, nil
}

// UpdateMeeting changes the non-nil fields of upd (PATCH /v2/meetings/{id}).
// When the agenda changes, the booking marker is read from the meeting and
// kept. The PATCH sets absolute values, so it is retried like an idempotent
// request.
func (c *Client) UpdateMeeting(ctx context.Context, meetingID int64, upd MeetingUpdate) error {
	var body meetingBody
	body.Topic = upd.Topic
	if upd.StartTime != nil {
		body.StartTime = upd.StartTime.UTC().Format(zoomTime)
	}
	if upd.Duration != nil {
		d := minutes(*upd.Duration)
		body.Duration = &d
	}
	if upd.Timezone != nil {
		body.Timezone = *upd.Timezone
	}
	if upd.Settings != nil {
		body.Settings = settingsBody(*upd.Settings)
	}
	if upd.Agenda != nil {
		cur, err := c.GetMeeting(ctx, meetingID)
		if err != nil {
			return fmt.Errorf("zoom: update meeting: %w", err)
		}
		agenda := *upd.Agenda
		if cur.BookingID != "" {
			agenda = withMarker(agenda, cur.BookingID)
		}
		body.Agenda = &agenda
	}
	return c.do(ctx, call{op: "update_meeting", method: http.MethodPatch, path: meetingPath(meetingID), body: body, retrySafe: true}, nil)
}

// DeleteMeeting deletes a meeting (DELETE /v2/meetings/{id}). A meeting
// that does not exist yields ErrMeetingNotFound.
func (c *Client) DeleteMeeting(ctx context.Context, meetingID int64) error {
	return c.do(ctx, call{op: "delete_meeting", method: http.MethodDelete, path: meetingPath(meetingID)}, nil)
}

// ListUpcomingMeetings returns all of the user's upcoming meetings
// (GET /v2/users/{userId}/meetings?type=upcoming), following
// next_page_token. List entries have no StartURL, Password or Settings, and
// Zoom cuts their agenda to 250 characters (GetMeeting returns it whole).
func (c *Client) ListUpcomingMeetings(ctx context.Context, userID string) ([]Meeting, error) {
	var all []Meeting
	token := ""
	for page := 0; page < 1000; page++ {
		q := url.Values{"type": {"upcoming"}, "page_size": {"300"}}
		if token != "" {
			q.Set("next_page_token", token)
		}
		var out listJSON
		if err := c.do(ctx, call{op: "list_meetings", method: http.MethodGet,
			path: "/v2/users/" + url.PathEscape(userID) + "/meetings", query: q}, &out); err != nil {
			return nil, err
		}
		for i := range out.Meetings {
			all = append(all, out.Meetings[i].meeting())
		}
		if out.NextPageToken == "" {
			return all, nil
		}
		token = out.NextPageToken
	}
	return nil, fmt.Errorf("zoom: list meetings: too many pages")
}

func meetingPath(id int64) string { return "/v2/meetings/" + strconv.FormatInt(id, 10) }
