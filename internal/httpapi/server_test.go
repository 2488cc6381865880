package httpapi_test

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	gateway "github.com/spotlight/gateway"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/logtest"
	"github.com/spotlight/gateway/internal/telemetry"
)

type env struct {
	srv    *httptest.Server
	issuer *auth.DevIssuer
	logs   *logtest.Buffer
	ready  map[string]error
}

func newEnv(t *testing.T, mutate func(*httpapi.Deps)) *env {
	t.Helper()
	issuer, err := auth.LoadOrCreateDevIssuer(t.TempDir(), "http://gateway.test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: issuer.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	en := &env{issuer: issuer, logs: &logtest.Buffer{}, ready: map[string]error{"database": nil, "migrations": nil}}
	deps := httpapi.Deps{
		Logger:        slog.New(slog.NewJSONHandler(en.logs, nil)),
		Registry:      prometheus.NewRegistry(),
		Authenticator: v,
		DevJWKS:       issuer.JWKS,
		Ready:         func(context.Context) map[string]error { return en.ready },
		Mount: []func(*echo.Echo){func(e *echo.Echo) {
			e.GET("/test/panic", func(echo.Context) error { panic("kaboom Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl") })
			e.GET("/test/fail", func(echo.Context) error { return errors.New("db exploded: password=hunter2") })
			e.POST("/webhooks/test-panic", func(echo.Context) error { panic("webhook kaboom") })
			e.GET("/test/db-down", func(echo.Context) error { return fmt.Errorf("list bookings: %w", driver.ErrBadConn) })
		}},
	}
	if mutate != nil {
		mutate(&deps)
	}
	e, err := httpapi.NewServer(deps)
	if err != nil {
		t.Fatal(err)
	}
	en.srv = httptest.NewServer(contract(t, e))
	t.Cleanup(en.srv.Close)
	return en
}

func (en *env) token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	tok, err := en.issuer.Mint(auth.TokenRequest{Subject: sub, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (en *env) do(t *testing.T, method, path, token string, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return send(t, en.srv.Client(), method, en.srv.URL+path, token, body, hdr...)
}

// send sends a raw request to url (a JSON body when body is not empty) with
// token and header pairs, and returns the response and its body.
func send(t *testing.T, c *http.Client, method, url, token, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type problem struct {
	Type      string               `json:"type"`
	Title     string               `json:"title"`
	Status    int                  `json:"status"`
	Detail    string               `json:"detail"`
	Instance  string               `json:"instance"`
	RequestID string               `json:"request_id"`
	Errors    []httpapi.FieldError `json:"errors"`
}

func decodeProblem(t *testing.T, resp *http.Response, body []byte, status int) problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, body)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if p.Status != status || !strings.HasPrefix(p.Type, httpapi.ProblemBase) || p.Title == "" {
		t.Fatalf("problem = %+v", p)
	}
	if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("request_id %q, header %q", p.RequestID, resp.Header.Get("X-Request-Id"))
	}
	if p.Instance != resp.Request.URL.Path {
		t.Fatalf("instance %q, want the request path %q", p.Instance, resp.Request.URL.Path)
	}
	return p
}

const validBooking = `{"mentor_id":"mentor-1","start":"2026-12-08T10:00:00+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Mock interview"}`

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	resp, body := en.do(t, "GET", "/healthz", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	resp, body = en.do(t, "GET", "/readyz", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"database":"ok"`) {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	resp, body = en.do(t, "GET", "/openapi.yaml", "", "")
	if resp.StatusCode != 200 || !bytes.Equal(body, gateway.OpenAPI) {
		t.Fatalf("/openapi.yaml = %d, %d bytes (want the repository file)", resp.StatusCode, len(body))
	}
	resp, body = en.do(t, "GET", "/docs", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/docs/redoc.standalone.js") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs = %d %s", resp.StatusCode, body)
	}
	// Redoc 3 reports page views to Redocly's servers unless told not to:
	// the page must load nothing but this gateway's own files.
	if !regexp.MustCompile(`<redoc [^>]*disable-telemetry="true"`).Match(body) {
		t.Errorf("/docs does not turn Redoc's telemetry off:\n%s", body)
	}
	resp, body = en.do(t, "GET", "/docs/redoc.standalone.js", "", "")
	if resp.StatusCode != 200 || len(body) < 100_000 {
		t.Fatalf("/docs bundle = %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = en.do(t, "GET", "/.well-known/jwks.json", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), en.issuer.KeyID()) {
		t.Fatalf("jwks = %d %s", resp.StatusCode, body)
	}
	resp, body = en.do(t, "GET", "/metrics", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `gateway_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1`) {
		t.Fatalf("/metrics = %d\n%s", resp.StatusCode, body)
	}
}

// TestMetricsElsewhere: with the metrics on a listener of their own
// (GATEWAY_METRICS_ADDR), the API's handler answers /metrics as it answers
// any unknown path, and MetricsHandler serves the same registry, the API's
// requests counted.
func TestMetricsElsewhere(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	en := newEnv(t, func(d *httpapi.Deps) { d.Registry, d.MetricsElsewhere = reg, true })
	resp, body := en.do(t, "GET", "/metrics", "", "")
	if p := decodeProblem(t, resp, body, 404); p.Type != httpapi.ProblemBase+"not-found" {
		t.Fatalf("/metrics on the API's handler = %s, want not-found", p.Type)
	}
	if strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("the 404 carries metrics: %s", body)
	}
	metrics := httptest.NewServer(httpapi.MetricsHandler(reg))
	defer metrics.Close()
	resp, body = send(t, metrics.Client(), "GET", metrics.URL, "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `gateway_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`) {
		t.Fatalf("MetricsHandler = %d\n%s", resp.StatusCode, body)
	}
}

func TestReadyzReportsFailingChecks(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	en.ready = map[string]error{"database": nil, "migrations": errors.New("pending 0002_bookings")}
	resp, body := en.do(t, "GET", "/readyz", "", "")
	p := decodeProblem(t, resp, body, 503)
	if !strings.Contains(p.Detail, "migrations") || strings.Contains(p.Detail, "0002") {
		t.Fatalf("detail = %q: must name the check, not the internal error", p.Detail)
	}
}

func TestAuthAndNotImplemented(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	tok := en.token(t, "cand-1", "candidate")
	tests := []struct {
		name, method, path, token, body string
		hdr                             []string
		status                          int
		slug                            string
	}{
		{"no token", "GET", "/v1/bookings", "", "", nil, 401, "unauthorized"},
		{"garbage token", "GET", "/v1/bookings", "nope", "", nil, 401, "invalid-token"},
		{"basic scheme", "GET", "/v1/bookings", "", "", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "invalid-token"},
		{"no token, invalid body still 401", "POST", "/v1/bookings", "", `{"x":1}`, nil, 401, "unauthorized"},
		{"list with token", "GET", "/v1/bookings", tok, "", nil, 501, "not-implemented"},
		{"create with token", "POST", "/v1/bookings", tok, validBooking, []string{"Idempotency-Key", "k1"}, 501, "not-implemented"},
		{"unknown route", "GET", "/v1/nope", tok, "", nil, 404, "not-found"},
		{"unknown route without token", "GET", "/nope", "", "", nil, 404, "not-found"},
		{"wrong method", "DELETE", "/healthz", "", "", nil, 405, "method-not-allowed"},
		// An empty path parameter names no resource: 404 for anyone, not
		// the operation's 400 (or a 400 before the 401).
		{"empty path segment", "GET", "/v1/mentors//schedule", tok, "", nil, 404, "not-found"},
		{"empty path segment without token", "GET", "/v1/mentors//schedule", "", "", nil, 404, "not-found"},
		{"empty last segment", "GET", "/v1/bookings/", tok, "", nil, 404, "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := en.do(t, tt.method, tt.path, tt.token, tt.body, tt.hdr...)
			p := decodeProblem(t, resp, body, tt.status)
			if p.Type != httpapi.ProblemBase+tt.slug {
				t.Errorf("type = %q, want slug %q", p.Type, tt.slug)
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestValidationNamesTheField(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	tok := en.token(t, "cand-1", "candidate")
	tests := []struct {
		name  string
		body  string
		hdr   []string
		field string
	}{
		{"unknown field", `{"mentor_id":"m","start":"2026-12-08T10:00:00Z","duration_minutes":60,"timezone":"Europe/Berlin","topic":"t","colour":"red"}`, nil, "body.colour"},
		{"wrong type", `{"mentor_id":"m","start":"2026-12-08T10:00:00Z","duration_minutes":"sixty","timezone":"Europe/Berlin","topic":"t"}`, nil, "body.duration_minutes"},
		{"bad format", `{"mentor_id":"m","start":"next tuesday","duration_minutes":60,"timezone":"Europe/Berlin","topic":"t"}`, nil, "body.start"},
		{"missing required", `{"mentor_id":"m","duration_minutes":60,"timezone":"Europe/Berlin","topic":"t"}`, nil, "body.start"},
		{"out of range", `{"mentor_id":"m","start":"2026-12-08T10:00:00Z","duration_minutes":5,"timezone":"Europe/Berlin","topic":"t"}`, nil, "body.duration_minutes"},
		{"missing header", validBooking, []string{"Idempotency-Key", ""}, "header.Idempotency-Key"},
		{"truncated json", `{"mentor_id":`, nil, "body"},
		{"not json", `mentor=m`, nil, "body"},
		{"garbage after the json", validBooking + ` garbage`, nil, "body"},
		{"a second json value", validBooking + `{}`, nil, "body"},
		{"whitespace only json", "  \n ", nil, "body"},
		{"leap second", `{"mentor_id":"m","start":"2026-12-08T14:59:60+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"t"}`, nil, "body.start"},
		// What encoding/json would turn into U+FFFD, and what PostgreSQL refuses.
		{"NUL in a string", `{"mentor_id":"m","start":"2026-12-08T10:00:00Z","duration_minutes":60,"timezone":"Europe/Berlin","topic":"a\u0000b"}`, nil, "body.topic"},
		{"bytes that are not UTF-8", "{\"mentor_id\":\"m\",\"start\":\"2026-12-08T10:00:00Z\",\"duration_minutes\":60,\"timezone\":\"Europe/Berlin\",\"topic\":\"caf\xe9\"}", nil, "body.topic"},
		{"lone surrogate", `{"mentor_id":"m","start":"2026-12-08T10:00:00Z","duration_minutes":60,"timezone":"Europe/Berlin","topic":"t","notes":"\ud83d!"}`, nil, "body.notes"},
		{"header that is not UTF-8", validBooking, []string{"Idempotency-Key", "caf\xe9"}, "header.Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hdr := tt.hdr
			if hdr == nil {
				hdr = []string{"Idempotency-Key", "key-1"}
			}
			resp, body := en.do(t, "POST", "/v1/bookings", tok, tt.body, hdr...)
			p := decodeProblem(t, resp, body, 400)
			found := false
			for _, f := range p.Errors {
				if f.Field == tt.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("errors %+v do not name %s", p.Errors, tt.field)
			}
			if strings.Contains(tt.name, "json") && !strings.Contains(p.Detail, "is not valid JSON") {
				t.Errorf("detail %q does not say the body is not JSON", p.Detail)
			}
			if strings.Contains(tt.name, "after the json") && !strings.Contains(p.Detail, "after top-level value (at byte") {
				t.Errorf("detail %q does not say where the garbage starts", p.Detail)
			}
			if p.Type != httpapi.ProblemBase+"validation-error" {
				t.Errorf("type %q, want validation-error", p.Type)
			}
		})
	}
	t.Run("query parameter", func(t *testing.T) {
		t.Parallel()
		resp, body := en.do(t, "GET", "/v1/bookings?limit=9999", tok, "")
		p := decodeProblem(t, resp, body, 400)
		if len(p.Errors) == 0 || p.Errors[0].Field != "query.limit" {
			t.Fatalf("errors = %+v", p.Errors)
		}
	})
	t.Run("leap second in a query parameter", func(t *testing.T) {
		t.Parallel()
		resp, body := en.do(t, "GET", "/v1/bookings?from=2026-12-08T14:59:60%2B01:00", tok, "")
		p := decodeProblem(t, resp, body, 400)
		if len(p.Errors) == 0 || p.Errors[0].Field != "query.from" || p.Type != httpapi.ProblemBase+"validation-error" {
			t.Fatalf("problem = %+v", p)
		}
	})
	t.Run("one JSON value with whitespace around it", func(t *testing.T) {
		t.Parallel()
		resp, body := en.do(t, "POST", "/v1/bookings", tok, " \n"+validBooking+"\r\n\t ", "Idempotency-Key", "key-ws")
		// No booking service in this server: valid requests reach the handler's 501.
		decodeProblem(t, resp, body, 501)
	})
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	tok := en.token(t, "cand-1", "candidate")
	big := `{"mentor_id":"m","topic":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	resp, body := en.do(t, "POST", "/v1/bookings", tok, big, "Idempotency-Key", "k")
	decodeProblem(t, resp, body, 413)
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	tok := en.token(t, "cand-42", "candidate")
	resp, _ := en.do(t, "GET", "/v1/bookings", tok, "", "X-Request-Id", "upstream-abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "upstream-abc-123" {
		t.Fatalf("X-Request-Id = %q, want the upstream id", got)
	}
	resp, _ = en.do(t, "GET", "/healthz", "", "", "X-Request-Id", "bad id with spaces")
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("X-Request-Id = %q, want a fresh id", got)
	}
	var line map[string]any
	for _, l := range strings.Split(en.logs.String(), "\n") {
		if strings.Contains(l, "upstream-abc-123") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["sub"] != "cand-42" || line["route"] != "/v1/bookings" || line["status"] != float64(501) || line["latency_ms"] == nil {
		t.Fatalf("access log line = %v", line)
	}
	if strings.Contains(en.logs.String(), tok) {
		t.Fatal("the access log contains the bearer token")
	}
}

// TestRefusedTokenLogsWhy: the client learns only that its token is
// invalid, and the access log says why (a dev token minted with another data
// folder's key: unknown kid), without the token.
func TestRefusedTokenLogsWhy(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	other, err := auth.LoadOrCreateDevIssuer(t.TempDir(), en.issuer.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := other.Mint(auth.TokenRequest{Subject: "cand-1", Groups: []string{"candidate"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := en.do(t, "GET", "/v1/bookings", tok, "", "X-Request-Id", "other-key-1")
	if p := decodeProblem(t, resp, body, 401); strings.Contains(p.Detail, "kid") {
		t.Errorf("detail = %q: the reason is for the log, not the client", p.Detail)
	}
	var line map[string]any
	for _, l := range strings.Split(en.logs.String(), "\n") {
		if strings.Contains(l, "other-key-1") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e, _ := line["error"].(string); line["status"] != float64(401) || !strings.Contains(e, "unknown kid") {
		t.Errorf("access log line = %v, want status 401 and an error naming the unknown kid", line)
	}
	if strings.Contains(en.logs.String(), tok) {
		t.Error("the access log contains the bearer token")
	}
}

// capture is a Sentry transport that keeps events in memory.
type capture struct {
	mu     sync.Mutex
	events []*sentry.Event
}

func (c *capture) Configure(sentry.ClientOptions) {}
func (c *capture) SendEvent(e *sentry.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}
func (c *capture) Flush(time.Duration) bool              { return true }
func (c *capture) FlushWithContext(context.Context) bool { return true }
func (c *capture) Close()                                {}

func (c *capture) all() []*sentry.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sentry.Event(nil), c.events...)
}

// withSentry sends the process's Sentry events to the returned capture
// until the test ends; flush delivers what was captured so far.
func withSentry(t *testing.T) (*capture, func(time.Duration)) {
	t.Helper()
	tr := &capture{}
	flush, err := telemetry.InitSentry(telemetry.SentryOptions{DSN: "https://public@sentry.invalid/1", Environment: "test", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flush(time.Second); sentry.CurrentHub().BindClient(nil) })
	return tr, flush
}

// TestSentryScrubsSecrets runs a panic and a 5xx through Sentry with a
// capturing transport and checks that the events carry the request id but
// no credentials. It is not parallel: Sentry's client is process-wide.
func TestSentryScrubsSecrets(t *testing.T) {
	tr, flush := withSentry(t)
	en := newEnv(t, func(d *httpapi.Deps) { d.Sentry = true })
	tok := en.token(t, "cand-1", "candidate")
	resp, body := en.do(t, "GET", "/test/panic?access_token=abc123secret&x=1", tok, "", "Cookie", "session=s3cr3t", "X-Zm-Signature", "v0=deadbeef")
	decodeProblem(t, resp, body, 500)
	resp, body = en.do(t, "GET", "/test/fail", tok, "")
	p := decodeProblem(t, resp, body, 500)
	if strings.Contains(p.Detail, "hunter2") || strings.Contains(p.Detail, "exploded") {
		t.Fatalf("500 detail leaks the internal error: %q", p.Detail)
	}
	// The webhook intake runs without sentryecho's per-request hub; its
	// panics still reach Sentry through the error handler.
	resp, body = en.do(t, "POST", "/webhooks/test-panic", "", "{}", "X-Zm-Signature", "v0=deadbeef")
	decodeProblem(t, resp, body, 500)
	flush(time.Second)
	events := tr.all()
	if len(events) < 3 {
		t.Fatalf("captured %d events, want the panic, the 5xx and the webhook panic", len(events))
	}
	var webhookPanic bool
	for _, ev := range events {
		raw, _ := json.Marshal(ev)
		webhookPanic = webhookPanic || (strings.Contains(string(raw), "webhook kaboom") && ev.Tags["route"] == "/webhooks/test-panic")
	}
	if !webhookPanic {
		t.Error("the webhook panic was not reported with its route")
	}
	for _, ev := range events {
		raw, _ := json.Marshal(ev)
		s := string(raw)
		for _, secret := range []string{tok, "abc123secret", "s3cr3t", "deadbeef", "hunter2", "eyJhbGciOiJSUzI1NiJ9"} {
			if strings.Contains(s, secret) {
				t.Errorf("Sentry event contains %q:\n%s", secret, s)
			}
		}
		if ev.Tags["request_id"] == "" {
			t.Errorf("event without request_id tag: %s", s)
		}
	}
}

// TestSentryOutageReportedOnce: while the database is out of reach every
// request answers 503 unavailable (with Retry-After), but Sentry gets one
// event for the outage, not one per request; other 5xx are still reported
// each time. Not parallel: Sentry's client is process-wide.
func TestSentryOutageReportedOnce(t *testing.T) {
	tr, flush := withSentry(t)
	en := newEnv(t, func(d *httpapi.Deps) { d.Sentry = true })
	tok := en.token(t, "cand-1", "candidate")
	for range 5 {
		resp, body := en.do(t, "GET", "/test/db-down", tok, "")
		decodeProblem(t, resp, body, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
	for range 2 {
		resp, body := en.do(t, "GET", "/test/fail", tok, "")
		decodeProblem(t, resp, body, http.StatusInternalServerError)
	}
	flush(time.Second)
	var outage, fail int
	for _, ev := range tr.all() {
		raw, _ := json.Marshal(ev)
		switch {
		case strings.Contains(string(raw), "bad connection"):
			outage++
		case strings.Contains(string(raw), "db exploded"):
			fail++
		}
	}
	if outage != 1 || fail != 2 {
		t.Fatalf("Sentry got %d outage events (want 1) and %d other 5xx (want 2)", outage, fail)
	}
	if got := strings.Count(en.logs.String(), `"status":503`); got != 5 {
		t.Fatalf("%d access lines with status 503, want 5 (every request is still logged)", got)
	}
}

// TestHealthProbesAnswerHEAD: a health probe that sends HEAD (load
// balancers and uptime checkers may) gets what GET gets, without the body,
// as it does from the Starting handler before the gateway is ready; not a
// 405 once the gateway serves.
func TestHealthProbesAnswerHEAD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		h      func(t *testing.T) http.Handler
		path   string
		status int
	}{
		{"healthz while starting", func(*testing.T) http.Handler { return httpapi.Starting() }, "/healthz", 200},
		{"healthz", func(t *testing.T) http.Handler { return newEnv(t, nil).srv.Config.Handler }, "/healthz", 200},
		{"readyz", func(t *testing.T) http.Handler { return newEnv(t, nil).srv.Config.Handler }, "/readyz", 200},
		{"readyz not ready", func(t *testing.T) http.Handler {
			en := newEnv(t, nil)
			en.ready = map[string]error{"database": errors.New("down")}
			return en.srv.Config.Handler
		}, "/readyz", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.h(t))
			defer srv.Close()
			get, getBody := send(t, srv.Client(), "GET", srv.URL+tt.path, "", "")
			head, headBody := send(t, srv.Client(), "HEAD", srv.URL+tt.path, "", "")
			if get.StatusCode != tt.status || head.StatusCode != tt.status {
				t.Fatalf("GET %s = %d %s, HEAD = %d; want %d for both", tt.path, get.StatusCode, getBody, head.StatusCode, tt.status)
			}
			if len(headBody) != 0 || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
				t.Errorf("HEAD %s: Content-Type %q (GET %q), body %q; want GET's type and no body", tt.path,
					head.Header.Get("Content-Type"), get.Header.Get("Content-Type"), headBody)
			}
		})
	}
}
