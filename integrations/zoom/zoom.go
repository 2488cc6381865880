// Package zoom is the gateway's client for the Zoom REST API v2: a
// Server-to-Server OAuth token source and the meeting operations the booking
// flow needs (create, get, update, delete, list a user's upcoming meetings),
// with duplicate-safe creation keyed by booking id.
//
// Every call goes over HTTP through the shared outbound transport (timeouts,
// retries, rate limiting, circuit breaker, metrics). Failures are returned
// wrapped around an *outbound.Error carrying Zoom's error code and message;
// the sentinels below are its causes, so both
//
//	errors.Is(err, zoom.ErrMeetingNotFound)
//	errors.As(err, &oe) // oe *outbound.Error: oe.Transient(), oe.RetryAfter
//
// work. See https://developers.zoom.us/docs/api/meetings/ and
// https://developers.zoom.us/docs/internal-apps/s2s-oauth/. The zoomtest
// package simulates these endpoints.
package zoom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/outbound"
)

// Provider is the provider name used in metrics and errors.
const Provider = "zoom"

// Default endpoints of the real Zoom.
const (
	DefaultBaseURL  = "https://api.zoom.us"
	DefaultOAuthURL = "https://zoom.us"
)

const maxResponseBody = 4 << 20

// Causes of *outbound.Error values returned by the client; test with errors.Is.
var (
	// ErrMeetingNotFound: HTTP 404 / Zoom code 3001, or no meeting carries
	// the booking's marker (FindMeeting).
	ErrMeetingNotFound = errors.New("zoom: meeting not found")
	// ErrUserNotFound: Zoom code 1001.
	ErrUserNotFound = errors.New("zoom: user not found")
	// ErrInvalidCredentials: the token endpoint rejected the client id,
	// secret or account id.
	ErrInvalidCredentials = errors.New("zoom: invalid credentials")
	// ErrUnauthorized: the API kept answering code 124 (invalid access
	// token) after the token was fetched again.
	ErrUnauthorized = errors.New("zoom: unauthorized")
	// ErrRateLimited: HTTP 429; the *outbound.Error carries RetryAfter.
	ErrRateLimited = errors.New("zoom: rate limited")
)

// Credentials are the Server-to-Server OAuth app credentials of an account.
type Credentials struct {
	AccountID    string
	ClientID     string
	ClientSecret string
}

// CredentialsFunc supplies the current credentials; it is called whenever a
// new access token is needed, so rotated secrets are picked up.
type CredentialsFunc func(ctx context.Context) (Credentials, error)

// Client calls the Zoom API. It is safe for concurrent use.
type Client struct {
	http    *http.Client
	baseURL string
	logger  *slog.Logger
	now     func() time.Time
	tokens  *TokenSource

	oauthURL string
	creating keyLock // per user+booking, see CreateMeeting
	settle   time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client, normally built with
// outbound.NewClient(outbound.Config{Provider: zoom.Provider, …}). The
// default is such a client with default settings and no metrics.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithBaseURL sets the API base URL (default https://api.zoom.us; paths
// start with /v2).
func WithBaseURL(u string) Option { return func(c *Client) { c.baseURL = strings.TrimRight(u, "/") } }

// WithOAuthURL sets the OAuth base URL (default https://zoom.us; the token
// endpoint is /oauth/token).
func WithOAuthURL(u string) Option { return func(c *Client) { c.oauthURL = strings.TrimRight(u, "/") } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// WithClock sets the clock used for token expiry and Retry-After.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithCreateSettle sets how long CreateMeeting keeps looking for the meeting
// of a create whose outcome is unknown before creating another (default
// DefaultCreateSettle). See CreateMeeting.
func WithCreateSettle(d time.Duration) Option { return func(c *Client) { c.settle = d } }

// DefaultCreateSettle is the default of WithCreateSettle: a create Zoom
// received but had not answered when the client gave up normally shows in
// the meeting list within a few seconds.
const DefaultCreateSettle = 10 * time.Second

// WithTokenSource replaces the built-in token source (e.g. by one shared
// between clients).
func WithTokenSource(ts *TokenSource) Option { return func(c *Client) { c.tokens = ts } }

// New returns a Client that obtains tokens with the credentials from creds.
func New(creds CredentialsFunc, opts ...Option) *Client {
	c := &Client{baseURL: DefaultBaseURL, oauthURL: DefaultOAuthURL, now: time.Now, settle: DefaultCreateSettle}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = outbound.NewClient(outbound.Config{Provider: Provider})
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.tokens == nil {
		c.tokens = NewTokenSource(creds, c.http, WithTokenURL(c.oauthURL+"/oauth/token"), WithTokenClock(c.now))
	}
	return c
}

// Tokens returns the client's token source.
func (c *Client) Tokens() *TokenSource { return c.tokens }

// apiError is Zoom's error body.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// call describes one API request.
type call struct {
	op        string
	method    string
	path      string
	query     url.Values
	body      any
	retrySafe bool
}

// do sends a call with a bearer token and decodes a 2xx JSON answer into
// out (if non-nil). A 124 answer drops the token and retries once with a new
// one.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("zoom: %s: encode: %w", cl.op, err)
		}
	}
	ctx = outbound.WithOperation(ctx, cl.op)
	if cl.retrySafe {
		ctx = outbound.WithRetrySafe(ctx)
	}
	u := c.baseURL + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	for try := 0; ; try++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return err
		}
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
		if err != nil {
			return fmt.Errorf("zoom: %s: %w", cl.op, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("zoom: %s: %w", cl.op, transportError(cl.op, err))
		}
		err = c.checkResponse(cl.op, resp, out)
		resp.Body.Close()
		var oe *outbound.Error
		if try == 0 && errors.As(err, &oe) && oe.Status == http.StatusUnauthorized && oe.Code == "124" {
			c.logger.InfoContext(ctx, "zoom access token rejected; fetching a new one", "provider", Provider, "operation", cl.op)
			c.tokens.Invalidate(tok)
			continue
		}
		if err != nil && errors.As(err, &oe) && oe.Status == http.StatusUnauthorized && oe.Code == "124" {
			oe.Err = ErrUnauthorized
		}
		if err != nil {
			return fmt.Errorf("zoom: %s: %w", cl.op, err)
		}
		return nil
	}
}

// transportError makes sure a failed round trip is an *outbound.Error even
// when the HTTP client is not an outbound one.
func transportError(op string, err error) error {
	var oe *outbound.Error
	if errors.As(err, &oe) {
		return err
	}
	return &outbound.Error{Provider: Provider, Operation: op, Class: outbound.Transient, Err: err}
}

// checkResponse decodes a 2xx answer into out or turns an error answer
// into an *outbound.Error with Zoom's code and message.
func (c *Client) checkResponse(op string, resp *http.Response, out any) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if out == nil || resp.StatusCode == http.StatusNoContent {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			return nil
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
			return &outbound.Error{Provider: Provider, Operation: op, Status: resp.StatusCode,
				Message: "malformed response", Class: outbound.Transient, Err: err}
		}
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae apiError
	_ = json.Unmarshal(b, &ae)
	code := ""
	if ae.Code != 0 {
		code = strconv.Itoa(ae.Code)
	}
	e := outbound.NewError(Provider, op, resp, code, ae.Message)
	e.RetryAfter = outbound.ParseRetryAfter(resp.Header, c.now())
	switch {
	case ae.Code == 3001 || (resp.StatusCode == http.StatusNotFound && strings.Contains(op, "meeting") && ae.Code != 1001):
		e.Err = ErrMeetingNotFound
	case ae.Code == 1001:
		e.Err = ErrUserNotFound
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Err = ErrRateLimited
	}
	return e
}
