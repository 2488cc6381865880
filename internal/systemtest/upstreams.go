package systemtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

// Credentials of the simulated Zoom account (Server-to-Server OAuth app).
const (
	ZoomAccountID    = "systest-account"
	ZoomClientID     = "systest-client"
	ZoomClientSecret = "systest-client-secret"
)

// CalDAVPassword is the app password of every simulated CalDAV user.
const CalDAVPassword = "systest-app-password"

// UpstreamOptions configure StartUpstreams.
type UpstreamOptions struct {
	// CalDAVUsers are the CalDAV accounts to create (each with a default calendar).
	CalDAVUsers []string
}

// Upstreams are the provider simulators, each served over real HTTP on
// loopback. They live in the calling process, so they survive a gateway
// that is killed and keep counting across its restarts.
type Upstreams struct {
	Zoom   *zoomtest.Server
	Jira   *jiratest.Server
	CalDAV *caldavtest.Server
	Google *gcaltest.Server

	ZoomURL, JiraURL, CalDAVURL, GoogleURL string

	latency atomic.Int64
	servers []*httptest.Server
	mu      sync.Mutex
	refused map[string]bool
}

// StartUpstreams starts every simulator. Close stops them.
func StartUpstreams(opts UpstreamOptions) *Upstreams {
	users := map[string]string{}
	for _, u := range opts.CalDAVUsers {
		users[u] = CalDAVPassword
	}
	u := &Upstreams{
		Zoom:   zoomtest.New(zoomtest.Options{AccountID: ZoomAccountID, ClientID: ZoomClientID, ClientSecret: ZoomClientSecret}),
		Jira:   jiratest.New(jiratest.Options{}),
		CalDAV: caldavtest.New(caldavtest.Options{Users: users}),
		Google: gcaltest.New(gcaltest.Options{AutoCreateUsers: true}),
	}
	u.ZoomURL = u.serve(u.Zoom)
	u.JiraURL = u.serve(u.Jira)
	u.CalDAVURL = u.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && u.refusing(r.URL.Path) {
			// What a read-only (shared) calendar answers to a write:
			// permanent, so the booking is compensated.
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><d:error xmlns:d="DAV:"><d:need-privileges/></d:error>`)
			return
		}
		u.CalDAV.ServeHTTP(w, r)
	}))
	u.GoogleURL = u.serve(u.Google)
	return u
}

// serve wraps h with the shared latency and serves it on loopback.
func (u *Upstreams) serve(h http.Handler) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(u.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	u.servers = append(u.servers, srv)
	return srv.URL
}

// RefuseCalDAVWrites makes the CalDAV server answer 403 Forbidden to every
// PUT into user's calendars, as for a calendar the user may only read. A
// booking with that user as mentor fails at its mentor_calendar step, after
// its Zoom meeting (and maybe its Jira issue and candidate event) exist, so
// the saga must compensate.
func (u *Upstreams) RefuseCalDAVWrites(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.refused == nil {
		u.refused = map[string]bool{}
	}
	u.refused[user] = true
}

func (u *Upstreams) refusing(path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for user := range u.refused {
		if strings.HasPrefix(path, "/"+user+"/") {
			return true
		}
	}
	return false
}

// SetLatency adds d before every request to every simulator is handled
// (the OAuth and discovery endpoints included).
func (u *Upstreams) SetLatency(d time.Duration) { u.latency.Store(int64(d)) }

// Env returns the gateway's configuration pointing every provider at the
// simulators (live provider mode, private CalDAV addresses allowed).
func (u *Upstreams) Env() []string {
	ep := gcaltest.Endpoint(u.GoogleURL)
	return []string{
		"GATEWAY_PROVIDERS=live",
		"GATEWAY_ZOOM_API_URL=" + u.ZoomURL,
		"GATEWAY_ZOOM_OAUTH_URL=" + u.ZoomURL,
		"GATEWAY_JIRA_SITE_URL=" + u.JiraURL,
		"GATEWAY_JIRA_PROJECT_KEY=" + jiratest.DefaultProjectKey,
		"GATEWAY_GOOGLE_CLIENT_ID=" + gcaltest.DefaultClientID,
		"GATEWAY_GOOGLE_AUTH_URL=" + ep.AuthURL,
		"GATEWAY_GOOGLE_TOKEN_URL=" + ep.TokenURL,
		"GATEWAY_GOOGLE_API_URL=" + u.GoogleURL + "/",
		"GATEWAY_CALDAV_ALLOW_PRIVATE=true",
	}
}

// Close stops the simulators' HTTP servers.
func (u *Upstreams) Close() {
	u.Zoom.Close()
	for _, s := range u.servers {
		s.CloseClientConnections()
		s.Close()
	}
}
