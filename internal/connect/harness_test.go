package connect_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/store"
)

// clock is an adjustable clock for state expiry.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.d += d
	c.mu.Unlock()
}

// harness is one database, one Google simulator and the key of the local
// secret store; replica builds independent Services (own secret store
// client, own caches) on them, like gateway replicas.
type harness struct {
	db     *store.Store
	key    local.Key
	google *gcaltest.Server
	url    string
	clock  *clock
}

func newHarness(t *testing.T, db *store.Store, opts gcaltest.Options) *harness {
	t.Helper()
	return newHarnessFront(t, db, opts, nil)
}

// newHarnessFront is newHarness with front, when not nil, in front of the
// simulator: it sees every request Google would receive.
func newHarnessFront(t *testing.T, db *store.Store, opts gcaltest.Options, front func(http.Handler) http.Handler) *harness {
	t.Helper()
	if opts.Users == nil {
		opts.Users = []gcaltest.User{{Email: "mentor@example.com", Calendars: []gcaltest.Calendar{{ID: "work@group.calendar.google.com", Summary: "Work"}}}}
	}
	opts.AllowHTTPPush = true
	g := gcaltest.New(opts)
	var hd http.Handler = g
	if front != nil {
		hd = front(g)
	}
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)
	key, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &harness{db: db, key: key, google: g, url: srv.URL, clock: &clock{}}
}

func (h *harness) secrets(t *testing.T) secrets.Store {
	t.Helper()
	s, err := local.New(h.db.DB(), string(h.db.Dialect()), local.NewKeyring(h.key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) config() connect.Config {
	return connect.Config{
		SecretPrefix: "spotlight", SecretEnv: "test", PublicURL: "http://gateway.test",
		Google: connect.GoogleConfig{
			ClientID: gcaltest.DefaultClientID, AuthURL: h.url + "/o/oauth2/auth", TokenURL: h.url + "/token",
			APIURL: h.url + "/", UserinfoURL: gcaltest.UserinfoURL(h.url), RevokeURL: gcaltest.RevokeURL(h.url),
		},
		CalDAV: connect.CalDAVConfig{AllowPrivate: true},
		Now:    h.clock.Now,
	}
}

// replica returns a new Service; mutate adjusts its config.
func (h *harness) replica(t *testing.T, mutate func(*connect.Config)) (*connect.Service, secrets.Store) {
	t.Helper()
	cfg := h.config()
	if mutate != nil {
		mutate(&cfg)
	}
	sec := h.secrets(t)
	svc, err := connect.New(h.db, sec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.PutProviderCredentials(t.Context(), "google", map[string]string{"client_secret": gcaltest.DefaultClientSecret}); err != nil {
		t.Fatal(err)
	}
	return svc, sec
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// consent plays the browser: it opens the authorization URL, which the
// simulator answers with a redirect to the callback carrying code and state.
func consent(t *testing.T, authURL string) (state, code string) {
	t.Helper()
	return consentTo(t, authURL, "http://gateway.test/v1/oauth/google/callback")
}

// consentTo is consent with the redirect expected at page.
func consentTo(t *testing.T, authURL, page string) (state, code string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", authURL, nil)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorization answered %d without Location", resp.StatusCode)
	}
	if loc.Scheme+"://"+loc.Host+loc.Path != page {
		t.Fatalf("redirect to %s, want %s", loc, page)
	}
	return loc.Query().Get("state"), loc.Query().Get("code")
}

// connectGoogle runs the whole flow for sub.
func connectGoogle(t *testing.T, svc *connect.Service, sub string) connect.Info {
	t.Helper()
	u, _, err := svc.StartGoogle(t.Context(), sub)
	if err != nil {
		t.Fatal(err)
	}
	state, code := consent(t, u)
	in, _, err := svc.CompleteGoogle(t.Context(), state, code, "")
	if err != nil {
		t.Fatalf("CompleteGoogle: %v", err)
	}
	return in
}

// expireStored rewrites the stored token of sub as expired, so the next
// use refreshes it (the simulator still accepts it; only the gateway's view changes).
func expireStored(t *testing.T, sec secrets.Store, sub string) {
	t.Helper()
	p, _ := secrets.UserPath("spotlight", "test", sub, "google")
	err := secrets.Update(t.Context(), sec, p, func(old []byte, exists bool) ([]byte, error) {
		return setJSONField(t, old, "expiry", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tokenRequestsDuring counts token endpoint requests made by fn.
func tokenRequestsDuring(g *gcaltest.Server, fn func()) int {
	before := g.Stats().TokenRequests
	fn()
	return g.Stats().TokenRequests - before
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// recordedRequest is a request seen by a roundTripFunc, form parsed.
type recordedRequest struct {
	*http.Request
	form url.Values
}

// roundTripFunc calls a hook with every request, then sends it on.
type roundTripFunc func(*recordedRequest)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &recordedRequest{Request: req, form: url.Values{}}
	if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		rec.form, _ = url.ParseQuery(string(b))
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	f(rec)
	return http.DefaultTransport.RoundTrip(req)
}

var _ = context.Background
