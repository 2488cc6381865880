package booking

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestMentorEventsAt: the events a complete listing of a mentor's calendar
// must show are those of the mentor's live bookings whose mentor event the
// saga wrote to that calendar. Cancelled and completed bookings, events in
// another calendar of the mentor (after a switch), the candidate's copies
// and steps that do not record their calendar are left out.
func TestMentorEventsAt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		ctx := t.Context()
		cand := Actor{ID: "cand", Candidate: true}
		settled := func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) }
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
		book := func(key string, at time.Time) Booking {
			t.Helper()
			return en.waitFor(t, en.book(t, key, at).Booking.ID, 10*time.Second, settled)
		}
		live, cancelled, completed, switched, unrecorded := book("live", start), book("cancelled", start.Add(2*time.Hour)),
			book("completed", start.Add(4*time.Hour)), book("switched", start.Add(6*time.Hour)), book("unrecorded", start.Add(8*time.Hour))
		inProgress := book("in-progress", start.Add(10*time.Hour))

		if _, err := en.svc.Cancel(ctx, cand, cancelled.ID, "r"); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, cancelled.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusCancelled })
		for _, st := range []Status{StatusInProgress, StatusCompleted} {
			if err := en.svc.SetStatus(ctx, completed.ID, st, "webhook:zoom", "r"); err != nil {
				t.Fatal(err)
			}
		}
		if err := en.svc.SetStatus(ctx, inProgress.ID, StatusInProgress, "webhook:zoom", "r"); err != nil {
			t.Fatal(err)
		}
		// The mentor chooses another calendar; a reschedule moves the
		// session's event there.
		en.conn.switchTo("mentor", "fake:personal", &fakeCalendar{events: map[string]calendar.Event{}})
		if _, err := en.svc.Reschedule(ctx, cand, switched.ID, RescheduleRequest{Start: start.Add(7 * time.Hour), IfMatch: switched.ETag()}); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, switched.ID, 10*time.Second, func(b Booking) bool { return b.SpecVersion > switched.SpecVersion && settled(b) })
		// A step written before steps recorded their calendar.
		if _, err := s.DB().ExecContext(ctx, s.Rebind(`UPDATE booking_steps SET calendar_place = NULL WHERE booking_id = ? AND name = ?`),
			unrecorded.ID, string(StepMentorCalendar)); err != nil {
			t.Fatal(err)
		}

		want := []PlacedEvent{{live.ID, calendar.EventID(live.ID)}, {inProgress.ID, calendar.EventID(inProgress.ID)}}
		slices.SortFunc(want, func(a, b PlacedEvent) int { return strings.Compare(a.BookingID, b.BookingID) })
		got, err := en.svc.MentorEventsAt(ctx, "mentor", "fake:mentor")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("MentorEventsAt(mentor, fake:mentor) = %+v, %v; want %+v", got, err, want)
		}
		if got, err := en.svc.MentorEventsAt(ctx, "mentor", "fake:personal"); err != nil ||
			!slices.Equal(got, []PlacedEvent{{switched.ID, calendar.EventID(switched.ID)}}) {
			t.Fatalf("MentorEventsAt(mentor, fake:personal) = %+v, %v; want the switched booking's event", got, err)
		}
		// The candidate's copies are not the mentor's events, and a place
		// or mentor that is not named matches nothing.
		for _, q := range [][2]string{{"cand", "fake:cand"}, {"mentor", ""}, {"", "fake:mentor"}, {"mentor", "fake:other"}} {
			if got, err := en.svc.MentorEventsAt(ctx, q[0], q[1]); err != nil || len(got) != 0 {
				t.Errorf("MentorEventsAt(%q, %q) = %+v, %v; want none", q[0], q[1], got, err)
			}
		}
		if b, err := en.svc.Lookup(ctx, completed.ID); err != nil || b.Status != StatusCompleted {
			t.Fatalf("completed booking %+v, %v", b, err)
		}
	})
}
