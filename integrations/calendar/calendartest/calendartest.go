// Package calendartest is the shared contract test suite for calendar.Calendar
// implementations (Google Calendar against gcaltest, CalDAV against Radicale
// and the in-memory CalDAV server, and any fake the booking core uses).
//
// A backend's test calls Run with a Harness. The harness gives every subtest a
// fresh, empty calendar and an External handle that acts as the user changing
// the calendar outside the gateway (adding a foreign event, moving or deleting
// an event in their calendar app). The suite then checks the behaviour the
// booking core relies on: busy blocks (including recurring occurrences and
// DST), idempotent creates, conflicts, reschedules, deletes, and change
// listing since a cursor.
//
// In the style of river's riverdrivertest: one table, every backend.
package calendartest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/calendar"
)

// ForeignEvent is an event the user created outside the gateway.
type ForeignEvent struct {
	// ID is the provider identity to use. Empty lets the backend choose one.
	// The suite sets it to calendar.EventID(bookingID) to provoke a conflict.
	ID      string
	Summary string
	// Start and End are the instants of the first occurrence.
	Start, End time.Time
	// TimeZone is the IANA zone the event is written in (DTSTART;TZID=…, or
	// Google's start.timeZone). Recurrences keep their wall-clock time in it.
	TimeZone string
	// WeeklyCount > 1 makes the event recur weekly for that many occurrences
	// (RRULE:FREQ=WEEKLY;COUNT=n).
	WeeklyCount int
}

// External acts on the same calendar as the Calendar under test, but as the
// user in their own calendar application, not through the gateway.
type External interface {
	// AddForeign writes an event that the gateway did not create and returns
	// its provider identity.
	AddForeign(ctx context.Context, ev ForeignEvent) (id string, err error)
	// Move changes start and end of an existing event (gateway-written or
	// foreign), keeping everything else, as a user dragging it in their app
	// would. The event keeps its provider identity and booking marker.
	Move(ctx context.Context, id string, start, end time.Time) error
	// Delete deletes the event with the given provider identity.
	Delete(ctx context.Context, id string) error
}

// CursorExpirer is optionally implemented by an External whose backend can
// invalidate change cursors (Google's 410 Gone, CalDAV's invalid sync-token).
// When implemented, the suite checks that an expired cursor yields a full
// listing with Reset set.
type CursorExpirer interface {
	// ExpireCursors makes every cursor handed out so far invalid.
	ExpireCursors(ctx context.Context) error
}

// Canceller is optionally implemented by an External whose backend keeps
// an event the user cancelled, marked so (CalDAV's STATUS:CANCELLED, which
// some clients write instead of deleting the event). When implemented, the
// suite checks that Changes reports such an event as deleted, as it does
// Google's cancelled events, and that it no longer counts as busy.
type Canceller interface {
	// Cancel marks the event with the given provider identity cancelled,
	// keeping it in the calendar.
	Cancel(ctx context.Context, id string) error
}

// CalendarDeleter is optionally implemented by an External whose backend
// lets the user delete the whole calendar. When implemented, the suite
// checks that calls on the calendar as a whole then report
// calendar.ErrCalendarNotFound.
type CalendarDeleter interface {
	// DeleteCalendar deletes the calendar under test with all its events.
	DeleteCalendar(ctx context.Context) error
}

// Backend is one fresh calendar under test and its external handle.
type Backend struct {
	Calendar calendar.Calendar
	External External
}

// Harness creates a fresh, empty calendar for one subtest. It registers its
// own cleanup with t.Cleanup and fails the test (t.Fatal) when setup fails.
type Harness func(t *testing.T) Backend

// Monday 2027-06-07, a week with no DST transition in any zone used here.
var base = time.Date(2027, 6, 7, 0, 0, 0, 0, time.UTC)

func at(day, hour, minute int) time.Time {
	return base.AddDate(0, 0, day).Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

// booking returns a gateway event for a booking id unique to the subtest.
func booking(t *testing.T, id string, start, end time.Time, zone string) calendar.Event {
	return calendar.Event{
		BookingID:   fmt.Sprintf("%s-%s", strings.ReplaceAll(t.Name(), "/", "-"), id),
		Summary:     "Mentoring session " + id,
		Description: "Session with your mentor.",
		Location:    "Zoom",
		URL:         "https://zoom.example.com/j/81234567890?pwd=abc",
		Start:       start,
		End:         end,
		TimeZone:    zone,
		Organizer:   calendar.Attendee{Email: "mentor@example.com", Name: "Mia Mentor"},
		Attendees: []calendar.Attendee{
			{Email: "candidate@example.com", Name: "Carl Candidate"},
		},
	}
}

// Run runs the contract suite against the backend that h creates.
func Run(t *testing.T, h Harness) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"FreeBusyFindsBusyBlocks", testFreeBusy},
		{"FreeBusyRecurringAcrossDST", testFreeBusyRecurringDST},
		{"CreateTwiceYieldsOneEvent", testCreateTwice},
		{"CreateConflictsWithForeignEvent", testCreateConflict},
		{"GetReturnsWrittenFields", testGet},
		{"GetMissingIsNotFound", testGetMissing},
		{"UpdateReschedules", testUpdate},
		{"UpdateMissingIsNotFound", testUpdateMissing},
		{"DeleteTwiceIsOK", testDeleteTwice},
		{"ChangesShowExternalEditsAndDeletes", testChanges},
		{"ChangesExpiredCursorResets", testChangesExpired},
		{"ChangesShowCancelledAsDeleted", testChangesCancelled},
		{"DSTCrossingEventsKeepInstants", testDST},
		{"DeletedCalendarIsCalendarNotFound", testCalendarGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h(t))
		})
	}
}

func create(t *testing.T, c calendar.Calendar, ev calendar.Event) calendar.Event {
	t.Helper()
	got, err := c.CreateEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("CreateEvent(%s): %v", ev.BookingID, err)
	}
	return got
}

func addForeign(t *testing.T, x External, ev ForeignEvent) string {
	t.Helper()
	id, err := x.AddForeign(t.Context(), ev)
	if err != nil {
		t.Fatalf("AddForeign(%q): %v", ev.Summary, err)
	}
	return id
}

func freeBusy(t *testing.T, c calendar.Calendar, from, to time.Time) []calendar.Busy {
	t.Helper()
	got, err := c.FreeBusy(t.Context(), from, to)
	if err != nil {
		t.Fatalf("FreeBusy(%s, %s): %v", from, to, err)
	}
	return got
}

// busyOpts compares instants, not locations.
var busyOpts = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func testFreeBusy(t *testing.T, b Backend) {
	c, x := b.Calendar, b.External
	// A gateway booking on Tuesday 09:00–10:00 UTC.
	create(t, c, booking(t, "fb", at(1, 9, 0), at(1, 10, 0), "UTC"))
	// Two overlapping foreign events on Wednesday merge into one block.
	addForeign(t, x, ForeignEvent{Summary: "Dentist", Start: at(2, 13, 0), End: at(2, 14, 0), TimeZone: "UTC"})
	addForeign(t, x, ForeignEvent{Summary: "Travel", Start: at(2, 13, 30), End: at(2, 15, 0), TimeZone: "UTC"})
	// A weekly event whose first occurrence is before the range: only the
	// occurrences inside the range count (expansion, not the master's DTSTART).
	addForeign(t, x, ForeignEvent{
		Summary: "Weekly sync", Start: at(-7+3, 16, 0), End: at(-7+3, 17, 0),
		TimeZone: "UTC", WeeklyCount: 3,
	})
	// Outside the range entirely.
	addForeign(t, x, ForeignEvent{Summary: "Next month", Start: at(40, 9, 0), End: at(40, 10, 0), TimeZone: "UTC"})

	got := freeBusy(t, c, at(0, 0, 0), at(14, 0, 0))
	want := []calendar.Busy{
		{Start: at(1, 9, 0), End: at(1, 10, 0)},
		{Start: at(2, 13, 0), End: at(2, 15, 0)},
		{Start: at(3, 16, 0), End: at(3, 17, 0)},
		{Start: at(10, 16, 0), End: at(10, 17, 0)},
	}
	if diff := cmp.Diff(want, got, busyOpts); diff != "" {
		t.Errorf("FreeBusy mismatch (-want +got):\n%s", diff)
	}

	// A narrower range only sees what overlaps it.
	got = freeBusy(t, c, at(2, 0, 0), at(3, 0, 0))
	want = []calendar.Busy{{Start: at(2, 13, 0), End: at(2, 15, 0)}}
	if diff := cmp.Diff(want, got, busyOpts); diff != "" {
		t.Errorf("FreeBusy(Wednesday) mismatch (-want +got):\n%s", diff)
	}
}

func testFreeBusyRecurringDST(t *testing.T, b Backend) {
	berlin := mustZone(t, "Europe/Berlin")
	// Weekly at 10:00 Berlin wall time from Sunday 2027-03-21 (CET, UTC+1);
	// Berlin switches to CEST (UTC+2) on 2027-03-28, so later occurrences
	// start at 08:00 UTC instead of 09:00 UTC.
	first := time.Date(2027, 3, 21, 10, 0, 0, 0, berlin)
	addForeign(t, b.External, ForeignEvent{
		Summary: "Sunday run", Start: first, End: first.Add(time.Hour),
		TimeZone: "Europe/Berlin", WeeklyCount: 3,
	})
	got := freeBusy(t, b.Calendar, time.Date(2027, 3, 20, 0, 0, 0, 0, time.UTC), time.Date(2027, 4, 10, 0, 0, 0, 0, time.UTC))
	want := []calendar.Busy{
		{Start: time.Date(2027, 3, 21, 9, 0, 0, 0, time.UTC), End: time.Date(2027, 3, 21, 10, 0, 0, 0, time.UTC)},
		{Start: time.Date(2027, 3, 28, 8, 0, 0, 0, time.UTC), End: time.Date(2027, 3, 28, 9, 0, 0, 0, time.UTC)},
		{Start: time.Date(2027, 4, 4, 8, 0, 0, 0, time.UTC), End: time.Date(2027, 4, 4, 9, 0, 0, 0, time.UTC)},
	}
	if diff := cmp.Diff(want, got, busyOpts); diff != "" {
		t.Errorf("FreeBusy over a recurring event crossing DST (-want +got):\n%s", diff)
	}
}

func testCreateTwice(t *testing.T, b Backend) {
	c := b.Calendar
	ev := booking(t, "twice", at(1, 9, 0), at(1, 10, 0), "Europe/Berlin")
	first := create(t, c, ev)
	if want := calendar.EventID(ev.BookingID); first.ID != want {
		t.Errorf("first create: ID = %q, want calendar.EventID = %q", first.ID, want)
	}
	second := create(t, c, ev)
	if second.ID != first.ID {
		t.Errorf("second create: ID = %q, want %q", second.ID, first.ID)
	}
	if !second.Start.Equal(ev.Start) || !second.End.Equal(ev.End) {
		t.Errorf("second create: %s–%s, want %s–%s", second.Start, second.End, ev.Start, ev.End)
	}
	cs, err := c.Changes(t.Context(), "")
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	n := 0
	for _, ch := range cs.Changes {
		if ch.ID == first.ID || ch.BookingID == ev.BookingID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("full listing has %d events for the booking, want 1 (listing: %+v)", n, cs.Changes)
	}
	got := freeBusy(t, c, at(0, 0, 0), at(7, 0, 0))
	want := []calendar.Busy{{Start: ev.Start, End: ev.End}}
	if diff := cmp.Diff(want, got, busyOpts); diff != "" {
		t.Errorf("FreeBusy after double create (-want +got):\n%s", diff)
	}
}

func testCreateConflict(t *testing.T, b Backend) {
	ev := booking(t, "taken", at(1, 9, 0), at(1, 10, 0), "UTC")
	id := calendar.EventID(ev.BookingID)
	addForeign(t, b.External, ForeignEvent{ID: id, Summary: "Not ours", Start: at(1, 11, 0), End: at(1, 12, 0), TimeZone: "UTC"})
	_, err := b.Calendar.CreateEvent(t.Context(), ev)
	if !errors.Is(err, calendar.ErrConflict) {
		t.Fatalf("CreateEvent over a foreign event with the same id: err = %v, want ErrConflict", err)
	}
	// The foreign event is untouched.
	got := freeBusy(t, b.Calendar, at(0, 0, 0), at(7, 0, 0))
	want := []calendar.Busy{{Start: at(1, 11, 0), End: at(1, 12, 0)}}
	if diff := cmp.Diff(want, got, busyOpts); diff != "" {
		t.Errorf("FreeBusy after conflict (-want +got):\n%s", diff)
	}
}

// checkEvent compares the fields the gateway wrote with what came back.
func checkEvent(t *testing.T, what string, got, want calendar.Event) {
	t.Helper()
	if got.ID != calendar.EventID(want.BookingID) {
		t.Errorf("%s: ID = %q, want %q", what, got.ID, calendar.EventID(want.BookingID))
	}
	if got.BookingID != want.BookingID {
		t.Errorf("%s: BookingID = %q, want %q", what, got.BookingID, want.BookingID)
	}
	if got.Summary != want.Summary {
		t.Errorf("%s: Summary = %q, want %q", what, got.Summary, want.Summary)
	}
	if !strings.Contains(got.Description, want.Description) {
		t.Errorf("%s: Description = %q, want it to contain %q", what, got.Description, want.Description)
	}
	if got.URL != want.URL {
		t.Errorf("%s: URL = %q, want %q", what, got.URL, want.URL)
	}
	if got.Location != want.Location {
		t.Errorf("%s: Location = %q, want %q", what, got.Location, want.Location)
	}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Errorf("%s: %s – %s, want %s – %s", what, got.Start.UTC(), got.End.UTC(), want.Start.UTC(), want.End.UTC())
	}
	if got.TimeZone != want.TimeZone {
		t.Errorf("%s: TimeZone = %q, want %q", what, got.TimeZone, want.TimeZone)
	}
	if !strings.EqualFold(got.Organizer.Email, want.Organizer.Email) {
		t.Errorf("%s: Organizer = %q, want %q", what, got.Organizer.Email, want.Organizer.Email)
	}
	if diff := cmp.Diff(emails(want.Attendees), emails(got.Attendees)); diff != "" {
		t.Errorf("%s: attendee emails (-want +got):\n%s", what, diff)
	}
	if got.ETag == "" {
		t.Errorf("%s: ETag is empty", what)
	}
}

func emails(as []calendar.Attendee) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, strings.ToLower(a.Email))
	}
	sort.Strings(out)
	return out
}

func testGet(t *testing.T, b Backend) {
	ev := booking(t, "get", at(1, 9, 0), at(1, 10, 30), "America/New_York")
	ev.Attendees = append(ev.Attendees, calendar.Attendee{Email: "observer@example.com", Name: "Olga Observer"})
	created := create(t, b.Calendar, ev)
	checkEvent(t, "CreateEvent result", created, ev)
	got, err := b.Calendar.GetEvent(t.Context(), ev.BookingID)
	if err != nil {
		t.Fatalf("GetEvent: %v", err)
	}
	checkEvent(t, "GetEvent", got, ev)
}

func testGetMissing(t *testing.T, b Backend) {
	_, err := b.Calendar.GetEvent(t.Context(), t.Name()+"-never-created")
	if !errors.Is(err, calendar.ErrNotFound) {
		t.Fatalf("GetEvent of a missing booking: err = %v, want ErrNotFound", err)
	}
}

func testUpdate(t *testing.T, b Backend) {
	c := b.Calendar
	ev := booking(t, "move", at(1, 9, 0), at(1, 10, 0), "Europe/Berlin")
	created := create(t, c, ev)

	moved := ev
	moved.Start, moved.End = at(3, 14, 0), at(3, 15, 30)
	moved.Summary = "Mentoring session (rescheduled)"
	moved.Attendees = []calendar.Attendee{{Email: "candidate2@example.com", Name: "Cleo Candidate"}}
	updated, err := c.UpdateEvent(t.Context(), moved)
	if err != nil {
		t.Fatalf("UpdateEvent: %v", err)
	}
	checkEvent(t, "UpdateEvent result", updated, moved)
	if updated.ETag == created.ETag {
		t.Errorf("UpdateEvent: ETag unchanged (%q)", updated.ETag)
	}
	got, err := c.GetEvent(t.Context(), ev.BookingID)
	if err != nil {
		t.Fatalf("GetEvent after update: %v", err)
	}
	checkEvent(t, "GetEvent after update", got, moved)
	if got.Sequence < created.Sequence {
		t.Errorf("Sequence went backwards: %d after %d", got.Sequence, created.Sequence)
	}
	busy := freeBusy(t, c, at(0, 0, 0), at(7, 0, 0))
	want := []calendar.Busy{{Start: moved.Start, End: moved.End}}
	if diff := cmp.Diff(want, busy, busyOpts); diff != "" {
		t.Errorf("FreeBusy after reschedule (-want +got):\n%s", diff)
	}

	// A second reschedule builds on the first (no stale version kept).
	moved.Start, moved.End = at(4, 8, 0), at(4, 9, 0)
	if _, err := c.UpdateEvent(t.Context(), moved); err != nil {
		t.Fatalf("second UpdateEvent: %v", err)
	}
	got, err = c.GetEvent(t.Context(), ev.BookingID)
	if err != nil {
		t.Fatalf("GetEvent after second update: %v", err)
	}
	checkEvent(t, "GetEvent after second update", got, moved)
}

func testUpdateMissing(t *testing.T, b Backend) {
	ev := booking(t, "ghost", at(1, 9, 0), at(1, 10, 0), "UTC")
	_, err := b.Calendar.UpdateEvent(t.Context(), ev)
	if !errors.Is(err, calendar.ErrNotFound) {
		t.Fatalf("UpdateEvent of a missing booking: err = %v, want ErrNotFound", err)
	}
}

func testDeleteTwice(t *testing.T, b Backend) {
	c := b.Calendar
	ev := booking(t, "del", at(1, 9, 0), at(1, 10, 0), "UTC")
	keep := booking(t, "keep", at(2, 9, 0), at(2, 10, 0), "UTC")
	create(t, c, ev)
	create(t, c, keep)
	for i := range 2 {
		if err := c.DeleteEvent(t.Context(), ev.BookingID); err != nil {
			t.Fatalf("DeleteEvent #%d: %v", i+1, err)
		}
	}
	if _, err := c.GetEvent(t.Context(), ev.BookingID); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("GetEvent after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := c.GetEvent(t.Context(), keep.BookingID); err != nil {
		t.Errorf("GetEvent of the other booking: %v", err)
	}
	busy := freeBusy(t, c, at(0, 0, 0), at(7, 0, 0))
	want := []calendar.Busy{{Start: keep.Start, End: keep.End}}
	if diff := cmp.Diff(want, busy, busyOpts); diff != "" {
		t.Errorf("FreeBusy after delete (-want +got):\n%s", diff)
	}
}

func testChanges(t *testing.T, b Backend) {
	c, x := b.Calendar, b.External
	edited := create(t, c, booking(t, "edited", at(1, 9, 0), at(1, 10, 0), "UTC"))
	deleted := create(t, c, booking(t, "deleted", at(1, 11, 0), at(1, 12, 0), "UTC"))
	same := create(t, c, booking(t, "same", at(1, 13, 0), at(1, 14, 0), "UTC"))

	full, err := c.Changes(t.Context(), "")
	if err != nil {
		t.Fatalf("Changes(\"\"): %v", err)
	}
	if full.Cursor == "" {
		t.Fatal("Changes(\"\"): empty cursor")
	}
	byID := index(full.Changes)
	for _, ev := range []calendar.Event{edited, deleted, same} {
		ch, ok := byID[ev.ID]
		switch {
		case !ok:
			t.Errorf("full listing misses %s", ev.ID)
		case ch.Deleted || ch.Event == nil:
			t.Errorf("full listing: %s deleted=%v event=%v, want a live event", ev.ID, ch.Deleted, ch.Event)
		case ch.BookingID != ev.BookingID:
			t.Errorf("full listing: %s BookingID = %q, want %q", ev.ID, ch.BookingID, ev.BookingID)
		}
	}

	// The user edits and deletes in their own calendar app, and adds an event.
	newStart, newEnd := at(2, 15, 0), at(2, 16, 0)
	if err := x.Move(t.Context(), edited.ID, newStart, newEnd); err != nil {
		t.Fatalf("external Move: %v", err)
	}
	if err := x.Delete(t.Context(), deleted.ID); err != nil {
		t.Fatalf("external Delete: %v", err)
	}
	foreign := addForeign(t, x, ForeignEvent{Summary: "Gym", Start: at(3, 7, 0), End: at(3, 8, 0), TimeZone: "UTC"})

	delta, err := c.Changes(t.Context(), full.Cursor)
	if err != nil {
		t.Fatalf("Changes(cursor): %v", err)
	}
	if delta.Reset {
		t.Error("Changes(cursor): Reset set for a fresh cursor")
	}
	byID = index(delta.Changes)
	if ch, ok := byID[edited.ID]; !ok {
		t.Errorf("delta misses the externally moved event %s", edited.ID)
	} else if ch.Deleted || ch.Event == nil {
		t.Errorf("delta: moved event deleted=%v event=%v", ch.Deleted, ch.Event)
	} else {
		if ch.BookingID != edited.BookingID {
			t.Errorf("delta: moved event BookingID = %q, want %q", ch.BookingID, edited.BookingID)
		}
		if !ch.Event.Start.Equal(newStart) || !ch.Event.End.Equal(newEnd) {
			t.Errorf("delta: moved event at %s–%s, want %s–%s", ch.Event.Start, ch.Event.End, newStart, newEnd)
		}
	}
	if ch, ok := byID[deleted.ID]; !ok {
		t.Errorf("delta misses the externally deleted event %s", deleted.ID)
	} else if !ch.Deleted || ch.Event != nil {
		t.Errorf("delta: deleted event deleted=%v event=%v, want deleted and no event", ch.Deleted, ch.Event)
	}
	if ch, ok := byID[foreign]; !ok {
		t.Errorf("delta misses the new foreign event %s", foreign)
	} else if ch.Deleted || ch.BookingID != "" || ch.Event == nil {
		t.Errorf("delta: foreign event deleted=%v booking=%q event=%v, want live, no booking", ch.Deleted, ch.BookingID, ch.Event)
	}
	if _, ok := byID[same.ID]; ok {
		t.Errorf("delta lists the unchanged event %s", same.ID)
	}

	// Nothing changed since: an empty delta.
	again, err := c.Changes(t.Context(), delta.Cursor)
	if err != nil {
		t.Fatalf("Changes(second cursor): %v", err)
	}
	if len(again.Changes) != 0 || again.Reset {
		t.Errorf("Changes with no change since: %d changes, reset=%v; want none", len(again.Changes), again.Reset)
	}
	if again.Cursor == "" {
		t.Error("Changes(second cursor): empty cursor")
	}
}

func index(cs []calendar.Change) map[string]calendar.Change {
	m := make(map[string]calendar.Change, len(cs))
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

func testChangesCancelled(t *testing.T, b Backend) {
	cx, ok := b.External.(Canceller)
	if !ok {
		t.Skip("backend's External does not implement Canceller")
	}
	c := b.Calendar
	ev := create(t, c, booking(t, "cancelled", at(1, 9, 0), at(1, 10, 0), "UTC"))
	first, err := c.Changes(t.Context(), "")
	if err != nil {
		t.Fatalf("Changes(\"\"): %v", err)
	}
	if err := cx.Cancel(t.Context(), ev.ID); err != nil {
		t.Fatalf("external Cancel: %v", err)
	}
	delta, err := c.Changes(t.Context(), first.Cursor)
	if err != nil {
		t.Fatalf("Changes(cursor): %v", err)
	}
	if ch, ok := index(delta.Changes)[ev.ID]; !ok || !ch.Deleted || ch.Event != nil || ch.BookingID != ev.BookingID {
		t.Errorf("delta after the user cancelled %s: %+v, want it deleted, with its booking id and no event", ev.ID, delta.Changes)
	}
	if busy := freeBusy(t, c, at(0, 0, 0), at(7, 0, 0)); len(busy) != 0 {
		t.Errorf("FreeBusy counts the cancelled event: %v", busy)
	}
}

func testChangesExpired(t *testing.T, b Backend) {
	exp, ok := b.External.(CursorExpirer)
	if !ok {
		t.Skip("backend's External does not implement CursorExpirer")
	}
	c := b.Calendar
	ev := create(t, c, booking(t, "kept", at(1, 9, 0), at(1, 10, 0), "UTC"))
	first, err := c.Changes(t.Context(), "")
	if err != nil {
		t.Fatalf("Changes(\"\"): %v", err)
	}
	if err := exp.ExpireCursors(t.Context()); err != nil {
		t.Fatalf("ExpireCursors: %v", err)
	}
	got, err := c.Changes(t.Context(), first.Cursor)
	if err != nil {
		t.Fatalf("Changes(expired cursor): %v", err)
	}
	if !got.Reset {
		t.Error("Changes(expired cursor): Reset not set")
	}
	if ch, ok := index(got.Changes)[ev.ID]; !ok || ch.BookingID != ev.BookingID || ch.Deleted {
		t.Errorf("Changes(expired cursor): full listing lacks the live event %s: %+v", ev.ID, got.Changes)
	}
	if got.Cursor == "" {
		t.Error("Changes(expired cursor): empty cursor")
	}
}

func testCalendarGone(t *testing.T, b Backend) {
	del, ok := b.External.(CalendarDeleter)
	if !ok {
		t.Skip("backend's External does not implement CalendarDeleter")
	}
	ctx, c := t.Context(), b.Calendar
	ev := create(t, c, booking(t, "orphan", at(1, 9, 0), at(1, 10, 0), "UTC"))
	first, err := c.Changes(ctx, "")
	if err != nil {
		t.Fatalf("Changes(\"\"): %v", err)
	}
	if err := del.DeleteCalendar(ctx); err != nil {
		t.Fatalf("DeleteCalendar: %v", err)
	}
	calendarLevel := []struct {
		name string
		call func() error
	}{
		{"FreeBusy", func() error { _, err := c.FreeBusy(ctx, at(0, 0, 0), at(7, 0, 0)); return err }},
		{"Changes(\"\")", func() error { _, err := c.Changes(ctx, ""); return err }},
		{"Changes(cursor)", func() error { _, err := c.Changes(ctx, first.Cursor); return err }},
	}
	for _, call := range calendarLevel {
		if err := call.call(); !errors.Is(err, calendar.ErrCalendarNotFound) {
			t.Errorf("%s after the calendar was deleted: %v, want calendar.ErrCalendarNotFound", call.name, err)
		}
	}
	// An event's own calls cannot tell a missing event from a missing
	// calendar; both are not found.
	if _, err := c.GetEvent(ctx, ev.BookingID); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("GetEvent after the calendar was deleted: %v, want calendar.ErrNotFound", err)
	}
	if _, err := c.UpdateEvent(ctx, ev); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("UpdateEvent after the calendar was deleted: %v, want calendar.ErrNotFound", err)
	}
	// Cancelling the booking succeeds: its event went with the calendar.
	if err := c.DeleteEvent(ctx, ev.BookingID); err != nil {
		t.Errorf("DeleteEvent after the calendar was deleted: %v, want nil", err)
	}
	if _, err := c.CreateEvent(ctx, booking(t, "new", at(2, 9, 0), at(2, 10, 0), "UTC")); err == nil {
		t.Error("CreateEvent in a deleted calendar succeeded")
	}
}

func testDST(t *testing.T, b Backend) {
	c := b.Calendar
	berlin := mustZone(t, "Europe/Berlin")
	newYork := mustZone(t, "America/New_York")
	tests := []struct {
		name       string
		zone       string
		start, end time.Time
		wantDur    time.Duration
	}{
		// Berlin springs forward 2027-03-28 02:00 CET → 03:00 CEST:
		// 01:30–03:30 wall time is one real hour.
		{"berlin-spring", "Europe/Berlin", time.Date(2027, 3, 28, 1, 30, 0, 0, berlin), time.Date(2027, 3, 28, 3, 30, 0, 0, berlin), time.Hour},
		// Berlin falls back 2027-10-31 03:00 CEST → 02:00 CET:
		// 01:30–03:30 wall time is three real hours.
		{"berlin-fall", "Europe/Berlin", time.Date(2027, 10, 31, 1, 30, 0, 0, berlin), time.Date(2027, 10, 31, 3, 30, 0, 0, berlin), 3 * time.Hour},
		// New York springs forward 2027-03-14 02:00 EST → 03:00 EDT.
		{"newyork-spring", "America/New_York", time.Date(2027, 3, 14, 1, 0, 0, 0, newYork), time.Date(2027, 3, 14, 4, 0, 0, 0, newYork), 2 * time.Hour},
		// New York falls back 2028-11-05 02:00 EDT → 01:00 EST:
		// 00:30 EDT – 03:00 EST is three and a half real hours.
		{"newyork-fall", "America/New_York", time.Date(2028, 11, 5, 0, 30, 0, 0, newYork), time.Date(2028, 11, 5, 3, 0, 0, 0, newYork), 3*time.Hour + 30*time.Minute},
		// New York falls back 2027-11-07. 06:30Z is 01:30 EST, the second
		// 01:30 of that night; its wall time alone is ambiguous (RFC 5545
		// reads it as the first, EDT), so the instant must survive anyway.
		{"newyork-repeated-hour", "America/New_York", time.Date(2027, 11, 7, 6, 30, 0, 0, time.UTC), time.Date(2027, 11, 7, 8, 0, 0, 0, time.UTC), 90 * time.Minute},
	}
	for _, tt := range tests {
		if d := tt.end.Sub(tt.start); d != tt.wantDur {
			t.Fatalf("%s: test table wrong: duration %s, want %s", tt.name, d, tt.wantDur)
		}
		ev := booking(t, tt.name, tt.start, tt.end, tt.zone)
		created := create(t, c, ev)
		checkEvent(t, tt.name+": CreateEvent", created, ev)
		got, err := c.GetEvent(t.Context(), ev.BookingID)
		if err != nil {
			t.Fatalf("%s: GetEvent: %v", tt.name, err)
		}
		checkEvent(t, tt.name+": GetEvent", got, ev)
		busy := freeBusy(t, c, tt.start.Add(-time.Minute), tt.end.Add(time.Minute))
		want := []calendar.Busy{{Start: tt.start, End: tt.end}}
		if diff := cmp.Diff(want, busy, busyOpts); diff != "" {
			t.Errorf("%s: FreeBusy (-want +got):\n%s", tt.name, diff)
		}
	}

	// Rescheduling from winter time into summer time keeps the instants too.
	ev := booking(t, "dst-move", time.Date(2027, 3, 10, 9, 0, 0, 0, berlin), time.Date(2027, 3, 10, 10, 0, 0, 0, berlin), "Europe/Berlin")
	create(t, c, ev)
	ev.Start, ev.End = time.Date(2027, 4, 7, 9, 0, 0, 0, berlin), time.Date(2027, 4, 7, 10, 0, 0, 0, berlin)
	if _, err := c.UpdateEvent(t.Context(), ev); err != nil {
		t.Fatalf("UpdateEvent across DST: %v", err)
	}
	got, err := c.GetEvent(t.Context(), ev.BookingID)
	if err != nil {
		t.Fatalf("GetEvent after DST move: %v", err)
	}
	checkEvent(t, "GetEvent after DST move", got, ev)
	if want := time.Date(2027, 4, 7, 7, 0, 0, 0, time.UTC); !got.Start.Equal(want) {
		t.Errorf("moved into CEST: start %s, want %s", got.Start.UTC(), want)
	}
}
