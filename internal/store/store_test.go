package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dialect store.Dialect
		in      string
		want    string
	}{
		{store.SQLite, "SELECT ? , ?", "SELECT ? , ?"},
		{store.Postgres, "SELECT ? , ?", "SELECT $1 , $2"},
		{store.Postgres, "SELECT '?' , ?", "SELECT '?' , $1"},
		{store.Postgres, "SELECT 1", "SELECT 1"},
	}
	for _, tt := range tests {
		if got := store.Rebind(tt.dialect, tt.in); got != tt.want {
			t.Errorf("Rebind(%s, %q) = %q, want %q", tt.dialect, tt.in, got, tt.want)
		}
	}
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	t.Parallel()
	_, err := store.Open(t.Context(), store.Config{URL: "mysql://u:secret@h/db"}, nil)
	if err == nil {
		t.Fatal("Open(mysql://) succeeded, want error")
	}
	if got := err.Error(); contains(got, "secret") {
		t.Errorf("error leaks the password: %q", got)
	}
}

// A committed SQLite transaction survives a power failure: the WAL is
// synced at every commit (synchronous FULL), and the file is in WAL mode.
func TestSQLiteCommitsAreDurable(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	var mode string
	var level int
	if err := db.DB().QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := db.DB().QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || level != 2 {
		t.Fatalf("journal_mode %q, synchronous %d; want wal, 2 (FULL)", mode, level)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestMigrateIsIdempotentAndChecked(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(t.Context(), store.Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "g.db")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkMigrateCycle(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(t.Context(), store.Config{URL: storetest.PostgresURL(t)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkMigrateCycle(t, s)
	})
}

func checkMigrateCycle(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.CheckMigrations(ctx); !errors.Is(err, store.ErrMigrationsPending) {
		t.Fatalf("CheckMigrations before Migrate = %v, want ErrMigrationsPending", err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	ms, _ := store.Migrations(s.Dialect())
	if len(applied) <= len(ms) {
		t.Fatalf("Migrate applied %v, want the %d gateway migrations plus River's", applied, len(ms))
	}
	if err := s.CheckMigrations(ctx); err != nil {
		t.Fatalf("CheckMigrations after Migrate: %v", err)
	}
	again, err := s.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
	}
}

func TestMigrationsMatchAcrossDialects(t *testing.T) {
	t.Parallel()
	lite, err := store.Migrations(store.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.Migrations(store.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %q, postgres %q", i, lite[i].Name, pg[i].Name)
		}
	}
}

// countArgs is a job whose worker counts how often each id was worked.
type countArgs struct {
	ID int `json:"id"`
}

func (countArgs) Kind() string { return "test_count" }

type countWorker struct {
	river.WorkerDefaults[countArgs]
	mu    sync.Mutex
	seen  map[int]int
	total int
	done  chan struct{}
	want  int
}

func (w *countWorker) Work(_ context.Context, job *river.Job[countArgs]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[job.Args.ID]++
	w.total++
	if w.total == w.want {
		close(w.done)
	}
	return nil
}

func newCountWorker(want int) *countWorker {
	return &countWorker{seen: map[int]int{}, done: make(chan struct{}), want: want}
}

func TestInsertTxFollowsTheTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.DB().ExecContext(ctx, `CREATE TABLE things (id BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		w := newCountWorker(1)
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		reg := prometheus.NewRegistry()
		jobs, err := store.NewJobs(s, store.JobsConfig{Workers: workers, Work: true, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		// Rolled back: neither the row nor the job exists.
		errBoom := errors.New("boom")
		err = s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO things (id) VALUES (?)`), 1); err != nil {
				return err
			}
			if _, err := jobs.InsertTx(ctx, tx, countArgs{ID: 1}, nil); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("InTx = %v, want boom", err)
		}
		// Committed: the row and the job exist, and the job runs.
		err = s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO things (id) VALUES (?)`), 2); err != nil {
				return err
			}
			_, err := jobs.InsertTx(ctx, tx, countArgs{ID: 2}, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM things`).Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("things rows = %d, %v; want 1", rows, err)
		}
		runQueued(t, s, jobs, w, map[int]int{2: 1})
		// The outcome metric is recorded after Work returns; poll briefly.
		deadline := time.Now().Add(10 * time.Second)
		for okJobs(t, reg) != 1 {
			if time.Now().After(deadline) {
				t.Fatal(`gateway_jobs_total{kind="test_count",outcome="ok"} never reached 1`)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// runQueued checks that the jobs of want (count args id → times) are what
// river_job holds, starts jobs and waits until w has worked exactly those
// (jobs stop at the end of the test).
func runQueued(t *testing.T, s *store.Store, jobs *store.Jobs, w *countWorker, want map[int]int) {
	t.Helper()
	ctx := t.Context()
	var queued int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM river_job`).Scan(&queued); err != nil || queued != len(want) {
		t.Fatalf("river_job rows = %d, %v; want %d", queued, err, len(want))
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = jobs.Stop(context.WithoutCancel(ctx)) })
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("committed jobs did not run")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !maps.Equal(w.seen, want) {
		t.Fatalf("worked %v, want %v", w.seen, want)
	}
}

// InsertManyPgx enqueues inside the transaction of InTxPgx (River's native
// pgx driver on PostgreSQL, InsertManyTx on SQLite): rolled back, no job;
// committed, the jobs exist and run once.
func TestInsertManyPgxFollowsTheTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		w := newCountWorker(2)
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		jobs, err := store.NewJobs(s, store.JobsConfig{Workers: workers, Work: true, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		insert := func(ids ...int) func(tx *sql.Tx, px store.PgxFunc) error {
			return func(tx *sql.Tx, px store.PgxFunc) error {
				if (px == nil) != (s.Dialect() == store.SQLite) {
					return fmt.Errorf("pgx connection offered: %v on %s", px != nil, s.Dialect())
				}
				var params []river.InsertManyParams
				for _, id := range ids {
					params = append(params, river.InsertManyParams{Args: countArgs{ID: id}})
				}
				res, err := jobs.InsertManyPgx(ctx, tx, px, params)
				if err == nil && (len(res) != len(ids) || res[0].Job.ID == 0) {
					err = fmt.Errorf("inserted %d jobs, want %d with ids", len(res), len(ids))
				}
				return err
			}
		}
		errBoom := errors.New("boom")
		err = s.InTxPgx(ctx, func(tx *sql.Tx, px store.PgxFunc) error {
			if err := insert(1)(tx, px); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("rolled back: InTxPgx = %v, want boom", err)
		}
		if err := s.InTxPgx(ctx, insert(2, 3)); err != nil {
			t.Fatal(err)
		}
		runQueued(t, s, jobs, w, map[int]int{2: 1, 3: 1})
	})
}

// okJobs returns gateway_jobs_total{kind="test_count",outcome="ok"}.
func okJobs(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gateway_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == "test_count" && labels["outcome"] == "ok" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestTwoClientsShareJobsExactlyOnce runs two job runners (as two replicas
// would) on one PostgreSQL schema and checks that every job runs once.
func TestTwoClientsShareJobsExactlyOnce(t *testing.T) {
	t.Parallel()
	const n = 300
	ctx := t.Context()
	u := storetest.PostgresURL(t)
	var replicas []*store.Store
	for range 2 {
		s, err := store.Open(ctx, store.Config{URL: u}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Both replicas migrate at start, as they do in production.
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, s)
	}

	shared := newCountWorker(n)
	var perClient [2]int
	var mu sync.Mutex
	var runners []*store.Jobs
	for i, s := range replicas {
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[countArgs]) error {
			mu.Lock()
			perClient[i]++
			mu.Unlock()
			return shared.Work(ctx, job)
		}))
		j, err := store.NewJobs(s, store.JobsConfig{Workers: workers, Work: true, MaxWorkers: 10, ID: fmt.Sprintf("replica-%d", i), FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, j)
	}
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: countArgs{ID: i}}
	}
	if err := replicas[0].InTx(ctx, func(tx *sql.Tx) error {
		_, err := runners[0].InsertManyTx(ctx, tx, params)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, j := range runners {
		if err := j.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer j.Stop(context.WithoutCancel(ctx))
	}
	select {
	case <-shared.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d of %d jobs ran", shared.total, n)
	}
	// Give a duplicate run a moment to show itself before counting.
	time.Sleep(200 * time.Millisecond)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for id := range n {
		if shared.seen[id] != 1 {
			t.Errorf("job %d ran %d times, want 1", id, shared.seen[id])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if perClient[0] == 0 || perClient[1] == 0 {
		t.Logf("work split %v (one replica took everything; allowed, but unusual)", perClient)
	}
}

// InTxPgx's COPY runs inside the transaction: its rows commit with the
// transaction's other statements and roll back with them, and a duplicate
// row fails it with a unique violation. SQLite has no COPY.
func TestInTxPgxCopy(t *testing.T) {
	t.Parallel()
	cols := []string{"booking_id", "participant_id", "name", "email", "joined", "at"}
	row := func(ids ...string) *store.CopyRows {
		r := new(store.CopyRows)
		for i := 0; i < len(ids); i += 2 {
			r.Row(len(cols))
			r.Text(ids[i])
			r.Text(ids[i+1])
			r.Text("n")
			r.Text("e")
			r.Int4(1)
			r.Int8(7)
		}
		return r
	}
	count := func(t *testing.T, db *store.Store, booking string) int {
		var n int
		if err := db.DB().QueryRowContext(t.Context(), db.Rebind(`SELECT count(*) FROM webhook_attendance WHERE booking_id = ?`), booking).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := storetest.Postgres(t)
		ctx := t.Context()
		err := db.InTxPgx(ctx, func(tx *sql.Tx, px store.PgxFunc) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attendance VALUES ('b1', 'p0', 'n', 'e', 1, 7)`); err != nil {
				return err
			}
			n, err := px.Copy(ctx, "webhook_attendance", cols, row("b1", "p1", "b1", "p2"))
			if err == nil && n != 2 {
				err = fmt.Errorf("copied %d rows, want 2", n)
			}
			return err
		})
		if err != nil || count(t, db, "b1") != 3 {
			t.Fatalf("commit: %v; %d rows, want 3", err, count(t, db, "b1"))
		}
		boom := errors.New("boom")
		err = db.InTxPgx(ctx, func(tx *sql.Tx, px store.PgxFunc) error {
			if _, err := px.Copy(ctx, "webhook_attendance", cols, row("b2", "p1")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || count(t, db, "b2") != 0 {
			t.Fatalf("rollback: %v; %d rows, want 0", err, count(t, db, "b2"))
		}
		err = db.InTxPgx(ctx, func(tx *sql.Tx, px store.PgxFunc) error {
			_, err := px.Copy(ctx, "webhook_attendance", cols, row("b3", "p1", "b1", "p1"))
			return err
		})
		if !store.IsUniqueViolation(err) || count(t, db, "b3") != 0 {
			t.Fatalf("duplicate: %v; %d rows of b3, want a unique violation and 0", err, count(t, db, "b3"))
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		db := storetest.SQLite(t)
		err := db.InTxPgx(t.Context(), func(tx *sql.Tx, px store.PgxFunc) error {
			if px != nil {
				return errors.New("SQLite offered a pgx connection")
			}
			_, err := tx.ExecContext(t.Context(), `INSERT INTO webhook_attendance VALUES ('b1', 'p0', 'n', 'e', 1, 7)`)
			return err
		})
		if err != nil || count(t, db, "b1") != 1 {
			t.Fatalf("%v; %d rows, want 1", err, count(t, db, "b1"))
		}
	})
}

// ExecEach (SQLite) runs its statement inside InTxConn's transaction, once
// per row with that row's arguments: the rows commit and roll back with the
// transaction's other statements, each run reports the rows it changed, a
// value no driver takes is refused, and a context cancelled between rows
// stops the runs.
func TestExecEach(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	ctx := t.Context()
	const q = `INSERT INTO webhook_attendance VALUES (?, ?, 'n', 'e', ?, 7) ON CONFLICT DO NOTHING`
	count := func(booking string) int {
		var n int
		if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM webhook_attendance WHERE booking_id = ?`, booking).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	participants := []string{"p1", "p2", "p1", "p3"}
	var changed []int64
	err := db.InTxConn(ctx, func(tx *sql.Tx, conn store.ConnFunc) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attendance VALUES ('b1', 'p0', 'n', 'e', 1, 7)`); err != nil {
			return err
		}
		var err error
		changed, err = conn.ExecEach(ctx, q, len(participants), func(i int, dst []any) []any {
			return append(dst, "b1", participants[i], int64(1))
		})
		return err
	})
	if err != nil || !slices.Equal(changed, []int64{1, 1, 0, 1}) || count("b1") != 4 {
		t.Fatalf("commit: %v; changed %v, %d rows; want 1 1 0 1, 4 rows", err, changed, count("b1"))
	}

	boom := errors.New("boom")
	err = db.InTxConn(ctx, func(tx *sql.Tx, conn store.ConnFunc) error {
		if _, err := conn.ExecEach(ctx, q, 2, func(i int, dst []any) []any { return append(dst, "b2", participants[i], int64(1)) }); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || count("b2") != 0 {
		t.Fatalf("rollback: %v; %d rows, want 0", err, count("b2"))
	}

	err = db.InTxConn(ctx, func(tx *sql.Tx, conn store.ConnFunc) error {
		_, err := conn.ExecEach(ctx, q, 1, func(i int, dst []any) []any { return append(dst, "b3", 42, int64(1)) })
		return err
	})
	if err == nil || count("b3") != 0 {
		t.Fatalf("an int argument: %v; %d rows, want an error and 0", err, count("b3"))
	}

	cctx, cancel := context.WithCancel(ctx)
	err = db.InTxConn(ctx, func(tx *sql.Tx, conn store.ConnFunc) error {
		_, err := conn.ExecEach(cctx, q, 3, func(i int, dst []any) []any {
			if i == 1 {
				cancel()
			}
			return append(dst, "b4", participants[i], int64(1))
		})
		return err
	})
	if !errors.Is(err, context.Canceled) || count("b4") != 0 {
		t.Fatalf("cancelled: %v; %d rows, want context.Canceled and 0", err, count("b4"))
	}
}

// The pool is sized by pool_max_conns in the URL when the URL has it, by
// Config.MaxConns when set, else 20.
func TestPostgresPoolSize(t *testing.T) {
	t.Parallel()
	base := storetest.PostgresURL(t)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	for _, tt := range []struct {
		name string
		url  string
		max  int32
		want int32
	}{
		{"default", base, 0, 20},
		{"from the URL", base + sep + "pool_max_conns=3", 0, 3},
		{"from the config", base + sep + "pool_max_conns=3", 7, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(t.Context(), store.Config{URL: tt.url, MaxConns: tt.max}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Pool().Config().MaxConns; got != tt.want {
				t.Errorf("pool size = %d, want %d", got, tt.want)
			}
		})
	}
}

// A PostgreSQL connection keeps 128 prepared statements and no statement
// descriptions (unused in pgx's default cache_statement mode) instead of
// pgx's 512 each, unless the URL says otherwise.
func TestPostgresStatementCaches(t *testing.T) {
	t.Parallel()
	base := storetest.PostgresURL(t)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	for _, tt := range []struct {
		name              string
		url               string
		stmts, describeds int
	}{
		{"default", base, 128, 0},
		{"from the URL", base + sep + "statement_cache_capacity=300&description_cache_capacity=64", 300, 64},
		{"describe mode", base + sep + "default_query_exec_mode=cache_describe", 128, 512},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(t.Context(), store.Config{URL: tt.url}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cc := db.Pool().Config().ConnConfig
			if cc.StatementCacheCapacity != tt.stmts || cc.DescriptionCacheCapacity != tt.describeds {
				t.Errorf("statement cache %d, description cache %d; want %d, %d",
					cc.StatementCacheCapacity, cc.DescriptionCacheCapacity, tt.stmts, tt.describeds)
			}
			var n int
			if err := db.DB().QueryRowContext(t.Context(), "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
				t.Errorf("query = %d, %v; want 42", n, err)
			}
		})
	}
}

// A new SQLite database and its log are readable by their owner only.
func TestSQLiteFilesOwnerOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := store.Open(t.Context(), store.Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gateway.db", "gateway.db-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", name, mode)
		}
	}
}

// TestUnavailable classifies what PostgreSQL and the pool answer when the
// server cannot be reached or drops a connection (Unavailable: the HTTP API
// answers 503) apart from errors of the statement itself (500, 409, …).
func TestUnavailable(t *testing.T) {
	t.Parallel()
	s := storetest.Postgres(t)
	ctx := context.Background()

	// A connection the server terminates (a restart, a failover, an
	// administrator's pg_terminate_backend).
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, terminated := conn.ExecContext(ctx, "SELECT 1")
	if terminated == nil || !store.Unavailable(terminated) {
		t.Errorf("statement on a terminated connection: Unavailable(%v) = false, want true", terminated)
	}

	// A server that refuses connections.
	_, refused := store.Open(ctx, store.Config{URL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable"}, nil)
	if refused == nil || !store.Unavailable(refused) {
		t.Errorf("connection refused: Unavailable(%v) = false, want true", refused)
	}

	// A closed pool (shutdown).
	closed := storetest.Postgres(t)
	closed.Close()
	_, closedErr := closed.DB().ExecContext(ctx, "SELECT 1")
	if closedErr == nil || !store.Unavailable(closedErr) {
		t.Errorf("closed store: Unavailable(%v) = false, want true", closedErr)
	}

	// A connection the network resets (a failover behind a load balancer, a
	// NAT that forgot it): the next statement reads a reset or writes into
	// a broken pipe.
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var reset func()
	u.Host, reset = resettingProxy(t, u.Host)
	viaProxy, err := store.Open(ctx, store.Config{URL: u.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	pc, err := viaProxy.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// Reset while the statement runs: sent, its answer never comes.
	go func() { time.Sleep(200 * time.Millisecond); reset() }()
	var slept string
	resetErr := pc.QueryRowContext(ctx, "SELECT pg_sleep(2)::text").Scan(&slept)
	if resetErr == nil || !store.Unavailable(resetErr) {
		t.Errorf("statement on a reset connection: Unavailable(%v) = false, want true", resetErr)
	}

	// Errors of the statement are not.
	_, syntax := s.DB().ExecContext(ctx, "SELEC 1")
	for _, err := range []error{nil, syntax, context.Canceled, context.DeadlineExceeded, sql.ErrNoRows, errors.New("booking: not found")} {
		if store.Unavailable(err) {
			t.Errorf("Unavailable(%v) = true, want false", err)
		}
	}
}

// TestUnreachable tells what waiting for the database may mend (nothing
// listens yet, a name not registered yet, a server starting up or out of
// connections) from what it will not (a malformed URL, a server that
// refuses the credentials or has no such database, an SQLite file that
// cannot be opened).
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	open := func(url string) error {
		s, err := store.Open(ctx, store.Config{URL: url}, nil)
		if err == nil {
			s.Close()
		}
		return err
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nothing listens", open("postgres://gw:pw@127.0.0.1:" + closedPort(t) + "/gw?sslmode=disable"), true},
		{"unknown host", open("postgres://gw:pw@db.invalid/gw?sslmode=disable&connect_timeout=2"), true},
		{"starting up", fmt.Errorf("store: connect postgres: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"too many connections", fmt.Errorf("store: connect postgres: %w", &pgconn.PgError{Code: "53300"}), true},
		{"password refused", fmt.Errorf("store: connect postgres: %w", &pgconn.PgError{Code: "28P01"}), false},
		{"role not allowed", fmt.Errorf("store: connect postgres: %w", &pgconn.PgError{Code: "28000"}), false},
		{"no such database", fmt.Errorf("store: connect postgres: %w", &pgconn.PgError{Code: "3D000"}), false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"malformed URL", open("postgres://gw:pw@db.example/gw?sslmode=bogus"), false},
		{"SQLite file under a file", open("sqlite:" + filepath.Join(notADir, "gateway.db")), false},
		{"cancelled", context.Canceled, false},
		{"no error", nil, false},
	} {
		if tt.err == nil && tt.name != "no error" {
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		if got := store.Unreachable(tt.err); got != tt.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestUnreachableNoSuchDatabase: a PostgreSQL server that answers that the
// URL's database does not exist is reachable; waiting will not create it.
func TestUnreachableNoSuchDatabase(t *testing.T) {
	t.Parallel()
	base := os.Getenv(storetest.PostgresEnv)
	if base == "" {
		t.Skipf("%s not set", storetest.PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database_for_gateway_tests"
	_, err = store.Open(t.Context(), store.Config{URL: u.String()}, nil)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || store.Unreachable(err) {
		t.Fatalf("Open on a missing database = %v (Unreachable %v), want a reachable server's refusal", err, store.Unreachable(err))
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// TestInvalidPostgresURLSaysWhy: a malformed GATEWAY_DATABASE_URL is
// refused with pgx's reason (which setting), never with the password.
func TestInvalidPostgresURLSaysWhy(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"postgres://gw:s3cretpw@db.example/gw?sslmode=bogus":           "sslmode",
		"postgres://gw:s3cretpw@db.example/gw?pool_max_conns=many":     "pool_max_conns",
		"postgres://gw:s3cretpw@db.example/gw?connect_timeout=soonish": "connect_timeout",
	} {
		_, err := store.Open(context.Background(), store.Config{URL: url}, nil)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("Open(%s) = %v, want an error naming %s without the password", want, err, want)
		}
	}
}

// CopyRows encodes each field type as PostgreSQL reads it back: text with
// non-ASCII characters and the empty string, bytea that is not UTF-8 and
// empty, negative and large bigints, integers; Reset keeps nothing of the
// rows before it.
func TestCopyRowsRoundTrip(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := t.Context()
	if _, err := db.DB().ExecContext(ctx, `CREATE TABLE copied (t TEXT NOT NULL, b BYTEA NOT NULL, i BIGINT NOT NULL, j INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	type row struct {
		t string
		b []byte
		i int64
		j int32
	}
	want := []row{
		{`{"User-Agent":"Zoom Marketplace/1.0a ✓ \"q\""}`, []byte{0xff, 0xfe, 0, '{'}, -1, -7},
		{"", []byte{}, 1<<62 + 3, 1<<31 - 1},
	}
	var rows store.CopyRows
	rows.Row(4)
	rows.Text("dropped by Reset")
	rows.Reset()
	for _, r := range want {
		rows.Row(4)
		rows.Text(r.t)
		rows.Bytea(r.b)
		rows.Int8(r.i)
		rows.Int4(r.j)
	}
	err := db.InTxPgx(ctx, func(tx *sql.Tx, px store.PgxFunc) error {
		n, err := px.Copy(ctx, "copied", []string{"t", "b", "i", "j"}, &rows)
		if err == nil && n != int64(len(want)) {
			err = fmt.Errorf("copied %d rows, want %d", n, len(want))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.DB().QueryContext(ctx, `SELECT t, b, i, j FROM copied ORDER BY i`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var got []row
	for res.Next() {
		var r row
		if err := res.Scan(&r.t, &r.b, &r.i, &r.j); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].t != want[i].t || !bytes.Equal(got[i].b, want[i].b) || got[i].i != want[i].i || got[i].j != want[i].j {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// resettingProxy forwards connections from a loopback address to target;
// reset ends every connection it forwarded with a TCP reset (SO_LINGER 0),
// as a network that dropped them does.
func resettingProxy(t *testing.T, target string) (addr string, reset func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var clients []*net.TCPConn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			clients = append(clients, c.(*net.TCPConn))
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	}
}
