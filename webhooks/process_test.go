package webhooks_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// batchBookings adds webhooks.MeetingLookup to the fake booking service
// and counts the lookups.
type batchBookings struct {
	*fakeBookings
	batched, single atomic.Int32
}

func (b *batchBookings) FindByMeeting(ctx context.Context, id string) (webhooks.Booking, error) {
	b.single.Add(1)
	return b.fakeBookings.FindByMeeting(ctx, id)
}

func (b *batchBookings) FindByMeetings(_ context.Context, ids []string) (map[string]webhooks.Booking, error) {
	b.batched.Add(1)
	out := map[string]webhooks.Booking{}
	for _, id := range ids {
		if bk, err := b.lookup(b.meetings, id); err == nil {
			out[id] = bk
		}
	}
	return out, nil
}

// A job's Zoom meetings are looked up with one query; a booking an earlier
// delivery of the job acted on is looked up again (never acted on stale).
func TestProcessLooksUpMeetingsOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		var bb *batchBookings
		h := newHarness(t, db, func(c *webhooks.Config) {
			bb = &batchBookings{fakeBookings: c.Bookings.(*fakeBookings)}
			c.Bookings = bb
			c.Commit = webhooks.CommitConfig{MaxBatch: 3, Linger: 30 * time.Second, Committers: 1}
		})
		start := time.Now().Add(24 * time.Hour).Truncate(time.Minute).UTC()
		h.bookings.add(webhooks.Booking{ID: "b-1", Start: start, End: start.Add(time.Hour)}, "1001", "", "")
		release := h.svc.HoldArrival()
		var wg sync.WaitGroup
		for _, ev := range []struct{ event, meeting string }{
			{"meeting.started", "1001"}, {"meeting.ended", "1001"}, {"meeting.started", "9009"},
		} {
			body := []byte(`{"event":"` + ev.event + `","event_ts":1764069600123,"payload":{"account_id":"acc","object":{"id":"` +
				ev.meeting + `","uuid":"u"}}}`)
			wg.Go(func() {
				if c, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); c != http.StatusNoContent {
					t.Errorf("%s: %d %s", ev.event, c, b)
				}
			})
		}
		wg.Wait()
		release()
		ds := h.waitAllDone(t, webhooks.ProviderZoom, 3)
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
		var notes []string
		for _, d := range ds {
			if d.Status != webhooks.StatusProcessed {
				t.Fatalf("delivery %+v", d)
			}
			notes = append(notes, d.Note)
		}
		sort.Strings(notes)
		if notes[len(notes)-1] != "no booking for the meeting" {
			t.Errorf("notes %q: the unknown meeting is not reported", notes)
		}
		if got := bb.batched.Load(); got != 1 {
			t.Errorf("%d batched lookups, want 1", got)
		}
		// The second delivery of meeting 1001 finds its booking again.
		if got := bb.single.Load(); got != 1 {
			t.Errorf("%d single lookups, want 1", got)
		}
		// Whatever the order: the booking ends completed and is never set
		// in progress after that.
		calls := h.bookings.Calls()
		if len(calls) == 0 || calls[len(calls)-1].Status != webhooks.BookingCompleted {
			t.Fatalf("calls %+v, want the last to complete the booking", calls)
		}
	})
}
