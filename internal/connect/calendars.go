package connect

import (
	"context"
	"fmt"
	"slices"
)

// AccountCalendar is a calendar of a connected Google or CalDAV account,
// as the provider has it now, with what the connection does with it.
type AccountCalendar struct {
	CalendarRef
	// AcceptsEvents reports whether booking events can go to it: a Google
	// calendar the account owns or may write to, any CalDAV calendar of
	// events.
	AcceptsEvents bool
	// Chosen reports whether booking events go to it.
	Chosen bool
	// Busy reports whether its busy time counts (see Info.Busy).
	Busy bool
	// AccessRole is the Google account's access to it (owner, writer,
	// reader, freeBusyReader); "" for CalDAV.
	AccessRole string
}

// AccountCalendars lists the calendars of sub's Google or CalDAV account
// (provider), asking the provider (Google's calendar list, CalDAV
// discovery), the chosen calendar first: what a settings page offers for
// the chosen calendar and for busy_calendars. ErrNotConnected when sub has
// no such connection; ErrNeedsReauth when the provider refused the stored
// grant or password.
func (s *Service) AccountCalendars(ctx context.Context, sub, provider string) ([]AccountCalendar, error) {
	var (
		in  Info
		out []AccountCalendar
	)
	switch provider {
	case ProviderGoogle:
		var err error
		if in, err = s.get(ctx, sub, ProviderGoogle); err != nil {
			return nil, err
		}
		cals, err := s.googleCalendarList(ctx, sub)
		if err != nil {
			return nil, err
		}
		for _, c := range cals {
			out = append(out, AccountCalendar{CalendarRef: googleRef(c), AcceptsEvents: googleWritable(c), AccessRole: c.AccessRole})
		}
	case ProviderCalDAV:
		conn, acct, err := s.discoverConnected(ctx, sub)
		if err != nil {
			return nil, err
		}
		in = conn
		for _, r := range calDAVRefs(acct) {
			out = append(out, AccountCalendar{CalendarRef: r, AcceptsEvents: true})
		}
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	busy := in.Busy()
	for i := range out {
		out[i].Chosen = out[i].ID == in.CalendarID
		out[i].Busy = slices.ContainsFunc(busy, func(b CalendarRef) bool { return b.ID == out[i].ID })
	}
	slices.SortStableFunc(out, func(a, b AccountCalendar) int {
		switch {
		case a.Chosen == b.Chosen:
			return 0
		case a.Chosen:
			return -1
		}
		return 1
	})
	return out, nil
}
