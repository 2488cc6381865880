package jiratest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
)

// must sends c and fails the test unless it is answered with status want.
func must(t *testing.T, base string, want int, c call) map[string]any {
	t.Helper()
	got, _, body := do(t, base, c)
	if got != want {
		t.Fatalf("%s %s = %d %v, want %d", c.method, c.path, got, body, want)
	}
	return body
}

// num parses a numeric id such as "10001".
func num(t *testing.T, id any) int {
	t.Helper()
	s, _ := id.(string)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("id %v is not numeric", id)
	}
	return n
}

// changelogID returns the changelog.id of a webhook body.
func changelogID(t *testing.T, body []byte) int {
	t.Helper()
	var p struct{ Changelog struct{ ID string } }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return num(t, p.Changelog.ID)
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	// A fixed BaseURL keeps "self" links equal across the two listeners.
	opts := jiratest.Options{BaseURL: "https://spotlight.atlassian.net"}
	s1, base1 := site(t, opts)
	var keys, ids []string
	for _, label := range []string{"booking-1", "booking-2", "booking-3"} {
		b := must(t, base1, 201, call{method: "POST", path: "/rest/api/3/issue", body: createBody("Session "+label, label)})
		keys, ids = append(keys, b["key"].(string)), append(ids, b["id"].(string))
	}
	must(t, base1, 204, call{method: "PUT", path: "/rest/api/3/issue/" + keys[0], body: `{"fields":{"customfield_10050":"b-1"}}`})
	cm := must(t, base1, 201, call{method: "POST", path: "/rest/api/3/issue/" + keys[0] + "/comment", body: `{"body":` + adf + `}`})
	must(t, base1, 204, call{method: "POST", path: "/rest/api/3/issue/" + keys[1] + "/transitions", body: `{"transition":{"id":"21"}}`})
	must(t, base1, 204, call{method: "DELETE", path: "/rest/api/3/issue/" + keys[2]})
	hs := httptest.NewServer(&hook{})
	t.Cleanup(hs.Close)
	d, err := s1.SendWebhook(t.Context(), hs.URL, "", jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: keys[0]})
	if err != nil {
		t.Fatal(err)
	}
	lastChangelog := changelogID(t, d.Body)

	// observe is what a client sees of the site.
	searches := []string{`project = SPOT ORDER BY key ASC`, `status = "In Progress"`, `labels in (booking-1, booking-3)`}
	observe := func(base string) map[string]any {
		out := map[string]any{}
		for _, k := range keys[:2] {
			for _, p := range []string{"", "/comment", "/transitions"} {
				out[k+p] = must(t, base, 200, call{method: "GET", path: "/rest/api/3/issue/" + k + p})
			}
		}
		for _, q := range searches {
			out[q] = must(t, base, 200, call{method: "POST", path: "/rest/api/3/search/jql", body: `{"jql":` + string(mustJSON(q)) + `,"fields":["*all"]}`})
		}
		return out
	}
	before := observe(base1)

	state, err := s1.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var top struct{ Version *int }
	if err := json.Unmarshal(state, &top); err != nil || top.Version == nil || *top.Version != 1 {
		t.Fatalf("state version = %v (%v), want 1: %s", top.Version, err, state)
	}

	// The restarted process: a new Server with the same Options.
	s2, base2 := site(t, opts)
	if err := s2.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, observe(base2)); diff != "" {
		t.Errorf("site after restore (-before +after):\n%s", diff)
	}
	if again, err := s2.MarshalState(); err != nil || !bytes.Equal(again, state) {
		t.Errorf("MarshalState after restore differs (%v):\n%s\nwant\n%s", err, again, state)
	}
	for _, k := range []string{keys[2], ids[2]} {
		must(t, base2, 404, call{method: "GET", path: "/rest/api/3/issue/" + k})
	}
	// The tombstone survives: a webhook about the deleted issue still renders.
	if _, err := s2.SendWebhook(t.Context(), hs.URL, "", jiratest.Event{Type: jiratest.EventIssueDeleted, IssueKey: keys[2]}); err != nil {
		t.Errorf("webhook for deleted issue after restore: %v", err)
	}
	d, err = s2.SendWebhook(t.Context(), hs.URL, "", jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: keys[0]})
	if err != nil {
		t.Fatal(err)
	}
	if got := changelogID(t, d.Body); got != lastChangelog+1 {
		t.Errorf("changelog id after restore = %d, want %d", got, lastChangelog+1)
	}

	// Nothing is numbered twice.
	b := must(t, base2, 201, call{method: "POST", path: "/rest/api/3/issue", body: createBody("After restart")})
	if want := fmt.Sprintf("SPOT-%d", len(keys)+1); b["key"] != want {
		t.Errorf("new issue key = %v, want %s", b["key"], want)
	}
	for _, id := range ids {
		if num(t, b["id"]) <= num(t, id) {
			t.Errorf("new issue id %v not above earlier id %s", b["id"], id)
		}
	}
	cm2 := must(t, base2, 201, call{method: "POST", path: "/rest/api/3/issue/" + keys[1] + "/comment", body: `{"body":` + adf + `}`})
	if num(t, cm2["id"]) <= num(t, cm["id"]) {
		t.Errorf("new comment id %v not above earlier %v", cm2["id"], cm["id"])
	}

	// The workflow goes on from the restored status (Done needs In Progress).
	must(t, base2, 204, call{method: "POST", path: "/rest/api/3/issue/" + keys[1] + "/transitions", body: `{"transition":{"id":"31"}}`})
	got := must(t, base2, 200, call{method: "GET", path: "/rest/api/3/issue/" + keys[1] + "?fields=status"})
	if st := got["fields"].(map[string]any)["status"].(map[string]any)["name"]; st != "Done" {
		t.Errorf("status after transition = %v, want Done", st)
	}
	if is, _ := s1.Issue(keys[1]); is.Status != "In Progress" {
		t.Errorf("original server changed by the restored one: status %q", is.Status)
	}
}

func TestUnmarshalStateErrors(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	must(t, base, 201, call{method: "POST", path: "/rest/api/3/issue", body: createBody("Kept")})
	must(t, base, 201, call{method: "POST", path: "/rest/api/3/issue/SPOT-1/comment", body: `{"body":` + adf + `}`})
	valid, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	// mutate returns valid, decoded, changed by f and encoded again. It also
	// renames the issue, so that a partly applied state would show.
	mutate := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		m["issues"].([]any)[0].(map[string]any)["summary"] = "Replaced"
		f(m)
		return string(mustJSON(m))
	}
	issues := func(m map[string]any) []any { return m["issues"].([]any) }
	counters := func(m map[string]any) map[string]any { return m["counters"].(map[string]any) }
	// Re-encoding alone must not make a state invalid, or the cases below
	// would fail for the wrong reason.
	if err := jiratest.New(jiratest.Options{}).UnmarshalState([]byte(mutate(func(map[string]any) {}))); err != nil {
		t.Fatalf("re-encoded valid state rejected: %v", err)
	}

	tests := []struct{ name, state string }{
		{"empty", ""},
		{"not JSON", "{"},
		{"trailing data", string(valid) + "{}"},
		{"not an object", "[]"},
		{"no version", mutate(func(m map[string]any) { delete(m, "version") })},
		{"version 2", mutate(func(m map[string]any) { m["version"] = 2 })},
		{"version as string", mutate(func(m map[string]any) { m["version"] = "1" })},
		{"issues not a list", mutate(func(m map[string]any) { m["issues"] = map[string]any{} })},
		{"duplicate issue", mutate(func(m map[string]any) { m["issues"] = append(issues(m), issues(m)[0]) })},
		{"live issue also deleted", mutate(func(m map[string]any) { m["deleted"] = issues(m) })},
		{"key of another project", mutate(func(m map[string]any) { issues(m)[0].(map[string]any)["key"] = "OPS-1" })},
		{"id beyond counter", mutate(func(m map[string]any) { counters(m)["issueId"] = 1 })},
		{"key beyond counter", mutate(func(m map[string]any) { counters(m)["issueNumber"] = map[string]any{} })},
		{"comment id beyond counter", mutate(func(m map[string]any) { counters(m)["commentId"] = 0 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.UnmarshalState([]byte(tt.state)); err == nil {
				t.Fatalf("UnmarshalState(%.80s…) = nil, want an error", tt.state)
			}
			if got, err := s.MarshalState(); err != nil || !bytes.Equal(got, valid) {
				t.Errorf("state changed by a failed UnmarshalState (%v):\n%s\nwant\n%s", err, got, valid)
			}
			if b := must(t, base, 200, call{method: "GET", path: "/rest/api/3/issue/SPOT-1"}); b["fields"].(map[string]any)["summary"] != "Kept" {
				t.Errorf("SPOT-1 after failed restore: %v", b)
			}
		})
	}

	// A valid state replaces everything, it is not merged.
	if err := s.UnmarshalState([]byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	must(t, base, 404, call{method: "GET", path: "/rest/api/3/issue/SPOT-1"})
	if n := s.IssueCount(); n != 0 {
		t.Errorf("IssueCount after restoring an empty state = %d", n)
	}
}

// post sends an authenticated JSON request; unlike do it may run outside
// the test's goroutine.
func post(t *testing.T, url, body string) {
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	basic(req)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Errorf("POST %s = %d", url, resp.StatusCode)
	}
}

// TestStateConcurrent is for the race detector: saving and restoring while
// the API is in use.
func TestStateConcurrent(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 5 {
				post(t, base+"/rest/api/3/issue", createBody("x"))
				post(t, base+"/rest/api/3/search/jql", `{"jql":"project = SPOT","fields":["summary"]}`)
			}
		})
		wg.Go(func() {
			for range 5 {
				b, err := s.MarshalState()
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.UnmarshalState(b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if err := jiratest.New(jiratest.Options{}).UnmarshalState(b); err != nil {
		t.Errorf("final state not restorable: %v", err)
	}
}
