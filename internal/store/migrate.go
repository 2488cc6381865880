package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations
var migrationFS embed.FS

// Migration is one embedded schema change. Each version exists once per
// dialect (migrations/sqlite and migrations/postgres hold the same versions),
// so both databases go through the same sequence.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations of a dialect in version order.
func Migrations(d Dialect) ([]Migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %s: name must start with a version number", name)
		}
		body, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("store: duplicate migration version %d", out[i].Version)
		}
	}
	return out, nil
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)`

// MigrateLockKey is the PostgreSQL advisory lock that serialises replicas
// migrating at the same moment (held while the gateway migrates; on the
// database, not the schema).
const MigrateLockKey = 7_411_002_001

// Migrate applies the gateway's pending migrations and River's, each in its
// own transaction. On PostgreSQL an advisory lock makes concurrent replicas
// take turns. It returns the versions it applied.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	if s.dialect == Postgres {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: migrate: %w", err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(MigrateLockKey)); err != nil {
			return nil, fmt.Errorf("store: migrate lock: %w", err)
		}
		defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(MigrateLockKey)) //nolint:errcheck
	}
	applied, err := s.migrateApp(ctx)
	if err != nil {
		return applied, err
	}
	riverApplied, err := s.migrateRiver(ctx)
	return append(applied, riverApplied...), err
}

func (s *Store) migrateApp(ctx context.Context) ([]string, error) {
	ms, err := Migrations(s.dialect)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, migrationsTable); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.Version, m.Name, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("store: migration %s: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
		s.logger.Info("applied migration", "migration", m.Name, "dialect", string(s.dialect))
	}
	return applied, nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		done[v] = true
	}
	return done, rows.Err()
}

// riverMigrator is what Migrate and CheckMigrations need of a
// rivermigrate.Migrator, whatever its driver's transaction type.
type riverMigrator interface {
	Migrate(ctx context.Context, direction rivermigrate.Direction, opts *rivermigrate.MigrateOpts) (*rivermigrate.MigrateResult, error)
	Validate(ctx context.Context, opts *rivermigrate.ValidateOpts) (*rivermigrate.ValidateResult, error)
}

func (s *Store) riverMigrator() (riverMigrator, error) {
	cfg := &rivermigrate.Config{Logger: s.logger}
	if s.dialect == Postgres {
		return rivermigrate.New(riverpgxv5.New(s.pool), cfg)
	}
	return rivermigrate.New(riversqlite.New(s.db), cfg)
}

func (s *Store) migrateRiver(ctx context.Context) ([]string, error) {
	m, err := s.riverMigrator()
	if err != nil {
		return nil, fmt.Errorf("store: river migrator: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("store: river migrations: %w", err)
	}
	var applied []string
	for _, v := range res.Versions {
		applied = append(applied, fmt.Sprintf("river_%03d_%s", v.Version, v.Name))
	}
	return applied, nil
}

// ErrMigrationsPending reports that the database lacks migrations this
// binary embeds.
var ErrMigrationsPending = errors.New("store: migrations pending")

// CheckMigrations returns nil when every embedded migration (the gateway's
// and River's) is applied, and an error wrapping ErrMigrationsPending
// otherwise. /readyz uses it.
func (s *Store) CheckMigrations(ctx context.Context) error {
	ms, err := Migrations(s.dialect)
	if err != nil {
		return err
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMigrationsPending, err)
	}
	for _, m := range ms {
		if !done[m.Version] {
			return fmt.Errorf("%w: %s", ErrMigrationsPending, m.Name)
		}
	}
	m, err := s.riverMigrator()
	if err != nil {
		return err
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: validate river migrations: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w: river: %s", ErrMigrationsPending, strings.Join(res.Messages, "; "))
	}
	return nil
}
