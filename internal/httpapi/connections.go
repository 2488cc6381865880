package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// ConnectionDeps is what the connection, OAuth callback and provider-credential endpoints need; cmd/gateway fills it in.
type ConnectionDeps struct{}

// The calendar connections and the Google OAuth callback (issue: credentials).
// Not implemented yet: each answers 501 problem+json.

// ListConnections answers 501 until it is implemented.
func (s *Server) ListConnections(ctx context.Context, request api.ListConnectionsRequestObject) (api.ListConnectionsResponseObject, error) {
	return nil, ErrNotImplemented
}

// DeleteCalDAVConnection answers 501 until it is implemented.
func (s *Server) DeleteCalDAVConnection(ctx context.Context, request api.DeleteCalDAVConnectionRequestObject) (api.DeleteCalDAVConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// CreateCalDAVConnection answers 501 until it is implemented.
func (s *Server) CreateCalDAVConnection(ctx context.Context, request api.CreateCalDAVConnectionRequestObject) (api.CreateCalDAVConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// UpdateCalDAVConnection answers 501 until it is implemented.
func (s *Server) UpdateCalDAVConnection(ctx context.Context, request api.UpdateCalDAVConnectionRequestObject) (api.UpdateCalDAVConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// DeleteGoogleConnection answers 501 until it is implemented.
func (s *Server) DeleteGoogleConnection(ctx context.Context, request api.DeleteGoogleConnectionRequestObject) (api.DeleteGoogleConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// StartGoogleConnection answers 501 until it is implemented.
func (s *Server) StartGoogleConnection(ctx context.Context, request api.StartGoogleConnectionRequestObject) (api.StartGoogleConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// UpdateGoogleConnection answers 501 until it is implemented.
func (s *Server) UpdateGoogleConnection(ctx context.Context, request api.UpdateGoogleConnectionRequestObject) (api.UpdateGoogleConnectionResponseObject, error) {
	return nil, ErrNotImplemented
}

// GoogleOAuthCallback answers 501 until it is implemented.
func (s *Server) GoogleOAuthCallback(ctx context.Context, request api.GoogleOAuthCallbackRequestObject) (api.GoogleOAuthCallbackResponseObject, error) {
	return nil, ErrNotImplemented
}
