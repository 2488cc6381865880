package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"testing"
)

// countingConnector counts the statements the driver prepares.
type countingConnector struct {
	base     driver.Connector
	prepared *int
	conns    []*cachingConn
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cc := newCachingConn(countingConn{conn, c.prepared}, 4)
	c.conns = append(c.conns, cc)
	return cc, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.base.Driver() }

// countingConn counts PrepareContext and forwards what cachingConn uses.
type countingConn struct {
	driver.Conn
	prepared *int
}

func (c countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	*c.prepared++
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	*c.prepared++ // the driver prepares it too
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	*c.prepared++
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c countingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }
func (c countingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}
func (c countingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func openCounting(t *testing.T) (*sql.DB, *int, *countingConnector) {
	t.Helper()
	base, err := newSQLiteConnector(SQLiteDSN(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	cc := &countingConnector{base: base.(stmtCacheConnector).base, prepared: &n}
	db := sql.OpenDB(cc)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, &n, cc
}

func TestStatementCache(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("repeated statements are prepared once", func(t *testing.T) {
		t.Parallel()
		db, prepared, _ := openCounting(t)
		before := *prepared
		for i := range 50 {
			if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, i, fmt.Sprint("v", i)); err != nil {
				t.Fatal(err)
			}
			var v string
			if err := db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, i).Scan(&v); err != nil || v != fmt.Sprint("v", i) {
				t.Fatalf("row %d = %q, %v", i, v, err)
			}
		}
		if got := *prepared - before; got != 2 {
			t.Errorf("prepared %d statements for 2 distinct ones", got)
		}
	})
	t.Run("the same query inside its own rows runs on a statement of its own", func(t *testing.T) {
		t.Parallel()
		db, _, _ := openCounting(t)
		for i := range 3 {
			db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, i, fmt.Sprint("v", i))
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		const q = `SELECT k, v FROM t WHERE k >= ? ORDER BY k`
		outer, err := tx.QueryContext(ctx, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for outer.Next() {
			var k int
			var v string
			if err := outer.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			inner, err := tx.QueryContext(ctx, q, k)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for inner.Next() {
				n++
			}
			inner.Close()
			pairs = append(pairs, fmt.Sprintf("%s:%d", v, n))
		}
		if err := outer.Err(); err != nil {
			t.Fatal(err)
		}
		outer.Close()
		if got := fmt.Sprint(pairs); got != "[v0:3 v1:2 v2:1]" {
			t.Errorf("nested reads = %s", got)
		}
	})
	t.Run("prepared statements are lent and given back", func(t *testing.T) {
		t.Parallel()
		db, prepared, _ := openCounting(t)
		for round := range 3 {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := tx.PrepareContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := st.ExecContext(ctx, round*10+i, "x"); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 30 {
			t.Fatalf("count = %d, %v", n, err)
		}
		if *prepared > 4 { // CREATE, INSERT once, count, plus BEGIN/COMMIT are the driver's own
			t.Errorf("prepared %d statements", *prepared)
		}
	})
	t.Run("least recently used statements are evicted and still work", func(t *testing.T) {
		t.Parallel()
		db, _, cc := openCounting(t)
		for i := range 20 {
			q := fmt.Sprintf(`SELECT %d FROM t WHERE k = ?`, i)
			rows, err := db.QueryContext(ctx, q, 1)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
		}
		if n := cc.conns[0].lru.Len(); n != 4 {
			t.Errorf("%d statements cached, want the bound 4", n)
		}
		// A statement survives a schema change (SQLite prepares it again).
		if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, 1, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE t ADD COLUMN w TEXT`); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, 1).Scan(&v); err != nil || v != "a" {
			t.Fatalf("after ALTER: %q, %v", v, err)
		}
	})
}
