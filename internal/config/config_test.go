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
	if c.Booking.SyncTimeout != 8*time.Second || c.ShutdownTimeout != 25*time.Second {
		t.Errorf("durations = %v, %v", c.Booking.SyncTimeout, c.ShutdownTimeout)
	}
	if c.DataDir != "./data" || c.DatabaseURL != "" {
		t.Errorf("storage = %q %q", c.DataDir, c.DatabaseURL)
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
		{"bad debug addr", map[string]string{"GATEWAY_DEBUG_ADDR": "localhost"}, "GATEWAY_DEBUG_ADDR"},
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
	if c.PublicURL != "http://localhost:8080" || c.Sentry.Environment != "production" {
		t.Errorf("derived values: %q %q", c.PublicURL, c.Sentry.Environment)
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
