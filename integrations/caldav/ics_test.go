package caldav

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/teambition/rrule-go"

	"github.com/spotlight/gateway/integrations/calendar"
)

func loc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func utc(y int, m time.Month, d, h, mi int) time.Time {
	return time.Date(y, m, d, h, mi, 0, 0, time.UTC)
}

// TestParseLocalRFC5545 checks the RFC 5545 section 3.3.5 reading of wall
// times around DST changes, which differs from time.Date for some zones.
func TestParseLocalRFC5545(t *testing.T) {
	t.Parallel()
	tests := []struct {
		zone, wall string
		want       time.Time
	}{
		{"Europe/Berlin", "20270615T120000", utc(2027, 6, 15, 10, 0)},
		// Repeated hour: the first occurrence (CEST), although time.Date picks CET here.
		{"Europe/Berlin", "20271031T023000", utc(2027, 10, 31, 0, 30)},
		{"America/New_York", "20271107T013000", utc(2027, 11, 7, 5, 30)},
		// Skipped hour: read with the offset before the gap.
		{"Europe/Berlin", "20270328T023000", utc(2027, 3, 28, 1, 30)},
		{"America/New_York", "20270314T023000", utc(2027, 3, 14, 7, 30)},
		{"Australia/Lord_Howe", "20270404T013000", utc(2027, 4, 3, 14, 30)},
	}
	for _, tt := range tests {
		got, err := parseLocal(tt.wall, loc(t, tt.zone))
		if err != nil {
			t.Fatalf("%s %s: %v", tt.zone, tt.wall, err)
		}
		if !got.Equal(tt.want) {
			t.Errorf("%s %s = %s, want %s", tt.zone, tt.wall, got.UTC(), tt.want)
		}
	}
}

func TestDateTimePropKeepsInstants(t *testing.T) {
	t.Parallel()
	ny := loc(t, "America/New_York")
	tests := []struct {
		at       time.Time
		l        *time.Location
		want     string
		wantTZID bool
	}{
		{utc(2027, 11, 7, 5, 30), ny, "20271107T013000", true},   // first 01:30 (EDT)
		{utc(2027, 11, 7, 6, 30), ny, "20271107T063000Z", false}, // second 01:30 (EST)
		{utc(2027, 6, 1, 9, 0), time.UTC, "20270601T090000Z", false},
		{utc(2027, 6, 1, 9, 0), loc(t, "Asia/Kolkata"), "20270601T143000", true},
	}
	for _, tt := range tests {
		p, tz := dateTimeProp(ical.PropDateTimeStart, tt.at, tt.l)
		if p.Value != tt.want || tz != tt.wantTZID {
			t.Errorf("%s in %s: %s (tzid %v), want %s (tzid %v)", tt.at, tt.l, p.Value, tz, tt.want, tt.wantTZID)
		}
		back, _, err := parseDateTime(p, time.UTC, nil)
		if err != nil || !back.Equal(tt.at) {
			t.Errorf("%s in %s reads back as %s (%v)", tt.at, tt.l, back, err)
		}
	}
}

func TestVTimezoneTransitions(t *testing.T) {
	t.Parallel()
	berlin := loc(t, "Europe/Berlin")
	tz := vtimezone(berlin, utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0))
	var got []string
	for _, c := range tz.Children {
		got = append(got, c.Name+" "+c.Props.Get(ical.PropDateTimeStart).Value+" "+
			c.Props.Get(ical.PropTimezoneOffsetFrom).Value+">"+c.Props.Get(ical.PropTimezoneOffsetTo).Value)
	}
	want := []string{
		"STANDARD 20260101T010000 +0100>+0100",
		"DAYLIGHT 20260329T020000 +0100>+0200",
		"STANDARD 20261025T030000 +0200>+0100",
		"DAYLIGHT 20270328T020000 +0100>+0200",
		"STANDARD 20271031T030000 +0200>+0100",
		"DAYLIGHT 20280326T020000 +0100>+0200",
		"STANDARD 20281029T030000 +0200>+0100",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VTIMEZONE observances (-want +got):\n%s", diff)
	}
	// A zone without DST has a single observance.
	if tz := vtimezone(loc(t, "Asia/Tokyo"), utc(2027, 1, 1, 0, 0), utc(2027, 1, 1, 1, 0)); len(tz.Children) != 1 {
		t.Errorf("Asia/Tokyo: %d observances, want 1", len(tz.Children))
	}
}

func parseICS(t *testing.T, s string) *ical.Calendar {
	t.Helper()
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", "\r\n") + "\r\n"
	cal, err := ical.NewDecoder(strings.NewReader(s)).Decode()
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cal
}

func TestExpand(t *testing.T) {
	t.Parallel()
	const head = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n"
	const tail = "END:VCALENDAR"
	tests := []struct {
		name     string
		ics      string
		from, to time.Time
		def      *time.Location // floating and all-day times; nil: UTC
		want     []calendar.Busy
	}{
		{
			name: "single event clipped to the range",
			ics:  head + "BEGIN:VEVENT\nUID:a\nDTSTAMP:20270101T000000Z\nDTSTART:20270601T090000Z\nDTEND:20270601T110000Z\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 1, 10, 0), to: utc(2027, 6, 2, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 1, 10, 0), End: utc(2027, 6, 1, 11, 0)}},
		},
		{
			name: "daily with EXDATE, an overridden and a cancelled instance",
			ics: head + "BEGIN:VEVENT\nUID:b\nDTSTAMP:20270101T000000Z\nDTSTART;TZID=Europe/Berlin:20270601T090000\n" +
				"DURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=5\nEXDATE;TZID=Europe/Berlin:20270602T090000\nEND:VEVENT\n" +
				"BEGIN:VEVENT\nUID:b\nDTSTAMP:20270101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20270603T090000\n" +
				"DTSTART;TZID=Europe/Berlin:20270603T150000\nDTEND;TZID=Europe/Berlin:20270603T160000\nEND:VEVENT\n" +
				"BEGIN:VEVENT\nUID:b\nDTSTAMP:20270101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20270604T090000\n" +
				"DTSTART;TZID=Europe/Berlin:20270604T090000\nDTEND;TZID=Europe/Berlin:20270604T100000\nSTATUS:CANCELLED\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 1, 0, 0), to: utc(2027, 6, 10, 0, 0),
			want: []calendar.Busy{
				{Start: utc(2027, 6, 3, 13, 0), End: utc(2027, 6, 3, 14, 0)},
				{Start: utc(2027, 6, 1, 7, 0), End: utc(2027, 6, 1, 8, 0)},
				{Start: utc(2027, 6, 5, 7, 0), End: utc(2027, 6, 5, 8, 0)},
			},
		},
		{
			name: "occurrence that started before the range still overlaps",
			ics: head + "BEGIN:VEVENT\nUID:c\nDTSTAMP:20270101T000000Z\nDTSTART:20270601T230000Z\nDTEND:20270602T030000Z\n" +
				"RRULE:FREQ=WEEKLY\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 9, 1, 0), to: utc(2027, 6, 9, 2, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 9, 1, 0), End: utc(2027, 6, 9, 2, 0)}},
		},
		{
			name: "a transparent event is free",
			ics:  head + "BEGIN:VEVENT\nUID:d\nDTSTAMP:20270101T000000Z\nDTSTART:20270601T090000Z\nDTEND:20270601T100000Z\nTRANSP:TRANSPARENT\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 1, 0, 0), to: utc(2027, 6, 2, 0, 0),
			want: nil,
		},
		{
			name: "all-day event in the default zone",
			ics:  head + "BEGIN:VEVENT\nUID:e\nDTSTAMP:20270101T000000Z\nDTSTART;VALUE=DATE:20270601\nDTEND;VALUE=DATE:20270602\nEND:VEVENT\n" + tail,
			from: utc(2027, 5, 30, 0, 0), to: utc(2027, 6, 5, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 1, 0, 0), End: utc(2027, 6, 2, 0, 0)}},
		},
		{
			// UNTIL is inclusive and, as a DATE, a date of the series'
			// zone: the last day off is Thursday in Los Angeles, which
			// begins after 00:00 UTC that day.
			name: "all-day series until a date, west of UTC",
			ics: head + "BEGIN:VEVENT\nUID:g\nDTSTAMP:20270101T000000Z\nDTSTART;VALUE=DATE:20270607\nDTEND;VALUE=DATE:20270608\n" +
				"RRULE:FREQ=DAILY;UNTIL=20270610\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 6, 0, 0), to: utc(2027, 6, 13, 0, 0), def: loc(t, "America/Los_Angeles"),
			want: []calendar.Busy{
				{Start: utc(2027, 6, 7, 7, 0), End: utc(2027, 6, 8, 7, 0)},
				{Start: utc(2027, 6, 8, 7, 0), End: utc(2027, 6, 9, 7, 0)},
				{Start: utc(2027, 6, 9, 7, 0), End: utc(2027, 6, 10, 7, 0)},
				{Start: utc(2027, 6, 10, 7, 0), End: utc(2027, 6, 11, 7, 0)},
			},
		},
		{
			name: "floating series until a floating time, west of UTC",
			ics: head + "BEGIN:VEVENT\nUID:h\nDTSTAMP:20270101T000000Z\nDTSTART:20270607T200000\nDTEND:20270607T210000\n" +
				"RRULE:FREQ=DAILY;UNTIL=20270609T200000\nEND:VEVENT\n" + tail,
			from: utc(2027, 6, 6, 0, 0), to: utc(2027, 6, 13, 0, 0), def: loc(t, "America/Los_Angeles"),
			want: []calendar.Busy{
				{Start: utc(2027, 6, 8, 3, 0), End: utc(2027, 6, 8, 4, 0)},
				{Start: utc(2027, 6, 9, 3, 0), End: utc(2027, 6, 9, 4, 0)},
				{Start: utc(2027, 6, 10, 3, 0), End: utc(2027, 6, 10, 4, 0)},
			},
		},
	}
	for _, tt := range tests {
		def := tt.def
		if def == nil {
			def = time.UTC
		}
		got, err := Expand(parseICS(t, tt.ics), tt.from, tt.to, def)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		byStart := cmpopts.SortSlices(func(a, b calendar.Busy) bool { return a.Start.Before(b.Start) })
		if diff := cmp.Diff(tt.want, got, byStart, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestDecodeForeignTZID(t *testing.T) {
	t.Parallel()
	cal := parseICS(t, "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:f\nDTSTAMP:20270101T000000Z\n"+
		"DTSTART;TZID=/freeassociation.sourceforge.net/Europe/Berlin:20270601T090000\nDTEND;TZID=Unknown Zone:20270601T100000\n"+
		"ORGANIZER;CN=\"Mia M\":MAILTO:mia@example.com\nEND:VEVENT\nEND:VCALENDAR")
	d, err := decodeEvent(cal, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if !d.ev.Start.Equal(utc(2027, 6, 1, 7, 0)) || d.ev.TimeZone != "Europe/Berlin" {
		t.Errorf("start %s zone %q, want 07:00Z Europe/Berlin", d.ev.Start, d.ev.TimeZone)
	}
	if !d.ev.End.Equal(utc(2027, 6, 1, 10, 0)) { // unknown TZID → default zone (UTC)
		t.Errorf("end %s, want 10:00Z", d.ev.End)
	}
	if d.ev.Organizer.Email != "mia@example.com" || d.ev.Organizer.Name != "Mia M" {
		t.Errorf("organizer %+v", d.ev.Organizer)
	}
}

// TestSkipAheadKeepsOccurrences checks that a rule started later by
// skipAhead yields the occurrences of the rule as written in the window.
func TestSkipAheadKeepsOccurrences(t *testing.T) {
	t.Parallel()
	berlin := loc(t, "Europe/Berlin")
	tests := []struct {
		rule  string
		start time.Time
	}{
		{"FREQ=DAILY", time.Date(2012, 1, 2, 12, 0, 0, 0, berlin)},
		{"FREQ=DAILY;INTERVAL=3", time.Date(2011, 5, 17, 8, 15, 0, 0, berlin)},
		// 02:30 falls in the spring gap on some days of the shifted start.
		{"FREQ=DAILY", time.Date(2010, 1, 1, 2, 30, 0, 0, berlin)},
		{"FREQ=DAILY;BYDAY=MO,WE;BYMONTH=3,6", time.Date(2005, 3, 2, 9, 0, 0, 0, berlin)},
		{"FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=SU", time.Date(2004, 2, 3, 18, 0, 0, 0, berlin)},
		{"FREQ=WEEKLY;UNTIL=20270320T000000Z", time.Date(2001, 7, 9, 23, 30, 0, 0, berlin)},
		{"FREQ=DAILY;COUNT=9000", time.Date(2005, 1, 1, 7, 0, 0, 0, berlin)},
		{"FREQ=MONTHLY;BYMONTHDAY=31", time.Date(1990, 1, 31, 10, 0, 0, 0, berlin)},
	}
	for _, tt := range tests {
		for _, from := range []time.Time{utc(2027, 3, 20, 0, 0), utc(2027, 3, 29, 0, 30), utc(2027, 10, 30, 12, 0)} {
			to := from.Add(9 * 24 * time.Hour)
			occurrences := func(skip bool) []time.Time {
				o, err := rrule.StrToROptionInLocation(tt.rule, berlin)
				if err != nil {
					t.Fatal(err)
				}
				o.Dtstart = tt.start
				if skip {
					o.Dtstart = skipAhead(o, tt.start, from)
				}
				r, err := rrule.NewRRule(*o)
				if err != nil {
					t.Fatal(err)
				}
				return r.Between(from, to, true)
			}
			want, got := occurrences(false), occurrences(true)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s from %s in [%s, %s) (-written +skipped ahead):\n%s", tt.rule, tt.start, from, to, diff)
			}
		}
	}
}

// TestVTimezoneLocation checks zones built from the VTIMEZONEs other
// clients write against Go's tz database: the offset at every hour of
// 2026–2030 and the instants of wall times around the changes.
func TestVTimezoneLocation(t *testing.T) {
	t.Parallel()
	const outlookPacific = "BEGIN:VTIMEZONE\nTZID:Pacific Standard Time\n" +
		"BEGIN:STANDARD\nDTSTART:16010101T020000\nTZOFFSETFROM:-0700\nTZOFFSETTO:-0800\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11\nEND:STANDARD\n" +
		"BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:-0800\nTZOFFSETTO:-0700\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3\nEND:DAYLIGHT\n" +
		"END:VTIMEZONE\n"
	const outlookSydney = "BEGIN:VTIMEZONE\nTZID:AUS Eastern Standard Time\n" +
		"BEGIN:STANDARD\nDTSTART:16010101T030000\nTZOFFSETFROM:+1100\nTZOFFSETTO:+1000\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=4\nEND:STANDARD\n" +
		"BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:+1000\nTZOFFSETTO:+1100\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=10\nEND:DAYLIGHT\n" +
		"END:VTIMEZONE\n"
	const outlookIndia = "BEGIN:VTIMEZONE\nTZID:India Standard Time\n" +
		"BEGIN:STANDARD\nDTSTART:16010101T000000\nTZOFFSETFROM:+0530\nTZOFFSETTO:+0530\nEND:STANDARD\nEND:VTIMEZONE\n"
	const customBerlin = "BEGIN:VTIMEZONE\nTZID:Customized Time Zone\n" +
		"BEGIN:DAYLIGHT\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nDTSTART:19810329T020000\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nTZNAME:CEST\nEND:DAYLIGHT\n" +
		"BEGIN:STANDARD\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nDTSTART:19961027T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\nTZNAME:CET\nEND:STANDARD\n" +
		"END:VTIMEZONE\n"
	tests := []struct {
		vtz, iana string
	}{
		{outlookPacific, "America/Los_Angeles"},
		{outlookSydney, "Australia/Sydney"},
		{outlookIndia, "Asia/Kolkata"},
		{customBerlin, "Europe/Berlin"},
	}
	for _, tt := range tests {
		cal := parseICS(t, "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"+tt.vtz+"END:VCALENDAR")
		tzid := cal.Children[0].Props.Get(ical.PropTimezoneID).Value
		got, err := zonesOf(cal).lookup(tzid)
		if err != nil {
			t.Fatalf("%s: %v", tzid, err)
		}
		want := loc(t, tt.iana)
		for at := utc(2026, 1, 1, 0, 0); at.Before(utc(2031, 1, 1, 0, 0)); at = at.Add(time.Hour) {
			_, g := at.In(got).Zone()
			_, w := at.In(want).Zone()
			if g != w {
				t.Fatalf("%s at %s: offset %d, want %d (%s)", tzid, at, g, w, tt.iana)
			}
		}
		for _, wall := range []string{"20270314T023000", "20271107T013000", "20270328T023000", "20271031T023000", "20270404T023000", "20271003T023000"} {
			g, err1 := parseLocal(wall, got)
			w, err2 := parseLocal(wall, want)
			if err1 != nil || err2 != nil || !g.Equal(w) {
				t.Errorf("%s: %s is %s, want %s (%v %v)", tzid, wall, g.UTC(), w.UTC(), err1, err2)
			}
		}
	}
}
