package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/sandbox"
)

// wireConnect wires the connect area: the connection service (Google OAuth,
// CalDAV, provider credentials, the Zoom and Jira clients), its handlers and
// the Google OAuth callback route. It runs first; later areas read
// w.connect. The outbound metrics are registered here, once, and shared
// through w.connect.OutboundMetrics().
//
// In sandbox mode the simulators' fixed credentials are written into the
// secret store (so they are read like real ones), the Google, Zoom and Jira
// URLs point at the simulators, and the in-process CalDAV server is the
// default server and the one private address the SSRF guard lets through.
func wireConnect(w *wiring) error {
	cfg := w.cfg
	cc := connect.Config{
		SecretPrefix: cfg.Secrets.Prefix,
		SecretEnv:    cfg.Env,
		PublicURL:    cfg.PublicURL,
		Google: connect.GoogleConfig{
			ClientID: cfg.Google.ClientID, AuthURL: cfg.Google.AuthURL, TokenURL: cfg.Google.TokenURL, APIURL: cfg.Google.APIURL,
			// Derived from the configured endpoints, so a gateway pointed at
			// another Google-compatible server never calls Google itself:
			// userinfo under the API root (www.googleapis.com/oauth2/v3/userinfo),
			// revoke beside the token endpoint (oauth2.googleapis.com/revoke).
			UserinfoURL: strings.TrimRight(cfg.Google.APIURL, "/") + "/oauth2/v3/userinfo",
			RevokeURL:   siblingURL(cfg.Google.TokenURL, "revoke"),
			RedirectURL: cfg.Google.RedirectURL,
		},
		CalDAV: connect.CalDAVConfig{AllowPrivate: cfg.CalDAV.AllowPrivate},
		Zoom:   connect.ZoomConfig{APIURL: cfg.Zoom.APIURL, OAuthURL: cfg.Zoom.OAuthURL},
		Jira: connect.JiraSettings{SiteURL: cfg.Jira.SiteURL, ProjectKey: cfg.Jira.ProjectKey, IssueType: cfg.Jira.IssueType,
			CancelStatus: cfg.Jira.CancelStatus, BookingField: cfg.Jira.BookingField},
		Logger:  w.logger,
		Metrics: outbound.NewMetrics(w.registry),
		// A mentor's CalDAV all-day and floating events are read in the
		// mentor's schedule zone (the booking service is wired next).
		Zone: func(ctx context.Context, userID string) *time.Location {
			svc := w.deps.Bookings.Service
			if svc == nil {
				return nil
			}
			sch, err := svc.GetSchedule(ctx, userID)
			if err != nil {
				return nil
			}
			return sch.Location()
		},
	}
	seeds := map[string]map[string]string{}
	if sb := w.sandbox; sb != nil {
		g := sb.URLs["google"]
		ep := gcaltest.Endpoint(g)
		cc.Google = connect.GoogleConfig{ClientID: sandbox.GoogleClientID, AuthURL: ep.AuthURL, TokenURL: ep.TokenURL, APIURL: g + "/",
			UserinfoURL: gcaltest.UserinfoURL(g), RevokeURL: gcaltest.RevokeURL(g)}
		cc.Google.RedirectURL = cfg.Google.RedirectURL
		cc.Zoom = connect.ZoomConfig{APIURL: sb.URLs["zoom"], OAuthURL: sb.URLs["zoom"]}
		cc.Jira.SiteURL, cc.Jira.ProjectKey = sb.URLs["jira"], sandbox.JiraProjectKey
		cd, err := url.Parse(sb.URLs["caldav"])
		if err != nil {
			return fmt.Errorf("connect: sandbox caldav URL: %w", err)
		}
		cc.CalDAV.AllowHosts = []string{cd.Host}
		cc.CalDAV.DefaultServerURL = sb.URLs["caldav"]
		cc.CalDAV.SandboxICloud = true
		seeds = map[string]map[string]string{
			"google": {"client_id": sandbox.GoogleClientID, "client_secret": sandbox.GoogleSecret},
			"zoom":   {"account_id": sandbox.ZoomAccountID, "client_id": sandbox.ZoomClientID, "client_secret": sandbox.ZoomClientSecret},
			"jira":   {"email": sandbox.JiraEmail, "api_token": sandbox.JiraAPIToken},
		}
	}
	svc, err := connect.New(w.db, w.secrets, cc)
	if err != nil {
		return err
	}
	if len(seeds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, p := range []string{"google", "zoom", "jira"} {
			if err := seedSandbox(ctx, svc, p, seeds[p]); err != nil {
				return err
			}
		}
	}
	w.connect = svc
	w.deps.Connections = httpapi.ConnectionDeps{Service: svc, ConnectedURL: w.cfg.Google.ConnectedURL}
	w.deps.Mount = append(w.deps.Mount, httpapi.GoogleCallbackRoute(w.deps.Connections, w.logger))
	return nil
}

// siblingURL replaces the last path segment of u by name.
func siblingURL(u, name string) string {
	if i := strings.LastIndex(u, "/"); i > len("https://") {
		return u[:i+1] + name
	}
	return ""
}

// seedSandbox writes the simulators' credentials, merged over what an admin
// may have stored (the sandbox values win: only they work with the simulators).
func seedSandbox(ctx context.Context, svc *connect.Service, provider string, fields map[string]string) error {
	merged := map[string]string{}
	if old, err := svc.ProviderSecret(ctx, provider); err == nil {
		for k, v := range old {
			merged[k] = v
		}
	}
	for k, v := range fields {
		merged[k] = v
	}
	if err := svc.PutProviderCredentials(ctx, provider, merged); err != nil {
		return fmt.Errorf("connect: seed sandbox %s credentials: %w", provider, err)
	}
	return nil
}
