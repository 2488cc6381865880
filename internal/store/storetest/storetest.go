// Package storetest opens migrated gateway databases for tests: a fresh
// SQLite file per test, and a fresh schema on the PostgreSQL server named by
// GATEWAY_TEST_POSTGRES_URL. Use Each to run one test body on both, so every
// repository is exercised on both databases.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spotlight/gateway/internal/store"
)

// PostgresEnv names the environment variable holding the test server URL.
const PostgresEnv = "GATEWAY_TEST_POSTGRES_URL"

// SQLite returns a migrated store on a new SQLite file in t.TempDir().
func SQLite(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "gateway.db")}, nil)
	if err != nil {
		t.Fatalf("storetest: open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("storetest: migrate sqlite: %v", err)
	}
	return s
}

// PostgresURL creates an empty schema on the test server and returns a URL
// whose search_path selects it; the schema is dropped when the test ends.
// Without GATEWAY_TEST_POSTGRES_URL the test is skipped.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("storetest: %s not set; skipping PostgreSQL test", PostgresEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("storetest: connect %s: %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	// Extensions live in public; make them available to every test schema.
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public"); err != nil && !isDuplicate(err) {
		t.Fatalf("storetest: btree_gist: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	return u.String()
}

// isDuplicate reports the race of two tests creating the extension at once.
func isDuplicate(err error) bool {
	return err != nil && (store.IsUniqueViolation(err) || strings.Contains(err.Error(), "already exists"))
}

// Postgres returns a migrated store on a fresh schema of the test server.
func Postgres(t testing.TB) *store.Store {
	t.Helper()
	u := PostgresURL(t)
	s, err := store.Open(context.Background(), store.Config{URL: u, MaxConns: 10}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("storetest: open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("storetest: migrate postgres: %v", err)
	}
	return s
}

// Each runs fn as two subtests, "sqlite" and "postgres", each on its own
// freshly migrated store. The postgres subtest skips without the server URL.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range []struct {
		name string
		open func(testing.TB) *store.Store
	}{{"sqlite", SQLite}, {"postgres", Postgres}} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d.open(t))
		})
	}
}
