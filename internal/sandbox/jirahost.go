package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
)

// JiraHostPath is the path of the sandbox Jira's person controls, on the
// Jira simulator's address: POST JiraHostPath + "{issueKey}/status" with
// {"status": "…"}. Real Jira has no such endpoint; the sandbox serves it so
// that a developer can play a person who moves a booking's issue in Jira's
// UI (to the cancel status, say) and watch the gateway receive the signed
// jira:issue_updated webhook Jira would send for it.
const JiraHostPath = "/_sandbox/jira/issues/"

// JiraPersonAccountID is the account the person controls act as: not the
// gateway's own account, whose changes the gateway recognises as its own
// and ignores.
const JiraPersonAccountID = "sandbox-person"

// JiraStatusRequest is the JSON body of a person control.
type JiraStatusRequest struct {
	// Status is the status to move the issue to ("Cancelled").
	Status string `json:"status"`
}

// JiraStatusResult is the answer of a person control: the webhook the
// gateway accepted (a 2xx). When the gateway refuses it or cannot be
// reached the control answers 502.
type JiraStatusResult struct {
	IssueKey string `json:"issue_key"`
	Event    string `json:"event"`
	Status   string `json:"status"`
}

// jiraHost serves the person controls and passes everything else to the
// simulator.
type jiraHost struct {
	sim         *jiratest.Server
	url, secret string
}

func (h *jiraHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, JiraHostPath)
	if !ok {
		h.sim.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		hostProblem(w, http.StatusMethodNotAllowed, "Person controls are POST requests.")
		return
	}
	key, action, ok := strings.Cut(rest, "/")
	if !ok || key == "" || action != "status" {
		hostProblem(w, http.StatusNotFound, "Use POST "+JiraHostPath+"{issueKey}/status with {\"status\": \"…\"}.")
		return
	}
	var in JiraStatusRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&in)
	}
	if err != nil || in.Status == "" {
		hostProblem(w, http.StatusBadRequest, "The body must be {\"status\": \"…\"}, the status to move the issue to.")
		return
	}
	if h.url == "" {
		hostProblem(w, http.StatusServiceUnavailable, "The sandbox Jira has no webhook endpoint configured.")
		return
	}
	if _, found := h.sim.Issue(key); !found {
		hostProblem(w, http.StatusNotFound, fmt.Sprintf("The sandbox Jira has no issue %s.", key))
		return
	}
	changes, err := h.sim.SetStatus(key, in.Status)
	if err != nil {
		hostProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: key, AccountID: JiraPersonAccountID, Changelog: changes}
	if _, err := h.sim.SendWebhook(r.Context(), h.url, h.secret, ev); err != nil {
		hostProblem(w, http.StatusBadGateway, fmt.Sprintf("The gateway did not take the %s webhook: %v", ev.Type, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(JiraStatusResult{IssueKey: key, Event: ev.Type, Status: in.Status})
}
