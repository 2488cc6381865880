// Package secretstest is the contract suite every secrets.Store backend
// passes (like river's riverdrivertest): run it from the backend's tests
// with a function that connects a new, independent client to one shared
// backend.
package secretstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spotlight/gateway/internal/secrets"
)

// NewStore connects a new client to the backend under test. Every call
// during one Run must reach the same data (the same simulator or database)
// through independent clients (own caches, own connections, no shared
// in-process lock), so the suite can race two of them. The suite isolates
// its subtests by path prefix, so the backend need not be empty.
type NewStore func(t *testing.T) secrets.Store

// Run runs the contract suite.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStore, root string)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"VersionsIncrease", testVersionsIncrease},
		{"VersionConflict", testVersionConflict},
		{"AnyVersion", testAnyVersion},
		{"ConcurrentUpdate", testConcurrentUpdate},
		{"SecondClientSeesWrites", testSecondClient},
		{"FreshReadSeesOtherWrites", testFreshRead},
		{"Delete", testDelete},
		{"List", testList},
		{"InvalidPaths", testInvalidPaths},
		{"Redaction", testRedaction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore, uniqueRoot(tc.name))
		})
	}
}

func uniqueRoot(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "/contract/" + strings.ToLower(name) + "-" + hex.EncodeToString(b[:])
}

func testGetMissing(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	_, err := s.Get(t.Context(), root+"/missing")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

func testRoundTrip(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	values := []struct {
		name  string
		value []byte
	}{
		{"json", []byte(`{"access_token":"ya29.a0","refresh_token":"1//0g","expiry":"2026-11-25T04:00:00Z"}`)},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, '\n', 0x80}},
		{"empty", []byte{}},
		{"unicode", []byte("pässwörd ✓ ;;; gwsecret1;5;t;looks-like-a-header")},
		{"3kb", bytes.Repeat([]byte("k"), 3000)},
	}
	for _, v := range values {
		p := root + "/" + v.name
		ver, err := s.Put(ctx, p, v.value, 0)
		if err != nil {
			t.Fatalf("Put(%s) error = %v", v.name, err)
		}
		if ver <= 0 {
			t.Errorf("Put(%s) version = %d, want > 0", v.name, ver)
		}
		got, err := s.Get(ctx, p)
		if err != nil {
			t.Fatalf("Get(%s) error = %v", v.name, err)
		}
		if !bytes.Equal(got.Value, v.value) || got.Path != p || got.Version != ver {
			t.Errorf("Get(%s) = path %q version %d value %q, want %q %d %q", v.name, got.Path, got.Version, got.Value, p, ver, v.value)
		}
		if got.UpdatedAt.IsZero() {
			t.Errorf("Get(%s).UpdatedAt is zero", v.name)
		}
		// Another client reads the same bytes.
		got2, err := newStore(t).Get(ctx, p)
		if err != nil || !bytes.Equal(got2.Value, v.value) || got2.Version != ver {
			t.Errorf("second client Get(%s) = %d %q, %v", v.name, got2.Version, got2.Value, err)
		}
	}
}

func testVersionsIncrease(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	p := root + "/s"
	var last int64
	for i := range 5 {
		v, err := s.Put(ctx, p, []byte("value "+strconv.Itoa(i)), last)
		if err != nil {
			t.Fatalf("Put #%d (expected %d) error = %v", i, last, err)
		}
		if v <= last {
			t.Fatalf("Put #%d version = %d, not above %d", i, v, last)
		}
		got, err := s.Get(ctx, p)
		if err != nil || got.Version != v || string(got.Value) != "value "+strconv.Itoa(i) {
			t.Fatalf("Get after Put #%d = %d %q, %v; want version %d", i, got.Version, got.Value, err, v)
		}
		last = v
	}
}

func testVersionConflict(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	p := root + "/s"
	v1, err := s.Put(ctx, p, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		expected int64
	}{
		{"create over existing", 0},
		{"stale", v1 - 1},
		{"future", v1 + 1},
		{"far future", v1 + 100},
	}
	for _, tc := range tests {
		if tc.expected == v1 || tc.expected < 0 {
			continue
		}
		if _, err := s.Put(ctx, p, []byte("lost"), tc.expected); !errors.Is(err, secrets.ErrVersionConflict) {
			t.Errorf("%s: Put(expected %d) error = %v, want ErrVersionConflict", tc.name, tc.expected, err)
		}
	}
	got, err := s.Get(ctx, p)
	if err != nil || string(got.Value) != "one" || got.Version != v1 {
		t.Fatalf("after conflicts Get = %d %q, %v; want %d \"one\" (conflicting writes must have no effect)", got.Version, got.Value, err, v1)
	}
	v2, err := s.Put(ctx, p, []byte("two"), v1)
	if err != nil || v2 <= v1 {
		t.Fatalf("Put(expected current) = %d, %v", v2, err)
	}
	// Expecting a version of a secret that does not exist is a conflict too.
	if _, err := s.Put(ctx, root+"/absent", []byte("x"), 3); !errors.Is(err, secrets.ErrVersionConflict) {
		t.Errorf("Put(absent, expected 3) error = %v, want ErrVersionConflict", err)
	}
	if _, err := s.Get(ctx, root+"/absent"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("absent secret was created by a conflicting Put: %v", err)
	}
}

func testAnyVersion(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	p := root + "/s"
	v1, err := s.Put(ctx, p, []byte("a"), secrets.AnyVersion)
	if err != nil {
		t.Fatalf("Put(AnyVersion) create error = %v", err)
	}
	v2, err := s.Put(ctx, p, []byte("b"), secrets.AnyVersion)
	if err != nil || v2 <= v1 {
		t.Fatalf("Put(AnyVersion) overwrite = %d, %v (previous %d)", v2, err, v1)
	}
	got, err := s.Get(ctx, p)
	if err != nil || string(got.Value) != "b" {
		t.Fatalf("Get = %q, %v", got.Value, err)
	}
}

// testConcurrentUpdate races two independent clients, each with many
// goroutines, incrementing one counter through secrets.Update. Every
// increment must survive.
func testConcurrentUpdate(t *testing.T, newStore NewStore, root string) {
	ctx := t.Context()
	p := root + "/counter"
	clients := []secrets.Store{newStore(t), newStore(t)}
	const perClient = 20
	var wg sync.WaitGroup
	errs := make(chan error, len(clients)*perClient)
	for _, c := range clients {
		for range perClient {
			wg.Go(func() {
				errs <- secrets.Update(ctx, c, p, func(old []byte, exists bool) ([]byte, error) {
					n := 0
					if exists {
						var err error
						if n, err = strconv.Atoi(string(old)); err != nil {
							return nil, fmt.Errorf("counter holds %q: %w", old, err)
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update error = %v", err)
		}
	}
	want := strconv.Itoa(len(clients) * perClient)
	got, err := newStore(t).Get(ctx, p)
	if err != nil || string(got.Value) != want {
		t.Fatalf("fresh client reads counter %q, %v; want %s (lost updates)", got.Value, err, want)
	}
}

func testSecondClient(t *testing.T, newStore NewStore, root string) {
	ctx := t.Context()
	a, b := newStore(t), newStore(t)
	p := root + "/s"
	if _, err := a.Put(ctx, p, []byte("from a"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, p)
	if err != nil || string(got.Value) != "from a" {
		t.Fatalf("b.Get = %q, %v", got.Value, err)
	}
	// b writes on top of what it read; a, which wrote before, must not be
	// able to overwrite with its stale version.
	if _, err := b.Put(ctx, p, []byte("from b"), got.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, p, []byte("stale a"), got.Version); !errors.Is(err, secrets.ErrVersionConflict) {
		t.Fatalf("a.Put with stale version error = %v, want ErrVersionConflict", err)
	}
	// After its conflict, a must read b's value (a conflict invalidates caches).
	got, err = a.Get(ctx, p)
	if err != nil || string(got.Value) != "from b" {
		t.Fatalf("a.Get after conflict = %q, %v; want \"from b\"", got.Value, err)
	}
}

// testFreshRead: a Get whose context is marked by secrets.Fresh sees what
// another client wrote since this client last read, cache or not.
func testFreshRead(t *testing.T, newStore NewStore, root string) {
	ctx := t.Context()
	a, b := newStore(t), newStore(t)
	p := root + "/s"
	if _, err := a.Put(ctx, p, []byte("first"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, p); err != nil || string(got.Value) != "first" {
		t.Fatalf("b.Get = %q, %v", got.Value, err)
	}
	v, err := a.Put(ctx, p, []byte("second"), secrets.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(secrets.Fresh(ctx), p)
	if err != nil || string(got.Value) != "second" || got.Version != v {
		t.Fatalf("b's fresh Get after a's write = %q version %d, %v; want \"second\" version %d", got.Value, got.Version, err, v)
	}
	if err := a.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(secrets.Fresh(ctx), p); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("b's fresh Get after a's delete = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	p := root + "/s"
	if err := s.Delete(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Delete(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, p, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, p); err != nil { // warm any cache
		t.Fatal(err)
	}
	if err := s.Delete(ctx, p); err != nil {
		t.Fatalf("Delete error = %v", err)
	}
	if _, err := s.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	// Recreate after delete: "must not exist" holds again.
	v, err := s.Put(ctx, p, []byte("again"), 0)
	if err != nil || v <= 0 {
		t.Fatalf("Put after Delete = %d, %v", v, err)
	}
	got, err := s.Get(ctx, p)
	if err != nil || string(got.Value) != "again" {
		t.Fatalf("Get after recreate = %q, %v", got.Value, err)
	}
}

func testList(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	want := map[string]int64{}
	// More than one SSM page (10) of users, nested two levels deep.
	for i := range 13 {
		for _, prov := range []string{"google", "zoom"} {
			p := fmt.Sprintf("%s/users/u%02d/%s", root, i, prov)
			v, err := s.Put(ctx, p, []byte("secret-"+p), 0)
			if err != nil {
				t.Fatal(err)
			}
			want[p] = v
		}
	}
	// Siblings that must not match the prefix.
	for _, p := range []string{root + "/users-archive/x", root + "/usersx", root + "/providers/zoom"} {
		if _, err := s.Put(ctx, p, []byte("other"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{root + "/users", root + "/users/"} {
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%s) error = %v", prefix, err)
		}
		if len(got) != len(want) {
			t.Errorf("List(%s) returned %d secrets, want %d", prefix, len(got), len(want))
		}
		for i, sec := range got {
			if i > 0 && got[i-1].Path >= sec.Path {
				t.Errorf("List not sorted: %q before %q", got[i-1].Path, sec.Path)
			}
			if v, ok := want[sec.Path]; !ok || v != sec.Version {
				t.Errorf("List entry %q version %d unexpected (want %d, known %v)", sec.Path, sec.Version, v, ok)
			}
			if sec.Value != nil {
				t.Errorf("List entry %q carries a value", sec.Path)
			}
			if sec.UpdatedAt.IsZero() {
				t.Errorf("List entry %q has no UpdatedAt", sec.Path)
			}
		}
	}
	got, err := s.List(ctx, root+"/users/u03")
	if err != nil || len(got) != 2 {
		t.Errorf("List(one user) = %d entries, %v; want 2", len(got), err)
	}
	got, err = s.List(ctx, root+"/nothing")
	if err != nil || len(got) != 0 {
		t.Errorf("List(empty) = %v, %v", got, err)
	}
	if _, err := s.List(ctx, "relative/prefix"); !errors.Is(err, secrets.ErrInvalidPath) {
		t.Errorf("List(relative) error = %v, want ErrInvalidPath", err)
	}
}

func testInvalidPaths(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	for _, p := range []string{"", "/", "relative", root + "/../escape", root + "//double", root + "/trailing/",
		root + "/sp ace", root + "/semi;colon", root + "/./dot"} {
		if _, err := s.Get(ctx, p); !errors.Is(err, secrets.ErrInvalidPath) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidPath", p, err)
		}
		if _, err := s.Put(ctx, p, []byte("x"), secrets.AnyVersion); !errors.Is(err, secrets.ErrInvalidPath) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidPath", p, err)
		}
		if err := s.Delete(ctx, p); !errors.Is(err, secrets.ErrInvalidPath) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidPath", p, err)
		}
	}
}

// testRedaction checks that a Secret read from the backend never shows its
// value through fmt or slog, whatever the verb or handler.
func testRedaction(t *testing.T, newStore NewStore, root string) {
	s := newStore(t)
	ctx := t.Context()
	p := root + "/s"
	const value = "refresh-token-SENSITIVE-4f2a"
	if _, err := s.Put(ctx, p, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Get(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&buf, verb+"\n", sec)
		fmt.Fprintf(&buf, verb+"\n", &sec)
		fmt.Fprintf(&buf, verb+"\n", []secrets.Secret{sec})
		fmt.Fprintf(&buf, verb+"\n", map[string]any{"s": sec})
	}
	fmt.Fprintln(&buf, sec, sec.String())
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("secret", "secret", sec, "ptr", &sec)
		l.Info("secret", slog.Any("secret", sec), slog.Group("g", "s", sec))
	}
	out := buf.String()
	if strings.Contains(out, value) || strings.Contains(out, hex.EncodeToString([]byte(value))) ||
		strings.Contains(strings.ToLower(out), strings.ToLower(hex.EncodeToString([]byte(value)))) {
		t.Fatalf("secret value leaked into formatted output:\n%s", out)
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, p) {
		t.Fatalf("formatted output lacks the redaction marker or the path:\n%s", out)
	}
}
