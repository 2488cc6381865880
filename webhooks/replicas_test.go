package webhooks_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// renewCounter is a Channels that counts the renewal runs, by replica.
type renewCounter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *renewCounter) replica(name string) webhooks.Channels { return renewReplica{c, name} }

func (c *renewCounter) total() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	out := map[string]int{}
	for k, v := range c.runs {
		n += v
		out[k] = v
	}
	return n, out
}

type renewReplica struct {
	c    *renewCounter
	name string
}

func (r renewReplica) VerifyChannel(context.Context, string, string, string) (webhooks.Channel, error) {
	return webhooks.Channel{}, webhooks.ErrUnknownChannel
}

func (r renewReplica) LookupChannel(context.Context, string) (webhooks.Channel, error) {
	return webhooks.Channel{}, webhooks.ErrUnknownChannel
}

func (r renewReplica) RenewExpiring(context.Context, time.Time) ([]webhooks.Channel, error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.c.runs == nil {
		r.c.runs = map[string]int{}
	}
	r.c.runs[r.name]++
	return nil, nil
}

// TestChannelRenewalOnOneReplica: three replicas on one PostgreSQL
// database, each with the periodic jobs it registers as cmd/gateway does
// (River's PeriodicJobs): the channel renewal, due at start, runs once in
// all, on the elected leader, not once per replica.
func TestChannelRenewalOnOneReplica(t *testing.T) {
	t.Parallel()
	u := storetest.PostgresURL(t)
	counter := &renewCounter{}
	for i := range 3 {
		name := fmt.Sprintf("replica-%d", i)
		db, err := store.Open(context.Background(), store.Config{URL: u, MaxConns: 4}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(context.Background()); err != nil { // as every replica does at start
			t.Fatal(err)
		}
		var jobs *store.Jobs
		svc, err := webhooks.New(webhooks.Config{DB: db,
			Jobs: func() webhooks.JobInserter {
				if jobs == nil {
					return nil
				}
				return jobs
			},
			Secrets:  func(context.Context) (webhooks.Secrets, error) { return webhooks.Secrets{}, nil },
			Channels: counter.replica(name), ChannelRenewInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, svc.ProcessWorker())
		river.AddWorker(workers, svc.RenewWorker())
		jobs, err = store.NewJobs(db, store.JobsConfig{Workers: workers, Work: true, MaxWorkers: 4, ID: name,
			PeriodicJobs: svc.PeriodicJobs(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := jobs.Start(context.WithoutCancel(t.Context())); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = jobs.Stop(ctx)
			svc.Close()
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := counter.total(); n == 0; n, _ = counter.total() {
		if time.Now().After(deadline) {
			t.Fatal("no replica renewed the channels within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Give another replica's run time to show itself.
	time.Sleep(3 * time.Second)
	if n, by := counter.total(); n != 1 {
		t.Fatalf("%d renewal runs %v, want 1 across the replicas", n, by)
	}
}
