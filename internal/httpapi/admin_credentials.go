package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// The provider-credentials admin operations (issue: credentials).
// Not implemented yet: each answers 501 problem+json.

// GetProviderCredentials answers 501 until it is implemented.
func (s *Server) GetProviderCredentials(ctx context.Context, request api.GetProviderCredentialsRequestObject) (api.GetProviderCredentialsResponseObject, error) {
	return nil, ErrNotImplemented
}

// PutProviderCredentials answers 501 until it is implemented.
func (s *Server) PutProviderCredentials(ctx context.Context, request api.PutProviderCredentialsRequestObject) (api.PutProviderCredentialsResponseObject, error) {
	return nil, ErrNotImplemented
}
