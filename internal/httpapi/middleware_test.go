package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spotlight/gateway/internal/httpapi"
)

// Webhook routes pass the OpenAPI gate without routing: no bearer token, no
// body validation, the request id in the handler's context, one access log
// line and one histogram sample each; unknown paths and methods under
// /webhooks/ still get echo's 404 and 405 as problem+json.
func TestWebhookRoutesThroughTheStack(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	en := newEnv(t, func(d *httpapi.Deps) {
		d.Mount = append(d.Mount, func(e *echo.Echo) {
			e.POST("/webhooks/zoom", func(c echo.Context) error {
				seen <- httpapi.RequestIDFromContext(c.Request().Context())
				return c.NoContent(http.StatusNoContent)
			})
		})
	})

	for i, id := range []string{"zoom-delivery-1", ""} {
		resp, body := en.do(t, http.MethodPost, "/webhooks/zoom", "", `{"not":"a booking"`, "X-Request-Id", id)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delivery %d: %d %s", i, resp.StatusCode, body)
		}
		got := resp.Header.Get("X-Request-Id")
		if id != "" && got != id || got == "" {
			t.Fatalf("delivery %d: X-Request-Id = %q, sent %q", i, got, id)
		}
		if ctxID := <-seen; ctxID != got {
			t.Fatalf("delivery %d: RequestIDFromContext = %q, header %q", i, ctxID, got)
		}
	}

	for _, tt := range []struct {
		method, path string
		status       int
		slug         string
	}{
		{http.MethodPost, "/webhooks/nope", 404, "not-found"},
		{http.MethodPost, "/webhooks/", 404, "not-found"},
		{http.MethodPost, "/webhooks/zoom/extra", 404, "not-found"},
		{http.MethodGet, "/webhooks/zoom", 405, "method-not-allowed"},
		{http.MethodGet, "/webhooks/jira", 405, "method-not-allowed"},
		// Made-up methods share one label value: the client chooses them.
		{"BREW", "/webhooks/zoom", 405, "method-not-allowed"},
		{"M1", "/webhooks/zoom", 405, "method-not-allowed"},
		{"M2", "/nowhere", 404, "not-found"},
	} {
		resp, body := en.do(t, tt.method, tt.path, "", `{}`)
		if p := decodeProblem(t, resp, body, tt.status); p.Type != httpapi.ProblemBase+tt.slug {
			t.Errorf("%s %s: type = %q, want slug %q", tt.method, tt.path, p.Type, tt.slug)
		}
	}

	var lines []map[string]any
	for _, l := range strings.Split(en.logs.String(), "\n") {
		if strings.Contains(l, `"route":"/webhooks/zoom"`) && strings.Contains(l, `"method":"POST"`) {
			var line map[string]any
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d access log lines for POST /webhooks/zoom, want 2:\n%s", len(lines), en.logs.String())
	}
	line := lines[0]
	if line["msg"] != "request" || line["level"] != "INFO" || line["request_id"] != "zoom-delivery-1" ||
		line["status"] != float64(204) || line["latency_ms"] == nil || line["bytes"] != float64(0) || line["time"] == nil {
		t.Fatalf("access log line = %v", line)
	}
	if _, ok := line["sub"]; ok {
		t.Fatalf("access log line of an unauthenticated delivery has sub: %v", line)
	}

	_, body := en.do(t, http.MethodGet, "/metrics", "", "")
	for _, m := range []string{"BREW", "M1", "M2"} {
		if strings.Contains(string(body), `method="`+m+`"`) {
			t.Errorf("/metrics has a series for method %s", m)
		}
	}
	for _, want := range []string{
		`gateway_http_request_duration_seconds_count{method="POST",route="/webhooks/zoom",status="204"} 2`,
		`gateway_http_request_duration_seconds_count{method="POST",route="unmatched",status="404"} 3`,
		`gateway_http_request_duration_seconds_count{method="GET",route="/webhooks/zoom",status="405"} 1`,
		`gateway_http_request_duration_seconds_count{method="other",route="/webhooks/zoom",status="405"} 2`,
		`gateway_http_request_duration_seconds_count{method="other",route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s\n%s", want, body)
		}
	}
}

// TestClientGoneIsNotAServerError: a request whose client hung up (API
// Gateway's 29s timeout, a closed browser tab) and whose handler then
// fails with the cancelled context is logged as 499 at INFO and counted as
// 499, not as a 500 error the gateway made (which pages and goes to Sentry).
func TestClientGoneIsNotAServerError(t *testing.T) {
	t.Parallel()
	handled := make(chan struct{})
	en := newEnv(t, func(d *httpapi.Deps) {
		d.Mount = append(d.Mount, func(e *echo.Echo) {
			e.GET("/test/slow", func(c echo.Context) error {
				defer close(handled)
				<-c.Request().Context().Done()
				return fmt.Errorf("booking: list: %w", c.Request().Context().Err())
			})
		})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, en.srv.URL+"/test/slow", nil)
	if resp, err := en.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the client got an answer: %d", resp.StatusCode)
	}
	<-handled
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(en.logs.String(), `"route":"/test/slow"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range strings.Split(en.logs.String(), "\n") {
		if !strings.Contains(l, `"route":"/test/slow"`) {
			continue
		}
		if !strings.Contains(l, `"status":499`) || !strings.Contains(l, `"level":"INFO"`) {
			t.Errorf("access log of a request the client gave up on: %s, want status 499 at INFO", l)
		}
		return
	}
	t.Fatalf("no access log line for /test/slow:\n%s", en.logs.String())
}
