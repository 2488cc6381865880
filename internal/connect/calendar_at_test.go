package connect_test

import (
	"errors"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestCalendarAt: after the user chose another CalDAV calendar of the same
// account, the calendar switched away from is still reached at its place
// with the current credentials; a place on another server, or of a
// provider the user has not connected, is not.
func TestCalendarAt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		cd, base := calDAVServer(t)
		cd.CreateCalendar("mentor", "work", "Work")
		cd.CreateCalendar("mentor", "personal", "Personal")
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		if _, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.ChooseCalDAVCalendar(ctx, "alice", caldavtest.CalendarPath("mentor", "work")); err != nil {
			t.Fatal(err)
		}
		work, in, err := svc.Calendar(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		place := in.Place()
		start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
		if _, err := work.CreateEvent(ctx, calendar.Event{BookingID: "bk-at", Summary: "s", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.ChooseCalDAVCalendar(ctx, "alice", caldavtest.CalendarPath("mentor", "personal")); err != nil {
			t.Fatal(err)
		}
		_, now, err := svc.Calendar(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if now.Place() == place {
			t.Fatalf("the place did not change with the calendar: %q", place)
		}
		old, err := svc.CalendarAt(ctx, "alice", place)
		if err != nil {
			t.Fatalf("CalendarAt(%q): %v", place, err)
		}
		if _, err := old.GetEvent(ctx, "bk-at"); err != nil {
			t.Fatalf("the event in the calendar switched away from: %v", err)
		}
		if err := old.DeleteEvent(ctx, "bk-at"); err != nil {
			t.Fatal(err)
		}
		if _, err := old.GetEvent(ctx, "bk-at"); !errors.Is(err, calendar.ErrNotFound) {
			t.Fatalf("after the delete: %v, want ErrNotFound", err)
		}
		for _, p := range []string{
			"caldav:https://elsewhere.example" + caldavtest.CalendarPath("mentor", "work"), // the password stays on its server
			"google:primary", // not connected
			"zoom:x",
			"nonsense",
		} {
			if _, err := svc.CalendarAt(ctx, "alice", p); !errors.Is(err, connect.ErrNotConnected) {
				t.Errorf("CalendarAt(%q) = %v, want ErrNotConnected", p, err)
			}
		}
	})
}

// TestCalendarAtAcrossProviders: the user connected Google, then CalDAV
// (whose calendar booking events now go to); the Google calendar is still
// reached at its place, until Google is disconnected.
func TestCalendarAtAcrossProviders(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		cd, base := calDAVServer(t)
		cd.CreateCalendar("mentor", "work", "Work")
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		g := connectGoogle(t, svc, "alice")
		gcal, in, err := svc.Calendar(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		place := in.Place()
		if place != g.Place() || place == "" {
			t.Fatalf("place %q, want the Google connection's %q", place, g.Place())
		}
		start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
		if _, err := gcal.CreateEvent(ctx, calendar.Event{BookingID: "bk-x", Summary: "s", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(time.Second) // CalDAV is the more recent connection
		if _, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword}); err != nil {
			t.Fatal(err)
		}
		if _, now, err := svc.Calendar(ctx, "alice"); err != nil || now.Provider != connect.ProviderCalDAV {
			t.Fatalf("current calendar: %+v, %v; want CalDAV", now, err)
		}
		old, err := svc.CalendarAt(ctx, "alice", place)
		if err != nil {
			t.Fatalf("CalendarAt(%q): %v", place, err)
		}
		if _, err := old.GetEvent(ctx, "bk-x"); err != nil {
			t.Fatalf("the event in the Google calendar: %v", err)
		}
		if err := svc.DisconnectGoogle(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CalendarAt(ctx, "alice", place); !errors.Is(err, connect.ErrNotConnected) {
			t.Errorf("CalendarAt(%q) after disconnecting Google = %v, want ErrNotConnected", place, err)
		}
	})
}
