package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spotlight/gateway/internal/logtest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// dbPassword is written into the database URLs of these tests; it must
// appear in no log line and no error.
const dbPassword = "pw-never-logged-7f3a"

// waitingLine is the log line of one failed attempt to reach the database.
var waitingLine = regexp.MustCompile(`"level":"WARN","msg":"database not reachable; waiting","attempt":(\d+)`)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// running is a command run in-process and not waited for.
type running struct {
	cmd            string
	stdout, stderr *logtest.Buffer
	done           chan struct{} // closed when the command returned err
	err            error
	cancel         context.CancelFunc // SIGTERM
}

// runAsync runs cmd with env; the test's end stops it and waits for it.
func runAsync(t *testing.T, cmd string, env map[string]string) *running {
	t.Helper()
	if env["GATEWAY_DATA_DIR"] == "" {
		env["GATEWAY_DATA_DIR"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cmd: cmd, stdout: &logtest.Buffer{}, stderr: &logtest.Buffer{}, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		r.err = run(ctx, []string{cmd}, envOf(env), r.stdout, r.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s", cmd)
		}
	})
	return r
}

// exited waits for the command's result, failing the test after within.
func (r *running) exited(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(within):
		t.Fatalf("%s still running after %s\n%s%s", r.cmd, within, r.stdout, r.stderr)
		return nil
	}
}

// serving is a gateway started by serveAsync on a known address.
type serving struct {
	*running
	url string
}

// serveAsync runs serve in-process on a free address, not waiting for
// anything: the tests watch it wait for its database.
func serveAsync(t *testing.T, env map[string]string) *serving {
	t.Helper()
	addr := freeAddr(t)
	env["GATEWAY_ADDR"] = addr
	return &serving{running: runAsync(t, "serve", env), url: "http://" + addr}
}

// waitAttempts waits until serve has logged n failed attempts to reach
// its database.
func (s *serving) waitAttempts(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(waitingLine.FindAllString(s.stdout.String(), -1)) < n {
		select {
		case <-s.done:
			t.Fatalf("serve exited while it should wait for its database: %v\n%s", s.err, s.stdout)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d failed attempts to reach the database logged:\n%s", n, s.stdout)
		}
	}
}

// checkNoPassword fails the test when the database password was logged.
func (s *serving) checkNoPassword(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(s.stdout.String()+s.stderr.String(), dbPassword) {
		t.Errorf("the database password is in the log:\n%s", s.stdout)
	}
	if err != nil && strings.Contains(err.Error(), dbPassword) {
		t.Errorf("the database password is in the error: %v", err)
	}
}

// status GETs url and returns the status, 0 when nothing answers.
func status(t *testing.T, url string) int {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// unreachableDB is a PostgreSQL URL, with a password, of a loopback port
// nothing listens on.
func unreachableDB(t *testing.T) string {
	return "postgres://gw:" + dbPassword + "@" + freeAddr(t) + "/gw?sslmode=disable"
}

// TestServeWaitsForTheDatabase: a database that comes up after the
// gateway (ECS, docker compose) is waited for: each failed attempt is
// logged at warn with its error (never the password); meanwhile /healthz
// answers 200 (the container is alive) and /readyz 503 (no traffic yet);
// once the server accepts connections the gateway starts as usual.
func TestServeWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	server := u.Host
	u.Host = freeAddr(t) // the database's address, down for now
	u.User = url.UserPassword(u.User.Username(), dbPassword)
	s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": u.String(), "GATEWAY_DB_WAIT": "30s"})
	s.waitAttempts(t, 1)
	if got := status(t, s.url+"/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while waiting for the database = %d, want 200", got)
	}
	if got := status(t, s.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while waiting for the database = %d, want 503", got)
	}
	if line := s.stdout.String(); !strings.Contains(line, "connection refused") {
		t.Errorf("the failed attempt does not say why:\n%s", line)
	}

	// The database comes up.
	proxyTCP(t, u.Host, server)
	deadline := time.Now().Add(20 * time.Second)
	for status(t, s.url+"/readyz") != http.StatusOK {
		select {
		case <-s.done:
			t.Fatalf("serve exited: %v\n%s", s.err, s.stdout)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 20s after the database came up\n%s", s.stdout)
		}
	}
	if !strings.Contains(s.stdout.String(), `"msg":"database reachable"`) {
		t.Errorf("the end of the wait is not logged:\n%s", s.stdout)
	}
	s.cancel()
	err = s.exited(t, 30*time.Second)
	if err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	s.checkNoPassword(t, err)
}

// TestServeStopsWaitingOnSignal: SIGTERM while waiting for the database
// ends serve at once (long before GATEWAY_DB_WAIT or the shutdown
// timeout), with status 0: the orchestrator asked it to stop.
func TestServeStopsWaitingOnSignal(t *testing.T) {
	t.Parallel()
	s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": unreachableDB(t), "GATEWAY_DB_WAIT": "1m"})
	s.waitAttempts(t, 1)
	if got := status(t, s.url+"/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while waiting for the database = %d, want 200", got)
	}
	if got := status(t, s.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while waiting for the database = %d, want 503", got)
	}
	signalled := time.Now()
	s.cancel()
	err := s.exited(t, 3*time.Second)
	if err != nil {
		t.Errorf("serve stopped while waiting = %v, want nil (status 0)", err)
	}
	if took := time.Since(signalled); took > time.Second {
		t.Errorf("serve took %s to stop while waiting for the database", took)
	}
	if !strings.Contains(s.stdout.String(), `"msg":"stopped while waiting for the database"`) {
		t.Errorf("the stop is not logged:\n%s", s.stdout)
	}
	if got := status(t, s.url+"/healthz"); got != 0 {
		t.Errorf("the listener still answers after the stop: %d", got)
	}
	s.checkNoPassword(t, err)
}

// TestServeGivesUpWaiting: a database still out of reach when
// GATEWAY_DB_WAIT runs out ends serve with status 1 and a message that
// says so, after attempts with growing delays.
func TestServeGivesUpWaiting(t *testing.T) {
	t.Parallel()
	started := time.Now()
	s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": unreachableDB(t), "GATEWAY_DB_WAIT": "1500ms"})
	err := s.exited(t, 10*time.Second)
	took := time.Since(started)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "database not reachable within GATEWAY_DB_WAIT (1.5s") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("serve = %v (exit %d), want status 1 saying the wait ran out and why", err, exitCode(err))
	}
	if took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("serve gave up after %s, want about GATEWAY_DB_WAIT (1.5s)", took)
	}
	if n := len(waitingLine.FindAllString(s.stdout.String(), -1)); n < 2 || n > 4 {
		t.Errorf("%d failed attempts logged in 1.5s, want 2 to 4 (backoff from 500ms)\n%s", n, s.stdout)
	}
	s.checkNoPassword(t, err)
}

// TestServeWaitsOutASilentServer: a server that accepts connections and
// never answers (a frozen host) holds an attempt for connect_timeout (10s
// by default); the attempt still ends with GATEWAY_DB_WAIT, and at once on
// SIGTERM.
func TestServeWaitsOutASilentServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	silent := "postgres://gw:" + dbPassword + "@" + ln.Addr().String() + "/gw?sslmode=disable"

	t.Run("the wait runs out", func(t *testing.T) {
		t.Parallel()
		started := time.Now()
		s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": silent, "GATEWAY_DB_WAIT": "1s"})
		err := s.exited(t, 8*time.Second)
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "database not reachable within GATEWAY_DB_WAIT (1s") {
			t.Fatalf("serve = %v (exit %d), want status 1 saying the wait ran out", err, exitCode(err))
		}
		if took := time.Since(started); took > 4*time.Second {
			t.Errorf("serve gave up after %s, want about GATEWAY_DB_WAIT (1s)", took)
		}
		s.checkNoPassword(t, err)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": silent, "GATEWAY_DB_WAIT": "1m"})
		deadline := time.Now().Add(10 * time.Second)
		for status(t, s.url+"/healthz") != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("/healthz never answered\n%s", s.stdout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // into the attempt
		signalled := time.Now()
		s.cancel()
		if err := s.exited(t, 3*time.Second); err != nil {
			t.Errorf("serve stopped while waiting = %v, want nil", err)
		}
		if took := time.Since(signalled); took > time.Second {
			t.Errorf("serve took %s to stop during an attempt", took)
		}
	})
}

// TestServeDoesNotWaitForAMisconfiguredDatabase: only connection failures
// are waited for; a malformed URL, a server that has no such database and
// a failed migration end serve at once whatever GATEWAY_DB_WAIT says, as
// does the embedded SQLite file by default.
func TestServeDoesNotWaitForAMisconfiguredDatabase(t *testing.T) {
	t.Parallel()
	pg := storetest.PostgresURL(t)
	noDB, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	noDB.Path = "/no_such_database_for_gateway_tests"
	brokenSchema := storetest.PostgresURL(t)
	conn, err := pgx.Connect(t.Context(), brokenSchema)
	if err != nil {
		t.Fatal(err)
	}
	// A schema_migrations table the migrations cannot read.
	if _, err := conn.Exec(t.Context(), "CREATE TABLE schema_migrations (id INT)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	for _, tt := range []struct {
		name, url, want string
	}{
		{"malformed URL", "postgres://gw:" + dbPassword + "@127.0.0.1:5432/gw?sslmode=bogus", "invalid PostgreSQL URL"},
		{"no such database", noDB.String(), "does not exist"},
		{"failed migration", brokenSchema, "schema_migrations"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": tt.url, "GATEWAY_DB_WAIT": "1m"})
			err := s.exited(t, 10*time.Second)
			if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("serve = %v (exit %d), want status 1 with %q", err, exitCode(err), tt.want)
			}
			if waitingLine.MatchString(s.stdout.String()) {
				t.Errorf("serve waited:\n%s", s.stdout)
			}
			s.checkNoPassword(t, err)
		})
	}
}

// TestDBWaitDelay: the delay after each failed attempt doubles from 500ms
// up to 5s.
func TestDBWaitDelay(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int]time.Duration{
		1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 5: 5 * time.Second, 6: 5 * time.Second, 100: 5 * time.Second,
	} {
		if got := dbWaitDelay(attempt); got != want {
			t.Errorf("dbWaitDelay(%d) = %s, want %s", attempt, got, want)
		}
	}
}

// proxyTCP forwards connections to listen (an address that was free) to
// target until the test ends: a database that comes up.
func proxyTCP(t *testing.T, listen, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("the database's address was taken meanwhile: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
}

// migrationHeld creates a database of its own on the test server (advisory
// locks belong to a database: holding one here blocks no other test) and
// holds the gateway's migration lock on it, as a replica migrating at the
// moment would. It returns the database's URL and a function that reports
// whether a session waits for the lock.
func migrationHeld(t *testing.T) (dbURL string, waiting func() bool) {
	t.Helper()
	storetest.PostgresURL(t) // skips without a test server
	base := os.Getenv(storetest.PostgresEnv)
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gw_lock_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	holder, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(store.MigrateLockKey)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		holder.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	return u.String(), func() bool {
		var n int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = $1`, name).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
}

// waitFor polls cond until it holds, failing the test after 20s or when
// done is closed first.
func waitFor(t *testing.T, what string, done <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		select {
		case <-done:
			t.Fatalf("exited before %s", what)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
	}
}

// TestServeStopsDuringAnotherReplicasMigration: SIGTERM while serve waits
// for another replica's migration (a deploy replaced it meanwhile) ends it
// at once with status 0, as while it waits for the database.
func TestServeStopsDuringAnotherReplicasMigration(t *testing.T) {
	t.Parallel()
	dbURL, waiting := migrationHeld(t)
	s := serveAsync(t, map[string]string{"GATEWAY_DATABASE_URL": dbURL})
	waitFor(t, "wait for the migration lock", s.done, waiting)
	if got := status(t, s.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while waiting for the migration lock = %d, want 503", got)
	}
	signalled := time.Now()
	s.cancel()
	if err := s.exited(t, 3*time.Second); err != nil {
		t.Errorf("serve stopped while waiting for the migration lock = %v, want nil (status 0)", err)
	}
	if took := time.Since(signalled); took > time.Second {
		t.Errorf("serve took %s to stop", took)
	}
	if !strings.Contains(s.stdout.String(), `"msg":"stopped while migrating the database`) {
		t.Errorf("the stop is not logged:\n%s", s.stdout)
	}
}

// TestMigrateWaitsForTheDatabase: migrate (a deploy's one-off task, which
// may start before the database accepts connections) waits for the
// database as serve does, logging each failed attempt, and gives up with
// status 1 when GATEWAY_DB_WAIT runs out.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	t.Run("comes up", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		server := u.Host
		u.Host = freeAddr(t)
		m := runAsync(t, "migrate", map[string]string{"GATEWAY_DATABASE_URL": u.String(), "GATEWAY_DB_WAIT": "30s"})
		waitFor(t, "failed attempt logged", m.done, func() bool { return waitingLine.MatchString(m.stderr.String()) })
		proxyTCP(t, u.Host, server)
		if err := m.exited(t, 20*time.Second); err != nil {
			t.Fatalf("migrate after the database came up: %v\n%s", err, m.stderr)
		}
		if !strings.Contains(m.stdout.String(), "0001_init") {
			t.Errorf("migrate output does not list the migrations:\n%s", m.stdout)
		}
	})
	t.Run("runs out", func(t *testing.T) {
		t.Parallel()
		m := runAsync(t, "migrate", map[string]string{"GATEWAY_DATABASE_URL": unreachableDB(t), "GATEWAY_DB_WAIT": "1s"})
		err := m.exited(t, 8*time.Second)
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "migrate: database not reachable within GATEWAY_DB_WAIT (1s") {
			t.Fatalf("migrate = %v (exit %d), want status 1 saying the wait ran out", err, exitCode(err))
		}
		if !waitingLine.MatchString(m.stderr.String()) {
			t.Errorf("no failed attempt logged:\n%s", m.stderr)
		}
		if strings.Contains(err.Error()+m.stderr.String(), dbPassword) {
			t.Errorf("the database password is in the error or the log")
		}
	})
}

// TestMigrateStoppedBeforeItsTurn: SIGTERM while migrate waits for the
// database or for another replica's migration ends it at once with status
// 1 (a deploy must not go on as if the schema were migrated) and says so.
func TestMigrateStoppedBeforeItsTurn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T) (dbURL string, blocked func(m *running) bool)
		want  string
	}{
		{"waiting for the database", func(t *testing.T) (string, func(*running) bool) {
			return unreachableDB(t), func(m *running) bool { return waitingLine.MatchString(m.stderr.String()) }
		}, "migrate: stopped while waiting for the database"},
		{"waiting for another replica's migration", func(t *testing.T) (string, func(*running) bool) {
			dbURL, waiting := migrationHeld(t)
			return dbURL, func(*running) bool { return waiting() }
		}, "migrate: stopped while migrating the database (or waiting for another replica's migration): the rest is applied by the next migrate or serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbURL, blocked := tt.setup(t)
			m := runAsync(t, "migrate", map[string]string{"GATEWAY_DATABASE_URL": dbURL, "GATEWAY_DB_WAIT": "1m"})
			waitFor(t, "migrate blocked", m.done, func() bool { return blocked(m) })
			signalled := time.Now()
			m.cancel()
			err := m.exited(t, 3*time.Second)
			if err == nil || exitCode(err) != 1 || err.Error() != tt.want {
				t.Errorf("migrate = %v (exit %d), want status 1 with %q", err, exitCode(err), tt.want)
			}
			if took := time.Since(signalled); took > time.Second {
				t.Errorf("migrate took %s to stop", took)
			}
		})
	}
}
