package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/spotlight/gateway/internal/secrets"
)

func TestPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		prefix, env, sub, prov string
		wantUser, wantProv     string
		wantErr                bool
	}{
		{"ok", "spotlight", "prod", "4f1c-9a2b_x@example.com", "google", "/spotlight/prod/users/4f1c-9a2b_x@example.com/google", "/spotlight/prod/providers/google", false},
		{"sub climbs", "spotlight", "prod", "..", "google", "", "", true},
		{"sub branches", "spotlight", "prod", "a/../../providers", "zoom", "", "", true},
		{"sub with slash", "spotlight", "prod", "a/b", "zoom", "", "", true},
		{"empty sub", "spotlight", "prod", "", "zoom", "", "", true},
		{"space", "spotlight", "prod", "a b", "zoom", "", "", true},
		{"newline", "spotlight", "prod", "a\nb", "zoom", "", "", true},
		{"unicode", "spotlight", "prod", "é", "zoom", "", "", true},
		{"too long", "spotlight", "prod", strings.Repeat("a", secrets.MaxComponentLen+1), "zoom", "", "", true},
	}
	for _, tc := range tests {
		got, err := secrets.UserPath(tc.prefix, tc.env, tc.sub, tc.prov)
		if (err != nil) != tc.wantErr || got != tc.wantUser {
			t.Errorf("%s: UserPath = %q, %v; want %q, err %v", tc.name, got, err, tc.wantUser, tc.wantErr)
		}
		if err != nil && !errors.Is(err, secrets.ErrInvalidPath) {
			t.Errorf("%s: error %v is not ErrInvalidPath", tc.name, err)
		}
		if tc.wantProv != "" {
			if got, err := secrets.ProviderPath(tc.prefix, tc.env, tc.prov); err != nil || got != tc.wantProv {
				t.Errorf("%s: ProviderPath = %q, %v", tc.name, got, err)
			}
			if err := secrets.ValidPath(tc.wantUser); err != nil {
				t.Errorf("%s: UserPath result fails ValidPath: %v", tc.name, err)
			}
		}
	}
	if _, err := secrets.ProviderPath("spotlight", "..", "zoom"); !errors.Is(err, secrets.ErrInvalidPath) {
		t.Errorf("ProviderPath with env .. error = %v", err)
	}
	if got, err := secrets.UsersPrefix("spotlight", "dev", "u1"); err != nil || got != "/spotlight/dev/users/u1" {
		t.Errorf("UsersPrefix = %q, %v", got, err)
	}
}

func TestListPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/", "/"}, {"/a", "/a/"}, {"/a/b/", "/a/b/"}, {"a", ""}, {"", ""}, {"/a/../b", ""}, {"//", ""},
	}
	for _, tc := range tests {
		got, err := secrets.ListPrefix(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("ListPrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// memStore is a minimal in-memory Store used to test Update's loop; it can
// inject conflicts.
type memStore struct {
	mu        sync.Mutex
	val       []byte
	ver       int64
	conflicts int // next n Puts conflict after bumping the version (someone else wrote)
	puts      int
}

func (m *memStore) Get(_ context.Context, p string) (secrets.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ver == 0 {
		return secrets.Secret{}, secrets.ErrNotFound
	}
	return secrets.Secret{Path: p, Value: append([]byte(nil), m.val...), Version: m.ver}, nil
}

func (m *memStore) Put(_ context.Context, _ string, v []byte, expected int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.conflicts > 0 {
		m.conflicts--
		m.val = append(m.val, '!') // a concurrent writer's change
		m.ver++
		return 0, secrets.ErrVersionConflict
	}
	if expected != secrets.AnyVersion && expected != m.ver {
		return 0, secrets.ErrVersionConflict
	}
	m.val, m.ver = v, m.ver+1
	return m.ver, nil
}

func (m *memStore) Delete(context.Context, string) error { return nil }
func (m *memStore) List(context.Context, string) ([]secrets.Secret, error) {
	return nil, nil
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	appendX := func(old []byte, _ bool) ([]byte, error) { return append(old, 'x'), nil }

	m := &memStore{}
	var sawExists []bool
	err := secrets.Update(ctx, m, "/a/b", func(old []byte, exists bool) ([]byte, error) {
		sawExists = append(sawExists, exists)
		return []byte("first"), nil
	})
	if err != nil || string(m.val) != "first" || len(sawExists) != 1 || sawExists[0] {
		t.Fatalf("create via Update: %v, %q, exists=%v", err, m.val, sawExists)
	}

	m = &memStore{val: []byte("a"), ver: 1, conflicts: 3}
	if err := secrets.Update(ctx, m, "/a/b", appendX); err != nil {
		t.Fatal(err)
	}
	// Three concurrent writes each appended "!"; the update re-read and kept them.
	if string(m.val) != "a!!!x" || m.puts != 4 {
		t.Fatalf("after conflicts: %q in %d puts, want a!!!x in 4", m.val, m.puts)
	}

	m = &memStore{val: []byte("a"), ver: 1, conflicts: secrets.MaxUpdateAttempts + 5}
	if err := secrets.Update(ctx, m, "/a/b", appendX); !errors.Is(err, secrets.ErrVersionConflict) {
		t.Fatalf("endless conflicts: %v, want ErrVersionConflict", err)
	}

	boom := errors.New("boom")
	m = &memStore{val: []byte("a"), ver: 1}
	if err := secrets.Update(ctx, m, "/a/b", func([]byte, bool) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) || m.puts != 0 {
		t.Fatalf("fn error: %v after %d puts", err, m.puts)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	m = &memStore{val: []byte("a"), ver: 1, conflicts: 1}
	if err := secrets.Update(cctx, m, "/a/b", appendX); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestSecretFormattingRedacts(t *testing.T) {
	t.Parallel()
	s := secrets.Secret{Path: "/a/b", Value: []byte("hunter2"), Version: 3}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		out := fmt.Sprintf(verb, s)
		if strings.Contains(out, "hunter2") || strings.Contains(out, "68756e74657232") {
			t.Errorf("%s leaks: %s", verb, out)
		}
	}
	if out := fmt.Sprintf("%v", s); !strings.Contains(out, "[redacted]") || !strings.Contains(out, "/a/b") || !strings.Contains(out, "Version:3") {
		t.Errorf("%%v = %s", out)
	}
}
