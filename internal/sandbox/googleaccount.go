package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// Google account control: a user removes the app's access to their Google
// account (Google Account settings, Third-party apps & services, "Delete
// all connections"), so that the gateway meets a revoked grant on its next
// Google call. It is served on the sandbox Google's address, keyed by
// account:
//
//	POST GoogleAccountsPath + "{email}/revoke"
//
// It revokes every grant of the account in the simulator
// (gcaltest.Server.RevokeUser): refreshes answer invalid_grant and the
// access tokens issued so far answer 401, as Google's do after the user
// removes access.
const GoogleAccountsPath = "/_sandbox/google/accounts/"

// GoogleRevoke is the Google account action that revokes the app's access.
const GoogleRevoke = "revoke"

// GoogleRevokeResult is the answer of the revoke control.
type GoogleRevokeResult struct {
	Account string `json:"account"`
	Action  string `json:"action"`
}

// googleAccounts performs the Google account control in the simulator.
type googleAccounts struct{ sim *gcaltest.Server }

// serve handles POST GoogleAccountsPath + "{email}/revoke" (see route.act).
func (h *googleAccounts) serve(_ *http.Request, rest string, body []byte) (any, int, string) {
	email, action, ok := strings.Cut(rest, "/")
	if !ok || email == "" || action != GoogleRevoke {
		return nil, http.StatusNotFound, "Use POST " + GoogleAccountsPath + "{email}/revoke."
	}
	if err := decodeControl(body, &struct{}{}); err != nil {
		return nil, http.StatusBadRequest, "The body of a revoke control is empty: " + err.Error()
	}
	email = strings.ToLower(email)
	if !slices.Contains(GoogleUsers, email) {
		return nil, http.StatusNotFound, fmt.Sprintf("The sandbox Google has no account %q; its accounts are %s.", email, strings.Join(GoogleUsers, ", "))
	}
	h.sim.RevokeUser(email)
	return GoogleRevokeResult{Account: email, Action: "revoked"}, http.StatusOK, ""
}
