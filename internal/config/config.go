// Package config reads the gateway's one Config from GATEWAY_* environment
// variables (and SENTRY_DSN, AWS_REGION), applies defaults, and validates it
// in one place. A wrong or missing value yields an error that names the
// variable. Vars lists every variable with its default for `gateway serve
// --help`.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/internal/secrets"
)

// Environments.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Auth modes.
const (
	AuthDev     = "dev"
	AuthCognito = "cognito"
)

// Provider modes.
const (
	ProvidersSandbox = "sandbox"
	ProvidersLive    = "live"
)

// Secret store backends.
const (
	SecretsLocal = "local"
	SecretsSSM   = "ssm"
)

// Config is the whole configuration of the gateway.
type Config struct {
	// Env is "development" or "production"; production refuses dev auth and sandbox providers.
	Env string
	// Addr is the listen address.
	Addr string
	// PublicURL is the externally visible base URL (OAuth callbacks, links in
	// calendar events and Jira issues). Defaults to http://Addr.
	PublicURL string
	// DataDir holds the embedded database, the dev signing key and the local secret key file.
	DataDir string
	// DatabaseURL is a postgres:// URL; empty selects the embedded SQLite file in DataDir.
	DatabaseURL string
	// DatabaseWait is how long serve and migrate wait at start for a database server
	// that does not accept connections yet, retrying with backoff; 0 fails
	// at once. The default is 60s with PostgreSQL, 0 with the embedded
	// SQLite file.
	DatabaseWait time.Duration
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// MetricsAddr, when set, is a listen address of its own for the
	// Prometheus metrics (/metrics, plain HTTP, no auth), which Addr then
	// does not serve; empty keeps /metrics on Addr.
	MetricsAddr string
	// DebugAddr, when set, is a second listen address serving Go's
	// net/http/pprof profiles (keep it on loopback or a private network).
	DebugAddr string
	// GCFloorMiB is the least heap goal of the garbage collector, in MiB
	// (internal/gcfloor); 0 disables it, and so does GOGC in the
	// environment.
	GCFloorMiB int64

	Auth      Auth
	Providers string
	Secrets   Secrets
	Sentry    Sentry
	Jobs      Jobs
	Booking   Booking
	CalDAV    CalDAV
	Zoom      Zoom
	Google    Google
	Jira      Jira
	Webhooks  Webhooks
}

// Auth configures request authentication.
type Auth struct {
	// Mode is "dev" (the gateway mints and verifies its own tokens) or "cognito".
	Mode string
	// CognitoRegion and CognitoUserPoolID name the user pool.
	CognitoRegion     string
	CognitoUserPoolID string
	// ClientIDs is the allowlist of app client ids (the access token's client_id).
	ClientIDs []string
	// JWKSURL overrides the pool's JWKS URL (tests).
	JWKSURL string
	// Leeway tolerates clock skew on exp/nbf/iat.
	Leeway time.Duration
	// ServiceScope is the OAuth scope that makes a machine client (a
	// client-credentials token, sub == client_id) a service client; a
	// machine client without it holds no role.
	ServiceScope string
}

// Issuer returns the Cognito issuer URL for the configured pool.
func (a Auth) Issuer() string {
	return fmt.Sprintf("https://cognito-idp.%s.amazonaws.com/%s", a.CognitoRegion, a.CognitoUserPoolID)
}

// Secrets configures the secret store.
type Secrets struct {
	// Backend is "local" (encrypted rows in the gateway database) or "ssm".
	Backend string
	// Key is the base64 AES-256 key of the local backend; empty uses DataDir/secret.key.
	Key string
	// Prefix is the first path segment of every parameter.
	Prefix string
	// SSMEndpoint overrides the SSM endpoint (tests).
	SSMEndpoint string
	// KMSKeyID encrypts SecureStrings with a customer key; empty uses the AWS managed key.
	KMSKeyID string
	// Tier is "Standard" or "Advanced".
	Tier string
	// AWSRegion is the region of SSM.
	AWSRegion string
}

// Sentry configures error reporting.
type Sentry struct {
	DSN         string
	Environment string
	Release     string
}

// Jobs configures the durable job runner.
type Jobs struct {
	// Workers is the number of jobs worked at once by this replica.
	Workers int
	// Timeout cancels a job's context after this long.
	Timeout time.Duration
	// RescueAfter is when a job still marked running (its process died) is
	// retried by another replica; it must exceed Timeout.
	RescueAfter time.Duration
}

// Booking configures the booking flow.
type Booking struct {
	// SyncTimeout is how long POST /v1/bookings waits for the required steps.
	SyncTimeout time.Duration
	// RetryWindow is how long a provider may fail transiently (5xx, 429,
	// an open circuit) before a required step fails the booking.
	RetryWindow time.Duration
}

// CalDAV configures CalDAV connections.
type CalDAV struct {
	// AllowPrivate permits CalDAV servers on loopback/private addresses (tests, sandbox).
	AllowPrivate bool
	// PollInterval is how often connected CalDAV calendars are synced.
	PollInterval time.Duration
}

// Zoom configures the Zoom API endpoints (sandbox mode overrides them).
type Zoom struct {
	APIURL   string
	OAuthURL string
	// EarlyStart is how long before a booking's start its meeting may start
	// and count as the session (webhooks.Config.EarlyStart); 0: any start.
	EarlyStart time.Duration
}

// Google configures Google OAuth and Calendar endpoints.
type Google struct {
	// ClientID is the OAuth client id; the client secret lives in the secret store.
	ClientID string
	// SyncInterval is how often connected Google calendars are synced
	// besides their push notifications; 0 never.
	SyncInterval time.Duration
	AuthURL      string
	TokenURL     string
	APIURL       string
	// ConnectedURL is the web app's post-connect page, where the OAuth
	// callback sends the browser (empty: the callback answers a page of its
	// own).
	ConnectedURL string
	// RedirectURL is the web app's page Google redirects the browser to
	// after consent; it posts code and state to POST
	// /v1/connections/google/callback with the user's token. Empty: Google
	// redirects to the gateway's own callback. Required in production with
	// live providers.
	RedirectURL string
}

// Jira configures the Jira site and project used for booking issues.
type Jira struct {
	SiteURL      string
	ProjectKey   string
	IssueType    string
	CancelStatus string
	// BookingField is an optional custom field id (customfield_NNNNN) holding the booking id.
	BookingField string
}

// Webhooks configures inbound webhook intake.
type Webhooks struct {
	// MaxBody is the largest accepted delivery in bytes.
	MaxBody int64
	// HandoffGrace is how long the durable processing job of deliveries
	// this process processes itself waits before any replica may run it
	// (the fallback when the process died).
	HandoffGrace time.Duration
}

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Help    string
	set     func(c *Config, v string) error
}

// Vars returns every variable Load reads, in help order.
func Vars() []Var { return vars }

// secretVars hold credentials: Shown never prints their values.
var secretVars = map[string]bool{"GATEWAY_SECRET_KEY": true, "SENTRY_DSN": true}

// Shown is raw, a value of v, as it may be printed (`gateway config`, a
// log): "" as "-", a credential as "(set, not shown)", and a URL without
// the user and password written into it.
func (v Var) Shown(raw string) string {
	switch {
	case raw == "":
		return "-"
	case secretVars[v.Name]:
		return "(set, not shown)"
	case strings.Contains(raw, "://"), strings.Contains(raw, "password="):
		shown := shownURL(raw)
		// A password can also be a query parameter of a PostgreSQL URL.
		return passwordParam.ReplaceAllString(shown, "${1}xxxxx")
	}
	return raw
}

// passwordParam is a password given as a URL query or key=value parameter.
var passwordParam = regexp.MustCompile(`((?:^|[?&\s])(?:ssl)?password=)[^&\s]*`)

var vars = []Var{
	{"GATEWAY_ENV", EnvDevelopment, "development or production (production refuses dev auth, sandbox providers, private CalDAV hosts, the embedded database and the local secret store, and needs https:// URLs)", oneOf(func(c *Config) *string { return &c.Env }, EnvDevelopment, EnvProduction)},
	{"GATEWAY_ADDR", "127.0.0.1:8080", "listen address (the container image sets :8080)", hostPort(func(c *Config) *string { return &c.Addr })},
	{"GATEWAY_PUBLIC_URL", "", "external base URL for callbacks, Google push and links in calendar events and Jira issues (https, required in production; default http://GATEWAY_ADDR)", baseURL(func(c *Config) *string { return &c.PublicURL })},
	{"GATEWAY_DATA_DIR", "./data", "folder for the embedded database, dev signing key and local secret key", str(func(c *Config) *string { return &c.DataDir })},
	{"GATEWAY_DATABASE_URL", "", "postgres://… for PostgreSQL (required in production; pool_max_conns in the URL sizes the pool, default 20; connect_timeout and pool_ping_timeout default to 10s and 5s); empty for the embedded SQLite file in GATEWAY_DATA_DIR (sqlite:PATH for another file)", dbURL},
	{"GATEWAY_DB_WAIT", "60s", "how long serve (and migrate) wait at start for a PostgreSQL server that does not accept connections yet (it may come up after the gateway), retrying with backoff and logging each failure, before it exits 1; /healthz answers meanwhile, /readyz does not; 0 fails at once, as does the embedded SQLite file by default (waiting does not mend a file that cannot be opened)", nonNegativeDuration(func(c *Config) *time.Duration { return &c.DatabaseWait })},
	{"GATEWAY_LOG_LEVEL", "info", "debug, info, warn or error", logLevel},
	{"GATEWAY_METRICS_ADDR", "", "optional listen address of Prometheus' /metrics (plain HTTP, no auth: keep it private), which GATEWAY_ADDR then answers 404; empty: /metrics is on GATEWAY_ADDR (the container image sets :9090)", optionalHostPort(func(c *Config) *string { return &c.MetricsAddr })},
	{"GATEWAY_DEBUG_ADDR", "", "optional listen address of Go's pprof profiles (/debug/pprof/), a port of its own; empty disables; never expose it publicly", optionalHostPort(func(c *Config) *string { return &c.DebugAddr })},
	{"GATEWAY_GC_FLOOR_MB", "32", "least heap goal of the garbage collector in MiB: a small heap is collected less often (measured: 3–10 % less CPU per webhook delivery at load, about 6 MB more peak memory); 0 disables; ignored when GOGC is set", nonNegative(func(c *Config) *int64 { return &c.GCFloorMiB })},
	{"GATEWAY_SHUTDOWN_TIMEOUT", "20s", "time to finish in-flight requests and running jobs on SIGTERM; requests still running then are cut, jobs get 5s more to stop, and the process exits at the latest 8s after it, so keep it at least 8s under the orchestrator's kill timeout (ECS stopTimeout: 30s by default)", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"GATEWAY_AUTH_MODE", AuthDev, "dev (self-issued tokens, `gateway token`) or cognito", oneOf(func(c *Config) *string { return &c.Auth.Mode }, AuthDev, AuthCognito)},
	{"GATEWAY_COGNITO_REGION", "", "Cognito user pool region (required in cognito mode)", str(func(c *Config) *string { return &c.Auth.CognitoRegion })},
	{"GATEWAY_COGNITO_USER_POOL_ID", "", "Cognito user pool id (required in cognito mode)", str(func(c *Config) *string { return &c.Auth.CognitoUserPoolID })},
	{"GATEWAY_COGNITO_CLIENT_IDS", "", "comma-separated app client ids allowed (required in cognito mode)", list(func(c *Config) *[]string { return &c.Auth.ClientIDs })},
	{"GATEWAY_COGNITO_JWKS_URL", "", "override of the pool's JWKS URL", absURL(func(c *Config) *string { return &c.Auth.JWKSURL })},
	{"GATEWAY_AUTH_LEEWAY", "30s", "clock skew tolerated on exp/nbf/iat", duration(func(c *Config) *time.Duration { return &c.Auth.Leeway })},
	{"GATEWAY_SERVICE_SCOPE", "spotlight-gateway/bookings", "OAuth scope (a Cognito resource server's identifier/scope) a machine client's token must carry to act as a service client; machine clients without it hold no role", scopeToken(func(c *Config) *string { return &c.Auth.ServiceScope })},
	{"GATEWAY_PROVIDERS", ProvidersSandbox, "sandbox (in-process simulators) or live (real Zoom, Google, Jira, CalDAV)", oneOf(func(c *Config) *string { return &c.Providers }, ProvidersSandbox, ProvidersLive)},
	{"GATEWAY_SECRETS_BACKEND", SecretsLocal, "local (AES-GCM rows in the database) or ssm (required in production)", oneOf(func(c *Config) *string { return &c.Secrets.Backend }, SecretsLocal, SecretsSSM)},
	{"GATEWAY_SECRET_KEY", "", "base64 32-byte key of the local secret store (default: GATEWAY_DATA_DIR/secret.key, created 0600); during a rotation NEW,OLD: NEW seals, both open (see gateway secrets rotate-key)", str(func(c *Config) *string { return &c.Secrets.Key })},
	{"GATEWAY_SSM_PREFIX", "spotlight", "first segment of SSM parameter paths /{prefix}/{env}/…", ssmPrefix},
	{"GATEWAY_SSM_ENDPOINT", "", "override of the SSM endpoint URL", absURL(func(c *Config) *string { return &c.Secrets.SSMEndpoint })},
	{"GATEWAY_SSM_KMS_KEY_ID", "", "KMS key for SecureString parameters (default: the AWS managed key)", str(func(c *Config) *string { return &c.Secrets.KMSKeyID })},
	{"GATEWAY_SSM_TIER", "Standard", "Standard or Advanced (values over 4 KB need Advanced)", oneOf(func(c *Config) *string { return &c.Secrets.Tier }, "Standard", "Advanced")},
	{"AWS_REGION", "", "AWS region of SSM (required with the ssm backend)", str(func(c *Config) *string { return &c.Secrets.AWSRegion })},
	{"SENTRY_DSN", "", "Sentry DSN; empty: the dsn stored as provider sentry's credentials, if any, else no error reporting", sentryDSN},
	{"SENTRY_ENVIRONMENT", "", "Sentry environment (default GATEWAY_ENV)", str(func(c *Config) *string { return &c.Sentry.Environment })},
	{"SENTRY_RELEASE", "", "Sentry release name (default gateway@VERSION, the build's version)", str(func(c *Config) *string { return &c.Sentry.Release })},
	{"GATEWAY_JOB_WORKERS", "50", "jobs worked at once by this replica", positive(func(c *Config) *int { return &c.Jobs.Workers })},
	{"GATEWAY_JOB_TIMEOUT", "1m", "a job's context is cancelled after this long", duration(func(c *Config) *time.Duration { return &c.Jobs.Timeout })},
	{"GATEWAY_JOB_RESCUE_AFTER", "5m", "a job left running by a dead process is retried after this long (must exceed GATEWAY_JOB_TIMEOUT)", duration(func(c *Config) *time.Duration { return &c.Jobs.RescueAfter })},
	{"GATEWAY_BOOKING_RETRY_WINDOW", "5m", "how long Zoom or the mentor's calendar may fail transiently (5xx, 429, open circuit) before a booking fails; until then it stays pending", duration(func(c *Config) *time.Duration { return &c.Booking.RetryWindow })},
	{"GATEWAY_BOOKING_SYNC_TIMEOUT", "8s", "how long POST /v1/bookings waits before answering 202", duration(func(c *Config) *time.Duration { return &c.Booking.SyncTimeout })},
	{"GATEWAY_CALDAV_ALLOW_PRIVATE", "false", "allow CalDAV servers on loopback/private addresses (tests only)", boolean(func(c *Config) *bool { return &c.CalDAV.AllowPrivate })},
	{"GATEWAY_CALDAV_POLL_INTERVAL", "5m", "how often connected CalDAV calendars are synced (10s with sandbox providers)", duration(func(c *Config) *time.Duration { return &c.CalDAV.PollInterval })},
	{"GATEWAY_ZOOM_API_URL", "https://api.zoom.us", "Zoom REST API base URL", absURL(func(c *Config) *string { return &c.Zoom.APIURL })},
	{"GATEWAY_ZOOM_OAUTH_URL", "https://zoom.us", "Zoom OAuth base URL", absURL(func(c *Config) *string { return &c.Zoom.OAuthURL })},
	{"GATEWAY_ZOOM_EARLY_START", "1h", "a Zoom meeting started longer than this before its booking's start (a host testing the link) does not make the booking in progress, nor its end complete it; 0 lets any start count (the default with sandbox providers, where a session is played hours ahead)", nonNegativeDuration(func(c *Config) *time.Duration { return &c.Zoom.EarlyStart })},
	{"GATEWAY_GOOGLE_CLIENT_ID", "", "Google OAuth client id (the secret is in the secret store; empty: its client_id field there)", str(func(c *Config) *string { return &c.Google.ClientID })},
	{"GATEWAY_GOOGLE_SYNC_INTERVAL", "30m", "how often connected Google calendars are synced besides their push notifications (Google does not promise to deliver every one, and none comes for changes made while a channel was down); 0 never", nonNegativeDuration(func(c *Config) *time.Duration { return &c.Google.SyncInterval })},
	{"GATEWAY_GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/auth", "Google OAuth authorization endpoint", absURL(func(c *Config) *string { return &c.Google.AuthURL })},
	{"GATEWAY_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token", "Google OAuth token endpoint", absURL(func(c *Config) *string { return &c.Google.TokenURL })},
	{"GATEWAY_GOOGLE_API_URL", "https://www.googleapis.com/", "Google APIs base URL", absURL(func(c *Config) *string { return &c.Google.APIURL })},
	{"GATEWAY_GOOGLE_REDIRECT_URL", "", "web app page registered with Google as the OAuth redirect URI; it posts code and state to POST /v1/connections/google/callback with the user's token, so only the user who started a connection can complete it (required in production with live providers); empty: Google redirects to the gateway's GET /v1/oauth/google/callback", absURL(func(c *Config) *string { return &c.Google.RedirectURL })},
	{"GATEWAY_GOOGLE_CONNECTED_URL", "", "web app page the Google OAuth callback redirects the browser to, with ?result=connected or ?result=error&reason=…; empty: the callback answers a page of its own", absURL(func(c *Config) *string { return &c.Google.ConnectedURL })},
	{"GATEWAY_JIRA_SITE_URL", "", "Jira Cloud site, e.g. https://example.atlassian.net", absURL(func(c *Config) *string { return &c.Jira.SiteURL })},
	{"GATEWAY_JIRA_PROJECT_KEY", "MENTOR", "Jira project for booking issues", str(func(c *Config) *string { return &c.Jira.ProjectKey })},
	{"GATEWAY_JIRA_ISSUE_TYPE", "Task", "Jira issue type for booking issues", str(func(c *Config) *string { return &c.Jira.IssueType })},
	{"GATEWAY_JIRA_CANCEL_STATUS", "Cancelled", "Jira status that cancels the booking when set by a person", str(func(c *Config) *string { return &c.Jira.CancelStatus })},
	{"GATEWAY_JIRA_BOOKING_FIELD", "", "optional custom field id (customfield_NNNNN) holding the booking id", str(func(c *Config) *string { return &c.Jira.BookingField })},
	{"GATEWAY_WEBHOOK_MAX_BODY", "262144", "largest accepted webhook delivery in bytes", positive(func(c *Config) *int64 { return &c.Webhooks.MaxBody })},
	{"GATEWAY_WEBHOOK_HANDOFF_GRACE", "30s", "deliveries are processed by the replica that stored them; if it dies, their durable job runs on any replica after this long (at least 1s)", duration(func(c *Config) *time.Duration { return &c.Webhooks.HandoffGrace })},
}

// Load reads the configuration through getenv (os.Getenv in main), applies
// defaults and validates it. The error lists every problem, each naming its
// variable.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	failed := map[string]bool{}
	for _, v := range vars {
		val := strings.TrimSpace(getenv(v.Name))
		if val == "" {
			val = v.Default
		}
		if err := v.set(&c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.Name, err))
			failed[v.Name] = true
		}
	}
	if c.Providers == ProvidersSandbox && strings.TrimSpace(getenv("GATEWAY_CALDAV_POLL_INTERVAL")) == "" {
		// The sandbox's CalDAV server is in this process: a mentor's change
		// played with `gateway sandbox caldav` shows within seconds.
		c.CalDAV.PollInterval = SandboxCalDAVPollInterval
	}
	if c.Providers == ProvidersSandbox && strings.TrimSpace(getenv("GATEWAY_ZOOM_EARLY_START")) == "" {
		// `gateway sandbox zoom start` plays a session booked at least the
		// minimum notice ahead.
		c.Zoom.EarlyStart = 0
	}
	if !strings.HasPrefix(c.DatabaseURL, "postgres") && strings.TrimSpace(getenv("GATEWAY_DB_WAIT")) == "" {
		// An SQLite file that cannot be opened now will not open later.
		c.DatabaseWait = 0
	}
	// The rules that span variables are checked too, so one start lists
	// every problem; a rule reading a malformed variable is left out.
	errs = append(errs, c.validate(failed)...)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// SandboxCalDAVPollInterval is the CalDAV poll interval with sandbox
// providers when GATEWAY_CALDAV_POLL_INTERVAL is not set.
const SandboxCalDAVPollInterval = 10 * time.Second

// validate checks rules that span several variables, and in production
// every setting production needs, whatever the modes it requires are set
// to now: an operator learns them all from one start. A rule that reads a
// variable in failed (malformed) is skipped.
func (c *Config) validate(failed map[string]bool) []error {
	var errs []error
	ok := func(names ...string) bool {
		for _, n := range names {
			if failed[n] {
				return false
			}
		}
		return true
	}
	prod := c.Env == EnvProduction
	if c.PublicURL == "" && ok("GATEWAY_PUBLIC_URL") {
		c.PublicURL = "http://" + publicHost(c.Addr)
	}
	if c.Sentry.Environment == "" {
		c.Sentry.Environment = c.Env
	}
	if prod && c.Auth.Mode == AuthDev {
		errs = append(errs, errors.New("GATEWAY_AUTH_MODE: dev auth is refused when GATEWAY_ENV=production; set cognito"))
	}
	if prod && c.Providers == ProvidersSandbox {
		errs = append(errs, errors.New("GATEWAY_PROVIDERS: sandbox providers are refused when GATEWAY_ENV=production; set live"))
	}
	if prod && ok("GATEWAY_PUBLIC_URL") && !strings.HasPrefix(c.PublicURL, "https://") {
		// Google pushes calendar changes only to a public HTTPS address,
		// and the URL is written into calendar events and Jira issues.
		errs = append(errs, errors.New("GATEWAY_PUBLIC_URL: required when GATEWAY_ENV=production: the gateway's public https:// address (Google push notifications, OAuth callbacks, links in events and issues)"))
	}
	if prod && ok("GATEWAY_DATABASE_URL") && !strings.HasPrefix(c.DatabaseURL, "postgres") {
		// Replicas share one PostgreSQL; an embedded file would give every
		// task its own, lost with the task.
		errs = append(errs, errors.New("GATEWAY_DATABASE_URL: a postgres:// URL is required when GATEWAY_ENV=production (the embedded SQLite file is for one process on one machine)"))
	}
	if prod && ok("GATEWAY_SECRETS_BACKEND") && c.Secrets.Backend != SecretsSSM {
		errs = append(errs, errors.New("GATEWAY_SECRETS_BACKEND: ssm is required when GATEWAY_ENV=production"))
	}
	if prod && c.CalDAV.AllowPrivate {
		errs = append(errs, errors.New("GATEWAY_CALDAV_ALLOW_PRIVATE: must be false when GATEWAY_ENV=production"))
	}
	// Production requires cognito auth, ssm secrets and live providers
	// (above): their settings are required there whatever the modes say.
	if (c.Auth.Mode == AuthCognito || prod) && ok("GATEWAY_AUTH_MODE") {
		if c.Auth.CognitoRegion == "" {
			errs = append(errs, errors.New("GATEWAY_COGNITO_REGION: required when GATEWAY_AUTH_MODE=cognito"))
		}
		if c.Auth.CognitoUserPoolID == "" {
			errs = append(errs, errors.New("GATEWAY_COGNITO_USER_POOL_ID: required when GATEWAY_AUTH_MODE=cognito"))
		}
		if len(c.Auth.ClientIDs) == 0 {
			errs = append(errs, errors.New("GATEWAY_COGNITO_CLIENT_IDS: required when GATEWAY_AUTH_MODE=cognito"))
		}
	}
	if (c.Secrets.Backend == SecretsSSM || prod) && ok("GATEWAY_SECRETS_BACKEND") && c.Secrets.AWSRegion == "" {
		errs = append(errs, errors.New("AWS_REGION: required when GATEWAY_SECRETS_BACKEND=ssm"))
	}
	if c.Secrets.Key != "" {
		for i, k := range strings.Split(c.Secrets.Key, ",") {
			switch n := base64Len(strings.TrimSpace(k)); n {
			case 32:
			case -1:
				errs = append(errs, fmt.Errorf("GATEWAY_SECRET_KEY: key %d is not valid standard base64 (make one with: head -c 32 /dev/urandom | base64)", i+1))
			default:
				errs = append(errs, fmt.Errorf("GATEWAY_SECRET_KEY: key %d must be base64 of 32 bytes (it decodes to %d bytes)", i+1, n))
			}
		}
	}
	// Two listeners on one port would fail to bind only after the database
	// was opened (a wait, a migration): say it with the other problems.
	listeners := []struct{ name, addr string }{{"GATEWAY_ADDR", c.Addr}, {"GATEWAY_METRICS_ADDR", c.MetricsAddr}, {"GATEWAY_DEBUG_ADDR", c.DebugAddr}}
	for i, l := range listeners {
		for _, earlier := range listeners[:i] {
			if ok(l.name, earlier.name) && overlap(l.addr, earlier.addr) {
				errs = append(errs, fmt.Errorf("%s: %q overlaps %s (%q): each listener needs a port of its own", l.name, l.addr, earlier.name, earlier.addr))
			}
		}
	}
	if ok("GATEWAY_WEBHOOK_HANDOFF_GRACE") && c.Webhooks.HandoffGrace < time.Second {
		errs = append(errs, errors.New("GATEWAY_WEBHOOK_HANDOFF_GRACE: must be at least 1s"))
	}
	if ok("GATEWAY_JOB_RESCUE_AFTER", "GATEWAY_JOB_TIMEOUT") && c.Jobs.RescueAfter <= c.Jobs.Timeout {
		errs = append(errs, errors.New("GATEWAY_JOB_RESCUE_AFTER: must be longer than GATEWAY_JOB_TIMEOUT"))
	}
	if prod {
		// Credentials go to these (Zoom's and Google's client secrets,
		// Google's tokens, Jira's API token, SSM's decrypted parameters),
		// Cognito's keys come from one, and Google sends authorization
		// codes to the redirect page: a typo of http:// would work and
		// carry them in clear text. Loopback (a sidecar) never leaves the host.
		for _, e := range []struct{ name, url string }{
			{"GATEWAY_COGNITO_JWKS_URL", c.Auth.JWKSURL}, {"GATEWAY_SSM_ENDPOINT", c.Secrets.SSMEndpoint},
			{"GATEWAY_ZOOM_API_URL", c.Zoom.APIURL}, {"GATEWAY_ZOOM_OAUTH_URL", c.Zoom.OAuthURL},
			{"GATEWAY_GOOGLE_AUTH_URL", c.Google.AuthURL}, {"GATEWAY_GOOGLE_TOKEN_URL", c.Google.TokenURL},
			{"GATEWAY_GOOGLE_API_URL", c.Google.APIURL}, {"GATEWAY_GOOGLE_REDIRECT_URL", c.Google.RedirectURL},
			{"GATEWAY_JIRA_SITE_URL", c.Jira.SiteURL},
		} {
			if ok(e.name) && plaintext(e.url) {
				errs = append(errs, fmt.Errorf("%s: %q must be an https:// URL when GATEWAY_ENV=production (plain http only on loopback)", e.name, shownURL(e.url)))
			}
		}
	}
	if prod && ok("GATEWAY_JIRA_SITE_URL") && c.Jira.SiteURL == "" {
		errs = append(errs, errors.New("GATEWAY_JIRA_SITE_URL: required with live providers in production"))
	}
	if prod && ok("GATEWAY_GOOGLE_REDIRECT_URL") && c.Google.RedirectURL == "" {
		// The gateway's own callback is authenticated by the state alone:
		// anyone can send a user the authorization URL of their own
		// connection, and the user's consent would connect the user's
		// calendar to the sender's account.
		errs = append(errs, errors.New("GATEWAY_GOOGLE_REDIRECT_URL: required with live providers in production (the web app's page that completes Google connections with the user's token)"))
	}
	return errs
}

// Warnings are settings that work but are likely mistakes: serve logs them
// at start and `gateway config` prints them.
func (c Config) Warnings() []string {
	var w []string
	if c.ShutdownTimeout < c.Booking.SyncTimeout {
		w = append(w, fmt.Sprintf("GATEWAY_SHUTDOWN_TIMEOUT (%s) is shorter than GATEWAY_BOOKING_SYNC_TIMEOUT (%s): "+
			"a booking request still waiting at shutdown is cut off (the booking itself is durable and finishes on another replica)",
			c.ShutdownTimeout, c.Booking.SyncTimeout))
	}
	return w
}

// plaintext reports whether u, a URL absURL accepted (or ""), is plain
// http:// to a host other than loopback.
func plaintext(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return false
	}
	host := p.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		return !ip.IsLoopback()
	}
	return !strings.EqualFold(host, "localhost")
}

// Sandbox reports whether providers are the in-process simulators.
func (c Config) Sandbox() bool { return c.Providers == ProvidersSandbox }

// publicHost turns a listen address into a host a browser can reach.
func publicHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if allInterfaces(host) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// overlap reports whether listeners on the host:port addresses a and b
// cannot both bind: the same port (0, any free port, never collides) on the
// same host, or on all interfaces and any host. Addresses compare by value
// (127.0.0.1 is ::ffff:127.0.0.1), localhost is its loopback addresses
// (127.0.0.1 and ::1); other host names compare as written, without a DNS
// lookup.
func overlap(a, b string) bool {
	ha, pa, erra := net.SplitHostPort(a)
	hb, pb, errb := net.SplitHostPort(b)
	if erra != nil || errb != nil || !samePort(pa, pb) {
		return false
	}
	return allInterfaces(ha) || allInterfaces(hb) || sameHost(ha, hb) || sameHost(hb, ha)
}

// samePort reports whether two listen ports are one fixed port ("8080" and
// "08080" are; 0, any free port, never is).
func samePort(a, b string) bool {
	pa, erra := strconv.ParseUint(a, 10, 16)
	pb, errb := strconv.ParseUint(b, 10, 16)
	if erra != nil || errb != nil {
		return a == b // a service name, such as "http"
	}
	return pa == pb && pa != 0
}

// sameHost reports whether listen hosts a and b name the same interface
// (see overlap); it is called both ways round.
func sameHost(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	ia, erra := netip.ParseAddr(a)
	if erra != nil {
		return false
	}
	if ib, err := netip.ParseAddr(b); err == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(b, "localhost") && (ia.Unmap() == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || ia == netip.IPv6Loopback())
}

// allInterfaces reports whether a listen address's host is the wildcard.
func allInterfaces(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

// scopeToken parses one OAuth scope (RFC 6749 section 3.3: printable ASCII
// without spaces, quotes or backslashes).
func scopeToken(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		for _, r := range v {
			if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
				return fmt.Errorf("%q is not one OAuth scope (printable ASCII, no spaces, quotes or backslashes)", v)
			}
		}
		*field(c) = v
		return nil
	}
}

func oneOf(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		for _, a := range allowed {
			if strings.EqualFold(v, a) {
				*field(c) = a
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func hostPort(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		_, port, err := net.SplitHostPort(v)
		if err != nil || port == "" {
			return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:8080 or :8080)", v)
		}
		// What listen takes: a number up to 65535 or a service name.
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("%q has no valid port (a number up to 65535, e.g. 127.0.0.1:8080)", v)
		}
		*field(c) = v
		return nil
	}
}

func optionalHostPort(field func(*Config) *string) func(*Config, string) error {
	hp := hostPort(field)
	return func(c *Config, v string) error {
		if v == "" {
			*field(c) = ""
			return nil
		}
		return hp(c, v)
	}
}

// baseURL is absURL for a base URL that paths are appended to: no query or
// fragment, and no trailing slash (https://gw.example.com/ is stored as
// https://gw.example.com).
func baseURL(field func(*Config) *string) func(*Config, string) error {
	abs := absURL(field)
	return func(c *Config, v string) error {
		if err := abs(c, v); err != nil {
			return err
		}
		if u, _ := url.Parse(v); u != nil && (u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
			return fmt.Errorf("%q must be a base URL without user, query or fragment", shownURL(v))
		}
		*field(c) = strings.TrimRight(*field(c), "/")
		return nil
	}
}

// sentryDSN checks the shape of a Sentry DSN
// (https://PUBLIC_KEY@HOST/PROJECT_ID) without echoing it: its key is a
// credential.
func sentryDSN(c *Config, v string) error {
	if v == "" {
		c.Sentry.DSN = ""
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User == nil || u.User.Username() == "" || strings.Trim(u.Path, "/") == "" {
		return errors.New("not a Sentry DSN of the form https://PUBLIC_KEY@HOST/PROJECT_ID (value not shown)")
	}
	c.Sentry.DSN = v
	return nil
}

func absURL(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			*field(c) = ""
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not an absolute http(s) URL", shownURL(v))
		}
		*field(c) = strings.TrimRight(v, "/") + trailingSlash(v)
		return nil
	}
}

// userinfo is the user (and password) part of a URL that does not parse.
var userinfo = regexp.MustCompile(`//[^/?#]*@`)

// shownURL is v as an error message may quote it (the message goes to the
// log): the user and password written into it are replaced by xxxxx.
func shownURL(v string) string {
	if u, err := url.Parse(v); err == nil {
		if u.User == nil {
			return v
		}
		u.User = url.User("xxxxx") // a user name can be a token too
		return u.String()
	}
	return userinfo.ReplaceAllString(v, "//xxxxx@")
}

// trailingSlash keeps a trailing slash the operator wrote (Google's API base needs it).
func trailingSlash(v string) string {
	if strings.HasSuffix(v, "/") {
		return "/"
	}
	return ""
}

func dbURL(c *Config, v string) error {
	if v != "" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") && !strings.HasPrefix(v, "sqlite:") {
		return errors.New("must start with postgres://, postgresql:// or sqlite: (or be empty for the embedded database)")
	}
	c.DatabaseURL = v
	return nil
}

// ssmPrefix parses the first segment of the secret store's paths.
func ssmPrefix(c *Config, v string) error {
	if err := secrets.ValidComponent(v); err != nil {
		return fmt.Errorf("%q is not one path segment (letters, digits and _ . @ -, no /): parameters are /{prefix}/{env}/…", v)
	}
	c.Secrets.Prefix = v
	return nil
}

func logLevel(c *Config, v string) error {
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("%q is not one of debug, info, warn, error", v)
	}
	return nil
}

func duration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration (e.g. 30s, 5m)", v)
		}
		*field(c) = d
		return nil
	}
}

// nonNegativeDuration parses a duration of zero or more.
func nonNegativeDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration of zero or more (e.g. 0, 30m, 1h)", v)
		}
		*field(c) = d
		return nil
	}
}

// positive parses a positive integer into an int or int64 field.
func positive[T int | int64](field func(*Config) *T) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive integer", v)
		}
		*field(c) = T(n)
		return nil
	}
}

// nonNegative parses an integer of zero or more into an int64 field.
func nonNegative(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not an integer of zero or more", v)
		}
		*field(c) = n
		return nil
	}
}

// base64Len returns the decoded length of a standard base64 string, or -1.
func base64Len(v string) int {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return -1
	}
	return len(b)
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}
}

func list(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		*field(c) = out
		return nil
	}
}
