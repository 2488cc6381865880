package webhooks

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// BenchmarkGroupCommit measures the committer's steady state on each
// database, per delivery: every commit stores batch new ≈1 KiB Zoom
// deliveries with their hand-off job, records the outcomes of the previous
// commit's deliveries and settles their job (deleted in groups, as in
// intake). HTTP, verification and processing are not included; cpu-ns/op is
// the process's CPU time per delivery.
//
//	go test ./webhooks -run '^$' -bench GroupCommit -benchtime 20000x
func BenchmarkGroupCommit(b *testing.B) {
	dbs := []struct {
		name string
		open func(testing.TB) *store.Store
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}}
	for _, db := range dbs {
		for _, batch := range []int{8, 32} {
			b.Run(fmt.Sprintf("%s/batch=%d", db.name, batch), func(b *testing.B) {
				benchGroupCommit(b, db.open(b), batch)
			})
		}
	}
}

func benchGroupCommit(b *testing.B, db *store.Store, batch int) {
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[ProcessArgs]) error { return nil }))
	jobs, err := store.NewJobs(db, store.JobsConfig{Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	events := NewEvents(db)
	c := newCommitter(db, events, func() JobInserter { return jobs }, CommitConfig{}, 1, nil)
	c.handoff = &handoff{grace: DefaultHandoffGrace, queue: make(chan handoffBatch, handoffLimit), quit: make(chan struct{})}
	defer c.close()
	headers := map[string]string{"Content-Type": "application/json", "X-Zm-Request-Timestamp": "1764806400",
		"X-Zm-Signature": "v0=" + strings.Repeat("ab", 32)}
	var prev handoffBatch
	cpu0 := processCPU()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		ps := make([]*pending, 0, batch+1)
		for range batch {
			body := []byte(rand.Text() + strings.Repeat("x", 1024-26)) // rand.Text: 26 random characters
			ps = append(ps, &pending{d: &Delivery{ID: newID(), Provider: ProviderZoom, ExternalID: zoomKey(time.Now().UnixMilli(), body),
				EventType: "meeting.started", Status: StatusReceived, Headers: headers, Body: body, ReceivedAt: time.Now()},
				res: make(chan commitResult, 1)})
		}
		if prev.jobID != 0 {
			rows := make([]finishRow, len(prev.ds))
			for i, d := range prev.ds {
				rows[i] = finishRow{id: d.ID, status: StatusProcessed, note: "no booking for the meeting"}
			}
			ps = append(ps, &pending{fin: &finishReq{rows: rows, now: time.Now(), jobID: prev.jobID}, res: make(chan commitResult, 1)})
		}
		c.commit(ps)
		for _, p := range ps {
			if r := <-p.res; r.err != nil {
				b.Fatal(r.err)
			}
		}
		prev = <-c.handoff.queue
		c.handoff.release(len(prev.ds))
	}
	b.StopTimer()
	// Wall time includes waiting for the disk (and on PostgreSQL for the
	// server); CPU time is what the gateway process spent, per delivery.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
