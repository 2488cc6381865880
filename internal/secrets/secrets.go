// Package secrets defines the gateway's secret store: a small interface with
// optimistic concurrency (every secret carries a version, and a write can be
// made conditional on the version read before), path helpers that build the
// gateway's SSM-style hierarchy from validated components, and Update, a
// read-modify-write loop that re-reads and retries on a version conflict.
//
// Backends live in sibling packages: secrets/ssm (AWS SSM Parameter Store)
// and secrets/local (AES-256-GCM rows in the gateway database). The shared
// contract suite that both pass is secrets/secretstest.
//
// A Secret's value is never printed: String, GoString, Format and LogValue
// all render it as "[redacted]", so fmt verbs and slog attributes are safe.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
)

// Errors returned by every Store (wrapped; test with errors.Is).
var (
	// ErrNotFound means no secret exists at the path.
	ErrNotFound = errors.New("secrets: not found")
	// ErrVersionConflict means the secret's current version is not the
	// expected one (another writer came first). Re-read and try again.
	ErrVersionConflict = errors.New("secrets: version conflict")
	// ErrInvalidPath means a path or path component failed validation.
	ErrInvalidPath = errors.New("secrets: invalid path")
	// ErrValueTooLarge means the value exceeds what the backend (or its
	// configured tier) can hold.
	ErrValueTooLarge = errors.New("secrets: value too large")
	// ErrUnreadable means a secret exists but its stored value cannot be
	// read, now or later: it was tampered with, or sealed with a key the
	// store does not hold. Writing or deleting it still works. Backends
	// return it where they can tell (the local one does).
	ErrUnreadable = errors.New("secrets: stored value unreadable")
)

// AnyVersion as expectedVersion makes Put unconditional (create or overwrite).
const AnyVersion int64 = -1

// Secret is one stored secret. Value is nil in List results.
type Secret struct {
	// Path is the full hierarchical name, e.g. /spotlight/prod/users/abc/google.
	Path string
	// Value is the secret material. It is never printed or logged.
	Value []byte
	// Version increases with every successful write to Path (it may restart
	// at 1 after a Delete).
	Version int64
	// UpdatedAt is when this version was written.
	UpdatedAt time.Time
}

const redacted = "[redacted]"

// String renders the secret's metadata with the value redacted.
func (s Secret) String() string {
	return fmt.Sprintf("Secret{Path:%s Version:%d UpdatedAt:%s Value:%s}",
		s.Path, s.Version, s.UpdatedAt.UTC().Format(time.RFC3339Nano), redacted)
}

// GoString implements fmt.GoStringer so %#v is redacted too.
func (s Secret) GoString() string { return "secrets." + s.String() }

// Format implements fmt.Formatter: every verb (%v, %+v, %#v, %s, %q, %x, ...)
// prints the redacted form, so no verb can leak the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = fmt.Fprint(f, s.GoString())
	case verb == 'q':
		_, _ = fmt.Fprintf(f, "%q", s.String())
	default:
		_, _ = fmt.Fprint(f, s.String())
	}
}

// LogValue implements slog.LogValuer: path, version and time, never the value.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("path", s.Path),
		slog.Int64("version", s.Version),
		slog.Time("updated_at", s.UpdatedAt),
		slog.String("value", redacted),
	)
}

// Store is a versioned secret store. Implementations are safe for concurrent
// use by multiple goroutines and by multiple processes sharing one backend.
type Store interface {
	// Get returns the current secret at path, or an error wrapping
	// ErrNotFound. A Store may answer from a cache of recent reads, except
	// when ctx is marked by Fresh.
	Get(ctx context.Context, path string) (Secret, error)
	// Put writes value at path and returns the new version. expectedVersion
	// 0 means the secret must not exist yet, a positive number must equal the
	// current version, and AnyVersion writes unconditionally. A mismatch
	// returns an error wrapping ErrVersionConflict and changes nothing.
	Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error)
	// Delete removes the secret and all its versions. Deleting a missing
	// secret returns an error wrapping ErrNotFound (callers that do not care
	// test for it with errors.Is). Versions restart at 1 when the path is
	// written again, so a version read before a Delete must not be reused
	// after it (a writer holding it could match the new secret's version).
	Delete(ctx context.Context, path string) error
	// List returns the metadata (Value nil) of every secret below prefix,
	// recursively, sorted by path, all pages. prefix is a hierarchy: "/a/b"
	// matches "/a/b/c" and "/a/b/c/d" but neither "/a/b" itself nor "/a/bc".
	List(ctx context.Context, prefix string) ([]Secret, error)
}

type freshKey struct{}

// Fresh returns ctx marked so that a Store's Get with it reads the backend
// itself, never a cache of recent reads (the ssm backend keeps one for
// Config.CacheTTL): for reads that must see what another process wrote
// since, such as a token another replica has just refreshed.
func Fresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// IsFresh reports whether ctx was marked by Fresh. A Store that caches
// reads must not answer Get from its cache when it is true.
func IsFresh(ctx context.Context) bool {
	v, _ := ctx.Value(freshKey{}).(bool)
	return v
}

// UserPath is where a user's credentials for one provider live:
// /{prefix}/{env}/users/{sub}/{provider}. Every component is validated with
// ValidComponent; the sub comes from a token and must not be able to climb
// or branch the hierarchy.
func UserPath(prefix, env, sub, provider string) (string, error) {
	return join(prefix, env, "users", sub, provider)
}

// ProviderPath is where provider-level (account) credentials live:
// /{prefix}/{env}/providers/{provider}.
func ProviderPath(prefix, env, provider string) (string, error) {
	return join(prefix, env, "providers", provider)
}

// UsersPrefix is the List prefix covering one user's credentials:
// /{prefix}/{env}/users/{sub}.
func UsersPrefix(prefix, env, sub string) (string, error) {
	return join(prefix, env, "users", sub)
}

func join(parts ...string) (string, error) {
	for _, p := range parts {
		if err := ValidComponent(p); err != nil {
			return "", err
		}
	}
	return "/" + strings.Join(parts, "/"), nil
}

// MaxComponentLen bounds one path component.
const MaxComponentLen = 128

// ValidComponent reports whether s may be used as one path component: 1 to
// MaxComponentLen characters from [A-Za-z0-9_.@-], not "." or "..". These
// are a subset of what SSM parameter names allow, so a valid path is a valid
// SSM name in every backend.
func ValidComponent(s string) error {
	if s == "" || len(s) > MaxComponentLen || s == "." || s == ".." {
		return fmt.Errorf("%w: component %q", ErrInvalidPath, s)
	}
	for _, r := range s {
		if !componentRune(r) {
			return fmt.Errorf("%w: component %q has character %q", ErrInvalidPath, s, r)
		}
	}
	return nil
}

func componentRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '.' || r == '@' || r == '-'
}

// MaxPathLen bounds a full path. SSM allows 1011 characters for a name, but
// counts the ARN before it too (arn:<partition>:ssm:<region>:<account>:parameter/,
// 45 characters in us-east-2 and under 70 in any partition), so a path stays
// below 1011-70 characters to be a valid name in every region.
const MaxPathLen = 940

// ValidPath reports whether p is an absolute path of valid components
// ("/a/b"), as every Store requires for Get, Put and Delete.
func ValidPath(p string) error {
	if len(p) < 2 || len(p) > MaxPathLen || p[0] != '/' {
		return fmt.Errorf("%w: %q must start with / and have at least one component", ErrInvalidPath, p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		if err := ValidComponent(c); err != nil {
			return fmt.Errorf("%w (in %q)", err, p)
		}
	}
	return nil
}

// ListPrefix validates a List prefix and returns it normalised to end in
// "/" ("/" itself lists everything).
func ListPrefix(prefix string) (string, error) {
	if prefix == "/" {
		return "/", nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if err := ValidPath(p); err != nil {
		return "", err
	}
	return p + "/", nil
}

// UpdateFunc computes a new value from the current one (old is nil and
// exists false when the secret does not exist). It may be called several
// times and must not have side effects that cannot be repeated. Returning
// an error aborts the update with that error.
type UpdateFunc func(old []byte, exists bool) ([]byte, error)

// MaxUpdateAttempts bounds Update's retries on version conflicts.
const MaxUpdateAttempts = 50

// Update applies fn as a read-modify-write of the secret at path: it reads
// the current value and version, computes the new value, writes it
// conditionally on that version, and on ErrVersionConflict re-reads and
// tries again (up to MaxUpdateAttempts, with a short random pause of at
// most 20ms that grows with the attempt). So two
// writers updating the same secret never lose each other's update.
func Update(ctx context.Context, s Store, path string, fn UpdateFunc) error {
	var lastErr error
	for attempt := range MaxUpdateAttempts {
		if attempt > 0 {
			// Back off a little so racing writers interleave instead of
			// colliding again in lock step.
			d := rand.N(min(time.Duration(attempt)*2*time.Millisecond, 20*time.Millisecond)) + time.Millisecond
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("secrets: update %s: %w", path, ctx.Err())
			case <-t.C:
			}
		}
		cur, err := s.Get(ctx, path)
		exists := true
		switch {
		case errors.Is(err, ErrNotFound):
			exists, cur = false, Secret{}
		case err != nil:
			return fmt.Errorf("secrets: update %s: %w", path, err)
		}
		next, err := fn(cur.Value, exists)
		if err != nil {
			return err
		}
		_, err = s.Put(ctx, path, next, cur.Version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrVersionConflict) {
			return fmt.Errorf("secrets: update %s: %w", path, err)
		}
		lastErr = err
	}
	return fmt.Errorf("secrets: update %s: gave up after %d attempts: %w", path, MaxUpdateAttempts, lastErr)
}
