package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// RegisterMetrics registers the database's metrics with reg: the
// connection pool (go_sql_*{db_name="gateway"}: open, in use and idle
// connections, waits for one and their time) and the jobs waiting in
// River's table (gateway_jobs{state}). Call it once per registry, after
// the migrations ran.
//
// On SQLite the pool is database/sql's. On PostgreSQL it is pgxpool's:
// database/sql only borrows its connections (it has no limit of its own,
// so it never waits), and River's workers take theirs from pgxpool
// directly; the same metrics are read from pgxpool there, or an exhausted
// pool would show no waits and no connections in use.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	var pool prometheus.Collector = collectors.NewDBStatsCollector(s.db, "gateway")
	if s.pool != nil {
		pool = newPoolStats(s.pool, "gateway")
	}
	reg.MustRegister(pool, newJobBacklog(s.db))
}

// poolStats is a Prometheus collector of a pgxpool's statistics under the
// names of database/sql's (collectors.NewDBStatsCollector), so dashboards
// and alerts read both databases alike.
type poolStats struct {
	pool                                                                  *pgxpool.Pool
	maxOpen, open, inUse, idle, waits, waited, idleClosed, idleTimeClosed *prometheus.Desc
	lifetimeClosed                                                        *prometheus.Desc
}

func newPoolStats(pool *pgxpool.Pool, dbName string) *poolStats {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("go_sql_"+name, help, nil, prometheus.Labels{"db_name": dbName})
	}
	return &poolStats{pool: pool,
		maxOpen:        desc("max_open_connections", "Maximum number of open connections to the database."),
		open:           desc("open_connections", "The number of established connections both in use and idle."),
		inUse:          desc("in_use_connections", "The number of connections currently in use."),
		idle:           desc("idle_connections", "The number of idle connections."),
		waits:          desc("wait_count_total", "The total number of connections waited for."),
		waited:         desc("wait_duration_seconds_total", "The total time blocked waiting for a new connection."),
		idleClosed:     desc("max_idle_closed_total", "The total number of connections closed due to SetMaxIdleConns."),
		idleTimeClosed: desc("max_idle_time_closed_total", "The total number of connections closed due to SetConnMaxIdleTime."),
		lifetimeClosed: desc("max_lifetime_closed_total", "The total number of connections closed due to SetConnMaxLifetime."),
	}
}

// Describe implements prometheus.Collector.
func (p *poolStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.maxOpen, p.open, p.inUse, p.idle, p.waits, p.waited, p.idleClosed, p.idleTimeClosed, p.lifetimeClosed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *poolStats) Collect(ch chan<- prometheus.Metric) {
	st := p.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(p.maxOpen, float64(st.MaxConns()))
	gauge(p.open, float64(st.TotalConns()))
	gauge(p.inUse, float64(st.AcquiredConns()))
	gauge(p.idle, float64(st.IdleConns()))
	// A wait is an acquire that found no idle connection (it waited for
	// one to be given back or made), or that gave up waiting (its context
	// ended): database/sql counts those too.
	counter(p.waits, float64(st.EmptyAcquireCount()+st.CanceledAcquireCount()))
	counter(p.waited, st.EmptyAcquireWaitTime().Seconds())
	counter(p.idleClosed, 0) // pgxpool keeps every idle connection up to MaxConnIdleTime
	counter(p.idleTimeClosed, float64(st.MaxIdleDestroyCount()))
	counter(p.lifetimeClosed, float64(st.MaxLifetimeDestroyCount()))
}
