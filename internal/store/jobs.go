package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
)

// JobsConfig configures the durable job runner.
type JobsConfig struct {
	// Workers holds every job kind this process can work. Required.
	Workers *river.Workers
	// Work starts workers on the default queue; false gives an insert-only
	// runner (for CLI commands).
	Work bool
	// MaxWorkers is the number of concurrent jobs on the default queue (default 50).
	MaxWorkers int
	// FetchCooldown is the least time between two fetches of jobs (default
	// 10ms; River's 100ms capped the jobs started to 50 per fetch, 500/s,
	// which held webhook processing below intake). FetchPollInterval is how
	// often idle workers look for jobs nobody told them about (default 50ms
	// on SQLite, which has no LISTEN/NOTIFY: a job inserted inside a
	// transaction would otherwise wait up to River's 1s; 1s on PostgreSQL).
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// JobTimeout cancels a job's context after this long (River's default 1m when zero).
	JobTimeout time.Duration
	// RescueStuckJobsAfter makes a job still marked running after this long
	// (its process died) available again (River's default 1h when zero).
	RescueStuckJobsAfter time.Duration
	// PeriodicJobs run on the elected leader only, so once across replicas.
	PeriodicJobs []*river.PeriodicJob
	// ID names this client (unique per process); empty lets River choose.
	ID string
	// Logger receives River's logs.
	Logger *slog.Logger
	// Registerer receives the job outcome metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Jobs runs River on the gateway database. Inserts go through
// database/sql on both databases, so a job can be enqueued inside the same
// *sql.Tx as the application rows it belongs to (InsertTx): committed →
// the job runs; rolled back → no job.
//
// On SQLite one River client (riversqlite) does everything. On PostgreSQL
// the workers run on River's native pgx driver (riverpgxv5: LISTEN/NOTIFY,
// leader election across replicas) and transactional inserts go through
// River's database/sql driver on the same pool, or, where the caller holds
// the transaction's pgx connection (InsertManyPgx), through the native
// driver on that connection.
type Jobs struct {
	insert *river.Client[*sql.Tx]
	// pgxInsert (PostgreSQL) inserts through River's native driver on the
	// connection of an open transaction (InsertManyPgx).
	pgxInsert *river.Client[pgx.Tx]
	work      runner
	metrics   *jobMetrics
}

// runner is the part of a river.Client that Jobs starts and stops.
type runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// NewJobs builds the job runner on s.
func NewJobs(s *Store, cfg JobsConfig) (*Jobs, error) {
	if cfg.Workers == nil {
		return nil, errors.New("store: jobs: Workers is required")
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = s.logger
	}
	if cfg.FetchCooldown <= 0 {
		cfg.FetchCooldown = 10 * time.Millisecond
	}
	if cfg.FetchPollInterval <= 0 && s.dialect == SQLite {
		cfg.FetchPollInterval = 50 * time.Millisecond
	}
	m := newJobMetrics(cfg.Registerer)
	rc := &river.Config{
		ID:                   cfg.ID,
		Workers:              cfg.Workers,
		Logger:               cfg.Logger,
		FetchCooldown:        cfg.FetchCooldown,
		FetchPollInterval:    cfg.FetchPollInterval,
		PeriodicJobs:         cfg.PeriodicJobs,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		Middleware:           []rivertype.Middleware{m},
	}
	if cfg.Work {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}}
	}
	j := &Jobs{metrics: m}
	switch s.dialect {
	case Postgres:
		insertCfg := *rc
		insertCfg.Queues, insertCfg.PeriodicJobs = nil, nil
		ins, err := river.NewClient(riverdatabasesql.New(s.db), &insertCfg)
		if err != nil {
			return nil, fmt.Errorf("store: river insert client: %w", err)
		}
		j.insert = ins
		if j.pgxInsert, err = river.NewClient(riverpgxv5.New(s.pool), &insertCfg); err != nil {
			return nil, fmt.Errorf("store: river pgx insert client: %w", err)
		}
		if cfg.Work {
			w, err := river.NewClient[pgx.Tx](riverpgxv5.New(s.pool), rc)
			if err != nil {
				return nil, fmt.Errorf("store: river client: %w", err)
			}
			j.work = w
		}
	default:
		c, err := river.NewClient(riversqlite.New(s.db), rc)
		if err != nil {
			return nil, fmt.Errorf("store: river client: %w", err)
		}
		j.insert = c
		if cfg.Work {
			j.work = c
		}
	}
	return j, nil
}

// Start starts the workers (no-op for an insert-only runner).
func (j *Jobs) Start(ctx context.Context) error {
	if j.work == nil {
		return nil
	}
	return j.work.Start(ctx)
}

// HardStop is how long Stop waits, once its ctx is done, for the jobs it
// then cancels to return.
const HardStop = 5 * time.Second

// Stop stops fetching new jobs and waits for running ones until ctx is done;
// then it cancels what still runs (those jobs are retried later, by this or
// another replica) and waits for them at most HardStop more.
func (j *Jobs) Stop(ctx context.Context) error {
	if j.work == nil {
		return nil
	}
	err := j.work.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), HardStop)
		defer cancel()
		return errors.Join(err, j.work.StopAndCancel(hard))
	}
	return err
}

// InsertTx enqueues a job inside tx: it runs only if tx commits.
func (j *Jobs) InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return j.insert.InsertTx(ctx, tx, args, opts)
}

// InsertManyTx enqueues several jobs inside tx in one batch.
func (j *Jobs) InsertManyTx(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return j.insert.InsertManyTx(ctx, tx, params)
}

// InsertManyPgx is InsertManyTx inside the transaction px belongs to (see
// Store.InTxPgx). On PostgreSQL it goes through River's native pgx driver,
// whose arrays pgx encodes directly: through database/sql every array went
// through a driver.Valuer and back, ≈ 6 % of the gateway's CPU at webhook
// intake's ceiling. px nil (SQLite): InsertManyTx on tx.
func (j *Jobs) InsertManyPgx(ctx context.Context, tx *sql.Tx, px PgxFunc, params []river.InsertManyParams) (res []*rivertype.JobInsertResult, err error) {
	if px == nil || j.pgxInsert == nil {
		return j.InsertManyTx(ctx, tx, params)
	}
	err = px(func(c *pgx.Conn) error {
		res, err = j.pgxInsert.InsertManyTx(ctx, connTx{c}, params)
		return err
	})
	return res, err
}

// errConnTx: River asked connTx for what only the transaction's owner may do.
var errConnTx = errors.New("store: the transaction belongs to database/sql: it cannot be committed, rolled back or nested here")

// connTx is the transaction open on c, as the pgx.Tx River's native driver
// takes: its statements run on c, inside the transaction; committing,
// rolling back and nesting are left to the transaction's owner (errConnTx),
// and it has no large objects.
type connTx struct{ c *pgx.Conn }

// The methods of pgx.Tx: statements go to c; the rest is refused.

func (t connTx) Begin(context.Context) (pgx.Tx, error) { return nil, errConnTx }
func (t connTx) Commit(context.Context) error          { return errConnTx }
func (t connTx) Rollback(context.Context) error        { return errConnTx }
func (t connTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.c.CopyFrom(ctx, table, columns, src)
}
func (t connTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.c.SendBatch(ctx, b)
}
func (t connTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (t connTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.c.Prepare(ctx, name, sql)
}
func (t connTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.c.Exec(ctx, sql, args...)
}
func (t connTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.c.Query(ctx, sql, args...)
}
func (t connTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.c.QueryRow(ctx, sql, args...)
}
func (t connTx) Conn() *pgx.Conn { return t.c }

// Insert enqueues a job in its own transaction. On SQLite never call it while
// holding a transaction: the single connection would wait for itself.
func (j *Jobs) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return j.insert.Insert(ctx, args, opts)
}

// jobMetrics is River worker middleware that counts job outcomes by kind
// and observes their duration.
type jobMetrics struct {
	river.MiddlewareDefaults
	outcomes *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newJobMetrics(reg prometheus.Registerer) *jobMetrics {
	m := &jobMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_jobs_total",
			Help: "Jobs worked, by kind and outcome (ok, error, cancelled, snoozed).",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_job_duration_seconds",
			Help:    "Time spent working a job, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.duration)
	}
	return m
}

// Work implements rivertype.WorkerMiddleware.
func (m *jobMetrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	m.duration.WithLabelValues(job.Kind).Observe(time.Since(start).Seconds())
	outcome := "ok"
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	switch {
	case err == nil:
	case errors.As(err, &snooze):
		outcome = "snoozed"
	case errors.As(err, &cancel):
		outcome = "cancelled"
	default:
		outcome = "error"
	}
	m.outcomes.WithLabelValues(job.Kind, outcome).Inc()
	return err
}

var _ rivertype.WorkerMiddleware = (*jobMetrics)(nil)

// DeleteTx deletes the jobs with ids inside tx (gone for good only if tx
// commits), in one statement. Jobs already gone or running now are left
// alone.
func (j *Jobs) DeleteTx(ctx context.Context, tx *sql.Tx, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := j.insert.JobDeleteManyTx(ctx, tx, river.NewJobDeleteManyParams().IDs(ids...).First(len(ids)))
	return err
}

// RetryTx makes the job with id available to run now, inside tx (a job
// scheduled for later, or waiting for a retry, moves up). A job running
// now, or already gone, is left alone: not an error.
func (j *Jobs) RetryTx(ctx context.Context, tx *sql.Tx, id int64) error {
	_, err := j.insert.JobRetryTx(ctx, tx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil
	}
	return err
}
