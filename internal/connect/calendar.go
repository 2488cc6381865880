package connect

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
)

// Calendar returns the calendar booking events of sub go to: the most
// recently connected of the user's Google and CalDAV connections that is
// usable. ErrNeedsReauth when the only connections need reconnecting,
// ErrNotConnected when there is none.
func (s *Service) Calendar(ctx context.Context, sub string) (calendar.Calendar, Info, error) {
	all, err := s.List(ctx, sub)
	if err != nil {
		return nil, Info{}, err
	}
	reauth, gone := false, false
	for _, in := range all {
		if in.Provider != ProviderGoogle && in.Provider != ProviderCalDAV {
			continue
		}
		if in.Status != StatusConnected {
			reauth = reauth || in.Status == StatusNeedsReauth
			gone = gone || in.Status == StatusError
			continue
		}
		return s.calendarOf(ctx, in)
	}
	switch {
	case reauth:
		return nil, Info{}, fmt.Errorf("connect: calendar of %s: %w", sub, ErrNeedsReauth)
	case gone:
		return nil, Info{}, fmt.Errorf("connect: calendar of %s: %w", sub, ErrCalendarGone)
	}
	return nil, Info{}, fmt.Errorf("connect: calendar of %s: %w", sub, ErrNotConnected)
}

// CalendarFor returns the calendar of sub's connection to provider.
func (s *Service) CalendarFor(ctx context.Context, sub, provider string) (calendar.Calendar, Info, error) {
	in, err := s.get(ctx, sub, provider)
	if err != nil {
		return nil, Info{}, err
	}
	switch in.Status {
	case StatusNeedsReauth:
		return nil, in, fmt.Errorf("connect: %s calendar of %s: %w", provider, sub, ErrNeedsReauth)
	case StatusError:
		return nil, in, fmt.Errorf("connect: %s calendar of %s: %w", provider, sub, ErrCalendarGone)
	}
	return s.calendarOf(ctx, in)
}

func (s *Service) calendarOf(ctx context.Context, in Info) (calendar.Calendar, Info, error) {
	cl, err := s.open(ctx, in, true)
	if err != nil {
		return nil, Info{}, err
	}
	return &watched{Calendar: cl, s: s, in: in}, in, nil
}

// open opens the calendar of connection in (CalendarID for Google,
// CalendarURL for CalDAV) with the connection's credentials. withBusy adds
// the connection's other busy calendars (Info.Busy) to its FreeBusy; it
// opens no connection and makes no request.
func (s *Service) open(ctx context.Context, in Info, withBusy bool) (calendar.Calendar, error) {
	var extras []CalendarRef
	if withBusy {
		extras = in.Busy()
		if len(extras) > 0 {
			extras = extras[1:] // the chosen calendar itself
		}
	}
	switch in.Provider {
	case ProviderGoogle:
		var opts []gcal.Option
		if len(extras) > 0 {
			ids := []string{in.CalendarID}
			for _, r := range extras {
				ids = append(ids, r.ID)
			}
			opts = append(opts, gcal.WithBusyCalendars(ids...))
		}
		return s.googleClient(ctx, in.UserSub, in.CalendarID, opts...)
	case ProviderCalDAV:
		cs, err := s.calDAVSecretOf(ctx, in.UserSub)
		if err != nil {
			return nil, err
		}
		opts := []caldav.Option{caldav.WithHTTPClient(s.caldavHTTP), caldav.WithLogger(s.log)}
		var urls []string
		for _, r := range extras {
			if r.URL == "" || !sameOrigin(r.URL, in.CalendarURL) {
				// Never send the password to another server.
				s.log.WarnContext(ctx, "caldav busy calendar is not on the connection's server; skipped",
					"provider", ProviderCalDAV, "sub", in.UserSub, "calendar", r.ID)
				continue
			}
			urls = append(urls, r.URL)
		}
		if len(urls) > 0 {
			opts = append(opts, caldav.WithBusyCalendars(urls...))
		}
		if s.cfg.Zone != nil {
			if loc := s.cfg.Zone(ctx, in.UserSub); loc != nil {
				opts = append(opts, caldav.WithDefaultLocation(loc))
			}
		}
		cl, err := caldav.New(in.CalendarURL, cs.Username, cs.Password, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		return cl, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownProvider, in.Provider)
}

// Place names the calendar of the connection: its provider and calendar
// (the Google calendar id, the CalDAV collection's URL), e.g.
// "caldav:https://dav.example.com/ada/work/". Booking steps record it so
// that they find their event again after the user chose another calendar
// (CalendarAt).
func (in Info) Place() string {
	switch in.Provider {
	case ProviderGoogle:
		return in.Provider + ":" + in.CalendarID
	case ProviderCalDAV:
		return in.Provider + ":" + in.CalendarURL
	}
	return ""
}

// CalendarAt opens sub's calendar at place (an Info.Place, usually of a
// calendar the user has switched away from) with the credentials of sub's
// current connection to its provider. A CalDAV calendar is reached only on
// the server of the current connection (the password is never sent
// elsewhere); a Google calendar the current account cannot see answers
// calendar.ErrCalendarNotFound. ErrNotConnected (ErrNeedsReauth) when sub
// has no usable connection to the provider or the place cannot be reached
// with it. The calendar's answers leave the connection's status alone: it
// may be another calendar than the one the connection offers.
func (s *Service) CalendarAt(ctx context.Context, sub, place string) (calendar.Calendar, error) {
	provider, id, ok := strings.Cut(place, ":")
	if !ok || id == "" || (provider != ProviderGoogle && provider != ProviderCalDAV) {
		return nil, fmt.Errorf("connect: calendar place %q: %w", place, ErrNotConnected)
	}
	in, err := s.get(ctx, sub, provider)
	if err != nil {
		return nil, err
	}
	switch in.Status {
	case StatusConnected, StatusError:
		// A connection in error lost its chosen calendar, not its
		// credentials.
	case StatusNeedsReauth:
		return nil, fmt.Errorf("connect: %s calendar of %s: %w", provider, sub, ErrNeedsReauth)
	default:
		return nil, fmt.Errorf("connect: %s calendar of %s: %w", provider, sub, ErrNotConnected)
	}
	switch provider {
	case ProviderGoogle:
		in.CalendarID = id
	case ProviderCalDAV:
		if !sameOrigin(id, in.CalendarURL) {
			return nil, fmt.Errorf("connect: CalDAV calendar %s is not on the connected server: %w", id, ErrNotConnected)
		}
		in.CalendarURL = id
	}
	return s.open(ctx, in, false)
}

// sameOrigin reports whether URLs a and b have the same scheme and host.
func sameOrigin(a, b string) bool {
	ua, err := url.Parse(a)
	if err != nil {
		return false
	}
	ub, err := url.Parse(b)
	if err != nil {
		return false
	}
	return ua.Scheme != "" && ua.Host != "" && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}

// watched is a connection's calendar that keeps the connection's status
// true to the provider's answers: needs_reauth when the CalDAV server starts
// rejecting the stored password (the user revoked the app-specific
// password), error when the calendar itself is gone (the user deleted it, or
// it is no longer shared with the account). Bookings then stop going to it
// and the user is asked to reconnect or to choose another calendar.
type watched struct {
	calendar.Calendar
	s *Service
	// in is the connection the calendar was opened for; a verdict about
	// its calendar leaves a connection that has moved to another alone.
	in Info
}

func (w *watched) check(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case w.in.Provider == ProviderCalDAV && errors.Is(err, caldav.ErrUnauthorized):
		w.s.markNeedsReauth(ctx, w.in.UserSub, ProviderCalDAV, "the CalDAV server rejected the stored app-specific password; reconnect")
		return fmt.Errorf("%w: %w", ErrNeedsReauth, err)
	case errors.Is(err, calendar.ErrCalendarNotFound):
		w.s.markCalendarGone(ctx, w.in)
	}
	return err
}

// FreeBusy implements calendar.Calendar. When the chosen calendar turns
// out to be gone, the connection's other busy calendars still answer: the
// busy time of those is returned (ErrCalendarNotFound only when there are
// none).
func (w *watched) FreeBusy(ctx context.Context, from, to time.Time) ([]calendar.Busy, error) {
	b, err := w.Calendar.FreeBusy(ctx, from, to)
	if err = w.check(ctx, err); errors.Is(err, calendar.ErrCalendarNotFound) {
		if extras := w.s.busyExtras(ctx, w.in); len(extras) > 0 {
			return freeBusyOf(ctx, extras, from, to)
		}
	}
	return b, err
}

// freeBusyOf is the merged busy time of cals; a calendar that is gone
// (ErrCalendarNotFound) has none.
func freeBusyOf(ctx context.Context, cals []calendar.Calendar, from, to time.Time) ([]calendar.Busy, error) {
	var all []calendar.Busy
	for _, c := range cals {
		b, err := c.FreeBusy(ctx, from, to)
		if errors.Is(err, calendar.ErrCalendarNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		all = append(all, b...)
	}
	return calendar.MergeBusy(all), nil
}

// CreateEvent implements calendar.Calendar.
func (w *watched) CreateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	e, err := w.Calendar.CreateEvent(ctx, ev)
	return e, w.check(ctx, err)
}

// UpdateEvent implements calendar.Calendar.
func (w *watched) UpdateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	e, err := w.Calendar.UpdateEvent(ctx, ev)
	return e, w.check(ctx, err)
}

// DeleteEvent implements calendar.Calendar.
func (w *watched) DeleteEvent(ctx context.Context, bookingID string) error {
	return w.check(ctx, w.Calendar.DeleteEvent(ctx, bookingID))
}

// GetEvent implements calendar.Calendar.
func (w *watched) GetEvent(ctx context.Context, bookingID string) (calendar.Event, error) {
	e, err := w.Calendar.GetEvent(ctx, bookingID)
	return e, w.check(ctx, err)
}

// Changes implements calendar.Calendar.
func (w *watched) Changes(ctx context.Context, cursor string) (calendar.ChangeSet, error) {
	cs, err := w.Calendar.Changes(ctx, cursor)
	return cs, w.check(ctx, err)
}

// BusyCalendars returns the calendars whose busy time counts for sub (empty
// when none): per connected Google or CalDAV account one calendar whose
// FreeBusy covers the chosen calendar and the other busy calendars
// (Info.Busy) in one query (Google) or parallel queries (CalDAV). Of a
// connection whose chosen calendar is gone (status error) the other busy
// calendars still count, each on its own, until the user chooses another.
func (s *Service) BusyCalendars(ctx context.Context, sub string) ([]calendar.Calendar, error) {
	all, err := s.List(ctx, sub)
	if err != nil {
		return nil, err
	}
	var out []calendar.Calendar
	for _, in := range all {
		if in.Provider != ProviderGoogle && in.Provider != ProviderCalDAV {
			continue
		}
		switch in.Status {
		case StatusError:
			out = append(out, s.busyExtras(ctx, in)...)
			continue
		case StatusConnected:
		default:
			continue
		}
		cal, _, err := s.calendarOf(ctx, in)
		if err != nil {
			if errors.Is(err, ErrNotConnected) {
				continue
			}
			return nil, err
		}
		out = append(out, cal)
	}
	return out, nil
}

// busyExtras opens the busy calendars of connection in other than its
// chosen one, each on its own (one of them gone does not hide the others),
// for a connection whose chosen calendar is gone. Their answers leave the
// connection's status alone. A calendar that cannot be opened is skipped
// with a warning.
func (s *Service) busyExtras(ctx context.Context, in Info) []calendar.Calendar {
	busy := in.Busy()
	if len(busy) < 2 {
		return nil
	}
	var out []calendar.Calendar
	for _, r := range busy[1:] {
		if in.Provider == ProviderCalDAV && (r.URL == "" || !sameOrigin(r.URL, in.CalendarURL)) {
			continue // never send the password to another server
		}
		one := in
		one.CalendarID, one.CalendarName, one.CalendarURL, one.BusyCalendars = r.ID, r.Name, r.URL, nil
		cal, err := s.open(ctx, one, false)
		if err != nil {
			s.log.WarnContext(ctx, "busy calendar of a connection without its chosen calendar could not be opened; skipped",
				"provider", in.Provider, "sub", in.UserSub, "calendar", r.ID, "error", err.Error())
			continue
		}
		out = append(out, cal)
	}
	return out
}
