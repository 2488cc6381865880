// Package local is the embedded secrets.Store: secrets are rows of the
// gateway database (SQLite or PostgreSQL), each value sealed with
// AES-256-GCM under a fresh random 96-bit nonce per write. The associated
// data binds the ciphertext to its path, version and key id, so a row copied
// to another path, a replayed old version, a flipped byte or the wrong key
// all fail authentication (ErrTampered): never garbage.
//
// Each row records the id of the key that sealed it; a Keyring holds the
// current key and older ones by id, and RotateKey re-encrypts every row
// under a new key (the gateway's "secrets rotate-key" command).
//
// The table (created by the store package's migrations):
//
//	CREATE TABLE secrets (path TEXT PRIMARY KEY, version BIGINT NOT NULL,
//	  key_id TEXT NOT NULL, nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL,
//	  updated_at BIGINT NOT NULL) -- unix microseconds
//
// Versions are enforced by the database: a conditional write is
// "UPDATE ... WHERE path = ? AND version = ?" and a create is
// "INSERT ... ON CONFLICT (path) DO NOTHING"; zero rows affected is a
// version conflict.
package local

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/internal/secrets"
)

// Errors specific to the local backend.
var (
	// ErrTampered means a row failed authentication: its ciphertext, nonce,
	// path, version or key id was changed, or the key with its id is not the
	// key that sealed it.
	ErrTampered = errors.New("local: secret failed authentication (tampered, moved, or wrong key)")
	// ErrUnknownKey means a row was sealed with a key id the keyring lacks.
	ErrUnknownKey = errors.New("local: secret sealed with an unknown key id")
)

// MaxValue bounds a secret's size.
const MaxValue = 1 << 20

// Dialects accepted by New.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is the database-backed secrets.Store.
type Store struct {
	db      *sql.DB
	dialect string
	kr      *Keyring
	now     func() time.Time
	logger  *slog.Logger
}

var _ secrets.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for updated_at (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLogger sets the logger (default: discard). Values are never logged.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.logger = l } }

// New returns a Store on db, whose dialect is "sqlite" or "postgres".
func New(db *sql.DB, dialect string, kr *Keyring, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("local: nil *sql.DB")
	}
	if dialect != SQLite && dialect != Postgres {
		return nil, fmt.Errorf("local: dialect %q must be %q or %q", dialect, SQLite, Postgres)
	}
	if kr == nil || kr.Current().id == "" {
		return nil, errors.New("local: keyring without a current key")
	}
	s := &Store{db: db, dialect: dialect, kr: kr, now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func aad(path string, version int64, keyID string) []byte {
	return []byte("spotlight/secrets/v1\x00" + path + "\x00" + strconv.FormatInt(version, 10) + "\x00" + keyID)
}

func seal(k Key, path string, version int64, plain []byte) (nonce, ct []byte, err error) {
	g, err := gcm(k)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("local: nonce: %w", err)
	}
	return nonce, g.Seal(nil, nonce, plain, aad(path, version, k.id)), nil
}

func (s *Store) open(path string, version int64, keyID string, nonce, ct []byte) ([]byte, error) {
	k, ok := s.kr.Lookup(keyID)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	}
	g, err := gcm(k)
	if err != nil {
		return nil, err
	}
	if len(nonce) != g.NonceSize() {
		return nil, ErrTampered
	}
	plain, err := g.Open(nil, nonce, ct, aad(path, version, keyID))
	if err != nil {
		return nil, ErrTampered
	}
	return plain, nil
}

func gcm(k Key) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k.k[:])
	if err != nil {
		return nil, fmt.Errorf("local: cipher: %w", err)
	}
	return cipher.NewGCM(b)
}

// Get implements secrets.Store.
func (s *Store) Get(ctx context.Context, path string) (secrets.Secret, error) {
	if err := secrets.ValidPath(path); err != nil {
		return secrets.Secret{}, err
	}
	var (
		version, updated int64
		keyID            string
		nonce, ct        []byte
	)
	err := s.db.QueryRowContext(ctx, s.q(`SELECT version, key_id, nonce, ciphertext, updated_at FROM secrets WHERE path = ?`), path).
		Scan(&version, &keyID, &nonce, &ct, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return secrets.Secret{}, fmt.Errorf("local: get %s: %w", path, secrets.ErrNotFound)
	}
	if err != nil {
		return secrets.Secret{}, fmt.Errorf("local: get %s: %w", path, err)
	}
	plain, err := s.open(path, version, keyID, nonce, ct)
	if err != nil {
		s.logger.LogAttrs(ctx, slog.LevelError, "local: secret failed to decrypt",
			slog.String("path", path), slog.Int64("version", version), slog.String("key_id", keyID))
		return secrets.Secret{}, fmt.Errorf("local: get %s: %w: %w", path, secrets.ErrUnreadable, err)
	}
	if plain == nil {
		plain = []byte{}
	}
	return secrets.Secret{Path: path, Value: plain, Version: version, UpdatedAt: time.UnixMicro(updated).UTC()}, nil
}

// Put implements secrets.Store.
func (s *Store) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	if err := secrets.ValidPath(path); err != nil {
		return 0, err
	}
	if len(value) > MaxValue {
		return 0, fmt.Errorf("local: put %s: %w: %d bytes, limit %d", path, secrets.ErrValueTooLarge, len(value), MaxValue)
	}
	if expectedVersion < secrets.AnyVersion {
		return 0, fmt.Errorf("local: put %s: expected version %d is invalid", path, expectedVersion)
	}
	if expectedVersion != secrets.AnyVersion {
		v, err := s.putAt(ctx, path, value, expectedVersion)
		if err != nil {
			return 0, fmt.Errorf("local: put %s: %w", path, err)
		}
		return v, nil
	}
	// Unconditional: the version is part of the associated data, so read it
	// and write conditionally, again if someone else got in between.
	for range secrets.MaxUpdateAttempts {
		var cur int64
		err := s.db.QueryRowContext(ctx, s.q(`SELECT version FROM secrets WHERE path = ?`), path).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("local: put %s: %w", path, err)
		}
		v, err := s.putAt(ctx, path, value, cur)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, secrets.ErrVersionConflict) {
			return 0, fmt.Errorf("local: put %s: %w", path, err)
		}
	}
	return 0, fmt.Errorf("local: put %s: %w: too many concurrent writers", path, secrets.ErrVersionConflict)
}

// putAt writes version expected+1, conditional on the current version
// being expected (0: the row must not exist).
func (s *Store) putAt(ctx context.Context, path string, value []byte, expected int64) (int64, error) {
	next := expected + 1
	k := s.kr.Current()
	nonce, ct, err := seal(k, path, next, value)
	if err != nil {
		return 0, err
	}
	now := s.now().UnixMicro()
	var res sql.Result
	if expected == 0 {
		res, err = s.db.ExecContext(ctx, s.q(`INSERT INTO secrets (path, version, key_id, nonce, ciphertext, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO NOTHING`), path, next, k.id, nonce, ct, now)
	} else {
		res, err = s.db.ExecContext(ctx, s.q(`UPDATE secrets SET version = ?, key_id = ?, nonce = ?, ciphertext = ?, updated_at = ?
			WHERE path = ? AND version = ?`), next, k.id, nonce, ct, now, path, expected)
	}
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		if expected == 0 {
			return 0, fmt.Errorf("%w: already exists", secrets.ErrVersionConflict)
		}
		return 0, fmt.Errorf("%w: version is no longer %d", secrets.ErrVersionConflict, expected)
	}
	return next, nil
}

// Delete implements secrets.Store.
func (s *Store) Delete(ctx context.Context, path string) error {
	if err := secrets.ValidPath(path); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM secrets WHERE path = ?`), path)
	if err != nil {
		return fmt.Errorf("local: delete %s: %w", path, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("local: delete %s: %w", path, err)
	}
	if n == 0 {
		return fmt.Errorf("local: delete %s: %w", path, secrets.ErrNotFound)
	}
	return nil
}

// List implements secrets.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]secrets.Secret, error) {
	p, err := secrets.ListPrefix(prefix)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT path, version, updated_at FROM secrets WHERE substr(path, 1, ?) = ?`), len(p), p)
	if err != nil {
		return nil, fmt.Errorf("local: list %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []secrets.Secret
	for rows.Next() {
		var sec secrets.Secret
		var updated int64
		if err := rows.Scan(&sec.Path, &sec.Version, &updated); err != nil {
			return nil, fmt.Errorf("local: list %s: %w", prefix, err)
		}
		sec.UpdatedAt = time.UnixMicro(updated).UTC()
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("local: list %s: %w", prefix, err)
	}
	// Sort here: PostgreSQL's collation may not order "/" bytewise.
	slices.SortFunc(out, func(a, b secrets.Secret) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// RotateKey makes newKey the current key (the previous one stays in the
// keyring for reads) and re-encrypts every row sealed with another key,
// keeping versions. It returns how many rows it re-encrypted. Rows written
// concurrently are picked up by further passes. A row that fails
// authentication stops the rotation with ErrTampered (nothing is skipped
// silently); already rotated rows stay rotated and readable.
//
// Other processes sharing the database must be given the new key (and keep
// the old one as an old key) before or right after rotating, or they cannot
// read the rotated rows.
func (s *Store) RotateKey(ctx context.Context, newKey Key) (int, error) {
	if newKey.id == "" {
		return 0, errors.New("local: rotate key: zero key")
	}
	s.kr.setCurrent(newKey)
	total := 0
	for pass := 0; ; pass++ {
		n, err := s.rotatePass(ctx, newKey)
		total += n
		if err != nil {
			return total, fmt.Errorf("local: rotate key: %w", err)
		}
		var left int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT count(*) FROM secrets WHERE key_id <> ?`), newKey.id).Scan(&left); err != nil {
			return total, fmt.Errorf("local: rotate key: %w", err)
		}
		if left == 0 {
			s.logger.LogAttrs(ctx, slog.LevelInfo, "local: key rotated", slog.String("key_id", newKey.id), slog.Int("rows", total))
			return total, nil
		}
		if pass >= 10 {
			return total, fmt.Errorf("local: rotate key: %d rows still on old keys after %d passes", left, pass+1)
		}
	}
}

type sealedRow struct {
	path      string
	version   int64
	keyID     string
	nonce, ct []byte
}

func (s *Store) rotatePass(ctx context.Context, k Key) (int, error) {
	n := 0
	after := ""
	for {
		// Read a batch first, then write: one SQLite connection cannot do both at once.
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT path, version, key_id, nonce, ciphertext FROM secrets
			WHERE key_id <> ? AND path > ? ORDER BY path LIMIT 100`), k.id, after)
		if err != nil {
			return n, err
		}
		var batch []sealedRow
		for rows.Next() {
			var r sealedRow
			if err := rows.Scan(&r.path, &r.version, &r.keyID, &r.nonce, &r.ct); err != nil {
				rows.Close()
				return n, err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, nil
		}
		for _, r := range batch {
			plain, err := s.open(r.path, r.version, r.keyID, r.nonce, r.ct)
			if err != nil {
				return n, fmt.Errorf("%s: %w", r.path, err)
			}
			nonce, ct, err := seal(k, r.path, r.version, plain)
			if err != nil {
				return n, err
			}
			res, err := s.db.ExecContext(ctx, s.q(`UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ?
				WHERE path = ? AND version = ? AND key_id = ?`), k.id, nonce, ct, r.path, r.version, r.keyID)
			if err != nil {
				return n, err
			}
			if c, err := res.RowsAffected(); err == nil && c == 1 {
				n++
			}
		}
		after = batch[len(batch)-1].path
	}
}
