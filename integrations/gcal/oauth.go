package gcal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/endpoints"

	"github.com/spotlight/gateway/integrations/outbound"
)

// Google's OAuth endpoints besides the ones in oauth2.Endpoint.
const (
	RevokeURL   = "https://oauth2.googleapis.com/revoke"
	UserinfoURL = "https://openidconnect.googleapis.com/v1/userinfo"
)

// Scopes returns the OAuth scopes the gateway asks for: read the user's
// calendars (list, free/busy), write events, and the account email.
func Scopes() []string {
	return []string{
		"https://www.googleapis.com/auth/calendar.events",
		"https://www.googleapis.com/auth/calendar.readonly",
		"openid",
		"email",
	}
}

// OAuthConfig returns the OAuth 2.0 client configuration for Google with the
// calendar scopes. endpoint overrides Google's endpoint (the simulator's is
// gcaltest.Endpoint(url)). Ask for offline access with prompt=consent and
// PKCE: cfg.AuthCodeURL(state, oauth2.AccessTypeOffline,
// oauth2.SetAuthURLParam("prompt", "consent"), oauth2.S256ChallengeOption(verifier)).
func OAuthConfig(clientID, secret, redirectURL string, endpoint ...oauth2.Endpoint) *oauth2.Config {
	ep := endpoints.Google
	ep.AuthStyle = oauth2.AuthStyleInParams
	if len(endpoint) > 0 {
		ep = endpoint[0]
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURL,
		Endpoint: ep, Scopes: Scopes(),
	}
}

// AccountEmail returns the email of the account whose access token hc sends
// (hc is typically oauth2.NewClient(ctx, tokenSource)); userinfoURL defaults
// to UserinfoURL.
func AccountEmail(ctx context.Context, hc *http.Client, userinfoURL string) (string, error) {
	const op = "userinfo"
	if userinfoURL == "" {
		userinfoURL = UserinfoURL
	}
	req, err := http.NewRequestWithContext(outbound.WithOperation(ctx, op), http.MethodGet, userinfoURL, nil)
	if err != nil {
		return "", fmt.Errorf("gcal: userinfo: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fail(op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fail(op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("gcal: userinfo: %w", outbound.NewError(Provider, op, resp, errorReason(body), ""))
	}
	var info struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.Email == "" {
		return "", errors.New("gcal: userinfo: no email in answer")
	}
	return info.Email, nil
}

// Revoke revokes a refresh or access token at Google (the whole grant goes);
// a token Google no longer knows counts as revoked. revokeURL defaults to
// RevokeURL; hc needs no credentials.
func Revoke(ctx context.Context, hc *http.Client, revokeURL, token string) error {
	const op = "revoke"
	if revokeURL == "" {
		revokeURL = RevokeURL
	}
	form := url.Values{"token": {token}}.Encode()
	req, err := http.NewRequestWithContext(outbound.WithOperation(ctx, op), http.MethodPost, revokeURL, strings.NewReader(form))
	if err != nil {
		return fmt.Errorf("gcal: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return fail(op, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode == http.StatusBadRequest && e.Error == "invalid_token" {
		return nil
	}
	return fmt.Errorf("gcal: revoke: %w", outbound.NewError(Provider, op, resp, e.Error, ""))
}
