package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"

	"modernc.org/sqlite"
)

// stmtCacheSize bounds the prepared statements kept per SQLite connection.
// River and the gateway send a few dozen distinct statements over and over.
const stmtCacheSize = 256

// newSQLiteConnector returns a connector whose connections keep their
// prepared statements by SQL text. database/sql prepares, runs and
// finalizes a statement for every Exec and Query that is not on a
// *sql.Stmt, and SQLite's parser then took about a tenth of the gateway's
// CPU under webhook load (River's insert, fetch and completion queries, the
// group commit's inserts). The wrapper follows modernc.org/sqlite's advice
// for connection wrappers: it has Unwrap and forwards every optional
// interface the driver's connections implement.
func newSQLiteConnector(dsn string) (driver.Connector, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return stmtCacheConnector{base}, nil
}

type stmtCacheConnector struct{ base driver.Connector }

func (c stmtCacheConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn, stmtCacheSize), nil
}

func (c stmtCacheConnector) Driver() driver.Driver { return c.base.Driver() }

// cachingConn is a driver connection with a statement cache. database/sql
// uses a connection from one goroutine at a time, so it needs no lock. A
// cached statement in use by open rows (or by a *sql.Stmt) is busy; the same
// SQL meanwhile runs on a statement of its own, as without the cache.
type cachingConn struct {
	conn  driver.Conn
	size  int
	lru   *list.List // of *cachedStmt, most recently used first
	stmts map[string]*list.Element
}

type cachedStmt struct {
	query string
	stmt  driver.Stmt
	busy  bool
}

func newCachingConn(conn driver.Conn, size int) *cachingConn {
	return &cachingConn{conn: conn, size: size, lru: list.New(), stmts: make(map[string]*list.Element)}
}

// Unwrap returns the driver's connection.
func (c *cachingConn) Unwrap() driver.Conn { return c.conn }

// acquire returns the cached statement of query, prepared now when it is
// not cached, marked busy; nil when the cached one is busy already.
func (c *cachingConn) acquire(ctx context.Context, query string) (*cachedStmt, error) {
	if el, ok := c.stmts[query]; ok {
		cs := el.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		cs.busy = true
		return cs, nil
	}
	st, err := c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{query: query, stmt: st, busy: true}
	c.stmts[query] = c.lru.PushFront(cs)
	for c.lru.Len() > c.size {
		// Evict the least recently used statement that is not in use.
		el := c.lru.Back()
		for el != nil && el.Value.(*cachedStmt).busy {
			el = el.Prev()
		}
		if el == nil {
			break
		}
		old := c.lru.Remove(el).(*cachedStmt)
		delete(c.stmts, old.query)
		_ = old.stmt.Close()
	}
	return cs, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext hands out the cached statement (its Close releases it
// instead of finalizing it), or a statement of its own while that is busy.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	cs, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	}
	return &leasedStmt{cs: cs}, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	defer func() { cs.busy = false }()
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		cs.busy = false
		return nil, err
	}
	return &releasingRows{Rows: rows, cs: cs}, nil
}

func (c *cachingConn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		errs = append(errs, el.Value.(*cachedStmt).stmt.Close())
	}
	c.lru.Init()
	clear(c.stmts)
	return errors.Join(append(errs, c.conn.Close())...)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.conn.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.conn.(driver.Validator).IsValid() }

// leasedStmt is a cached statement lent to a *sql.Stmt until it is closed.
type leasedStmt struct{ cs *cachedStmt }

func (s *leasedStmt) Close() error {
	if s.cs != nil {
		s.cs.busy = false
		s.cs = nil
	}
	return nil
}

func (s *leasedStmt) NumInput() int { return s.cs.stmt.NumInput() }

func (s *leasedStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.cs.stmt.Exec(args)
}

func (s *leasedStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.cs.stmt.Query(args)
}

func (s *leasedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *leasedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

// releasingRows releases its cached statement when closed, and forwards the
// column type interfaces of the driver's rows.
type releasingRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	if r.cs != nil {
		r.cs.busy = false
		r.cs = nil
	}
	return err
}

func (r *releasingRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *releasingRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *releasingRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *releasingRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *releasingRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
