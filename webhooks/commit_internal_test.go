package webhooks

import (
	"context"
	"database/sql"
	"slices"
	"sync/atomic"
	"testing"
	"time"

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
