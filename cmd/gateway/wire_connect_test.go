package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spotlight/gateway/internal/sandbox"
)

// TestSandboxConnections runs the connection flows against the gateway's
// own sandbox: Google OAuth through the in-process simulator (its consent
// screen redirects back to the gateway's callback), CalDAV against the
// in-process server as the default server, and the seeded provider
// credentials, all over real HTTP.
func TestSandboxConnections(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir()}
	base, _, _ := startGateway(t, env)
	mint := func(sub, group string) string {
		var tok bytes.Buffer
		if err := run(t.Context(), []string{"token", "--sub", sub, "--group", group}, envOf(env), &tok, io.Discard); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(tok.String())
	}
	mentor, admin := mint("mentor-1", "mentor"), mint("ops", "admin")
	do := func(method, url, token, body string, hdr ...string) (int, []byte, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}

	code, body, _ := do("POST", base+"/v1/connections/google", mentor, "")
	var start struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	if code != 200 || json.Unmarshal(body, &start) != nil {
		t.Fatalf("start = %d %s", code, body)
	}
	code, _, hdr := do("GET", start.AuthorizationURL, "", "")
	if code != http.StatusFound || !strings.HasPrefix(hdr.Get("Location"), base+"/v1/oauth/google/callback?") {
		t.Fatalf("sandbox consent = %d, Location %q", code, hdr.Get("Location"))
	}
	code, body, _ = do("GET", hdr.Get("Location"), "", "", "Accept", "application/json")
	if code != 200 || !strings.Contains(string(body), `"account_email":"mentor@example.com"`) {
		t.Fatalf("callback = %d %s", code, body)
	}

	code, body, _ = do("POST", base+"/v1/connections/caldav", mentor, `{"username":"`+sandbox.CalDAVUser+`","app_password":"`+sandbox.CalDAVPassword+`"}`)
	if code != 201 || !strings.Contains(string(body), `"provider":"caldav"`) {
		t.Fatalf("caldav = %d %s", code, body)
	}
	code, body, _ = do("GET", base+"/v1/connections", mentor, "")
	if code != 200 || strings.Count(string(body), `"status":"connected"`) != 2 || strings.Contains(string(body), sandbox.CalDAVPassword) {
		t.Fatalf("list = %d %s", code, body)
	}
	for _, p := range []string{"zoom", "jira", "google"} {
		code, body, _ = do("GET", base+"/v1/admin/providers/"+p+"/credentials", admin, "")
		if code != 200 || !strings.Contains(string(body), `"set":true`) {
			t.Fatalf("%s credentials = %d %s", p, code, body)
		}
	}
	for _, p := range []string{"google", "caldav"} {
		if code, body, _ := do("DELETE", base+"/v1/connections/"+p, mentor, ""); code != 204 {
			t.Fatalf("DELETE %s = %d %s", p, code, body)
		}
	}
}
