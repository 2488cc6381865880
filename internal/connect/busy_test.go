package connect_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

var busyDay = time.Date(2027, 4, 5, 0, 0, 0, 0, time.UTC)

func busyAt(h int) time.Time { return busyDay.Add(time.Duration(h) * time.Hour) }

func busyBlock(s, e int) calendar.Busy { return calendar.Busy{Start: busyAt(s), End: busyAt(e)} }

// busyOf is the busy time of sub's booking calendars on busyDay, as
// availability and the check before a booking see it: every calendar
// BusyCalendars returns, merged.
func busyOf(t *testing.T, svc *connect.Service, sub string) []calendar.Busy {
	t.Helper()
	cals, err := svc.BusyCalendars(t.Context(), sub)
	if err != nil || len(cals) == 0 {
		t.Fatalf("BusyCalendars(%s) = %d calendars, %v", sub, len(cals), err)
	}
	var all []calendar.Busy
	for _, c := range cals {
		got, err := c.FreeBusy(t.Context(), busyDay, busyDay.Add(24*time.Hour))
		if err != nil {
			t.Fatalf("FreeBusy(%s): %v", sub, err)
		}
		all = append(all, got...)
	}
	return calendar.MergeBusy(all)
}

func busyIDs(refs []connect.CalendarRef) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.ID)
	}
	return out
}

// TestGoogleBusyCalendars: the calendars of a Google connection whose busy
// time counts are the chosen one by default; the user adds others of the
// account (read-only ones too), which are stored, validated against the
// calendar list and counted once; one deleted since is skipped.
func TestGoogleBusyCalendars(t *testing.T) {
	t.Parallel()
	const (
		primary = "mentor@example.com"
		work    = "work@group.calendar.google.com"
		partner = "partner@example.org"            // shared with the account as reader
		team    = "team@group.calendar.google.com" // shared as freeBusyReader
	)
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{AutoCreateUsers: true})
		if err := h.google.AddCalendar(primary, gcaltest.Calendar{ID: partner, Summary: "Partner"}, gcaltest.RoleReader); err != nil {
			t.Fatal(err)
		}
		if err := h.google.AddCalendar(primary, gcaltest.Calendar{ID: team, Summary: "Team"}, gcaltest.RoleFreeBusyReader); err != nil {
			t.Fatal(err)
		}
		for _, ev := range []struct {
			cal        string
			start, end int
		}{{primary, 9, 10}, {work, 10, 11}, {partner, 13, 14}, {team, 15, 16}} {
			if _, err := h.google.PutEvent(ev.cal, gcaltest.ExternalEvent{Summary: "busy", Start: busyAt(ev.start), End: busyAt(ev.end)}); err != nil {
				t.Fatal(err)
			}
		}
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		in := connectGoogle(t, svc, "alice")
		if len(in.BusyCalendars) != 0 || cmp.Diff(busyIDs(in.Busy()), []string{primary}) != "" {
			t.Fatalf("new connection: busy calendars %+v, counted %+v; want the chosen calendar only", in.BusyCalendars, in.Busy())
		}
		if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(9, 10)}); d != "" {
			t.Errorf("default busy time (-got +want):\n%s", d)
		}

		// Read-only calendars are fine for busy time, not for events.
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", partner); !errors.Is(err, connect.ErrUnknownCalendar) {
			t.Errorf("choosing a read-only calendar for events: %v, want ErrUnknownCalendar", err)
		}
		for _, tc := range []struct {
			name string
			busy []string
			want error
		}{
			{"unknown", []string{work, "nope@group.calendar.google.com"}, connect.ErrUnknownBusyCalendar},
			{"another account's primary", []string{"someone@example.org"}, connect.ErrUnknownBusyCalendar},
		} {
			_, _, err := svc.UpdateGoogleCalendars(ctx, "alice", connect.CalendarChoice{Calendar: work, Busy: tc.busy})
			if !errors.Is(err, tc.want) || !errors.Is(err, connect.ErrUnknownCalendar) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if list, _ := svc.List(ctx, "alice"); list[0].CalendarID != primary || len(list[0].BusyCalendars) != 0 {
			t.Fatalf("a refused update changed the connection: %+v", list[0])
		}

		// Busy calendars only: the chosen calendar stays and is listed first.
		in, refs, err := svc.UpdateGoogleCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{work, partner, team, work}})
		if err != nil {
			t.Fatal(err)
		}
		if in.CalendarID != primary || len(refs) != 2 {
			t.Errorf("update = %+v, writable calendars %+v", in, refs)
		}
		want := []connect.CalendarRef{{ID: primary, Name: primary}, {ID: work, Name: "Work"}, {ID: partner, Name: "Partner"}, {ID: team, Name: "Team"}}
		if d := cmp.Diff(in.Busy(), want); d != "" {
			t.Errorf("counted calendars (-got +want):\n%s", d)
		}
		// Stored: another replica sees them.
		other, _ := h.replica(t, nil)
		if list, err := other.List(ctx, "alice"); err != nil || cmp.Diff(list[0].Busy(), want) != "" {
			t.Errorf("another replica reads %+v, %v", list, err)
		}
		if d := cmp.Diff(busyOf(t, other, "alice"), []calendar.Busy{busyBlock(9, 11), busyBlock(13, 14), busyBlock(15, 16)}); d != "" {
			t.Errorf("busy time of four calendars (-got +want):\n%s", d)
		}
		queries := h.google.Stats().Calls["freebusy.query"]
		busyOf(t, svc, "alice")
		if n := h.google.Stats().Calls["freebusy.query"] - queries; n != 1 {
			t.Errorf("%d freebusy.query calls for four calendars, want 1", n)
		}

		// Events move to a calendar that was an extra: it is not counted twice,
		// the list as the user gave it stays.
		in, _, err = svc.ChooseGoogleCalendar(ctx, "alice", work)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(busyIDs(in.Busy()), []string{work, partner, team}); d != "" {
			t.Errorf("after choosing %s (-got +want):\n%s", work, d)
		}

		// The partner stops sharing: the others still count, the connection
		// stays connected.
		if err := h.google.DeleteCalendar(partner); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(10, 11), busyBlock(15, 16)}); d != "" {
			t.Errorf("with a vanished extra calendar (-got +want):\n%s", d)
		}
		if list, _ := svc.List(ctx, "alice"); list[0].Status != connect.StatusConnected {
			t.Errorf("a vanished extra calendar changed the connection: %+v", list[0])
		}

		// Reconnecting keeps the choice where it still applies.
		in = connectGoogle(t, svc, "alice")
		if d := cmp.Diff(busyIDs(in.Busy()), []string{work, team}); d != "" {
			t.Errorf("after reconnecting (-got +want):\n%s", d)
		}

		// An empty list: the chosen calendar only again.
		in, _, err = svc.UpdateGoogleCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{}})
		if err != nil || cmp.Diff(busyIDs(in.Busy()), []string{work}) != "" {
			t.Errorf("reset = %+v, %v", in.Busy(), err)
		}

		// Connecting another Google account starts from its primary
		// calendar: none of the first account's choices carry over, even
		// where the other account sees the same calendar.
		if _, _, err := svc.UpdateGoogleCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{team}}); err != nil {
			t.Fatal(err)
		}
		const otherAccount = "other@example.com"
		u, _, err := svc.StartGoogle(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		state, code := consent(t, u+"&login_hint="+otherAccount) // creates the account
		if err := h.google.AddCalendar(otherAccount, gcaltest.Calendar{ID: team, Summary: "Team"}, gcaltest.RoleReader); err != nil {
			t.Fatal(err)
		}
		in, _, err = svc.CompleteGoogle(ctx, state, code, "")
		if err != nil || in.AccountEmail != otherAccount || cmp.Diff(busyIDs(in.Busy()), []string{otherAccount}) != "" {
			t.Errorf("another account = %+v, %v; want %s only", in, err, otherAccount)
		}
	})
}

// calDAVBusyEnv is a CalDAV account with three event calendars.
type calDAVBusyEnv struct {
	base, user, pass       string
	chosen, work, personal string // absolute collection URLs
}

func (e calDAVBusyEnv) put(t *testing.T, calURL string, start, end int) {
	t.Helper()
	uid := fmt.Sprintf("busy-%d", start)
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20261201T000000Z\r\n" +
		"DTSTART:" + busyAt(start).Format("20060102T150405Z") + "\r\nDTEND:" + busyAt(end).Format("20060102T150405Z") +
		"\r\nSUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	if err := caldavtest.Send(t.Context(), http.MethodPut, calURL+uid+".ics", e.user, e.pass, ics); err != nil {
		t.Fatal(err)
	}
}

func pathOf(t *testing.T, raw string) string {
	t.Helper()
	return mustParse(t, raw).Path
}

// runCalDAVBusy checks busy calendars of a CalDAV connection on env.
func runCalDAVBusy(t *testing.T, db *store.Store, e calDAVBusyEnv) {
	t.Helper()
	e.put(t, e.chosen, 9, 10)
	e.put(t, e.work, 10, 11)
	e.put(t, e.personal, 13, 14)
	h := newHarness(t, db, gcaltest.Options{})
	svc, sec := h.replica(t, nil)
	ctx := t.Context()
	chosen, work, personal := pathOf(t, e.chosen), pathOf(t, e.work), pathOf(t, e.personal)

	// An unknown busy calendar refuses the connection: nothing is stored.
	_, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: e.base, Username: e.user, Password: e.pass,
		CalendarPath: chosen, BusyCalendars: []string{work, "/nope/calendars/x/"}})
	if !errors.Is(err, connect.ErrUnknownBusyCalendar) {
		t.Fatalf("connect with an unknown busy calendar: %v", err)
	}
	p, _ := secrets.UserPath("spotlight", "test", "alice", "caldav")
	if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("credentials stored although a busy calendar was unknown: %v", err)
	}

	// Connected with the work calendar counting too (named by path).
	in, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: e.base, Username: e.user, Password: e.pass,
		CalendarPath: chosen, BusyCalendars: []string{work}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(busyIDs(in.Busy()), []string{chosen, work}); d != "" {
		t.Errorf("connected (-got +want):\n%s", d)
	}
	if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(9, 11)}); d != "" {
		t.Errorf("busy time of chosen and work (-got +want):\n%s", d)
	}

	// Busy calendars only, one named by its URL without the trailing slash.
	in, _, err = svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{work, strings.TrimSuffix(e.personal, "/")}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(busyIDs(in.Busy()), []string{chosen, work, personal}); d != "" || in.CalendarID != chosen {
		t.Errorf("updated (-got +want):\n%s", d)
	}
	if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(9, 11), busyBlock(13, 14)}); d != "" {
		t.Errorf("busy time of three calendars (-got +want):\n%s", d)
	}
	if _, _, err := svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{"/elsewhere/"}}); !errors.Is(err, connect.ErrUnknownBusyCalendar) {
		t.Errorf("unknown busy calendar: %v", err)
	}

	// Events move to the work calendar: counted once; writes go there only.
	in, _, err = svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Calendar: work})
	if err != nil || cmp.Diff(busyIDs(in.Busy()), []string{work, personal}) != "" {
		t.Fatalf("choose work = %+v, %v", in.Busy(), err)
	}
	cal, _, err := svc.Calendar(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cal.CreateEvent(ctx, calendar.Event{BookingID: "bk-busy", Summary: "Session", Start: busyAt(17), End: busyAt(18), TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(10, 11), busyBlock(13, 14), busyBlock(17, 18)}); d != "" {
		t.Errorf("after choosing work (-got +want):\n%s", d)
	}
	if err := caldavtest.Send(ctx, http.MethodGet, e.work+calendar.EventID("bk-busy")+".ics", e.user, e.pass, ""); err != nil {
		t.Errorf("the booking event is not in the chosen calendar: %v", err)
	}

	// The user deletes the personal calendar: skipped, still connected.
	if err := caldavtest.Send(ctx, http.MethodDelete, e.personal, e.user, e.pass, ""); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(10, 11), busyBlock(17, 18)}); d != "" {
		t.Errorf("with a deleted extra calendar (-got +want):\n%s", d)
	}
	list, _ := svc.List(ctx, "alice")
	if list[0].Status != connect.StatusConnected {
		t.Errorf("a deleted extra calendar changed the connection: %+v", list[0])
	}
	// A settings page saves the connection's own list back, the deleted
	// calendar still in it: it is dropped, not refused.
	in, _, err = svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Busy: busyIDs(list[0].Busy())})
	if err != nil || cmp.Diff(busyIDs(in.Busy()), []string{work}) != "" {
		t.Errorf("saving the list back = %v, %v; want %s only", busyIDs(in.Busy()), err, work)
	}
	// A calendar the connection never counted is still refused, by index.
	var ue *connect.UnknownBusyCalendarError
	if _, _, err := svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{work, "/elsewhere/"}}); !errors.As(err, &ue) || ue.Index != 1 {
		t.Errorf("unknown busy calendar at 1: %v", err)
	}

	// Connecting the same account again without naming a calendar (a new
	// app password, say; the server URL with a trailing slash) keeps the
	// chosen calendar and the busy calendars.
	in, _, err = svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: e.base + "/", Username: e.user, Password: e.pass})
	if err != nil || in.CalendarID != work || cmp.Diff(busyIDs(in.Busy()), []string{work}) != "" {
		t.Errorf("connected again = %+v, %v; want %s chosen, busy unchanged", in, err, work)
	}
	if _, _, err := svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Busy: []string{chosen}}); err != nil {
		t.Fatal(err)
	}
	in, _, err = svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: e.base + "/", Username: e.user, Password: e.pass})
	if err != nil || in.CalendarID != work || cmp.Diff(busyIDs(in.Busy()), []string{work, chosen}) != "" {
		t.Errorf("connected again = %+v, %v; want %s chosen and %s busy", in.Busy(), err, work, chosen)
	}

	// The user deletes the chosen calendar: the connection says so, and
	// its other busy calendar still counts until they choose another.
	if err := caldavtest.Send(ctx, http.MethodDelete, e.work, e.user, e.pass, ""); err != nil {
		t.Fatal(err)
	}
	// The first query finds the chosen calendar gone, and answers with
	// the other busy calendar's time all the same.
	cals, err := svc.BusyCalendars(ctx, "alice")
	if err != nil || len(cals) != 1 {
		t.Fatalf("busy calendars = %d, %v", len(cals), err)
	}
	if got, err := cals[0].FreeBusy(ctx, busyDay, busyDay.Add(24*time.Hour)); err != nil || cmp.Diff(got, []calendar.Busy{busyBlock(9, 10)}) != "" {
		t.Fatalf("free/busy as the chosen calendar is found gone = %v, %v; want 09-10", got, err)
	}
	if list, _ := svc.List(ctx, "alice"); list[0].Status != connect.StatusError {
		t.Fatalf("after the chosen calendar was deleted: %+v", list[0])
	}
	// Later queries, the connection in error, ask that calendar alone.
	if d := cmp.Diff(busyOf(t, svc, "alice"), []calendar.Busy{busyBlock(9, 10)}); d != "" {
		t.Errorf("busy time without the chosen calendar (-got +want):\n%s", d)
	}

	// The settings page saves what it read back, choosing another calendar
	// for events: the deleted chosen calendar in the list is dropped, and
	// the connection is connected again.
	list, _ = svc.List(ctx, "alice")
	in, _, err = svc.UpdateCalDAVCalendars(ctx, "alice", connect.CalendarChoice{Calendar: chosen, Busy: busyIDs(list[0].Busy())})
	if err != nil || in.Status != connect.StatusConnected || cmp.Diff(busyIDs(in.Busy()), []string{chosen}) != "" {
		t.Errorf("saving the list back with another calendar = %+v, %v; want %s, connected", in, err, chosen)
	}
}

func TestCalDAVBusyCalendars(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		cd := caldavtest.New(caldavtest.Options{Users: map[string]string{"mentor": calDAVPassword}})
		srv := httptest.NewServer(cd)
		t.Cleanup(srv.Close)
		cd.CreateCalendar("mentor", "work", "Work")
		cd.CreateCalendar("mentor", "personal", "Personal")
		runCalDAVBusy(t, db, calDAVBusyEnv{
			base: srv.URL, user: "mentor", pass: calDAVPassword,
			chosen:   srv.URL + caldavtest.CalendarPath("mentor", caldavtest.DefaultCalendar),
			work:     srv.URL + caldavtest.CalendarPath("mentor", "work"),
			personal: srv.URL + caldavtest.CalendarPath("mentor", "personal"),
		})
	})
}

func TestCalDAVBusyCalendarsRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	runCalDAVBusy(t, storetest.SQLite(t), calDAVBusyEnv{
		base: base, user: user, pass: pass,
		chosen:   radicale.MakeCalendar(t, base, user, pass, "sessions"),
		work:     radicale.MakeCalendar(t, base, user, pass, "work"),
		personal: radicale.MakeCalendar(t, base, user, pass, "personal"),
	})
}
