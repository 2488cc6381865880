package zoomtest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

const (
	account = "acct-1"
	client  = "cid"
	secret  = "csecret"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	sim *zoomtest.Server
	url string
	clk *clock
}

func newFixture(t *testing.T, mod ...func(*zoomtest.Options)) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	o := zoomtest.Options{AccountID: account, ClientID: client, ClientSecret: secret, Now: clk.Now, Rand: rand.NewPCG(1, 2)}
	for _, m := range mod {
		m(&o)
	}
	sim := zoomtest.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); ts.Close() })
	return &fixture{sim: sim, url: ts.URL, clk: clk}
}

type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (f *fixture) do(t *testing.T, method, path, token string, body any) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		_ = d.Decode(&r.body)
	}
	return r
}

func (f *fixture) token(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost,
		f.url+"/oauth/token?grant_type=account_credentials&account_id="+account, nil)
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil || out.AccessToken == "" {
		t.Fatalf("token: HTTP %d", resp.StatusCode)
	}
	return out.AccessToken
}

// meeting creates a meeting for host@example.com at start through the API
// and returns its id, also as a string.
func (f *fixture) meeting(t *testing.T, tok string, start time.Time) (int64, string) {
	t.Helper()
	r := f.do(t, http.MethodPost, "/v2/users/host@example.com/meetings", tok, validMeeting(start))
	id, err := r.body["id"].(json.Number).Int64()
	if r.status != http.StatusCreated || err != nil {
		t.Fatalf("create meeting: %d %s", r.status, r.raw)
	}
	return id, strconv.FormatInt(id, 10)
}

func validMeeting(start time.Time) map[string]any {
	return map[string]any{
		"topic": "Session", "type": 2, "start_time": start.UTC().Format("2006-01-02T15:04:05Z"),
		"duration": 30, "timezone": "Europe/Berlin", "agenda": "a",
		"settings": map[string]any{"waiting_room": true, "join_before_host": false, "auto_recording": "cloud"},
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name       string
		query      string
		user, pass string
		noAuth     bool
		wantStatus int
		wantBody   map[string]any
	}{
		{"no basic auth", "grant_type=account_credentials&account_id=" + account, "", "", true, 401,
			map[string]any{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}},
		{"wrong secret", "grant_type=account_credentials&account_id=" + account, client, "x", false, 401,
			map[string]any{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}},
		{"wrong client", "grant_type=account_credentials&account_id=" + account, "x", secret, false, 401,
			map[string]any{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}},
		{"wrong account", "grant_type=account_credentials&account_id=other", client, secret, false, 400,
			map[string]any{"reason": "Invalid account_id", "error": "invalid_request"}},
		{"wrong grant", "grant_type=client_credentials&account_id=" + account, client, secret, false, 400,
			map[string]any{"reason": "Unsupported grant type", "error": "unsupported_grant_type"}},
		{"missing grant", "account_id=" + account, client, secret, false, 400,
			map[string]any{"reason": "Missing grant type", "error": "invalid_request"}},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/oauth/token?"+tt.query, nil)
		if !tt.noAuth {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.wantStatus)
		}
		if diff := cmp.Diff(tt.wantBody, body); diff != "" {
			t.Errorf("%s: body (-want +got):\n%s", tt.name, diff)
		}
	}
	if n := f.sim.TokensIssued(); n != 0 {
		t.Errorf("tokens issued on failures: %d", n)
	}
	// Success shape.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost,
		f.url+"/oauth/token?grant_type=account_credentials&account_id="+account, nil)
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ok map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ok)
	if resp.StatusCode != 200 || ok["token_type"] != "bearer" || ok["expires_in"] != float64(3599) || ok["access_token"] == "" {
		t.Errorf("token response %d %v", resp.StatusCode, ok)
	}
	if _, has := ok["refresh_token"]; has {
		t.Error("S2S OAuth issues no refresh token")
	}
	if n := f.sim.TokensIssued(); n != 1 || f.sim.Requests(zoomtest.RouteToken) != len(tests)+1 {
		t.Errorf("issued %d, token requests %d", n, f.sim.Requests(zoomtest.RouteToken))
	}
}

func TestBearerAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *zoomtest.Options) { o.TokenTTL = time.Hour })
	tok := f.token(t)
	tests := []struct {
		name    string
		token   string
		advance time.Duration
		want    map[string]any
	}{
		{"missing", "", 0, map[string]any{"code": json.Number("124"), "message": "Invalid access token."}},
		{"unknown", "forged", 0, map[string]any{"code": json.Number("124"), "message": "Invalid access token."}},
		{"expired", tok, time.Hour, map[string]any{"code": json.Number("124"), "message": "Access token is expired."}},
	}
	for _, tt := range tests {
		f.clk.Advance(tt.advance)
		r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tt.token, nil)
		if r.status != 401 {
			t.Errorf("%s: status %d, want 401", tt.name, r.status)
		}
		if diff := cmp.Diff(tt.want, r.body); diff != "" {
			t.Errorf("%s: body (-want +got):\n%s", tt.name, diff)
		}
	}
	tok2 := f.token(t)
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok2, nil); r.status != 200 {
		t.Errorf("fresh token: %d", r.status)
	}
	f.sim.RevokeTokens()
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok2, nil); r.status != 401 {
		t.Errorf("revoked token: %d", r.status)
	}
}

func TestMeetingShapesAndValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	start := f.clk.Now().Add(48 * time.Hour)
	r := f.do(t, http.MethodPost, "/v2/users/host@example.com/meetings", tok, validMeeting(start))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	for _, k := range []string{"id", "uuid", "host_id", "topic", "type", "start_time", "duration", "timezone",
		"agenda", "join_url", "start_url", "settings", "created_at", "status", "password"} {
		if _, ok := r.body[k]; !ok {
			t.Errorf("meeting lacks %q: %s", k, r.raw)
		}
	}
	id, err := r.body["id"].(json.Number).Int64()
	if err != nil || id < 10_000_000_000 {
		t.Errorf("id %v is not a Zoom-style int64", r.body["id"])
	}
	if r.body["start_time"] != start.Format("2006-01-02T15:04:05Z") || r.body["type"] != json.Number("2") ||
		r.body["created_at"] != f.clk.Now().Format("2006-01-02T15:04:05Z") {
		t.Errorf("create body: %s", r.raw)
	}
	st := r.body["settings"].(map[string]any)
	if st["waiting_room"] != true || st["join_before_host"] != false || st["auto_recording"] != "cloud" {
		t.Errorf("settings: %v", st)
	}
	if !strings.Contains(r.body["join_url"].(string), strconv.FormatInt(id, 10)) {
		t.Errorf("join_url %v lacks the id", r.body["join_url"])
	}

	// A local start_time is read in the meeting's timezone.
	local := validMeeting(start)
	local["start_time"] = "2026-12-01T10:00:00"
	local["timezone"] = "America/New_York"
	if r := f.do(t, http.MethodPost, "/v2/users/host@example.com/meetings", tok, local); r.status != 201 ||
		r.body["start_time"] != "2026-12-01T15:00:00Z" {
		t.Errorf("local start: %d %v", r.status, r.body["start_time"])
	}

	bad := func(mut func(map[string]any)) map[string]any { m := validMeeting(start); mut(m); return m }
	tests := []struct {
		name  string
		body  any
		field string // "" = body-level error
	}{
		{"not JSON", "topic=x", ""},
		{"empty body", "", ""},
		{"missing start_time", bad(func(m map[string]any) { delete(m, "start_time") }), "start_time"},
		{"missing duration", bad(func(m map[string]any) { delete(m, "duration") }), "duration"},
		{"bad start_time", bad(func(m map[string]any) { m["start_time"] = "tomorrow" }), "start_time"},
		{"bad timezone", bad(func(m map[string]any) { m["timezone"] = "Mars/Base" }), "timezone"},
		{"bad type", bad(func(m map[string]any) { m["type"] = 7 }), "type"},
		{"topic too long", bad(func(m map[string]any) { m["topic"] = strings.Repeat("x", 201) }), "topic"},
		{"agenda too long", bad(func(m map[string]any) { m["agenda"] = strings.Repeat("x", 2001) }), "agenda"},
		{"bad auto_recording", bad(func(m map[string]any) { m["settings"] = map[string]any{"auto_recording": "tape"} }), "settings.auto_recording"},
		{"duration wrong type", bad(func(m map[string]any) { m["duration"] = "long" }), "duration"},
	}
	for _, tt := range tests {
		r := f.do(t, http.MethodPost, "/v2/users/host@example.com/meetings", tok, tt.body)
		if r.status != 400 || r.body["code"] != json.Number("300") {
			t.Errorf("%s: %d %s, want 400 code 300", tt.name, r.status, r.raw)
			continue
		}
		if tt.field == "" {
			if r.body["message"] != "Request Body should be a valid JSON object." {
				t.Errorf("%s: message %v", tt.name, r.body["message"])
			}
			continue
		}
		want := []any{map[string]any{"field": tt.field, "message": "Invalid field."}}
		if r.body["message"] != "Validation Failed." || !cmp.Equal(want, r.body["errors"]) {
			t.Errorf("%s: %s", tt.name, r.raw)
		}
	}
	if n := f.sim.MeetingCount("host@example.com"); n != 2 {
		t.Errorf("meetings = %d, want 2 (invalid ones not created)", n)
	}

	// 404 shape.
	r = f.do(t, http.MethodGet, "/v2/meetings/12345", tok, nil)
	if diff := cmp.Diff(map[string]any{"code": json.Number("3001"), "message": "Meeting does not exist: 12345."}, r.body); r.status != 404 || diff != "" {
		t.Errorf("404: %d %s", r.status, diff)
	}
	for _, m := range []string{http.MethodPatch, http.MethodDelete} {
		if r := f.do(t, m, "/v2/meetings/12345", tok, map[string]any{"topic": "x"}); r.status != 404 || r.body["code"] != json.Number("3001") {
			t.Errorf("%s missing meeting: %d %s", m, r.status, r.raw)
		}
	}

	// PATCH changes only the fields sent and answers 204.
	path := "/v2/meetings/" + strconv.FormatInt(id, 10)
	if r := f.do(t, http.MethodPatch, path, tok, map[string]any{"topic": "New", "settings": map[string]any{"waiting_room": false}}); r.status != 204 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	r = f.do(t, http.MethodGet, path, tok, nil)
	if r.body["topic"] != "New" || r.body["agenda"] != "a" || r.body["settings"].(map[string]any)["waiting_room"] != false ||
		r.body["settings"].(map[string]any)["auto_recording"] != "cloud" {
		t.Errorf("after patch: %s", r.raw)
	}
	if r := f.do(t, http.MethodPatch, path, tok, map[string]any{"timezone": "Nowhere/City"}); r.status != 400 {
		t.Errorf("invalid patch: %d", r.status)
	}
	if r := f.do(t, http.MethodDelete, path, tok, nil); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
}

func TestUnknownUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *zoomtest.Options) { o.Users = []zoomtest.User{{ID: "u-1", Email: "Host@Example.com"}} })
	tok := f.token(t)
	start := f.clk.Now().Add(time.Hour)
	r := f.do(t, http.MethodPost, "/v2/users/ghost/meetings", tok, validMeeting(start))
	if diff := cmp.Diff(map[string]any{"code": json.Number("1001"), "message": "User does not exist: ghost."}, r.body); r.status != 404 || diff != "" {
		t.Errorf("unknown user: %d %s", r.status, diff)
	}
	r = f.do(t, http.MethodPost, "/v2/users/host@example.com/meetings", tok, validMeeting(start))
	if r.status != 201 || r.body["host_id"] != "u-1" {
		t.Errorf("by email: %d %s", r.status, r.raw)
	}
	if f.sim.MeetingCount("u-1") != 1 || f.sim.MeetingCount("host@example.com") != 1 {
		t.Error("meeting not counted under the user's id and email")
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	for i := range 5 {
		if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(f.clk.Now().Add(time.Duration(i+1)*time.Hour))); r.status != 201 {
			t.Fatal(r.status)
		}
	}
	var ids []string
	next := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := f.do(t, http.MethodGet, "/v2/users/u1/meetings?type=upcoming&page_size=2&next_page_token="+next, tok, nil)
		if r.status != 200 || r.body["total_records"] != json.Number("5") || r.body["page_size"] != json.Number("2") {
			t.Fatalf("list: %d %s", r.status, r.raw)
		}
		for _, m := range r.body["meetings"].([]any) {
			ids = append(ids, string(m.(map[string]any)["id"].(json.Number)))
		}
		next = r.body["next_page_token"].(string)
		if next == "" {
			break
		}
	}
	if len(ids) != 5 {
		t.Errorf("listed %d, want 5", len(ids))
	}
	if r := f.do(t, http.MethodGet, "/v2/users/u2/meetings?type=upcoming&next_page_token=bogus", tok, nil); r.status != 400 {
		t.Errorf("bogus token: %d", r.status)
	}
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings?type=sometimes", tok, nil); r.status != 400 {
		t.Errorf("bad type: %d", r.status)
	}
	f.clk.Advance(150 * time.Minute) // two meetings are over
	tok = f.token(t)                 // the first one expired
	r := f.do(t, http.MethodGet, "/v2/users/u1/meetings?type=upcoming", tok, nil)
	if r.body["total_records"] != json.Number("3") {
		t.Errorf("upcoming after 150 min: %v", r.body["total_records"])
	}
	r = f.do(t, http.MethodGet, "/v2/users/u1/meetings?type=previous_meetings", tok, nil)
	if r.body["total_records"] != json.Number("2") {
		t.Errorf("previous: %v", r.body["total_records"])
	}
}

// TestListAgendaTruncated: List meetings cuts each agenda to 250 characters
// (characters, not bytes), as Zoom documents; Get a meeting returns it whole.
func TestListAgendaTruncated(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	agenda := strings.Repeat("ä", 249) + "xyz" + strings.Repeat("\nmore", 300)
	body := validMeeting(f.clk.Now().Add(time.Hour))
	body["agenda"] = agenda
	r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := string(r.body["id"].(json.Number))
	if r.body["agenda"] != agenda {
		t.Errorf("create answered agenda of %d characters, want it whole", len([]rune(r.body["agenda"].(string))))
	}
	if r := f.do(t, http.MethodGet, "/v2/meetings/"+id, tok, nil); r.body["agenda"] != agenda {
		t.Errorf("get answered agenda of %d characters, want it whole", len([]rune(r.body["agenda"].(string))))
	}
	for _, typ := range []string{"scheduled", "upcoming"} {
		r := f.do(t, http.MethodGet, "/v2/users/u1/meetings?type="+typ, tok, nil)
		got := r.body["meetings"].([]any)[0].(map[string]any)["agenda"].(string)
		if want := strings.Repeat("ä", 249) + "x"; got != want {
			t.Errorf("list type=%s: agenda %q (%d characters), want the first 250 characters", typ, got, len([]rune(got)))
		}
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	t.Run("per second", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(o *zoomtest.Options) { o.RateLimitQPS = 2 })
		tok := f.token(t)
		for i := range 2 {
			r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil)
			if r.status != 200 || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) || r.header.Get("X-RateLimit-Limit") != "2" {
				t.Fatalf("call %d: %d remaining %q", i, r.status, r.header.Get("X-RateLimit-Remaining"))
			}
		}
		r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil)
		if r.status != 429 || r.header.Get("Retry-After") != "1" || r.header.Get("X-RateLimit-Type") != "QPS" ||
			r.header.Get("X-RateLimit-Category") != "Light" || r.header.Get("X-RateLimit-Remaining") != "0" {
			t.Errorf("over limit: %d %v", r.status, r.header)
		}
		if r.body["code"] != json.Number("429") || !strings.Contains(r.body["message"].(string), "per-second rate limit") {
			t.Errorf("429 body: %s", r.raw)
		}
		f.clk.Advance(time.Second)
		if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 200 {
			t.Errorf("next second: %d", r.status)
		}
	})
	t.Run("daily create limit", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(o *zoomtest.Options) { o.DailyMeetingLimit = 1 })
		tok := f.token(t)
		start := f.clk.Now().Add(time.Hour)
		if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(start)); r.status != 201 {
			t.Fatal(r.status)
		}
		r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(start))
		if r.status != 429 || r.header.Get("X-RateLimit-Type") != "Daily-limit" || r.header.Get("Retry-After") != "2026-11-26T00:00:00Z" {
			t.Errorf("daily limit: %d %v", r.status, r.header)
		}
		if r := f.do(t, http.MethodPost, "/v2/users/u2/meetings", tok, validMeeting(start)); r.status != 201 {
			t.Errorf("other user: %d", r.status)
		}
		f.clk.Advance(15 * time.Hour)
		tok = f.token(t)
		if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(start.Add(24*time.Hour))); r.status != 201 {
			t.Errorf("next day: %d", r.status)
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	start := f.clk.Now().Add(time.Hour)

	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 502, Count: 2, Route: zoomtest.RouteListMeetings})
	for i := range 2 {
		if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 502 {
			t.Errorf("faulted list %d: %d", i, r.status)
		}
	}
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 200 {
		t.Errorf("after fault: %d", r.status)
	}

	// A fault for another route does not fire; 5xx without Apply creates nothing.
	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 503, Route: zoomtest.RouteCreateMeeting})
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 200 {
		t.Errorf("unrelated route faulted: %d", r.status)
	}
	if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(start)); r.status != 503 || f.sim.MeetingCount("u1") != 0 {
		t.Errorf("503 fault: %d, meetings %d", r.status, f.sim.MeetingCount("u1"))
	}
	// With Apply the meeting exists although the answer is 500.
	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 500, Apply: true, Route: zoomtest.RouteCreateMeeting})
	if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(start)); r.status != 500 || f.sim.MeetingCount("u1") != 1 {
		t.Errorf("applied 500: %d, meetings %d", r.status, f.sim.MeetingCount("u1"))
	}

	// Response lost: the client sees a transport error, the meeting exists.
	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultLoseResponse, Route: zoomtest.RouteCreateMeeting})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/v2/users/u1/meetings",
		strings.NewReader(`{"type":2,"start_time":"2026-11-26T10:00:00Z","duration":30}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("lost response delivered HTTP %d", resp.StatusCode)
	}
	if n := f.sim.MeetingCount("u1"); n != 2 {
		t.Errorf("meetings after lost response = %d, want 2", n)
	}

	// Hang: held until the client gives up.
	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultHang, Route: zoomtest.RouteListMeetings})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/v2/users/u1/meetings", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("hang answered")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", err)
	}

	// Rate-limit fault headers.
	f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultRateLimit, RetryAfter: 3 * time.Second})
	r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "3" || r.header.Get("X-RateLimit-Type") != "QPS" {
		t.Errorf("rate-limit fault: %d %v", r.status, r.header)
	}
	if f.sim.PendingFaults() != 0 {
		t.Errorf("pending faults = %d", f.sim.PendingFaults())
	}

	// Failure rate 1 fails everything; ClearFaults restores service.
	f.sim.SetFailureRate(1, 500)
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 500 {
		t.Errorf("failure rate 1: %d", r.status)
	}
	f.sim.ClearFaults()
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 200 {
		t.Errorf("after ClearFaults: %d", r.status)
	}
	if got := f.sim.Requests(zoomtest.RouteListMeetings); got != 8 {
		t.Errorf("list requests counted = %d, want 8", got)
	}
}

func TestFaultsConcurrentUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			f.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 503, Route: zoomtest.RouteListMeetings})
			f.sim.SetLatency(time.Duration(i) * time.Microsecond)
			f.sim.SetFailureRate(0.1, 502)
		})
		wg.Go(func() { f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil) })
	}
	wg.Wait()
	f.sim.ClearFaults()
	if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != 200 {
		t.Errorf("after clear: %d", r.status)
	}
}

func TestDeterministicIDs(t *testing.T) {
	t.Parallel()
	ids := func() []string {
		f := newFixture(t)
		tok := f.token(t)
		var out []string
		for range 3 {
			r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour)))
			out = append(out, string(r.body["id"].(json.Number)))
		}
		return out
	}
	a, b := ids(), ids()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different ids (-a +b):\n%s", diff)
	}
}

// receiver verifies Zoom signatures like the gateway's intake will and
// records the events it accepted.
type receiver struct {
	secret string
	mu     sync.Mutex
	events []map[string]any
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get("x-zm-request-timestamp")
	mac := hmac.New(sha256.New, []byte(rc.secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	if !hmac.Equal([]byte(r.Header.Get("x-zm-signature")), []byte("v0="+hex.EncodeToString(mac.Sum(nil)))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	rc.mu.Lock()
	rc.events = append(rc.events, ev)
	rc.mu.Unlock()
	if ev["event"] == zoomtest.EventURLValidation {
		plain := ev["payload"].(map[string]any)["plainToken"].(string)
		m := hmac.New(sha256.New, []byte(rc.secret))
		m.Write([]byte(plain))
		_ = json.NewEncoder(w).Encode(map[string]string{"plainToken": plain, "encryptedToken": hex.EncodeToString(m.Sum(nil))})
	}
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rc := &receiver{secret: "whsec"}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	ctx := t.Context()

	if err := f.sim.SendURLValidation(ctx, hook.URL, "whsec"); err != nil {
		t.Errorf("url validation: %v", err)
	}
	if err := f.sim.SendURLValidation(ctx, hook.URL, "wrong"); !errors.Is(err, zoomtest.ErrWebhookRejected) {
		t.Errorf("wrong secret: %v, want ErrWebhookRejected", err)
	}
	// A receiver that answers the wrong encryptedToken fails validation.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"plainToken":"x","encryptedToken":"y"}`)
	}))
	t.Cleanup(liar.Close)
	if err := f.sim.SendURLValidation(ctx, liar.URL, "whsec"); !errors.Is(err, zoomtest.ErrWebhookRejected) {
		t.Errorf("bad answer: %v, want ErrWebhookRejected", err)
	}

	tok := f.token(t)
	id, sid := f.meeting(t, tok, f.clk.Now().Add(time.Hour))
	if r := f.do(t, http.MethodPatch, "/v2/meetings/"+sid, tok, map[string]any{"topic": "Moved"}); r.status != 204 {
		t.Fatal(r.status)
	}
	p := &zoomtest.Participant{UserID: "16778240", UserName: "Candidate", Email: "c@example.com"}
	for _, ev := range []string{zoomtest.EventMeetingStarted, zoomtest.EventMeetingParticipantJoined, zoomtest.EventMeetingParticipantLeft,
		zoomtest.EventMeetingEnded, zoomtest.EventMeetingUpdated, zoomtest.EventMeetingDeleted} {
		if err := f.sim.SendMeetingEvent(ctx, hook.URL, "whsec", ev, id, p); err != nil {
			t.Errorf("%s: %v", ev, err)
		}
	}
	if _, err := f.sim.MeetingEvent("meeting.exploded", id, nil); !errors.Is(err, zoomtest.ErrUnknownEvent) {
		t.Errorf("unknown event: %v", err)
	}
	if _, err := f.sim.MeetingEvent(zoomtest.EventMeetingStarted, 1, nil); !errors.Is(err, zoomtest.ErrNoMeeting) {
		t.Errorf("unknown meeting: %v", err)
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.events) != 7 {
		t.Fatalf("accepted %d events, want 7 (validation + 6)", len(rc.events))
	}
	byName := map[string]map[string]any{}
	for _, ev := range rc.events {
		if ev["event_ts"] != float64(f.clk.Now().UnixMilli()) {
			t.Errorf("%v event_ts = %v", ev["event"], ev["event_ts"])
		}
		byName[ev["event"].(string)] = ev["payload"].(map[string]any)
	}
	started := byName[zoomtest.EventMeetingStarted]
	if started["account_id"] != account || started["object"].(map[string]any)["id"] != sid ||
		started["object"].(map[string]any)["host_id"] != "host@example.com" {
		t.Errorf("meeting.started payload: %v", started)
	}
	joined := byName[zoomtest.EventMeetingParticipantJoined]["object"].(map[string]any)["participant"].(map[string]any)
	if joined["user_name"] != "Candidate" || joined["join_time"] == nil || joined["user_id"] != "16778240" {
		t.Errorf("participant_joined: %v", joined)
	}
	left := byName[zoomtest.EventMeetingParticipantLeft]["object"].(map[string]any)["participant"].(map[string]any)
	if left["leave_time"] == nil {
		t.Errorf("participant_left: %v", left)
	}
	ended := byName[zoomtest.EventMeetingEnded]["object"].(map[string]any)
	if ended["end_time"] == nil {
		t.Error("meeting.ended lacks end_time")
	}
	// The instance's start, as meeting.started said, not the scheduled one (an hour later).
	if st := started["object"].(map[string]any)["start_time"]; ended["start_time"] != st {
		t.Errorf("meeting.ended start_time = %v, want the instance's start %v", ended["start_time"], st)
	}
	upd := byName[zoomtest.EventMeetingUpdated]
	if upd["object"].(map[string]any)["topic"] != "Moved" || upd["old_object"].(map[string]any)["topic"] != "Session" ||
		upd["operator_id"] != "host@example.com" {
		t.Errorf("meeting.updated: %v", upd)
	}
	if _, has := upd["object"].(map[string]any)["duration"]; has {
		t.Error("meeting.updated object carries an unchanged field")
	}
	if byName[zoomtest.EventMeetingDeleted]["object"].(map[string]any)["id"] != float64(id) {
		t.Errorf("meeting.deleted id: %v", byName[zoomtest.EventMeetingDeleted]["object"])
	}
}

func TestSignMatchesZoomScheme(t *testing.T) {
	t.Parallel()
	// Independent computation of v0=hex(HMAC-SHA256(secret, "v0:"+ts+":"+body)).
	body := []byte(`{"event":"meeting.started"}`)
	mac := hmac.New(sha256.New, []byte("s3cr3t"))
	mac.Write([]byte("v0:1700000000:" + string(body)))
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	if got := zoomtest.Sign("s3cr3t", "1700000000", body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// TestHostActions: a move made by the host (outside the API) shows in the
// API and in meeting.updated's object/old_object; a host delete removes the
// meeting and yields the meeting.deleted payload of the meeting as it was.
func TestHostActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	start := f.clk.Now().Add(time.Hour)
	id, sid := f.meeting(t, tok, start)

	moved := start.Add(2 * time.Hour)
	if err := f.sim.MoveMeeting(id, moved, 45*time.Minute); err != nil {
		t.Fatal(err)
	}
	got := f.do(t, http.MethodGet, "/v2/meetings/"+sid, tok, nil)
	if got.body["start_time"] != moved.Format("2006-01-02T15:04:05Z") || got.body["duration"] != json.Number("45") {
		t.Errorf("after the move the API shows %v %v", got.body["start_time"], got.body["duration"])
	}
	upd, err := f.sim.MeetingEvent(zoomtest.EventMeetingUpdated, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, old := upd["object"].(map[string]any), upd["old_object"].(map[string]any)
	if obj["start_time"] != moved.Format("2006-01-02T15:04:05Z") || old["start_time"] != start.Format("2006-01-02T15:04:05Z") ||
		obj["duration"] != 45 || old["duration"] != 30 {
		t.Errorf("meeting.updated object %v old_object %v", obj, old)
	}
	if err := f.sim.MoveMeeting(id, moved, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.do(t, http.MethodGet, "/v2/meetings/"+sid, tok, nil); got.body["duration"] != json.Number("45") {
		t.Errorf("a move without a duration changed it to %v", got.body["duration"])
	}

	for _, bad := range []struct {
		name  string
		start time.Time
		d     time.Duration
	}{
		{"no start", time.Time{}, 0},
		{"negative duration", moved, -time.Minute},
		{"part of a minute", moved, 90 * time.Second},
		{"over a week", moved, 8 * 24 * time.Hour},
	} {
		if err := f.sim.MoveMeeting(id, bad.start, bad.d); err == nil {
			t.Errorf("move with %s accepted", bad.name)
		}
	}
	if err := f.sim.MoveMeeting(1, moved, 0); !errors.Is(err, zoomtest.ErrNoMeeting) {
		t.Errorf("move of an unknown meeting: %v", err)
	}

	del, err := f.sim.DeleteMeeting(id)
	if err != nil {
		t.Fatal(err)
	}
	if del["object"].(map[string]any)["id"] != id || del["operator_id"] != "host@example.com" {
		t.Errorf("meeting.deleted payload %v", del)
	}
	if r := f.do(t, http.MethodGet, "/v2/meetings/"+sid, tok, nil); r.status != http.StatusNotFound {
		t.Errorf("deleted meeting: GET = %d, want 404", r.status)
	}
	if _, err := f.sim.DeleteMeeting(id); !errors.Is(err, zoomtest.ErrNoMeeting) {
		t.Errorf("second delete: %v", err)
	}
}

// TestAPIChangesNotify: with a WebhookURL, changes made through the API are
// delivered as Zoom delivers them to a subscribed app — meeting.updated with
// the new and old values, meeting.deleted with the meeting as it was — and
// nothing is sent for a create or for a change the API refused.
func TestAPIChangesNotify(t *testing.T) {
	t.Parallel()
	rc := &receiver{secret: "whsec"}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	f := newFixture(t, func(o *zoomtest.Options) { o.WebhookURL, o.WebhookSecret = hook.URL, "whsec" })
	tok := f.token(t)
	start := f.clk.Now().Add(time.Hour)
	id, sid := f.meeting(t, tok, start)
	moved := start.Add(2 * time.Hour)
	if r := f.do(t, http.MethodPatch, "/v2/meetings/"+sid, tok, map[string]any{"duration": -5}); r.status != http.StatusBadRequest {
		t.Fatalf("invalid PATCH: %d", r.status)
	}
	if r := f.do(t, http.MethodPatch, "/v2/meetings/"+sid, tok, map[string]any{"start_time": moved.Format("2006-01-02T15:04:05Z")}); r.status != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.status)
	}
	if r := f.do(t, http.MethodDelete, "/v2/meetings/"+sid, tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.status)
	}
	if err := f.sim.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var got []string
	for _, ev := range rc.events {
		got = append(got, ev["event"].(string))
	}
	// Deliveries are asynchronous: compare as a set, then look at each.
	slices.Sort(got)
	if !slices.Equal(got, []string{zoomtest.EventMeetingDeleted, zoomtest.EventMeetingUpdated}) {
		t.Fatalf("delivered %v, want one meeting.updated and one meeting.deleted", got)
	}
	for _, ev := range rc.events {
		p := ev["payload"].(map[string]any)
		switch ev["event"] {
		case zoomtest.EventMeetingUpdated:
			if p["object"].(map[string]any)["start_time"] != moved.Format("2006-01-02T15:04:05Z") ||
				p["old_object"].(map[string]any)["start_time"] != start.Format("2006-01-02T15:04:05Z") {
				t.Errorf("meeting.updated payload %v", p)
			}
		case zoomtest.EventMeetingDeleted:
			if p["object"].(map[string]any)["id"] != float64(id) || p["operator_id"] != "host@example.com" {
				t.Errorf("meeting.deleted payload %v", p)
			}
		}
	}
}
