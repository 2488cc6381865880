// Package outbound is the shared resilient HTTP transport every provider
// client (Zoom, Google Calendar, CalDAV, Jira) builds its *http.Client with.
//
// A client from NewClient does, per provider:
//
//   - connect and per-attempt timeouts;
//   - a token-bucket rate limiter (golang.org/x/time/rate);
//   - a circuit breaker: it opens after Config.BreakerFailures consecutive
//     failures (transport errors, timeouts, 5xx), rejects calls with
//     ErrCircuitOpen during Config.BreakerCooldown, then lets a single
//     half-open probe through whose outcome closes or reopens it;
//   - retries with exponential backoff and full jitter on 429, 502, 503, 504
//     and connection errors (and whatever Config.Retryable accepts),
//     honouring Retry-After in seconds or as an HTTP date. GET, HEAD, PUT,
//     DELETE and OPTIONS are retried; POST and PATCH only when the context
//     is marked with WithRetrySafe (deterministic id or lookup-before-create).
//     A POST whose connection could not even be dialled is always retried:
//     it never reached the provider;
//   - Prometheus metrics (see NewMetrics) and one Sentry breadcrumb per call
//     carrying method, host, path (no query), status and duration; never
//     headers, bodies or query strings.
//
// When retries are exhausted the transport returns the last response, so the
// provider client can turn it into an *Error (NewError) with the provider's
// error code; transport failures are returned as an *Error of class
// Transient.
package outbound

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults applied by NewClient to zero Config fields.
const (
	DefaultConnectTimeout  = 5 * time.Second
	DefaultTimeout         = 20 * time.Second
	DefaultMaxAttempts     = 4
	DefaultBaseDelay       = 200 * time.Millisecond
	DefaultMaxDelay        = 10 * time.Second
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 30 * time.Second
)

// maxInspectBody caps how much of a response body Retryable gets to see.
const maxInspectBody = 64 << 10

// Config configures the transport of one provider. The zero value of every
// field except Provider selects its default.
type Config struct {
	// Provider names the provider in metrics, errors, logs and breadcrumbs
	// ("zoom", "gcal", "jira", "caldav").
	Provider string
	// ConnectTimeout bounds dialling and the TLS handshake. Default 5s.
	ConnectTimeout time.Duration
	// Timeout bounds one attempt, from sending the request until the
	// response body is closed. Default 20s. The whole call, retries and
	// waits included, is bounded by the caller's context.
	Timeout time.Duration
	// MaxAttempts is the number of attempts including the first. Default 4;
	// 1 disables retries.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the exponential backoff with full jitter:
	// attempt n waits a uniformly random duration in
	// [0, min(MaxDelay, BaseDelay*2^(n-1))]. Defaults 200ms and 10s. A
	// Retry-After longer than MaxDelay is not waited out: the response is
	// returned so the caller can reschedule (its *Error carries RetryAfter).
	BaseDelay, MaxDelay time.Duration
	// RatePerSecond is the token bucket's refill rate; 0 means unlimited.
	RatePerSecond float64
	// Burst is the token bucket's size; values below 1 mean 1.
	Burst int
	// BreakerFailures is the number of consecutive failures that opens the
	// circuit. Default 5; negative disables the breaker.
	BreakerFailures int
	// BreakerCooldown is how long the circuit stays open before one
	// half-open probe is let through. Default 30s.
	BreakerCooldown time.Duration
	// Retryable lets a provider classify a response the generic rules do not
	// cover (Google's 403 rateLimitExceeded). It is called for error
	// responses (status >= 400) whose status is not retried anyway. body is
	// at most 64 KiB, already read and restored on resp. ok=false leaves the
	// decision to the generic rules (no retry).
	Retryable func(resp *http.Response, body []byte) (retry bool, ok bool)
	// Sleep waits for d or until ctx is done. Default: a timer. Tests inject
	// one that records d and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives debug records of retries and breaker changes. Nil
	// discards them.
	Logger *slog.Logger
	// Metrics records requests and latencies; nil records nothing.
	Metrics *Metrics
	// Base is the underlying transport. Nil builds an *http.Transport with
	// ConnectTimeout. Tests may inject one.
	Base http.RoundTripper
}

func (c Config) withDefaults() Config {
	if c.Provider == "" {
		c.Provider = "unknown"
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.Burst < 1 {
		c.Burst = 1
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = c.ConnectTimeout
		t.MaxIdleConnsPerHost = 16
		c.Base = t
	}
	return c
}

// NewClient returns an *http.Client whose Transport applies the limiter,
// breaker, retries, timeouts, metrics and Sentry breadcrumbs of cfg. The
// client has no overall Timeout of its own: each attempt is bounded by
// cfg.Timeout and the whole call by the request's context.
func NewClient(cfg Config) *http.Client {
	return &http.Client{Transport: newTransport(cfg)}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type ctxKey int

const (
	keyOperation ctxKey = iota
	keyRetrySafe
)

// WithOperation labels the requests made with ctx with op ("create_meeting")
// in metrics, errors and breadcrumbs.
func WithOperation(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, keyOperation, op)
}

// OperationFrom returns the operation set by WithOperation, or "".
func OperationFrom(ctx context.Context) string {
	op, _ := ctx.Value(keyOperation).(string)
	return op
}

// WithRetrySafe marks the requests made with ctx as safe to retry even when
// their method is POST or PATCH, because repeating them cannot duplicate an
// effect (a deterministic id, or a lookup before each create).
func WithRetrySafe(ctx context.Context) context.Context {
	return context.WithValue(ctx, keyRetrySafe, true)
}

func retrySafe(ctx context.Context) bool {
	v, _ := ctx.Value(keyRetrySafe).(bool)
	return v
}
