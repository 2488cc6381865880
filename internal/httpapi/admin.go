package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// The admin operations: webhook events and provider credentials.
// Not implemented yet: each answers 501 problem+json.

// GetProviderCredentials answers 501 until it is implemented.
func (s *Server) GetProviderCredentials(ctx context.Context, request api.GetProviderCredentialsRequestObject) (api.GetProviderCredentialsResponseObject, error) {
	return nil, ErrNotImplemented
}

// PutProviderCredentials answers 501 until it is implemented.
func (s *Server) PutProviderCredentials(ctx context.Context, request api.PutProviderCredentialsRequestObject) (api.PutProviderCredentialsResponseObject, error) {
	return nil, ErrNotImplemented
}

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
