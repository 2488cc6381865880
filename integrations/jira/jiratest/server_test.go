package jiratest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
)

// site starts a simulator and returns it with its URL.
func site(t *testing.T, opts jiratest.Options) (*jiratest.Server, string) {
	t.Helper()
	s := jiratest.New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

type call struct {
	method, path, body string
	auth               func(*http.Request)
}

func basic(r *http.Request) { r.SetBasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken) }

// do sends a request and returns status, headers and decoded JSON body.
func do(t *testing.T, base string, c call) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth == nil {
		c.auth = basic
	}
	c.auth(req)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", c.method, c.path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, out
}

const adf = `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Session with Ada"}]}]}`

func createBody(summary string, labels ...string) string {
	l, _ := json.Marshal(labels)
	return `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":` + string(mustJSON(summary)) +
		`,"description":` + adf + `,"labels":` + string(l) + `}}`
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestAuth(t *testing.T) {
	t.Parallel()
	_, base := site(t, jiratest.Options{Accounts: []jiratest.Account{
		{Email: "rw@x.test", APIToken: "tok", BearerTokens: []string{"bearer-rw"}},
		{Email: "ro@x.test", APIToken: "tok2", ReadOnly: true},
	}})
	tests := []struct {
		name string
		auth func(*http.Request)
		path string
		want int
	}{
		{"basic ok", func(r *http.Request) { r.SetBasicAuth("rw@x.test", "tok") }, "/rest/api/3/myself", 200},
		{"email case-insensitive", func(r *http.Request) { r.SetBasicAuth("RW@x.test", "tok") }, "/rest/api/3/myself", 200},
		{"wrong token", func(r *http.Request) { r.SetBasicAuth("rw@x.test", "nope") }, "/rest/api/3/myself", 401},
		{"token of other account", func(r *http.Request) { r.SetBasicAuth("rw@x.test", "tok2") }, "/rest/api/3/myself", 401},
		{"no auth", func(*http.Request) {}, "/rest/api/3/myself", 401},
		{"bearer ok", func(r *http.Request) { r.Header.Set("Authorization", "Bearer bearer-rw") }, "/rest/api/3/myself", 200},
		{"bearer unknown", func(r *http.Request) { r.Header.Set("Authorization", "Bearer other") }, "/rest/api/3/myself", 401},
		{"api token as bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }, "/rest/api/3/myself", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _, body := do(t, base, call{method: "GET", path: tt.path, auth: tt.auth})
			if got != tt.want {
				t.Fatalf("status = %d, want %d (%v)", got, tt.want, body)
			}
			if got == 401 && len(body["errorMessages"].([]any)) == 0 {
				t.Errorf("401 without errorMessages: %v", body)
			}
		})
	}
	// A read-only account may search but not create.
	ro := func(r *http.Request) { r.SetBasicAuth("ro@x.test", "tok2") }
	if got, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/search/jql", body: `{"jql":"project = SPOT"}`, auth: ro}); got != 200 {
		t.Errorf("read-only search = %d, want 200", got)
	}
	if got, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("x"), auth: ro}); got != 403 {
		t.Errorf("read-only create = %d, want 403", got)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	tests := []struct {
		name   string
		body   string
		errors map[string]any
	}{
		{"plain string description", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"s","description":"plain"}}`,
			map[string]any{"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}},
		{"doc without version", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"s","description":{"type":"doc","content":[]}}}`,
			map[string]any{"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}},
		{"empty text node", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"s","description":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":""}]}]}}}`,
			map[string]any{"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}},
		{"missing everything", `{"fields":{}}`, map[string]any{
			"project": "Specify a valid project ID or key", "issuetype": "Specify an issue type",
			"summary": "You must specify a summary of the issue."}},
		{"unknown project and type", `{"fields":{"project":{"key":"NOPE"},"issuetype":{"name":"Epic"},"summary":"s"}}`, map[string]any{
			"project": "Specify a valid project ID or key", "issuetype": "Specify a valid issue type"}},
		{"summary with a line break", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"Mentoring: two\nlines"}}`,
			map[string]any{"summary": "The summary is invalid because it contains newline characters."}},
		{"summary with a carriage return", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"a\rb"}}`,
			map[string]any{"summary": "The summary is invalid because it contains newline characters."}},
		{"label with space", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"s","labels":["a b"]}}`,
			map[string]any{"labels": "The label 'a b' contains spaces which is invalid."}},
		{"unknown field", `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"s","customfield_99999":"x"}}`,
			map[string]any{"customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, or unknown."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: tt.body})
			if status != 400 {
				t.Fatalf("status = %d, want 400", status)
			}
			if diff := cmp.Diff(tt.errors, body["errors"]); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		t.Parallel()
		if status, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: `{fields`}); status != 400 {
			t.Errorf("status = %d, want 400", status)
		}
	})
	t.Cleanup(func() {
		if n := s.IssueCount(); n != 0 {
			t.Errorf("IssueCount = %d after only invalid creates", n)
		}
	})
}

// TestEditSummaryNewline: an edit that would put a line break into the
// summary, through "fields" or an "update" set, is refused like a create.
func TestEditSummaryNewline(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	status, _, created := do(t, base, call{method: "POST", path: "/rest/api/3/issue",
		body: `{"fields":{"project":{"key":"SPOT"},"issuetype":{"name":"Task"},"summary":"one line"}}`})
	if status != 201 {
		t.Fatalf("create: %d", status)
	}
	key := created["key"].(string)
	for _, body := range []string{`{"fields":{"summary":"two\nlines"}}`, `{"update":{"summary":[{"set":"two\r\nlines"}]}}`} {
		status, _, got := do(t, base, call{method: "PUT", path: "/rest/api/3/issue/" + key, body: body})
		want := map[string]any{"summary": "The summary is invalid because it contains newline characters."}
		if diff := cmp.Diff(want, got["errors"]); status != 400 || diff != "" {
			t.Errorf("PUT %s: status %d, errors (-want +got):\n%s", body, status, diff)
		}
	}
	if is, _ := s.Issue(key); is.Summary != "one line" {
		t.Errorf("summary = %q after refused edits", is.Summary)
	}
}

func TestIssueLifecycleAndTransitions(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	status, _, created := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("Booking 1", "spotlight-booking-1")})
	if status != 201 {
		t.Fatalf("create = %d %v", status, created)
	}
	key := created["key"].(string)
	if key != "SPOT-1" || !strings.HasSuffix(created["self"].(string), "/rest/api/3/issue/"+created["id"].(string)) {
		t.Errorf("created = %v", created)
	}
	// Custom field set by edit, summary by update verb.
	if st, _, b := do(t, base, call{method: "PUT", path: "/rest/api/3/issue/" + key,
		body: `{"fields":{"customfield_10050":"b-1"},"update":{"labels":[{"add":"extra"}]}}`}); st != 204 {
		t.Fatalf("edit = %d %v", st, b)
	}
	_, _, got := do(t, base, call{method: "GET", path: "/rest/api/3/issue/" + key + "?fields=summary,labels,status,customfield_10050"})
	fields := got["fields"].(map[string]any)
	if diff := cmp.Diff([]any{"spotlight-booking-1", "extra"}, fields["labels"]); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if fields["customfield_10050"] != "b-1" || fields["status"].(map[string]any)["name"] != "To Do" {
		t.Errorf("fields = %v", fields)
	}
	if _, ok := fields["description"]; ok {
		t.Errorf("description returned although not requested")
	}

	// Transitions offered from To Do: Start Progress and the global Cancel.
	_, _, tr := do(t, base, call{method: "GET", path: "/rest/api/3/issue/" + key + "/transitions"})
	var names []string
	for _, x := range tr["transitions"].([]any) {
		names = append(names, x.(map[string]any)["name"].(string))
	}
	if diff := cmp.Diff([]string{"Start Progress", "Cancel"}, names); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	// "Done" (31) is not valid from To Do.
	st, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/issue/" + key + "/transitions", body: `{"transition":{"id":"31"}}`})
	if st != 400 || b["errorMessages"].([]any)[0] != "Transition id '31' is not valid for this issue." {
		t.Errorf("invalid transition = %d %v", st, b)
	}
	if st, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue/" + key + "/transitions", body: `{"transition":{"id":"21"}}`}); st != 204 {
		t.Errorf("transition = %d", st)
	}
	if is, _ := s.Issue(key); is.Status != "In Progress" {
		t.Errorf("status = %q", is.Status)
	}
	// Comments need ADF too.
	if st, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/issue/" + key + "/comment", body: `{"body":"plain"}`}); st != 400 {
		t.Errorf("plain comment = %d %v", st, b)
	}
	if st, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue/" + key + "/comment", body: `{"body":` + adf + `}`}); st != 201 {
		t.Errorf("comment = %d", st)
	}
	if st, _, _ := do(t, base, call{method: "DELETE", path: "/rest/api/3/issue/" + key}); st != 204 {
		t.Errorf("delete = %d", st)
	}
	if st, _, b := do(t, base, call{method: "GET", path: "/rest/api/3/issue/" + key}); st != 404 || len(b["errorMessages"].([]any)) != 1 {
		t.Errorf("get deleted = %d %v", st, b)
	}
	if s.IssueCount() != 0 {
		t.Errorf("IssueCount = %d", s.IssueCount())
	}
}

func TestSearchJQL(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	for _, labels := range [][]string{{"spotlight-booking-1"}, {"spotlight-booking-2", "vip"}, {}} {
		if st, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("x", labels...)}); st != 201 {
			t.Fatalf("create = %d %v", st, b)
		}
	}
	if _, err := s.SetStatus("SPOT-2", "Done"); err != nil {
		t.Fatal(err)
	}
	keys := func(b map[string]any) []string {
		var out []string
		for _, i := range b["issues"].([]any) {
			out = append(out, i.(map[string]any)["key"].(string))
		}
		return out
	}
	tests := []struct {
		jql  string
		want []string
	}{
		{`labels = "spotlight-booking-1"`, []string{"SPOT-1"}},
		{`project = SPOT AND labels = spotlight-booking-2`, []string{"SPOT-2"}},
		{`project = "SPOT" and labels in (spotlight-booking-1, vip) ORDER BY created DESC`, []string{"SPOT-2", "SPOT-1"}},
		{`labels != vip`, []string{"SPOT-1"}},
		{`labels IS EMPTY`, []string{"SPOT-3"}},
		{`status = Done OR labels = spotlight-booking-1 ORDER BY key ASC`, []string{"SPOT-1", "SPOT-2"}},
		{`NOT (status = "To Do")`, []string{"SPOT-2"}},
		{`cf[10050] IS EMPTY AND key = SPOT-3`, []string{"SPOT-3"}},
		{`summary ~ "X"`, []string{"SPOT-1", "SPOT-2", "SPOT-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.jql, func(t *testing.T) {
			t.Parallel()
			st, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/search/jql", body: `{"jql":` + string(mustJSON(tt.jql)) + `,"fields":["summary"]}`})
			if st != 200 {
				t.Fatalf("status %d %v", st, b)
			}
			if diff := cmp.Diff(tt.want, keys(b)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
	bad := []struct{ jql, msg string }{
		{`labels = `, "Error in the JQL Query: Expecting either a value, list or function but got the end of the query."},
		{`labels == x`, "Error in the JQL Query: Expecting either a value, list or function but got '='."},
		{`labels = x AND`, "Error in the JQL Query: Expecting a field name but got the end of the query."},
		{`labels = "open`, "Error in the JQL Query: The quoted string \"open has not been completed."},
		{`nosuch = 1`, "Field 'nosuch' does not exist or you do not have permission to view it."},
		{`project = NOPE`, "The value 'NOPE' does not exist for the field 'project'."},
		{`summary = x`, "The operator '=' is not supported by the 'summary' field."},
		{``, "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."},
		{`ORDER BY created`, "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.jql, func(t *testing.T) {
			t.Parallel()
			st, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/search/jql", body: `{"jql":` + string(mustJSON(tt.jql)) + `}`})
			if st != 400 {
				t.Fatalf("status %d, want 400", st)
			}
			msg := b["errorMessages"].([]any)[0].(string)
			if !strings.HasPrefix(msg, tt.msg) {
				t.Errorf("message %q, want prefix %q", msg, tt.msg)
			}
		})
	}
	t.Run("pagination and id-only default", func(t *testing.T) {
		t.Parallel()
		var seen []string
		token := ""
		for range 5 {
			body := `{"jql":"project = SPOT","maxResults":2`
			if token != "" {
				body += `,"nextPageToken":"` + token + `"`
			}
			_, _, b := do(t, base, call{method: "POST", path: "/rest/api/3/search/jql", body: body + "}"})
			for _, i := range b["issues"].([]any) {
				m := i.(map[string]any)
				if _, ok := m["key"]; ok {
					t.Errorf("issue without requested fields has key: %v", m)
				}
				seen = append(seen, m["id"].(string))
			}
			if b["isLast"] == true {
				break
			}
			token = b["nextPageToken"].(string)
		}
		if diff := cmp.Diff([]string{"10001", "10002", "10003"}, seen); diff != "" {
			t.Errorf("ids (-want +got):\n%s", diff)
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s, base := site(t, jiratest.Options{})
	s.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 1})
	st, h, b := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("x")})
	if st != 429 || h.Get("Retry-After") != "2" || h.Get("X-RateLimit-Reset") == "" || len(b["errorMessages"].([]any)) == 0 {
		t.Errorf("429 fault: %d %v %v", st, h, b)
	}
	if st, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("x")}); st != 201 {
		t.Errorf("after Times=1 fault: %d", st)
	}
	remove := s.AddFault(jiratest.Fault{Path: "/rest/api/3/issue", Status: 503})
	for range 2 {
		if st, _, _ := do(t, base, call{method: "GET", path: "/rest/api/3/issue/SPOT-1"}); st != 503 {
			t.Errorf("503 fault: %d", st)
		}
	}
	remove()
	// Applied but response lost: the issue exists, the client sees an error.
	s.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue", DropResponse: true, Times: 1})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/rest/api/3/issue", strings.NewReader(createBody("lost")))
	req.Header.Set("Content-Type", "application/json")
	basic(req)
	if resp, err := testClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped response answered %d", resp.StatusCode)
	}
	if n := s.IssueCount(); n != 2 {
		t.Errorf("IssueCount = %d, want 2 (the dropped create applied)", n)
	}
	if n := s.Requests("POST /rest/api/3/issue"); n != 3 {
		t.Errorf("Requests(POST issue) = %d, want 3", n)
	}
	// Latency is cut short by the client's context.
	s.AddFault(jiratest.Fault{Method: "GET", Latency: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/rest/api/3/issue/SPOT-1", nil)
	basic(req)
	if _, err := testClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("latency fault: err = %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	_, base := site(t, jiratest.Options{RatePerSecond: 1, Burst: 2, Now: func() time.Time { return now }})
	var codes []int
	for range 3 {
		st, h, _ := do(t, base, call{method: "GET", path: "/rest/api/3/myself"})
		codes = append(codes, st)
		if st == 429 && h.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q", h.Get("Retry-After"))
		}
	}
	if diff := cmp.Diff([]int{200, 200, 429}, codes); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
}

func TestCloudIDPrefix(t *testing.T) {
	t.Parallel()
	_, base := site(t, jiratest.Options{CloudID: "11223344-a1b2"})
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+jiratest.DefaultBearerToken) }
	if st, _, b := do(t, base, call{method: "POST", path: "/ex/jira/11223344-a1b2/rest/api/3/issue", body: createBody("x"), auth: bearer}); st != 201 {
		t.Errorf("create via api.atlassian.com path = %d %v", st, b)
	}
	if st, _, _ := do(t, base, call{method: "GET", path: "/ex/jira/other/rest/api/3/issue/SPOT-1", auth: bearer}); st != 404 {
		t.Errorf("other cloud id = %d, want 404", st)
	}
}

// hook records webhook deliveries.
type hook struct {
	mu   sync.Mutex
	reqs []delivered
	code int
}

type delivered struct {
	header http.Header
	body   []byte
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.reqs = append(h.reqs, delivered{r.Header.Clone(), b})
	code := h.code
	h.mu.Unlock()
	if code == 0 {
		code = 200
	}
	w.WriteHeader(code)
}

func (h *hook) all() []delivered {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivered(nil), h.reqs...)
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	rec := &hook{code: 500}
	hs := httptest.NewServer(rec)
	t.Cleanup(hs.Close)
	s, base := site(t, jiratest.Options{WebhookURL: hs.URL, WebhookSecret: "It's a Secret to Everybody"})
	if st, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue", body: createBody("x")}); st != 201 {
		t.Fatal("create failed")
	}
	if st, _, _ := do(t, base, call{method: "POST", path: "/rest/api/3/issue/SPOT-1/transitions", body: `{"transition":{"id":"21"}}`}); st != 204 {
		t.Fatal("transition failed")
	}
	if err := s.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	var events []string
	for _, d := range got {
		if sig := d.header.Get("X-Hub-Signature"); sig != jiratest.Sign("It's a Secret to Everybody", d.body) {
			t.Errorf("signature %q does not match body", sig)
		}
		var p struct {
			WebhookEvent string `json:"webhookEvent"`
			User         struct{ AccountID string }
			Changelog    struct{ Items []jiratest.ChangelogItem }
		}
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.User.AccountID != jiratest.DefaultAccountID {
			t.Errorf("user.accountId = %q", p.User.AccountID)
		}
		events = append(events, p.WebhookEvent)
		if p.WebhookEvent == jiratest.EventIssueUpdated {
			want := []jiratest.ChangelogItem{{Field: "status", FieldType: "jira", FieldID: "status", From: "10000", FromString: "To Do", To: "10001", ToString: "In Progress"}}
			if diff := cmp.Diff(want, p.Changelog.Items); diff != "" {
				t.Errorf("changelog (-want +got):\n%s", diff)
			}
		}
	}
	// Deliveries are asynchronous, so their order is not guaranteed.
	if !(cmp.Equal(events, []string{jiratest.EventIssueCreated, jiratest.EventIssueUpdated}) || cmp.Equal(events, []string{jiratest.EventIssueUpdated, jiratest.EventIssueCreated})) {
		t.Errorf("events = %v", events)
	}
	if ds := s.Deliveries(); len(ds) != 2 || ds[0].Status != 500 {
		t.Errorf("Deliveries = %+v", ds)
	}

	// Manual send + Resend keeps identifier, body and signature.
	rec2 := &hook{}
	hs2 := httptest.NewServer(rec2)
	t.Cleanup(hs2.Close)
	d, err := s.SendWebhook(t.Context(), hs2.URL, "", jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: "SPOT-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resend(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	two := rec2.all()
	if len(two) != 2 {
		t.Fatalf("%d deliveries", len(two))
	}
	id := two[0].header.Get("X-Atlassian-Webhook-Identifier")
	if id == "" || two[1].header.Get("X-Atlassian-Webhook-Identifier") != id || !bytes.Equal(two[0].body, two[1].body) {
		t.Errorf("resend changed identity: %q vs %q", id, two[1].header.Get("X-Atlassian-Webhook-Identifier"))
	}
	if two[0].header.Get("X-Hub-Signature") != "" {
		t.Errorf("unsigned delivery carries X-Hub-Signature")
	}
	if two[0].header.Get("X-Atlassian-Webhook-Retry") != "" || two[1].header.Get("X-Atlassian-Webhook-Retry") != "1" {
		t.Errorf("retry headers %q, %q", two[0].header.Get("X-Atlassian-Webhook-Retry"), two[1].header.Get("X-Atlassian-Webhook-Retry"))
	}
}

// testClient has a transport of its own: an httptest.Server closing in a
// parallel test closes http.DefaultTransport's idle connections, which can
// break a request about to reuse one.
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
