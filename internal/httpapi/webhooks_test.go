package httpapi_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/webhooks"
)

func TestWebhookErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err          error
		status       int
		slug, detail string
	}{
		{&webhooks.RejectError{Provider: "zoom", Status: 401, Reason: "stale_timestamp"}, 401, "invalid-signature", "The delivery could not be verified."},
		{&webhooks.RejectError{Provider: "jira", Status: 401, Reason: "bad_signature", Err: webhooks.ErrSignature}, 401, "invalid-signature", "The delivery could not be verified."},
		{&webhooks.RejectError{Provider: "zoom", Status: 413, Reason: "too_large"}, 413, "payload-too-large", "The request body is too large."},
		{&webhooks.RejectError{Provider: "google", Status: 400, Reason: "bad_state"}, 400, "bad-request", "The delivery is malformed."},
		{webhooks.ErrClosed, 503, "unavailable", "The gateway is shutting down; retry later."},
	}
	for _, tt := range tests {
		e := httpapi.WebhookErrors(tt.err)
		if e == nil || e.Status != tt.status || e.Slug != tt.slug || e.Detail != tt.detail || !errors.Is(e, tt.err) {
			t.Errorf("WebhookErrors(%v) = %+v", tt.err, e)
		}
	}
	if e := httpapi.WebhookErrors(errors.New("other")); e != nil {
		t.Errorf("unrelated error mapped: %+v", e)
	}
}

// Without the webhooks area wired, the admin endpoints answer 501 (after
// authentication) and the intake routes the generated 501.
func TestWebhookEndpointsNotWired(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	admin := en.token(t, "ops", "admin")
	for _, c := range []struct{ method, path, token string }{
		{http.MethodGet, "/v1/admin/webhook-events", admin},
		{http.MethodGet, "/v1/admin/webhook-events/2d4e6f80-1a3c-4b5d-8e7f-9a0b1c2d3e4f", admin},
		{http.MethodPost, "/v1/admin/webhook-events/2d4e6f80-1a3c-4b5d-8e7f-9a0b1c2d3e4f/replay", admin},
		{http.MethodPost, "/webhooks/zoom", ""},
	} {
		resp, body := en.do(t, c.method, c.path, c.token, `{"event":"meeting.started"}`)
		if resp.StatusCode != http.StatusNotImplemented {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
}
