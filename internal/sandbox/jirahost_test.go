package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/internal/sandbox"
	"github.com/spotlight/gateway/webhooks"
)

// jiraReceiver verifies deliveries with the gateway's own verifier and
// records the accepted ones.
type jiraReceiver struct {
	mu     sync.Mutex
	events []map[string]any
}

func (j *jiraReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhooks.VerifyJira("jsec", body, r.Header.Get("X-Hub-Signature")); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	j.mu.Lock()
	j.events = append(j.events, ev)
	j.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// updates returns the jira:issue_updated deliveries received.
func (j *jiraReceiver) updates() []map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, ev := range j.events {
		if ev["webhookEvent"] == "jira:issue_updated" {
			out = append(out, ev)
		}
	}
	return out
}

// TestJiraPersonControls: the status control moves the issue in the
// simulator and sends a signed jira:issue_updated whose actor is not the
// gateway's account and whose changelog names the new status; mistakes get
// a problem and send nothing.
func TestJiraPersonControls(t *testing.T) {
	t.Parallel()
	rc := &jiraReceiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	env, err := sandbox.Start(t.Context(), sandbox.Options{JiraWebhookURL: hook.URL, JiraWebhookSecret: "jsec"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	jc, err := jira.New(env.URLs["jira"], jira.BasicAuth(sandbox.JiraEmail, sandbox.JiraAPIToken))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := jc.CreateIssue(t.Context(), jira.IssueInput{ProjectKey: sandbox.JiraProjectKey, IssueType: "Task", Summary: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	post := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return postControl(t, env.URLs["jira"]+sandbox.JiraHostPath+path, method, body)
	}

	if status, out := post(http.MethodPost, ref.Key+"/status", `{"status":"Cancelled"}`); status != http.StatusOK ||
		out["issue_key"] != ref.Key || out["event"] != "jira:issue_updated" {
		t.Fatalf("status control: %d %v", status, out)
	}
	issue, err := jc.GetIssue(t.Context(), ref.Key)
	if err != nil || issue.Status != "Cancelled" {
		t.Errorf("issue after the control: %+v %v", issue, err)
	}
	ups := rc.updates()
	if len(ups) != 1 {
		t.Fatalf("%d issue_updated deliveries, want 1", len(ups))
	}
	user, _ := ups[0]["user"].(map[string]any)
	items, _ := ups[0]["changelog"].(map[string]any)["items"].([]any)
	if user["accountId"] != sandbox.JiraPersonAccountID || len(items) != 1 ||
		items[0].(map[string]any)["field"] != "status" || items[0].(map[string]any)["toString"] != "Cancelled" {
		t.Errorf("delivery: user %v, changelog %v", user, items)
	}

	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"GET", http.MethodGet, ref.Key + "/status", "", http.StatusMethodNotAllowed},
		{"unknown action", http.MethodPost, ref.Key + "/assign", `{"status":"Done"}`, http.StatusNotFound},
		{"unknown issue", http.MethodPost, "SPOT-999/status", `{"status":"Done"}`, http.StatusNotFound},
		{"unknown status", http.MethodPost, ref.Key + "/status", `{"status":"Exploded"}`, http.StatusBadRequest},
		{"no status", http.MethodPost, ref.Key + "/status", `{}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, ref.Key + "/status", `{"status":"Done","by":"me"}`, http.StatusBadRequest},
	} {
		if status, out := post(tc.method, tc.path, tc.body); status != tc.want || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.want)
		}
	}
	if n := len(rc.updates()); n != 1 {
		t.Errorf("refused controls sent %d more deliveries", n-1)
	}
}
