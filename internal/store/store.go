// Package store opens the gateway database — an embedded SQLite file by
// default, PostgreSQL when a postgres:// URL is configured — applies the
// embedded migrations (the gateway's own and River's) and hands out the
// *sql.DB that every repository of the gateway uses.
//
// Both databases are reached through database/sql, so application writes and
// River job inserts share one *sql.Tx (see Jobs.InsertTx). Queries are written
// with "?" placeholders; Rebind turns them into "$n" for PostgreSQL. Times are
// stored as BIGINT unix microseconds so the same statements run on both.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL database behind a Store.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Config says which database to open.
type Config struct {
	// URL is a postgres:// (or postgresql://) URL, a sqlite: path, or empty
	// for the embedded default DataDir/gateway.db.
	URL string
	// DataDir holds the embedded SQLite file when URL is empty. Default "./data".
	DataDir string
	// MaxConns caps the PostgreSQL pool; 0 takes pool_max_conns from URL,
	// or 20 when the URL has none. SQLite always uses one connection, as
	// River's SQLite driver requires.
	MaxConns int32
}

// Store is an open gateway database.
type Store struct {
	db      *sql.DB
	pool    *pgxpool.Pool // PostgreSQL only: River's native driver and LISTEN/NOTIFY
	dialect Dialect
	logger  *slog.Logger
	// Location is a human-readable description of the database (file path or
	// host/database), safe to log: it never contains a password.
	Location string
}

// SQLiteDSN returns the connection string for an SQLite file with the
// pragmas River and concurrent writers need (WAL, busy timeout, immediate
// write transactions). synchronous is FULL: in WAL mode NORMAL does not
// sync the log at commit, so a transaction that was committed (a booking
// answered, a webhook delivery acknowledged) could be lost to a power
// failure or an OS crash; FULL syncs the log once per commit, and webhook
// intake commits concurrent deliveries together so they share that sync.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
}

// Open opens (creating it when needed) the database named by cfg. It does
// not migrate; call Migrate.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case strings.HasPrefix(cfg.URL, "postgres://"), strings.HasPrefix(cfg.URL, "postgresql://"):
		return openPostgres(ctx, cfg, logger)
	case cfg.URL == "", strings.HasPrefix(cfg.URL, "sqlite:"), strings.HasPrefix(cfg.URL, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(cfg.URL, "sqlite:"), "file:")
		if path == "" {
			dir := cfg.DataDir
			if dir == "" {
				dir = "data"
			}
			path = filepath.Join(dir, "gateway.db")
		}
		return openSQLite(ctx, path, logger)
	default:
		return nil, fmt.Errorf("store: unsupported database URL scheme (want postgres://, sqlite: or empty)")
	}
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	// The file holds the local secret store's rows and every delivery's
	// body: owner only. SQLite gives its -wal and -shm files the database
	// file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	connector, err := newSQLiteConnector(SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	return &Store{db: db, dialect: SQLite, logger: logger, Location: path}, nil
}

// defaultMaxConns is the PostgreSQL pool's size when neither Config nor
// the URL gives one.
const defaultMaxConns = 20

// defaultConnectTimeout bounds opening a PostgreSQL connection and
// defaultPingTimeout the check of a connection idle for more than a second
// before it is used, unless the URL sets connect_timeout or
// pool_ping_timeout.
const (
	defaultConnectTimeout = 10 * time.Second
	defaultPingTimeout    = 5 * time.Second
)

// defaultStatementCache is the number of prepared statements a PostgreSQL
// connection keeps unless the URL sets statement_cache_capacity: room for
// twice the statements a connection of the gateway sends (River's
// included), well below pgx's default of 512.
const defaultStatementCache = 128

func openPostgres(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx quotes the URL in parse errors, its password redacted on a
		// best-effort basis: keep only the reason.
		return nil, fmt.Errorf("store: invalid PostgreSQL URL: %s", parseReason(cfg.URL, err))
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = cfg.MaxConns
	case strings.Contains(cfg.URL, "pool_max_conns"):
		// The operator sized the pool in the URL: keep it.
	default:
		pcfg.MaxConns = defaultMaxConns
	}
	// Without these a server that stops answering (a network partition, a
	// frozen host) holds a request, or the pool's Close at shutdown,
	// until the kernel gives up on the TCP connection.
	if !strings.Contains(cfg.URL, "connect_timeout") {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if !strings.Contains(cfg.URL, "pool_ping_timeout") {
		pcfg.PingTimeout = defaultPingTimeout
	}
	// pgx gives every connection a statement cache and a description cache
	// of 512 entries each, and sizes both maps for that up front (about
	// 25 KB each). The gateway and River send about 50 distinct statements
	// per connection, and in the default cache_statement mode the
	// description cache is never used.
	cc := pcfg.ConnConfig
	if !strings.Contains(cfg.URL, "statement_cache_capacity") {
		cc.StatementCacheCapacity = defaultStatementCache
	}
	if !strings.Contains(cfg.URL, "description_cache_capacity") && cc.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		cc.DescriptionCacheCapacity = 0
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect postgres %s/%s: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Database, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	loc := fmt.Sprintf("postgres://%s:%d/%s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database)
	return &Store{db: db, pool: pool, dialect: Postgres, logger: logger, Location: loc}, nil
}

// parseReason is why pgx could not parse url, without url itself (pgx
// writes "cannot parse `URL`: reason") and without its password.
func parseReason(rawURL string, err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// DB returns the database handle. On SQLite it has exactly one connection:
// never query DB while holding a transaction on it (use the *sql.Tx).
func (s *Store) DB() *sql.DB { return s.db }

// Pool returns the PostgreSQL pool, or nil on SQLite.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Dialect reports which database this is.
func (s *Store) Dialect() Dialect { return s.dialect }

// Rebind rewrites "?" placeholders to "$1", "$2", … on PostgreSQL. Question
// marks inside single-quoted literals are left alone.
func (s *Store) Rebind(query string) string { return Rebind(s.dialect, query) }

// Rebind rewrites "?" placeholders for the dialect; see Store.Rebind.
func Rebind(d Dialect, query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// PgxFunc runs fn with the pgx connection of the transaction it was given
// with (PostgreSQL): what fn sends runs inside that transaction. fn must not
// commit, roll back or keep the connection.
type PgxFunc func(fn func(c *pgx.Conn) error) error

// CopyRows holds rows encoded in PostgreSQL's binary COPY format
// (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4),
// for PgxFunc.Copy. Each Row is followed by its fields, in the columns'
// order, each written with the method of its column's type. Encoding here
// instead of through pgx's CopyFrom spares a boxed value per field, pgx's
// encode plan lookup per value and the buffer pgx regrows from empty for
// every COPY: for a commit of 1 KiB webhook deliveries that was ≈ 6 KiB
// allocated per delivery at batches of 32. A CopyRows can be Reset and
// used again; the zero value is ready.
type CopyRows struct {
	buf  []byte
	rows int
}

// copySignature starts binary COPY data: the signature, then the flags and
// the header extension length (both 0).
const copySignature = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// Reset empties r, keeping its buffer.
func (r *CopyRows) Reset() { r.buf, r.rows = r.buf[:0], 0 }

// Len is the number of rows in r.
func (r *CopyRows) Len() int { return r.rows }

// Cap is the capacity of r's buffer in bytes.
func (r *CopyRows) Cap() int { return cap(r.buf) }

// Row starts a row of fields fields.
func (r *CopyRows) Row(fields int) {
	if len(r.buf) == 0 {
		r.buf = append(r.buf, copySignature...)
	}
	r.buf = binary.BigEndian.AppendUint16(r.buf, uint16(fields))
	r.rows++
}

// Text appends a text (or varchar) field: its bytes, which must be valid
// UTF-8 (the server checks).
func (r *CopyRows) Text(s string) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(len(s)))
	r.buf = append(r.buf, s...)
}

// Bytea appends a bytea field.
func (r *CopyRows) Bytea(b []byte) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(len(b)))
	r.buf = append(r.buf, b...)
}

// Int8 appends a bigint field.
func (r *CopyRows) Int8(v int64) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, 8)
	r.buf = binary.BigEndian.AppendUint64(r.buf, uint64(v))
}

// Int4 appends an integer field.
func (r *CopyRows) Int4(v int32) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, 4)
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(v))
}

// Copy bulk-loads rows into table's columns with PostgreSQL's COPY
// protocol inside px's transaction, and returns the rows copied. COPY
// sends the rows as one stream: a multi-row INSERT of the same rows makes
// pgx encode every value into a parameter buffer it regrows for each
// statement, which allocated ≈ 16 KiB per 1 KiB webhook delivery. A unique
// violation fails the whole COPY, and the transaction with it. A field
// whose type is not its column's fails it too ("incorrect binary data
// format").
func (px PgxFunc) Copy(ctx context.Context, table string, columns []string, rows *CopyRows) (n int64, err error) {
	if rows.Len() == 0 {
		return 0, nil
	}
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	query := "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN (FORMAT binary)"
	// The trailer (-1 as the field count) ends the data; r.buf keeps
	// only the rows, so r may take more rows after a Copy.
	data := binary.BigEndian.AppendUint16(rows.buf, 0xffff)
	err = px(func(c *pgx.Conn) error {
		tag, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(data), query)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// InTxPgx is InTx whose fn may also reach the transaction's pgx connection
// through px (nil on SQLite), for what database/sql cannot do or does
// slowly: COPY (PgxFunc.Copy), River's native pgx inserts
// (Jobs.InsertManyPgx).
func (s *Store) InTxPgx(ctx context.Context, fn func(tx *sql.Tx, px PgxFunc) error) error {
	if s.dialect != Postgres {
		return s.InTx(ctx, func(tx *sql.Tx) error { return fn(tx, nil) })
	}
	return s.InTxConn(ctx, func(tx *sql.Tx, conn ConnFunc) error { return fn(tx, conn.Pgx()) })
}

// ConnFunc runs fn with the driver connection of the transaction it was
// given with (database/sql's Conn.Raw): what fn sends runs inside that
// transaction. fn must not commit, roll back or keep the connection.
type ConnFunc func(fn func(driverConn any) error) error

// InTxConn is InTx whose fn may also reach the transaction's driver
// connection through conn: on PostgreSQL its pgx connection (conn.Pgx),
// on SQLite statements run without database/sql's per-call costs
// (conn.ExecEach).
func (s *Store) InTxConn(ctx context.Context, fn func(tx *sql.Tx, conn ConnFunc) error) error {
	// The transaction is begun on a connection held here, so that conn's
	// statements run on the same connection, inside it.
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: connection: %w", err)
	}
	defer c.Close()
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx, c.Raw); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Pgx is the pgx connection behind conn (PostgreSQL; its calls fail on
// SQLite).
func (conn ConnFunc) Pgx() PgxFunc {
	return func(fn func(c *pgx.Conn) error) error {
		return conn(func(dc any) error {
			c, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("store: not a pgx connection: %T", dc)
			}
			return fn(c.Conn())
		})
	}
}

// ExecEach runs the statement query n times on conn, inside its
// transaction, the i-th time with the arguments args(i, dst) appends to dst
// (driver values only: int64, float64, bool, []byte, string, time.Time or
// nil), and returns the rows each run changed.
// The statement is prepared once (the SQLite connection's cache keeps it),
// and the runs share one argument slice: an Exec through database/sql
// allocates its arguments' []driver.NamedValue (and a result) per call,
// which a group commit of 1 KiB deliveries paid per delivery.
//
// ctx is checked before each run; the runs themselves do not see its
// cancellation, because the SQLite driver starts a goroutine per statement
// to interrupt it when a cancellable context ends. A failure ends the
// runs; the caller rolls the transaction back.
func (conn ConnFunc) ExecEach(ctx context.Context, query string, n int, args func(i int, dst []any) []any) ([]int64, error) {
	changed := make([]int64, n)
	err := conn(func(dc any) error {
		cp, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("store: connection cannot prepare with a context: %T", dc)
		}
		st, err := cp.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer st.Close()
		exec, ok := st.(driver.StmtExecContext)
		if !ok {
			return fmt.Errorf("store: statement cannot run with a context: %T", st)
		}
		var (
			vals   []any
			nvs    []driver.NamedValue
			rowCtx = context.WithoutCancel(ctx)
		)
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			vals = args(i, vals[:0])
			nvs = slices.Grow(nvs[:0], len(vals))[:len(vals)]
			for j, v := range vals {
				if !driver.IsValue(v) {
					return fmt.Errorf("store: argument %d is a %T, not a driver value", j+1, v)
				}
				nvs[j] = driver.NamedValue{Ordinal: j + 1, Value: v}
			}
			res, err := exec.ExecContext(rowCtx, nvs)
			if err != nil {
				return err
			}
			if changed[i], err = res.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either database.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "UNIQUE constraint failed") ||
		strings.Contains(msg, "constraint failed: UNIQUE")
}

// Unavailable reports whether err says that the database could not be
// reached or dropped the connection — PostgreSQL down, restarting, failing
// over or refusing connections, or the pool closed at shutdown — rather
// than anything wrong with the statement or the data: the same request may
// succeed later. The HTTP API answers these 503 with Retry-After, not 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01–57P03: the server is
		// shutting down or starting; 53300: too many connections.
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return strings.HasPrefix(pe.Code, "08")
	}
	// pgx answers io.ErrUnexpectedEOF for a connection the server (or the
	// network) dropped in the middle of a statement, and the socket's own
	// error when the network reset it (a failover behind a load balancer):
	// "read: connection reset by peer", "write: broken pipe".
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// database/sql and pgxpool say these with unexported errors.
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "closed pool") ||
		strings.HasSuffix(msg, "conn closed")
}

// Unreachable reports whether err, from Open, says that the database server
// could not be reached (yet): nothing listens on its address, its name does
// not resolve, the connection timed out, or the server is starting up,
// shutting down or out of connections — what waiting for it may mend (a
// database that comes up after the gateway). A server that answered and
// refused the credentials (class 28) or the database's name (3D000) is
// reachable and misconfigured, and a malformed URL or an SQLite file that
// cannot be opened is not a connection failure: waiting mends none of
// them.
func Unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000") {
		return false
	}
	return Unavailable(err)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the database.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}
