package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
	"golang.org/x/time/rate"
)

// transport is the http.RoundTripper behind NewClient.
type transport struct {
	cfg     Config
	limiter *rate.Limiter // nil: unlimited
	breaker *breaker
}

func newTransport(cfg Config) *transport {
	cfg = cfg.withDefaults()
	t := &transport{cfg: cfg, breaker: &breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown}}
	if cfg.RatePerSecond > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(cfg.RatePerSecond), cfg.Burst)
	}
	return t
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions, "":
		return true
	}
	return false
}

// RoundTrip runs one call: limiter, breaker, attempts and waits between them.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	start := t.cfg.Now()
	op := OperationFrom(ctx)
	if op == "" {
		op = strings.ToLower(req.Method)
	}
	methodRetryable := idempotent(req.Method) || retrySafe(ctx)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil

	body := req.Body
	for attempt := 1; ; attempt++ {
		if attempt > 1 && req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return t.fail(ctx, req, op, attempt, start, OutcomeTransport, Permanent, err)
			}
			body = b
		}
		if err := t.wait(ctx); err != nil {
			closeBody(body)
			return t.fail(ctx, req, op, attempt, start, OutcomeCanceled, Transient, err)
		}
		if now := t.cfg.Now(); !t.breaker.allow(now) {
			closeBody(body)
			_, err := t.fail(ctx, req, op, attempt, start, OutcomeCircuitOpen, Transient, ErrCircuitOpen)
			// The caller can wait out the rest of the cooldown.
			err.(*Error).RetryAfter = t.breaker.retryIn(now)
			return nil, err
		}

		resp, err := t.attempt(ctx, req, body)
		body = nil // consumed (and closed) by the base transport

		if err != nil {
			if ctx.Err() != nil { // the caller gave up; says nothing about the provider
				t.recordBreaker(outcomeNeutral)
				if !errors.Is(err, ctx.Err()) {
					err = ctx.Err()
				}
				return t.fail(ctx, req, op, attempt, start, OutcomeCanceled, Transient, err)
			}
			t.recordBreaker(outcomeFailure)
			// A request whose connection was never established did not
			// reach the provider: it is safe to repeat whatever its method.
			retry := (methodRetryable || dialFailed(err)) && replayable && attempt < t.cfg.MaxAttempts
			if !retry {
				return t.fail(ctx, req, op, attempt, start, OutcomeTransport, Transient, err)
			}
			d := t.backoff(attempt)
			t.cfg.Logger.DebugContext(ctx, "outbound retry", "provider", t.cfg.Provider, "operation", op,
				"attempt", attempt, "error", err.Error(), "delay", d)
			if err := t.cfg.Sleep(ctx, d); err != nil {
				return t.fail(ctx, req, op, attempt, start, OutcomeCanceled, Transient, err)
			}
			continue
		}

		if resp.StatusCode >= 500 {
			t.recordBreaker(outcomeFailure)
		} else {
			t.recordBreaker(outcomeSuccess)
		}
		if !methodRetryable || !replayable || attempt >= t.cfg.MaxAttempts || !t.shouldRetry(resp) {
			t.done(ctx, req, op, attempt, start, resp.StatusCode, outcomeOf(resp.StatusCode))
			return resp, nil
		}
		d := t.backoff(attempt)
		if ra := ParseRetryAfter(resp.Header, t.cfg.Now()); ra > 0 {
			if ra > t.cfg.MaxDelay {
				// Not worth holding the caller: let it reschedule.
				t.done(ctx, req, op, attempt, start, resp.StatusCode, outcomeOf(resp.StatusCode))
				return resp, nil
			}
			d = ra
		}
		discard(resp.Body)
		t.cfg.Logger.DebugContext(ctx, "outbound retry", "provider", t.cfg.Provider, "operation", op,
			"attempt", attempt, "status", resp.StatusCode, "delay", d)
		if err := t.cfg.Sleep(ctx, d); err != nil {
			return t.fail(ctx, req, op, attempt, start, OutcomeCanceled, Transient, err)
		}
	}
}

// attempt sends one request bounded by cfg.Timeout. The timeout covers
// reading the body: its cancel runs when the body is closed.
func (t *transport) attempt(ctx context.Context, req *http.Request, body io.ReadCloser) (*http.Response, error) {
	actx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	r := req.Clone(actx)
	r.Body = body
	resp, err := t.cfg.Base.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// shouldRetry applies the generic status rules and then Config.Retryable.
func (t *transport) shouldRetry(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	if t.cfg.Retryable == nil || resp.StatusCode < 400 {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxInspectBody))
	resp.Body = &prefixBody{Reader: io.MultiReader(bytes.NewReader(b), resp.Body), c: resp.Body}
	if err != nil {
		return false
	}
	retry, ok := t.cfg.Retryable(resp, b)
	return ok && retry
}

// backoff returns the full-jitter delay before attempt+1.
func (t *transport) backoff(attempt int) time.Duration {
	ceil := t.cfg.BaseDelay
	for i := 1; i < attempt && ceil < t.cfg.MaxDelay; i++ {
		ceil *= 2
	}
	ceil = min(ceil, t.cfg.MaxDelay)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// wait takes a token from the limiter, sleeping through the injected Sleep.
func (t *transport) wait(ctx context.Context) error {
	if t.limiter == nil {
		return ctx.Err()
	}
	now := t.cfg.Now()
	r := t.limiter.ReserveN(now, 1)
	if !r.OK() {
		return errors.New("outbound: rate limiter burst is 0")
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return ctx.Err()
	}
	if err := t.cfg.Sleep(ctx, d); err != nil {
		r.CancelAt(t.cfg.Now())
		return err
	}
	return nil
}

func (t *transport) recordBreaker(o outcome) {
	if from, to := t.breaker.record(o, t.cfg.Now()); from != to {
		t.cfg.Logger.Warn("outbound circuit breaker", "provider", t.cfg.Provider, "from", from.String(), "to", to.String())
	}
}

// fail finishes a call that produced no response.
func (t *transport) fail(ctx context.Context, req *http.Request, op string, attempts int, start time.Time, outcome string, class Class, err error) (*http.Response, error) {
	t.done(ctx, req, op, attempts, start, 0, outcome)
	return nil, &Error{Provider: t.cfg.Provider, Operation: op, Class: class, Err: err}
}

// done records metrics and the Sentry breadcrumb of a finished call.
func (t *transport) done(ctx context.Context, req *http.Request, op string, attempts int, start time.Time, status int, outcome string) {
	d := t.cfg.Now().Sub(start)
	t.cfg.Metrics.observe(t.cfg.Provider, op, outcome, attempts, d)

	hub := sentry.GetHubFromContext(ctx)
	if hub == nil {
		hub = sentry.CurrentHub()
	}
	if hub == nil || hub.Client() == nil {
		return
	}
	level := sentry.LevelInfo
	switch {
	case status >= 500 || status == 0:
		level = sentry.LevelError
	case status >= 400:
		level = sentry.LevelWarning
	}
	// Only method, host and path: never the query, headers or bodies.
	hub.AddBreadcrumb(&sentry.Breadcrumb{
		Type:     "http",
		Category: "outbound." + t.cfg.Provider,
		Level:    level,
		Data: map[string]any{
			"method":      req.Method,
			"url":         req.URL.Scheme + "://" + req.URL.Host + req.URL.Path,
			"host":        req.URL.Host,
			"path":        req.URL.Path,
			"status_code": status,
			"duration_ms": d.Milliseconds(),
			"attempts":    attempts,
			"operation":   op,
			"outcome":     outcome,
		},
	}, nil)
}

func outcomeOf(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case status >= 500:
		return OutcomeServerError
	case status >= 400:
		return OutcomeClientError
	}
	return OutcomeSuccess
}

func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		_ = b.Close()
	}
}

// discard drains a little of a response body so the connection can be
// reused, then closes it.
func discard(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 4<<10))
	_ = b.Close()
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body and ends the attempt's timeout context.
func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

type prefixBody struct {
	io.Reader
	c io.Closer
}

// Close closes the original body.
func (b *prefixBody) Close() error { return b.c.Close() }

var _ http.RoundTripper = (*transport)(nil)
