package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/booking/providers"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/sandbox"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
)

// wireBooking wires the booking area: the booking service (schedules,
// availability, the saga), its job worker, handlers and error mapping.
//
// Zoom and Jira use the account credentials from the secret store
// (/{prefix}/{env}/providers/{zoom|jira}, a JSON object of string fields),
// or the fixed sandbox credentials in sandbox mode. Users' calendars come
// from the connect area; until it exports them every user counts as not
// connected (the calendar steps are skipped).
func wireBooking(w *wiring) error {
	meetings, err := bookingZoom(w)
	if err != nil {
		return err
	}
	issues, err := bookingJira(w)
	if err != nil {
		return err
	}
	svc, err := booking.New(booking.Config{
		Store:       w.db,
		Jobs:        func() *store.Jobs { return w.jobs },
		Meetings:    meetings,
		Issues:      issues,
		Calendars:   bookingCalendars(w),
		PublicURL:   w.cfg.PublicURL,
		SyncTimeout: w.cfg.Booking.SyncTimeout,
		Logger:      w.logger,
	})
	if err != nil {
		return err
	}
	addWorker(w, svc.Worker())
	w.deps.Bookings = httpapi.BookingDeps{Service: svc}
	w.deps.ErrorMappers = append(w.deps.ErrorMappers, httpapi.BookingErrors)
	w.onStop = append(w.onStop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
		defer cancel()
		svc.Close(ctx)
	})
	return nil
}

// bookingCalendars gives users' calendars to the booking service.
// TODO(connect): use the connect area's Calendars once it is exported.
func bookingCalendars(w *wiring) booking.Calendars {
	return providers.NewStaticCalendars()
}

// providerFields reads the account credentials of provider from the secret store.
func providerFields(ctx context.Context, w *wiring, provider string) (map[string]string, error) {
	path, err := secrets.ProviderPath(w.cfg.Secrets.Prefix, w.cfg.Env, provider)
	if err != nil {
		return nil, err
	}
	sec, err := w.secrets.Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%s credentials: %w", provider, err)
	}
	var fields map[string]string
	if err := json.Unmarshal(sec.Value, &fields); err != nil {
		return nil, fmt.Errorf("%s credentials: not a JSON object of strings", provider)
	}
	return fields, nil
}

func bookingZoom(w *wiring) (booking.Meetings, error) {
	hc := outbound.NewClient(outbound.Config{Provider: zoom.Provider, Logger: w.logger})
	if w.sandbox != nil {
		c := zoom.New(func(context.Context) (zoom.Credentials, error) {
			return zoom.Credentials{AccountID: sandbox.ZoomAccountID, ClientID: sandbox.ZoomClientID, ClientSecret: sandbox.ZoomClientSecret}, nil
		}, zoom.WithHTTPClient(hc), zoom.WithBaseURL(w.sandbox.URLs["zoom"]), zoom.WithOAuthURL(w.sandbox.URLs["zoom"]), zoom.WithLogger(w.logger))
		return providers.Zoom{Client: c, Settings: zoom.MeetingSettings{WaitingRoom: true}}, nil
	}
	c := zoom.New(func(ctx context.Context) (zoom.Credentials, error) {
		f, err := providerFields(ctx, w, "zoom")
		if err != nil {
			return zoom.Credentials{}, err
		}
		return zoom.Credentials{AccountID: f["account_id"], ClientID: f["client_id"], ClientSecret: f["client_secret"]}, nil
	}, zoom.WithHTTPClient(hc), zoom.WithBaseURL(w.cfg.Zoom.APIURL), zoom.WithOAuthURL(w.cfg.Zoom.OAuthURL), zoom.WithLogger(w.logger))
	return providers.Zoom{Client: c, Settings: zoom.MeetingSettings{WaitingRoom: true}}, nil
}

// bookingJira returns the Jira adapter, or nil (the jira step is skipped)
// when no Jira site is configured.
func bookingJira(w *wiring) (booking.Issues, error) {
	opts := []jira.Option{jira.WithLogger(w.logger)}
	if w.cfg.Jira.BookingField != "" {
		opts = append(opts, jira.WithBookingField(w.cfg.Jira.BookingField))
	}
	project := w.cfg.Jira.ProjectKey
	var (
		c   *jira.Client
		err error
	)
	switch {
	case w.sandbox != nil:
		project = sandbox.JiraProjectKey
		c, err = jira.New(w.sandbox.URLs["jira"], jira.BasicAuth(sandbox.JiraEmail, sandbox.JiraAPIToken), opts...)
	case w.cfg.Jira.SiteURL != "":
		c, err = jira.New(w.cfg.Jira.SiteURL, jira.BasicAuthFrom(func(ctx context.Context) (jira.BasicCredentials, error) {
			f, err := providerFields(ctx, w, "jira")
			if err != nil {
				return jira.BasicCredentials{}, err
			}
			if f["email"] == "" || f["api_token"] == "" {
				return jira.BasicCredentials{}, errors.New("jira credentials: email and api_token required")
			}
			return jira.BasicCredentials{Email: f["email"], APIToken: f["api_token"]}, nil
		}), opts...)
	default:
		w.logger.Warn("no Jira site configured (GATEWAY_JIRA_SITE_URL); bookings get no Jira issue")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return providers.Jira{Client: c, ProjectKey: project, IssueType: w.cfg.Jira.IssueType, CancelStatus: w.cfg.Jira.CancelStatus}, nil
}
