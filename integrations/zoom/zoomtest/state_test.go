package zoomtest_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

var stateUsers = []zoomtest.User{{ID: "u-1", Email: "One@Example.com"}, {ID: "u-2", Email: "two@example.com"}}

// restart serves a new Server built from opts (with a fresh random source
// seeded like the first one, as a restarted process would) after restoring
// state into it.
func restart(t *testing.T, opts zoomtest.Options, clk *clock, state []byte) *fixture {
	t.Helper()
	opts.Rand = rand.NewPCG(1, 2)
	sim := zoomtest.New(opts)
	if err := sim.UnmarshalState(state); err != nil {
		t.Fatalf("UnmarshalState: %v", err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); ts.Close() })
	return &fixture{sim: sim, url: ts.URL, clk: clk}
}

func meetingID(t *testing.T, r result) string {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	return string(r.body["id"].(json.Number))
}

// TestStateSurvivesRestart saves the state of a simulator that was used
// through its API and checks, through the API of a new simulator that
// restored it, that clients see no difference.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	var opts zoomtest.Options
	f := newFixture(t, func(o *zoomtest.Options) {
		o.Users, o.TokenTTL = stateUsers, time.Hour
		opts = *o
	})
	older := f.token(t)
	f.clk.Advance(40 * time.Minute)
	tok := f.token(t)

	start := f.clk.Now().Add(24 * time.Hour)
	a := meetingID(t, f.do(t, http.MethodPost, "/v2/users/u-1/meetings", tok, validMeeting(start)))
	b := meetingID(t, f.do(t, http.MethodPost, "/v2/users/one@example.com/meetings", tok, validMeeting(start.Add(time.Hour))))
	c := meetingID(t, f.do(t, http.MethodPost, "/v2/users/u-2/meetings", tok, validMeeting(start)))
	if r := f.do(t, http.MethodPatch, "/v2/meetings/"+a, tok, map[string]any{
		"topic": "Moved", "start_time": start.Add(3 * time.Hour).Format("2006-01-02T15:04:05Z"),
	}); r.status != http.StatusNoContent {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	aID, _ := strconv.ParseInt(a, 10, 64)

	gets := map[string][]byte{}
	for _, id := range []string{a, b, c} {
		gets[id] = f.do(t, http.MethodGet, "/v2/meetings/"+id, tok, nil).raw
	}
	lists := []string{
		"/v2/users/u-1/meetings", "/v2/users/two@example.com/meetings?type=upcoming",
		"/v2/users/u-1/meetings?page_size=1",
	}
	listed := map[string][]byte{}
	for _, p := range lists {
		listed[p] = f.do(t, http.MethodGet, p, tok, nil).raw
	}
	page := f.do(t, http.MethodGet, "/v2/users/u-1/meetings?page_size=1", tok, nil)
	next := "/v2/users/u-1/meetings?page_size=1&next_page_token=" + page.body["next_page_token"].(string)
	listed[next] = f.do(t, http.MethodGet, next, tok, nil).raw
	updated, err := f.sim.MeetingEvent(zoomtest.EventMeetingUpdated, aID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if old := updated["old_object"].(map[string]any); old["topic"] != "Session" {
		t.Fatalf("before the restart old_object = %v, want the topic before the patch", old)
	}

	state, err := f.sim.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(state, &shape); err != nil || shape["version"] != float64(1) {
		t.Fatalf("state %s: version %v, err %v", state, shape["version"], err)
	}

	g := restart(t, opts, f.clk, state)
	if again, err := g.sim.MarshalState(); err != nil || !bytes.Equal(again, state) {
		t.Errorf("restored state differs:\n%s\nwant\n%s (err %v)", again, state, err)
	}
	for _, id := range []string{a, b, c} {
		if r := g.do(t, http.MethodGet, "/v2/meetings/"+id, older, nil); r.status != http.StatusOK || !bytes.Equal(r.raw, gets[id]) {
			t.Errorf("GET meeting %s after restart: %d\n%s\nwant\n%s", id, r.status, r.raw, gets[id])
		}
	}
	for _, p := range lists {
		if r := g.do(t, http.MethodGet, p, tok, nil); r.status != http.StatusOK || !bytes.Equal(r.raw, listed[p]) {
			t.Errorf("GET %s after restart: %d\n%s\nwant\n%s", p, r.status, r.raw, listed[p])
		}
	}
	if r := g.do(t, http.MethodGet, next, tok, nil); r.status != http.StatusOK || !bytes.Equal(r.raw, listed[next]) {
		t.Errorf("next page after restart: %d\n%s\nwant\n%s", r.status, r.raw, listed[next])
	}
	if got, err := g.sim.MeetingEvent(zoomtest.EventMeetingUpdated, aID, nil); err != nil {
		t.Errorf("meeting.updated after restart: %v", err)
	} else if diff := cmp.Diff(updated, got); diff != "" {
		t.Errorf("meeting.updated after restart (-before +after):\n%s", diff)
	}
	if g.sim.MeetingCount("one@example.com") != 2 || g.sim.MeetingCount("u-2") != 1 {
		t.Errorf("meeting counts after restart: %d, %d", g.sim.MeetingCount("u-1"), g.sim.MeetingCount("u-2"))
	}

	// The same seed yields the ids taken before the restart; new meetings
	// still get their own.
	d := meetingID(t, g.do(t, http.MethodPost, "/v2/users/u-2/meetings", tok, validMeeting(start)))
	if d == a || d == b || d == c {
		t.Errorf("new meeting reuses id %s", d)
	}
	if r := g.do(t, http.MethodGet, "/v2/users/u-2/meetings", tok, nil); r.body["total_records"] != json.Number("2") {
		t.Errorf("after a create: %s", r.raw)
	}
	if r := g.do(t, http.MethodGet, "/v2/meetings/"+c, tok, nil); !bytes.Equal(r.raw, gets[c]) {
		t.Errorf("a create changed meeting %s: %s", c, r.raw)
	}

	// Token expiry survived: the older token expires 60 minutes after it
	// was issued, the newer one 40 minutes later.
	f.clk.Advance(30 * time.Minute)
	want := map[string]any{"code": json.Number("124"), "message": "Access token is expired."}
	if r := g.do(t, http.MethodGet, "/v2/meetings/"+a, older, nil); r.status != http.StatusUnauthorized || !cmp.Equal(want, r.body) {
		t.Errorf("expired token after restart: %d %s", r.status, r.raw)
	}
	if r := g.do(t, http.MethodGet, "/v2/meetings/"+a, tok, nil); r.status != http.StatusOK {
		t.Errorf("valid token after restart: %d %s", r.status, r.raw)
	}
	if r := g.do(t, http.MethodGet, "/v2/meetings/"+a, "forged", nil); r.status != http.StatusUnauthorized {
		t.Errorf("unknown token after restart: %d", r.status)
	}
}

// TestUnmarshalStateKeepsConfiguredUsers: a user added to Options since the
// state was saved is known after the restore.
func TestUnmarshalStateKeepsConfiguredUsers(t *testing.T) {
	t.Parallel()
	var opts zoomtest.Options
	f := newFixture(t, func(o *zoomtest.Options) { o.Users = stateUsers; opts = *o })
	tok := f.token(t)
	meetingID(t, f.do(t, http.MethodPost, "/v2/users/u-1/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour))))
	state, err := f.sim.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	opts.Users = append(stateUsers[:len(stateUsers):len(stateUsers)], zoomtest.User{ID: "u-3", Email: "three@example.com"})
	g := restart(t, opts, f.clk, state)
	if r := g.do(t, http.MethodPost, "/v2/users/three@example.com/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour))); r.status != http.StatusCreated || r.body["host_id"] != "u-3" {
		t.Errorf("create for a newly configured user: %d %s", r.status, r.raw)
	}
	if g.sim.MeetingCount("one@example.com") != 1 {
		t.Error("restored meeting not found by its host's email")
	}
}

func TestUnmarshalStateErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	id := meetingID(t, f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour))))
	if r := f.do(t, http.MethodPatch, "/v2/meetings/"+id, tok, map[string]any{"topic": "Moved"}); r.status != http.StatusNoContent {
		t.Fatalf("patch: %d", r.status)
	}
	before, err := f.sim.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	get := f.do(t, http.MethodGet, "/v2/meetings/"+id, tok, nil).raw

	// with re-encodes the saved state after changing one top-level field.
	with := func(key string, v any) string {
		var m map[string]any
		if err := json.Unmarshal(before, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	var st map[string]any
	_ = json.Unmarshal(before, &st)
	meetings := st["meetings"].([]any)

	tests := []struct {
		name, state string
	}{
		{"empty", ""},
		{"not JSON", "version=1"},
		{"truncated", string(before[:len(before)/2])},
		{"array", "[1]"},
		{"no version", with("version", nil)},
		{"version 2", with("version", 2)},
		{"version as string", with("version", "1")},
		{"tokens not an object", with("tokens", []string{"x"})},
		{"bad expiry", with("tokens", map[string]any{"x": "tomorrow"})},
		{"duplicate meeting", with("meetings", append(meetings, meetings...))},
		{"previous of no meeting", with("meetings", []any{})},
	}
	for _, tt := range tests {
		if err := f.sim.UnmarshalState([]byte(tt.state)); err == nil {
			t.Errorf("%s: UnmarshalState accepted %s", tt.name, tt.state)
		}
		if after, err := f.sim.MarshalState(); err != nil || !bytes.Equal(after, before) {
			t.Errorf("%s: state changed:\n%s\nwant\n%s", tt.name, after, before)
		}
		if r := f.do(t, http.MethodGet, "/v2/meetings/"+id, tok, nil); !bytes.Equal(r.raw, get) {
			t.Errorf("%s: GET meeting: %d %s", tt.name, r.status, r.raw)
		}
	}
	// The unmodified state is accepted: the cases above fail for their change.
	if err := f.sim.UnmarshalState([]byte(with("version", 1))); err != nil {
		t.Errorf("valid state: %v", err)
	}
}

// TestStateConcurrentUse runs MarshalState and UnmarshalState alongside API
// requests; run with -race. (A meeting created between a MarshalState and
// the UnmarshalState of its result is lost, so counts are not checked.)
func TestStateConcurrentUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t)
	meetingID(t, f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour))))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if r := f.do(t, http.MethodPost, "/v2/users/u1/meetings", tok, validMeeting(f.clk.Now().Add(time.Hour))); r.status != http.StatusCreated {
					t.Errorf("create: %d %s", r.status, r.raw)
				}
				if r := f.do(t, http.MethodGet, "/v2/users/u1/meetings", tok, nil); r.status != http.StatusOK {
					t.Errorf("list: %d %s", r.status, r.raw)
				}
			}
		})
		wg.Go(func() {
			for range 5 {
				b, err := f.sim.MarshalState()
				if err != nil {
					t.Error(err)
					return
				}
				if err := f.sim.UnmarshalState(b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}
