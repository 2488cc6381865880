package connect_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// checkGone asserts that sub's connection to provider is in status error
// because its calendar is gone, and that no booking calendar comes of it.
func checkGone(t *testing.T, svc *connect.Service, sub, provider string) {
	t.Helper()
	ctx := t.Context()
	list, err := svc.List(ctx, sub)
	if err != nil || len(list) != 1 {
		t.Fatalf("List(%s) = %+v, %v", sub, list, err)
	}
	if in := list[0]; in.Status != connect.StatusError || !strings.Contains(in.LastError, "choose another calendar") {
		t.Errorf("connection of %s = status %q, last error %q; want error, calendar gone", sub, in.Status, in.LastError)
	}
	if _, _, err := svc.Calendar(ctx, sub); !errors.Is(err, connect.ErrCalendarGone) || !errors.Is(err, connect.ErrNotConnected) {
		t.Errorf("Calendar(%s) = %v, want ErrCalendarGone (an ErrNotConnected)", sub, err)
	}
	if _, _, err := svc.CalendarFor(ctx, sub, provider); !errors.Is(err, connect.ErrCalendarGone) {
		t.Errorf("CalendarFor(%s, %s) = %v, want ErrCalendarGone", sub, provider, err)
	}
	if busy, err := svc.BusyCalendars(ctx, sub); err != nil || len(busy) != 0 {
		t.Errorf("BusyCalendars(%s) = %d calendars, %v; want none", sub, len(busy), err)
	}
}

// checkConnected asserts that sub's connection is usable again.
func checkConnected(t *testing.T, svc *connect.Service, sub string) {
	t.Helper()
	ctx := t.Context()
	list, err := svc.List(ctx, sub)
	if err != nil || len(list) != 1 || list[0].Status != connect.StatusConnected || list[0].LastError != "" {
		t.Fatalf("List(%s) = %+v, %v; want connected without last error", sub, list, err)
	}
	cal, _, err := svc.Calendar(ctx, sub)
	if err != nil {
		t.Fatalf("Calendar(%s): %v", sub, err)
	}
	if _, err := cal.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("FreeBusy of %s: %v", sub, err)
	}
}

// TestGoogleCalendarDeleted: the mentor deletes the Google calendar the
// gateway writes to. The first call on it (free/busy, or a watch channel's
// renewal) gives the connection status error; bookings stop using it until
// the user chooses another calendar; a stale handle of the deleted calendar
// does not touch a connection that has moved on.
func TestGoogleCalendarDeleted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const work = "work@group.calendar.google.com"
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		for _, sub := range []string{"alice", "bob"} {
			connectGoogle(t, svc, sub)
			if _, _, err := svc.ChooseGoogleCalendar(ctx, sub, work); err != nil {
				t.Fatal(err)
			}
		}
		bobs, _, err := svc.Calendar(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.google.DeleteCalendar(work); err != nil {
			t.Fatal(err)
		}

		// bob's free/busy finds the calendar gone.
		if _, err := bobs.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, calendar.ErrCalendarNotFound) {
			t.Fatalf("FreeBusy on the deleted calendar: %v", err)
		}
		checkGone(t, svc, "bob", connect.ProviderGoogle)

		// alice's watch channel cannot be renewed: the renewal finds it gone.
		renewed, err := svc.RenewChannels(ctx, time.Now().Add(30*24*time.Hour))
		n := len(renewed)
		if err != nil || n != 0 {
			t.Fatalf("RenewChannels = %d, %v; want 0 renewed, no error", n, err)
		}
		checkGone(t, svc, "alice", connect.ProviderGoogle)

		// Choosing another calendar connects bob again; the stale handle of
		// the deleted calendar does not mark him again.
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "bob", "mentor@example.com"); err != nil {
			t.Fatal(err)
		}
		checkConnected(t, svc, "bob")
		if _, err := bobs.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, calendar.ErrCalendarNotFound) {
			t.Fatalf("stale FreeBusy: %v", err)
		}
		checkConnected(t, svc, "bob")
	})
}

// TestCalDAVCalendarDeleted: the same for a CalDAV collection the user
// deletes, found by the change sync (Changes); only another calendar
// connects it again.
func TestCalDAVCalendarDeleted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		cd, base := calDAVServer(t)
		cd.CreateCalendar("mentor", "work", "Work")
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		in, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword})
		if err != nil {
			t.Fatal(err)
		}
		cal, _, err := svc.CalendarFor(ctx, "alice", connect.ProviderCalDAV)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, base+in.CalendarID, nil)
		req.SetBasicAuth("mentor", calDAVPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("DELETE of the collection: HTTP %d", resp.StatusCode)
		}
		if _, err := cal.Changes(ctx, ""); !errors.Is(err, calendar.ErrCalendarNotFound) {
			t.Fatalf("Changes on the deleted calendar: %v", err)
		}
		checkGone(t, svc, "alice", connect.ProviderCalDAV)
		if list, err := svc.Connected(ctx, connect.ProviderCalDAV); err != nil || len(list) != 0 {
			t.Errorf("Connected(caldav) = %+v, %v; the poller must skip a connection in error", list, err)
		}
		// An event call cannot tell a missing event from a missing
		// calendar: it leaves the status alone (here: error stays error).
		if _, err := cal.GetEvent(ctx, "bk-1"); !errors.Is(err, calendar.ErrNotFound) {
			t.Fatalf("GetEvent: %v", err)
		}
		if _, _, err := svc.ChooseCalDAVCalendar(ctx, "alice", in.CalendarID); !errors.Is(err, connect.ErrUnknownCalendar) {
			t.Fatalf("choose the deleted calendar again: %v", err)
		}
		checkGone(t, svc, "alice", connect.ProviderCalDAV)
		if _, _, err := svc.ChooseCalDAVCalendar(ctx, "alice", caldavtest.CalendarPath("mentor", "work")); err != nil {
			t.Fatal(err)
		}
		checkConnected(t, svc, "alice")
	})
}
