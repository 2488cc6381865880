// Package calendar declares the one calendar interface that both calendar
// backends (Google Calendar in integrations/gcal and CalDAV in
// integrations/caldav) implement, and the value types they exchange with the
// booking core.
//
// A Calendar is bound to one connected calendar of one user. Every event the
// gateway writes is keyed by the booking it belongs to: the backend derives a
// deterministic provider identity from the booking id (see EventID), so a
// create that is retried after an ambiguous failure never yields a second
// event.
package calendar

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors returned by every Calendar implementation. Inspect with errors.Is.
var (
	// ErrNotFound reports that the event (or calendar) does not exist.
	ErrNotFound = errors.New("calendar: not found")
	// ErrCalendarNotFound reports that the calendar itself does not exist
	// (any more): its owner deleted it, or the account lost access to it.
	// It wraps ErrNotFound. Only operations on the calendar as a whole
	// report it (FreeBusy, Changes, and a backend's calendar-level calls
	// such as creating an event or watching the calendar); a missing event
	// and a missing calendar look the same to an event's own operations,
	// which report ErrNotFound.
	ErrCalendarNotFound = fmt.Errorf("%w: the calendar itself", ErrNotFound)
	// ErrConflict reports that an event with the booking's identity exists but
	// was not written by the gateway for that booking, or that a conditional
	// write lost against a concurrent change.
	ErrConflict = errors.New("calendar: conflict")
)

// Attendee is a person invited to an event.
type Attendee struct {
	Email string
	Name  string
}

// Event is a calendar event that belongs to a booking.
type Event struct {
	// BookingID identifies the booking; the provider identity is derived from it.
	BookingID string
	// ID is the provider's identity of the event (Google event id, CalDAV UID).
	// Set by the backend on output; derived from BookingID with EventID.
	ID          string
	Summary     string
	Description string
	Location    string
	// URL is the join URL of the video meeting.
	URL string
	// Start and End are instants; backends store them in UTC and send them with TimeZone.
	Start time.Time
	End   time.Time
	// TimeZone is an IANA zone name such as "Europe/Berlin".
	TimeZone  string
	Organizer Attendee
	Attendees []Attendee
	// ETag is the provider's version tag, set on output.
	ETag string
	// Sequence is the iCalendar SEQUENCE (bumped by CalDAV on update; informational for Google).
	Sequence int
}

// Busy is a busy interval [Start, End).
type Busy struct {
	Start time.Time
	End   time.Time
}

// MergeBusy sorts busy intervals by start and merges those that overlap or
// touch, in place of in (which it reorders). It is how FreeBusy answers
// are shaped, and how callers combine the answers of several calendars.
func MergeBusy(in []Busy) []Busy {
	slices.SortFunc(in, func(a, b Busy) int { return a.Start.Compare(b.Start) })
	var out []Busy
	for _, b := range in {
		if n := len(out); n > 0 && !b.Start.After(out[n-1].End) {
			if b.End.After(out[n-1].End) {
				out[n-1].End = b.End
			}
			continue
		}
		out = append(out, b)
	}
	return out
}

// Change is one changed event seen by Changes.
type Change struct {
	// ID is the provider identity of the changed event.
	ID string
	// BookingID is set when the event was written by the gateway for a booking.
	BookingID string
	// Deleted reports that the event no longer exists.
	Deleted bool
	// Event is the current state of the event; nil when Deleted.
	Event *Event
}

// ChangeSet is the result of one Changes call.
type ChangeSet struct {
	Changes []Change
	// Cursor is passed to the next Changes call.
	Cursor string
	// Reset reports that the previous cursor was no longer valid and Changes
	// lists the complete current state instead of a delta.
	Reset bool
	// Complete reports a full listing whose absences mean deletions: every
	// object the calendar holds was listed, so an event of the gateway's
	// that neither Changes nor Present names no longer exists (or was
	// deleted before it could be fetched). A backend sets it only when the
	// whole collection was read, never for a delta, a listing cut short or
	// one bounded by a time range. Backends whose full listings show deleted
	// events as changes (Google's) need not set it.
	Complete bool
	// Present is set with Complete: the ID (as Change.ID) of every object
	// listed and still there, including objects Changes leaves out (other
	// components than events, objects that cannot be read), each by the
	// resource name (CalDAV) under which it is stored.
	Present []string
}

// Calendar is one connected calendar of one user.
type Calendar interface {
	// FreeBusy returns the busy intervals that overlap [from, to), merged and
	// sorted, including expanded occurrences of recurring events.
	FreeBusy(ctx context.Context, from, to time.Time) ([]Busy, error)
	// CreateEvent creates the booking's event. Creating the same booking's
	// event again returns the existing event (no duplicate); ErrConflict when
	// the identity is taken by an event that is not the booking's.
	CreateEvent(ctx context.Context, ev Event) (Event, error)
	// UpdateEvent replaces time, text and attendees of the booking's event.
	UpdateEvent(ctx context.Context, ev Event) (Event, error)
	// DeleteEvent deletes the booking's event; an event already gone is not an error.
	DeleteEvent(ctx context.Context, bookingID string) error
	// GetEvent returns the booking's event or ErrNotFound.
	GetEvent(ctx context.Context, bookingID string) (Event, error)
	// Changes lists events changed since cursor ("" lists everything and
	// returns the first cursor). An expired cursor yields a full listing with Reset set.
	Changes(ctx context.Context, cursor string) (ChangeSet, error)
}

var eventIDEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// EventID derives the provider identity of a booking's event. The result is
// lowercase base32hex (characters a-v and 0-9), which Google Calendar accepts
// as an event id and which is safe as a CalDAV UID and resource name.
func EventID(bookingID string) string {
	sum := sha256.Sum256([]byte("spotlight-booking:" + bookingID))
	return "sl" + strings.ToLower(eventIDEncoding.EncodeToString(sum[:20]))
}
