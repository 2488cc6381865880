package zoom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/spotlight/gateway/integrations/outbound"
)

// DefaultTokenMargin is how long before expiry a cached token is replaced.
const DefaultTokenMargin = 5 * time.Minute

// tokenFetchTimeout bounds one token request; it runs detached from the
// caller that started it so other waiters are not failed by its cancellation.
const tokenFetchTimeout = 30 * time.Second

// TokenSource fetches Server-to-Server OAuth access tokens
// (POST /oauth/token?grant_type=account_credentials&account_id=… with Basic
// client_id:client_secret), caches the current one until shortly before it
// expires and lets concurrent callers share a single fetch. It is safe for
// concurrent use.
type TokenSource struct {
	creds    CredentialsFunc
	http     *http.Client
	tokenURL string
	now      func() time.Time
	margin   time.Duration

	group singleflight.Group

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// TokenOption configures a TokenSource.
type TokenOption func(*TokenSource)

// WithTokenURL sets the token endpoint (default https://zoom.us/oauth/token).
func WithTokenURL(u string) TokenOption { return func(t *TokenSource) { t.tokenURL = u } }

// WithTokenClock sets the clock used for expiry.
func WithTokenClock(now func() time.Time) TokenOption { return func(t *TokenSource) { t.now = now } }

// WithTokenMargin sets how long before expiry a token is replaced (default
// 5 minutes).
func WithTokenMargin(d time.Duration) TokenOption { return func(t *TokenSource) { t.margin = d } }

// NewTokenSource returns a token source using creds and hc.
func NewTokenSource(creds CredentialsFunc, hc *http.Client, opts ...TokenOption) *TokenSource {
	t := &TokenSource{creds: creds, http: hc, tokenURL: DefaultOAuthURL + "/oauth/token", now: time.Now, margin: DefaultTokenMargin}
	for _, o := range opts {
		o(t)
	}
	if t.http == nil {
		t.http = outbound.NewClient(outbound.Config{Provider: Provider})
	}
	return t
}

// Token returns a valid access token, fetching one if none is cached or the
// cached one expires within the margin.
func (t *TokenSource) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	if t.token != "" && t.now().Add(t.margin).Before(t.expiry) {
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	}
	t.mu.Unlock()

	ch := t.group.DoChan("token", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenFetchTimeout)
		defer cancel()
		return t.fetch(fctx)
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("zoom: token: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// Invalidate drops the cached token if it is tok (the API rejected it), so
// the next Token call fetches a new one.
func (t *TokenSource) Invalidate(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == tok {
		t.token, t.expiry = "", time.Time{}
	}
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

type oauthError struct {
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

func (t *TokenSource) fetch(ctx context.Context) (string, error) {
	// A fetch that started before another caller's check may already have
	// replaced the token.
	t.mu.Lock()
	if t.token != "" && t.now().Add(t.margin).Before(t.expiry) {
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	}
	t.mu.Unlock()

	const op = "token"
	cr, err := t.creds(ctx)
	if err != nil {
		return "", fmt.Errorf("zoom: token: credentials: %w", err)
	}
	q := url.Values{"grant_type": {"account_credentials"}, "account_id": {cr.AccountID}}
	// Issuing a token has no side effect worth guarding: safe to retry.
	ctx = outbound.WithRetrySafe(outbound.WithOperation(ctx, op))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.tokenURL+"?"+q.Encode(), http.NoBody)
	if err != nil {
		return "", fmt.Errorf("zoom: token: %w", err)
	}
	req.SetBasicAuth(cr.ClientID, cr.ClientSecret)
	req.Header.Set("Accept", "application/json")
	resp, err := t.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("zoom: token: %w", transportError(op, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("zoom: token: %w", transportError(op, err))
	}
	if resp.StatusCode != http.StatusOK {
		var oe oauthError
		_ = json.Unmarshal(b, &oe)
		e := outbound.NewError(Provider, op, resp, oe.Error, oe.Reason)
		e.RetryAfter = outbound.ParseRetryAfter(resp.Header, t.now())
		if oe.Error == "invalid_client" || oe.Error == "invalid_request" || resp.StatusCode == http.StatusUnauthorized {
			e.Err = ErrInvalidCredentials
		}
		return "", fmt.Errorf("zoom: token: %w", e)
	}
	var tr tokenResponse
	if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("zoom: token: %w", &outbound.Error{Provider: Provider, Operation: op, Status: resp.StatusCode,
			Message: "malformed token response", Class: outbound.Transient, Err: errors.Join(err, errors.New("no access_token"))})
	}
	t.mu.Lock()
	t.token = tr.AccessToken
	t.expiry = t.now().Add(time.Duration(tr.ExpiresIn) * time.Second)
	t.mu.Unlock()
	return tr.AccessToken, nil
}
