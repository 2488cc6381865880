package httpapi_test

import (
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
	benchServe(b, e, "")
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
	benchServe(b, e, tok)
}

func benchServe(b *testing.B, h http.Handler, token string) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/bookings", strings.NewReader(benchBody))
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
