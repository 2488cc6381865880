// Package sandbox runs the provider simulators in-process for the embedded
// default (GATEWAY_PROVIDERS=sandbox): Zoom (zoomtest), Google Calendar and
// Google OAuth (gcaltest), Jira (jiratest) and an in-memory CalDAV server
// (caldavtest). Each listens on its own loopback port and is reached by the
// real integration clients over real HTTP, exactly as the tests do, so a
// session can be booked end to end with no credentials. The sandbox Zoom
// also serves host controls (ZoomHostPath) that act out a session, and the
// sandbox Jira person controls (JiraHostPath) that move an issue as a
// person would; both send the gateway the signed webhooks the provider
// would. The sandbox Google and CalDAV serve person controls too: a
// booking's event moved or deleted (GoogleHostPath, CalDAVHostPath), and
// another calendar added to an account, busy time put in one, or a
// calendar deleted or unshared (GoogleCalendarsPath, CalDAVCalendarsPath);
// the sandbox Google also lets a user revoke the app's access to their
// account (GoogleAccountsPath). The sandbox Zoom, Jira and
// Google also deliver webhooks and push notifications for the changes the
// gateway makes through their APIs, as the real providers do, so the
// gateway meets its own echoes.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

// Fixed sandbox credentials. They are accepted only by the in-process
// simulators and written into the local secret store at start, so the
// gateway reads them the same way it reads real credentials.
const (
	ZoomAccountID    = "sandbox-account"
	ZoomClientID     = "sandbox-zoom-client"
	ZoomClientSecret = "sandbox-zoom-secret"
	JiraEmail        = jiratest.DefaultEmail
	JiraAPIToken     = jiratest.DefaultAPIToken
	JiraProjectKey   = jiratest.DefaultProjectKey
	GoogleClientID   = gcaltest.DefaultClientID
	GoogleSecret     = gcaltest.DefaultClientSecret
	// CalDAVUser and CalDAVPassword log in to the in-memory CalDAV server.
	CalDAVUser     = "mentor"
	CalDAVPassword = "sandbox-app-password"
)

// GoogleUsers are the Google accounts the sandbox OAuth consent screen knows.
var GoogleUsers = []string{"mentor@example.com", "candidate@example.com", "admin@example.com"}

// Provider is one simulator to serve.
type Provider struct {
	Name    string
	Handler http.Handler
}

// Env is a running set of simulators.
type Env struct {
	// URLs maps provider name to its base URL (http://127.0.0.1:port).
	URLs map[string]string

	Zoom   *zoomtest.Server
	Google *gcaltest.Server
	Jira   *jiratest.Server
	CalDAV *caldavtest.Server

	servers []*http.Server
	logger  *slog.Logger
	state   *persister // nil unless Options.StateDir
}

// Options configures Start.
type Options struct {
	Logger *slog.Logger
	// JiraWebhookURL and JiraWebhookSecret make the Jira simulator deliver
	// webhooks for its changes, as a configured Jira site would.
	JiraWebhookURL, JiraWebhookSecret string
	// ZoomWebhookURL and ZoomWebhookSecret are where and how the sandbox
	// Zoom delivers its webhooks: those of the host controls
	// (ZoomHostPath), and meeting.updated and meeting.deleted for the
	// gateway's own API changes, as a subscribed Zoom app gets them.
	ZoomWebhookURL, ZoomWebhookSecret string
	// StateDir, when set, keeps the simulators' state (meetings, calendars
	// and events, OAuth grants, issues) across restarts, as the embedded
	// default keeps its database: Start restores it from this folder and
	// listens on the ports the previous Env used when they are free (a
	// CalDAV connection stores its server's URL), and the Env saves it every
	// few seconds and at Close. Start also writes URLsFile here.
	StateDir string
}

// Start serves every simulator on a free loopback port.
func Start(ctx context.Context, o Options) (*Env, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	users := make([]gcaltest.User, 0, len(GoogleUsers))
	for _, u := range GoogleUsers {
		users = append(users, gcaltest.User{Email: u})
	}
	env := &Env{
		URLs:   map[string]string{},
		logger: o.Logger,
		Zoom: zoomtest.New(zoomtest.Options{AccountID: ZoomAccountID, ClientID: ZoomClientID, ClientSecret: ZoomClientSecret,
			WebhookURL: o.ZoomWebhookURL, WebhookSecret: o.ZoomWebhookSecret}),
		Google: gcaltest.New(gcaltest.Options{Users: users, AllowHTTPPush: true, AutoPush: true}),
		Jira:   jiratest.New(jiratest.Options{WebhookURL: o.JiraWebhookURL, WebhookSecret: o.JiraWebhookSecret, Logger: o.Logger}),
		CalDAV: caldavtest.New(caldavtest.Options{Users: map[string]string{CalDAVUser: CalDAVPassword}}),
	}
	var previous map[string]string
	if o.StateDir != "" {
		env.state = &persister{dir: o.StateDir, stop: make(chan struct{}), done: make(chan struct{}),
			sims: map[string]stateful{"zoom": env.Zoom, "google": env.Google, "jira": env.Jira, "caldav": env.CalDAV}}
		if err := env.state.restore(env); err != nil {
			return nil, err
		}
		previous = previousAddrs(o.StateDir)
	}
	err := env.serve(ctx, previous, []Provider{
		{"zoom", &control{sim: env.Zoom, webhook: o.ZoomWebhookURL, routes: []route{
			{ZoomHostPath, (&zoomHost{sim: env.Zoom, url: o.ZoomWebhookURL, secret: o.ZoomWebhookSecret}).serve}}}},
		{"google", &control{sim: env.Google, noWebhook: true, routes: []route{
			{GoogleHostPath, (&googleHost{sim: env.Google}).serve},
			{GoogleCalendarsPath, (&googleCalendars{sim: env.Google}).serve},
			{GoogleAccountsPath, (&googleAccounts{sim: env.Google}).serve}}}},
		{"jira", &control{sim: env.Jira, webhook: o.JiraWebhookURL, routes: []route{
			{JiraHostPath, (&jiraHost{sim: env.Jira, url: o.JiraWebhookURL, secret: o.JiraWebhookSecret}).serve}}}},
		{"caldav", &control{sim: env.CalDAV, noWebhook: true, routes: []route{
			{CalDAVHostPath, (&caldavHost{env: env}).serve},
			{CalDAVCalendarsPath, (&caldavCalendars{env: env}).serve}}}},
	})
	if err == nil && env.state != nil {
		err = env.WriteURLs(filepath.Join(o.StateDir, URLsFile))
	}
	if err != nil {
		env.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if env.state != nil {
		env.state.start(env)
	}
	return env, nil
}

// serve starts each provider on its own loopback listener: the address in
// previous (by provider name) when it is free, a new port otherwise.
func (e *Env) serve(ctx context.Context, previous map[string]string, ps []Provider) error {
	for _, p := range ps {
		ln, err := listen(ctx, previous[p.Name])
		if err != nil {
			return fmt.Errorf("sandbox: listen for %s: %w", p.Name, err)
		}
		srv := &http.Server{Handler: p.Handler, ReadHeaderTimeout: 10 * time.Second}
		e.servers = append(e.servers, srv)
		e.URLs[p.Name] = "http://" + ln.Addr().String()
		go func(name string) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.logger.Error("sandbox simulator stopped", "provider", name, "error", err.Error())
			}
		}(p.Name)
	}
	return nil
}

// Log writes one line per simulator saying where it listens.
func (e *Env) Log() {
	names := make([]string, 0, len(e.URLs))
	for n := range e.URLs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e.logger.Info("sandbox provider listening", "provider", n, "url", e.URLs[n])
	}
}

// Close stops every simulator and, with Options.StateDir, saves their
// state.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	for _, s := range e.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	errs = append(errs, e.Zoom.Wait(ctx), e.Jira.Wait(ctx))
	if e.state != nil {
		errs = append(errs, e.state.close())
	}
	return errors.Join(errs...)
}
