package webhooks_test

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
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

// Deliveries are processed in-process right after their commit; when that
// cannot happen (here: no processing turn within the grace), their River
// job, scheduled the grace ahead, processes them instead.
func TestHandoffFallsBackToRiver(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const grace = 400 * time.Millisecond
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.HandoffGrace = grace
			c.ProcessConcurrency = 1
		})
		hold := h.svc.HoldProcessing()
		body := []byte(`{"event":"meeting.started","event_ts":1764069600123,"payload":{"account_id":"acc","object":{"id":"77","uuid":"u"}}}`)
		if c, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); c != http.StatusNoContent {
			t.Fatalf("%d %s", c, b)
		}
		// The in-process run gives up after grace/4; the job is not due yet.
		time.Sleep(grace / 2)
		// (River's scheduler makes a job available a few seconds before it
		// is due; it is not fetched before.)
		if jobs := h.riverJobs(t); jobs["scheduled"]+jobs["available"] != 1 || len(jobs) != 1 {
			t.Fatalf("river jobs %v, want one waiting", jobs)
		}
		ds := h.deliveries(t, webhooks.ProviderZoom)
		if len(ds) != 1 || ds[0].Status != webhooks.StatusReceived {
			t.Fatalf("deliveries %+v, want one received", ds)
		}
		// A replay would process it twice: refused while the hand-off is pending.
		if code, b := h.api(t, "POST", "/v1/admin/webhook-events/"+ds[0].ID+"/replay", h.token(t, "admin")); code != http.StatusConflict {
			t.Fatalf("replay during the hand-off: %d %s", code, b)
		}
		hold()
		ds = h.waitAllDone(t, webhooks.ProviderZoom, 1)
		if ds[0].Status != webhooks.StatusProcessed || ds[0].Attempts != 1 || ds[0].Note != "no booking for the meeting" {
			t.Fatalf("delivery %+v", ds[0])
		}
		if n := h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": "in_process"}); n != 1 {
			t.Errorf("%v in-process jobs, want 1", n)
		}
		// River ran the job (and keeps it as completed); nothing else is left.
		deadline := time.Now().Add(10 * time.Second)
		for jobs := h.riverJobs(t); jobs["completed"] != 1 || len(jobs) != 1; jobs = h.riverJobs(t) {
			if time.Now().After(deadline) {
				t.Fatalf("river jobs %v, want one completed", jobs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Batches that queued for in-process processing while it was busy are
// processed in one turn, each batch's job settled on its own: the job of
// the batch whose delivery failed goes to River, which processes only that
// delivery again; the others are deleted.
func TestHandoffMergesQueuedBatches(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) { c.ProcessConcurrency = 1 })
		hold := h.svc.HoldProcessing()
		const n = 6 // more batches than hand-off workers: some wait in the queue
		h.bookings.failCancel = map[string]int{"b-2": 1}
		for i := range n {
			k := strconv.Itoa(i)
			h.bookings.add(webhooks.Booking{ID: "b-" + k, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", "SPOT-"+k)
			body := []byte(`{"webhookEvent":"jira:issue_updated","user":{"accountId":"human"},"issue":{"id":"1","key":"SPOT-` + k +
				`","fields":{}},"changelog":{"items":[{"field":"status","toString":"Cancelled"}]}}`)
			// One at a time: a commit, a batch and a job each.
			if code, _, b := h.post(t, "/webhooks/jira", body, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, body)}); code != 202 {
				t.Fatalf("%d %s", code, b)
			}
		}
		if got := h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": "in_process"}); got != n {
			t.Fatalf("%v hand-off jobs, want %d", got, n)
		}
		hold()
		deadline := time.Now().Add(20 * time.Second)
		for {
			attempts := map[string]int{}
			for _, d := range h.deliveries(t, webhooks.ProviderJira) {
				if d.Status == webhooks.StatusProcessed {
					attempts[d.BookingID] = d.Attempts
				}
			}
			if len(attempts) == n {
				for id, a := range attempts {
					if want := map[bool]int{true: 2, false: 1}[id == "b-2"]; a != want {
						t.Errorf("%s: %d attempts, want %d", id, a, want)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("processed %v", attempts)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancels := map[string]int{}
		for _, c := range h.bookings.Calls() {
			cancels[c.ID]++
		}
		if len(cancels) != n {
			t.Errorf("cancels %v", cancels)
		}
		for id, c := range cancels {
			if c != 1 {
				t.Errorf("%s cancelled %d times", id, c)
			}
		}
		// River ran the failed batch's job; the others were deleted.
		for jobs := h.riverJobs(t); jobs["completed"] != 1 || len(jobs) != 1; jobs = h.riverJobs(t) {
			if time.Now().After(deadline) {
				t.Fatalf("river jobs %v, want one completed", jobs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
