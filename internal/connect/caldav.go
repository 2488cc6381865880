package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/connect/netguard"
	"github.com/spotlight/gateway/internal/secrets"
)

// CalDAVInput is what a user submits to connect a CalDAV account.
type CalDAVInput struct {
	// ServerURL defaults to the configured default (iCloud).
	ServerURL string
	Username  string
	// Password is the app-specific password. Never logged or returned.
	Password string
	// CalendarPath chooses the calendar (its path or URL); default the first
	// calendar that accepts events.
	CalendarPath string
	// BusyCalendars, when not nil, are the calendars (paths or URLs) whose
	// busy time counts besides the chosen one (see CalendarChoice.Busy).
	// nil keeps those of a previous connection to the same account that
	// still exist.
	BusyCalendars []string
}

// calDAVSecret is the JSON kept in the secret store for a CalDAV connection.
type calDAVSecret struct {
	Username string `json:"username"`
	Password string `json:"app_password"`
}

// checkServerURL validates a user-supplied server URL before any request.
func (s *Service) checkServerURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: it must be an absolute https URL", ErrInvalidServerURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials belong in username and app_password, not in the URL", ErrInvalidServerURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: it must not have a query or fragment", ErrInvalidServerURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if err := s.guard.CheckURL(ctx, u.Hostname(), port); err != nil {
		if errors.Is(err, netguard.ErrBlocked) {
			return nil, fmt.Errorf("%w: %w", ErrServerNotAllowed, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	if u.Scheme == "http" && !s.cfg.CalDAV.AllowPrivate && !s.allowedHost(u) {
		return nil, fmt.Errorf("%w: it must use https (the password would travel in clear text)", ErrInvalidServerURL)
	}
	return u, nil
}

func (s *Service) allowedHost(u *url.URL) bool {
	for _, h := range s.cfg.CalDAV.AllowHosts {
		if strings.EqualFold(h, u.Host) {
			return true
		}
	}
	return false
}

// discover runs CalDAV discovery through the guard and classifies failures.
func (s *Service) discover(ctx context.Context, serverURL, user, pass string) (caldav.Account, error) {
	acct, err := caldav.Discover(ctx, s.discoverHTTP, serverURL, user, pass)
	if err == nil {
		return acct, nil
	}
	var oe *outbound.Error
	switch {
	case errors.Is(err, caldav.ErrUnauthorized):
		return caldav.Account{}, ErrCalDAVUnauthorized
	case errors.Is(err, netguard.ErrBlocked):
		return caldav.Account{}, fmt.Errorf("%w: %w", ErrServerNotAllowed, err)
	case errors.As(err, &oe) && (oe.Transient() || oe.Status == 0):
		return caldav.Account{}, upstream("caldav discovery", err)
	default:
		return caldav.Account{}, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
}

func calDAVRefs(acct caldav.Account) []CalendarRef {
	var out []CalendarRef
	for _, c := range acct.EventCalendars() {
		name := c.Name
		if name == "" {
			name = path.Base(strings.TrimSuffix(c.Path, "/"))
		}
		out = append(out, CalendarRef{ID: c.Path, Name: name, URL: c.URL})
	}
	return out
}

// pickCalDAV finds the calendar named by want (a path or URL), or the first
// one when want is empty.
func pickCalDAV(acct caldav.Account, want string) (caldav.CalendarInfo, error) {
	cals := acct.EventCalendars()
	if len(cals) == 0 {
		return caldav.CalendarInfo{}, ErrNoEventCalendar
	}
	if want == "" {
		return cals[0], nil
	}
	norm := func(p string) string { return strings.TrimSuffix(p, "/") + "/" }
	for _, c := range cals {
		if norm(c.Path) == norm(want) || norm(c.URL) == norm(want) {
			return c, nil
		}
	}
	return caldav.CalendarInfo{}, ErrUnknownCalendar
}

// ConnectCalDAV proves the credentials by discovery, then stores them and
// the connection (replacing a previous CalDAV connection). Nothing is saved
// when discovery fails.
func (s *Service) ConnectCalDAV(ctx context.Context, sub string, in CalDAVInput) (Info, []CalendarRef, error) {
	secretPath, err := s.userPath(sub, ProviderCalDAV)
	if err != nil {
		return Info{}, nil, err
	}
	if in.ServerURL == "" || (s.cfg.CalDAV.SandboxICloud && strings.EqualFold(strings.TrimRight(in.ServerURL, "/"), strings.TrimRight(caldav.DefaultServerURL, "/"))) {
		in.ServerURL = s.cfg.CalDAV.DefaultServerURL
	}
	if strings.TrimSpace(in.Username) == "" || in.Password == "" {
		return Info{}, nil, fmt.Errorf("%w: username and app_password are required", ErrInvalidServerURL)
	}
	u, err := s.checkServerURL(ctx, in.ServerURL)
	if err != nil {
		return Info{}, nil, err
	}
	acct, err := s.discover(ctx, u.String(), in.Username, in.Password)
	if err != nil {
		s.log.InfoContext(ctx, "caldav connect refused", "provider", ProviderCalDAV, "sub", sub, "host", u.Host, "error", err.Error())
		return Info{}, nil, err
	}
	// Connecting the same account on the same server again (a new app
	// password, say) keeps the user's choices where they still apply.
	prev, err := s.get(ctx, sub, ProviderCalDAV)
	again := err == nil && sameServer(prev.ServerURL, u.String()) && prev.AccountEmail == in.Username
	want := in.CalendarPath
	if want == "" && again {
		if _, err := pickCalDAV(acct, prev.CalendarID); err == nil {
			want = prev.CalendarID
		}
	}
	cal, err := pickCalDAV(acct, want)
	if err != nil {
		return Info{}, calDAVRefs(acct), err
	}
	var busy []CalendarRef
	if in.BusyCalendars != nil {
		var was []CalendarRef
		if again {
			was = prev.Busy()
		}
		if busy, err = pickBusy(calDAVRefs(acct), in.BusyCalendars, was, calDAVMatch); err != nil {
			return Info{}, calDAVRefs(acct), err
		}
	} else if again {
		busy = keepKnown(prev.BusyCalendars, calDAVRefs(acct))
	}
	b, err := json.Marshal(calDAVSecret{Username: in.Username, Password: in.Password})
	if err != nil {
		return Info{}, nil, err
	}
	if _, err := s.sec.Put(ctx, secretPath, b, secrets.AnyVersion); err != nil {
		return Info{}, nil, fmt.Errorf("connect: store caldav credentials: %w", err)
	}
	refs := calDAVRefs(acct)
	name := cal.Name
	for _, r := range refs {
		if r.ID == cal.Path {
			name = r.Name
		}
	}
	rec := Info{UserSub: sub, Provider: ProviderCalDAV, AccountEmail: in.Username, CalendarID: cal.Path, CalendarName: name,
		CalendarURL: cal.URL, ServerURL: u.String(), BusyCalendars: busy}
	if err := s.upsert(ctx, rec); err != nil {
		return Info{}, nil, err
	}
	s.log.InfoContext(ctx, "caldav calendar connected", "provider", ProviderCalDAV, "sub", sub, "host", u.Host, "calendars", len(refs))
	rec, err = s.get(ctx, sub, ProviderCalDAV)
	return rec, refs, err
}

// calDAVSecretOf reads a user's stored CalDAV credentials.
func (s *Service) calDAVSecretOf(ctx context.Context, sub string) (calDAVSecret, error) {
	p, err := s.userPath(sub, ProviderCalDAV)
	if err != nil {
		return calDAVSecret{}, err
	}
	sec, err := s.sec.Get(ctx, p)
	if errors.Is(err, secrets.ErrNotFound) {
		return calDAVSecret{}, fmt.Errorf("%w to caldav", ErrNotConnected)
	}
	if err != nil {
		return calDAVSecret{}, fmt.Errorf("connect: read caldav credentials: %w", err)
	}
	var cs calDAVSecret
	if err := json.Unmarshal(sec.Value, &cs); err != nil {
		return calDAVSecret{}, errors.New("connect: stored caldav credentials are not valid JSON")
	}
	return cs, nil
}

// ChooseCalDAVCalendar rediscovers the account with the stored credentials
// and makes calendarPath the calendar booking events go to.
func (s *Service) ChooseCalDAVCalendar(ctx context.Context, sub, calendarPath string) (Info, []CalendarRef, error) {
	return s.UpdateCalDAVCalendars(ctx, sub, CalendarChoice{Calendar: calendarPath})
}

// UpdateCalDAVCalendars rediscovers the account with the stored
// credentials and changes the calendars of sub's CalDAV connection: the
// calendar booking events go to and the calendars whose busy time counts
// (any event calendar of the account's home set, read-only ones included).
// Everything is checked against discovery before anything changes:
// ErrUnknownCalendar, ErrUnknownBusyCalendar or ErrTooManyBusyCalendars
// change nothing. It returns the connection and the event calendars.
func (s *Service) UpdateCalDAVCalendars(ctx context.Context, sub string, ch CalendarChoice) (Info, []CalendarRef, error) {
	in, acct, err := s.discoverConnected(ctx, sub)
	if err != nil {
		return Info{}, nil, err
	}
	refs := calDAVRefs(acct)
	var busy *[]CalendarRef
	if ch.Busy != nil {
		picked, err := pickBusy(refs, ch.Busy, in.Busy(), calDAVMatch)
		if err != nil {
			return Info{}, refs, err
		}
		busy = &picked
	}
	if ch.Calendar == "" {
		if busy != nil {
			if err := s.setBusyCalendars(ctx, sub, ProviderCalDAV, *busy); err != nil {
				return Info{}, nil, err
			}
		}
		in, err = s.get(ctx, sub, ProviderCalDAV)
		return in, refs, err
	}
	cal, err := pickCalDAV(acct, ch.Calendar)
	if err != nil {
		return Info{}, refs, err
	}
	name := cal.Name
	for _, r := range refs {
		if r.ID == cal.Path {
			name = r.Name
		}
	}
	if err := s.setCalendar(ctx, sub, ProviderCalDAV, cal.Path, name, cal.URL, busy); err != nil {
		return Info{}, nil, err
	}
	if in.Status != StatusConnected {
		if err := s.setStatus(ctx, sub, ProviderCalDAV, StatusConnected, ""); err != nil {
			return Info{}, nil, err
		}
	}
	in, err = s.get(ctx, sub, ProviderCalDAV)
	return in, refs, err
}

// sameServer reports whether two CalDAV server URLs name the same server
// (a trailing slash or the case of the host aside).
func sameServer(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}

// discoverConnected runs discovery for sub's CalDAV connection with the
// stored credentials. A rejected password marks the connection
// needs_reauth (ErrNeedsReauth).
func (s *Service) discoverConnected(ctx context.Context, sub string) (Info, caldav.Account, error) {
	in, err := s.get(ctx, sub, ProviderCalDAV)
	if err != nil {
		return Info{}, caldav.Account{}, err
	}
	cs, err := s.calDAVSecretOf(ctx, sub)
	if err != nil {
		return Info{}, caldav.Account{}, err
	}
	u, err := s.checkServerURL(ctx, in.ServerURL)
	if err != nil {
		return Info{}, caldav.Account{}, err
	}
	acct, err := s.discover(ctx, u.String(), cs.Username, cs.Password)
	if errors.Is(err, ErrCalDAVUnauthorized) {
		s.markNeedsReauth(ctx, sub, ProviderCalDAV, "the CalDAV server rejected the stored app-specific password; reconnect")
		return Info{}, caldav.Account{}, fmt.Errorf("%w: %w", ErrNeedsReauth, err)
	}
	if err != nil {
		return Info{}, caldav.Account{}, err
	}
	return in, acct, nil
}

// DisconnectCalDAV deletes the stored credentials and the connection.
// Disconnecting without a connection is not an error.
func (s *Service) DisconnectCalDAV(ctx context.Context, sub string) error {
	p, err := s.userPath(sub, ProviderCalDAV)
	if err != nil {
		return err
	}
	if err := s.sec.Delete(ctx, p); err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return fmt.Errorf("connect: delete caldav credentials: %w", err)
	}
	if err := s.deleteRecords(ctx, sub, ProviderCalDAV); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "caldav calendar disconnected", "provider", ProviderCalDAV, "sub", sub)
	return nil
}
