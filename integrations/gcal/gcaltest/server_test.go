package gcaltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	sim   *gcaltest.Server
	ts    *httptest.Server
	token string
	clock *fakeClock
}

func newHarness(t *testing.T, opts gcaltest.Options) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	sim := gcaltest.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	client, email := gcaltest.DefaultClientID, gcaltest.DefaultUser
	if len(opts.Clients) > 0 {
		client = opts.Clients[0].ID
	}
	if len(opts.Users) > 0 {
		email = opts.Users[0].Email
	}
	tok, err := sim.IssueToken(client, email)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{sim: sim, ts: ts, token: tok.AccessToken, clock: clock}
}

// do sends a raw API request and decodes the JSON answer (nil when empty).
func (h *harness) do(t *testing.T, method, path, token string, body any, header ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: non-JSON body %q", method, path, b)
		}
	}
	return resp.StatusCode, m
}

// reason returns error.errors[0].reason of a Google error body.
func reason(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	errs, _ := e["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	first, _ := errs[0].(map[string]any)
	r, _ := first["reason"].(string)
	return r
}

func event(id string, start time.Time) map[string]any {
	ev := map[string]any{
		"summary": "s",
		"start":   map[string]any{"dateTime": start.Format(time.RFC3339), "timeZone": "Europe/Berlin"},
		"end":     map[string]any{"dateTime": start.Add(time.Hour).Format(time.RFC3339), "timeZone": "Europe/Berlin"},
	}
	if id != "" {
		ev["id"] = id
	}
	return ev
}

const events = "/calendar/v3/calendars/primary/events"

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{AccessTokenTTL: time.Hour})
	readOnly, err := h.sim.IssueToken(gcaltest.DefaultClientID, gcaltest.DefaultUser, gcaltest.ScopeCalendarReadonly)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		token      string
		method     string
		body       any
		wantStatus int
		wantReason string
	}{
		{"missing token", "", http.MethodGet, nil, 401, "required"},
		{"unknown token", "ya29.nope", http.MethodGet, nil, 401, "authError"},
		{"read-only scope cannot insert", readOnly.AccessToken, http.MethodPost, event("", time.Now()), 403, "insufficientPermissions"},
		{"read-only scope can list", readOnly.AccessToken, http.MethodGet, nil, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, m := h.do(t, tc.method, events, tc.token, tc.body)
			if status != tc.wantStatus || reason(m) != tc.wantReason {
				t.Fatalf("got %d %q, want %d %q (%v)", status, reason(m), tc.wantStatus, tc.wantReason, m)
			}
			if status == 401 {
				e := m["error"].(map[string]any)
				if e["status"] != "UNAUTHENTICATED" || e["code"] != float64(401) || e["message"] == "" {
					t.Errorf("401 body %v", m)
				}
			}
		})
	}
}

func TestAccessTokenExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{AccessTokenTTL: 10 * time.Minute})
	if status, _ := h.do(t, http.MethodGet, events, h.token, nil); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	h.clock.Advance(11 * time.Minute)
	if status, m := h.do(t, http.MethodGet, events, h.token, nil); status != 401 || reason(m) != "authError" {
		t.Fatalf("expired token: %d %v", status, m)
	}
}

func TestEventsWire(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{Users: []gcaltest.User{{Email: gcaltest.DefaultUser}, {Email: "other@example.com"}}})
	start := time.Date(2027, 2, 1, 10, 0, 0, 0, time.UTC)

	for _, id := range []string{"abc", "UPPERCASE1", "has-dash1", "wxyz12345", strings.Repeat("a", 1025)} {
		if status, m := h.do(t, http.MethodPost, events, h.token, event(id, start)); status != 400 {
			t.Errorf("id %q accepted: %d %v", id, status, m)
		}
	}
	noEnd := event("abcde", start)
	delete(noEnd, "end")
	if status, m := h.do(t, http.MethodPost, events, h.token, noEnd); status != 400 || reason(m) != "required" {
		t.Errorf("missing end: %d %v", status, m)
	}
	backwards := event("abcde", start)
	backwards["end"] = map[string]any{"dateTime": start.Add(-time.Hour).Format(time.RFC3339)}
	if status, m := h.do(t, http.MethodPost, events, h.token, backwards); status != 400 || reason(m) != "timeRangeEmpty" {
		t.Errorf("end before start: %d %v", status, m)
	}

	status, ev := h.do(t, http.MethodPost, events+"?sendUpdates=none", h.token, event("abcde0123", start))
	if status != 200 || ev["id"] != "abcde0123" || ev["status"] != "confirmed" || ev["etag"] == "" {
		t.Fatalf("insert: %d %v", status, ev)
	}
	if got := ev["start"].(map[string]any)["dateTime"]; got != "2027-02-01T11:00:00+01:00" {
		t.Errorf("start normalised to %v", got)
	}
	if status, m := h.do(t, http.MethodPost, events, h.token, event("abcde0123", start)); status != 409 || reason(m) != "duplicate" {
		t.Errorf("duplicate insert: %d %v", status, m)
	}
	if status, m := h.do(t, http.MethodPost, events+"?sendUpdates=everyone", h.token, event("", start)); status != 400 {
		t.Errorf("bad sendUpdates: %d %v", status, m)
	}

	// If-Match guards patch.
	if status, m := h.do(t, http.MethodPatch, events+"/abcde0123", h.token, map[string]any{"summary": "x"}, "If-Match", `"1"`); status != 412 || reason(m) != "conditionNotMet" {
		t.Errorf("stale If-Match: %d %v", status, m)
	}
	status, patched := h.do(t, http.MethodPatch, events+"/abcde0123", h.token, map[string]any{"summary": "x"}, "If-Match", ev["etag"].(string))
	if status != 200 || patched["summary"] != "x" || patched["etag"] == ev["etag"] || patched["start"] == nil {
		t.Errorf("patch: %d %v", status, patched)
	}

	// Another user's token does not see this calendar.
	other, err := h.sim.IssueToken(gcaltest.DefaultClientID, "other@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := h.do(t, http.MethodGet, "/calendar/v3/calendars/"+url.PathEscape(gcaltest.DefaultUser)+"/events/abcde0123", other.AccessToken, nil); status != 404 {
		t.Errorf("other user's calendar: %d", status)
	}

	// Delete, then: get shows cancelled, delete again is 410, unknown is 404.
	if status, _ := h.do(t, http.MethodDelete, events+"/abcde0123", h.token, nil); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, m := h.do(t, http.MethodGet, events+"/abcde0123", h.token, nil); status != 200 || m["status"] != "cancelled" {
		t.Errorf("get deleted: %d %v", status, m)
	}
	if status, m := h.do(t, http.MethodDelete, events+"/abcde0123", h.token, nil); status != 410 || reason(m) != "deleted" {
		t.Errorf("delete twice: %d %v", status, m)
	}
	if status, m := h.do(t, http.MethodGet, events+"/nosuchevent", h.token, nil); status != 404 || reason(m) != "notFound" {
		t.Errorf("get unknown: %d %v", status, m)
	}
	if status, m := h.do(t, http.MethodPost, events, h.token, event("abcde0123", start)); status != 409 {
		t.Errorf("insert over a deleted id: %d %v", status, m)
	}
}

func items(m map[string]any) []map[string]any {
	raw, _ := m["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

func TestListSyncSemantics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{})
	start := time.Date(2027, 2, 1, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		id, err := h.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: "e", Start: start.Add(time.Duration(i) * time.Hour), End: start.Add(time.Duration(i)*time.Hour + time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := h.sim.DeleteEvent("primary", ids[0]); err != nil {
		t.Fatal(err)
	}

	// Paging: nextSyncToken only on the last page.
	_, p1 := h.do(t, http.MethodGet, events+"?maxResults=3", h.token, nil)
	if len(items(p1)) != 3 || p1["nextPageToken"] == nil || p1["nextSyncToken"] != nil {
		t.Fatalf("page 1: %v", p1)
	}
	_, p2 := h.do(t, http.MethodGet, events+"?maxResults=3&pageToken="+url.QueryEscape(p1["nextPageToken"].(string)), h.token, nil)
	if len(items(p2)) != 1 || p2["nextPageToken"] != nil || p2["nextSyncToken"] == nil {
		t.Fatalf("page 2: %v", p2)
	}
	sync := p2["nextSyncToken"].(string)

	// showDeleted includes the cancelled event, trimmed to its id.
	_, all := h.do(t, http.MethodGet, events+"?showDeleted=true", h.token, nil)
	if n := len(items(all)); n != 5 {
		t.Errorf("showDeleted listing has %d items, want 5", n)
	}

	// Sync tokens refuse filters, and showDeleted=false (deleted events
	// always come with a sync token); showDeleted=true is allowed.
	for _, q := range []string{"timeMin=2027-01-01T00:00:00Z", "showDeleted=false", "orderBy=updated", "updatedMin=2027-01-01T00:00:00Z"} {
		if status, _ := h.do(t, http.MethodGet, events+"?"+q+"&syncToken="+url.QueryEscape(sync), h.token, nil); status != 400 {
			t.Errorf("syncToken with %s: %d, want 400", q, status)
		}
	}
	if status, m := h.do(t, http.MethodGet, events+"?showDeleted=true&syncToken="+url.QueryEscape(sync), h.token, nil); status != 200 {
		t.Errorf("syncToken with showDeleted=true: %d %v", status, m)
	}
	// A time range must not be empty.
	if status, m := h.do(t, http.MethodGet, events+"?timeMin=2027-02-01T10:00:00Z&timeMax=2027-02-01T10:00:00Z", h.token, nil); status != 400 || reason(m) != "timeRangeEmpty" {
		t.Errorf("timeMax equal to timeMin: %d %v", status, m)
	}
	// Incremental: a deleted event appears as cancelled.
	if err := h.sim.DeleteEvent("primary", ids[1]); err != nil {
		t.Fatal(err)
	}
	_, inc := h.do(t, http.MethodGet, events+"?syncToken="+url.QueryEscape(sync), h.token, nil)
	got := items(inc)
	if len(got) != 1 || got[0]["id"] != ids[1] || got[0]["status"] != "cancelled" || inc["nextSyncToken"] == nil {
		t.Errorf("incremental: %v", inc)
	}
	h.sim.ExpireSyncTokens("primary")
	if status, m := h.do(t, http.MethodGet, events+"?syncToken="+url.QueryEscape(sync), h.token, nil); status != 410 || reason(m) != "fullSyncRequired" {
		t.Errorf("stale sync token: %d %v", status, m)
	}
}

func TestFreeBusyWire(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{MaxFreeBusyRange: 30 * 24 * time.Hour})
	t0 := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	if _, err := h.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: "busy", Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	q := func(to time.Time, ids ...string) (int, map[string]any) {
		items := []map[string]string{}
		for _, id := range ids {
			items = append(items, map[string]string{"id": id})
		}
		return h.do(t, http.MethodPost, "/calendar/v3/freeBusy", h.token, map[string]any{
			"timeMin": t0.Format(time.RFC3339), "timeMax": to.Format(time.RFC3339), "items": items,
		})
	}
	if status, m := q(t0.Add(31*24*time.Hour), "primary"); status != 400 || reason(m) != "timeRangeTooLong" {
		t.Errorf("too long: %d %v", status, m)
	}
	if status, m := q(t0, "primary"); status != 400 || reason(m) != "timeRangeEmpty" {
		t.Errorf("empty: %d %v", status, m)
	}
	status, m := q(t0.Add(24*time.Hour), "primary", "nope@example.com")
	if status != 200 {
		t.Fatalf("query: %d %v", status, m)
	}
	cals := m["calendars"].(map[string]any)
	busy := cals["primary"].(map[string]any)["busy"].([]any)
	if len(busy) != 1 || busy[0].(map[string]any)["start"] != "2027-02-01T01:00:00Z" {
		t.Errorf("busy %v", busy)
	}
	if errs := cals["nope@example.com"].(map[string]any)["errors"].([]any); errs[0].(map[string]any)["reason"] != "notFound" {
		t.Errorf("unknown calendar errors %v", errs)
	}
}

func TestWatchWire(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{})
	watch := events + "/watch"
	body := func(id, addr string) map[string]any {
		return map[string]any{"id": id, "type": "web_hook", "address": addr, "token": "tok", "params": map[string]string{"ttl": "3600"}}
	}
	if status, _ := h.do(t, http.MethodPost, watch, h.token, body("ch1", "http://example.com/hook")); status != 400 {
		t.Errorf("http address: %d", status)
	}
	status, ch := h.do(t, http.MethodPost, watch, h.token, body("ch1", "https://example.com/hook"))
	if status != 200 || ch["id"] != "ch1" || ch["resourceId"] == "" || ch["kind"] != "api#channel" {
		t.Fatalf("watch: %d %v", status, ch)
	}
	// expiration is an int64 in milliseconds, sent as a JSON string.
	exp, _ := ch["expiration"].(string)
	if n, err := strconv.ParseInt(exp, 10, 64); err != nil || n != h.clock.Now().Add(time.Hour).UnixMilli() {
		t.Errorf("expiration %q, want %d", exp, h.clock.Now().Add(time.Hour).UnixMilli())
	}
	if status, m := h.do(t, http.MethodPost, watch, h.token, body("ch1", "https://example.com/hook")); status != 400 || reason(m) != "channelIdNotUnique" {
		t.Errorf("duplicate channel id: %d %v", status, m)
	}
	stop := "/calendar/v3/channels/stop"
	if status, _ := h.do(t, http.MethodPost, stop, h.token, map[string]any{"id": "ch1"}); status != 400 {
		t.Errorf("stop without resourceId: %d", status)
	}
	if status, _ := h.do(t, http.MethodPost, stop, h.token, map[string]any{"id": "ch1", "resourceId": "wrong"}); status != 404 {
		t.Errorf("stop with wrong resourceId: %d", status)
	}
	if status, _ := h.do(t, http.MethodPost, stop, h.token, map[string]any{"id": "ch1", "resourceId": ch["resourceId"]}); status != 204 {
		t.Errorf("stop: %d", status)
	}
	if n := len(h.sim.Channels("primary")); n != 0 {
		t.Errorf("%d channels after stop", n)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{})
	start := time.Date(2027, 2, 1, 10, 0, 0, 0, time.UTC)
	h.sim.InjectFault(gcaltest.Fault{Op: "events.list", Status: 503, Times: 2, RetryAfter: 2 * time.Second})
	h.sim.InjectFault(gcaltest.Fault{Op: "events.insert", Status: 403, Reason: gcaltest.ReasonQuota})
	for range 2 {
		if status, m := h.do(t, http.MethodGet, events, h.token, nil); status != 503 || reason(m) != "backendError" {
			t.Errorf("list: %d %v", status, m)
		}
	}
	if status, _ := h.do(t, http.MethodGet, events, h.token, nil); status != 200 {
		t.Errorf("list after faults: %d", status)
	}
	if status, m := h.do(t, http.MethodPost, events, h.token, event("abcdef", start)); status != 403 || reason(m) != "quotaExceeded" {
		t.Errorf("quota fault: %d %v", status, m)
	}

	// Response lost after apply: the client sees a broken connection, the event exists.
	h.sim.InjectFault(gcaltest.Fault{Op: "events.insert", LoseResponse: true})
	b, _ := json.Marshal(event("abcdeg", start))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.ts.URL+events, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := h.ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("lost response delivered: %d", resp.StatusCode)
	}
	if n := h.sim.EventCount("primary"); n != 1 {
		t.Errorf("%d events after lost response, want 1", n)
	}
	if st := h.sim.Stats(); st.Calls["events.insert"] != 2 || st.Calls["events.list"] != 3 {
		t.Errorf("calls %v", st.Calls)
	}
}

// oauthEnv runs the authorization-code flow against the simulator.
type oauthEnv struct {
	*harness
	cfg *oauth2.Config
	hc  *http.Client
}

func newOAuth(t *testing.T, opts gcaltest.Options) *oauthEnv {
	h := newHarness(t, opts)
	cfg := &oauth2.Config{
		ClientID: gcaltest.DefaultClientID, ClientSecret: gcaltest.DefaultClientSecret,
		RedirectURL: "https://gateway.test/v1/oauth/google/callback",
		Endpoint:    gcaltest.Endpoint(h.ts.URL),
		Scopes:      []string{gcaltest.ScopeEvents, gcaltest.ScopeCalendarReadonly, "openid", "email"},
	}
	hc := h.ts.Client()
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &oauthEnv{harness: h, cfg: cfg, hc: &noRedirect}
}

// authorize follows the consent screen and returns the redirect's query.
func (o *oauthEnv) authorize(t *testing.T, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	resp, err := o.hc.Get(o.cfg.AuthCodeURL("state-123", opts...))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), o.cfg.RedirectURL) {
		t.Fatalf("redirect to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

func contextWithClient(ctx context.Context, hc *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

func retrieveCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestOAuthCodeFlow(t *testing.T) {
	t.Parallel()
	o := newOAuth(t, gcaltest.Options{})
	ctx := t.Context()
	verifier := oauth2.GenerateVerifier()
	q := o.authorize(t, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "consent"))
	code := q.Get("code")
	if q.Get("state") != "state-123" || code == "" {
		t.Fatalf("redirect query %v", q)
	}
	if ch, m := o.sim.CodeChallenge(code); ch != oauth2.S256ChallengeFromVerifier(verifier) || m != "S256" {
		t.Errorf("recorded challenge %q %q", ch, m)
	}
	octx := contextWithClient(ctx, o.ts.Client())

	if _, err := o.cfg.Exchange(octx, code); retrieveCode(err) != "invalid_grant" {
		t.Errorf("exchange without verifier: %v", err)
	}
	if _, err := o.cfg.Exchange(octx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); retrieveCode(err) != "invalid_grant" {
		t.Errorf("exchange with wrong verifier: %v", err)
	}
	bad := *o.cfg
	bad.ClientSecret = "wrong"
	if _, err := bad.Exchange(octx, code, oauth2.VerifierOption(verifier)); retrieveCode(err) != "invalid_client" {
		t.Errorf("exchange with wrong secret: %v", err)
	}
	tok, err := o.cfg.Exchange(octx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" || tok.Expiry.IsZero() {
		t.Fatalf("token %+v", tok)
	}
	if _, err := o.cfg.Exchange(octx, code, oauth2.VerifierOption(verifier)); retrieveCode(err) != "invalid_grant" {
		t.Errorf("code reuse: %v", err)
	}
	// Reusing the code revoked what it issued (RFC 6749 §4.1.2).
	if status, _ := o.do(t, http.MethodGet, events, tok.AccessToken, nil); status != 401 {
		t.Errorf("access token after code reuse: %d", status)
	}
	if st := o.sim.Stats(); st.CodeExchanges != 1 || st.TokenRequests != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestOAuthRefreshRevokeUserinfo(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{false, true} {
		t.Run(map[bool]string{false: "google default", true: "rotation"}[rotate], func(t *testing.T) {
			t.Parallel()
			o := newOAuth(t, gcaltest.Options{RotateRefreshTokens: rotate})
			octx := contextWithClient(t.Context(), o.ts.Client())
			code := o.authorize(t, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent")).Get("code")
			tok, err := o.cfg.Exchange(octx, code)
			if err != nil {
				t.Fatal(err)
			}
			stale := *tok
			stale.Expiry = time.Now().Add(-time.Minute)
			fresh, err := o.cfg.TokenSource(octx, &stale).Token()
			if err != nil {
				t.Fatal(err)
			}
			if fresh.AccessToken == tok.AccessToken {
				t.Error("refresh returned the same access token")
			}
			if rotated := fresh.RefreshToken != tok.RefreshToken; rotated != rotate {
				t.Errorf("refresh token rotated=%v, want %v", rotated, rotate)
			}
			// The old refresh token: still valid without rotation, invalid_grant with it.
			_, err = o.cfg.TokenSource(octx, &stale).Token()
			if rotate && retrieveCode(err) != "invalid_grant" {
				t.Errorf("old refresh token after rotation: %v", err)
			}
			if !rotate && err != nil {
				t.Errorf("old refresh token without rotation: %v", err)
			}

			status, info := o.do(t, http.MethodGet, "/v1/userinfo", fresh.AccessToken, nil)
			if status != 200 || info["email"] != gcaltest.DefaultUser {
				t.Errorf("userinfo %d %v", status, info)
			}

			// Revoke the refresh token: the grant is gone.
			resp, err := o.ts.Client().PostForm(gcaltest.RevokeURL(o.ts.URL), url.Values{"token": {fresh.RefreshToken}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			stale2 := *fresh
			stale2.Expiry = time.Now().Add(-time.Minute)
			if _, err := o.cfg.TokenSource(octx, &stale2).Token(); retrieveCode(err) != "invalid_grant" {
				t.Errorf("refresh after revoke: %v", err)
			}
			if status, _ := o.do(t, http.MethodGet, events, fresh.AccessToken, nil); status != 401 {
				t.Errorf("access token after revoke: %d", status)
			}
			resp, err = o.ts.Client().PostForm(gcaltest.RevokeURL(o.ts.URL), url.Values{"token": {fresh.RefreshToken}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("revoking twice: %d", resp.StatusCode)
			}
		})
	}
}

func TestAuthorizeRequests(t *testing.T) {
	t.Parallel()
	o := newOAuth(t, gcaltest.Options{
		Clients: []gcaltest.Client{{ID: "c1", Secret: "s1", RedirectURIs: []string{"https://gateway.test/v1/oauth/google/callback"}}},
		Users:   []gcaltest.User{{Email: "first@example.com"}, {Email: "second@example.com"}},
	})
	o.cfg.ClientID, o.cfg.ClientSecret = "c1", "s1"
	// login_hint picks the consenting user.
	code := o.authorize(t, oauth2.SetAuthURLParam("login_hint", "second@example.com")).Get("code")
	tok, err := o.cfg.Exchange(contextWithClient(t.Context(), o.ts.Client()), code)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Error("refresh token without access_type=offline")
	}
	if _, info := o.do(t, http.MethodGet, "/v1/userinfo", tok.AccessToken, nil); info["email"] != "second@example.com" {
		t.Errorf("userinfo %v", info)
	}

	o.sim.DenyConsent(true)
	if q := o.authorize(t); q.Get("error") != "access_denied" || q.Get("state") != "state-123" {
		t.Errorf("denied consent: %v", q)
	}
	o.sim.DenyConsent(false)

	wrong := *o.cfg
	wrong.RedirectURL = "https://evil.test/cb"
	resp, err := o.hc.Get(wrong.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unregistered redirect_uri: %d", resp.StatusCode)
	}
}

// TestAutoPush: with AutoPush the simulator sends "sync" when events.watch
// creates a channel, before it answers, and "exists" after a change.
func TestAutoPush(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(recv.Close)
	h := newHarness(t, gcaltest.Options{AutoPush: true, AllowHTTPPush: true})
	status, ch := h.do(t, http.MethodPost, events+"/watch", h.token, map[string]any{"id": "auto-1", "type": "web_hook", "address": recv.URL + "/hook", "token": "t0k"})
	if status != 200 {
		t.Fatalf("watch: %d %v", status, ch)
	}
	// Like Google's, the sync message may come before the watch answer:
	// here it always has.
	if n := len(got); n != 1 {
		t.Fatalf("%d notifications when the watch answered, want the sync message", n)
	}
	if ds := h.sim.Deliveries(); len(ds) != 1 || ds[0].ChannelID != "auto-1" || ds[0].State != gcaltest.StateSync || ds[0].Status != http.StatusOK || ds[0].Err != nil {
		t.Fatalf("deliveries %+v, want the sync message answered 200", ds)
	}
	next := func(want, num string) {
		t.Helper()
		select {
		case hd := <-got:
			if hd.Get("X-Goog-Resource-State") != want || hd.Get("X-Goog-Message-Number") != num ||
				hd.Get("X-Goog-Channel-Id") != "auto-1" || hd.Get("X-Goog-Channel-Token") != "t0k" || hd.Get("X-Goog-Resource-Id") != ch["resourceId"] {
				t.Errorf("notification %v, want state %s number %s", hd, want, num)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s notification", want)
		}
	}
	next(gcaltest.StateSync, "1")
	if _, err := h.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: "x", Start: time.Now(), End: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	next(gcaltest.StateExists, "2")
}

func TestAutoCreateUsers(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{false, true} {
		o := newOAuth(t, gcaltest.Options{AutoCreateUsers: auto})
		code := o.authorize(t, oauth2.SetAuthURLParam("login_hint", "New.Mentor@example.com")).Get("code")
		tok, err := o.cfg.Exchange(contextWithClient(t.Context(), o.ts.Client()), code)
		if err != nil {
			t.Fatal(err)
		}
		want := gcaltest.DefaultUser
		if auto {
			want = "new.mentor@example.com"
		}
		if _, info := o.do(t, http.MethodGet, "/v1/userinfo", tok.AccessToken, nil); info["email"] != want {
			t.Errorf("auto=%v: consented as %v, want %s", auto, info["email"], want)
		}
		if status, _ := o.do(t, http.MethodGet, events, tok.AccessToken, nil); status != 200 {
			t.Errorf("auto=%v: primary calendar of the consenting user: %d", auto, status)
		}
	}
}

// TestCalendarLookup: Calendar reads a calendar's id, summary and time
// zone ("primary" is the first account's), and an unknown one is
// ErrNotFound.
func TestCalendarLookup(t *testing.T) {
	t.Parallel()
	sim := gcaltest.New(gcaltest.Options{Users: []gcaltest.User{{Email: "ada@example.com", TimeZone: "Europe/Berlin"}}})
	if err := sim.AddCalendar("ada@example.com", gcaltest.Calendar{ID: "work@group.calendar.google.com", Summary: "Work"}, gcaltest.RoleOwner); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want gcaltest.Calendar
	}{
		{"ada@example.com", gcaltest.Calendar{ID: "ada@example.com", Summary: "ada@example.com", TimeZone: "Europe/Berlin"}},
		{"primary", gcaltest.Calendar{ID: "ada@example.com", Summary: "ada@example.com", TimeZone: "Europe/Berlin"}},
		{"work@group.calendar.google.com", gcaltest.Calendar{ID: "work@group.calendar.google.com", Summary: "Work", TimeZone: "UTC"}},
	} {
		if got, err := sim.Calendar(tc.id); err != nil || got != tc.want {
			t.Errorf("Calendar(%q) = %+v, %v; want %+v", tc.id, got, err, tc.want)
		}
	}
	if _, err := sim.Calendar("nope@group.calendar.google.com"); !errors.Is(err, gcaltest.ErrNotFound) {
		t.Errorf("Calendar of an unknown id: %v, want ErrNotFound", err)
	}
}

// TestUnshareCalendar: a calendar shared with an account leaves that
// account's list and access only (calendarList.delete); an owned calendar
// and unknown accounts or calendars are refused with ErrOwner or
// ErrNotFound.
func TestUnshareCalendar(t *testing.T) {
	t.Parallel()
	sim := gcaltest.New(gcaltest.Options{Users: []gcaltest.User{{Email: "ada@example.com"}, {Email: "bob@example.com"}, {Email: "cy@example.com"}}})
	const work = "work@group.calendar.google.com"
	for _, add := range []struct{ email, role string }{{"ada@example.com", gcaltest.RoleOwner}, {"bob@example.com", gcaltest.RoleReader}, {"cy@example.com", gcaltest.RoleFreeBusyReader}} {
		if err := sim.AddCalendar(add.email, gcaltest.Calendar{ID: work, Summary: "Work"}, add.role); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		email, id string
		want      error
	}{
		{"ada@example.com", work, gcaltest.ErrOwner},
		{"ada@example.com", "primary", gcaltest.ErrOwner},
		{"bob@example.com", "ada@example.com", gcaltest.ErrNotFound},
		{"nobody@example.com", work, gcaltest.ErrNotFound},
		{"bob@example.com", "nope@group.calendar.google.com", gcaltest.ErrNotFound},
		{"Bob@Example.com", work, nil},
		{"bob@example.com", work, gcaltest.ErrNotFound}, // already gone
	} {
		if err := sim.UnshareCalendar(tc.email, tc.id); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("UnshareCalendar(%q, %q) = %v, want %v", tc.email, tc.id, err, tc.want)
		}
	}
	// Bob lost the calendar; Cy keeps it shared, Ada owns it.
	for email, want := range map[string]int{"bob@example.com": 1, "cy@example.com": 2, "ada@example.com": 2} {
		tok, err := sim.IssueToken(gcaltest.DefaultClientID, email)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(sim)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, gcaltest.APIBase(srv.URL)+"users/me/calendarList", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		var list struct{ Items []struct{ ID string } }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		srv.Close()
		if len(list.Items) != want {
			t.Errorf("calendar list of %s: %+v, want %d entries", email, list.Items, want)
		}
	}
}

// TestOAuthRefreshTokenOnFirstConsent: Google returns a refresh token for
// access_type=offline on the first exchange; a later consent of the same
// user to the same client gets one again only with prompt=consent, and the
// first refresh token stays valid.
func TestOAuthRefreshTokenOnFirstConsent(t *testing.T) {
	t.Parallel()
	// A user the harness has issued no token to: nothing consented yet.
	o := newOAuth(t, gcaltest.Options{Users: []gcaltest.User{{Email: gcaltest.DefaultUser}, {Email: "new@example.com"}}})
	octx := contextWithClient(t.Context(), o.ts.Client())
	exchange := func(opts ...oauth2.AuthCodeOption) *oauth2.Token {
		t.Helper()
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", "new@example.com"))
		tok, err := o.cfg.Exchange(octx, o.authorize(t, opts...).Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := exchange(oauth2.AccessTypeOffline)
	if first.RefreshToken == "" {
		t.Fatal("first offline consent: no refresh token")
	}
	if again := exchange(oauth2.AccessTypeOffline); again.RefreshToken != "" || again.AccessToken == "" {
		t.Errorf("second offline consent without prompt=consent: refresh token %q, access token %q; want none, one", again.RefreshToken, again.AccessToken)
	}
	forced := exchange(oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"))
	if forced.RefreshToken == "" || forced.RefreshToken == first.RefreshToken {
		t.Errorf("offline consent with prompt=consent: refresh token %q, want a new one", forced.RefreshToken)
	}
	stale := *first
	stale.Expiry = time.Now().Add(-time.Minute)
	if _, err := o.cfg.TokenSource(octx, &stale).Token(); err != nil {
		t.Errorf("first refresh token after later consents: %v", err)
	}
}
