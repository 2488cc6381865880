package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/webhooks"
)

// The webhook endpoints of the strict interface. The intake
// (webhooks.Service.Mount, added to Deps.Mount by cmd/gateway) registers
// raw-body handlers over these routes; these methods answer only when the
// intake is not wired.

// ReceiveGoogleWebhook answers 501: the intake is not wired.
func (s *Server) ReceiveGoogleWebhook(ctx context.Context, request api.ReceiveGoogleWebhookRequestObject) (api.ReceiveGoogleWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}

// ReceiveJiraWebhook answers 501: the intake is not wired.
func (s *Server) ReceiveJiraWebhook(ctx context.Context, request api.ReceiveJiraWebhookRequestObject) (api.ReceiveJiraWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}

// ReceiveZoomWebhook answers 501: the intake is not wired.
func (s *Server) ReceiveZoomWebhook(ctx context.Context, request api.ReceiveZoomWebhookRequestObject) (api.ReceiveZoomWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}

// WebhookErrors maps the intake's errors to problems: every 401 is the same
// invalid-signature problem and every 400 the same malformed-request problem,
// whatever the reason (which goes to the metrics, never to the caller).
func WebhookErrors(err error) *Error {
	var re *webhooks.RejectError
	if errors.As(err, &re) {
		switch re.Status {
		case http.StatusUnauthorized:
			return &Error{Status: http.StatusUnauthorized, Slug: "invalid-signature", Title: "Unauthorized",
				Detail: "The delivery could not be verified.", Err: err}
		case http.StatusRequestEntityTooLarge:
			e := NewError(http.StatusRequestEntityTooLarge, "The request body is too large.")
			e.Err = err
			return e
		default:
			e := NewError(http.StatusBadRequest, "The delivery is malformed.")
			e.Err = err
			return e
		}
	}
	if errors.Is(err, webhooks.ErrClosed) {
		e := NewError(http.StatusServiceUnavailable, "The gateway is shutting down; retry later.")
		e.Err = err
		return e
	}
	return nil
}
