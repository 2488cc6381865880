package connect

import (
	"fmt"
	"slices"
	"strings"
)

// CalendarChoice changes the calendars of a Google or CalDAV connection.
// A field left at its zero value leaves that setting unchanged.
type CalendarChoice struct {
	// Calendar is the calendar booking events go to: a Google calendar id
	// of a calendar the account can write to, or a CalDAV calendar's path
	// or URL. "" keeps the chosen calendar.
	Calendar string
	// Busy, when not nil, replaces the calendars whose busy time counts
	// (Google calendar ids or CalDAV paths or URLs, at most
	// MaxBusyCalendars; duplicates count once). They may be calendars the
	// account can only read. The chosen calendar counts whether listed or
	// not; an empty, non-nil list counts the chosen calendar only.
	Busy []string
}

// UnknownBusyCalendarError is ErrUnknownBusyCalendar for the calendar at
// Index of the wanted list.
type UnknownBusyCalendarError struct{ Index int }

func (e *UnknownBusyCalendarError) Error() string {
	return fmt.Sprintf("%s (busy_calendars[%d])", ErrUnknownBusyCalendar, e.Index)
}

// Unwrap makes the error match ErrUnknownBusyCalendar (and so
// ErrUnknownCalendar).
func (e *UnknownBusyCalendarError) Unwrap() error { return ErrUnknownBusyCalendar }

// pickBusy resolves the wanted busy calendars among the account's
// calendars all, in the order wanted, each once. A wanted calendar that
// the connection counted before (prev) but the account no longer has
// (deleted, unshared) is dropped: a client saving the connection's own
// list back is not refused for it. An UnknownBusyCalendarError when
// another one is not among them, ErrTooManyBusyCalendars when more than
// MaxBusyCalendars remain.
func pickBusy(all []CalendarRef, want []string, prev []CalendarRef, match func(r CalendarRef, want string) bool) ([]CalendarRef, error) {
	out := []CalendarRef{}
	for n, w := range want {
		i := slices.IndexFunc(all, func(r CalendarRef) bool { return match(r, w) })
		if i < 0 {
			if slices.ContainsFunc(prev, func(r CalendarRef) bool { return match(r, w) }) {
				continue
			}
			return nil, &UnknownBusyCalendarError{Index: n}
		}
		if !slices.ContainsFunc(out, func(o CalendarRef) bool { return o.ID == all[i].ID }) {
			out = append(out, all[i])
		}
	}
	if len(out) > MaxBusyCalendars {
		return nil, ErrTooManyBusyCalendars
	}
	return out, nil
}

// googleMatch matches a Google calendar id.
func googleMatch(r CalendarRef, want string) bool { return r.ID == want }

// calDAVMatch matches a CalDAV calendar by path or URL, trailing slash or not.
func calDAVMatch(r CalendarRef, want string) bool {
	norm := func(p string) string { return strings.TrimSuffix(p, "/") + "/" }
	return norm(r.ID) == norm(want) || (r.URL != "" && norm(r.URL) == norm(want))
}

// keepKnown keeps the busy calendars prev that are still calendars of the
// account (all), with their current names: reconnecting keeps the user's
// choice where it still applies.
func keepKnown(prev, all []CalendarRef) []CalendarRef {
	var out []CalendarRef
	for _, p := range prev {
		if i := slices.IndexFunc(all, func(r CalendarRef) bool { return r.ID == p.ID }); i >= 0 {
			out = append(out, all[i])
		}
	}
	return out
}
