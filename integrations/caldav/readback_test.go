package caldav_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-ical"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
)

// target is one server under test with a fresh calendar per call.
type target struct {
	name   string
	newCal func(t *testing.T) (*caldav.Client, *rawCal)
	// timeRange is true when the server's own calendar-query time-range
	// evaluation is independent of this package (Radicale's vobject).
	timeRange bool
}

func targets(t *testing.T) []target {
	out := []target{{
		name: "in-memory",
		newCal: func(t *testing.T) (*caldav.Client, *rawCal) {
			ts, _, calURL := memServer(t, caldavtest.Options{})
			return newClient(t, ts.Client(), calURL, "alice", "alice-secret"),
				&rawCal{calURL: calURL, user: "alice", pass: "alice-secret", hc: ts.Client()}
		},
	}}
	base, user, pass := radicale.Start(t)
	var n atomic.Int64
	out = append(out, target{
		name:      "radicale",
		timeRange: true,
		newCal: func(t *testing.T) (*caldav.Client, *rawCal) {
			calURL := radicale.MakeCalendar(t, base, user, pass, fmt.Sprintf("rb%d", n.Add(1)))
			return newClient(t, ownTransport, calURL, user, pass),
				&rawCal{calURL: calURL, user: user, pass: pass, hc: ownTransport}
		},
	})
	return out
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWrittenEventReadBackIndependently writes events through the Client
// and checks the stored iCalendar, fetched with a raw GET and parsed with
// go-ical, property by property.
func TestWrittenEventReadBackIndependently(t *testing.T) {
	t.Parallel()
	berlin, newYork := mustLoc(t, "Europe/Berlin"), mustLoc(t, "America/New_York")
	cases := []struct {
		name       string
		zone       string
		start, end time.Time
		// wall times expected in DTSTART/DTEND; "" means a UTC value is expected.
		wantStart, wantEnd string
		// offsets VTIMEZONE must carry as TZOFFSETTO.
		wantOffsets []string
	}{
		{"berlin-spring", "Europe/Berlin", time.Date(2027, 3, 28, 1, 30, 0, 0, berlin), time.Date(2027, 3, 28, 3, 30, 0, 0, berlin),
			"20270328T013000", "20270328T033000", []string{"+0100", "+0200"}},
		{"berlin-fall", "Europe/Berlin", time.Date(2027, 10, 31, 1, 30, 0, 0, berlin), time.Date(2027, 10, 31, 3, 30, 0, 0, berlin),
			"20271031T013000", "20271031T033000", []string{"+0100", "+0200"}},
		{"newyork-spring", "America/New_York", time.Date(2027, 3, 14, 1, 0, 0, 0, newYork), time.Date(2027, 3, 14, 4, 0, 0, 0, newYork),
			"20270314T010000", "20270314T040000", []string{"-0500", "-0400"}},
		{"newyork-fall", "America/New_York", time.Date(2028, 11, 5, 0, 30, 0, 0, newYork), time.Date(2028, 11, 5, 3, 0, 0, 0, newYork),
			"20281105T003000", "20281105T030000", []string{"-0500", "-0400"}},
		// 06:30Z is the second 01:30 in New York that night; RFC 5545 would
		// read TZID 01:30 as the first one, so DTSTART must be UTC.
		{"newyork-repeated-hour", "America/New_York", time.Date(2027, 11, 7, 6, 30, 0, 0, time.UTC), time.Date(2027, 11, 7, 8, 0, 0, 0, time.UTC),
			"", "20271107T030000", []string{"-0500", "-0400"}},
	}
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			c, raw := tg.newCal(t)
			for _, tc := range cases {
				ev := calendar.Event{
					BookingID:   "readback-" + tc.name,
					Summary:     "Session, with; special chars",
					Description: "Bring your CV.\nSecond line.",
					Location:    "Zoom",
					URL:         "https://zoom.example.com/j/8123?pwd=x",
					Start:       tc.start, End: tc.end, TimeZone: tc.zone,
					Organizer: calendar.Attendee{Email: "mentor@example.com", Name: "Mia Mentor"},
					Attendees: []calendar.Attendee{{Email: "candidate@example.com", Name: "Carl Candidate"}},
				}
				if _, err := c.CreateEvent(t.Context(), ev); err != nil {
					t.Fatalf("%s: CreateEvent: %v", tc.name, err)
				}
				uid := calendar.EventID(ev.BookingID)
				cal, _, body, err := raw.get(t.Context(), uid)
				if err != nil {
					t.Fatalf("%s: raw GET: %v", tc.name, err)
				}
				checkStored(t, tc.name, cal, body, ev, uid, tc.wantStart, tc.wantEnd, tc.wantOffsets, 0)
				if tg.timeRange {
					checkTimeRange(t, raw, tc.name, uid, tc.start, tc.end)
				}
			}

			// A reschedule bumps SEQUENCE and keeps the structure.
			moved := calendar.Event{
				BookingID: "readback-move", Summary: "s", URL: "https://zoom.example.com/j/1",
				Start: time.Date(2027, 3, 10, 9, 0, 0, 0, berlin), End: time.Date(2027, 3, 10, 10, 0, 0, 0, berlin),
				TimeZone: "Europe/Berlin", Organizer: calendar.Attendee{Email: "mentor@example.com"},
			}
			if _, err := c.CreateEvent(t.Context(), moved); err != nil {
				t.Fatalf("CreateEvent: %v", err)
			}
			moved.Start, moved.End = time.Date(2027, 4, 7, 9, 0, 0, 0, berlin), time.Date(2027, 4, 7, 10, 0, 0, 0, berlin)
			if _, err := c.UpdateEvent(t.Context(), moved); err != nil {
				t.Fatalf("UpdateEvent: %v", err)
			}
			uid := calendar.EventID(moved.BookingID)
			cal, _, body, err := raw.get(t.Context(), uid)
			if err != nil {
				t.Fatalf("raw GET after update: %v", err)
			}
			checkStored(t, "rescheduled", cal, body, moved, uid, "20270407T090000", "20270407T100000", []string{"+0200"}, 1)
		})
	}
}

func checkStored(t *testing.T, name string, cal *ical.Calendar, body []byte, ev calendar.Event, uid, wantStart, wantEnd string, wantOffsets []string, wantSeq int) {
	t.Helper()
	if cal.Props.Get(ical.PropMethod) != nil || bytes.Contains(body, []byte("\nMETHOD:")) {
		t.Errorf("%s: stored object has a METHOD property", name)
	}
	var vevents, vtimezones []*ical.Component
	for _, c := range cal.Children {
		switch c.Name {
		case ical.CompEvent:
			vevents = append(vevents, c)
		case ical.CompTimezone:
			vtimezones = append(vtimezones, c)
		}
	}
	if len(vevents) != 1 {
		t.Fatalf("%s: %d VEVENTs, want 1", name, len(vevents))
	}
	v := vevents[0]
	text := func(p string) string {
		if pr := v.Props.Get(p); pr != nil {
			s, _ := pr.Text()
			return s
		}
		return ""
	}
	if got := text(ical.PropUID); got != uid {
		t.Errorf("%s: UID = %q, want %q", name, got, uid)
	}
	if got := text(caldav.PropBooking); got != ev.BookingID {
		t.Errorf("%s: X-SPOTLIGHT-BOOKING = %q, want %q", name, got, ev.BookingID)
	}
	if got := text(ical.PropSummary); got != ev.Summary {
		t.Errorf("%s: SUMMARY = %q, want %q", name, got, ev.Summary)
	}
	if got := text(ical.PropDescription); !strings.Contains(got, ev.Description) || !strings.Contains(got, ev.URL) {
		t.Errorf("%s: DESCRIPTION = %q, want it to hold %q and the join URL", name, got, ev.Description)
	}
	if p := v.Props.Get(ical.PropURL); p == nil || p.Value != ev.URL {
		t.Errorf("%s: URL = %v, want %q", name, p, ev.URL)
	}
	if p := v.Props.Get(ical.PropSequence); p == nil || strings.TrimSpace(p.Value) != fmt.Sprint(wantSeq) {
		t.Errorf("%s: SEQUENCE = %v, want %d", name, p, wantSeq)
	}
	if p := v.Props.Get(ical.PropOrganizer); p == nil || !strings.EqualFold(p.Value, "mailto:"+ev.Organizer.Email) {
		t.Errorf("%s: ORGANIZER = %v, want mailto:%s", name, p, ev.Organizer.Email)
	} else if ev.Organizer.Name != "" && p.Params.Get(ical.ParamCommonName) != ev.Organizer.Name {
		t.Errorf("%s: ORGANIZER CN = %q, want %q", name, p.Params.Get(ical.ParamCommonName), ev.Organizer.Name)
	}
	atts := v.Props.Values(ical.PropAttendee)
	if len(atts) != len(ev.Attendees) {
		t.Errorf("%s: %d ATTENDEEs, want %d", name, len(atts), len(ev.Attendees))
	}
	for i := range min(len(atts), len(ev.Attendees)) {
		if !strings.EqualFold(atts[i].Value, "mailto:"+ev.Attendees[i].Email) || atts[i].Params.Get(ical.ParamCommonName) != ev.Attendees[i].Name {
			t.Errorf("%s: ATTENDEE %d = %s CN=%q, want mailto:%s CN=%q", name, i, atts[i].Value, atts[i].Params.Get(ical.ParamCommonName), ev.Attendees[i].Email, ev.Attendees[i].Name)
		}
	}

	loc, _ := time.LoadLocation(ev.TimeZone)
	for _, chk := range []struct {
		prop, wantWall string
		instant        time.Time
	}{{ical.PropDateTimeStart, wantStart, ev.Start}, {ical.PropDateTimeEnd, wantEnd, ev.End}} {
		p := v.Props.Get(chk.prop)
		if p == nil {
			t.Errorf("%s: no %s", name, chk.prop)
			continue
		}
		if chk.wantWall == "" {
			want := chk.instant.UTC().Format("20060102T150405Z")
			if p.Value != want || p.Params.Get(ical.PropTimezoneID) != "" {
				t.Errorf("%s: %s = %s (TZID %q), want UTC %s", name, chk.prop, p.Value, p.Params.Get(ical.PropTimezoneID), want)
			}
			continue
		}
		if tz := p.Params.Get(ical.PropTimezoneID); tz != ev.TimeZone {
			t.Errorf("%s: %s TZID = %q, want %q", name, chk.prop, tz, ev.TimeZone)
		}
		if p.Value != chk.wantWall {
			t.Errorf("%s: %s = %s, want wall time %s", name, chk.prop, p.Value, chk.wantWall)
		}
		// The wall time means the intended instant (no ambiguity here).
		got, err := time.ParseInLocation("20060102T150405", p.Value, loc)
		if err != nil || !got.Equal(chk.instant) {
			t.Errorf("%s: %s reads as %s, want %s (err %v)", name, chk.prop, got.UTC(), chk.instant.UTC(), err)
		}
	}
	var tz *ical.Component
	for _, c := range vtimezones {
		if id, _ := c.Props.Text(ical.PropTimezoneID); id == ev.TimeZone {
			tz = c
		}
	}
	if tz == nil {
		t.Errorf("%s: no VTIMEZONE with TZID %q", name, ev.TimeZone)
		return
	}
	offsets := map[string]bool{}
	for _, o := range tz.Children {
		if p := o.Props.Get(ical.PropTimezoneOffsetTo); p != nil {
			offsets[p.Value] = true
		}
	}
	for _, want := range wantOffsets {
		if !offsets[want] {
			t.Errorf("%s: VTIMEZONE lacks TZOFFSETTO %s (has %v)", name, want, offsets)
		}
	}
}

// checkTimeRange asks the server, with a raw calendar-query REPORT, for
// objects around the event's exact start and end: the server evaluates the
// stored TZID and VTIMEZONE itself, so a wrong offset shows up here.
func checkTimeRange(t *testing.T, raw *rawCal, name, uid string, start, end time.Time) {
	t.Helper()
	query := func(from, to time.Time) bool {
		body := `<?xml version="1.0" encoding="utf-8"?>
<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop>
<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">
<c:time-range start="` + from.UTC().Format("20060102T150405Z") + `" end="` + to.UTC().Format("20060102T150405Z") + `"/>
</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>`
		code, _, resp, err := raw.do(t.Context(), "REPORT", raw.calURL, []byte(body), map[string]string{"Depth": "1", "Content-Type": "application/xml"})
		if err != nil || code != http.StatusMultiStatus {
			t.Fatalf("%s: REPORT: %d %v", name, code, err)
		}
		return bytes.Contains(resp, []byte(uid+".ics"))
	}
	if !query(start.Add(-time.Minute), start.Add(time.Minute)) {
		t.Errorf("%s: server finds nothing around the start instant %s", name, start.UTC())
	}
	if !query(end.Add(-time.Minute), end.Add(time.Minute)) {
		t.Errorf("%s: server finds nothing around the end instant %s", name, end.UTC())
	}
	if query(end.Add(time.Minute), end.Add(2*time.Hour)) {
		t.Errorf("%s: server finds the event after its end %s", name, end.UTC())
	}
	if query(start.Add(-2*time.Hour), start.Add(-time.Minute)) {
		t.Errorf("%s: server finds the event before its start %s", name, start.UTC())
	}
}

// TestCreateTwiceStoresOneObject checks If-None-Match on the wire: creates
// repeated in sequence and concurrently leave exactly one resource.
func TestCreateTwiceStoresOneObject(t *testing.T) {
	t.Parallel()
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			c, raw := tg.newCal(t)
			ev := calendar.Event{BookingID: "dup", Summary: "s", Start: time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC),
				End: time.Date(2027, 6, 1, 10, 0, 0, 0, time.UTC), TimeZone: "Europe/Berlin"}
			var wg sync.WaitGroup
			errs := make(chan error, 6)
			for range 6 {
				wg.Go(func() {
					_, err := c.CreateEvent(t.Context(), ev)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent CreateEvent: %v", err)
				}
			}
			if _, err := c.CreateEvent(t.Context(), ev); err != nil {
				t.Fatalf("CreateEvent again: %v", err)
			}
			n, err := raw.countObjects(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("collection holds %d objects, want 1", n)
			}
			// A raw PUT with If-None-Match: * on the existing object is refused.
			cal, _, _, err := raw.get(t.Context(), calendar.EventID(ev.BookingID))
			if err != nil {
				t.Fatal(err)
			}
			code, err := raw.put(t.Context(), calendar.EventID(ev.BookingID), cal, map[string]string{"If-None-Match": "*"})
			if err != nil || code != http.StatusPreconditionFailed {
				t.Errorf("raw PUT If-None-Match over existing: HTTP %d, %v; want 412", code, err)
			}
		})
	}
}

// TestChangesInvalidSyncTokenResets hands Radicale a sync-token it never
// issued: the server refuses it and Changes falls back to a full listing.
func TestChangesInvalidSyncTokenResets(t *testing.T) {
	t.Parallel()
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			c, _ := tg.newCal(t)
			ev := calendar.Event{BookingID: "kept", Summary: "s", Start: time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC),
				End: time.Date(2027, 6, 1, 10, 0, 0, 0, time.UTC), TimeZone: "UTC"}
			if _, err := c.CreateEvent(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			for _, cursor := range []string{
				"s1:http://radicale.org/ns/sync/0000000000000000000000000000000000000000",
				"s1:http://spotlight.invalid/ns/sync/99-99",
				"e1:not-base64!",
				"garbage",
			} {
				cs, err := c.Changes(t.Context(), cursor)
				if err != nil {
					t.Fatalf("Changes(%q): %v", cursor, err)
				}
				if !cs.Reset || cs.Cursor == "" {
					t.Errorf("Changes(%q): reset=%v cursor=%q, want reset and a new cursor", cursor, cs.Reset, cs.Cursor)
				}
				if len(cs.Changes) != 1 || cs.Changes[0].BookingID != ev.BookingID {
					t.Errorf("Changes(%q): %+v, want the one live event", cursor, cs.Changes)
				}
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	ts, _, calURL := memServer(t, caldavtest.Options{})
	bad := newClient(t, ts.Client(), calURL, "alice", "wrong")
	_, err := bad.GetEvent(t.Context(), "b1")
	if !errors.Is(err, caldav.ErrUnauthorized) {
		t.Errorf("GetEvent with a wrong password: %v, want ErrUnauthorized", err)
	}
	if _, err := bad.FreeBusy(t.Context(), time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, caldav.ErrUnauthorized) {
		t.Errorf("FreeBusy with a wrong password: %v, want ErrUnauthorized", err)
	}
	if strings.Contains(fmt.Sprint(err), "wrong") {
		t.Errorf("error message leaks the password: %v", err)
	}
	if _, err := caldav.New("not a url", "a", "b"); err == nil {
		t.Error("New accepted a relative URL")
	}
}

// TestUpdateKeepsOwnerEdits: once the session's event is in the owner's
// calendar, their edits to what the gateway does not own — categories, a
// reminder — survive a reschedule; the title, the time, the join details
// and the sequence are the gateway's.
func TestUpdateKeepsOwnerEdits(t *testing.T) {
	t.Parallel()
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c, raw := tg.newCal(t)
			start := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
			ev, err := c.CreateEvent(ctx, calendar.Event{BookingID: "owner-edits", Summary: "Mentoring: Mock interview",
				Start: start, End: start.Add(time.Hour), TimeZone: "UTC", URL: "https://zoom.example/j/1"})
			if err != nil {
				t.Fatal(err)
			}
			// The owner renames it, files it and adds a reminder in their app.
			cal, etag, _, err := raw.get(ctx, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range cal.Children {
				if ch.Name != ical.CompEvent {
					continue
				}
				ch.Props.SetText(ical.PropSummary, "Interview with Bob")
				ch.Props.SetText(ical.PropCategories, "Mentoring")
				alarm := ical.NewComponent(ical.CompAlarm)
				alarm.Props.SetText(ical.PropAction, "DISPLAY")
				alarm.Props.SetText(ical.PropDescription, "Soon")
				trig := ical.NewProp(ical.PropTrigger)
				trig.Value = "-PT15M"
				alarm.Props.Set(trig)
				ch.Children = append(ch.Children, alarm)
			}
			if code, err := raw.put(ctx, ev.ID, cal, map[string]string{"If-Match": etag}); err != nil || code/100 != 2 {
				t.Fatalf("owner's edit: %d %v", code, err)
			}

			moved := ev
			moved.Start, moved.End, moved.URL = start.Add(2*time.Hour), start.Add(3*time.Hour), "https://zoom.example/j/2"
			if _, err := c.UpdateEvent(ctx, moved); err != nil {
				t.Fatal(err)
			}
			cal, _, body, err := raw.get(ctx, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			var vev *ical.Component
			for _, ch := range cal.Children {
				if ch.Name == ical.CompEvent {
					vev = ch
				}
			}
			if vev == nil {
				t.Fatalf("no VEVENT:\n%s", body)
			}
			if s, _ := vev.Props.Text(ical.PropSummary); s != "Mentoring: Mock interview" {
				t.Errorf("summary %q, want the gateway's", s)
			}
			if s, _ := vev.Props.Text(ical.PropCategories); s != "Mentoring" {
				t.Errorf("categories %q, want the owner's", s)
			}
			alarms := 0
			for _, ch := range vev.Children {
				if ch.Name == ical.CompAlarm {
					alarms++
				}
			}
			if alarms != 1 {
				t.Errorf("%d alarms, want the owner's one:\n%s", alarms, body)
			}
			if got, err := vev.Props.DateTime(ical.PropDateTimeStart, time.UTC); err != nil || !got.Equal(moved.Start) {
				t.Errorf("DTSTART %v (%v), want %v", got, err, moved.Start)
			}
			if u := vev.Props.Get(ical.PropURL); u == nil || u.Value != moved.URL {
				t.Errorf("URL %v, want the new join URL", u)
			}
		})
	}
}

// ownTransport is a client with a transport of its own: an httptest.Server
// closing in a parallel test closes http.DefaultTransport's idle
// connections, which can break a request about to reuse one.
var ownTransport = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
