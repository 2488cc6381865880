package outbound_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/outbound/outboundtest"
)

// fakeClock is the shared fake clock of outbound-based tests.
type fakeClock = outboundtest.Clock

func newFakeClock() *fakeClock {
	return outboundtest.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
}

// step is one scripted response of the test server.
type step struct {
	status int
	header map[string]string
	body   string
}

// script serves steps in order (the last one repeats) and records the
// request bodies it received.
type script struct {
	mu     sync.Mutex
	steps  []step
	hits   int
	bodies []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	st := s.steps[min(s.hits, len(s.steps)-1)]
	s.hits++
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	for k, v := range st.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(st.status)
	_, _ = io.WriteString(w, st.body)
}

func (s *script) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func googleRetryable(resp *http.Response, body []byte) (bool, bool) {
	if resp.StatusCode != http.StatusForbidden {
		return false, false
	}
	switch {
	case bytes.Contains(body, []byte("rateLimitExceeded")), bytes.Contains(body, []byte("userRateLimitExceeded")):
		return true, true
	case bytes.Contains(body, []byte("quotaExceeded")):
		return false, true
	}
	return false, false
}

func TestRetries(t *testing.T) {
	t.Parallel()
	clockStart := newFakeClock().Now()
	tests := []struct {
		name         string
		method       string
		safe         bool
		retryable    func(*http.Response, []byte) (bool, bool)
		steps        []step
		wantHits     int
		wantStatus   int
		wantSleeps   []time.Duration // nil: only check the count and the backoff ceiling
		wantClass    outbound.Class  // class of NewError for the final response; 0 = success
		wantRetryAft time.Duration
	}{
		{
			name: "GET 503 retried then success", method: http.MethodGet,
			steps:    []step{{status: 503}, {status: 503}, {status: 200}},
			wantHits: 3, wantStatus: 200,
		},
		{
			name: "GET 429 Retry-After seconds waited out", method: http.MethodGet,
			steps:    []step{{status: 429, header: map[string]string{"Retry-After": "2"}}, {status: 200}},
			wantHits: 1 + 1, wantStatus: 200, wantSleeps: []time.Duration{2 * time.Second},
		},
		{
			name: "GET 503 Retry-After HTTP date waited out", method: http.MethodGet,
			steps: []step{
				{status: 503, header: map[string]string{"Retry-After": clockStart.Add(3 * time.Second).Format(http.TimeFormat)}},
				{status: 204},
			},
			wantHits: 2, wantStatus: 204, wantSleeps: []time.Duration{3 * time.Second},
		},
		{
			name: "GET 502 exhausted surfaces transient", method: http.MethodGet,
			steps:    []step{{status: 502}},
			wantHits: 4, wantStatus: 502, wantClass: outbound.Transient,
		},
		{
			name: "GET 504 exhausted surfaces transient", method: http.MethodGet,
			steps:    []step{{status: 504}},
			wantHits: 4, wantStatus: 504, wantClass: outbound.Transient,
		},
		{
			name: "GET 404 permanent not retried", method: http.MethodGet,
			steps:    []step{{status: 404}, {status: 200}},
			wantHits: 1, wantStatus: 404, wantClass: outbound.Permanent, wantSleeps: []time.Duration{},
		},
		{
			name: "PUT 400 permanent not retried", method: http.MethodPut,
			steps:    []step{{status: 400}, {status: 200}},
			wantHits: 1, wantStatus: 400, wantClass: outbound.Permanent, wantSleeps: []time.Duration{},
		},
		{
			name: "DELETE 503 retried", method: http.MethodDelete,
			steps:    []step{{status: 503}, {status: 204}},
			wantHits: 2, wantStatus: 204,
		},
		{
			name: "POST 503 not retried unless safe", method: http.MethodPost,
			steps:    []step{{status: 503}, {status: 201}},
			wantHits: 1, wantStatus: 503, wantClass: outbound.Transient, wantSleeps: []time.Duration{},
		},
		{
			name: "PATCH 429 not retried unless safe", method: http.MethodPatch,
			steps:    []step{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 204}},
			wantHits: 1, wantStatus: 429, wantClass: outbound.Transient, wantSleeps: []time.Duration{}, wantRetryAft: time.Second,
		},
		{
			name: "POST 503 retried when safe", method: http.MethodPost, safe: true,
			steps:    []step{{status: 503}, {status: 503}, {status: 201}},
			wantHits: 3, wantStatus: 201,
		},
		{
			name: "Retry-After beyond MaxDelay returned to the caller", method: http.MethodGet,
			steps:    []step{{status: 429, header: map[string]string{"Retry-After": "3600"}}, {status: 200}},
			wantHits: 1, wantStatus: 429, wantClass: outbound.Transient, wantSleeps: []time.Duration{}, wantRetryAft: time.Hour,
		},
		{
			name: "Retryable hook: 403 rateLimitExceeded retried", method: http.MethodGet, retryable: googleRetryable,
			steps:    []step{{status: 403, body: `{"error":{"errors":[{"reason":"rateLimitExceeded"}]}}`}, {status: 200}},
			wantHits: 2, wantStatus: 200,
		},
		{
			name: "Retryable hook: 403 quotaExceeded not hammered", method: http.MethodGet, retryable: googleRetryable,
			steps:    []step{{status: 403, body: `{"error":{"errors":[{"reason":"quotaExceeded"}]}}`}, {status: 200}},
			wantHits: 1, wantStatus: 403, wantClass: outbound.Permanent, wantSleeps: []time.Duration{},
		},
		{
			name: "500 is not in the retry set", method: http.MethodGet,
			steps:    []step{{status: 500}, {status: 200}},
			wantHits: 1, wantStatus: 500, wantClass: outbound.Transient, wantSleeps: []time.Duration{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &script{steps: tt.steps}
			ts := httptest.NewServer(srv)
			t.Cleanup(ts.Close)
			clk := newFakeClock()
			c := outbound.NewClient(outbound.Config{
				Provider: "test", Sleep: clk.Sleep, Now: clk.Now, Retryable: tt.retryable, BreakerFailures: -1,
			})
			ctx := t.Context()
			if tt.safe {
				ctx = outbound.WithRetrySafe(ctx)
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, ts.URL+"/x", strings.NewReader(`{"n":1}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := srv.Hits(); got != tt.wantHits {
				t.Errorf("server hits = %d, want %d", got, tt.wantHits)
			}
			for i, b := range srv.bodies {
				if b != `{"n":1}` {
					t.Errorf("attempt %d body = %q, want the replayed request body", i+1, b)
				}
			}
			if tt.retryable != nil && resp.StatusCode == 403 && !strings.Contains(string(body), "quotaExceeded") {
				t.Errorf("response body not restored after Retryable: %q", body)
			}
			sleeps := clk.Sleeps()
			if tt.wantSleeps != nil {
				if diff := cmp.Diff(tt.wantSleeps, sleeps, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("sleeps (-want +got):\n%s", diff)
				}
			} else {
				if len(sleeps) != tt.wantHits-1 {
					t.Errorf("slept %d times, want %d", len(sleeps), tt.wantHits-1)
				}
				for i, d := range sleeps {
					ceil := backoffCeil(outbound.DefaultBaseDelay, outbound.DefaultMaxDelay, i)
					if d < 0 || d > ceil {
						t.Errorf("backoff %d = %v, want within [0, %v]", i+1, d, ceil)
					}
				}
			}
			if tt.wantClass != 0 {
				e := outbound.NewError("test", "op", resp, "", "")
				if e.Class != tt.wantClass {
					t.Errorf("class = %v, want %v", e.Class, tt.wantClass)
				}
				if e.RetryAfter != tt.wantRetryAft {
					t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetryAft)
				}
			}
		})
	}
}

func TestBackoffJitterIsBoundedAndVaries(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&script{steps: []step{{status: 503}}})
	t.Cleanup(ts.Close)
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{
		Provider: "test", Sleep: clk.Sleep, Now: clk.Now, MaxAttempts: 50, BreakerFailures: -1,
		BaseDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond,
	})
	resp, err := c.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := map[time.Duration]bool{}
	for i, d := range clk.Sleeps() {
		ceil := backoffCeil(100*time.Millisecond, 400*time.Millisecond, i)
		if d < 0 || d > ceil {
			t.Fatalf("backoff %d = %v outside [0, %v]", i+1, d, ceil)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 49 waits: no jitter?", len(seen))
	}
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	// A closed server: every dial is refused, so even a POST is retried
	// (it never reached the provider).
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	var resets atomic.Int32
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resets.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // the request arrived; the response is lost
		}
	}))
	t.Cleanup(reset.Close)

	tests := []struct {
		name      string
		url       string
		method    string
		wantSleep int
	}{
		{"POST dial refused retried", closedURL, http.MethodPost, 3},
		{"GET dial refused retried", closedURL, http.MethodGet, 3},
		{"POST response lost not retried", reset.URL, http.MethodPost, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			c := outbound.NewClient(outbound.Config{Provider: "test", Sleep: clk.Sleep, Now: clk.Now, BreakerFailures: -1})
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, tt.url, strings.NewReader("x"))
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("Do succeeded, want error")
			}
			var oe *outbound.Error
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *outbound.Error", err)
			}
			if !oe.Transient() || oe.Status != 0 || oe.Provider != "test" {
				t.Errorf("error = %+v, want transient transport error of provider test", oe)
			}
			if got := len(clk.Sleeps()); got != tt.wantSleep {
				t.Errorf("retries = %d, want %d", got, tt.wantSleep)
			}
		})
	}
	// GET on a lost response is retried to exhaustion.
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{Provider: "test", Sleep: clk.Sleep, Now: clk.Now, BreakerFailures: -1})
	before := resets.Load()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reset.URL, nil)
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("GET succeeded, want error")
	}
	if got := resets.Load() - before; got != 4 {
		t.Errorf("GET on lost responses reached the server %d times, want 4", got)
	}
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-r.Context().Done() // hang until the client gives up
	}))
	t.Cleanup(ts.Close)
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{
		Provider: "test", Timeout: 50 * time.Millisecond, MaxAttempts: 2, Sleep: clk.Sleep, Now: clk.Now, BreakerFailures: -1,
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL, nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("want timeout error")
	}
	if !outbound.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want transient deadline exceeded", err)
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("attempts = %d, want 2", got)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()
	t.Run("during request", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/nohang" {
				return
			}
			close(arrived)
			<-r.Context().Done()
		}))
		t.Cleanup(ts.Close)
		clk := newFakeClock()
		c := outbound.NewClient(outbound.Config{Provider: "test", Sleep: clk.Sleep, Now: clk.Now, BreakerFailures: 1})
		ctx, cancel := context.WithCancel(t.Context())
		go func() { <-arrived; cancel() }()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
		_, err := c.Do(req)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(clk.Sleeps()) != 0 {
			t.Errorf("cancelled call was retried")
		}
		// A cancellation is not a provider failure: the breaker (threshold 1) stays closed.
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/nohang", nil)
		ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel2()
		resp, err := c.Do(req.WithContext(ctx2))
		if err != nil {
			t.Fatalf("call after cancellation: %v (breaker must stay closed)", err)
		}
		resp.Body.Close()
	})
	t.Run("during backoff wait", func(t *testing.T) {
		t.Parallel()
		srv := &script{steps: []step{{status: 503}}}
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		ctx, cancel := context.WithCancel(t.Context())
		c := outbound.NewClient(outbound.Config{
			Provider: "test", BreakerFailures: -1,
			Sleep: func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() },
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
		_, err := c.Do(req)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if srv.Hits() != 1 {
			t.Errorf("hits = %d, want 1", srv.Hits())
		}
	})
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(ts.Close)
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{
		Provider: "test", Sleep: clk.Sleep, Now: clk.Now, MaxAttempts: 1,
		BreakerFailures: 3, BreakerCooldown: 30 * time.Second,
	})
	get := func() (int, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	failing.Store(true)
	for i := range 3 {
		if st, err := get(); err != nil || st != 500 {
			t.Fatalf("call %d: %d %v, want 500", i, st, err)
		}
	}
	// Open: rejected without reaching the server.
	_, err := get()
	var oe *outbound.Error
	if !errors.Is(err, outbound.ErrCircuitOpen) || !errors.As(err, &oe) || !oe.Transient() {
		t.Fatalf("err = %v, want transient ErrCircuitOpen", err)
	}
	if oe.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter = %v, want the cooldown, 30s", oe.RetryAfter)
	}
	// The rejection says how much of the cooldown is left.
	clk.Advance(10 * time.Second)
	if _, err := get(); !errors.As(err, &oe) || oe.RetryAfter != 20*time.Second {
		t.Errorf("10s into the cooldown: %v, want RetryAfter 20s", err)
	}
	if hits.Load() != 3 {
		t.Fatalf("hits = %d, want 3 (open circuit must not call)", hits.Load())
	}
	// After the cooldown a failed probe reopens it.
	clk.Advance(20 * time.Second)
	if st, err := get(); err != nil || st != 500 {
		t.Fatalf("probe: %d %v, want 500", st, err)
	}
	if _, err := get(); !errors.Is(err, outbound.ErrCircuitOpen) {
		t.Fatalf("after failed probe err = %v, want ErrCircuitOpen", err)
	}
	// Provider recovers; after the next cooldown the probe succeeds and closes it.
	failing.Store(false)
	clk.Advance(30 * time.Second)
	for i := range 5 {
		if st, err := get(); err != nil || st != 200 {
			t.Fatalf("after recovery call %d: %d %v, want 200", i, st, err)
		}
	}
	if hits.Load() != 3+1+5 {
		t.Errorf("hits = %d, want 9", hits.Load())
	}
}

func TestCircuitBreakerSingleHalfOpenProbe(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	probeIn := make(chan struct{}, 1)
	var failing atomic.Bool
	failing.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		probeIn <- struct{}{}
		<-release
	}))
	t.Cleanup(ts.Close)
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{Provider: "test", Sleep: clk.Sleep, Now: clk.Now, MaxAttempts: 1, BreakerFailures: 1})
	do := func() error {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := do(); err != nil {
		t.Fatal(err)
	}
	failing.Store(false)
	clk.Advance(outbound.DefaultBreakerCooldown)
	done := make(chan error)
	go func() { done <- do() }()
	<-probeIn // the probe is in flight
	if err := do(); !errors.Is(err, outbound.ErrCircuitOpen) {
		t.Errorf("second call during probe: %v, want ErrCircuitOpen", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("probe: %v", err)
	}
	go func() {
		for range probeIn {
		}
	}()
	if err := do(); err != nil {
		t.Errorf("after successful probe: %v", err)
	}
	close(probeIn)
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	srv := &script{steps: []step{{status: 200}}}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	clk := newFakeClock()
	frozen := clk.Now()
	c := outbound.NewClient(outbound.Config{
		Provider: "test", RatePerSecond: 10, Burst: 2, BreakerFailures: -1,
		// A frozen clock: no time passes except what the limiter asks for.
		Now:   func() time.Time { return frozen },
		Sleep: clk.Sleep,
	})
	for range 4 {
		resp, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Burst 2 passes at once; then each call waits for its token.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	if diff := cmp.Diff(want, clk.Sleeps()); diff != "" {
		t.Errorf("limiter waits (-want +got):\n%s", diff)
	}
	if srv.Hits() != 4 {
		t.Errorf("hits = %d, want 4", srv.Hits())
	}
}

func TestMetricsAndBreadcrumbs(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&script{steps: []step{{status: 503}, {status: 404}}})
	t.Cleanup(ts.Close)
	reg := prometheus.NewRegistry()
	clk := newFakeClock()
	c := outbound.NewClient(outbound.Config{
		Provider: "zoom", Sleep: clk.Sleep, Now: clk.Now, Metrics: outbound.NewMetrics(reg), BreakerFailures: -1,
	})

	var mu sync.Mutex
	var crumbs []*sentry.Breadcrumb
	client, err := sentry.NewClient(sentry.ClientOptions{
		BeforeBreadcrumb: func(b *sentry.Breadcrumb, _ *sentry.BreadcrumbHint) *sentry.Breadcrumb {
			mu.Lock()
			defer mu.Unlock()
			crumbs = append(crumbs, b)
			return b
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	ctx := outbound.WithOperation(sentry.SetHubOnContext(t.Context(), hub), "get_meeting")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v2/meetings/1?access_token=SECRETQ", nil)
	req.Header.Set("Authorization", "Bearer SECRETH")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"gateway_outbound_requests_total{operation=get_meeting,outcome=client_error,provider=zoom}": 1,
		"gateway_outbound_retries_total{operation=get_meeting,provider=zoom}":                       1,
		"gateway_outbound_request_duration_seconds{operation=get_meeting,provider=zoom}":            1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(crumbs) != 1 {
		t.Fatalf("breadcrumbs = %d, want 1 per call", len(crumbs))
	}
	b := crumbs[0]
	if b.Data["method"] != "GET" || b.Data["path"] != "/v2/meetings/1" || b.Data["status_code"] != 404 ||
		b.Data["host"] != req.URL.Host || b.Data["attempts"] != 2 {
		t.Errorf("breadcrumb data = %v", b.Data)
	}
	if s := fmt.Sprintf("%+v", b); strings.Contains(s, "SECRET") {
		t.Errorf("breadcrumb leaks query or headers: %s", s)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},
		{"2026-11-26T00:00:00Z", 14 * time.Hour},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.v != "" {
			h.Set("Retry-After", tt.v)
		}
		if got := outbound.ParseRetryAfter(h, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestNewError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   outbound.Class
	}{
		{400, outbound.Permanent}, {401, outbound.Permanent}, {403, outbound.Permanent}, {404, outbound.Permanent},
		{408, outbound.Transient}, {409, outbound.Permanent}, {429, outbound.Transient},
		{500, outbound.Transient}, {502, outbound.Transient}, {503, outbound.Transient},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Retry-After": {"7"}}}
		e := outbound.NewError("zoom", "get_meeting", resp, strconv.Itoa(tt.status*10), "msg")
		if e.Class != tt.want || e.Transient() != (tt.want == outbound.Transient) {
			t.Errorf("status %d: class %v, want %v", tt.status, e.Class, tt.want)
		}
		if e.RetryAfter != 7*time.Second || e.Status != tt.status {
			t.Errorf("status %d: %+v", tt.status, e)
		}
		wrapped := fmt.Errorf("zoom: get meeting: %w", e)
		if outbound.IsTransient(wrapped) != (tt.want == outbound.Transient) {
			t.Errorf("IsTransient through wrapping wrong for %d", tt.status)
		}
	}
	if e := outbound.NewError("zoom", "op", nil, "", ""); !e.Transient() || e.Status != 0 {
		t.Errorf("nil response: %+v, want transient status 0", e)
	}
	e := &outbound.Error{Provider: "zoom", Operation: "create_meeting", Status: 404, Code: "3001", Message: "Meeting does not exist: 1", Class: outbound.Permanent}
	if got, want := e.Error(), "zoom create_meeting: HTTP 404 (code 3001): Meeting does not exist: 1 [permanent]"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// backoffCeil is the full-jitter ceiling of the wait after retry i (0-based).
func backoffCeil(base, maxDelay time.Duration, i int) time.Duration {
	for ; i > 0 && base < maxDelay; i-- {
		base *= 2
	}
	return min(base, maxDelay)
}
