package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store/storetest"
)

// outageDeployment is a gateway on a PostgreSQL schema reached through a
// dbProxy, with an admin token and the Zoom webhook secret stored.
func outageDeployment(t *testing.T, ctx context.Context, env ...string) (*Gateway, *dbProxy, string) {
	t.Helper()
	proxy, dbURL := newDBProxy(t, storetest.PostgresURL(t))
	d := newDeployment(t, dbURL, nil, env...)
	gw := d.gateway(t, "gw")
	tok, _ := adminWithZoom(ctx, t, gw, crashZoomSecret)
	return gw, proxy, tok
}

// call sends a request and returns its status, Content-Type, Retry-After and body.
func call(ctx context.Context, t *testing.T, method, url, token string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestDatabaseOutage cuts the gateway off its PostgreSQL server while it
// runs, as a database restart or failover does: the API and the webhook
// intake answer 503 problem+json with Retry-After (not a 500 that says the
// gateway failed and was reported), /readyz is 503 and /healthz stays 200 so
// the orchestrator does not kill the task; once the database is back, the
// same process answers 200 again without a restart.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	gw, proxy, tok := outageDeployment(t, ctx)
	if code, _, body := call(ctx, t, "GET", gw.URL+"/v1/bookings", tok); code != http.StatusOK {
		t.Fatalf("before the outage: %d %s", code, body)
	}

	proxy.Down()
	// The first requests find pooled connections cut in the middle, the
	// later ones new connections refused.
	for i := range 3 {
		code, h, body := call(ctx, t, "GET", gw.URL+"/v1/bookings", tok)
		var p struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil || code != http.StatusServiceUnavailable ||
			p.Type != "https://spotlight.dev/problems/unavailable" || h.Get("Content-Type") != "application/problem+json" ||
			h.Get("Retry-After") == "" {
			t.Errorf("GET /v1/bookings #%d with the database down = %d %q Retry-After %q %s, want a 503 unavailable problem with Retry-After",
				i+1, code, h.Get("Content-Type"), h.Get("Retry-After"), body)
		}
	}
	hc := &http.Client{Timeout: 20 * time.Second}
	body2 := []byte(fmt.Sprintf(`{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"a","object":{"id":"42","uuid":"u42","host_id":"h","topic":"t","type":2,"start_time":"2030-01-01T10:00:00Z","duration":60,"timezone":"UTC"}}}`, time.Now().UnixMilli()))
	if status := zoomDeliverStatus(ctx, hc, gw.URL, body2); status != http.StatusServiceUnavailable {
		t.Errorf("signed Zoom delivery with the database down = %d, want 503", status)
	}
	if code, _, body := call(ctx, t, "GET", gw.URL+"/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Errorf("/readyz with the database down = %d %s, want 503 naming the database", code, body)
	}
	if code, _, body := call(ctx, t, "GET", gw.URL+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz with the database down = %d %s, want 200 (the process is alive)", code, body)
	}

	proxy.Up()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, body := call(ctx, t, "GET", gw.URL+"/v1/bookings", tok)
		ready, _, _ := call(ctx, t, "GET", gw.URL+"/readyz", "")
		if code == http.StatusOK && ready == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the database came back: /v1/bookings %d %s, /readyz %d", code, body, ready)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status := zoomDeliverStatus(ctx, hc, gw.URL, body2); status/100 != 2 {
		t.Errorf("signed Zoom delivery after the outage = %d, want 2xx", status)
	}
}

// zoomDeliverStatus posts one delivery signed now and returns the status (0
// when the request failed).
func zoomDeliverStatus(ctx context.Context, hc *http.Client, base string, body []byte) int {
	req, err := zoomRequest(ctx, base, body)
	if err != nil {
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
