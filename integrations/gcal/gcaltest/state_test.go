package gcaltest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// TestStateSurvivesRestart saves the state of one simulator, restores it
// into a new one built with the same Options (a gateway restart in sandbox
// mode) and checks over HTTP that clients notice no difference.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	const mentor = "restart.mentor@example.com" // auto-created: unknown to Options
	opts := gcaltest.Options{AutoCreateUsers: true, AccessTokenTTL: time.Hour, Now: clock.Now}
	o := newOAuth(t, opts)

	// Before the restart: OAuth grant, three events, a full sync, a channel.
	verifier := oauth2.GenerateVerifier()
	code := o.authorize(t, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", mentor)).Get("code")
	tok, err := o.cfg.Exchange(contextWithClient(t.Context(), o.ts.Client()), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", tok)
	}
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	ids := []string{"restart0001", "restart0002", "restart0003"}
	for i, id := range ids {
		if status, m := o.do(t, http.MethodPost, events, tok.AccessToken, event(id, start.Add(time.Duration(i)*time.Hour))); status != 200 {
			t.Fatalf("insert %s: %d %v", id, status, m)
		}
	}
	status, list := o.do(t, http.MethodGet, events, tok.AccessToken, nil)
	syncToken, _ := list["nextSyncToken"].(string)
	if status != 200 || len(items(list)) != len(ids) || syncToken == "" {
		t.Fatalf("full sync: %d %v", status, list)
	}
	status, ch := o.do(t, http.MethodPost, events+"/watch", tok.AccessToken, map[string]any{"id": "restart-ch", "type": "web_hook", "address": "https://gateway.test/hook"})
	if status != 200 {
		t.Fatalf("watch: %d %v", status, ch)
	}
	before := map[string]map[string]any{}
	for _, id := range ids {
		_, before[id] = o.do(t, http.MethodGet, events+"/"+id, tok.AccessToken, nil)
	}
	clock.Advance(time.Minute)

	state, err := o.sim.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(state, &head); err != nil || head.Version != 1 {
		t.Fatalf("state version %d (%v)", head.Version, err)
	}

	// The restarted process.
	sim := gcaltest.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	h := &harness{sim: sim, ts: ts, clock: clock}
	if status, _ := h.do(t, http.MethodGet, events+"/"+ids[0], tok.AccessToken, nil); status != 401 {
		t.Fatalf("old access token before restore: %d", status)
	}
	if err := sim.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	if again, err := sim.MarshalState(); err != nil || !bytes.Equal(again, state) {
		t.Errorf("state after restore (%v):\n%s\nwant\n%s", err, again, state)
	}

	// The old access token works, as the same user, and the events are unchanged.
	if status, info := h.do(t, http.MethodGet, "/v1/userinfo", tok.AccessToken, nil); status != 200 || info["email"] != mentor {
		t.Errorf("userinfo: %d %v", status, info)
	}
	for _, id := range ids {
		status, ev := h.do(t, http.MethodGet, events+"/"+id, tok.AccessToken, nil)
		if status != 200 || ev["etag"] != before[id]["etag"] || ev["updated"] != before[id]["updated"] || !reflect.DeepEqual(ev, before[id]) {
			t.Errorf("get %s: %d %v, want %v", id, status, ev, before[id])
		}
	}

	// An incremental sync with the old token reports exactly what changed since.
	status, patched := h.do(t, http.MethodPatch, events+"/"+ids[0], tok.AccessToken, map[string]any{"summary": "moved"}, "If-Match", before[ids[0]]["etag"].(string))
	if status != 200 || patched["etag"] == before[ids[0]]["etag"] {
		t.Fatalf("patch: %d %v", status, patched)
	}
	if status, m := h.do(t, http.MethodDelete, events+"/"+ids[1], tok.AccessToken, nil); status != 204 {
		t.Fatalf("delete: %d %v", status, m)
	}
	status, inc := h.do(t, http.MethodGet, events+"?syncToken="+url.QueryEscape(syncToken), tok.AccessToken, nil)
	got := map[string]map[string]any{}
	for _, it := range items(inc) {
		got[it["id"].(string)] = it
	}
	if status != 200 || len(items(inc)) != 2 || inc["nextSyncToken"] == nil ||
		got[ids[0]]["summary"] != "moved" || got[ids[0]]["etag"] != patched["etag"] || got[ids[1]]["status"] != "cancelled" {
		t.Errorf("incremental sync: %d %v", status, inc)
	}

	// The channel is still live and can be stopped.
	if chs := sim.Channels(mentor); len(chs) != 1 || chs[0].ID != "restart-ch" || chs[0].Address != "https://gateway.test/hook" {
		t.Errorf("channels after restore: %+v", chs)
	}
	stop := map[string]any{"id": "restart-ch", "resourceId": ch["resourceId"]}
	if status, m := h.do(t, http.MethodPost, "/calendar/v3/channels/stop", tok.AccessToken, stop); status != 204 {
		t.Errorf("channels.stop: %d %v", status, m)
	}

	// The access token keeps its expiry; the refresh token still works.
	clock.Advance(time.Hour)
	if status, _ := h.do(t, http.MethodGet, events+"/"+ids[2], tok.AccessToken, nil); status != 401 {
		t.Errorf("access token past its expiry: %d", status)
	}
	cfg := *o.cfg
	cfg.Endpoint = gcaltest.Endpoint(ts.URL)
	stale := *tok
	stale.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(contextWithClient(t.Context(), ts.Client()), &stale).Token()
	if err != nil {
		t.Fatalf("refresh after restore: %v", err)
	}
	if status, _ := h.do(t, http.MethodGet, events+"/"+ids[2], fresh.AccessToken, nil); status != 200 {
		t.Errorf("refreshed access token: %d", status)
	}
}

func TestUnmarshalStateErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{})
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	if _, err := h.sim.PutEvent("primary", gcaltest.ExternalEvent{ID: "keep00001", Summary: "keep", Start: start, End: start.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// Another simulator's state: applying any of it would show.
	other := gcaltest.New(gcaltest.Options{Users: []gcaltest.User{{Email: "other@example.com"}}})
	if _, err := other.IssueToken(gcaltest.DefaultClientID, "other@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.PutEvent("primary", gcaltest.ExternalEvent{ID: "other0001", Summary: "other", Start: start, End: start.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	valid, err := other.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(valid))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("{")},
		{"trailing data", append(append([]byte(nil), valid...), "{}"...)},
		{"null", []byte("null")},
		{"missing version", edit(func(m map[string]any) { delete(m, "version") })},
		{"wrong version", edit(func(m map[string]any) { m["version"] = 2 })},
		{"version as string", edit(func(m map[string]any) { m["version"] = "1" })},
		{"no users", edit(func(m map[string]any) { m["users"] = []any{} })},
		{"event id mismatch", edit(func(m map[string]any) {
			evs := m["calendars"].(map[string]any)["other@example.com"].(map[string]any)["events"].(map[string]any)
			evs["other0001"].(map[string]any)["data"].(map[string]any)["id"] = "other0002"
		})},
		{"access token of an unknown grant", edit(func(m map[string]any) {
			for _, a := range m["accessTokens"].(map[string]any) {
				a.(map[string]any)["refreshToken"] = "1//nope"
			}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := h.sim.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.sim.UnmarshalState(tc.in); err == nil {
				t.Fatal("no error")
			}
			after, err := h.sim.MarshalState()
			if err != nil || !bytes.Equal(after, before) {
				t.Errorf("state changed (%v):\n%s\nwant\n%s", err, after, before)
			}
			if status, ev := h.do(t, http.MethodGet, events+"/keep00001", h.token, nil); status != 200 || ev["summary"] != "keep" {
				t.Errorf("get after failed restore: %d %v", status, ev)
			}
		})
	}

	// The unedited state is accepted: the edits above are what fail.
	if err := h.sim.UnmarshalState(valid); err != nil {
		t.Fatal(err)
	}
	if status, _ := h.do(t, http.MethodGet, events+"/keep00001", h.token, nil); status != 401 {
		t.Errorf("old token after restoring another state: %d", status)
	}
}

// TestStateConcurrentUse runs saves and restores alongside changes; run
// with -race.
func TestStateConcurrentUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, gcaltest.Options{})
	snap, err := h.sim.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := h.sim.PutEvent("primary", gcaltest.ExternalEvent{Summary: "c", Start: start, End: start.Add(time.Hour)}); err != nil {
					t.Error(err)
				}
				if _, err := h.sim.MarshalState(); err != nil {
					t.Error(err)
				}
				if err := h.sim.UnmarshalState(snap); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Every goroutine ends with a restore, so the last operation was one.
	if got, err := h.sim.MarshalState(); err != nil || !bytes.Equal(got, snap) {
		t.Errorf("state after the last restore (%v):\n%s\nwant\n%s", err, got, snap)
	}
}

// TestSharedCalendarSurvivesRestart: a calendar shared with an account
// (AddCalendar with a role other than owner) keeps its access role across
// MarshalState/UnmarshalState, and leaves the account's list when deleted.
func TestSharedCalendarSurvivesRestart(t *testing.T) {
	t.Parallel()
	const shared = "shared@example.org"
	before := gcaltest.New(gcaltest.Options{})
	if err := before.AddCalendar(gcaltest.DefaultUser, gcaltest.Calendar{ID: shared, Summary: "Shared"}, gcaltest.RoleReader); err != nil {
		t.Fatal(err)
	}
	st, err := before.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	sim := gcaltest.New(gcaltest.Options{})
	if err := sim.UnmarshalState(st); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	tok, err := sim.IssueToken(gcaltest.DefaultClientID, gcaltest.DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd bytes.Buffer
		if body != nil {
			_ = json.NewEncoder(&rd).Encode(body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, gcaltest.APIBase(ts.URL)+path, &rd)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	roles := func() map[string]any {
		t.Helper()
		status, list := call(http.MethodGet, "users/me/calendarList", nil)
		if status != 200 {
			t.Fatalf("calendarList: %d %v", status, list)
		}
		out := map[string]any{}
		for _, it := range list["items"].([]any) {
			e := it.(map[string]any)
			out[e["id"].(string)] = e["accessRole"]
		}
		return out
	}
	if got := roles(); got[shared] != "reader" || got[gcaltest.DefaultUser] != "owner" {
		t.Fatalf("after restart: access roles %v", got)
	}
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	if status, m := call(http.MethodPost, "calendars/"+url.PathEscape(shared)+"/events", event("shared0001", start)); status != http.StatusForbidden {
		t.Errorf("insert into a reader's calendar: %d %v, want 403", status, m)
	}
	if err := sim.DeleteCalendar(shared); err != nil {
		t.Fatal(err)
	}
	if got := roles(); got[shared] != nil {
		t.Errorf("the deleted shared calendar is still listed: %v", got)
	}
}
