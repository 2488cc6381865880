package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// backlogStates are the job states whose counts say whether the workers
// keep up: waiting to run (available), running, waiting to retry after a
// failure (retryable) and waiting for their time (scheduled).
var backlogStates = []string{"available", "running", "retryable", "scheduled"}

// backlogTimeout bounds the query of one scrape: on SQLite it waits for
// the one connection, which a long group commit may hold.
const backlogTimeout = 2 * time.Second

// jobBacklog is a Prometheus collector of the jobs waiting in River's
// table, by state, read at scrape time (gateway_jobs{state=...}). A scrape
// whose query fails or times out reports gateway_jobs_scrape_error 1 and
// no counts, rather than zeros that would look like an empty queue.
type jobBacklog struct {
	db     *sql.DB
	jobs   *prometheus.Desc
	failed *prometheus.Desc
}

func newJobBacklog(db *sql.DB) *jobBacklog {
	return &jobBacklog{db: db,
		jobs: prometheus.NewDesc("gateway_jobs", "Jobs in River's table by state (available, running, retryable, scheduled), read at scrape time.",
			[]string{"state"}, nil),
		failed: prometheus.NewDesc("gateway_jobs_scrape_error", "1 when the job counts could not be read at this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (b *jobBacklog) Describe(ch chan<- *prometheus.Desc) { ch <- b.jobs; ch <- b.failed }

// Collect implements prometheus.Collector.
func (b *jobBacklog) Collect(ch chan<- prometheus.Metric) {
	counts, err := b.read()
	failed := 0.0
	if err != nil {
		failed = 1
	} else {
		for _, st := range backlogStates {
			ch <- prometheus.MustNewConstMetric(b.jobs, prometheus.GaugeValue, float64(counts[st]), st)
		}
	}
	ch <- prometheus.MustNewConstMetric(b.failed, prometheus.GaugeValue, failed)
}

func (b *jobBacklog) read() (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	// River's state index makes this a range scan of the four states, not
	// a scan of the completed jobs kept for a day.
	rows, err := b.db.QueryContext(ctx, `SELECT state, count(*) FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled') GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[string]int64, len(backlogStates))
	for rows.Next() {
		var (
			st string
			n  int64
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[st] = n
	}
	return counts, rows.Err()
}

// RegisterMetrics registers the database's metrics with reg: database/sql's
// connection pool (go_sql_*{db_name="gateway"}: open, in use and idle
// connections, waits for one and their time) and the jobs waiting in
// River's table (gateway_jobs{state}). Call it once per registry, after
// the migrations ran.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewDBStatsCollector(s.db, "gateway"), newJobBacklog(s.db))
}
