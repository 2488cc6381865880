package webhooks_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/webhooks"
)

// TestCachedSecretsWhileStoreFails: once the secret store stops answering,
// the secrets last read keep verifying deliveries for another ttl without
// every delivery asking the store again (at intake rate, one after the
// other), and without waiting for a refresh under way; after that the
// error shows, and the store is asked again once the retry pause passed.
func TestCachedSecretsWhileStoreFails(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	var (
		mu    sync.Mutex
		now   = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		calls atomic.Int64
		fail  atomic.Bool
		block atomic.Pointer[chan struct{}]
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	errDown := errors.New("secret store down")
	load := func(ctx context.Context) (webhooks.Secrets, error) {
		calls.Add(1)
		if ch := block.Load(); ch != nil {
			<-*ch
		}
		if fail.Load() {
			return webhooks.Secrets{}, errDown
		}
		return webhooks.Secrets{Zoom: []string{"s1"}}, nil
	}
	get := webhooks.CachedSecrets(load, ttl, clock)
	ctx := t.Context()
	if s, err := get(ctx); err != nil || s.Zoom[0] != "s1" || calls.Load() != 1 {
		t.Fatalf("first read: %v %v, %d loads", s, err, calls.Load())
	}

	// The store fails: deliveries keep the cached secrets, and the store
	// is asked once, not once per delivery.
	fail.Store(true)
	advance(ttl + time.Second)
	for i := range 100 {
		if s, err := get(ctx); err != nil || len(s.Zoom) != 1 {
			t.Fatalf("delivery %d while the store fails: %v %v", i, s, err)
		}
	}
	// The refresh runs in the background: wait for it to fail.
	for deadline := time.Now().Add(5 * time.Second); calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for i := range 100 {
		if s, err := get(ctx); err != nil || len(s.Zoom) != 1 {
			t.Fatalf("delivery %d after the failed refresh: %v %v", i, s, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d loads for 200 deliveries while the store fails, want 1 more than the first", n)
	}

	// A refresh that hangs (a store that stopped answering) does not hold
	// up deliveries while the cached secrets may still be used.
	advance(10 * time.Second)
	release := make(chan struct{})
	block.Store(&release)
	started := make(chan struct{})
	go func() {
		close(started)
		_, _ = get(context.Background())
	}()
	<-started
	for calls.Load() != 3 {
		time.Sleep(time.Millisecond)
	}
	got := make(chan error, 1)
	go func() {
		_, err := get(ctx)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("delivery during a hanging refresh: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("a delivery waited for a hanging refresh of the secrets")
	}
	close(release)
	block.Store(nil)

	// Past twice the ttl the cached secrets are no longer used.
	advance(ttl)
	if _, err := get(ctx); !errors.Is(err, errDown) {
		t.Fatalf("after 2×ttl: %v, want the store's error", err)
	}
	// The store answers again: the next read after the pause refreshes.
	fail.Store(false)
	advance(ttl)
	if s, err := get(ctx); err != nil || s.Zoom[0] != "s1" {
		t.Fatalf("store back: %v %v", s, err)
	}
}

// TestCachedSecretsRefreshInBackground: once the cached secrets are older
// than the ttl, no delivery waits for the slow source (the first one starts
// the refresh and goes on with the cached secrets, as Zoom's url_validation
// must be answered within 3 s); the next deliveries after the refresh get
// what it read.
func TestCachedSecretsRefreshInBackground(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	var (
		mu      sync.Mutex
		now     = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		secret  atomic.Pointer[string]
		release = make(chan struct{})
		calls   atomic.Int64
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	first := "s1"
	secret.Store(&first)
	get := webhooks.CachedSecrets(func(ctx context.Context) (webhooks.Secrets, error) {
		if calls.Add(1) > 1 {
			<-release // the store is slow to answer
		}
		return webhooks.Secrets{Zoom: []string{*secret.Load()}}, nil
	}, ttl, clock)
	if s, err := get(t.Context()); err != nil || s.Zoom[0] != "s1" {
		t.Fatalf("first read: %v %v", s, err)
	}
	next := "s2"
	secret.Store(&next)
	mu.Lock()
	now = now.Add(ttl + time.Second)
	mu.Unlock()
	got := make(chan webhooks.Secrets, 1)
	go func() {
		s, _ := get(t.Context())
		got <- s
	}()
	select {
	case s := <-got:
		if len(s.Zoom) != 1 || s.Zoom[0] != "s1" {
			t.Fatalf("during the refresh: %v, want the cached s1", s)
		}
	case <-time.After(3 * time.Second):
		close(release)
		t.Fatal("the first delivery after the ttl waited for the secret store")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := get(t.Context())
		if err == nil && s.Zoom[0] == "s2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the refresh: %v %v, want s2", s, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}
