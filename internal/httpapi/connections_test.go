package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/logtest"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/internal/telemetry"
)

const appPassword = "abcd-efgh-ijkl-mnop"

// connEnv is an API server with a real connect.Service on SQLite, the
// Google simulator and an in-memory CalDAV server.
type connEnv struct {
	*env
	svc       *connect.Service
	sec       secrets.Store
	google    *gcaltest.Server
	googleURL string
	caldavURL string
	caldav    *caldavtest.Server
	clock     *testClock
}

type testClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.d += d
	c.mu.Unlock()
}

// newConnEnv builds the environment; mutate adjusts the server's deps and
// configure the connect service's config.
func newConnEnv(t *testing.T, logger *slog.Logger, mutate func(*httpapi.Deps), configure ...func(*connect.Config)) *connEnv {
	t.Helper()
	return newConnEnvSecrets(t, logger, nil, mutate, configure...)
}

// newConnEnvSecrets is newConnEnv with the secret store that secretStore
// returns (nil: the local store in the test's database).
func newConnEnvSecrets(t *testing.T, logger *slog.Logger, secretStore func(t *testing.T) secrets.Store, mutate func(*httpapi.Deps), configure ...func(*connect.Config)) *connEnv {
	t.Helper()
	g := gcaltest.New(gcaltest.Options{AllowHTTPPush: true, RotateRefreshTokens: true,
		Users: []gcaltest.User{{Email: "mentor@example.com", Calendars: []gcaltest.Calendar{{ID: "work@group.calendar.google.com", Summary: "Work"}}}}})
	gsrv := httptest.NewServer(g)
	t.Cleanup(gsrv.Close)
	cdSim := caldavtest.New(caldavtest.Options{Users: map[string]string{"mentor": appPassword}})
	cd := httptest.NewServer(cdSim)
	t.Cleanup(cd.Close)
	db := storetest.SQLite(t)
	key, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var sec secrets.Store
	if secretStore != nil {
		sec = secretStore(t)
	} else if sec, err = local.New(db.DB(), string(db.Dialect()), local.NewKeyring(key)); err != nil {
		t.Fatal(err)
	}
	clk := &testClock{}
	cc := connect.Config{
		SecretPrefix: "spotlight", SecretEnv: "test", PublicURL: "http://gateway.test",
		Google: connect.GoogleConfig{ClientID: gcaltest.DefaultClientID, AuthURL: gsrv.URL + "/o/oauth2/auth", TokenURL: gsrv.URL + "/token",
			APIURL: gsrv.URL + "/", UserinfoURL: gcaltest.UserinfoURL(gsrv.URL), RevokeURL: gcaltest.RevokeURL(gsrv.URL)},
		// The guard is on; only the test CalDAV server's address is let through.
		CalDAV: connect.CalDAVConfig{AllowHosts: []string{cd.Listener.Addr().String()}},
		Now:    clk.Now,
		Logger: logger,
	}
	for _, f := range configure {
		f(&cc)
	}
	svc, err := connect.New(db, sec, cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.PutProviderCredentials(t.Context(), "google", map[string]string{"client_secret": gcaltest.DefaultClientSecret}); err != nil {
		t.Fatal(err)
	}
	en := newEnv(t, func(d *httpapi.Deps) {
		if logger != nil {
			d.Logger = logger
		}
		d.Connections = httpapi.ConnectionDeps{Service: svc}
		if mutate != nil {
			mutate(d)
		}
		d.Mount = append(d.Mount, httpapi.GoogleCallbackRoute(d.Connections, d.Logger))
	})
	return &connEnv{env: en, svc: svc, sec: sec, google: g, googleURL: gsrv.URL, caldavURL: cd.URL, caldav: cdSim, clock: clk}
}

// browserGet requests path as a browser would (Accept: text/html) without
// following a redirect.
func (ce *connEnv) browserGet(t *testing.T, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", ce.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// browse follows the authorization URL like a browser and returns the
// callback path with its query (code and state).
func browse(t *testing.T, authURL string) (string, url.Values) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", authURL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("no redirect from the consent screen: %d", resp.StatusCode)
	}
	return loc.Path + "?" + loc.RawQuery, loc.Query()
}

func decode[T any](t *testing.T, resp *http.Response, body []byte, status int) T {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return v
}

type connection struct {
	Provider     string `json:"provider"`
	Status       string `json:"status"`
	AccountEmail string `json:"account_email"`
	ServerURL    string `json:"server_url"`
	Calendar     *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"calendar"`
	Calendars []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"calendars"`
	LastError *string `json:"last_error"`
}

func TestConnectionEndpoints(t *testing.T) {
	t.Parallel()
	ce := newConnEnv(t, nil, nil)
	alice := ce.token(t, "alice", "mentor")
	bob := ce.token(t, "bob", "candidate")

	resp, body := ce.do(t, "GET", "/v1/connections", alice, "")
	if list := decode[struct{ Items []connection }](t, resp, body, 200); len(list.Items) != 0 {
		t.Fatalf("initial list = %s", body)
	}

	// Google: start, consent, callback (JSON), replay refused.
	resp, body = ce.do(t, "POST", "/v1/connections/google", alice, "")
	start := decode[struct {
		AuthorizationURL string    `json:"authorization_url"`
		ExpiresAt        time.Time `json:"expires_at"`
	}](t, resp, body, 200)
	cb, q := browse(t, start.AuthorizationURL)
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "application/json")
	conn := decode[connection](t, resp, body, 200)
	if conn.Provider != "google" || conn.Status != "connected" || conn.AccountEmail != "mentor@example.com" || conn.Calendar == nil || len(conn.Calendars) != 2 {
		t.Fatalf("callback = %s", body)
	}
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "application/json")
	p := decodeProblem(t, resp, body, 400)
	if strings.Contains(string(body), q.Get("state")) || strings.Contains(string(body), q.Get("code")) {
		t.Fatal("the problem echoes state or code")
	}
	_ = p

	// The HTML answer for browsers (bob).
	resp, body = ce.do(t, "POST", "/v1/connections/google", bob, "")
	start = decode[struct {
		AuthorizationURL string    `json:"authorization_url"`
		ExpiresAt        time.Time `json:"expires_at"`
	}](t, resp, body, 200)
	cb, _ = browse(t, start.AuthorizationURL)
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "text/html")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "mentor@example.com") {
		t.Fatalf("HTML callback = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// Choosing calendars.
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"work@group.calendar.google.com"}`)
	if c := decode[connection](t, resp, body, 200); c.Calendar == nil || c.Calendar.Name != "Work" {
		t.Fatalf("choose = %s", body)
	}
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"nope@example.com"}`)
	decodeProblem(t, resp, body, 422)

	// CalDAV: wrong password, refused server, success.
	resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice, `{"server_url":"`+ce.caldavURL+`","username":"mentor","app_password":"guessed-wrong"}`)
	p = decodeProblem(t, resp, body, 422)
	if !strings.Contains(p.Detail, "app-specific password") || strings.Contains(string(body), "guessed-wrong") {
		t.Fatalf("wrong password problem = %s", body)
	}
	for _, bad := range []string{"http://169.254.169.254/", "https://10.0.0.1/", "http://127.0.0.1:1/", "https://localhost/"} {
		resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice, `{"server_url":"`+bad+`","username":"mentor","app_password":"`+appPassword+`"}`)
		p = decodeProblem(t, resp, body, 422)
		if len(p.Errors) == 0 || p.Errors[0].Field != "body.server_url" || strings.Contains(string(body), appPassword) {
			t.Fatalf("server %s: %s", bad, body)
		}
	}
	resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice, `{"server_url":"`+ce.caldavURL+`","username":"mentor","app_password":"`+appPassword+`"}`)
	if c := decode[connection](t, resp, body, 201); c.Provider != "caldav" || c.ServerURL != ce.caldavURL || c.Calendar == nil || c.AccountEmail != "" {
		t.Fatalf("caldav connect = %s", body)
	}
	resp, body = ce.do(t, "PUT", "/v1/connections/caldav", alice, `{"calendar_path":"/mentor/calendars/default/"}`)
	decode[connection](t, resp, body, 200)
	resp, body = ce.do(t, "PUT", "/v1/connections/caldav", bob, `{"calendar_path":"/mentor/calendars/default/"}`)
	decodeProblem(t, resp, body, 404) // bob has no CalDAV connection: alice's is not his

	// Listing: each user sees only their own, never a secret.
	resp, body = ce.do(t, "GET", "/v1/connections", alice, "")
	if list := decode[struct{ Items []connection }](t, resp, body, 200); len(list.Items) != 2 {
		t.Fatalf("alice's list = %s", body)
	}
	for _, s := range []string{appPassword, "ya29.", "1//", "refresh", "access_token", gcaltest.DefaultClientSecret} {
		if strings.Contains(string(body), s) {
			t.Fatalf("list contains %q: %s", s, body)
		}
	}
	resp, body = ce.do(t, "GET", "/v1/connections", bob, "")
	if list := decode[struct{ Items []connection }](t, resp, body, 200); len(list.Items) != 1 || list.Items[0].Provider != "google" {
		t.Fatalf("bob's list = %s", body)
	}

	// Revocation shows as needs_reauth.
	ce.google.RevokeUser("mentor@example.com")
	ce.clock.Advance(2 * time.Hour) // the stored tokens look expired now
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"work@group.calendar.google.com"}`)
	decodeProblem(t, resp, body, 422)
	resp, body = ce.do(t, "GET", "/v1/connections", alice, "")
	list := decode[struct{ Items []connection }](t, resp, body, 200)
	found := false
	for _, c := range list.Items {
		if c.Provider == "google" {
			found = c.Status == "needs_reauth" && c.LastError != nil && *c.LastError != ""
		}
	}
	if !found {
		t.Fatalf("after revocation: %s", body)
	}

	// Disconnect both; idempotent.
	for _, path := range []string{"/v1/connections/google", "/v1/connections/caldav", "/v1/connections/google"} {
		if resp, body := ce.do(t, "DELETE", path, alice, ""); resp.StatusCode != 204 {
			t.Fatalf("DELETE %s = %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body = ce.do(t, "GET", "/v1/connections", alice, "")
	if list := decode[struct{ Items []connection }](t, resp, body, 200); len(list.Items) != 0 {
		t.Fatalf("after disconnect = %s", body)
	}
}

// With a post-connect page configured, the Google callback sends browsers
// there: ?result=connected, or ?result=error&reason=… for a replayed state,
// declined consent or a missing code; the page's own query is kept, and
// neither code nor state travels on. Clients asking for JSON still get JSON.
func TestGoogleCallbackRedirect(t *testing.T) {
	t.Parallel()
	const page = "https://app.example.test/settings/calendars?tab=google"
	ce := newConnEnv(t, nil, func(d *httpapi.Deps) { d.Connections.ConnectedURL = page })
	get := ce.browserGet
	start := func(t *testing.T, sub string) (string, url.Values) {
		t.Helper()
		resp, body := ce.do(t, "POST", "/v1/connections/google", ce.token(t, sub, "mentor"), "")
		s := decode[struct {
			AuthorizationURL string `json:"authorization_url"`
		}](t, resp, body, 200)
		return browse(t, s.AuthorizationURL)
	}
	redirect := func(t *testing.T, resp *http.Response, want url.Values) {
		t.Helper()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("status %d, Cache-Control %q; want 302, no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != "https://app.example.test/settings/calendars" {
			t.Fatalf("Location = %q", resp.Header.Get("Location"))
		}
		want.Set("tab", "google")
		if got := loc.Query(); got.Encode() != want.Encode() {
			t.Fatalf("Location query = %v, want %v", got, want)
		}
	}

	cb, q := start(t, "alice")
	redirect(t, get(t, cb), url.Values{"result": {"connected"}})
	resp, body := ce.do(t, "GET", "/v1/connections", ce.token(t, "alice", "mentor"), "")
	if list := decode[struct{ Items []connection }](t, resp, body, 200); len(list.Items) != 1 || list.Items[0].Status != "connected" {
		t.Fatalf("after the redirect: %s", body)
	}
	// The same callback again: the state was used.
	replay := get(t, cb)
	redirect(t, replay, url.Values{"result": {"error"}, "reason": {"invalid_state"}})
	if loc := replay.Header.Get("Location"); strings.Contains(loc, q.Get("code")) || strings.Contains(loc, q.Get("state")) {
		t.Fatalf("Location carries the code or state: %s", loc)
	}

	_, q = start(t, "bob")
	redirect(t, get(t, "/v1/oauth/google/callback?"+url.Values{"state": {q.Get("state")}, "error": {"access_denied"}}.Encode()),
		url.Values{"result": {"error"}, "reason": {"access_denied"}})
	_, q = start(t, "carol")
	redirect(t, get(t, "/v1/oauth/google/callback?"+url.Values{"state": {q.Get("state")}}.Encode()),
		url.Values{"result": {"error"}, "reason": {"missing_code"}})
	_, q = start(t, "erin")
	redirect(t, get(t, "/v1/oauth/google/callback?"+url.Values{"state": {q.Get("state")}, "code": {q.Get("code") + "x"}}.Encode()),
		url.Values{"result": {"error"}, "reason": {"token_exchange"}})

	// JSON clients: the connection, or a problem.
	cb, _ = start(t, "dave")
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "application/json")
	if c := decode[connection](t, resp, body, 200); c.Provider != "google" || c.Status != "connected" {
		t.Fatalf("JSON callback = %s", body)
	}
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "application/json")
	decodeProblem(t, resp, body, 400)
}

// TestCompleteGoogleInWebApp: Google redirects to the web app's page,
// which completes the connection with the user's token. A user lured into
// consenting to another user's authorization URL (the attacker's state)
// cannot connect their calendar to the attacker's account: the state is
// refused for anyone but the user it was issued to, and the gateway's own
// unauthenticated callback refuses every state.
func TestCompleteGoogleInWebApp(t *testing.T) {
	t.Parallel()
	const page = "https://app.example.test/connect/google"
	ce := newConnEnv(t, nil, nil, func(c *connect.Config) { c.Google.RedirectURL = page })
	start := func(t *testing.T, sub string) url.Values {
		t.Helper()
		resp, body := ce.do(t, "POST", "/v1/connections/google", ce.token(t, sub, "mentor"), "")
		s := decode[struct {
			AuthorizationURL string `json:"authorization_url"`
		}](t, resp, body, 200)
		au, err := url.Parse(s.AuthorizationURL)
		if err != nil || au.Query().Get("redirect_uri") != page {
			t.Fatalf("authorization URL %s: redirect_uri is not the web app's page", s.AuthorizationURL)
		}
		cb, q := browse(t, s.AuthorizationURL)
		if !strings.HasPrefix(cb, "/connect/google?") {
			t.Fatalf("consent redirected to %s, want the web app's page", cb)
		}
		return q
	}
	complete := func(t *testing.T, sub string, body map[string]string) (*http.Response, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		return ce.do(t, "POST", "/v1/connections/google/callback", ce.token(t, sub, "mentor"), string(b))
	}
	listOf := func(t *testing.T, sub string) []connection {
		t.Helper()
		resp, body := ce.do(t, "GET", "/v1/connections", ce.token(t, sub, "mentor"), "")
		return decode[struct{ Items []connection }](t, resp, body, 200).Items
	}

	q := start(t, "mallory") // the attacker's own authorization URL, consented to by alice
	attack := map[string]string{"state": q.Get("state"), "code": q.Get("code")}
	resp, body := ce.do(t, "GET", "/v1/oauth/google/callback?"+q.Encode(), "", "", "Accept", "application/json")
	if p := decodeProblem(t, resp, body, 400); !strings.Contains(p.Detail, "web app") {
		t.Fatalf("gateway callback while a web app page is configured: %+v", p)
	}
	resp, body = complete(t, "alice", attack)
	if p := decodeProblem(t, resp, body, 400); strings.Contains(p.Detail, "mallory") {
		t.Fatalf("the problem names the state's user: %+v", p)
	}
	if l := listOf(t, "alice"); len(l) != 0 {
		t.Fatalf("alice connected through mallory's state: %+v", l)
	}
	if l := listOf(t, "mallory"); len(l) != 0 {
		t.Fatalf("mallory connected through alice's consent: %+v", l)
	}
	if n := ce.google.Stats().CodeExchanges; n != 0 {
		t.Fatalf("%d codes exchanged for refused states", n)
	}

	// The state was refused, not used: its own user completes it.
	resp, body = complete(t, "mallory", attack)
	if c := decode[connection](t, resp, body, 200); c.Provider != "google" || c.Status != "connected" || c.AccountEmail != "mentor@example.com" {
		t.Fatalf("completion by the state's user = %s", body)
	}
	resp, body = complete(t, "mallory", attack)
	decodeProblem(t, resp, body, 400) // used

	q = start(t, "bob")
	for _, tt := range []struct {
		name   string
		body   string
		token  string
		status int
	}{
		{"no token", `{"state":"x"}`, "", 401},
		{"no state", `{"code":"x"}`, "bob", 400},
		{"unknown field", `{"state":"x","redirect_uri":"https://evil.test"}`, "bob", 400},
		{"not JSON", `state=x`, "bob", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := ""
			if tt.token != "" {
				tok = ce.token(t, tt.token, "mentor")
			}
			resp, body := ce.do(t, "POST", "/v1/connections/google/callback", tok, tt.body)
			decodeProblem(t, resp, body, tt.status)
		})
	}
	resp, body = complete(t, "bob", map[string]string{"state": q.Get("state"), "error": "access_denied"})
	if p := decodeProblem(t, resp, body, 400); !strings.Contains(p.Detail, "not granted") {
		t.Fatalf("declined: %+v", p)
	}
	if l := listOf(t, "bob"); len(l) != 0 {
		t.Fatalf("bob connected after declining: %+v", l)
	}
}

func TestConnectionRoles(t *testing.T) {
	t.Parallel()
	ce := newConnEnv(t, nil, nil)
	machine, err := ce.issuer.Mint(auth.TokenRequest{Subject: "svc-client", Scopes: []string{"gateway/bookings.write"}})
	if err != nil {
		t.Fatal(err)
	}
	noRole := ce.token(t, "nobody")
	mentor := ce.token(t, "m1", "mentor")
	admin := ce.token(t, "root", "admin")
	tests := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"machine lists", "GET", "/v1/connections", machine, "", 403},
		{"no role starts", "POST", "/v1/connections/google", noRole, "", 403},
		{"anonymous", "GET", "/v1/connections", "", "", 401},
		{"mentor reads credentials", "GET", "/v1/admin/providers/zoom/credentials", mentor, "", 403},
		{"mentor writes credentials", "PUT", "/v1/admin/providers/zoom/credentials", mentor, `{"account_id":"a"}`, 403},
		{"unknown field", "PUT", "/v1/admin/providers/zoom/credentials", admin, `{"account_id":"a","client_id":"c","client_secret":"s","password":"p"}`, 422},
		{"unknown provider", "GET", "/v1/admin/providers/slack/credentials", admin, "", 400},
		{"empty body", "PUT", "/v1/admin/providers/jira/credentials", admin, `{}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := ce.do(t, tt.method, tt.path, tt.token, tt.body)
			p := decodeProblem(t, resp, body, tt.status)
			if tt.name == "unknown field" && (len(p.Errors) != 1 || p.Errors[0].Field != "body.password") {
				t.Fatalf("errors = %+v", p.Errors)
			}
		})
	}
}

func TestProviderCredentialsEndpoints(t *testing.T) {
	t.Parallel()
	ce := newConnEnv(t, nil, nil)
	admin := ce.token(t, "root", "admin")
	resp, body := ce.do(t, "GET", "/v1/admin/providers/jira/credentials", admin, "")
	st := decode[struct {
		Provider  string     `json:"provider"`
		Set       bool       `json:"set"`
		Fields    []string   `json:"fields"`
		UpdatedAt *time.Time `json:"updated_at"`
	}](t, resp, body, 200)
	if st.Set || len(st.Fields) != 0 || st.UpdatedAt != nil || st.Provider != "jira" {
		t.Fatalf("unset status = %s", body)
	}
	resp, body = ce.do(t, "PUT", "/v1/admin/providers/jira/credentials", admin, `{"email":"bot@example.com","api_token":"jira-s3cr3t-token","site_url":"https://example.atlassian.net"}`)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	resp, body = ce.do(t, "GET", "/v1/admin/providers/jira/credentials", admin, "")
	st = decode[struct {
		Provider  string     `json:"provider"`
		Set       bool       `json:"set"`
		Fields    []string   `json:"fields"`
		UpdatedAt *time.Time `json:"updated_at"`
	}](t, resp, body, 200)
	if !st.Set || strings.Join(st.Fields, ",") != "api_token,email,site_url" || st.UpdatedAt == nil {
		t.Fatalf("status = %s", body)
	}
	if strings.Contains(string(body), "jira-s3cr3t-token") || strings.Contains(string(body), "bot@example.com") {
		t.Fatalf("status shows a value: %s", body)
	}
	resp, body = ce.do(t, "PUT", "/v1/admin/providers/jira/credentials", admin, `{"site_url":"not a url"}`)
	decodeProblem(t, resp, body, 422)

	// The set is replaced, so one lacking the required fields is refused,
	// naming them, and the working set stays.
	resp, body = ce.do(t, "PUT", "/v1/admin/providers/jira/credentials", admin, `{"webhook_secret":"jira-hook-s3cr3t"}`)
	p := decodeProblem(t, resp, body, 422)
	var missing []string
	for _, f := range p.Errors {
		missing = append(missing, f.Field)
	}
	if strings.Join(missing, ",") != "body.api_token,body.email" {
		t.Fatalf("errors = %+v, want body.api_token and body.email", p.Errors)
	}
	resp, body = ce.do(t, "GET", "/v1/admin/providers/jira/credentials", admin, "")
	if !strings.Contains(string(body), `"fields":["api_token","email","site_url"]`) || !strings.Contains(string(body), `"set":true`) {
		t.Fatalf("status after a refused partial set = %d %s", resp.StatusCode, body)
	}
}

// TestNoSecretsInLogsOrSentry captures every log line and Sentry event of
// a connect → refresh → failures → disconnect run and looks for every
// secret that passed through. Not parallel: Sentry's client is process-wide.
func TestNoSecretsInLogsOrSentry(t *testing.T) {
	tr := &capture{}
	flush, err := telemetry.InitSentry(telemetry.SentryOptions{DSN: "https://public@sentry.invalid/1", Environment: "test", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { flush(time.Second); sentry.CurrentHub().BindClient(nil) }()
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ce := newConnEnv(t, logger, func(d *httpapi.Deps) {
		d.Sentry = true
		d.Connections.ConnectedURL = "https://app.example.test/connected"
	})
	alice := ce.token(t, "alice", "mentor")
	admin := ce.token(t, "root", "admin")
	var secretsSeen []string
	remember := func(s ...string) {
		for _, v := range s {
			if v != "" {
				secretsSeen = append(secretsSeen, v)
			}
		}
	}
	remember(gcaltest.DefaultClientSecret, appPassword, "guessed-wrong-pw", "zoom-client-s3cr3t", alice, admin)

	// Connect Google.
	_, body := ce.do(t, "POST", "/v1/connections/google", alice, "")
	var start struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	_ = json.Unmarshal(body, &start)
	cb, q := browse(t, start.AuthorizationURL)
	remember(q.Get("state"), q.Get("code"))
	if resp, body := ce.do(t, "GET", cb, "", "", "Accept", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("callback = %d %s", resp.StatusCode, body)
	}
	p, _ := secrets.UserPath("spotlight", "test", "alice", "google")
	rememberToken := func() {
		s, err := ce.sec.Get(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		var tok map[string]any
		_ = json.Unmarshal(s.Value, &tok)
		remember(tok["access_token"].(string), tok["refresh_token"].(string))
	}
	rememberToken()
	for _, ch := range ce.google.Channels("mentor@example.com") {
		remember(ch.Token)
	}

	// Refresh (rotating refresh tokens), then use the calendar.
	ce.clock.Advance(2 * time.Hour)
	if _, err := ce.svc.GoogleToken(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	rememberToken()
	if resp, body := ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"work@group.calendar.google.com"}`); resp.StatusCode != 200 {
		t.Fatalf("choose = %d %s", resp.StatusCode, body)
	}
	for _, ch := range ce.google.Channels("work@group.calendar.google.com") {
		remember(ch.Token)
	}

	// Failures that reach the logs and Sentry: a token exchange Google
	// refuses (502, tampered code), a replayed state, a wrong CalDAV
	// password, provider credentials with an unknown field.
	_, body = ce.do(t, "POST", "/v1/connections/google", alice, "")
	_ = json.Unmarshal(body, &start)
	cb, q = browse(t, start.AuthorizationURL)
	remember(q.Get("state"), q.Get("code"))
	bad := strings.Replace(cb, "code="+url.QueryEscape(q.Get("code")), "code="+url.QueryEscape(q.Get("code")+"x"), 1)
	if resp, body := ce.do(t, "GET", bad, "", "", "Accept", "application/json"); resp.StatusCode != 502 {
		t.Fatalf("refused exchange = %d %s", resp.StatusCode, body)
	}
	if resp, _ := ce.do(t, "GET", cb, "", "", "Accept", "application/json"); resp.StatusCode != 400 {
		t.Fatalf("replayed state = %d", resp.StatusCode)
	}
	// The same two from a browser: redirected to the post-connect page; the
	// refused exchange is still reported.
	_, body = ce.do(t, "POST", "/v1/connections/google", alice, "")
	_ = json.Unmarshal(body, &start)
	cb, q = browse(t, start.AuthorizationURL)
	remember(q.Get("state"), q.Get("code"))
	bad = strings.Replace(cb, "code="+url.QueryEscape(q.Get("code")), "code="+url.QueryEscape(q.Get("code")+"x"), 1)
	for _, path := range []string{bad, cb} {
		if resp := ce.browserGet(t, path); resp.StatusCode != http.StatusFound {
			t.Fatalf("browser callback = %d, want 302", resp.StatusCode)
		}
	}
	ce.do(t, "POST", "/v1/connections/caldav", alice, `{"server_url":"`+ce.caldavURL+`","username":"mentor","app_password":"guessed-wrong-pw"}`)
	if resp, body := ce.do(t, "POST", "/v1/connections/caldav", alice, `{"server_url":"`+ce.caldavURL+`","username":"mentor","app_password":"`+appPassword+`"}`); resp.StatusCode != 201 {
		t.Fatalf("caldav = %d %s", resp.StatusCode, body)
	}
	ce.do(t, "PUT", "/v1/admin/providers/zoom/credentials", admin, `{"client_secret":"zoom-client-s3cr3t","pasword":"zoom-client-s3cr3t"}`)
	ce.do(t, "PUT", "/v1/admin/providers/zoom/credentials", admin, `{"account_id":"a","client_id":"c","client_secret":"zoom-client-s3cr3t"}`)

	// Disconnect.
	for _, path := range []string{"/v1/connections/google", "/v1/connections/caldav"} {
		if resp, body := ce.do(t, "DELETE", path, alice, ""); resp.StatusCode != 204 {
			t.Fatalf("DELETE %s = %d %s", path, resp.StatusCode, body)
		}
	}

	flush(time.Second)
	events := tr.all()
	if len(events) == 0 {
		t.Fatal("no Sentry event captured; the run should have reported the 502")
	}
	callbackReports := 0
	for _, ev := range events {
		if ev.Request != nil && strings.Contains(ev.Request.URL, "/v1/oauth/google/callback") {
			callbackReports++
		}
	}
	if callbackReports != 2 {
		t.Errorf("%d Sentry events for the callback, want 2: the failed token exchanges (JSON and redirected), not the replays", callbackReports)
	}
	logText := logs.String()
	if !strings.Contains(logText, "google calendar connected") || !strings.Contains(logText, "google calendar disconnected") {
		t.Fatalf("the connect service did not log to the captured logger:\n%s", logText)
	}
	for _, s := range secretsSeen {
		if strings.Contains(logText, s) {
			t.Errorf("a log line contains the secret %q", abbreviate(s))
		}
		for _, ev := range events {
			raw, _ := json.Marshal(ev)
			if strings.Contains(string(raw), s) {
				t.Errorf("a Sentry event contains the secret %q: %s", abbreviate(s), raw)
			}
		}
	}
}

func abbreviate(s string) string {
	if len(s) > 12 {
		return s[:6] + "…"
	}
	return s
}
