package main

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/sandbox"
)

// TestWebhookSecretsFromTheStore: the intake verifies with the webhook
// secrets stored as the providers' credentials (what an admin puts with
// PUT /v1/admin/providers/{provider}/credentials, or in SSM): during a Zoom
// secret rotation both webhook_secret and webhook_secret_next verify, the
// secret they replaced no longer does, and Jira's webhook_secret is the one
// X-Hub-Signature is checked with. The limit of a delivery is the default
// 256 KiB.
func TestWebhookSecretsFromTheStore(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir()}
	base, _, _ := startGateway(t, env)
	var tok bytes.Buffer
	if err := run(t.Context(), []string{"token", "--sub", "ops", "--group", "admin"}, envOf(env), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(tok.String())
	send := func(path string, body []byte, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	put := func(provider, fields string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/v1/admin/providers/"+provider+"/credentials", strings.NewReader(fields))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("PUT %s credentials = %d %s", provider, resp.StatusCode, b)
		}
	}
	// Before any delivery (the intake reads the secrets at the first one and
	// keeps them for 30 s): a rotation under way, and a Jira secret.
	put("zoom", `{"account_id":"`+sandbox.ZoomAccountID+`","client_id":"`+sandbox.ZoomClientID+`","client_secret":"`+sandbox.ZoomClientSecret+
		`","webhook_secret":"zoom-rotated-in","webhook_secret_next":"zoom-rotating-out"}`)
	put("jira", `{"email":"gateway@example.com","api_token":"sandbox-token","webhook_secret":"jira-stored-secret"}`)

	zoomBody := func(id string) []byte {
		return []byte(`{"event":"meeting.started","event_ts":` + strconv.FormatInt(time.Now().UnixMilli(), 10) +
			`,"payload":{"account_id":"acc","object":{"id":"` + id + `","uuid":"u-` + id + `"}}}`)
	}
	signed := func(secret string, body []byte) map[string]string {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		return map[string]string{"x-zm-request-timestamp": ts, "x-zm-signature": zoomtest.Sign(secret, ts, body)}
	}
	for i, tt := range []struct {
		secret string
		status int
	}{
		{"zoom-rotated-in", http.StatusNoContent},
		{"zoom-rotating-out", http.StatusNoContent},
		{sandboxZoomWebhookSecret, http.StatusUnauthorized}, // the seeded secret the PUT replaced
	} {
		b := zoomBody(strconv.Itoa(9000 + i))
		if code, ans := send("/webhooks/zoom", b, signed(tt.secret, b)); code != tt.status {
			t.Errorf("zoom delivery signed with %s = %d %s, want %d", tt.secret, code, ans, tt.status)
		}
	}

	jb := []byte(`{"webhookEvent":"jira:issue_created","timestamp":1,"issue":{"id":"1","key":"SPOT-1","fields":{}}}`)
	for _, tt := range []struct {
		secret string
		status int
	}{
		{"jira-stored-secret", http.StatusAccepted},
		{sandboxJiraWebhookSecret, http.StatusUnauthorized},
	} {
		hdr := map[string]string{"X-Hub-Signature": jiratest.Sign(tt.secret, jb), "X-Atlassian-Webhook-Identifier": "id-" + tt.secret}
		if code, ans := send("/webhooks/jira", jb, hdr); code != tt.status {
			t.Errorf("jira delivery signed with %s = %d %s, want %d", tt.secret, code, ans, tt.status)
		}
	}

	// GATEWAY_WEBHOOK_MAX_BODY's default: 256 KiB and no more.
	big := zoomBody("9100")
	big = append(big[:len(big)-2:len(big)-2], []byte(`,"pad":"`+strings.Repeat("a", 256<<10)+`"}}`)...)
	if code, ans := send("/webhooks/zoom", big, signed("zoom-rotated-in", big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("delivery of %d bytes = %d %s, want 413", len(big), code, ans)
	}
}
