package sandbox

import (
	"fmt"
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

// jiraHost performs the person controls of the sandbox Jira.
type jiraHost struct {
	sim         *jiratest.Server
	url, secret string
}

// serve handles POST JiraHostPath + "{issueKey}/status" (see control.act).
func (h *jiraHost) serve(r *http.Request, rest string, body []byte) (any, int, string) {
	key, action, ok := strings.Cut(rest, "/")
	if !ok || key == "" || action != "status" {
		return nil, http.StatusNotFound, "Use POST " + JiraHostPath + "{issueKey}/status with {\"status\": \"…\"}."
	}
	var in JiraStatusRequest
	if err := decodeControl(body, &in); err != nil || in.Status == "" {
		return nil, http.StatusBadRequest, "The body must be {\"status\": \"…\"}, the status to move the issue to."
	}
	if _, found := h.sim.Issue(key); !found {
		return nil, http.StatusNotFound, fmt.Sprintf("The sandbox Jira has no issue %s.", key)
	}
	changes, err := h.sim.SetStatus(key, in.Status)
	if err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	ev := jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: key, AccountID: JiraPersonAccountID, Changelog: changes}
	if _, err := h.sim.SendWebhook(r.Context(), h.url, h.secret, ev); err != nil {
		return nil, http.StatusBadGateway, fmt.Sprintf("The gateway did not take the %s webhook: %v", ev.Type, err)
	}
	return JiraStatusResult{IssueKey: key, Event: ev.Type, Status: in.Status}, http.StatusOK, ""
}
