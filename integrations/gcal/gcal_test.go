package gcal_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/logtest"
)

// env is a simulator served over HTTP plus a client for its default user.
type env struct {
	sim    *gcaltest.Server
	ts     *httptest.Server
	client *gcal.Client
	token  *oauth2.Token
	sleeps *sleepRecorder
}

type sleepRecorder struct {
	mu sync.Mutex
	n  int
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func newEnv(t *testing.T, opts gcaltest.Options, copts ...gcal.Option) *env {
	t.Helper()
	sim := gcaltest.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	tok, err := sim.IssueToken(gcaltest.DefaultClientID, gcaltest.DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, ts: ts, token: tok, sleeps: &sleepRecorder{}}
	e.client = e.newClient(t, tok, copts...)
	return e
}

func (e *env) newClient(t *testing.T, tok *oauth2.Token, copts ...gcal.Option) *gcal.Client {
	t.Helper()
	hc := outbound.NewClient(gcal.OutboundConfig(outbound.Config{Sleep: e.sleeps.sleep, BreakerFailures: -1}))
	cfg := gcal.OAuthConfig(gcaltest.DefaultClientID, gcaltest.DefaultClientSecret, "https://gateway.test/cb", gcaltest.Endpoint(e.ts.URL))
	ts := cfg.TokenSource(context.WithValue(t.Context(), oauth2.HTTPClient, e.ts.Client()), tok)
	opts := append([]gcal.Option{gcal.WithHTTPClient(hc), gcal.WithBaseURL(gcaltest.APIBase(e.ts.URL))}, copts...)
	c, err := gcal.New(t.Context(), ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func booking(id string, start time.Time, d time.Duration, tz string) calendar.Event {
	return calendar.Event{
		BookingID:   id,
		Summary:     "Mentoring session " + id,
		Description: "Prepare your questions.",
		Location:    "Online",
		URL:         "https://zoom.example/j/123456789",
		Start:       start.UTC(),
		End:         start.Add(d).UTC(),
		TimeZone:    tz,
		Attendees:   []calendar.Attendee{{Email: "candidate@example.org", Name: "Cand Idate"}},
	}
}

func outboundErr(t *testing.T, err error) *outbound.Error {
	t.Helper()
	var oe *outbound.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T) does not wrap *outbound.Error", err, err)
	}
	return oe
}

func TestEventLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{}, gcal.WithSendUpdates("all"), gcal.WithReminders(30, 5))
	ctx := t.Context()
	start := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	want := booking("b-1", start, time.Hour, "Europe/Berlin")

	got, err := e.client.CreateEvent(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != calendar.EventID("b-1") || got.ETag == "" {
		t.Fatalf("created id=%q etag=%q", got.ID, got.ETag)
	}
	ignore := func(ev calendar.Event) calendar.Event {
		ev.ID, ev.ETag, ev.Organizer, ev.Sequence = "", "", calendar.Attendee{}, 0
		return ev
	}
	if d := cmp.Diff(ignore(got), want); d != "" {
		t.Errorf("created event (-got +want):\n%s", d)
	}
	if got.Organizer.Email != gcaltest.DefaultUser {
		t.Errorf("organizer %q", got.Organizer.Email)
	}

	// Independent read of what Google stored.
	raw, err := e.sim.Event("primary", got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Start.TimeZone != "Europe/Berlin" || raw.Start.DateTime != "2026-12-01T16:00:00+01:00" {
		t.Errorf("stored start %+v", raw.Start)
	}
	if raw.ExtendedProperties.Private[gcal.BookingProperty] != "b-1" {
		t.Errorf("stored private props %v", raw.ExtendedProperties.Private)
	}
	if !strings.Contains(raw.Description, want.URL) {
		t.Errorf("stored description %q lacks join URL", raw.Description)
	}
	if raw.Reminders == nil || raw.Reminders.UseDefault || len(raw.Reminders.Overrides) != 2 || raw.Reminders.Overrides[0].Minutes != 30 {
		t.Errorf("stored reminders %+v", raw.Reminders)
	}
	if len(raw.Attendees) != 1 || raw.Attendees[0].Email != "candidate@example.org" {
		t.Errorf("stored attendees %+v", raw.Attendees)
	}

	read, err := e.client.GetEvent(ctx, "b-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(read, got); d != "" {
		t.Errorf("GetEvent (-got +want):\n%s", d)
	}

	// Reschedule with the etag from create.
	upd := want
	upd.ETag = got.ETag
	upd.Start, upd.End = start.Add(24*time.Hour), start.Add(25*time.Hour)
	upd.Attendees = append(upd.Attendees, calendar.Attendee{Email: "observer@example.org"})
	moved, err := e.client.UpdateEvent(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	if !moved.Start.Equal(upd.Start) || !moved.End.Equal(upd.End) || len(moved.Attendees) != 2 || moved.ETag == got.ETag {
		t.Errorf("updated event %+v", moved)
	}
	if moved.Sequence != got.Sequence+1 {
		t.Errorf("sequence %d after reschedule, want %d", moved.Sequence, got.Sequence+1)
	}

	if err := e.client.DeleteEvent(ctx, "b-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetEvent(ctx, "b-1"); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("GetEvent after delete: %v, want ErrNotFound", err)
	}
	if err := e.client.DeleteEvent(ctx, "b-1"); err != nil {
		t.Errorf("second delete (410): %v", err)
	}
	if err := e.client.DeleteEvent(ctx, "never-created"); err != nil {
		t.Errorf("delete unknown (404): %v", err)
	}
	if _, err := e.client.UpdateEvent(ctx, upd); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("update after delete: %v, want ErrNotFound", err)
	}
	if n := e.sim.EventCount("primary"); n != 0 {
		t.Errorf("%d events left", n)
	}
	if su := e.sim.Stats().SendUpdates; su["all"] < 4 || len(su) != 1 {
		t.Errorf("sendUpdates seen by Google: %v, want only \"all\"", su)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		check func(t *testing.T, e *env, first, second calendar.Event)
	}{
		{
			name:  "second create returns the first",
			setup: func(t *testing.T, e *env) {},
			check: func(t *testing.T, e *env, first, second calendar.Event) {
				if second.ID != first.ID || second.ETag != first.ETag {
					t.Errorf("second create %q/%q, first %q/%q", second.ID, second.ETag, first.ID, first.ETag)
				}
			},
		},
		{
			name: "response lost after insert applied",
			setup: func(t *testing.T, e *env) {
				e.sim.InjectFault(gcaltest.Fault{Op: "events.insert", LoseResponse: true})
			},
			check: func(t *testing.T, e *env, _, second calendar.Event) {
				if got := e.sim.Stats().Calls["events.insert"]; got < 2 {
					t.Errorf("insert calls %d, want a retry", got)
				}
			},
		},
		{
			name: "deleted event is restored",
			setup: func(t *testing.T, e *env) {
				if err := e.client.DeleteEvent(t.Context(), "b-2"); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env, _, second calendar.Event) {
				raw, err := e.sim.Event("primary", second.ID)
				if err != nil || raw.Status != "confirmed" {
					t.Errorf("restored event status %v %v", raw, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, gcaltest.Options{})
			ev := booking("b-2", start, 30*time.Minute, "America/New_York")
			var first calendar.Event
			if tc.name != "response lost after insert applied" {
				var err error
				if first, err = e.client.CreateEvent(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
			}
			tc.setup(t, e)
			second, err := e.client.CreateEvent(t.Context(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if second.BookingID != "b-2" || !second.Start.Equal(ev.Start) {
				t.Errorf("second create returned %+v", second)
			}
			if n := e.sim.EventCount("primary"); n != 1 {
				t.Errorf("%d events, want 1", n)
			}
			tc.check(t, e, first, second)
		})
	}
}

func TestCreateConflictWithForeignEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	if _, err := e.sim.PutEvent("primary", gcaltest.ExternalEvent{ID: calendar.EventID("b-3"), Summary: "mine", Start: start, End: start.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.CreateEvent(t.Context(), booking("b-3", start, time.Hour, "UTC"))
	if !errors.Is(err, calendar.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	if _, err := e.client.GetEvent(t.Context(), "b-3"); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("GetEvent of a foreign event: %v, want ErrNotFound", err)
	}
}

func TestUpdateConcurrency(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		prepare func(e *env, created calendar.Event) calendar.Event // returns the update to send
		wantErr error
	}{
		{
			name: "stale etag after external move",
			prepare: func(e *env, c calendar.Event) calendar.Event {
				if err := e.sim.MoveEvent("primary", c.ID, start.Add(2*time.Hour), start.Add(3*time.Hour)); err != nil {
					panic(err)
				}
				u := booking("b-4", start.Add(48*time.Hour), time.Hour, "UTC")
				u.ETag = c.ETag
				return u
			},
			wantErr: calendar.ErrConflict,
		},
		{
			name: "empty etag uses the current one",
			prepare: func(e *env, c calendar.Event) calendar.Event {
				if err := e.sim.MoveEvent("primary", c.ID, start.Add(2*time.Hour), start.Add(3*time.Hour)); err != nil {
					panic(err)
				}
				return booking("b-4", start.Add(48*time.Hour), time.Hour, "UTC")
			},
		},
		{
			name: "lost patch response is retried and recognised",
			prepare: func(e *env, c calendar.Event) calendar.Event {
				e.sim.InjectFault(gcaltest.Fault{Op: "events.patch", LoseResponse: true})
				u := booking("b-4", start.Add(48*time.Hour), time.Hour, "UTC")
				u.ETag = c.ETag
				return u
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, gcaltest.Options{})
			created, err := e.client.CreateEvent(t.Context(), booking("b-4", start, time.Hour, "UTC"))
			if err != nil {
				t.Fatal(err)
			}
			u := tc.prepare(e, created)
			got, err := e.client.UpdateEvent(t.Context(), u)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(u.Start) {
				t.Errorf("start %v, want %v", got.Start, u.Start)
			}
			raw, _ := e.sim.Event("primary", created.ID)
			if raw.Start.DateTime != u.Start.Format(time.RFC3339) {
				t.Errorf("stored start %q", raw.Start.DateTime)
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		reason    string
		times     int
		wantErr   bool
		wantCalls int
	}{
		{reason: gcaltest.ReasonRateLimit, times: 2, wantCalls: 3},
		{reason: gcaltest.ReasonUserRateLimit, times: 1, wantCalls: 2},
		{reason: gcaltest.ReasonQuota, times: -1, wantErr: true, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, gcaltest.Options{})
			e.sim.InjectFault(gcaltest.Fault{Op: "events.insert", Status: http.StatusForbidden, Reason: tc.reason, Times: tc.times})
			_, err := e.client.CreateEvent(t.Context(), booking("b-5", start, time.Hour, "UTC"))
			if calls := e.sim.Stats().Calls["events.insert"]; calls != tc.wantCalls {
				t.Errorf("insert calls %d, want %d", calls, tc.wantCalls)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if e.sleeps.count() != tc.times {
					t.Errorf("backoff sleeps %d, want %d", e.sleeps.count(), tc.times)
				}
				return
			}
			oe := outboundErr(t, err)
			if oe.Status != http.StatusForbidden || oe.Code != tc.reason || oe.Provider != "gcal" {
				t.Errorf("error %+v", oe)
			}
			if oe.RetryAfter < time.Hour {
				t.Errorf("quota error RetryAfter %v, want a long wait", oe.RetryAfter)
			}
		})
	}
}

func TestServerErrorsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	e.sim.InjectFault(gcaltest.Fault{Op: "events.get", Status: http.StatusServiceUnavailable, Times: 2})
	_, err := e.client.GetEvent(t.Context(), "missing")
	if !errors.Is(err, calendar.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound after retries", err)
	}
	if calls := e.sim.Stats().Calls["events.get"]; calls != 3 {
		t.Errorf("get calls %d, want 3", calls)
	}
	e.sim.InjectFault(gcaltest.Fault{Op: "events.get", Status: http.StatusServiceUnavailable, Times: -1})
	_, err = e.client.GetEvent(t.Context(), "missing")
	if oe := outboundErr(t, err); oe.Status != http.StatusServiceUnavailable || !oe.Transient() {
		t.Errorf("after exhausted retries: %+v", oe)
	}
}

func TestFreeBusy(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	e := newEnv(t, gcaltest.Options{Users: []gcaltest.User{{
		Email: gcaltest.DefaultUser, TimeZone: "Europe/Berlin",
		Calendars: []gcaltest.Calendar{{ID: "team@group.calendar.google.com", Summary: "Team"}},
	}}}, gcal.WithBusyCalendars("primary", "team@group.calendar.google.com"))
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(150 * 24 * time.Hour) // three windows of at most 60 days
	put := func(cal string, ev gcaltest.ExternalEvent) {
		t.Helper()
		if _, err := e.sim.PutEvent(cal, ev); err != nil {
			t.Fatal(err)
		}
	}
	d := func(day, hour int) time.Time {
		return from.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour)
	}
	put("primary", gcaltest.ExternalEvent{Summary: "a", Start: d(1, 9), End: d(1, 10)})
	put("team@group.calendar.google.com", gcaltest.ExternalEvent{Summary: "overlaps a", Start: d(1, 9).Add(30 * time.Minute), End: d(1, 11)})
	put("primary", gcaltest.ExternalEvent{Summary: "free", Start: d(2, 9), End: d(2, 10), Transparent: true})
	put("primary", gcaltest.ExternalEvent{Summary: "spans windows", Start: d(59, 20), End: d(60, 4)})
	put("primary", gcaltest.ExternalEvent{Summary: "outside", Start: d(-3, 9), End: d(-3, 10)})
	put("primary", gcaltest.ExternalEvent{Summary: "clipped", Start: d(149, 23), End: d(150, 2)})
	// Weekly at 10:00 Berlin from 2027-03-22, three times: crosses the DST switch of 2027-03-28.
	put("primary", gcaltest.ExternalEvent{
		Summary: "weekly", Start: time.Date(2027, 3, 22, 10, 0, 0, 0, berlin), End: time.Date(2027, 3, 22, 11, 0, 0, 0, berlin),
		TimeZone: "Europe/Berlin", Recurrence: []string{"RRULE:FREQ=WEEKLY;COUNT=3"},
	})

	got, err := e.client.FreeBusy(t.Context(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	b := func(s, e time.Time) calendar.Busy { return calendar.Busy{Start: s.UTC(), End: e.UTC()} }
	want := []calendar.Busy{
		b(d(1, 9), d(1, 11)),
		b(d(59, 20), d(60, 4)),
		b(time.Date(2027, 3, 22, 9, 0, 0, 0, time.UTC), time.Date(2027, 3, 22, 10, 0, 0, 0, time.UTC)),
		b(time.Date(2027, 3, 29, 8, 0, 0, 0, time.UTC), time.Date(2027, 3, 29, 9, 0, 0, 0, time.UTC)),
		b(time.Date(2027, 4, 5, 8, 0, 0, 0, time.UTC), time.Date(2027, 4, 5, 9, 0, 0, 0, time.UTC)),
		b(d(149, 23), to),
	}
	if d := cmp.Diff(got, want); d != "" {
		t.Errorf("FreeBusy (-got +want):\n%s", d)
	}
	if calls := e.sim.Stats().Calls["freebusy.query"]; calls != 3 {
		t.Errorf("freebusy.query calls %d, want 3 windows", calls)
	}

	// A window longer than Google accepts is refused by the simulator.
	long := e.newClient(t, e.token, gcal.WithFreeBusyWindow(100*24*time.Hour))
	_, err = long.FreeBusy(t.Context(), from, to)
	if oe := outboundErr(t, err); oe.Status != http.StatusBadRequest || oe.Code != "timeRangeTooLong" {
		t.Errorf("100-day window: %+v", oe)
	}

	// An unknown write calendar is an error, not silently free.
	gone := e.newClient(t, e.token, gcal.WithCalendar("deleted@group.calendar.google.com"),
		gcal.WithBusyCalendars("deleted@group.calendar.google.com", "primary"))
	if _, err := gone.FreeBusy(t.Context(), from, from.Add(time.Hour)); !errors.Is(err, calendar.ErrCalendarNotFound) {
		t.Errorf("unknown write calendar: %v, want ErrCalendarNotFound", err)
	}
}

// TestFreeBusySeveralCalendars: the busy time of every busy calendar
// counts, whatever the account's access role on it (freebusy.query needs
// only freeBusyReader); an extra calendar deleted or unshared since it was
// chosen is skipped with a warning instead of failing every query.
func TestFreeBusySeveralCalendars(t *testing.T) {
	t.Parallel()
	const (
		personal = "personal@group.calendar.google.com"
		partner  = "partner@example.org"            // shared with the account as reader
		team     = "team@group.calendar.google.com" // shared as freeBusyReader
		vanished = "vanished@group.calendar.google.com"
	)
	from := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return from.Add(time.Duration(h) * time.Hour) }
	b := func(s, e int) calendar.Busy { return calendar.Busy{Start: at(s), End: at(e)} }
	for _, tc := range []struct {
		name     string
		busy     []string
		deleted  []string // deleted before the query
		want     []calendar.Busy
		wantWarn bool
	}{
		{"write calendar only (default)", nil, nil, []calendar.Busy{b(9, 10)}, false},
		{"owned, reader and freeBusyReader calendars", []string{"primary", personal, partner, team}, nil,
			[]calendar.Busy{b(9, 11), b(13, 14), b(15, 16)}, false},
		{"the write calendar listed once more is not counted twice", []string{"primary", personal, "primary"}, nil,
			[]calendar.Busy{b(9, 11)}, false},
		{"a deleted extra calendar is skipped", []string{"primary", vanished, team}, []string{vanished},
			[]calendar.Busy{b(9, 10), b(15, 16)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, gcaltest.Options{})
			for _, c := range []struct {
				id, role string
			}{{personal, gcaltest.RoleOwner}, {partner, gcaltest.RoleReader}, {team, gcaltest.RoleFreeBusyReader}, {vanished, gcaltest.RoleReader}} {
				if err := e.sim.AddCalendar(gcaltest.DefaultUser, gcaltest.Calendar{ID: c.id, Summary: c.id}, c.role); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range []struct {
				cal        string
				start, end int
			}{{"primary", 9, 10}, {personal, 10, 11}, {partner, 13, 14}, {team, 15, 16}, {vanished, 17, 18}} {
				if _, err := e.sim.PutEvent(ev.cal, gcaltest.ExternalEvent{Summary: "busy", Start: at(ev.start), End: at(ev.end)}); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range tc.deleted {
				if err := e.sim.DeleteCalendar(id); err != nil {
					t.Fatal(err)
				}
			}
			var logs logtest.Buffer
			opts := []gcal.Option{gcal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
			if tc.busy != nil {
				opts = append(opts, gcal.WithBusyCalendars(tc.busy...))
			}
			c := e.newClient(t, e.token, opts...)
			before := e.sim.Stats().Calls["freebusy.query"]
			got, err := c.FreeBusy(t.Context(), from, from.Add(24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(got, tc.want); d != "" {
				t.Errorf("FreeBusy (-got +want):\n%s", d)
			}
			if n := e.sim.Stats().Calls["freebusy.query"] - before; n != 1 {
				t.Errorf("%d freebusy.query calls, want one for every calendar", n)
			}
			if warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), vanished); warned != tc.wantWarn {
				t.Errorf("warning about %s logged = %v, want %v; logs:\n%s", vanished, warned, tc.wantWarn, logs.String())
			}
		})
	}
}

// TestSharedCalendarAccessRoles: the simulator reports the account's role
// on shared calendars and refuses writes without writer access, as Google does.
func TestSharedCalendarAccessRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	for id, role := range map[string]string{"r@example.org": gcaltest.RoleReader, "fb@example.org": gcaltest.RoleFreeBusyReader, "w@example.org": gcaltest.RoleWriter} {
		if err := e.sim.AddCalendar(gcaltest.DefaultUser, gcaltest.Calendar{ID: id, Summary: id}, role); err != nil {
			t.Fatal(err)
		}
	}
	cals, err := e.client.ListCalendars(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, c := range cals {
		roles[c.ID] = c.AccessRole
	}
	want := map[string]string{gcaltest.DefaultUser: "owner", "r@example.org": "reader", "fb@example.org": "freeBusyReader", "w@example.org": "writer"}
	if d := cmp.Diff(roles, want); d != "" {
		t.Errorf("access roles (-got +want):\n%s", d)
	}
	start := time.Date(2027, 2, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		cal    string
		status int
	}{{"r@example.org", http.StatusForbidden}, {"fb@example.org", http.StatusForbidden}, {"w@example.org", 0}} {
		c := e.newClient(t, e.token, gcal.WithCalendar(tc.cal))
		_, err := c.CreateEvent(t.Context(), booking("b-"+tc.cal, start, time.Hour, "UTC"))
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("insert into %s: %v", tc.cal, err)
		case tc.status != 0 && (err == nil || outboundErr(t, err).Status != tc.status || outboundErr(t, err).Code != "requiredAccessLevel"):
			t.Errorf("insert into %s: %v, want %d requiredAccessLevel", tc.cal, err, tc.status)
		}
	}
	if err := e.sim.AddCalendar(gcaltest.DefaultUser, gcaltest.Calendar{ID: "x@example.org"}, "admin"); err == nil {
		t.Error("AddCalendar accepted the unknown role admin")
	}
}

func TestChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	ctx := t.Context()
	start := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	// More events than one page (250) so paging is exercised.
	for i := range 260 {
		if _, err := e.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: fmt.Sprint("ext ", i), Start: start.Add(time.Duration(i) * time.Hour), End: start.Add(time.Duration(i)*time.Hour + 30*time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mine, err := e.client.CreateEvent(ctx, booking("b-7", start, time.Hour, "Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := e.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: "doomed", Start: start, End: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	full, err := e.client.Changes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Changes) != 262 || full.Cursor == "" || full.Reset {
		t.Fatalf("full listing: %d changes, cursor %q, reset %v", len(full.Changes), full.Cursor, full.Reset)
	}

	empty, err := e.client.Changes(ctx, full.Cursor)
	if err != nil || len(empty.Changes) != 0 || empty.Cursor == "" {
		t.Fatalf("no changes: %+v %v", empty, err)
	}

	// The user moves our event and deletes another one in Google Calendar.
	if err := e.sim.MoveEvent("primary", mine.ID, start.Add(time.Hour), start.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DeleteEvent("primary", doomed); err != nil {
		t.Fatal(err)
	}
	delta, err := e.client.Changes(ctx, empty.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]calendar.Change{}
	for _, c := range delta.Changes {
		byID[c.ID] = c
	}
	if len(delta.Changes) != 2 {
		t.Fatalf("delta %+v", delta.Changes)
	}
	if c := byID[mine.ID]; c.BookingID != "b-7" || c.Deleted || c.Event == nil || !c.Event.Start.Equal(start.Add(time.Hour)) || c.Event.TimeZone != "Europe/Berlin" {
		t.Errorf("moved event change %+v", c)
	}
	if c := byID[doomed]; !c.Deleted || c.Event != nil {
		t.Errorf("deleted event change %+v", c)
	}

	// An expired sync token yields a full listing flagged Reset, with the
	// deleted events Google still keeps: a deletion the expired token would
	// have reported is not lost.
	e.sim.ExpireSyncTokens("primary")
	reset, err := e.client.Changes(ctx, delta.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if !reset.Reset || len(reset.Changes) != 262 || reset.Cursor == "" {
		t.Errorf("after expiry: reset=%v changes=%d cursor=%q", reset.Reset, len(reset.Changes), reset.Cursor)
	}
	if i := slices.IndexFunc(reset.Changes, func(c calendar.Change) bool { return c.ID == doomed }); i < 0 || !reset.Changes[i].Deleted {
		t.Errorf("after expiry: the deleted event is not listed as deleted")
	}
	if _, err := e.client.Changes(ctx, reset.Cursor); err != nil {
		t.Errorf("new cursor refused: %v", err)
	}
}

func TestDSTRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		zone       string
		start      string // local wall time
		dur        time.Duration
		wantStart  string // dateTime Google stores
		wantEnd    string
		wantLength time.Duration
	}{
		// Berlin springs forward 2027-03-28 02:00 -> 03:00.
		{"Europe/Berlin", "2027-03-28T01:30:00", 2 * time.Hour, "2027-03-28T01:30:00+01:00", "2027-03-28T04:30:00+02:00", 2 * time.Hour},
		// Berlin falls back 2026-10-25 03:00 -> 02:00.
		{"Europe/Berlin", "2026-10-25T01:30:00", 2 * time.Hour, "2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+01:00", 2 * time.Hour},
		{"Europe/Berlin", "2027-01-15T18:00:00", time.Hour, "2027-01-15T18:00:00+01:00", "2027-01-15T19:00:00+01:00", time.Hour},
		// New York springs forward 2027-03-14 02:00 -> 03:00.
		{"America/New_York", "2027-03-14T01:00:00", 3 * time.Hour, "2027-03-14T01:00:00-05:00", "2027-03-14T05:00:00-04:00", 3 * time.Hour},
		// New York falls back 2026-11-01 02:00 -> 01:00.
		{"America/New_York", "2026-11-01T00:30:00", 2 * time.Hour, "2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-05:00", 2 * time.Hour},
	}
	e := newEnv(t, gcaltest.Options{})
	for i, tc := range tests {
		t.Run(tc.zone+" "+tc.start, func(t *testing.T) {
			t.Parallel()
			loc := mustLoad(t, tc.zone)
			start, err := time.ParseInLocation("2006-01-02T15:04:05", tc.start, loc)
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("dst-%d", i)
			ev := booking(id, start, tc.dur, tc.zone)
			if _, err := e.client.CreateEvent(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			got, err := e.client.GetEvent(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(start) || got.End.Sub(got.Start) != tc.wantLength || got.TimeZone != tc.zone {
				t.Errorf("read back start=%v end=%v zone=%q", got.Start, got.End, got.TimeZone)
			}
			if got.Start.Location() != time.UTC {
				t.Errorf("start not in UTC: %v", got.Start.Location())
			}
			raw, err := e.sim.Event("primary", got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Start.DateTime != tc.wantStart || raw.End.DateTime != tc.wantEnd || raw.Start.TimeZone != tc.zone || raw.End.TimeZone != tc.zone {
				t.Errorf("stored start=%+v end=%+v", raw.Start, raw.End)
			}
		})
	}
}

func TestWatchPushStop(t *testing.T) {
	t.Parallel()
	type note struct{ header http.Header }
	var mu sync.Mutex
	var notes []note
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		notes = append(notes, note{r.Header.Clone()})
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)
	e := newEnv(t, gcaltest.Options{PushClient: recv.Client()})
	ctx := t.Context()

	ch, err := e.client.Watch(ctx, "primary", recv.URL+"/webhooks/google", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ch.ID == "" || ch.ResourceID == "" || len(ch.Token) < 40 || ch.CalendarID != "primary" {
		t.Fatalf("channel %+v", ch)
	}
	if d := time.Until(ch.Expiration); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("expiration in %v, want ~48h", d)
	}
	other, err := e.client.Watch(ctx, "primary", recv.URL+"/webhooks/google", 0)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == ch.ID || other.Token == ch.Token || other.ResourceID != ch.ResourceID {
		t.Errorf("second channel %+v vs %+v: ids and tokens must differ, resource id must match", other, ch)
	}
	if _, err := e.client.Watch(ctx, "primary", "http://insecure.example/hook", time.Hour); err == nil {
		t.Error("http address accepted; Google requires https")
	}
	if n := len(e.sim.Channels(gcaltest.DefaultUser)); n != 2 {
		t.Fatalf("%d channels, want 2", n)
	}
	if err := e.client.StopChannel(ctx, other); err != nil {
		t.Fatal(err)
	}

	for _, state := range []string{gcaltest.StateSync, gcaltest.StateExists} {
		ds := e.sim.Push(ctx, "primary", state)
		if len(ds) != 1 || ds[0].Err != nil || ds[0].Status != http.StatusOK {
			t.Fatalf("push %s: %+v", state, ds)
		}
	}
	mu.Lock()
	got := notes
	mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d notifications", len(got))
	}
	for i, n := range got {
		h := n.header
		want := map[string]string{
			"X-Goog-Channel-Id":     ch.ID,
			"X-Goog-Channel-Token":  ch.Token,
			"X-Goog-Resource-Id":    ch.ResourceID,
			"X-Goog-Resource-State": []string{"sync", "exists"}[i],
			"X-Goog-Message-Number": fmt.Sprint(i + 1),
			"X-Goog-Resource-Uri":   ch.ResourceURI,
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("notification %d: %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
		exp, err := http.ParseTime(h.Get("X-Goog-Channel-Expiration"))
		if err != nil || !exp.Equal(ch.Expiration.Truncate(time.Second)) {
			t.Errorf("notification %d: expiration %q (%v), want %v", i, h.Get("X-Goog-Channel-Expiration"), err, ch.Expiration)
		}
	}

	renewed, err := e.client.RenewChannel(ctx, ch, recv.URL+"/webhooks/google", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if live := e.sim.Channels("primary"); len(live) != 1 || live[0].ID != renewed.ID || renewed.ID == ch.ID || renewed.Token == ch.Token {
		t.Fatalf("after renewal: live %+v, renewed %+v", live, renewed)
	}
	if err := e.client.StopChannel(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	if err := e.client.StopChannel(ctx, ch); err != nil {
		t.Errorf("stopping a stopped channel: %v", err)
	}
	if ds := e.sim.Push(ctx, "primary", gcaltest.StateExists); len(ds) != 0 {
		t.Errorf("push after stop reached %d channels", len(ds))
	}
	if _, err := e.sim.PushChannel(ctx, ch.ID, gcaltest.StateExists); !errors.Is(err, gcaltest.ErrNotFound) {
		t.Errorf("push to stopped channel: %v", err)
	}
}

// TestOpenChosenChannel: NewChannel chooses the id and token before the
// channel exists, so a receiver can store them first; Open opens exactly
// that channel, and its "sync" message, which Google (and the simulator
// with AutoPush) sends before answering, carries them.
func TestOpenChosenChannel(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []http.Header
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	e := newEnv(t, gcaltest.Options{PushClient: recv.Client(), AutoPush: true})
	ch, err := gcal.NewChannel("primary")
	if err != nil {
		t.Fatal(err)
	}
	other, err := gcal.NewChannel("primary")
	if err != nil {
		t.Fatal(err)
	}
	if ch.ID == "" || len(ch.Token) < 40 || ch.ID == other.ID || ch.Token == other.Token || ch.ResourceID != "" {
		t.Fatalf("new channels %+v, %+v: want random ids and tokens, nothing opened", ch, other)
	}
	mu.Lock()
	before := len(got)
	mu.Unlock()
	opened, err := e.client.Open(t.Context(), ch, recv.URL+"/webhooks/google", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if opened.ID != ch.ID || opened.Token != ch.Token || opened.CalendarID != "primary" || opened.ResourceID == "" || opened.ResourceURI == "" ||
		time.Until(opened.Expiration) < 59*time.Minute {
		t.Fatalf("opened %+v, want %+v with resource and expiration", opened, ch)
	}
	mu.Lock()
	defer mu.Unlock()
	if before != 0 || len(got) != 1 || got[0].Get("X-Goog-Channel-Id") != ch.ID || got[0].Get("X-Goog-Channel-Token") != ch.Token ||
		got[0].Get("X-Goog-Resource-State") != gcaltest.StateSync {
		t.Fatalf("notifications when Open returned: %v (before: %d); want the sync message of the chosen channel", got, before)
	}
}

func TestListCalendars(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{Users: []gcaltest.User{{
		Email: gcaltest.DefaultUser, TimeZone: "America/New_York",
		Calendars: []gcaltest.Calendar{{ID: "work@group.calendar.google.com", Summary: "Work"}, {ID: "home@group.calendar.google.com", Summary: "Home", TimeZone: "Europe/Berlin"}},
	}}})
	got, err := e.client.ListCalendars(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []gcal.CalendarInfo{
		{ID: gcaltest.DefaultUser, Summary: gcaltest.DefaultUser, TimeZone: "America/New_York", Primary: true, AccessRole: "owner"},
		{ID: "work@group.calendar.google.com", Summary: "Work", TimeZone: "America/New_York", AccessRole: "owner"},
		{ID: "home@group.calendar.google.com", Summary: "Home", TimeZone: "Europe/Berlin", AccessRole: "owner"},
	}
	if d := cmp.Diff(got, want); d != "" {
		t.Errorf("ListCalendars (-got +want):\n%s", d)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	t.Run("expired access token is refreshed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, gcaltest.Options{})
		stale := *e.token
		stale.Expiry = time.Now().Add(-time.Minute)
		e.sim.ExpireAccessTokens()
		c := e.newClient(t, &stale)
		if _, err := c.ListCalendars(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := e.sim.Stats(); st.Refreshes != 1 {
			t.Errorf("refreshes %d, want 1", st.Refreshes)
		}
	})
	t.Run("server-side expired token is 401 authError", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, gcaltest.Options{})
		e.sim.ExpireAccessTokens()
		_, err := e.client.ListCalendars(t.Context())
		oe := outboundErr(t, err)
		if oe.Status != http.StatusUnauthorized || oe.Code != "authError" || oe.Transient() {
			t.Errorf("error %+v", oe)
		}
	})
	t.Run("revoked refresh token is invalid_grant", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, gcaltest.Options{})
		stale := *e.token
		stale.Expiry = time.Now().Add(-time.Minute)
		e.sim.RevokeUser(gcaltest.DefaultUser)
		c := e.newClient(t, &stale)
		_, err := c.GetEvent(t.Context(), "b-x")
		if !errors.Is(err, gcal.ErrInvalidGrant) {
			t.Fatalf("got %v, want ErrInvalidGrant", err)
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("no *oauth2.RetrieveError in %v", err)
		}
		if oe := outboundErr(t, err); oe.Transient() {
			t.Errorf("invalid_grant classified transient")
		}
	})
}

func TestAccountEmailAndRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, e.ts.Client())
	cfg := gcal.OAuthConfig(gcaltest.DefaultClientID, gcaltest.DefaultClientSecret, "https://gateway.test/cb", gcaltest.Endpoint(e.ts.URL))
	email, err := gcal.AccountEmail(ctx, oauth2.NewClient(ctx, cfg.TokenSource(ctx, e.token)), gcaltest.UserinfoURL(e.ts.URL))
	if err != nil || email != gcaltest.DefaultUser {
		t.Fatalf("AccountEmail = %q, %v", email, err)
	}
	if err := gcal.Revoke(ctx, e.ts.Client(), gcaltest.RevokeURL(e.ts.URL), e.token.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := gcal.Revoke(ctx, e.ts.Client(), gcaltest.RevokeURL(e.ts.URL), e.token.RefreshToken); err != nil {
		t.Errorf("revoking an already revoked token: %v", err)
	}
	if st := e.sim.Stats(); st.Revocations != 1 {
		t.Errorf("revocations %d", st.Revocations)
	}
	if _, err := e.client.ListCalendars(t.Context()); err == nil {
		t.Error("calls still work after revocation")
	}
	_, err = gcal.AccountEmail(ctx, oauth2.NewClient(ctx, cfg.TokenSource(ctx, e.token)), gcaltest.UserinfoURL(e.ts.URL))
	if oe := outboundErr(t, err); oe.Status != http.StatusUnauthorized {
		t.Errorf("AccountEmail after revoke: %+v", oe)
	}
}

func TestLatencyFaultHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gcaltest.Options{})
	e.sim.InjectFault(gcaltest.Fault{Op: "calendarList.list", Delay: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := e.client.ListCalendars(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if oe := outboundErr(t, err); !oe.Transient() {
		t.Errorf("canceled call classified %v", oe.Class)
	}
}

// TestDeletedCalendar: after the mentor deletes the (secondary) calendar the
// gateway writes to, the calls on the calendar as a whole report
// calendar.ErrCalendarNotFound; an event's own calls cannot tell and report
// calendar.ErrNotFound, and deleting the event succeeds.
func TestDeletedCalendar(t *testing.T) {
	t.Parallel()
	const cal = "mentoring@group.calendar.google.com"
	e := newEnv(t, gcaltest.Options{Users: []gcaltest.User{{Email: gcaltest.DefaultUser,
		Calendars: []gcaltest.Calendar{{ID: cal, Summary: "Mentoring"}}}}})
	c := e.newClient(t, e.token, gcal.WithCalendar(cal))
	// A client of the primary calendar that also counts the busy time of
	// the one deleted below: that calendar is gone, not the client's.
	both := e.newClient(t, e.token, gcal.WithBusyCalendars("primary", cal))
	ctx := t.Context()
	start := time.Date(2027, 6, 8, 9, 0, 0, 0, time.UTC)
	ev, err := c.CreateEvent(ctx, booking("b-gone", start, time.Hour, "UTC"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Changes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DeleteCalendar("primary"); err == nil {
		t.Error("the simulator deleted a primary calendar; Google refuses")
	}
	if _, err := c.Watch(ctx, cal, "https://gateway.test/webhooks/google", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DeleteCalendar(cal); err != nil {
		t.Fatal(err)
	}
	if chs := e.sim.Channels(cal); len(chs) != 0 {
		t.Errorf("channels on the deleted calendar: %+v", chs)
	}
	cals, err := c.ListCalendars(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, lc := range cals {
		if lc.ID == cal {
			t.Errorf("ListCalendars still lists the deleted calendar: %+v", cals)
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"FreeBusy", func() error { _, err := c.FreeBusy(ctx, start.Add(-time.Hour), start.Add(time.Hour)); return err }, calendar.ErrCalendarNotFound},
		{"Changes(\"\")", func() error { _, err := c.Changes(ctx, ""); return err }, calendar.ErrCalendarNotFound},
		{"Changes(cursor)", func() error { _, err := c.Changes(ctx, first.Cursor); return err }, calendar.ErrCalendarNotFound},
		{"CreateEvent", func() error {
			_, err := c.CreateEvent(ctx, booking("b-new", start.Add(24*time.Hour), time.Hour, "UTC"))
			return err
		}, calendar.ErrCalendarNotFound},
		{"Watch", func() error {
			_, err := c.Watch(ctx, cal, "https://gateway.test/webhooks/google", time.Hour)
			return err
		}, calendar.ErrCalendarNotFound},
		{"FreeBusy of another client's busy calendar (skipped)", func() error {
			_, err := both.FreeBusy(ctx, start.Add(-time.Hour), start.Add(time.Hour))
			return err
		}, nil},
		{"GetEvent", func() error { _, err := c.GetEvent(ctx, ev.BookingID); return err }, calendar.ErrNotFound},
		{"UpdateEvent", func() error { _, err := c.UpdateEvent(ctx, ev); return err }, calendar.ErrNotFound},
		{"DeleteEvent", func() error { return c.DeleteEvent(ctx, ev.BookingID) }, nil},
	} {
		err := tc.call()
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v, want nil", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		case tc.want == calendar.ErrNotFound && errors.Is(err, calendar.ErrCalendarNotFound):
			t.Errorf("%s: %v; an event's call cannot know the calendar is gone", tc.name, err)
		}
	}
}
