package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// The webhook endpoints of the strict interface; the intake mounts raw-body handlers over these routes.
// Not implemented yet: each answers 501 problem+json.

// ReceiveGoogleWebhook answers 501 until it is implemented.
func (s *Server) ReceiveGoogleWebhook(ctx context.Context, request api.ReceiveGoogleWebhookRequestObject) (api.ReceiveGoogleWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}

// ReceiveJiraWebhook answers 501 until it is implemented.
func (s *Server) ReceiveJiraWebhook(ctx context.Context, request api.ReceiveJiraWebhookRequestObject) (api.ReceiveJiraWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}

// ReceiveZoomWebhook answers 501 until it is implemented.
func (s *Server) ReceiveZoomWebhook(ctx context.Context, request api.ReceiveZoomWebhookRequestObject) (api.ReceiveZoomWebhookResponseObject, error) {
	return nil, ErrNotImplemented
}
