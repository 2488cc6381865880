package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoToken is returned by a request whose token source gave an empty token:
// the request is not sent, as the gateway would only answer 401.
var ErrNoToken = errors.New("client: empty bearer token")

// TokenSource returns the access token to send with a request. It is called
// for every request, so it can return a cached token and fetch a new one
// (Cognito's client-credentials grant) shortly before the old one expires.
type TokenSource func(ctx context.Context) (string, error)

// WithBearerToken sends token as `Authorization: Bearer <token>` with every
// request: for a token that outlives the client, such as a dev token.
func WithBearerToken(token string) ClientOption {
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource sends the token src returns as `Authorization: Bearer
// <token>` with every request. An error from src fails the request before it
// is sent, wrapped; so does an empty token (ErrNoToken).
func WithTokenSource(src TokenSource) ClientOption {
	return WithRequestEditorFn(func(ctx context.Context, req *http.Request) error {
		token, err := src(ctx)
		if err != nil {
			return fmt.Errorf("client: bearer token: %w", err)
		}
		if token == "" {
			return ErrNoToken
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}
