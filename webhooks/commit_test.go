package webhooks_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// batchStats reads the group-commit histogram: transactions and deliveries.
func (h *harness) batchStats(t *testing.T) (count uint64, sum float64) {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "gateway_webhook_commit_batch_size" {
			hg := mf.GetMetric()[0].GetHistogram()
			return hg.GetSampleCount(), hg.GetSampleSum()
		}
	}
	return 0, 0
}

func jiraBody(i int) []byte {
	return []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_created","timestamp":%d,"issue":{"id":"%d","key":"SPOT-%d","fields":{}}}`, i, i, i))
}

// Concurrent deliveries share one transaction; each waiter learns its own
// outcome, duplicates inside the batch included.
func TestGroupCommitBatches(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		// A batch commits when it is full (10), when no delivery is on its
		// way, or after the linger. One arrival is held for the whole test
		// and the linger is long, so the batch commits when it is full:
		// the test does not depend on timing.
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.Commit = webhooks.CommitConfig{MaxBatch: 10, Linger: 30 * time.Second, Committers: 1}
		})
		release := h.svc.HoldArrival()
		defer release()
		type result struct {
			code int
			ack  webhooks.Ack
		}
		results := make([]result, 10)
		var wg sync.WaitGroup
		for i := range results {
			n := i
			if i >= 5 {
				n = 5 // five copies of the same delivery
			}
			wg.Go(func() {
				body := jiraBody(n)
				code, _, b := h.post(t, "/webhooks/jira", body, map[string]string{
					"X-Hub-Signature": jiratest.Sign(jiraSecret, body), "X-Atlassian-Webhook-Identifier": fmt.Sprintf("id-%d", n)})
				results[i].code = code
				_ = json.Unmarshal(b, &results[i].ack)
			})
		}
		wg.Wait()
		if count, sum := h.batchStats(t); count != 1 || sum != 10 {
			t.Fatalf("%d transactions for %v deliveries, want 1 for 10", count, sum)
		}
		accepted, dups := 0, 0
		var dupID string
		for i, r := range results {
			if r.code != 202 {
				t.Fatalf("delivery %d: %d", i, r.code)
			}
			switch r.ack.Status {
			case "accepted":
				accepted++
			case "duplicate":
				dups++
			}
			if i >= 5 {
				if dupID == "" {
					dupID = r.ack.ID
				}
				if r.ack.ID != dupID {
					t.Fatalf("copies got ids %s and %s", dupID, r.ack.ID)
				}
			}
		}
		if accepted != 6 || dups != 4 {
			t.Fatalf("%d accepted, %d duplicates; want 6, 4", accepted, dups)
		}
		h.waitAllDone(t, webhooks.ProviderJira, 6)
		// One processing job for the commit's six new deliveries.
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
	})
}

// failingJobs fails every enqueue, as a database error inside the
// transaction would.
type failingJobs struct{}

var errEnqueue = errors.New("enqueue failed")

func (failingJobs) InsertTx(context.Context, *sql.Tx, river.JobArgs, *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return nil, errEnqueue
}

func (failingJobs) InsertManyTx(context.Context, *sql.Tx, []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return nil, errEnqueue
}

// Nothing is acknowledged unless the delivery and its job committed.
func TestGroupCommitNoAckBeforeDurable(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.Jobs = func() webhooks.JobInserter { return failingJobs{} }
			c.Commit = webhooks.CommitConfig{MaxBatch: 4, Linger: 30 * time.Second, Committers: 1}
		})
		release := h.svc.HoldArrival()
		defer release()
		var wg sync.WaitGroup
		codes := make([]int, 4)
		for i := range codes {
			wg.Go(func() {
				body := jiraBody(i)
				codes[i], _, _ = h.post(t, "/webhooks/jira", body, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, body)})
			})
		}
		wg.Wait()
		for i, c := range codes {
			if c != 500 {
				t.Errorf("delivery %d answered %d, want 500", i, c)
			}
		}
		if ds := h.deliveries(t, webhooks.ProviderJira); len(ds) != 0 {
			t.Fatalf("%d deliveries stored without their job", len(ds))
		}
	})
}

// A processing job covers several deliveries; when one fails, River retries
// the job and only the failed delivery is processed again.
func TestBatchJobRetriesOnlyFailures(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.Commit = webhooks.CommitConfig{MaxBatch: 2, Linger: 30 * time.Second, Committers: 1}
		})
		release := h.svc.HoldArrival()
		defer release()
		h.bookings.failCancel = map[string]int{"b-a": 1}
		var wg sync.WaitGroup
		for _, k := range []string{"a", "b"} {
			h.bookings.add(webhooks.Booking{ID: "b-" + k, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", "SPOT-"+k)
			body := []byte(`{"webhookEvent":"jira:issue_updated","user":{"accountId":"human"},"issue":{"id":"1","key":"SPOT-` + k +
				`","fields":{}},"changelog":{"items":[{"field":"status","toString":"Cancelled"}]}}`)
			wg.Go(func() {
				if code, _, b := h.post(t, "/webhooks/jira", body, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, body)}); code != 202 {
					t.Errorf("%d %s", code, b)
				}
			})
		}
		wg.Wait()
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			ds := h.deliveries(t, webhooks.ProviderJira)
			attempts := map[string]int{}
			processed := 0
			for _, d := range ds {
				if d.Status == webhooks.StatusProcessed {
					processed++
					attempts[d.BookingID] = d.Attempts
				}
			}
			if processed == 2 {
				if attempts["b-a"] != 2 || attempts["b-b"] != 1 {
					t.Fatalf("attempts %v, want b-a 2, b-b 1", attempts)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries %+v", ds)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancels := map[string]int{}
		for _, c := range h.bookings.Calls() {
			cancels[c.ID]++
		}
		if cancels["b-a"] != 1 || cancels["b-b"] != 1 {
			t.Fatalf("cancels %v", cancels)
		}
	})
}

// A lone delivery is committed at once: the linger only waits for
// deliveries that are being received.
func TestLoneDeliveryNotDelayed(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.Commit = webhooks.CommitConfig{Linger: time.Hour}
		})
		body := jiraBody(1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/webhooks/jira", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature", jiratest.Sign(jiraSecret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("a lone delivery waited for the linger: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 202 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}
