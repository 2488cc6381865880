package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// gauges gathers reg and returns each gauge of family name by the value of
// its label (label "" for a family without labels); families is every
// family name gathered.
func gauges(t *testing.T, reg *prometheus.Registry, name, label string) (values map[string]float64, families map[string]bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values, families = map[string]float64{}, map[string]bool{}
	for _, mf := range mfs {
		families[mf.GetName()] = true
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			values[key] = m.GetGauge().GetValue()
		}
	}
	return values, families
}

// RegisterMetrics exposes the jobs waiting in River's table by state and
// the connection pool's statistics, on both databases; a scrape that
// cannot read the table says so instead of reporting an empty queue.
func TestRegisterMetrics(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		workers := river.NewWorkers()
		river.AddWorker(workers, newCountWorker(0))
		jobs, err := store.NewJobs(s, store.JobsConfig{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := jobs.Insert(ctx, countArgs{ID: i}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := jobs.Insert(ctx, countArgs{ID: 9}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		s.RegisterMetrics(reg)
		got, families := gauges(t, reg, "gateway_jobs", "state")
		want := map[string]float64{"available": 3, "running": 0, "retryable": 0, "scheduled": 1}
		if len(got) != len(want) {
			t.Fatalf("gateway_jobs = %v, want %v", got, want)
		}
		for st, n := range want {
			if got[st] != n {
				t.Fatalf("gateway_jobs = %v, want %v", got, want)
			}
		}
		if failed, _ := gauges(t, reg, "gateway_jobs_scrape_error", ""); failed[""] != 0 {
			t.Fatalf("gateway_jobs_scrape_error = %v, want 0", failed[""])
		}
		if !families["go_sql_open_connections"] || !families["go_sql_wait_count_total"] {
			t.Fatalf("no connection pool metrics in %v", families)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		t.Parallel()
		s := storetest.SQLite(t)
		reg := prometheus.NewRegistry()
		s.RegisterMetrics(reg)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got, _ := gauges(t, reg, "gateway_jobs", "state")
		failed, _ := gauges(t, reg, "gateway_jobs_scrape_error", "")
		if len(got) != 0 || failed[""] != 1 {
			t.Fatalf("closed database: gateway_jobs %v, scrape error %v; want no counts and 1", got, failed[""])
		}
	})
}

// value gathers reg and returns the value of the gauge or counter name
// (its only series), and whether it was there.
func value(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// On PostgreSQL the connections are pgxpool's (River's workers take them
// from the pool directly, database/sql through it): the go_sql_* pool
// metrics count the pool's size, the connections taken from it and the
// requests that waited for one, the metrics to alert on when the pool is
// exhausted.
func TestPostgresPoolMetricsSeeWaits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := store.Open(ctx, store.Config{URL: storetest.PostgresURL(t), MaxConns: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg := prometheus.NewRegistry()
	s.RegisterMetrics(reg)
	if n, _ := value(t, reg, "go_sql_max_open_connections"); n != 2 {
		t.Errorf("go_sql_max_open_connections = %v, want the pool's size 2", n)
	}

	// A connection held as a River worker holds one.
	held, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if n, _ := value(t, reg, "go_sql_in_use_connections"); n < 1 {
		t.Errorf("go_sql_in_use_connections = %v with a connection taken from the pool, want at least 1", n)
	}
	waits, _ := value(t, reg, "go_sql_wait_count_total")

	// The pool exhausted: a request waits for a connection until it gives up.
	other, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	var one int
	err = s.DB().QueryRowContext(qctx, "SELECT 1").Scan(&one)
	cancel()
	other.Release()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("query on an exhausted pool = %v, want it to wait until its deadline", err)
	}
	if n, _ := value(t, reg, "go_sql_wait_count_total"); n < waits+1 {
		t.Errorf("go_sql_wait_count_total = %v after a request waited for a connection, want at least %v", n, waits+1)
	}
}
