package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
)

// benchBody is a valid booking request padded to about 1 KB.
var benchBody = `{"mentor_id":"mentor-1","start":"2026-12-08T10:00:00+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Mock interview","notes":"` + strings.Repeat("n", 850) + `"}`

// BenchmarkBareEcho is the ceiling: an echo handler that answers 200 to
// the same 1 KB POST with no middleware.
func BenchmarkBareEcho(b *testing.B) {
	e := echo.New()
	e.POST("/v1/bookings", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	benchServe(b, e, "/v1/bookings", benchBody, "")
}

// BenchmarkAuthAndValidation runs the same request through the gateway's
// whole stack (request id, access log, metrics, body limit, RS256 bearer
// verification, OpenAPI validation of headers and body) up to the strict
// handler. The difference to BenchmarkBareEcho is the cost added per request.
func BenchmarkAuthAndValidation(b *testing.B) {
	issuer, err := auth.LoadOrCreateDevIssuer(b.TempDir(), auth.DevIssuerName)
	if err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: issuer.Fetcher()})
	if err != nil {
		b.Fatal(err)
	}
	e, err := httpapi.NewServer(httpapi.Deps{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Authenticator: v})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := issuer.Mint(auth.TokenRequest{Subject: "cand-1", Groups: []string{"candidate"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, e, "/v1/bookings", benchBody, tok)
}

// webhookBody is a Zoom-style delivery padded to about 1 KiB.
var webhookBody = `{"event":"meeting.started","event_ts":1764000000000,"payload":{"account_id":"acc-1","object":{"id":"85746065432","uuid":"4444AAAiAAAAAiAiAiiAii==","topic":"` + strings.Repeat("t", 880) + `"}}}`

// BenchmarkWebhookRouteOverhead measures what the shared middleware stack
// adds to a webhook intake route: a handler mounted through Deps.Mount
// (as webhooks.Service.Mount does) that answers 204 to a 1 KiB POST, once
// on a bare echo and once through NewServer (request id, JSON access log to
// io.Discard, Prometheus histogram, recover, body limit skip, OpenAPI gate
// skip). Signature checks and storage are the intake's own and not included.
func BenchmarkWebhookRouteOverhead(b *testing.B) {
	mount := func(e *echo.Echo) {
		e.POST("/webhooks/zoom", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	}
	b.Run("bare", func(b *testing.B) {
		e := echo.New()
		mount(e)
		benchServe(b, e, "/webhooks/zoom", webhookBody, "")
	})
	b.Run("stack", func(b *testing.B) {
		e, err := httpapi.NewServer(httpapi.Deps{
			Logger:        slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Registry:      prometheus.NewRegistry(),
			Authenticator: noAuth{},
			Mount:         []func(*echo.Echo){mount},
		})
		if err != nil {
			b.Fatal(err)
		}
		benchServe(b, e, "/webhooks/zoom", webhookBody, "")
	})
}

// noAuth rejects every token; webhook routes never ask for one.
type noAuth struct{}

func (noAuth) Verify(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, auth.ErrInvalidToken
}

func benchServe(b *testing.B, h http.Handler, path, body, token string) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "bench-key")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 400 && rec.Code != http.StatusNotImplemented {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
