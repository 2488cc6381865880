package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/logtest"
	"github.com/spotlight/gateway/internal/sandbox"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var readyURL = regexp.MustCompile(`"msg":"gateway ready","url":"(http://[^"]+)"`)

// startGateway runs the whole program in-process on a free port and waits
// until /healthz answers.
func startGateway(t *testing.T, env map[string]string) (url string, stdout *logtest.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := &logtest.Buffer{}, &logtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), stdout, stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyURL.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("gateway exited early: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready\nstdout: %s\nstderr: %s", stdout, stderr)
		}
	}
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("gateway did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return url, stdout, stop
}

func get(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestServeEmbeddedDefault is the newcomer's path: embedded defaults, dev
// auth, sandbox providers; a token from `gateway token` in the same data
// folder is accepted; shutdown is clean.
func TestServeEmbeddedDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir}
	url, stdout, stop := startGateway(t, env)

	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml", "/docs"} {
		if code, body, _ := get(t, url+path, ""); code != 200 {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}
	code, body, hdr := get(t, url+"/v1/bookings", "")
	if code != 401 || hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("/v1/bookings without token = %d %s", code, body)
	}

	var tok bytes.Buffer
	if err := run(t.Context(), []string{"token", "--sub", "alice", "--group", "candidate"}, envOf(env), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(tok.String())
	code, body, hdr = get(t, url+"/v1/bookings", token)
	if code == 401 || code == 404 || hdr.Get("Content-Type") != "application/problem+json" && code >= 400 {
		t.Fatalf("/v1/bookings with a dev token = %d %s", code, body)
	}

	for _, f := range []string{"gateway.db", "dev-signing-key.pem", "secret.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("data/%s: %v", f, err)
		}
		if f != "gateway.db" && fi.Mode().Perm() != 0o600 {
			t.Errorf("data/%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if !strings.Contains(stdout.String(), `"msg":"sandbox provider listening","provider":"zoom"`) {
		t.Errorf("sandbox providers not logged:\n%s", stdout)
	}
	// `gateway sandbox` finds the simulators through data/sandbox/urls.json.
	urls, err := sandbox.ReadURLs(filepath.Join(dir, "sandbox", sandbox.URLsFile))
	if err != nil || !strings.HasPrefix(urls["zoom"], "http://127.0.0.1:") {
		t.Errorf("data/sandbox/%s: %v %v", sandbox.URLsFile, urls, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	// The simulators' state is saved at the stop, next to the database.
	for _, name := range []string{"zoom", "google", "jira", "caldav"} {
		fi, err := os.Stat(filepath.Join(dir, "sandbox", name+".json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("data/sandbox/%s.json after the stop: %v %v", name, fi, err)
		}
	}
	if !strings.Contains(stdout.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged")
	}
	// Every log line is JSON.
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"serve"}, envOf(map[string]string{"GATEWAY_ENV": "production", "GATEWAY_DATA_DIR": t.TempDir()}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_AUTH_MODE") || exitCode(err) != 2 {
		t.Fatalf("run = %v, want a usage error naming GATEWAY_AUTH_MODE", err)
	}
}

func TestServeHelpListsEveryVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"serve", "--help"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"GATEWAY_ADDR", "127.0.0.1:8080", "GATEWAY_DATABASE_URL", "GATEWAY_SHUTDOWN_TIMEOUT", "SENTRY_DSN"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("serve --help lacks %s:\n%s", v, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"frobnicate"}, envOf(nil), io.Discard, io.Discard)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("run(frobnicate) = %v", err)
	}
}

func TestMigrateAndHealthcheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"migrate"}, envOf(env), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0001_init") {
		t.Fatalf("migrate output: %s", out.String())
	}
	url, _, _ := startGateway(t, env)
	hc := map[string]string{"GATEWAY_ADDR": strings.TrimPrefix(url, "http://")}
	if err := run(t.Context(), []string{"healthcheck"}, envOf(hc), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck against a running gateway: %v", err)
	}
	if err := run(t.Context(), []string{"healthcheck"}, envOf(map[string]string{"GATEWAY_ADDR": "127.0.0.1:1"}), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck against a closed port succeeded")
	}
}

// TestHealthcheckAddr: healthcheck reads GATEWAY_ADDR as serve does
// (surrounding spaces trimmed) and probes loopback for an all-interfaces
// host, as the image's :8080.
func TestHealthcheckAddr(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, addr := range []string{"127.0.0.1:" + port, ":" + port, "0.0.0.0:" + port, "[::]:" + port, " :" + port + " ", "127.0.0.1:" + port + "\t"} {
		if err := run(t.Context(), []string{"healthcheck"}, envOf(map[string]string{"GATEWAY_ADDR": addr}), io.Discard, io.Discard); err != nil {
			t.Errorf("healthcheck with GATEWAY_ADDR=%q: %v", addr, err)
		}
	}
}

func TestSecretsRotateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"GATEWAY_DATA_DIR": dir}
	ctx := t.Context()
	a, err := openBase(ctx, mustConfig(t, env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.secrets.Put(ctx, "/spotlight/development/providers/zoom", []byte("client-secret-value"), 0); err != nil {
		t.Fatal(err)
	}
	a.close(ctx)
	before, _ := os.ReadFile(filepath.Join(dir, "secret.key"))

	var out bytes.Buffer
	if err := run(ctx, []string{"secrets", "rotate-key"}, envOf(env), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "re-encrypted 1 secrets") {
		t.Fatalf("rotate-key output: %s", out.String())
	}
	after, _ := os.ReadFile(filepath.Join(dir, "secret.key"))
	if bytes.Equal(before, after) || len(after) == 0 {
		t.Fatal("key file unchanged after rotation")
	}
	a, err = openBase(ctx, mustConfig(t, env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	s, err := a.secrets.Get(ctx, "/spotlight/development/providers/zoom")
	if err != nil || string(s.Value) != "client-secret-value" {
		t.Fatalf("after rotation Get = %q, %v", s.Value, err)
	}
}

func mustConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := loadConfig(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var debugURL = regexp.MustCompile(`"msg":"debug listener \(pprof\)","url":"(http://[^"]+)"`)

// TestDebugListener: GATEWAY_DEBUG_ADDR serves pprof on its own listener;
// the API listener does not.
func TestDebugListener(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir(), "GATEWAY_DEBUG_ADDR": "127.0.0.1:0"}
	url, stdout, _ := startGateway(t, env)
	m := debugURL.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no debug listener logged:\n%s", stdout)
	}
	if code, body, _ := get(t, m[1]+"goroutine?debug=1", ""); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("debug goroutine profile = %d %.200s", code, body)
	}
	if code, _, _ := get(t, url+"/debug/pprof/", ""); code != 404 {
		t.Errorf("API listener serves /debug/pprof/: %d", code)
	}
}

var metricsURL = regexp.MustCompile(`"msg":"metrics listener","url":"(http://[^"]+)"`)

// TestMetricsListener: with GATEWAY_METRICS_ADDR, /metrics is served on
// that listener only (the API listener answers it 404 problem+json like
// any unknown path), and the listener stops with the gateway.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir(), "GATEWAY_METRICS_ADDR": "127.0.0.1:0"}
	url, stdout, stop := startGateway(t, env)
	m := metricsURL.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no metrics listener logged:\n%s", stdout)
	}
	if code, _, _ := get(t, url+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	code, body, _ := get(t, m[1], "")
	for _, want := range []string{"go_goroutines", `go_sql_open_connections{db_name="gateway"}`, `gateway_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, want 200 with %s:\n%.400s", m[1], code, want, body)
		}
	}
	code, body, hdr := get(t, url+"/metrics", "")
	if code != 404 || hdr.Get("Content-Type") != "application/problem+json" || strings.Contains(body, "go_goroutines") {
		t.Errorf("API listener GET /metrics = %d %q %.200s, want 404 problem+json", code, hdr.Get("Content-Type"), body)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if resp, err := http.Get(m[1]); err == nil {
		resp.Body.Close()
		t.Errorf("the metrics listener still answers after the stop: %d", resp.StatusCode)
	}
}

// TestMetricsAddrInUse: a metrics port another process holds stops serve
// at once, naming the variable, before the database is opened.
func TestMetricsAddrInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	err = run(t.Context(), []string{"serve"}, envOf(map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir,
		"GATEWAY_METRICS_ADDR": busy.Addr().String()}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen on GATEWAY_METRICS_ADDR "+busy.Addr().String()) || exitCode(err) != 1 {
		t.Fatalf("serve with a busy metrics port = %v, want exit 1 naming GATEWAY_METRICS_ADDR", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gateway.db")); err == nil {
		t.Error("the database was opened before the metrics port was bound")
	}
}

// TestSandboxCommandErrors: `gateway sandbox` says what is wrong before it
// sends anything: usage mistakes exit 2, and without a sandbox gateway in
// this folder it says to start one.
func TestSandboxCommandErrors(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"GATEWAY_DATA_DIR": t.TempDir()})
	for _, tc := range []struct {
		args     []string
		usage    bool
		contains string
	}{
		{[]string{"sandbox"}, true, "want zoom|jira|caldav|google"},
		{[]string{"sandbox", "caldav", "move", "b-1", "--start", "noon"}, true, "not an RFC 3339 time"},
		{[]string{"sandbox", "google", "delete", "b-1"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "outlook", "move", "1"}, true, "want zoom"},
		{[]string{"sandbox", "jira", "start", "SPOT-1"}, true, "unknown jira action"},
		{[]string{"sandbox", "jira", "status", "SPOT-1"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "zoom", "start"}, true, "want zoom"},
		{[]string{"sandbox", "zoom", "start", "abc"}, true, "not a Zoom meeting id"},
		{[]string{"sandbox", "zoom", "move", "123", "--start", "tomorrow"}, true, "not an RFC 3339 time"},
		{[]string{"sandbox", "zoom", "start", "123", "--bogus"}, true, "bogus"},
		{[]string{"sandbox", "zoom", "start", "123"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "calendar", "work"}, true, "not a Google calendar id"},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--role", "admin"}, true, `--role "admin"`},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z"}, true, "takes no --start"},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--as", "mentor@example.com", "--role", "reader", "--name", "Work"},
			false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com"}, true, "busy needs --start"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "10:00"}, true, "not an RFC 3339 time"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z", "--duration", "-5"}, true, "--duration -5"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z", "--duration", "2000"}, true, "--duration 2000"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z", "--as", "mentor@example.com"}, true, "takes no --as"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "share", "work@group.calendar.google.com"}, true, `unknown google action "share"`},
		{[]string{"sandbox", "caldav", "calendar", "my/work"}, true, "not a CalDAV calendar name"},
		{[]string{"sandbox", "caldav", "calendar", "work", "--as", "mentor"}, true, "takes no --as"},
		{[]string{"sandbox", "caldav", "calendar", "work", "--role", "owner"}, true, "takes no --role"},
		{[]string{"sandbox", "caldav", "calendar", "work", "--name", "Work"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "caldav", "busy", "work", "--duration", "30"}, true, "busy needs --start"},
		{[]string{"sandbox", "caldav", "busy", "work", "--start", "2030-01-07T10:00:00Z", "--email", "a@b"}, true, "takes no --email"},
		{[]string{"sandbox", "google", "calendar", "Mentor@example.com", "--delete"}, true, "primary calendar of a sandbox account"},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--delete", "--name", "Work"}, true, "takes no --name"},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--delete", "--role", "reader"}, true, "takes no --role"},
		{[]string{"sandbox", "google", "calendar", "work@group.calendar.google.com", "--delete", "--as", "candidate@example.com"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "busy", "work@group.calendar.google.com", "--start", "2030-01-07T10:00:00Z", "--delete"}, true, "takes no --delete"},
		{[]string{"sandbox", "caldav", "calendar", "work", "--delete", "--as", "mentor"}, true, "takes no --as"},
		{[]string{"sandbox", "caldav", "calendar", "work", "--delete"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "revoke", "mentor@example.com"}, true, "takes no <id>"},
		{[]string{"sandbox", "google", "revoke", "--as", "mentor"}, true, `--as "mentor" is not an email`},
		{[]string{"sandbox", "google", "revoke", "--role", "owner"}, true, "takes no --role"},
		{[]string{"sandbox", "google", "revoke", "--as", "candidate@example.com"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "google", "revoke"}, false, "start `gateway` here first"},
		{[]string{"sandbox", "caldav", "revoke", "x"}, true, `unknown caldav action "revoke" (move, delete, calendar, busy)`},
	} {
		err := run(t.Context(), tc.args, env, io.Discard, io.Discard)
		if err == nil || (exitCode(err) == 2) != tc.usage || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%v: %v (exit %d), want usage=%v and %q", tc.args, err, exitCode(err), tc.usage, tc.contains)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"sandbox", "--help"}, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "meeting.participant_joined") ||
		!strings.Contains(out.String(), "gateway sandbox google calendar <calendar-id>") ||
		!strings.Contains(out.String(), "gateway sandbox google revoke [--as EMAIL]") {
		t.Errorf("sandbox --help: %v\n%s", err, out.String())
	}
}

// TestSecretsRotateKeyWhileServing: rotating the key file of a data folder
// a gateway serves from is refused, and the key file is left alone. The
// running gateway holds only the old key: it could not read what the
// rotation re-encrypted, and what it sealed afterwards under the old key
// would be lost with the old key file.
func TestSecretsRotateKeyWhileServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startGateway(t, map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir})
	before, err := os.ReadFile(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"secrets", "rotate-key"}, envOf(map[string]string{"GATEWAY_DATA_DIR": dir}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is in use by another gateway") {
		t.Fatalf("rotate-key beside a running gateway = %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "secret.key")); !bytes.Equal(before, after) {
		t.Fatal("the key file changed under a running gateway")
	}
	if _, err := os.Stat(filepath.Join(dir, "secret.key.next")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("secret.key.next after a refused rotation: %v", err)
	}
}

// TestSecretsRotateEnvKey: with GATEWAY_SECRET_KEY the rotation runs while
// every process holds NEW,OLD: a process still on that list reads secrets
// sealed under either key, before and after the rotation.
func TestSecretsRotateEnvKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	oldKey, newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	env := func(key string) map[string]string {
		return map[string]string{"GATEWAY_DATA_DIR": dir, "GATEWAY_SECRET_KEY": key}
	}
	const path = "/spotlight/development/providers/zoom"

	a, err := openBase(ctx, mustConfig(t, env(oldKey)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.secrets.Put(ctx, path, []byte("sealed-under-old"), 0); err != nil {
		t.Fatal(err)
	}
	a.close(ctx)

	// Another replica, restarted with NEW,OLD, keeps running through the rotation.
	replica, err := openBase(ctx, mustConfig(t, env(newKey+","+oldKey)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.close(ctx)
	if s, err := replica.secrets.Get(ctx, path); err != nil || string(s.Value) != "sealed-under-old" {
		t.Fatalf("NEW,OLD before the rotation: Get = %q, %v", s.Value, err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"secrets", "rotate-key"}, envOf(env(newKey+","+oldKey)), &out, io.Discard); err == nil || !strings.Contains(err.Error(), "GATEWAY_SECRET_KEY=NEW,OLD") {
		t.Fatalf("rotate-key without --new-key = %v, want the rotation's steps", err)
	}
	if err := run(ctx, []string{"secrets", "rotate-key", "--new-key", newKey}, envOf(env(newKey+","+oldKey)), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s, err := replica.secrets.Get(ctx, path); err != nil || string(s.Value) != "sealed-under-old" {
		t.Fatalf("NEW,OLD after the rotation: Get = %q, %v", s.Value, err)
	}
	after, err := openBase(ctx, mustConfig(t, env(newKey)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer after.close(ctx)
	if s, err := after.secrets.Get(ctx, path); err != nil || string(s.Value) != "sealed-under-old" {
		t.Fatalf("NEW alone after the rotation: Get = %q, %v", s.Value, err)
	}
}

// TestDataFolderLocked: a second gateway on the same data folder stops at
// once, naming the folder and the first one's pid, before it opens the
// database.
func TestDataFolderLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startGateway(t, map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir})
	err := run(t.Context(), []string{"serve"}, envOf(map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": dir}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is in use by another gateway") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second serve on the same data folder = %v", err)
	}
}

func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, envOf(nil), &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "commands:") || !strings.Contains(out.String(), "healthcheck") {
			t.Errorf("%v printed:\n%s", args, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"healthcheck", "--help"}, envOf(map[string]string{"GATEWAY_ADDR": "127.0.0.1:1"}), &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: gateway healthcheck") {
		t.Errorf("healthcheck --help = %v:\n%s", err, out.String())
	}
}

// TestSecretsHelp: `gateway secrets --help` prints the subcommand's usage
// and exits 0, as every other command's --help does; without rotate-key
// it is a usage error.
func TestSecretsHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		err := run(t.Context(), []string{"secrets", arg}, envOf(nil), &out, io.Discard)
		if err != nil || !strings.Contains(out.String(), "usage: gateway secrets rotate-key") {
			t.Errorf("secrets %s = %v:\n%s", arg, err, out.String())
		}
	}
	for _, args := range [][]string{{"secrets"}, {"secrets", "rotate"}} {
		if err := run(t.Context(), args, envOf(nil), io.Discard, io.Discard); err == nil || exitCode(err) != 2 {
			t.Errorf("%v = %v, want a usage error", args, err)
		}
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no key in the folder", []string{"token", "--sub", "alice"}, "no dev signing key in " + dir},
		{"zero ttl", []string{"token", "--sub", "alice", "--ttl", "0"}, "--ttl must be positive"},
		{"negative ttl", []string{"token", "--sub", "alice", "--ttl", "-1h"}, "--ttl must be positive"},
	} {
		err := run(t.Context(), tt.args, envOf(map[string]string{"GATEWAY_DATA_DIR": dir}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
			t.Errorf("%s: run = %v, want a usage error with %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "dev-signing-key.pem")); err == nil {
		t.Error("gateway token created a signing key of its own")
	}
}

// TestTokenCommand: `gateway token` mints tokens the server's verifier
// accepts; --service mints a machine client's token with the service scope,
// and a machine client's token without that scope holds no role.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		sub     string
		service bool
		roles   []auth.Role
		usage   bool
	}{
		{"service", []string{"--service"}, nil, auth.DevClientID, true, []auth.Role{auth.RoleService}, false},
		{"service with a configured scope", []string{"--service"}, map[string]string{"GATEWAY_SERVICE_SCOPE": "acme/gw"}, auth.DevClientID, true, []auth.Role{auth.RoleService}, false},
		{"machine client without the scope", []string{"--sub", auth.DevClientID}, nil, auth.DevClientID, false, nil, false},
		{"machine client with another scope", []string{"--sub", auth.DevClientID, "--scope", "acme/other"}, nil, auth.DevClientID, false, nil, false},
		{"machine client with the scope", []string{"--sub", auth.DevClientID, "--scope", auth.DefaultServiceScope}, nil, auth.DevClientID, true, []auth.Role{auth.RoleService}, false},
		{"candidate", []string{"--sub", "alice", "--group", "candidate"}, nil, "alice", false, []auth.Role{auth.RoleCandidate}, false},
		{"service with a group", []string{"--service", "--group", "admin"}, nil, "", false, nil, true},
		{"service with another sub", []string{"--service", "--sub", "alice"}, nil, "", false, nil, true},
		{"no sub", nil, nil, "", false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"GATEWAY_DATA_DIR": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			// The server's verifier; it creates the key `gateway token` signs with.
			cfg, err := config.Load(envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := newAuthenticator(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = run(t.Context(), append([]string{"token"}, tt.args...), envOf(env), &out, io.Discard)
			if tt.usage {
				if err == nil || exitCode(err) != 2 {
					t.Fatalf("run = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(t.Context(), strings.TrimSpace(out.String()))
			if err != nil {
				t.Fatalf("the server's verifier refuses the token: %v", err)
			}
			if p.Subject != tt.sub || p.IsService() != tt.service || !slices.Equal(p.Roles, tt.roles) {
				t.Errorf("principal = %+v, want sub %q, roles %v", p, tt.sub, tt.roles)
			}
		})
	}
}

// TestConfigCommand: `gateway config` prints every variable and where its
// value comes from without any credential, and refuses (status 2) what
// serve would refuse, listing every problem.
func TestConfigCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"GATEWAY_DATABASE_URL": "postgres://gw:db-pass-123@db.internal:5432/gw?sslmode=require",
		"GATEWAY_SECRET_KEY":   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SENTRY_DSN":           "https://sentrykey456@o1.ingest.sentry.io/1",
		"GATEWAY_ADDR":         ":8080",
		"GATEWAY_METRICS_ADDR": ":9090",
		// Shorter than a booking request's wait: valid, with a warning.
		"GATEWAY_SHUTDOWN_TIMEOUT": "5s",
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"config"}, envOf(env), &out, io.Discard); err != nil {
		t.Fatalf("config: %v\n%s", err, out.String())
	}
	for _, secret := range []string{"db-pass-123", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "sentrykey456"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("config prints %q:\n%s", secret, out.String())
		}
	}
	for _, want := range []string{"GATEWAY_ADDR", ":8080", "environment", "GATEWAY_JOB_WORKERS", "GATEWAY_METRICS_ADDR", ":9090", "default", "db.internal:5432/gw", "warning: GATEWAY_SHUTDOWN_TIMEOUT (5s) is shorter", "database wait 1m0s", "configuration ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config does not print %q:\n%s", want, out.String())
		}
	}
	err := run(t.Context(), []string{"config"}, envOf(map[string]string{"GATEWAY_ENV": "production"}), io.Discard, io.Discard)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "GATEWAY_COGNITO_REGION") || !strings.Contains(err.Error(), "GATEWAY_PUBLIC_URL") {
		t.Errorf("config in production with nothing set = %v (exit %d), want status 2 listing every problem", err, exitCode(err))
	}
	// A metrics listener on the API's address is one of the problems.
	err = run(t.Context(), []string{"config"}, envOf(map[string]string{"GATEWAY_ADDR": ":8080", "GATEWAY_METRICS_ADDR": "0.0.0.0:8080", "GATEWAY_LOG_LEVEL": "loud"}), io.Discard, io.Discard)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "GATEWAY_METRICS_ADDR:") || !strings.Contains(err.Error(), "GATEWAY_LOG_LEVEL:") {
		t.Errorf("config with metrics on the API's port = %v (exit %d), want status 2 naming GATEWAY_METRICS_ADDR and GATEWAY_LOG_LEVEL", err, exitCode(err))
	}
}

// TestCleanStopWaitsForItsParts: a gateway stopped with nothing hanging
// (Ctrl-C on the embedded default) gives the booking and webhook services
// what is left of GATEWAY_SHUTDOWN_TIMEOUT to finish their runs, and closes
// the database before it exits, without a warning.
//
// Not parallel: it adds a wire function (wireFuncs is the package's).
func TestCleanStopWaitsForItsParts(t *testing.T) {
	var stopErr error = errors.New("onStop never ran")
	saved := wireFuncs
	wireFuncs = append(slices.Clone(saved), func(w *wiring) error {
		w.onStop = append(w.onStop, func(ctx context.Context) {
			stopErr = ctx.Err()
			if _, ok := ctx.Deadline(); !ok {
				stopErr = errors.New("no deadline")
			}
		})
		return nil
	})
	t.Cleanup(func() { wireFuncs = saved })

	_, stdout, stop := startGateway(t, map[string]string{"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir()})
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if stopErr != nil {
		t.Errorf("the services' stop budget at a clean stop: %v, want the rest of GATEWAY_SHUTDOWN_TIMEOUT", stopErr)
	}
	if strings.Contains(stdout.String(), `"level":"WARN"`) {
		t.Errorf("a clean stop logged a warning:\n%s", stdout)
	}
}
