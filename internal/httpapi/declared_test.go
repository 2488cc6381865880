package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/uuid"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
)

// hangingSSM is the SSM simulator behind a switch that, when on, holds
// every call until the client gives up: SSM not answering.
type hangingSSM struct {
	sim  *ssmtest.Server
	srv  *httptest.Server
	hang atomic.Bool
}

func newHangingSSM(t *testing.T) *hangingSSM {
	t.Helper()
	h := &hangingSSM{sim: ssmtest.New(ssmtest.Options{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.hang.Load() {
			// Held past the client's attempt timeout, not for ever: a
			// caller without a deadline must not hang the test.
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		h.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// store is the gateway's SSM secret store on h, each attempt bounded by a
// short timeout as GATEWAY's 10 s bounds it in production.
func (h *hangingSSM) store(t *testing.T) secrets.Store {
	t.Helper()
	s, err := ssm.NewWithAWSConfig(aws.Config{Region: ssmtest.DefaultRegion, HTTPClient: h.srv.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey, "")},
		ssm.Config{Endpoint: h.srv.URL, Timeout: 200 * time.Millisecond, MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDeclaredAnswersAreSent walks openapi.yaml and the server together,
// both ways, for what the generated client cannot see typed:
//   - 504: every operation that declares it answers it to a real request
//     while the secret store (the real SSM backend, in front of an SSM that
//     stopped answering) times out, and the contract wrapper fails any
//     operation that answers 504 without declaring it;
//   - 401: every bearer-secured operation answers a request without a
//     token, and one with a refused token, with the declared
//     WWW-Authenticate challenge (required by the Unauthorized response);
//   - X-Request-Id: every answer of the table carries it, which the error
//     responses declare as required.
func TestDeclaredAnswersAreSent(t *testing.T) {
	t.Parallel()
	h := newHangingSSM(t)
	ce := newConnEnvSecrets(t, nil, h.store, nil)
	admin := ce.token(t, "root", "admin")
	mentor := ce.token(t, "mentor-1", "mentor")
	cand := ce.token(t, "cand-1", "candidate")
	caldav := `{"server_url":"` + ce.caldavURL + `","username":"mentor","app_password":"` + appPassword + `"}`
	if resp, body := ce.do(t, "POST", "/v1/connections/caldav", mentor, caldav); resp.StatusCode != http.StatusCreated {
		t.Fatalf("connect CalDAV: %d %s", resp.StatusCode, body)
	}
	connectGoogleAs(t, ce, cand)
	// Two Google consents to complete while SSM hangs, one per callback.
	consent := func() url.Values {
		t.Helper()
		resp, body := ce.do(t, "POST", "/v1/connections/google", admin, "")
		start := decode[struct {
			AuthorizationURL string `json:"authorization_url"`
		}](t, resp, body, http.StatusOK)
		_, q := browse(t, start.AuthorizationURL)
		return q
	}
	viaAPI, viaRedirect := consent(), consent()

	h.hang.Store(true)
	timeouts := []struct {
		op, method, path, token, body string
	}{
		{"getProviderCredentials", "GET", "/v1/admin/providers/jira/credentials", admin, ""},
		{"putProviderCredentials", "PUT", "/v1/admin/providers/jira/credentials", admin, `{"email":"bot@example.com","api_token":"jira-token","site_url":"https://example.atlassian.net"}`},
		{"startGoogleConnection", "POST", "/v1/connections/google", mentor, ""},
		{"deleteGoogleConnection", "DELETE", "/v1/connections/google", cand, ""},
		{"completeGoogleConnection", "POST", "/v1/connections/google/callback", admin,
			`{"code":"` + viaAPI.Get("code") + `","state":"` + viaAPI.Get("state") + `"}`},
		{"googleOAuthCallback", "GET", "/v1/oauth/google/callback?" + viaRedirect.Encode(), "", ""},
		{"createCalDAVConnection", "POST", "/v1/connections/caldav", mentor, caldav},
		{"updateCalDAVConnection", "PUT", "/v1/connections/caldav", mentor, `{"busy_calendars":[]}`},
		{"deleteCalDAVConnection", "DELETE", "/v1/connections/caldav", mentor, ""},
		{"listConnectionCalendars", "GET", "/v1/connections/caldav/calendars", mentor, ""},
	}
	covered := map[string]bool{}
	for _, tt := range timeouts {
		resp, body := ce.do(t, tt.method, tt.path, tt.token, tt.body, "Accept", "application/json")
		if resp.StatusCode != http.StatusGatewayTimeout || problemType(t, body) != "gateway-timeout" {
			t.Errorf("%s %s while SSM hangs: %d %s, want 504 gateway-timeout", tt.method, tt.path, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no X-Request-Id", tt.method, tt.path)
		}
		covered[tt.op] = true
	}
	h.hang.Store(false)

	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Responses.Status(http.StatusGatewayTimeout) != nil && !covered[op.OperationID] {
				t.Errorf("%s %s (%s) declares 504, which no request of the table makes it answer", method, path, op.OperationID)
			}
			bearer := op.Security == nil || len(*op.Security) > 0
			if !bearer {
				continue
			}
			u := expand(path, map[string]string{"bookingId": uuid.NewString(), "mentorId": "mentor-1", "eventId": uuid.NewString(),
				"provider": "google"})
			for _, tok := range []struct{ token, challenge string }{
				{"", `Bearer realm="spotlight"`},
				{"not-a-jwt", `Bearer realm="spotlight", error="invalid_token"`},
			} {
				resp, body := ce.do(t, method, u, tok.token, "")
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != tok.challenge || resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("%s %s with token %q: %d, WWW-Authenticate %q, X-Request-Id %q: want 401, %q and an id (%s)", method, u, tok.token,
						resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("X-Request-Id"), tok.challenge, body)
				}
			}
		}
	}
}
