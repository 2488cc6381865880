// Package radicale starts a real Radicale CalDAV server (the Debian
// `radicale` package, 3.x) for tests: a private process on a free loopback
// port with a temporary storage folder and plain htpasswd auth, killed when
// the test ends. See https://radicale.org/v3.html#configuration.
//
// Without the binary the test is skipped with a one-line reason, unless the
// environment sets GATEWAY_REQUIRE_RADICALE=1 (CI does, after installing it
// with apt-get), in which case it fails.
package radicale

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// client has a transport of its own: an httptest.Server closing in a
// parallel test closes http.DefaultTransport's idle connections, which can
// break a request about to reuse one.
var client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second}

// RequireEnv is the environment variable that turns a missing binary into a failure.
const RequireEnv = "GATEWAY_REQUIRE_RADICALE"

// Start starts Radicale and returns its base URL ("http://127.0.0.1:PORT/")
// and the one user's name and password. The user's principal is /{user}/;
// create calendars with MKCALENDAR below it (see MakeCalendar).
func Start(t testing.TB) (baseURL, user, pass string) {
	t.Helper()
	s := Run(t)
	return s.BaseURL, s.User, s.Pass
}

// StartAs is Start with the user's name given (an email address, say, as
// iCloud's logins are).
func StartAs(t testing.TB, user string) (baseURL, pass string) {
	t.Helper()
	s := RunAs(t, user)
	return s.BaseURL, s.Pass
}

// Server is a running Radicale (see Run).
type Server struct {
	// BaseURL is "http://127.0.0.1:PORT/"; User and Pass are the one
	// user's credentials.
	BaseURL, User, Pass string
	// storage is the filesystem_folder.
	storage string
}

// Run starts Radicale as Start does and returns it.
func Run(t testing.TB) *Server {
	t.Helper()
	return RunAs(t, "gateway")
}

// RunAs is Run with the user's name given.
func RunAs(t testing.TB, user string) *Server {
	t.Helper()
	bin, err := exec.LookPath("radicale")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("radicale binary not found and %s=1: %v", RequireEnv, err)
		}
		t.Skip("radicale not installed (apt-get install radicale); set " + RequireEnv + "=1 to require it")
	}
	dir := t.TempDir()
	pass := randomHex(t, 12)
	port := freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(user+":"+pass+"\n"), 0o600); err != nil {
		t.Fatalf("radicale: write users: %v", err)
	}
	cfg := fmt.Sprintf(`[server]
hosts = 127.0.0.1:%d

[auth]
type = htpasswd
htpasswd_filename = %s
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = %s

[web]
type = none

[logging]
level = warning
mask_passwords = True
`, port, filepath.Join(dir, "users"), filepath.Join(dir, "collections"))
	cfgPath := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("radicale: write config: %v", err)
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("radicale: start: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	baseURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("radicale exited early (%v): %s", err, strings.TrimSpace(logs.String()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, baseURL, nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			return &Server{BaseURL: baseURL, User: user, Pass: pass, storage: filepath.Join(dir, "collections")}
		}
		if time.Now().After(deadline) {
			t.Fatalf("radicale did not answer on %s within 15s: %v; log: %s", baseURL, err, strings.TrimSpace(logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MakeCalendar creates an event calendar collection named name under the
// user's principal with MKCALENDAR (RFC 4791 section 5.3.1) and returns its
// absolute URL, ending in "/".
func MakeCalendar(t testing.TB, baseURL, user, pass, name string) string {
	t.Helper()
	u := strings.TrimSuffix(baseURL, "/") + "/" + user + "/" + name + "/"
	body := `<?xml version="1.0" encoding="utf-8"?>
<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop>
<d:displayname>` + name + `</d:displayname>
<c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>
</d:prop></d:set></c:mkcalendar>`
	req, err := http.NewRequest("MKCALENDAR", u, strings.NewReader(body))
	if err != nil {
		t.Fatalf("radicale: MKCALENDAR request: %v", err)
	}
	req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
	req.SetBasicAuth(user, pass)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("radicale: MKCALENDAR %s: %v", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("radicale: MKCALENDAR %s: HTTP %d", u, resp.StatusCode)
	}
	return u
}

// AgeSyncState makes the sync state Radicale keeps for the collection at
// calendarURL d older, as if d had passed since it was last touched: the
// sync tokens it handed out and the history entries through which a
// sync-collection reports deleted items. Radicale forgets what is older
// than its max_sync_token_age (30 days by default) the next time a sync of
// that collection creates a new token: from then on the old tokens are
// refused ("Token not found") and a listing from no token no longer
// reports the deletions. Only that collection ages: tests running in
// parallel on the same server keep their tokens.
func (s *Server) AgeSyncState(t testing.TB, calendarURL string, d time.Duration) {
	t.Helper()
	u, err := url.Parse(calendarURL)
	if err != nil {
		t.Fatalf("radicale: age sync state: %v", err)
	}
	collection := filepath.Join(s.storage, "collection-root", filepath.FromSlash(strings.Trim(u.Path, "/")))
	aged := 0
	err = filepath.WalkDir(filepath.Join(collection, ".Radicale.cache"), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if dir := filepath.Base(filepath.Dir(p)); dir != "sync-token" && dir != "history" {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		at := info.ModTime().Add(-d)
		aged++
		return os.Chtimes(p, at, at)
	})
	if err != nil {
		t.Fatalf("radicale: age sync state of %s: %v", u.Path, err)
	}
	if aged == 0 {
		t.Fatalf("radicale: no sync state of %s under %s", u.Path, collection)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("radicale: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("radicale: random: %v", err)
	}
	return hex.EncodeToString(b)
}
