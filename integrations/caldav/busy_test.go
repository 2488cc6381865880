package caldav_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/calendar/calendartest"
	"github.com/spotlight/gateway/internal/logtest"
)

// busyServer is a CalDAV server with three calendars of one account:
// chosen (the client's), work and personal (extras whose busy time counts).
type busyServer struct {
	hc                     *http.Client
	user, pass             string
	chosen, work, personal string // absolute collection URLs
	forbidden              string // an extra collection the server answers 403 ("" when it cannot)
	deleteCalendar         func(t *testing.T, calURL string)
}

// runBusy checks FreeBusy over several calendars of one server.
func runBusy(t *testing.T, s busyServer) {
	t.Helper()
	ctx := t.Context()
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return from.Add(time.Duration(h) * time.Hour) }
	b := func(s, e int) calendar.Busy { return calendar.Busy{Start: at(s), End: at(e)} }
	raw := func(u string) *rawCal { return &rawCal{calURL: u, user: s.user, pass: s.pass, hc: s.hc} }
	for _, ev := range []struct {
		cal        string
		start, end int
	}{{s.chosen, 9, 10}, {s.work, 10, 11}, {s.personal, 13, 14}, {s.personal, 20, 21}} {
		id := fmt.Sprintf("busy-%d", ev.start)
		if _, err := raw(ev.cal).AddForeign(ctx, calendartest.ForeignEvent{ID: id, Summary: "busy", Start: at(ev.start), End: at(ev.end), TimeZone: "UTC"}); err != nil {
			t.Fatal(err)
		}
	}
	query := func(t *testing.T, extras ...string) ([]calendar.Busy, string, error) {
		t.Helper()
		var logs logtest.Buffer
		c, err := caldav.New(s.chosen, s.user, s.pass, caldav.WithHTTPClient(s.hc),
			caldav.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), caldav.WithBusyCalendars(extras...))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.FreeBusy(ctx, from, from.Add(24*time.Hour))
		return got, logs.String(), err
	}
	for _, tc := range []struct {
		name   string
		extras []string
		want   []calendar.Busy
	}{
		{"the chosen calendar only", nil, []calendar.Busy{b(9, 10)}},
		{"chosen, work and personal", []string{s.work, s.personal}, []calendar.Busy{b(9, 11), b(13, 14), b(20, 21)}},
		{"the chosen calendar named again counts once", []string{s.chosen, strings.TrimSuffix(s.work, "/"), s.work}, []calendar.Busy{b(9, 11)}},
	} {
		got, logs, err := query(t, tc.extras...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := cmp.Diff(got, tc.want); d != "" {
			t.Errorf("%s: FreeBusy (-got +want):\n%s", tc.name, d)
		}
		if strings.Contains(logs, "level=WARN") {
			t.Errorf("%s: unexpected warning:\n%s", tc.name, logs)
		}
	}

	if s.forbidden != "" {
		got, logs, err := query(t, s.forbidden, s.work)
		if err != nil {
			t.Fatalf("with a forbidden extra calendar: %v", err)
		}
		if d := cmp.Diff(got, []calendar.Busy{b(9, 11)}); d != "" {
			t.Errorf("with a forbidden extra calendar (-got +want):\n%s", d)
		}
		if !strings.Contains(logs, "level=WARN") {
			t.Errorf("no warning about the forbidden calendar; logs:\n%s", logs)
		}
	}

	// The user deletes the personal calendar: it is skipped with a warning.
	s.deleteCalendar(t, s.personal)
	got, logs, err := query(t, s.work, s.personal)
	if err != nil {
		t.Fatalf("with a deleted extra calendar: %v", err)
	}
	if d := cmp.Diff(got, []calendar.Busy{b(9, 11)}); d != "" {
		t.Errorf("with a deleted extra calendar (-got +want):\n%s", d)
	}
	if !strings.Contains(logs, "level=WARN") || strings.Contains(logs, s.pass) {
		t.Errorf("want one warning naming no secret; logs:\n%s", logs)
	}
	// The chosen calendar deleted is still the client's own error.
	s.deleteCalendar(t, s.chosen)
	if _, _, err := query(t, s.work); !errors.Is(err, calendar.ErrCalendarNotFound) {
		t.Errorf("FreeBusy after the chosen calendar was deleted: %v, want ErrCalendarNotFound", err)
	}
}

func TestFreeBusySeveralCalendarsInMemory(t *testing.T) {
	t.Parallel()
	srv := caldavtest.New(caldavtest.Options{Users: map[string]string{"alice": "alice-secret"}})
	srv.CreateCalendar("alice", "work", "Work")
	srv.CreateCalendar("alice", "personal", "Personal")
	srv.CreateCalendar("alice", "shared", "Shared")
	shared := caldavtest.CalendarPath("alice", "shared")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, shared) {
			// As a server answers for a calendar no longer shared with the user.
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	runBusy(t, busyServer{
		hc: ts.Client(), user: "alice", pass: "alice-secret",
		chosen:    ts.URL + caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar),
		work:      ts.URL + caldavtest.CalendarPath("alice", "work"),
		personal:  ts.URL + caldavtest.CalendarPath("alice", "personal"),
		forbidden: ts.URL + shared,
		deleteCalendar: func(t *testing.T, u string) {
			if err := (&rawCal{calURL: u, user: "alice", pass: "alice-secret", hc: ts.Client()}).DeleteCalendar(t.Context()); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestFreeBusySeveralCalendarsRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	s := busyServer{
		hc: http.DefaultClient, user: user, pass: pass,
		chosen:   radicale.MakeCalendar(t, base, user, pass, "chosen"),
		work:     radicale.MakeCalendar(t, base, user, pass, "work"),
		personal: radicale.MakeCalendar(t, base, user, pass, "personal"),
		// Radicale's owner_only rights: another user's collection is 403.
		forbidden: strings.TrimSuffix(base, "/") + "/someone-else/calendar/",
		deleteCalendar: func(t *testing.T, u string) {
			if err := (&rawCal{calURL: u, user: user, pass: pass, hc: http.DefaultClient}).DeleteCalendar(t.Context()); err != nil {
				t.Fatal(err)
			}
		},
	}
	runBusy(t, s)
}

func TestBusyCalendarsStayOnTheServer(t *testing.T) {
	t.Parallel()
	for _, other := range []string{"https://elsewhere.example/alice/calendars/work/", "http://dav.example/alice/calendars/work/", "http://dav.example:8443/x/"} {
		if _, err := caldav.New("https://dav.example/alice/calendars/home/", "alice", "pw", caldav.WithBusyCalendars(other)); err == nil {
			t.Errorf("New accepted busy calendar %s on another server", other)
		}
	}
	if _, err := caldav.New("https://dav.example/alice/calendars/home/", "alice", "pw", caldav.WithBusyCalendars("https://DAV.example/alice/calendars/work")); err != nil {
		t.Errorf("New refused a busy calendar on the same server: %v", err)
	}
}
