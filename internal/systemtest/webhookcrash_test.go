package systemtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestWebhookCrash sends signed Zoom deliveries from eight senders that,
// like Zoom, send each one again until it is acknowledged, and SIGKILLs the
// gateway (SQLite; PostgreSQL in TestWebhookCrashPostgres) at random
// moments while they do, restarting it each time. Every delivery must end
// stored once and processed once: those whose in-process processing died
// with the process are processed by their durable job after the hand-off
// grace, and a job whose deliveries were already processed does nothing.
func TestWebhookCrash(t *testing.T) {
	t.Parallel()
	webhookCrash(t, "")
}

// TestWebhookCrashPostgres is TestWebhookCrash on a PostgreSQL schema
// (skipped without GATEWAY_TEST_POSTGRES_URL).
func TestWebhookCrashPostgres(t *testing.T) {
	t.Parallel()
	webhookCrash(t, storetest.PostgresURL(t))
}

const crashZoomSecret = "systemtest-zoom-webhook-secret"

func webhookCrash(t *testing.T, dbURL string) {
	const (
		senders = 8
		kills   = 3
		send    = 3 * time.Second
	)
	d := newDeployment(t, dbURL, nil, "GATEWAY_WEBHOOK_HANDOFF_GRACE=2s")
	gw := d.gateway(t, "gw")
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	_, admin := adminWithZoom(ctx, t, gw, crashZoomSecret)

	// The senders: each delivery is sent until a 2xx answers it.
	var (
		mu    sync.Mutex
		acked = map[int]bool{}
		tries int
		wg    sync.WaitGroup
	)
	hc := &http.Client{Timeout: 5 * time.Second}
	stop := time.Now().Add(send)
	for s := range senders {
		wg.Go(func() {
			for n := s; time.Now().Before(stop); n += senders {
				body := fmt.Appendf(nil, `{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"crash","object":{"id":"%d","uuid":"u%d","topic":"crash test","start_time":"2026-12-04T10:00:00Z","duration":30}}}`,
					1764842400000+int64(n), 800000000+n, n)
				for attempt := 0; ; attempt++ {
					if ctx.Err() != nil {
						t.Errorf("delivery %d never acknowledged", n)
						return
					}
					mu.Lock()
					tries++
					mu.Unlock()
					if zoomDeliver(ctx, hc, gw.URL, body) {
						break
					}
					time.Sleep(time.Duration(20+10*min(attempt, 10)) * time.Millisecond)
				}
				mu.Lock()
				acked[n] = true
				mu.Unlock()
			}
		})
	}

	// The killer.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := range kills {
		time.Sleep(time.Duration(300+rng.IntN(int(send/time.Millisecond)/kills-300)) * time.Millisecond)
		if err := gw.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := gw.Start(ctx); err != nil {
			t.Fatalf("restart after kill %d: %v", k+1, err)
		}
	}
	wg.Wait()
	t.Logf("%d deliveries acknowledged after %d sends, %d kills", len(acked), tries, kills)
	if len(acked) < senders*10 {
		t.Fatalf("only %d deliveries acknowledged", len(acked))
	}

	// Every stored delivery ends processed, each one once.
	var events []client.WebhookEvent
	for {
		events = listZoomDeliveries(ctx, t, admin)
		done := 0
		for _, e := range events {
			if e.Status == client.WebhookEventStatusProcessed {
				done++
			}
		}
		if len(events) == len(acked) && done == len(events) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d deliveries stored (%d acknowledged), %d processed", len(events), len(acked), done)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.ExternalId] {
			t.Errorf("delivery %s stored twice", e.ExternalId)
		}
		seen[e.ExternalId] = true
		if e.Attempts != 1 || e.LastError != nil || e.ProcessedAt == nil {
			t.Errorf("delivery %s: attempts %d, last error %v, processed at %v (want processed once)", e.Id, e.Attempts, e.LastError, e.ProcessedAt)
		}
	}
}

// zoomDeliver posts one delivery signed now and reports whether a 2xx
// acknowledged it.
func zoomDeliver(ctx context.Context, hc *http.Client, base string, body []byte) bool {
	req, err := zoomRequest(ctx, base, body)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// zoomRequest is a Zoom delivery of body to base, signed now with crashZoomSecret.
func zoomRequest(ctx context.Context, base string, body []byte) (*http.Request, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(crashZoomSecret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/zoom", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	return req, nil
}

// listZoomDeliveries lists every stored Zoom delivery.
func listZoomDeliveries(ctx context.Context, t *testing.T, admin *client.ClientWithResponses) []client.WebhookEvent {
	t.Helper()
	var (
		out    []client.WebhookEvent
		cursor *client.Cursor
	)
	provider, limit := client.WebhookProviderZoom, client.Limit(200)
	for {
		resp, err := admin.ListWebhookEventsWithResponse(ctx, &client.ListWebhookEventsParams{Provider: &provider, Cursor: cursor, Limit: &limit})
		if err != nil {
			t.Fatal(err)
		}
		if resp.JSON200 == nil {
			t.Fatalf("list webhook events: %d %s", resp.StatusCode(), resp.Body)
		}
		out = append(out, resp.JSON200.Items...)
		if resp.JSON200.NextCursor == nil || *resp.JSON200.NextCursor == "" {
			return out
		}
		c := client.Cursor(*resp.JSON200.NextCursor)
		cursor = &c
	}
}

// adminWithZoom mints an admin token for gw and stores the sandbox Zoom
// account's credentials with webhookSecret through the admin API, as an
// operator does before Zoom's deliveries can be verified.
func adminWithZoom(ctx context.Context, t *testing.T, gw *Gateway, webhookSecret string) (string, *client.ClientWithResponses) {
	t.Helper()
	tok, err := gw.Token(ctx, Admin, "admin")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := gw.Client(tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := admin.PutProviderCredentialsWithResponse(ctx, "zoom", client.ProviderCredentialsInput{
		"account_id": ZoomAccountID, "client_id": ZoomClientID, "client_secret": ZoomClientSecret, "webhook_secret": webhookSecret})
	if err != nil || resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("put zoom credentials: %v %v", err, resp)
	}
	return tok, admin
}
