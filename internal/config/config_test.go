package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil {
		t.Fatalf("Load(empty) = %v", err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Auth.Mode != AuthDev || !c.Sandbox() || c.Secrets.Backend != SecretsLocal {
		t.Errorf("embedded defaults wrong: %+v", c)
	}
	if c.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("PublicURL = %q", c.PublicURL)
	}
	if c.Booking.SyncTimeout != 8*time.Second || c.ShutdownTimeout != 20*time.Second {
		t.Errorf("durations = %v, %v", c.Booking.SyncTimeout, c.ShutdownTimeout)
	}
	if c.DataDir != "./data" || c.DatabaseURL != "" {
		t.Errorf("storage = %q %q", c.DataDir, c.DatabaseURL)
	}
	if c.Auth.ServiceScope != "spotlight-gateway/bookings" {
		t.Errorf("ServiceScope = %q", c.Auth.ServiceScope)
	}
	if c.MetricsAddr != "" || c.DebugAddr != "" {
		t.Errorf("extra listeners by default: metrics %q, debug %q", c.MetricsAddr, c.DebugAddr)
	}
}

// TestListenersNeedTheirOwnAddress: two listeners on one address (or one
// on all interfaces and one on an interface, same port) are a configuration
// error naming both variables, reported with the others instead of as a
// failed bind after the database was opened; port 0 (any free port) never
// collides.
func TestListenersNeedTheirOwnAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name               string
		addr, metrics, dbg string
		want               string // "" when valid
	}{
		{"metrics apart", ":8080", ":9090", "", ""},
		{"container image", ":8080", ":9090", "127.0.0.1:6060", ""},
		{"same address", ":8080", ":8080", "", "GATEWAY_METRICS_ADDR: \":8080\" overlaps GATEWAY_ADDR"},
		{"default API address", "", "127.0.0.1:8080", "", "GATEWAY_METRICS_ADDR: \"127.0.0.1:8080\" overlaps GATEWAY_ADDR"},
		{"all interfaces and loopback", "127.0.0.1:9090", "0.0.0.0:9090", "", "overlaps GATEWAY_ADDR"},
		{"IPv6 wildcard", ":8080", "[::]:8080", "", "overlaps GATEWAY_ADDR"},
		{"same port, other interfaces", "127.0.0.1:9090", "10.0.0.7:9090", "", ""},
		{"localhost is 127.0.0.1", "127.0.0.1:9090", "localhost:9090", "", "overlaps GATEWAY_ADDR"},
		{"localhost is ::1", "localhost:9090", "[::1]:9090", "", "overlaps GATEWAY_ADDR"},
		{"LOCALHOST is localhost", "localhost:9090", "LOCALHOST:9090", "", "overlaps GATEWAY_ADDR"},
		{"an IPv4-mapped address", "127.0.0.1:9090", "[::ffff:127.0.0.1]:9090", "", "overlaps GATEWAY_ADDR"},
		{"IPv6 wildcard written long", "127.0.0.1:9090", "[0:0::0]:9090", "", "overlaps GATEWAY_ADDR"},
		{"a zero-padded port", ":8080", ":08080", "", "overlaps GATEWAY_ADDR"},
		{"localhost and another loopback address", "localhost:9090", "127.0.0.2:9090", "", ""},
		{"IPv4 and IPv6 loopback", "127.0.0.1:9090", "[::1]:9090", "", ""},
		{"other host names are not looked up", "api.internal:9090", "metrics.internal:9090", "", ""},
		{"any free ports", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"metrics on pprof's address", ":8080", "127.0.0.1:6060", "127.0.0.1:6060", "GATEWAY_DEBUG_ADDR: \"127.0.0.1:6060\" overlaps GATEWAY_METRICS_ADDR"},
		{"pprof on the API's address", ":8080", "", ":8080", "GATEWAY_DEBUG_ADDR: \":8080\" overlaps GATEWAY_ADDR"},
		{"malformed API address is not also an overlap", "8080", ":8080", "", "GATEWAY_ADDR: \"8080\" is not host:port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"GATEWAY_ADDR": tt.addr, "GATEWAY_METRICS_ADDR": tt.metrics, "GATEWAY_DEBUG_ADDR": tt.dbg}))
			if tt.want == "" {
				if err != nil || c.MetricsAddr != tt.metrics {
					t.Fatalf("Load = %v, MetricsAddr %q; want valid, %q", err, c.MetricsAddr, tt.metrics)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error with %q", err, tt.want)
			}
			if strings.Count(err.Error(), "overlaps") > 1 || (strings.HasPrefix(tt.name, "malformed") && strings.Contains(err.Error(), "overlaps")) {
				t.Errorf("Load = %v, want the overlap reported once, and not for a malformed address", err)
			}
		})
	}
}

// TestCalDAVPollIntervalDefault: 5m against real servers, 10s against the
// in-process sandbox one, and whatever is set either way.
func TestCalDAVPollIntervalDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, SandboxCalDAVPollInterval},
		{map[string]string{"GATEWAY_CALDAV_POLL_INTERVAL": "2m"}, 2 * time.Minute},
		{map[string]string{"GATEWAY_PROVIDERS": "live"}, 5 * time.Minute},
		{map[string]string{"GATEWAY_PROVIDERS": "live", "GATEWAY_CALDAV_POLL_INTERVAL": "30s"}, 30 * time.Second},
	} {
		c, err := Load(env(tc.env))
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.CalDAV.PollInterval != tc.want {
			t.Errorf("%v: poll interval %v, want %v", tc.env, c.CalDAV.PollInterval, tc.want)
		}
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad addr", map[string]string{"GATEWAY_ADDR": "8080"}, "GATEWAY_ADDR"},
		{"port out of range", map[string]string{"GATEWAY_ADDR": "127.0.0.1:80808"}, `GATEWAY_ADDR: "127.0.0.1:80808" has no valid port`},
		{"typo in the port", map[string]string{"GATEWAY_METRICS_ADDR": "localhost:9o90"}, `GATEWAY_METRICS_ADDR: "localhost:9o90" has no valid port`},
		{"unknown log level", map[string]string{"GATEWAY_LOG_LEVEL": "verbose"}, `GATEWAY_LOG_LEVEL: "verbose" is not one of debug, info, warn, error`},
		{"bad debug addr", map[string]string{"GATEWAY_DEBUG_ADDR": "localhost"}, "GATEWAY_DEBUG_ADDR"},
		{"bad metrics addr", map[string]string{"GATEWAY_METRICS_ADDR": "localhost"}, "GATEWAY_METRICS_ADDR"},
		{"metrics on the API's address", map[string]string{"GATEWAY_ADDR": ":8080", "GATEWAY_METRICS_ADDR": ":8080"}, "GATEWAY_METRICS_ADDR"},
		{"bad duration", map[string]string{"GATEWAY_SHUTDOWN_TIMEOUT": "soon"}, "GATEWAY_SHUTDOWN_TIMEOUT"},
		{"negative duration", map[string]string{"GATEWAY_BOOKING_SYNC_TIMEOUT": "-1s"}, "GATEWAY_BOOKING_SYNC_TIMEOUT"},
		{"bad enum", map[string]string{"GATEWAY_AUTH_MODE": "magic"}, "GATEWAY_AUTH_MODE"},
		{"bad db url", map[string]string{"GATEWAY_DATABASE_URL": "mysql://x"}, "GATEWAY_DATABASE_URL"},
		{"bad int", map[string]string{"GATEWAY_JOB_WORKERS": "0"}, "GATEWAY_JOB_WORKERS"},
		{"bad bool", map[string]string{"GATEWAY_CALDAV_ALLOW_PRIVATE": "maybe"}, "GATEWAY_CALDAV_ALLOW_PRIVATE"},
		{"bad url", map[string]string{"GATEWAY_PUBLIC_URL": "ftp://x"}, "GATEWAY_PUBLIC_URL"},
		{"bad key", map[string]string{"GATEWAY_SECRET_KEY": "c2hvcnQ="}, "GATEWAY_SECRET_KEY"},
		{"dev auth in production", map[string]string{"GATEWAY_ENV": "production", "GATEWAY_PROVIDERS": "live", "GATEWAY_JIRA_SITE_URL": "https://x.atlassian.net"}, "GATEWAY_AUTH_MODE"},
		{"sandbox in production", map[string]string{"GATEWAY_ENV": "production", "GATEWAY_AUTH_MODE": "cognito", "GATEWAY_COGNITO_REGION": "eu-west-1", "GATEWAY_COGNITO_USER_POOL_ID": "p", "GATEWAY_COGNITO_CLIENT_IDS": "c"}, "GATEWAY_PROVIDERS"},
		{"cognito without pool", map[string]string{"GATEWAY_AUTH_MODE": "cognito", "GATEWAY_COGNITO_REGION": "eu-west-1", "GATEWAY_COGNITO_CLIENT_IDS": "c"}, "GATEWAY_COGNITO_USER_POOL_ID"},
		{"rescue before timeout", map[string]string{"GATEWAY_JOB_TIMEOUT": "2m", "GATEWAY_JOB_RESCUE_AFTER": "1m"}, "GATEWAY_JOB_RESCUE_AFTER"},
		{"hand-off grace too short", map[string]string{"GATEWAY_WEBHOOK_HANDOFF_GRACE": "500ms"}, "GATEWAY_WEBHOOK_HANDOFF_GRACE"},
		{"hand-off grace not a duration", map[string]string{"GATEWAY_WEBHOOK_HANDOFF_GRACE": "soon"}, "GATEWAY_WEBHOOK_HANDOFF_GRACE"},
		{"production without Google redirect page", map[string]string{"GATEWAY_ENV": "production", "GATEWAY_PROVIDERS": "live", "GATEWAY_JIRA_SITE_URL": "https://x.atlassian.net",
			"GATEWAY_AUTH_MODE": "cognito", "GATEWAY_COGNITO_REGION": "eu-west-1", "GATEWAY_COGNITO_USER_POOL_ID": "p", "GATEWAY_COGNITO_CLIENT_IDS": "c"}, "GATEWAY_GOOGLE_REDIRECT_URL"},
		{"bad Google redirect page", map[string]string{"GATEWAY_GOOGLE_REDIRECT_URL": "/connect"}, "GATEWAY_GOOGLE_REDIRECT_URL"},
		{"ssm without region", map[string]string{"GATEWAY_SECRETS_BACKEND": "ssm"}, "AWS_REGION"},
		{"production without public URL", production(nil, "GATEWAY_PUBLIC_URL"), "GATEWAY_PUBLIC_URL: required"},
		{"production on plain http", production(map[string]string{"GATEWAY_PUBLIC_URL": "http://gw.spotlight.test"}), "GATEWAY_PUBLIC_URL: required"},
		{"production on SQLite", production(nil, "GATEWAY_DATABASE_URL"), "GATEWAY_DATABASE_URL: a postgres:// URL is required"},
		{"production on an SQLite URL", production(map[string]string{"GATEWAY_DATABASE_URL": "sqlite:/data/gw.db"}), "GATEWAY_DATABASE_URL: a postgres:// URL is required"},
		{"production with local secrets", production(map[string]string{"GATEWAY_SECRETS_BACKEND": "local"}), "GATEWAY_SECRETS_BACKEND: ssm is required"},
		{"public URL with a query", map[string]string{"GATEWAY_PUBLIC_URL": "https://gw.example.com/?a=b"}, "GATEWAY_PUBLIC_URL"},
		{"key not base64", map[string]string{"GATEWAY_SECRET_KEY": "not base64!"}, "GATEWAY_SECRET_KEY: key 1 is not valid standard base64"},
		{"second key too short", map[string]string{"GATEWAY_SECRET_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,c2hvcnQ="}, "key 2 must be base64 of 32 bytes"},
		{"key too short", map[string]string{"GATEWAY_SECRET_KEY": "c2hvcnQ="}, "it decodes to 5 bytes"},
		{"bad Sentry DSN", map[string]string{"SENTRY_DSN": "https://publickey@bad host/1"}, "SENTRY_DSN: not a Sentry DSN"},
		{"Sentry DSN without key", map[string]string{"SENTRY_DSN": "https://o1.ingest.sentry.io/1"}, "SENTRY_DSN: not a Sentry DSN"},
		{"two service scopes", map[string]string{"GATEWAY_SERVICE_SCOPE": "a/b c/d"}, "GATEWAY_SERVICE_SCOPE"},
		{"service scope with a quote", map[string]string{"GATEWAY_SERVICE_SCOPE": `a/"b"`}, "GATEWAY_SERVICE_SCOPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestLoadProduction(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"GATEWAY_ENV": "production", "GATEWAY_ADDR": ":8080", "GATEWAY_AUTH_MODE": "cognito",
		"GATEWAY_COGNITO_REGION": "eu-central-1", "GATEWAY_COGNITO_USER_POOL_ID": "eu-central-1_abc",
		"GATEWAY_COGNITO_CLIENT_IDS": " a , b ", "GATEWAY_PROVIDERS": "live", "GATEWAY_SECRETS_BACKEND": "ssm",
		"AWS_REGION": "eu-central-1", "GATEWAY_JIRA_SITE_URL": "https://spotlight.atlassian.net",
		"GATEWAY_GOOGLE_REDIRECT_URL": "https://app.spotlight.test/connect/google",
		"GATEWAY_DATABASE_URL":        "postgres://gw@db/gw",
		"GATEWAY_PUBLIC_URL":          "https://gw.spotlight.test/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Auth.Issuer(); got != "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_abc" {
		t.Errorf("Issuer = %q", got)
	}
	if len(c.Auth.ClientIDs) != 2 || c.Auth.ClientIDs[1] != "b" {
		t.Errorf("ClientIDs = %q", c.Auth.ClientIDs)
	}
	if c.PublicURL != "https://gw.spotlight.test" || c.Sentry.Environment != "production" {
		t.Errorf("derived values: %q %q", c.PublicURL, c.Sentry.Environment)
	}
}

// production is a valid production environment with changes: the values
// of set replace or add, the names in unset are left out.
func production(set map[string]string, unset ...string) map[string]string {
	m := map[string]string{
		"GATEWAY_ENV": "production", "GATEWAY_AUTH_MODE": "cognito", "GATEWAY_COGNITO_REGION": "eu-central-1",
		"GATEWAY_COGNITO_USER_POOL_ID": "eu-central-1_abc", "GATEWAY_COGNITO_CLIENT_IDS": "a",
		"GATEWAY_PROVIDERS": "live", "GATEWAY_SECRETS_BACKEND": "ssm", "AWS_REGION": "eu-central-1",
		"GATEWAY_JIRA_SITE_URL": "https://spotlight.atlassian.net", "GATEWAY_GOOGLE_REDIRECT_URL": "https://app.spotlight.test/connect/google",
		"GATEWAY_DATABASE_URL": "postgres://gw@db/gw", "GATEWAY_PUBLIC_URL": "https://gw.spotlight.test",
	}
	for k, v := range set {
		m[k] = v
	}
	for _, k := range unset {
		delete(m, k)
	}
	return m
}

func TestProductionBaseIsValid(t *testing.T) {
	t.Parallel()
	if _, err := Load(env(production(nil))); err != nil {
		t.Fatalf("the production base of the table tests does not load: %v", err)
	}
}

func TestSentryDSNNotEchoed(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{"SENTRY_DSN": "https://topsecretkey@bad host/1"}))
	if err == nil || strings.Contains(err.Error(), "topsecretkey") {
		t.Fatalf("Load = %v, want an error that does not show the DSN's key", err)
	}
}

func TestPublicURLTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"http://localhost:8080/", "http://localhost:8080//", "http://localhost:8080"} {
		c, err := Load(env(map[string]string{"GATEWAY_PUBLIC_URL": v}))
		if err != nil {
			t.Fatal(err)
		}
		if c.PublicURL != "http://localhost:8080" {
			t.Errorf("GATEWAY_PUBLIC_URL=%s: PublicURL = %q, want it without the trailing slash", v, c.PublicURL)
		}
	}
}

func TestZoomEarlyStart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"live default", production(nil), time.Hour},
		{"sandbox default: any start", map[string]string{}, 0},
		{"sandbox, set", map[string]string{"GATEWAY_ZOOM_EARLY_START": "30m"}, 30 * time.Minute},
		{"live, off", production(map[string]string{"GATEWAY_ZOOM_EARLY_START": "0"}), 0},
	} {
		c, err := Load(env(tt.env))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Zoom.EarlyStart != tt.want {
			t.Errorf("%s: EarlyStart = %v, want %v", tt.name, c.Zoom.EarlyStart, tt.want)
		}
	}
	if _, err := Load(env(map[string]string{"GATEWAY_ZOOM_EARLY_START": "-5m"})); err == nil || !strings.Contains(err.Error(), "GATEWAY_ZOOM_EARLY_START") {
		t.Errorf("negative early start: %v", err)
	}
}

// TestDatabaseWaitDefault: serve waits 60s for a PostgreSQL server (as in
// production, where it may come up after the gateway) and not at all for
// the embedded SQLite file, which waiting does not mend; whatever is set
// either way.
func TestDatabaseWaitDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"embedded default", nil, 0},
		{"production", production(nil), time.Minute},
		{"PostgreSQL in development (docker compose)", map[string]string{"GATEWAY_DATABASE_URL": "postgres://gw@db/gw"}, time.Minute},
		{"SQLite URL", map[string]string{"GATEWAY_DATABASE_URL": "sqlite:/tmp/gw.db"}, 0},
		{"set with SQLite", map[string]string{"GATEWAY_DB_WAIT": "30s"}, 30 * time.Second},
		{"production, fail at once", production(map[string]string{"GATEWAY_DB_WAIT": "0"}), 0},
		{"production, longer", production(map[string]string{"GATEWAY_DB_WAIT": "3m"}), 3 * time.Minute},
	} {
		c, err := Load(env(tt.env))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.DatabaseWait != tt.want {
			t.Errorf("%s: DatabaseWait = %v, want %v", tt.name, c.DatabaseWait, tt.want)
		}
	}
	for _, v := range []string{"-1s", "soon", "60"} {
		if _, err := Load(env(map[string]string{"GATEWAY_DB_WAIT": v})); err == nil || !strings.Contains(err.Error(), "GATEWAY_DB_WAIT:") {
			t.Errorf("GATEWAY_DB_WAIT=%s: Load = %v, want an error naming it", v, err)
		}
	}
}

func TestVarsAreDocumented(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, v := range Vars() {
		if v.Help == "" || seen[v.Name] {
			t.Errorf("%s: missing help or listed twice", v.Name)
		}
		seen[v.Name] = true
	}
}

// TestProductionListsEveryProblemAtOnce: an operator who sets
// GATEWAY_ENV=production and nothing else (with a typo on top) learns every
// setting production needs from one start, not one batch per attempt: the
// rules that span variables are checked even when a value is malformed, and
// production's requirements (Cognito's pool, SSM's region, the live
// providers' Jira site and Google redirect page) are named before the mode
// that needs them is set.
func TestProductionListsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{"GATEWAY_ENV": "production", "GATEWAY_LOG_LEVEL": "verbose"}))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, name := range []string{"GATEWAY_LOG_LEVEL", "GATEWAY_AUTH_MODE", "GATEWAY_COGNITO_REGION", "GATEWAY_COGNITO_USER_POOL_ID",
		"GATEWAY_COGNITO_CLIENT_IDS", "GATEWAY_PROVIDERS", "GATEWAY_PUBLIC_URL", "GATEWAY_DATABASE_URL", "GATEWAY_SECRETS_BACKEND",
		"AWS_REGION", "GATEWAY_JIRA_SITE_URL", "GATEWAY_GOOGLE_REDIRECT_URL"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	// A malformed value does not also fail the rules that read it.
	_, err = Load(env(map[string]string{"GATEWAY_JOB_TIMEOUT": "soon", "GATEWAY_WEBHOOK_HANDOFF_GRACE": "10ms"}))
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_JOB_TIMEOUT:") || !strings.Contains(err.Error(), "GATEWAY_WEBHOOK_HANDOFF_GRACE: must be at least 1s") ||
		strings.Contains(err.Error(), "GATEWAY_JOB_RESCUE_AFTER") {
		t.Errorf("Load = %v, want GATEWAY_JOB_TIMEOUT and GATEWAY_WEBHOOK_HANDOFF_GRACE named, GATEWAY_JOB_RESCUE_AFTER not", err)
	}
}

// TestSSMPrefixChecked: a prefix that is not one SSM path segment is a
// configuration error naming GATEWAY_SSM_PREFIX, not a failure after the
// database was migrated that blames the Sentry DSN lookup.
func TestSSMPrefixChecked(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/spotlight", "spot light", "a/b", ".."} {
		if _, err := Load(env(map[string]string{"GATEWAY_SSM_PREFIX": p})); err == nil || !strings.Contains(err.Error(), "GATEWAY_SSM_PREFIX:") {
			t.Errorf("GATEWAY_SSM_PREFIX=%q: Load = %v, want an error naming it", p, err)
		}
	}
	if _, err := Load(env(map[string]string{"GATEWAY_SSM_PREFIX": "spotlight-prod"})); err != nil {
		t.Errorf("GATEWAY_SSM_PREFIX=spotlight-prod: %v", err)
	}
}

// TestURLCredentialsNotEchoed: the message about a malformed URL does not
// repeat a password written into it (the message goes to the task's log).
func TestURLCredentialsNotEchoed(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"GATEWAY_PUBLIC_URL":    "https://admin:hunter2@gw.example.com",
		"GATEWAY_JIRA_SITE_URL": "https://u:jirapw@x atlassian",
		"GATEWAY_ZOOM_API_URL":  "ftp://u:zoompw@zoom",
	}))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, secret := range []string{"hunter2", "jirapw", "zoompw"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows %q:\n%v", secret, err)
		}
	}
	for _, name := range []string{"GATEWAY_PUBLIC_URL", "GATEWAY_JIRA_SITE_URL", "GATEWAY_ZOOM_API_URL"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
}

// TestShownHidesCredentials: what `gateway config` prints of each value.
func TestShownHidesCredentials(t *testing.T) {
	t.Parallel()
	byName := map[string]Var{}
	for _, v := range Vars() {
		byName[v.Name] = v
	}
	for _, tt := range []struct{ name, raw, want string }{
		{"GATEWAY_SECRET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "(set, not shown)"},
		{"SENTRY_DSN", "https://key@o1.ingest.sentry.io/1", "(set, not shown)"},
		{"GATEWAY_DATABASE_URL", "postgres://gw:s3cret@db:5432/gw?sslmode=require", "postgres://xxxxx@db:5432/gw?sslmode=require"},
		{"GATEWAY_DATABASE_URL", "postgres://db/gw?user=gw&password=s3cret&sslpassword=k3y", "postgres://db/gw?user=gw&password=xxxxx&sslpassword=xxxxx"},
		{"GATEWAY_JIRA_SITE_URL", "https://u:pw@x atlassian", "https://xxxxx@x atlassian"},
		{"GATEWAY_ADDR", ":8080", ":8080"},
		{"GATEWAY_PUBLIC_URL", "", "-"},
	} {
		if got := byName[tt.name].Shown(tt.raw); got != tt.want {
			t.Errorf("%s: Shown(%q) = %q, want %q", tt.name, tt.raw, got, tt.want)
		}
	}
}

// Warnings flags a shutdown timeout that cuts waiting booking requests, and
// nothing in the defaults.
func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want int
	}{
		{"defaults", nil, 0},
		{"shutdown shorter than a booking's wait", map[string]string{"GATEWAY_SHUTDOWN_TIMEOUT": "5s"}, 1},
		{"shorter booking wait too", map[string]string{"GATEWAY_SHUTDOWN_TIMEOUT": "5s", "GATEWAY_BOOKING_SYNC_TIMEOUT": "4s"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if w := c.Warnings(); len(w) != tc.want || (tc.want > 0 && !strings.Contains(w[0], "GATEWAY_SHUTDOWN_TIMEOUT (5s)")) {
				t.Fatalf("Warnings() = %q, want %d naming the shutdown timeout", w, tc.want)
			}
		})
	}
}

// TestProductionRefusesPlaintextEndpoints: in production every endpoint the
// gateway sends credentials to (Zoom's client secret, Google's client secret
// and tokens, Jira's API token, SSM's decrypted parameters) or whose keys it
// trusts (Cognito's JWKS), and the page Google sends authorization codes
// to, must be https://: a typo of http:// would work, and send them in
// clear text. Plain HTTP on loopback (a sidecar, a test double) stays
// allowed, and outside production nothing changes.
func TestProductionRefusesPlaintextEndpoints(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"GATEWAY_COGNITO_JWKS_URL", "GATEWAY_SSM_ENDPOINT", "GATEWAY_ZOOM_API_URL", "GATEWAY_ZOOM_OAUTH_URL",
		"GATEWAY_GOOGLE_AUTH_URL", "GATEWAY_GOOGLE_TOKEN_URL", "GATEWAY_GOOGLE_API_URL", "GATEWAY_GOOGLE_REDIRECT_URL",
		"GATEWAY_JIRA_SITE_URL",
	} {
		_, err := Load(env(production(map[string]string{name: "http://endpoint.example.com/path"})))
		if err == nil || !strings.Contains(err.Error(), name+": ") || !strings.Contains(err.Error(), "https://") {
			t.Errorf("production with %s=http://…: Load = %v, want an error naming it and asking for https://", name, err)
		}
		for _, loopback := range []string{"http://127.0.0.1:4566", "http://localhost:8081/x", "http://[::1]:9000"} {
			if _, err := Load(env(production(map[string]string{name: loopback}))); err != nil {
				t.Errorf("production with %s=%s (loopback): %v", name, loopback, err)
			}
		}
		if _, err := Load(env(map[string]string{name: "http://endpoint.example.com/path"})); err != nil {
			t.Errorf("development with %s=http://…: %v", name, err)
		}
	}
}
