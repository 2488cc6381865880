package store_test

import (
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
