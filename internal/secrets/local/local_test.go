package local_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/secrets/secretstest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

func mustKey(t *testing.T) local.Key {
	t.Helper()
	k, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newLocal(t *testing.T, db *sql.DB, dialect store.Dialect, kr *local.Keyring) *local.Store {
	t.Helper()
	s, err := local.New(db, string(dialect), kr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dbs opens one migrated database per dialect (PostgreSQL skips without
// GATEWAY_TEST_POSTGRES_URL).
var dialects = []struct {
	name string
	open func(testing.TB) *store.Store
}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}}

func TestContract(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			st := d.open(t)
			key := mustKey(t)
			secretstest.Run(t, func(t *testing.T) secrets.Store {
				// Independent clients: own Store and own keyring (same key),
				// sharing only the database.
				return newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(key))
			})
		})
	}
}

// TestTwoDatabaseHandles races writers through two separate *sql.DB pools
// on one SQLite file, as two gateway processes would.
func TestTwoDatabaseHandles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gw.db")
	var handles []*store.Store
	for range 2 {
		s, err := store.Open(t.Context(), store.Config{URL: "sqlite:" + path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		handles = append(handles, s)
	}
	if _, err := handles[0].Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	key := mustKey(t)
	a := newLocal(t, handles[0].DB(), handles[0].Dialect(), local.NewKeyring(key))
	b := newLocal(t, handles[1].DB(), handles[1].Dialect(), local.NewKeyring(key))
	p := "/spotlight/test/users/u1/google"
	var wg sync.WaitGroup
	for i := range 30 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			err := secrets.Update(t.Context(), c, p, func(old []byte, _ bool) ([]byte, error) {
				return append(old, 'x'), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := a.Get(t.Context(), p)
	if err != nil || len(got.Value) != 30 || got.Version != 30 {
		t.Fatalf("after 30 updates: %d bytes, version %d, %v", len(got.Value), got.Version, err)
	}
}

func TestTamperDetection(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			st := d.open(t)
			db := st.DB()
			key := mustKey(t)
			s := newLocal(t, db, st.Dialect(), local.NewKeyring(key))
			ctx := t.Context()
			rebind := func(q string) string { return store.Rebind(st.Dialect(), q) }
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, rebind(q), args...); err != nil {
					t.Fatal(err)
				}
			}
			tests := []struct {
				name    string
				tamper  func(path string)
				read    func(path string) string // path to read after tampering
				wantErr error
			}{
				{"flip ciphertext byte", func(p string) {
					var ct []byte
					if err := db.QueryRowContext(ctx, rebind(`SELECT ciphertext FROM secrets WHERE path = ?`), p).Scan(&ct); err != nil {
						t.Fatal(err)
					}
					ct[len(ct)/2] ^= 0x01
					exec(`UPDATE secrets SET ciphertext = ? WHERE path = ?`, ct, p)
				}, nil, local.ErrTampered},
				{"flip nonce byte", func(p string) {
					var n []byte
					if err := db.QueryRowContext(ctx, rebind(`SELECT nonce FROM secrets WHERE path = ?`), p).Scan(&n); err != nil {
						t.Fatal(err)
					}
					n[0] ^= 0x80
					exec(`UPDATE secrets SET nonce = ? WHERE path = ?`, n, p)
				}, nil, local.ErrTampered},
				{"move row to another path", func(p string) {
					exec(`UPDATE secrets SET path = ? WHERE path = ?`, p+"-moved", p)
				}, func(p string) string { return p + "-moved" }, local.ErrTampered},
				{"copy row over another user's", func(p string) {
					other := p + "-victim"
					if _, err := s.Put(ctx, other, []byte("victim"), 0); err != nil {
						t.Fatal(err)
					}
					exec(`DELETE FROM secrets WHERE path = ?`, other)
					exec(`INSERT INTO secrets (path, version, key_id, nonce, ciphertext, updated_at)
						SELECT ?, version, key_id, nonce, ciphertext, updated_at FROM secrets WHERE path = ?`, other, p)
				}, func(p string) string { return p + "-victim" }, local.ErrTampered},
				{"change version", func(p string) {
					exec(`UPDATE secrets SET version = version + 1 WHERE path = ?`, p)
				}, nil, local.ErrTampered},
				{"truncate ciphertext", func(p string) {
					exec(`UPDATE secrets SET ciphertext = ? WHERE path = ?`, []byte{1, 2, 3}, p)
				}, nil, local.ErrTampered},
				{"unknown key id", func(p string) {
					exec(`UPDATE secrets SET key_id = ? WHERE path = ?`, "0000000000000000", p)
				}, nil, local.ErrUnknownKey},
			}
			for i, tc := range tests {
				p := fmt.Sprintf("/spotlight/test/users/u%d/google", i)
				if _, err := s.Put(ctx, p, []byte("refresh-token-"+tc.name), 0); err != nil {
					t.Fatal(err)
				}
				tc.tamper(p)
				read := p
				if tc.read != nil {
					read = tc.read(p)
				}
				got, err := s.Get(ctx, read)
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, secrets.ErrUnreadable) {
					t.Errorf("%s: Get error = %v, want %v and secrets.ErrUnreadable", tc.name, err, tc.wantErr)
				}
				if got.Value != nil {
					t.Errorf("%s: Get returned a value %q alongside the error", tc.name, got.Value)
				}
			}
		})
	}
}

// TestKeysOnOneDatabase shares one migrated SQLite file between checks that
// touch only their own paths.
func TestKeysOnOneDatabase(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	t.Run("WrongKey", func(t *testing.T) { t.Parallel(); testWrongKey(t, st) })
	t.Run("FreshNoncePerWrite", func(t *testing.T) { t.Parallel(); testFreshNoncePerWrite(t, st) })
}

func testWrongKey(t *testing.T, st *store.Store) {
	ctx := t.Context()
	k1 := mustKey(t)
	s := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(k1))
	p := "/spotlight/test/providers/zoom"
	if _, err := s.Put(ctx, p, []byte("zoom-secret"), 0); err != nil {
		t.Fatal(err)
	}
	// A keyring with another key cannot read (the id does not match) ...
	other := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(mustKey(t)))
	if _, err := other.Get(ctx, p); !errors.Is(err, local.ErrUnknownKey) {
		t.Errorf("other key: error = %v, want ErrUnknownKey", err)
	}
	// ... and a row relabelled with the other key's id fails authentication.
	k2 := mustKey(t)
	if _, err := st.DB().ExecContext(ctx, `UPDATE secrets SET key_id = ? WHERE path = ?`, k2.ID(), p); err != nil {
		t.Fatal(err)
	}
	s2 := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(k2))
	if _, err := s2.Get(ctx, p); !errors.Is(err, local.ErrTampered) {
		t.Errorf("relabelled row: error = %v, want ErrTampered", err)
	}
}

func testFreshNoncePerWrite(t *testing.T, st *store.Store) {
	ctx := t.Context()
	s := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(mustKey(t)))
	p := "/spotlight/test/users/u1/google"
	seen := map[string]bool{}
	var v int64
	for range 5 {
		var err error
		if v, err = s.Put(ctx, p, []byte("same value"), v); err != nil {
			t.Fatal(err)
		}
		var nonce, ct []byte
		if err := st.DB().QueryRowContext(ctx, `SELECT nonce, ciphertext FROM secrets WHERE path = ?`, p).Scan(&nonce, &ct); err != nil {
			t.Fatal(err)
		}
		if len(nonce) != 12 || seen[string(nonce)] {
			t.Fatalf("nonce %x reused or wrong size", nonce)
		}
		seen[string(nonce)] = true
		if bytes.Contains(ct, []byte("same value")) {
			t.Fatal("plaintext in ciphertext column")
		}
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			st := d.open(t)
			ctx := t.Context()
			k1, k2 := mustKey(t), mustKey(t)
			s := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(k1))
			want := map[string]string{}
			for i := range 150 { // more than one rotation batch
				p := fmt.Sprintf("/spotlight/test/users/u%03d/google", i)
				want[p] = "token-" + p
				if _, err := s.Put(ctx, p, []byte(want[p]), 0); err != nil {
					t.Fatal(err)
				}
			}
			before, err := s.List(ctx, "/spotlight")
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.RotateKey(ctx, k2)
			if err != nil || n != 150 {
				t.Fatalf("RotateKey = %d, %v; want 150", n, err)
			}
			var left int
			if err := st.DB().QueryRowContext(ctx, store.Rebind(st.Dialect(), `SELECT count(*) FROM secrets WHERE key_id <> ?`), k2.ID()).Scan(&left); err != nil || left != 0 {
				t.Fatalf("%d rows not on the new key, %v", left, err)
			}
			// Only the new key is needed now.
			fresh := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(k2))
			for p, v := range want {
				got, err := fresh.Get(ctx, p)
				if err != nil || string(got.Value) != v {
					t.Fatalf("after rotation Get(%s) = %q, %v", p, got.Value, err)
				}
			}
			after, err := fresh.List(ctx, "/spotlight")
			if err != nil || len(after) != len(before) {
				t.Fatalf("List after rotation: %d, %v", len(after), err)
			}
			for i := range after {
				if after[i].Version != before[i].Version {
					t.Errorf("%s version changed by rotation: %d → %d", after[i].Path, before[i].Version, after[i].Version)
				}
			}
			// The old key alone can no longer read anything.
			old := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(k1))
			if _, err := old.Get(ctx, "/spotlight/test/users/u000/google"); !errors.Is(err, local.ErrUnknownKey) {
				t.Errorf("old key after rotation: %v, want ErrUnknownKey", err)
			}
			// New writes use the new key; rotating again is a no-op.
			if _, err := s.Put(ctx, "/spotlight/test/providers/jira", []byte("j"), 0); err != nil {
				t.Fatal(err)
			}
			if n, err := s.RotateKey(ctx, k2); err != nil || n != 0 {
				t.Errorf("second RotateKey = %d, %v; want 0", n, err)
			}
		})
	}
}

func TestRotateKeyStopsOnTamperedRow(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	ctx := t.Context()
	s := newLocal(t, st.DB(), st.Dialect(), local.NewKeyring(mustKey(t)))
	for _, p := range []string{"/a/1", "/a/2"} {
		if _, err := s.Put(ctx, p, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DB().ExecContext(ctx, `UPDATE secrets SET version = 7 WHERE path = '/a/2'`); err != nil {
		t.Fatal(err)
	}
	_, err := s.RotateKey(ctx, mustKey(t))
	if !errors.Is(err, local.ErrTampered) || !strings.Contains(err.Error(), "/a/2") {
		t.Fatalf("RotateKey error = %v, want ErrTampered naming /a/2", err)
	}
	// The good row was rotated and is readable with the keyring (both keys).
	if got, err := s.Get(ctx, "/a/1"); err != nil || string(got.Value) != "v" {
		t.Fatalf("Get(/a/1) = %q, %v", got.Value, err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"std", base64.StdEncoding.EncodeToString(raw), false},
		{"raw url", base64.RawURLEncoding.EncodeToString(raw), false},
		{"with newline", base64.StdEncoding.EncodeToString(raw) + "\n", false},
		{"short", base64.StdEncoding.EncodeToString(raw[:16]), true},
		{"zeros", base64.StdEncoding.EncodeToString(make([]byte, 32)), true},
		{"not base64", "this is not base64 at all!!", true},
	}
	for _, tc := range tests {
		k, err := local.KeyFromBase64(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error = %v, wantErr %v", tc.name, err, tc.wantErr)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Errorf("%s: error echoes the key: %v", tc.name, err)
			}
			continue
		}
		if len(k.ID()) != 16 || k.Base64() != base64.StdEncoding.EncodeToString(raw) {
			t.Errorf("%s: id %q base64 %q", tc.name, k.ID(), k.Base64())
		}
		for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%#v %+v %x %s", k, k, k, k)} {
			if strings.Contains(s, k.Base64()) || strings.Contains(s, fmt.Sprintf("%x", raw)) || !strings.Contains(s, k.ID()) {
				t.Errorf("%s: formatted key %q leaks bytes or lacks the id", tc.name, s)
			}
		}
	}
	a, _ := local.KeyFromBase64(base64.StdEncoding.EncodeToString(raw))
	b := mustKey(t)
	if a.ID() == b.ID() {
		t.Error("different keys share an id")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")
	k1, err := local.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, err := local.LoadOrCreateKeyFile(path)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("second load = %v, %v; want the same key", k2.ID(), err)
	}
	// Concurrent first runs agree on one key.
	race := filepath.Join(dir, "race.key")
	ids := make(chan string, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			k, err := local.LoadOrCreateKeyFile(race)
			if err != nil {
				t.Error(err)
			}
			ids <- k.ID()
		})
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("concurrent creators got different keys %s and %s", first, id)
		}
	}
	// A world-readable key file is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := local.LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key file: error = %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", ":memory:") // New does not query; no schema needed
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr := local.NewKeyring(mustKey(t))
	if _, err := local.New(db, "mysql", kr); err == nil {
		t.Error("mysql dialect accepted")
	}
	if _, err := local.New(nil, "sqlite", kr); err == nil {
		t.Error("nil db accepted")
	}
	if _, err := local.New(db, "sqlite", local.NewKeyring(local.Key{})); err == nil {
		t.Error("zero key accepted")
	}
	if _, err := local.New(db, "sqlite", nil); err == nil {
		t.Error("nil keyring accepted")
	}
}
