package telemetry

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"
)

func TestScrubString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, secret, keep string
	}{
		{"auth failed: Bearer abc.def-ghi", "abc.def-ghi", "auth failed"},
		{"header Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "header"},
		{"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in text", "eyJhbGciOiJSUzI1NiJ9", "in text"},
		{`{"refresh_token":"1//0gabc","expires_in":3600}`, "1//0gabc", "expires_in"},
		{"client_secret=s3cr3t&grant_type=refresh_token", "s3cr3t", "grant_type"},
		{"app_password: abcd-efgh-ijkl-mnop", "abcd-efgh", "app_password"},
		{"nothing secret here", "", "nothing secret here"},
	}
	for _, tt := range tests {
		got := ScrubString(tt.in)
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("ScrubString(%q) = %q still holds %q", tt.in, got, tt.secret)
		}
		if !strings.Contains(got, tt.keep) {
			t.Errorf("ScrubString(%q) = %q lost %q", tt.in, got, tt.keep)
		}
	}
}

func TestScrubEvent(t *testing.T) {
	t.Parallel()
	ev := &sentry.Event{
		Message: "refresh failed: refresh_token=1//secret-refresh",
		Request: &sentry.Request{
			URL:         "https://gw/v1/oauth/google/callback",
			QueryString: "code=4/0secret-code&state=signed-state&scope=email",
			Cookies:     "session=abc",
			Data:        `{"app_password":"pw"}`,
			Headers:     map[string]string{"Authorization": "Bearer t0k", "X-Zm-Signature": "v0=sig", "Accept": "application/json"},
		},
		User:        sentry.User{ID: "user-1", Email: "a@example.com", IPAddress: "10.1.2.3"},
		Exception:   []sentry.Exception{{Value: "dial: password=hunter2"}},
		Tags:        map[string]string{"api_key": "k", "route": "/v1/x"},
		Contexts:    map[string]sentry.Context{"provider": {"client_secret": "cs", "name": "zoom"}},
		Breadcrumbs: []*sentry.Breadcrumb{{Message: "GET Bearer crumb-token", Data: map[string]any{"token": "crumb", "status": 200}}},
	}
	out := ScrubEvent(ev, nil)
	raw, _ := json.Marshal(out)
	s := string(raw)
	for _, secret := range []string{"secret-refresh", "secret-code", "signed-state", "session=abc", `"pw"`, "t0k", "v0=sig", "a@example.com", "10.1.2.3", "hunter2", `"k"`, `"cs"`, "crumb-token", `"crumb"`} {
		if strings.Contains(s, secret) {
			t.Errorf("scrubbed event still holds %s:\n%s", secret, s)
		}
	}
	for _, keep := range []string{"user-1", "application/json", "scope=email", "/v1/x", "zoom"} {
		if !strings.Contains(s, keep) {
			t.Errorf("scrubbed event lost %s:\n%s", keep, s)
		}
	}
}

func TestInitSentryBadDSNNotEchoed(t *testing.T) {
	_, err := InitSentry(SentryOptions{DSN: "https://topsecretkey@bad host/1"})
	if err == nil || strings.Contains(err.Error(), "topsecretkey") {
		t.Fatalf("InitSentry = %v, want an error that does not show the DSN's key", err)
	}
}
