// Package jira is a client for the Jira Cloud platform REST API v3, as the
// gateway uses it to keep one Jira issue per booking: create an issue (with
// an Atlassian Document Format description, a booking label and optionally a
// booking-id custom field), read and edit it, move it through the workflow by
// status name, comment on it, and search it by JQL, including the
// duplicate-safe EnsureIssue.
//
// Every request goes through the shared resilient transport
// (integrations/outbound): timeouts, retries of idempotent requests with
// backoff and Retry-After, rate limiting and a circuit breaker. Failed calls
// return a wrapped *outbound.Error whose Message is Jira's errorMessages and
// field errors (never credentials); a missing issue also matches ErrNotFound.
//
// Authentication is HTTP Basic with an Atlassian account email and API token
// (BasicAuth) or an OAuth 2.0 (3LO) bearer token (OAuth2). Both can be fed
// lazily from the secret store (BasicAuthFrom, OAuth2From). OAuth 2.0 apps
// call https://api.atlassian.com/ex/jira/{cloudId}: pass that with
// WithBaseURL and keep the site URL for browse links.
//
// The simulator in jira/jiratest implements the same wire protocol for tests.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/outbound"
)

// Provider is the provider name used in errors and metrics.
const Provider = "jira"

// Errors matched with errors.Is.
var (
	// ErrNotFound reports that the issue does not exist or the account
	// cannot see it (Jira answers both with 404).
	ErrNotFound = errors.New("jira: not found")
	// ErrNoTransition reports that the workflow offers no
	// transition to the requested status from its current status.
	ErrNoTransition = errors.New("jira: no transition to status")
	// ErrCredentials reports that credentials could not be obtained.
	ErrCredentials = errors.New("jira: credentials unavailable")
)

// Limits on how much of a response body is read.
const (
	maxResponseBody = 8 << 20
	maxErrorBody    = 64 << 10
)

// Client calls one Jira Cloud site. It is safe for concurrent use.
type Client struct {
	site         *url.URL // the site (https://example.atlassian.net), for browse links
	base         *url.URL // API base; the site unless WithBaseURL
	auth         Auth
	hc           *http.Client
	outCfg       outbound.Config
	log          *slog.Logger
	bookingField string
	sleep        func(ctx context.Context, d time.Duration) error
	maxWait      time.Duration
	userAgent    string
	settle       time.Duration
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the client send requests with hc instead of one built
// by outbound.NewClient. The caller is then responsible for retries.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("nil *http.Client")
		}
		c.hc = hc
		return nil
	}
}

// WithBaseURL sets the base the REST paths are appended to, when it differs
// from the site URL: https://api.atlassian.com/ex/jira/{cloudId} for OAuth 2.0
// (3LO), or a simulator.
func WithBaseURL(base string) Option {
	return func(c *Client) error {
		u, err := parseBase(base)
		if err != nil {
			return fmt.Errorf("base URL: %w", err)
		}
		c.base = u
		return nil
	}
}

// WithOutboundConfig sets the transport configuration used when no
// WithHTTPClient is given. Provider is forced to "jira". Its Sleep (if any)
// also paces EnsureIssue's own waits.
func WithOutboundConfig(cfg outbound.Config) Option {
	return func(c *Client) error {
		c.outCfg = cfg
		return nil
	}
}

// WithCreateSettle sets how long EnsureIssue keeps searching for the issue
// of a create whose outcome is unknown before creating another (default
// DefaultCreateSettle). See EnsureIssue.
func WithCreateSettle(d time.Duration) Option {
	return func(c *Client) error {
		c.settle = d
		return nil
	}
}

// DefaultCreateSettle is the default of WithCreateSettle: a create Jira
// received but had not answered when the client gave up normally shows in
// search within a few seconds.
const DefaultCreateSettle = 10 * time.Second

// WithLogger sets the logger (debug records of EnsureIssue decisions); nil
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		c.log = l
		return nil
	}
}

// WithBookingField names the custom field ("customfield_10050") that receives
// the booking id when IssueInput.BookingID is set, and that Issue.BookingID
// is read from.
func WithBookingField(fieldID string) Option {
	return func(c *Client) error {
		if !strings.HasPrefix(fieldID, "customfield_") {
			return fmt.Errorf("booking field %q is not a custom field id (customfield_NNNNN)", fieldID)
		}
		c.bookingField = fieldID
		return nil
	}
}

// New returns a client for the Jira Cloud site at siteURL
// ("https://example.atlassian.net").
func New(siteURL string, auth Auth, opts ...Option) (*Client, error) {
	site, err := parseBase(siteURL)
	if err != nil {
		return nil, fmt.Errorf("jira: site URL: %w", err)
	}
	if auth == nil {
		return nil, errors.New("jira: auth required")
	}
	c := &Client{site: site, base: site, auth: auth, maxWait: 10 * time.Second, userAgent: "spotlight-gateway", settle: DefaultCreateSettle}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("jira: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.outCfg.Provider = Provider
	if c.outCfg.Logger == nil {
		c.outCfg.Logger = c.log
	}
	if c.hc == nil {
		c.hc = outbound.NewClient(c.outCfg)
	}
	c.sleep = c.outCfg.Sleep
	if c.sleep == nil {
		c.sleep = sleep
	}
	if c.outCfg.MaxDelay > 0 {
		c.maxWait = c.outCfg.MaxDelay
	}
	return c, nil
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not allowed; use an Auth")
	}
	return u, nil
}

// BrowseURL returns the link a person opens to see the issue.
func (c *Client) BrowseURL(key string) string {
	return c.site.JoinPath("browse", key).String()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Auth authorizes requests. Build one with BasicAuth, BasicAuthFrom, OAuth2
// or OAuth2From. Its String never shows the secret.
type Auth interface {
	authorize(ctx context.Context, r *http.Request) error
	fmt.Stringer
}

// BasicCredentials are an Atlassian account email and API token.
type BasicCredentials struct {
	Email    string
	APIToken string
}

// String hides the token.
func (b BasicCredentials) String() string { return "jira.BasicCredentials{" + b.Email + ", REDACTED}" }

// LogValue hides the token from slog.
func (b BasicCredentials) LogValue() slog.Value { return slog.StringValue(b.String()) }

type basicAuth struct {
	get func(ctx context.Context) (BasicCredentials, error)
}

// BasicAuth authenticates with a fixed email and API token.
func BasicAuth(email, apiToken string) Auth {
	creds := BasicCredentials{Email: email, APIToken: apiToken}
	return basicAuth{get: func(context.Context) (BasicCredentials, error) { return creds, nil }}
}

// BasicAuthFrom authenticates with credentials fetched by get for every
// request (get should cache; the secret store does).
func BasicAuthFrom(get func(ctx context.Context) (BasicCredentials, error)) Auth {
	return basicAuth{get: get}
}

func (a basicAuth) authorize(ctx context.Context, r *http.Request) error {
	creds, err := a.get(ctx)
	if err != nil {
		return err
	}
	if creds.Email == "" || creds.APIToken == "" {
		return errors.New("empty email or API token")
	}
	r.SetBasicAuth(creds.Email, creds.APIToken)
	return nil
}

func (a basicAuth) String() string { return "jira.BasicAuth(REDACTED)" }

type bearerAuth struct {
	get func(ctx context.Context) (*oauth2.Token, error)
}

// OAuth2 authenticates with bearer tokens from ts (wrap it in
// oauth2.ReuseTokenSource to cache them).
func OAuth2(ts oauth2.TokenSource) Auth {
	return bearerAuth{get: func(context.Context) (*oauth2.Token, error) { return ts.Token() }}
}

// OAuth2From authenticates with bearer tokens fetched by get for every
// request.
func OAuth2From(get func(ctx context.Context) (*oauth2.Token, error)) Auth {
	return bearerAuth{get: get}
}

func (a bearerAuth) authorize(ctx context.Context, r *http.Request) error {
	tok, err := a.get(ctx)
	if err != nil {
		return err
	}
	if tok == nil || tok.AccessToken == "" {
		return errors.New("empty access token")
	}
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return nil
}

func (a bearerAuth) String() string { return "jira.OAuth2(REDACTED)" }

// errorBody is Jira's error response.
type errorBody struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

func (e errorBody) message() string {
	parts := slices.Clone(e.ErrorMessages)
	for _, k := range slices.Sorted(maps.Keys(e.Errors)) {
		parts = append(parts, k+": "+e.Errors[k])
	}
	return strings.Join(parts, "; ")
}

// do sends one request to path (relative to the API base) and decodes a 2xx
// JSON answer into out. Failures are *outbound.Error.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	ctx = outbound.WithOperation(ctx, op)
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.auth.authorize(ctx, req); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var oe *outbound.Error
		if errors.As(err, &oe) {
			return oe
		}
		// A client from WithHTTPClient: classify here. The *url.Error names
		// the URL, which never holds credentials (parseBase refuses them).
		return &outbound.Error{Provider: Provider, Operation: op, Class: outbound.Transient, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return checkResponse(op, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return &outbound.Error{Provider: Provider, Operation: op, Status: resp.StatusCode,
			Message: "undecodable response", Class: outbound.Transient, Err: err}
	}
	return nil
}

// checkResponse turns a non-2xx response into an *outbound.Error carrying
// Jira's messages.
func checkResponse(op string, resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb errorBody
	msg := ""
	if json.Unmarshal(raw, &eb) == nil {
		msg = eb.message()
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e := outbound.NewError(Provider, op, resp, "", msg)
	if resp.StatusCode == http.StatusNotFound {
		e.Err = ErrNotFound
	}
	return e
}
