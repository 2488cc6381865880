package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// WebhookDeps is what the webhook-event admin endpoints need; cmd/gateway fills it in.
type WebhookDeps struct{}

// The webhook-event admin operations (issue: webhooks).
// Not implemented yet: each answers 501 problem+json.

// ListWebhookEvents answers 501 until it is implemented.
func (s *Server) ListWebhookEvents(ctx context.Context, request api.ListWebhookEventsRequestObject) (api.ListWebhookEventsResponseObject, error) {
	return nil, ErrNotImplemented
}

// GetWebhookEvent answers 501 until it is implemented.
func (s *Server) GetWebhookEvent(ctx context.Context, request api.GetWebhookEventRequestObject) (api.GetWebhookEventResponseObject, error) {
	return nil, ErrNotImplemented
}

// ReplayWebhookEvent answers 501 until it is implemented.
func (s *Server) ReplayWebhookEvent(ctx context.Context, request api.ReplayWebhookEventRequestObject) (api.ReplayWebhookEventResponseObject, error) {
	return nil, ErrNotImplemented
}
