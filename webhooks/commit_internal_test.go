package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// countingJobs hands out job ids without a River client.
type countingJobs struct{ next atomic.Int64 }

func (j *countingJobs) InsertTx(context.Context, *sql.Tx, river.JobArgs, *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return &rivertype.JobInsertResult{Job: &rivertype.JobRow{ID: j.next.Add(1)}}, nil
}

func (j *countingJobs) InsertManyTx(_ context.Context, _ *sql.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	out := make([]*rivertype.JobInsertResult, len(params))
	for i := range params {
		out[i] = &rivertype.JobInsertResult{Job: &rivertype.JobRow{ID: j.next.Add(1)}}
	}
	return out, nil
}

// One group commit stores new deliveries and records the outcomes of
// earlier ones (on PostgreSQL in the same statement as the INSERT), several
// distinct outcomes at once.
func TestCommitStoresAndRecordsTogether(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		jobs := &countingJobs{}
		events := NewEvents(db)
		c := newCommitter(db, events, func() JobInserter { return jobs }, CommitConfig{}, 1, nil)
		defer c.close()
		now := time.Now().UTC().Truncate(time.Microsecond)
		delivery := func(key string) *pending {
			return &pending{d: &Delivery{ID: newID(), Provider: ProviderJira, ExternalID: key, EventType: "jira:issue_updated",
				Status: StatusReceived, Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{}`), ReceivedAt: now},
				res: make(chan commitResult, 1)}
		}
		first := []*pending{delivery("a"), delivery("b"), delivery("c")}
		c.commit(first)
		for _, p := range first {
			if r := <-p.res; r.err != nil || r.dup {
				t.Fatalf("first commit: %+v", r)
			}
		}
		fin := &pending{fin: &finishReq{now: now, rows: []finishRow{
			{id: first[0].d.ID, status: StatusProcessed, bookingID: "bk-1", note: "booking cancelled"},
			{id: first[1].d.ID, status: StatusProcessed, note: "no booking for the issue"},
			{id: first[2].d.ID, status: StatusFailed, lastErr: "booking busy"},
		}}, res: make(chan commitResult, 1)}
		next, dup := delivery("d"), delivery("a")
		c.commit([]*pending{next, fin, dup})
		if r := <-fin.res; r.err != nil {
			t.Fatalf("outcomes: %v", r.err)
		}
		if r := <-next.res; r.err != nil || r.dup {
			t.Fatalf("new delivery: %+v", r)
		}
		if r := <-dup.res; r.err != nil || !r.dup || r.id != first[0].d.ID {
			t.Fatalf("duplicate: %+v", r)
		}
		want := map[string]Delivery{
			first[0].d.ID: {Status: StatusProcessed, BookingID: "bk-1", Note: "booking cancelled", Attempts: 1},
			first[1].d.ID: {Status: StatusProcessed, Note: "no booking for the issue", Attempts: 1},
			first[2].d.ID: {Status: StatusFailed, LastError: "booking busy", Attempts: 1},
			next.d.ID:     {Status: StatusReceived},
		}
		for id, w := range want {
			got, err := events.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != w.Status || got.BookingID != w.BookingID || got.Note != w.Note || got.LastError != w.LastError || got.Attempts != w.Attempts {
				t.Errorf("%s: got %s/%q/%q/%q/%d, want %s/%q/%q/%q/%d", id, got.Status, got.BookingID, got.Note, got.LastError, got.Attempts,
					w.Status, w.BookingID, w.Note, w.LastError, w.Attempts)
			}
			if w.Status != StatusReceived && !got.ProcessedAt.Equal(now) {
				t.Errorf("%s: processed at %v, want %v", id, got.ProcessedAt, now)
			}
		}
	})
}

// An outcome recorded twice in one commit (one statement on PostgreSQL,
// which may not upsert a row twice) is recorded once: the last one.
func TestFinishStmtKeepsLastOutcomePerDelivery(t *testing.T) {
	t.Parallel()
	_, args := finishStmt([]finishRow{
		{id: "a", status: StatusFailed, lastErr: "busy"},
		{id: "b", status: StatusProcessed},
		{id: "a", status: StatusProcessed, note: "done"},
	}, time.Now())
	ids, statuses, notes := args[1].([]string), args[2].([]string), args[4].([]string)
	if !slices.Equal(ids, []string{"a", "b"}) || !slices.Equal(statuses, []string{StatusProcessed, StatusProcessed}) || notes[0] != "done" {
		t.Fatalf("ids %v, statuses %v, notes %v", ids, statuses, notes)
	}
}

// On PostgreSQL new deliveries are stored with COPY, which fails on a
// delivery stored already: by another transaction meanwhile (here it holds
// the row uncommitted while the COPY runs, then commits), or long before (a
// provider's retry). The batch is then committed again as a whole (one
// transaction, not each delivery alone) without COPY, and nothing is lost
// or stored twice.
func TestCopyConflictCommitsAgain(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	jobs := &countingJobs{}
	events := NewEvents(db)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	c := newCommitter(db, events, func() JobInserter { return jobs }, CommitConfig{}, 1, m)
	defer c.close()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	delivery := func(key string) *Delivery {
		return &Delivery{ID: newID(), Provider: ProviderJira, ExternalID: key, EventType: "jira:issue_updated",
			Status: StatusReceived, Headers: map[string]string{}, Body: []byte(`{}`), ReceivedAt: now}
	}
	other := delivery("raced")
	blocker, err := db.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.ExecContext(ctx, db.Rebind(insertColumns+`(?, ?, ?, ?, ?, ?, ?, ?)`), insertArgs(other)...); err != nil {
		t.Fatal(err)
	}
	raced, fresh := &pending{d: delivery("raced"), res: make(chan commitResult, 1)}, &pending{d: delivery("fresh"), res: make(chan commitResult, 1)}
	done := make(chan struct{})
	go func() { defer close(done); c.commit([]*pending{raced, fresh}) }()
	// The COPY waits for the blocker's row; once it commits, the COPY fails.
	deadline := time.Now().Add(5 * time.Second)
	for waiting := false; !waiting; {
		if time.Now().After(deadline) {
			t.Fatal("the commit never waited for the blocking transaction")
		}
		_ = db.DB().QueryRowContext(ctx, `SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'copy%'`).Scan(&waiting)
		time.Sleep(10 * time.Millisecond)
	}
	if err := blocker.Commit(); err != nil {
		t.Fatal(err)
	}
	<-done
	if r := <-raced.res; r.err != nil || !r.dup || r.id != other.ID {
		t.Fatalf("raced delivery: %+v, want a duplicate of %s", r, other.ID)
	}
	if r := <-fresh.res; r.err != nil || r.dup || r.id != fresh.d.ID {
		t.Fatalf("fresh delivery: %+v", r)
	}
	var n int
	if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d deliveries stored (%v), want 2", n, err)
	}
	if _, err := events.Get(ctx, fresh.d.ID); err != nil {
		t.Fatalf("fresh delivery not stored: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "gateway_webhook_commit_batch_size" {
			h := mf.GetMetric()[0].GetHistogram()
			count, sum = h.GetSampleCount(), h.GetSampleSum()
		}
	}
	if count != 1 || sum != 2 {
		t.Fatalf("%d commits of %v deliveries, want the batch of 2 committed once more", count, sum)
	}

	// A retry of a delivery stored long ago, with a new one.
	if c.copyAfter.Load() <= time.Now().UnixNano() {
		t.Fatal("COPY not paused after a conflict")
	}
	c.copyAfter.Store(0)
	retry, next := &pending{d: delivery("fresh"), res: make(chan commitResult, 1)}, &pending{d: delivery("next"), res: make(chan commitResult, 1)}
	c.commit([]*pending{retry, next})
	if r := <-retry.res; r.err != nil || !r.dup || r.id != fresh.d.ID {
		t.Fatalf("retried delivery: %+v, want a duplicate of %s", r, fresh.d.ID)
	}
	if r := <-next.res; r.err != nil || r.dup {
		t.Fatalf("next delivery: %+v", r)
	}
	if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d deliveries stored (%v), want 3", n, err)
	}
}

// An intake request's pending counts as arriving until it submits (or
// the request ends), and is recycled when its request ends unless the
// committer may still answer it: a request that stopped waiting (its
// sender hung up) leaves its pending to the committer.
func TestPendingRecycledOnlyWhenAnswered(t *testing.T) {
	t.Parallel()
	c := &committer{reqs: make(chan *pending, 4), quit: make(chan struct{}), done: make(chan struct{})}
	d := &Delivery{ID: "d-1"}

	p := c.enter()
	if n := c.arriving.Load(); n != 1 {
		t.Fatalf("arriving %d after enter, want 1", n)
	}
	p.leave()
	p.leave()
	if n := c.arriving.Load(); n != 0 {
		t.Fatalf("arriving %d after leave twice, want 0", n)
	}
	p.done()

	// Answered: the result is received, and done recycles the pending
	// (which this test must not touch after that: a parallel test may have
	// it by then).
	p = c.enter()
	go func() {
		q := <-c.reqs
		q.res <- commitResult{id: q.d.ID}
	}()
	if r := c.submit(t.Context(), p, d, nil); r.err != nil || r.id != "d-1" {
		t.Fatalf("submit = %+v", r)
	}
	if c.arriving.Load() != 0 || p.inFlight {
		t.Fatalf("arriving %d, in flight %v after the answer", c.arriving.Load(), p.inFlight)
	}
	p.done()

	// Queued, then the sender hangs up: the committer still holds p.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p = c.enter()
	if r := c.submit(ctx, p, d, nil); r.err == nil {
		t.Fatal("submit with a cancelled context succeeded")
	}
	p.done()
	if p.d != d || !p.inFlight {
		t.Fatalf("pending still queued was recycled: %+v", p)
	}
	if q := <-c.reqs; q != p {
		t.Fatal("queued pending lost")
	}
	p.res <- commitResult{id: d.ID} // the committer answers nobody; p is garbage

	// Not queued at all (closing): recyclable.
	close(c.quit)
	full := &committer{reqs: make(chan *pending), quit: c.quit, done: make(chan struct{})}
	p = full.enter()
	if r := full.submit(t.Context(), p, d, nil); r.err != ErrClosed || p.inFlight {
		t.Fatalf("submit while closing = %+v, in flight %v; want ErrClosed, not in flight", r, p.inFlight)
	}
	p.done()
}

// failingDeletes is countingJobs whose DeleteTx fails.
type failingDeletes struct{ countingJobs }

func (*failingDeletes) DeleteTx(context.Context, *sql.Tx, ...int64) error {
	return errors.New("delete failed")
}

func (*failingDeletes) RetryTx(context.Context, *sql.Tx, int64) error { return nil }

// The processed hand-off jobs a commit deletes on the side do not fail it:
// when their deletion fails, a lone delivery is still stored and a lone
// outcome still recorded (else the delivery was answered 500, and the
// outcome's job ran again after the grace, processing its deliveries a
// second time), and the jobs are deleted with a later commit.
func TestFailedJobDeletesFailNothingElse(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		jobs := &failingDeletes{}
		events := NewEvents(db)
		c := newCommitter(db, events, func() JobInserter { return jobs }, CommitConfig{}, 1, nil)
		defer c.close()
		now := time.Now().UTC().Truncate(time.Microsecond)
		p := &pending{d: &Delivery{ID: newID(), Provider: ProviderJira, ExternalID: "lone", EventType: "jira:issue_updated",
			Status: StatusReceived, Body: []byte(`{}`), ReceivedAt: now}, res: make(chan commitResult, 1)}
		c.commitDeleting([]*pending{p}, []int64{41, 42})
		if r := <-p.res; r.err != nil {
			t.Fatalf("delivery committed with failing job deletes: %v", r.err)
		}
		fin := &pending{fin: &finishReq{now: now, rows: []finishRow{{id: p.d.ID, status: StatusProcessed}}}, res: make(chan commitResult, 1)}
		c.commitDeleting([]*pending{fin}, c.takeDeletes(true))
		if r := <-fin.res; r.err != nil {
			t.Fatalf("outcome committed with failing job deletes: %v", r.err)
		}
		if d, err := events.Get(t.Context(), p.d.ID); err != nil || d.Status != StatusProcessed {
			t.Fatalf("delivery %+v, %v; want it processed", d, err)
		}
		if ids := c.takeDeletes(true); !slices.Equal(ids, []int64{41, 42}) {
			t.Fatalf("jobs to delete later %v, want 41 and 42", ids)
		}
	})
}
