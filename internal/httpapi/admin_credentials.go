package httpapi

import (
	"context"
	"net/http"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
)

// The provider-credentials admin operations: write-only storage of
// account-level provider secrets in the secret store, and a status that
// names the stored fields but never shows a value.

// credentialsAdmin checks that the caller is an admin.
func (s *Server) credentialsAdmin(ctx context.Context) error {
	if s.deps.Connections.Service == nil {
		return ErrNotImplemented
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return auth.ErrNoToken
	}
	if !p.IsAdmin() {
		return NewError(http.StatusForbidden, "Provider credentials are managed by admins.")
	}
	return nil
}

// GetProviderCredentials shows whether a provider's credentials are set, which fields and when.
func (s *Server) GetProviderCredentials(ctx context.Context, request api.GetProviderCredentialsRequestObject) (api.GetProviderCredentialsResponseObject, error) {
	if err := s.credentialsAdmin(ctx); err != nil {
		return nil, err
	}
	st, err := s.deps.Connections.Service.ProviderCredentialsStatus(ctx, string(request.Provider))
	if err != nil {
		return nil, connectError(err)
	}
	return api.GetProviderCredentials200JSONResponse{
		Provider: request.Provider, Set: st.Set, Fields: st.Fields, UpdatedAt: st.UpdatedAt,
	}, nil
}

// PutProviderCredentials stores a provider's credentials (write-only).
func (s *Server) PutProviderCredentials(ctx context.Context, request api.PutProviderCredentialsRequestObject) (api.PutProviderCredentialsResponseObject, error) {
	if err := s.credentialsAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.deps.Connections.Service.PutProviderCredentials(ctx, string(request.Provider), *request.Body); err != nil {
		return nil, connectError(err)
	}
	return api.PutProviderCredentials204Response{}, nil
}
