// Package connect owns the users' provider connections and every
// third-party credential of the gateway:
//
//   - Google Calendar over OAuth 2.0 (authorization code with PKCE S256 and
//     a signed, single-use, expiring state bound to the user, completed by
//     that user's authenticated request when Google redirects to the web
//     app), with a token
//     source that persists rotated tokens, refreshes single-flight per user
//     in-process and under a database lease across replicas, tells a lost
//     refresh race from a revocation, and marks revoked connections
//     needs_reauth; push channels (events.watch) per connected calendar;
//   - Apple iCloud and other CalDAV servers (discovery proves the
//     credentials before anything is stored; every request goes through an
//     SSRF guard, see netguard);
//   - provider-level credentials (Zoom Server-to-Server OAuth, Jira, Google
//     client secret) set by admins, and the Zoom and Jira clients built on
//     them.
//
// Secrets live only in the secret store (secrets.Store): a user's token or
// CalDAV password at secrets.UserPath(prefix, env, sub, provider), provider
// credentials at secrets.ProviderPath(prefix, env, provider). The database
// holds the non-secret connection records, OAuth states, refresh leases and
// push channels (channel tokens only as SHA-256 hashes). Nothing here logs a
// secret: log records carry the user id, the provider and error texts, which
// never include credentials.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/connect/netguard"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
)

// Providers of user connections.
const (
	ProviderGoogle = "google"
	ProviderCalDAV = "caldav"
)

// Connection statuses.
const (
	StatusConnected   = "connected"
	StatusNeedsReauth = "needs_reauth"
	StatusError       = "error"
)

// Errors callers test with errors.Is. Their messages are safe to show to the
// user (they never contain a secret).
var (
	// ErrNotConnected means the user has no (usable) connection to the provider.
	ErrNotConnected = errors.New("connect: not connected")
	// ErrNeedsReauth means the provider revoked the grant or rejected the
	// stored password: the user must connect again.
	ErrNeedsReauth = errors.New("connect: the provider revoked access; reconnect")
	// ErrCalendarGone means the connection's calendar no longer exists (the
	// user deleted it, or it is no longer shared with the account): the
	// connection has status error until the user chooses another calendar.
	// It wraps ErrNotConnected.
	ErrCalendarGone = fmt.Errorf("%w: the connected calendar no longer exists; choose another calendar", ErrNotConnected)
	// ErrInvalidState means the OAuth state is forged, replayed, expired or
	// malformed. ErrStateForged, ErrStateReplayed and ErrStateExpired wrap it.
	ErrInvalidState = errors.New("connect: invalid OAuth state")
	// ErrStateForged: the signature does not match (tampered, another key or another user).
	ErrStateForged = fmt.Errorf("%w: signature mismatch", ErrInvalidState)
	// ErrStateReplayed: the state was already used or never issued.
	ErrStateReplayed = fmt.Errorf("%w: unknown or already used", ErrInvalidState)
	// ErrStateExpired: the state is older than its time to live.
	ErrStateExpired = fmt.Errorf("%w: expired", ErrInvalidState)
	// ErrStateOtherUser: an authenticated completion presented a state
	// issued to another user (left unused for its own user).
	ErrStateOtherUser = fmt.Errorf("%w: issued to another user", ErrInvalidState)
	// ErrStateNeedsUser: the gateway's unauthenticated callback was called
	// while Google redirects to the web app (GoogleConfig.RedirectURL), which
	// completes connections with the user's token.
	ErrStateNeedsUser = fmt.Errorf("%w: must be completed with its user's token", ErrInvalidState)
	// ErrAccessDenied means the user declined consent at the provider.
	ErrAccessDenied = errors.New("connect: access was not granted at the provider")
	// ErrMissingCode means the OAuth callback carried no authorization code.
	ErrMissingCode = errors.New("connect: the callback has no authorization code")
	// ErrTokenExchange means the provider refused or failed the code exchange.
	ErrTokenExchange = errors.New("connect: the provider did not exchange the authorization code")
	// ErrUnknownCalendar means the chosen calendar is not one of the account's
	// calendars that accept events.
	ErrUnknownCalendar = errors.New("connect: no such calendar in the connected account")
	// ErrUnknownBusyCalendar means a calendar chosen for busy time is not a
	// calendar of the connected account (Google: not in its calendar list;
	// CalDAV: not an event calendar of its home set). It wraps
	// ErrUnknownCalendar.
	ErrUnknownBusyCalendar = fmt.Errorf("%w: a busy calendar is not a calendar of the connected account", ErrUnknownCalendar)
	// ErrTooManyBusyCalendars means more than MaxBusyCalendars calendars were
	// chosen for busy time.
	ErrTooManyBusyCalendars = fmt.Errorf("connect: at most %d calendars count for busy time", MaxBusyCalendars)
	// ErrNoEventCalendar means the account has no calendar that accepts events.
	ErrNoEventCalendar = errors.New("connect: the account has no calendar that accepts events")
	// ErrInvalidServerURL means the CalDAV server URL is not acceptable.
	ErrInvalidServerURL = errors.New("connect: invalid CalDAV server URL")
	// ErrServerNotAllowed means the CalDAV server resolves to an address the
	// gateway refuses to reach (loopback, private, link-local, metadata).
	ErrServerNotAllowed = errors.New("connect: the CalDAV server address is not allowed (private, loopback, link-local or metadata)")
	// ErrCalDAVUnauthorized means the CalDAV server rejected the username or
	// app-specific password.
	ErrCalDAVUnauthorized = errors.New("connect: the CalDAV server rejected the username or password; " +
		"iCloud needs an app-specific password (appleid.apple.com → Sign-In and Security → App-Specific Passwords), not the Apple ID password")
	// ErrDiscovery means the server did not behave like a CalDAV server.
	ErrDiscovery = errors.New("connect: CalDAV discovery failed")
	// ErrProviderUnavailable means the provider could not be reached or failed.
	ErrProviderUnavailable = errors.New("connect: the provider is unavailable")
	// ErrNotConfigured means provider-level credentials are missing.
	ErrNotConfigured = errors.New("connect: provider credentials are not configured")
	// ErrUnknownProvider means the provider name is not known.
	ErrUnknownProvider = errors.New("connect: unknown provider")
	// ErrUnknownChannel means a push channel id is unknown or its token does
	// not match (the two are not told apart).
	ErrUnknownChannel = errors.New("connect: unknown push channel")
	// ErrOrphanedChannel means a notification came, with the right token,
	// on a channel whose events.watch call is long over without its answer
	// having been stored (the replica that called it stopped): the gateway
	// stops it at Google instead of processing what it sends (see
	// VerifyChannelToken).
	ErrOrphanedChannel = errors.New("connect: orphaned push channel stopped")
)

// GoogleConfig configures Google OAuth and the Calendar API.
type GoogleConfig struct {
	// ClientID is the OAuth client id; empty falls back to the client_id
	// field of the google provider secret. The client secret is always read
	// from the secret store (provider "google", field client_secret).
	ClientID string
	// AuthURL and TokenURL are the OAuth endpoints.
	AuthURL, TokenURL string
	// APIURL is the root of Google APIs ("https://www.googleapis.com/");
	// the Calendar API is below calendar/v3/.
	APIURL string
	// UserinfoURL and RevokeURL default to Google's.
	UserinfoURL, RevokeURL string
	// RedirectURL is where Google sends the browser after consent. Set, it
	// is the web app's page, which posts the code and state back with the
	// user's own token (CompleteGoogleAs): only the user who started a
	// connection can complete it, and the gateway's own callback
	// (CompleteGoogle) refuses every state. Empty: the gateway's callback,
	// {PublicURL}/v1/oauth/google/callback, where the signed state alone
	// names the user.
	RedirectURL string
	// ChannelTTL is the lifetime asked for push channels; default 7 days.
	ChannelTTL time.Duration
}

// CalDAVConfig configures CalDAV connections.
type CalDAVConfig struct {
	// AllowPrivate turns the SSRF guard off (tests, sandbox).
	AllowPrivate bool
	// AllowHosts are host:port pairs reachable even though private (the
	// sandbox's in-process server).
	AllowHosts []string
	// DefaultServerURL is used when a request names none; default iCloud.
	DefaultServerURL string
	// SandboxICloud sends requests that name iCloud's URL (the API's default
	// value, which the request validator fills in) to DefaultServerURL: in
	// the sandbox no real provider is reached.
	SandboxICloud bool
	// Resolver overrides name resolution for the guard (tests).
	Resolver netguard.Resolver
}

// ZoomConfig names the Zoom endpoints.
type ZoomConfig struct {
	APIURL, OAuthURL string
}

// JiraSettings are the Jira site and project of booking issues (from config).
type JiraSettings struct {
	SiteURL, ProjectKey, IssueType, CancelStatus, BookingField string
}

// Config configures a Service.
type Config struct {
	// SecretPrefix and SecretEnv are the first two components of every secret path.
	SecretPrefix, SecretEnv string
	// PublicURL is the gateway's external base URL: OAuth redirect
	// ({PublicURL}/v1/oauth/google/callback) and push address
	// ({PublicURL}/webhooks/google).
	PublicURL string
	Google    GoogleConfig
	CalDAV    CalDAVConfig
	Zoom      ZoomConfig
	Jira      JiraSettings
	// StateTTL is how long an OAuth state is valid; default 10 minutes.
	StateTTL time.Duration
	// LeaseTTL bounds a token refresh lease; default 30 seconds.
	LeaseTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics are the shared outbound metrics; nil records none.
	Metrics *outbound.Metrics
	// Zone, when set, names the time zone in which a user's CalDAV calendar's
	// floating times and all-day events are read (the mentor's schedule
	// zone): an all-day event blocks the user's day, not UTC's. nil, or a
	// nil answer: UTC.
	Zone func(ctx context.Context, userID string) *time.Location
	// GoogleBase and CalDAVBase replace the base transports under the
	// outbound clients (tests observe or perturb traffic with them).
	GoogleBase http.RoundTripper
	CalDAVBase http.RoundTripper
}

// Service implements the connection flows. It is safe for concurrent use;
// several Services (replicas) may share one database and secret store.
type Service struct {
	cfg Config
	db  *store.Store
	sec secrets.Store
	log *slog.Logger
	now func() time.Time

	guard        *netguard.Guard
	googleHTTP   *http.Client
	caldavHTTP   *http.Client // calendar operations of connected users
	discoverHTTP *http.Client // discovery of user-supplied servers: one attempt, no breaker
	zoom         *zoom.Client
	jira         *jira.Client

	keyMu    sync.Mutex
	stateKey []byte

	flight singleflight.Group
	tokMu  sync.Mutex
	tokens map[string]*oauth2.Token // access tokens by user, in-process cache
}

// New returns a Service on db and the secret store sec.
func New(db *store.Store, sec secrets.Store, cfg Config) (*Service, error) {
	if db == nil || sec == nil {
		return nil, errors.New("connect: database and secret store are required")
	}
	if cfg.SecretPrefix == "" || cfg.SecretEnv == "" {
		return nil, errors.New("connect: SecretPrefix and SecretEnv are required")
	}
	if err := secrets.ValidComponent(cfg.SecretPrefix); err != nil {
		return nil, fmt.Errorf("connect: SecretPrefix: %w", err)
	}
	if err := secrets.ValidComponent(cfg.SecretEnv); err != nil {
		return nil, fmt.Errorf("connect: SecretEnv: %w", err)
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("connect: PublicURL is required")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 10 * time.Minute
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Google.ChannelTTL <= 0 {
		cfg.Google.ChannelTTL = 7 * 24 * time.Hour
	}
	if cfg.Google.AuthURL == "" {
		cfg.Google.AuthURL = "https://accounts.google.com/o/oauth2/auth"
	}
	if cfg.Google.TokenURL == "" {
		cfg.Google.TokenURL = "https://oauth2.googleapis.com/token"
	}
	if cfg.Google.APIURL == "" {
		cfg.Google.APIURL = "https://www.googleapis.com/"
	}
	if cfg.Google.UserinfoURL == "" {
		cfg.Google.UserinfoURL = gcal.UserinfoURL
	}
	if cfg.Google.RevokeURL == "" {
		cfg.Google.RevokeURL = gcal.RevokeURL
	}
	if cfg.CalDAV.DefaultServerURL == "" {
		cfg.CalDAV.DefaultServerURL = "https://caldav.icloud.com"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, db: db, sec: sec, log: cfg.Logger, now: cfg.Now, tokens: map[string]*oauth2.Token{}}
	s.guard = &netguard.Guard{AllowPrivate: cfg.CalDAV.AllowPrivate, AllowHosts: cfg.CalDAV.AllowHosts, Resolver: cfg.CalDAV.Resolver}

	googleBase := cfg.GoogleBase
	if googleBase == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: outbound.DefaultConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = outbound.DefaultConnectTimeout
		googleBase = t
	}
	s.googleHTTP = outbound.NewClient(gcal.OutboundConfig(outbound.Config{Logger: s.log, Metrics: cfg.Metrics,
		Base: rejectedTokens{s: s, base: googleBase}}))

	caldavBase := cfg.CalDAVBase
	if caldavBase == nil {
		caldavBase = s.guard.Transport()
	}
	// CalDAV servers are chosen by users: a breaker shared by all of them
	// would let one broken server cut everyone off, so it is disabled.
	s.caldavHTTP = outbound.NewClient(outbound.Config{Provider: "caldav", Base: caldavBase, Logger: s.log, Metrics: cfg.Metrics, BreakerFailures: -1})
	s.caldavHTTP.CheckRedirect = s.guard.CheckRedirect
	s.discoverHTTP = outbound.NewClient(outbound.Config{Provider: "caldav", Base: caldavBase, Logger: s.log, Metrics: cfg.Metrics,
		BreakerFailures: -1, MaxAttempts: 1, Timeout: 15 * time.Second})
	s.discoverHTTP.CheckRedirect = s.guard.CheckRedirect

	zoomHTTP := outbound.NewClient(outbound.Config{Provider: zoom.Provider, Logger: s.log, Metrics: cfg.Metrics})
	zopts := []zoom.Option{zoom.WithHTTPClient(zoomHTTP), zoom.WithLogger(s.log)}
	if cfg.Zoom.APIURL != "" {
		zopts = append(zopts, zoom.WithBaseURL(cfg.Zoom.APIURL))
	}
	if cfg.Zoom.OAuthURL != "" {
		zopts = append(zopts, zoom.WithOAuthURL(cfg.Zoom.OAuthURL))
	}
	s.zoom = zoom.New(s.ZoomCredentials(), zopts...)

	if cfg.Jira.SiteURL != "" {
		jopts := []jira.Option{jira.WithOutboundConfig(outbound.Config{Logger: s.log, Metrics: cfg.Metrics}), jira.WithLogger(s.log)}
		if cfg.Jira.BookingField != "" {
			jopts = append(jopts, jira.WithBookingField(cfg.Jira.BookingField))
		}
		jc, err := jira.New(cfg.Jira.SiteURL, jira.BasicAuthFrom(s.jiraCredentials), jopts...)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		s.jira = jc
	}
	return s, nil
}

// OutboundMetrics returns the shared outbound metrics (nil when none).
func (s *Service) OutboundMetrics() *outbound.Metrics { return s.cfg.Metrics }

// ZoomClient returns the account-level Zoom client (Server-to-Server OAuth
// with credentials from the secret store, token cached and fetched
// single-flight).
func (s *Service) ZoomClient() *zoom.Client { return s.zoom }

// JiraClient returns the Jira client (Basic auth with email and API token
// from the secret store), or nil when no Jira site URL is configured.
func (s *Service) JiraClient() *jira.Client { return s.jira }

// JiraSettings returns the configured Jira site and project.
func (s *Service) JiraSettings() JiraSettings { return s.cfg.Jira }

// CallbackURL is the OAuth redirect URI registered with Google: the web
// app's page when GoogleConfig.RedirectURL is set, else the gateway's own
// callback.
func (s *Service) CallbackURL() string {
	if s.cfg.Google.RedirectURL != "" {
		return s.cfg.Google.RedirectURL
	}
	return s.cfg.PublicURL + "/v1/oauth/google/callback"
}

// PushURL is the address Google push notifications are sent to.
func (s *Service) PushURL() string { return s.cfg.PublicURL + "/webhooks/google" }

func (s *Service) userPath(sub, provider string) (string, error) {
	return secrets.UserPath(s.cfg.SecretPrefix, s.cfg.SecretEnv, sub, provider)
}

func (s *Service) providerPath(provider string) (string, error) {
	return secrets.ProviderPath(s.cfg.SecretPrefix, s.cfg.SecretEnv, provider)
}

// micros converts a time to the database representation.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// upstream wraps a provider failure so callers can tell it apart.
func upstream(op string, err error) error {
	return fmt.Errorf("connect: %s: %w: %w", op, ErrProviderUnavailable, err)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
