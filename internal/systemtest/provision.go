package systemtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
)

// Admin is the subject of the harness's admin token.
const Admin = "systest-admin"

// Setup says what Provision prepares.
type Setup struct {
	// Mentors get an always-open schedule (every day 00:00–24:00 UTC, no
	// buffer, no minimum notice, 60 days ahead).
	Mentors []string
	// ConnectCalDAV connects each mentor's CalDAV calendar (the mentor must
	// be one of UpstreamOptions.CalDAVUsers), so the mentor_calendar step runs.
	ConnectCalDAV bool
	// GoogleCandidates connect their Google Calendar through the OAuth
	// flow (gcaltest consents as GoogleEmail(user)), so the
	// candidate_calendar step runs.
	GoogleCandidates []string
	// SlotMinutes of the schedules; default 30.
	SlotMinutes int
}

// Fixture is a provisioned gateway deployment.
type Fixture struct {
	AdminToken string
	Admin      *client.ClientWithResponses
	Mentors    []string
}

// Provision stores the Zoom and Jira account credentials through the admin
// API, puts the mentors' schedules and connects their calendars, as an
// operator and the mentors would.
func Provision(ctx context.Context, gw *Gateway, up *Upstreams, s Setup) (*Fixture, error) {
	tok, err := gw.Token(ctx, Admin, "admin")
	if err != nil {
		return nil, err
	}
	admin, err := gw.Client(tok, nil)
	if err != nil {
		return nil, err
	}
	creds := map[client.CredentialProviderPath]client.ProviderCredentialsInput{
		"zoom": {"account_id": ZoomAccountID, "client_id": ZoomClientID, "client_secret": ZoomClientSecret},
		"jira": {"email": jiratest.DefaultEmail, "api_token": jiratest.DefaultAPIToken},
	}
	if len(s.GoogleCandidates) > 0 {
		creds["google"] = client.ProviderCredentialsInput{"client_secret": gcaltest.DefaultClientSecret}
	}
	for p, c := range creds {
		resp, err := admin.PutProviderCredentialsWithResponse(ctx, p, c)
		if err != nil {
			return nil, fmt.Errorf("systemtest: put %s credentials: %w", p, err)
		}
		if resp.StatusCode() != http.StatusNoContent {
			return nil, fmt.Errorf("systemtest: put %s credentials: %d %s", p, resp.StatusCode(), resp.Body)
		}
	}
	slot := s.SlotMinutes
	if slot == 0 {
		slot = 30
	}
	zero, ahead := 0, 60
	hours := allDay()
	for _, m := range s.Mentors {
		zu := m + "@mentors.test"
		resp, err := admin.PutMentorScheduleWithResponse(ctx, m, client.MentorScheduleInput{
			Timezone: "UTC", WorkingHours: hours, SlotMinutes: &slot, BufferMinutes: &zero,
			MinNoticeMinutes: &zero, MaxAdvanceDays: &ahead, ZoomUser: &zu,
		})
		if err != nil {
			return nil, fmt.Errorf("systemtest: put schedule of %s: %w", m, err)
		}
		if resp.StatusCode() != http.StatusOK && resp.StatusCode() != http.StatusCreated {
			return nil, fmt.Errorf("systemtest: put schedule of %s: %d %s", m, resp.StatusCode(), resp.Body)
		}
		if s.ConnectCalDAV {
			if err := ConnectCalDAV(ctx, gw, up, m, "mentor"); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range s.GoogleCandidates {
		if err := ConnectGoogle(ctx, gw, c, "candidate"); err != nil {
			return nil, err
		}
	}
	return &Fixture{AdminToken: tok, Admin: admin, Mentors: s.Mentors}, nil
}

// allDay is working hours of every day from 00:00 to 24:00.
func allDay() []client.WorkingHours {
	var hours []client.WorkingHours
	for _, d := range []client.Weekday{client.WeekdayMon, client.WeekdayTue, client.WeekdayWed, client.WeekdayThu,
		client.WeekdayFri, client.WeekdaySat, client.WeekdaySun} {
		hours = append(hours, client.WorkingHours{Weekday: d, Start: "00:00", End: "24:00"})
	}
	return hours
}

// GoogleEmail is the Google account of a harness user.
func GoogleEmail(user string) string { return user + "@gmail.test" }

// ConnectGoogle runs the Google OAuth flow as user: POST
// /v1/connections/google for the authorization URL, the simulator's
// consent (login_hint picks the account, created on first use), and the
// redirect back to the gateway's callback.
func ConnectGoogle(ctx context.Context, gw *Gateway, user, group string) error {
	return ConnectGoogleAs(ctx, gw, user, group, GoogleEmail(user))
}

// ConnectGoogleAs is ConnectGoogle consenting as the Google account email
// (the sandbox's Google knows only sandbox.GoogleUsers).
func ConnectGoogleAs(ctx context.Context, gw *Gateway, user, group, email string) error {
	tok, err := gw.Token(ctx, user, group)
	if err != nil {
		return err
	}
	c, err := gw.Client(tok, nil)
	if err != nil {
		return err
	}
	resp, err := c.StartGoogleConnectionWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("systemtest: start google connection of %s: %w", user, err)
	}
	if resp.JSON200 == nil {
		return fmt.Errorf("systemtest: start google connection of %s: %d %s", user, resp.StatusCode(), resp.Body)
	}
	u, err := url.Parse(resp.JSON200.AuthorizationUrl)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("login_hint", email)
	u.RawQuery = q.Encode()
	browser := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	consent, err := get(ctx, browser, u.String())
	if err != nil {
		return fmt.Errorf("systemtest: google consent of %s: %w", user, err)
	}
	loc := consent.Header.Get("Location")
	if consent.StatusCode != http.StatusFound && consent.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, gw.URL) {
		return fmt.Errorf("systemtest: google consent of %s answered %d to %q", user, consent.StatusCode, loc)
	}
	cb, err := get(ctx, browser, loc)
	if err != nil {
		return fmt.Errorf("systemtest: google callback of %s: %w", user, err)
	}
	if cb.StatusCode != http.StatusOK {
		return fmt.Errorf("systemtest: google callback of %s answered %d", user, cb.StatusCode)
	}
	return nil
}

// get sends a GET asking for JSON and drains the body.
func get(ctx context.Context, hc *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}

// ConnectCalDAV connects user's calendar on the CalDAV simulator through
// POST /v1/connections/caldav, as the user.
func ConnectCalDAV(ctx context.Context, gw *Gateway, up *Upstreams, user, group string) error {
	tok, err := gw.Token(ctx, user, group)
	if err != nil {
		return err
	}
	c, err := gw.Client(tok, nil)
	if err != nil {
		return err
	}
	srv, pw := up.CalDAVURL, CalDAVPassword
	resp, err := c.CreateCalDAVConnectionWithResponse(ctx, client.CreateCalDAVConnectionRequest{
		ServerUrl: &srv, Username: user, AppPassword: pw,
	})
	if err != nil {
		return fmt.Errorf("systemtest: connect caldav of %s: %w", user, err)
	}
	if resp.StatusCode() != http.StatusCreated && resp.StatusCode() != http.StatusOK {
		return fmt.Errorf("systemtest: connect caldav of %s: %d %s", user, resp.StatusCode(), resp.Body)
	}
	return nil
}

// Terminal reports whether a booking reached confirmed or failed with
// every step settled: nothing pending, running or compensating.
func Terminal(b client.Booking) bool {
	if b.Status != "confirmed" && b.Status != "failed" {
		return false
	}
	for _, s := range b.Steps {
		switch s.State {
		case "pending", "running", "compensating":
			return false
		}
	}
	return true
}

// Drain polls the bookings until every one is Terminal or ctx ends; it
// returns their last state (each GET retried while the gateway is down).
func Drain(ctx context.Context, c *client.ClientWithResponses, ids []string) (map[string]client.Booking, error) {
	out := make(map[string]client.Booking, len(ids))
	left := append([]string(nil), ids...)
	for {
		var next []string
		for _, id := range left {
			b, err := GetBooking(ctx, c, id)
			if err != nil {
				if ctx.Err() != nil {
					return out, drainError(out, left, len(ids), ctx.Err())
				}
				next = append(next, id)
				continue
			}
			out[id] = b
			if !Terminal(b) {
				next = append(next, id)
			}
		}
		if len(next) == 0 {
			return out, nil
		}
		left = next
		select {
		case <-ctx.Done():
			return out, drainError(out, left, len(ids), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// GetBooking reads one booking.
func GetBooking(ctx context.Context, c *client.ClientWithResponses, id string) (client.Booking, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return client.Booking{}, fmt.Errorf("systemtest: booking id %q: %w", id, err)
	}
	resp, err := c.GetBookingWithResponse(ctx, uid)
	if err != nil {
		return client.Booking{}, err
	}
	if resp.JSON200 == nil {
		return client.Booking{}, fmt.Errorf("systemtest: get booking %s: %d %s", id, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200, nil
}

// ListAll lists every booking visible to c (all of them for an admin).
func ListAll(ctx context.Context, c *client.ClientWithResponses) ([]client.Booking, error) {
	var (
		all []client.Booking
		cur *client.Cursor
	)
	limit := client.Limit(200)
	for {
		resp, err := c.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Cursor: cur, Limit: &limit})
		if err != nil {
			return nil, err
		}
		if resp.JSON200 == nil {
			return nil, fmt.Errorf("systemtest: list bookings: %d %s", resp.StatusCode(), resp.Body)
		}
		all = append(all, resp.JSON200.Items...)
		if resp.JSON200.NextCursor == nil || *resp.JSON200.NextCursor == "" {
			return all, nil
		}
		next := *resp.JSON200.NextCursor
		cur = &next
	}
}

// drainError names the unsettled bookings (the first few, with their steps).
func drainError(seen map[string]client.Booking, left []string, total int, cause error) error {
	var b strings.Builder
	for i, id := range left {
		if i == 5 {
			fmt.Fprintf(&b, "\n  …")
			break
		}
		fmt.Fprintf(&b, "\n  %s", Describe(seen[id]))
	}
	return fmt.Errorf("systemtest: drain: %d of %d bookings not settled: %w%s", len(left), total, cause, b.String())
}

// Describe renders a booking's status and steps on one line.
func Describe(b client.Booking) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", b.Id, b.Status)
	if b.FailureReason != nil {
		fmt.Fprintf(&sb, " (%s)", *b.FailureReason)
	}
	for _, s := range b.Steps {
		fmt.Fprintf(&sb, " %s=%s/%d", s.Name, s.State, s.Attempts)
		if s.LastError != nil && *s.LastError != "" {
			fmt.Fprintf(&sb, "[%s]", *s.LastError)
		}
	}
	return sb.String()
}
