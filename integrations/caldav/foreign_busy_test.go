package caldav_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
)

// foreignBusyCase is an event another calendar app wrote, verbatim, and
// the busy time FreeBusy must find in it for a user in zone def.
type foreignBusyCase struct {
	name     string
	ics      string // one VCALENDAR, lines separated by \n
	def      string // the user's zone (floating and all-day times)
	from, to time.Time
	want     []calendar.Busy
}

func foreignBusyCases() []foreignBusyCase {
	utc := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, time.UTC) }
	const head = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Other//App//EN\n"
	const tail = "END:VCALENDAR\n"
	// The VTIMEZONEs Apple's Calendar writes.
	const berlinTZ = "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\n" +
		"BEGIN:DAYLIGHT\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nDTSTART:19810329T020000\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nTZNAME:CEST\nEND:DAYLIGHT\n" +
		"BEGIN:STANDARD\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nDTSTART:19961027T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\nTZNAME:CET\nEND:STANDARD\n" +
		"END:VTIMEZONE\n"
	const newYorkTZ = "BEGIN:VTIMEZONE\nTZID:America/New_York\n" +
		"BEGIN:DAYLIGHT\nTZOFFSETFROM:-0500\nTZOFFSETTO:-0400\nDTSTART:20070311T020000\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\nTZNAME:EDT\nEND:DAYLIGHT\n" +
		"BEGIN:STANDARD\nTZOFFSETFROM:-0400\nTZOFFSETTO:-0500\nDTSTART:20071104T020000\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\nTZNAME:EST\nEND:STANDARD\n" +
		"END:VTIMEZONE\n"
	// Outlook's (Exchange's) VTIMEZONE for a Windows zone name.
	const pacificTZ = "BEGIN:VTIMEZONE\nTZID:Pacific Standard Time\n" +
		"BEGIN:STANDARD\nDTSTART:16010101T020000\nTZOFFSETFROM:-0700\nTZOFFSETTO:-0800\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11\nEND:STANDARD\n" +
		"BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:-0800\nTZOFFSETTO:-0700\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3\nEND:DAYLIGHT\n" +
		"END:VTIMEZONE\n"
	return []foreignBusyCase{
		{
			// An invitation from Outlook names its zone the Windows way;
			// the object's VTIMEZONE says what the name means (RFC 5545
			// section 3.2.19). 09:00 in Seattle in June is 16:00 UTC.
			name: "Outlook invitation in a Windows zone",
			ics: head + pacificTZ + "BEGIN:VEVENT\nUID:040000008200E00074C5B7101A82E008\nDTSTAMP:20270501T000000Z\n" +
				"SUMMARY:Interview loop\nDTSTART;TZID=Pacific Standard Time:20270607T090000\nDTEND;TZID=Pacific Standard Time:20270607T100000\n" +
				"END:VEVENT\n" + tail,
			def:  "Europe/Berlin",
			from: utc(2027, 6, 7, 0, 0), to: utc(2027, 6, 8, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 7, 16, 0), End: utc(2027, 6, 7, 17, 0)}},
		},
		{
			name: "weekly Outlook series in a Windows zone, across the DST change",
			ics: head + pacificTZ + "BEGIN:VEVENT\nUID:040000008200E00074C5B7101A82E009\nDTSTAMP:20270101T000000Z\n" +
				"SUMMARY:1:1\nDTSTART;TZID=Pacific Standard Time:20270301T090000\nDTEND;TZID=Pacific Standard Time:20270301T093000\n" +
				"RRULE:FREQ=WEEKLY;BYDAY=MO\nEXDATE;TZID=Pacific Standard Time:20270308T090000\nEND:VEVENT\n" + tail,
			def:  "Europe/Berlin",
			from: utc(2027, 3, 1, 0, 0), to: utc(2027, 3, 16, 0, 0),
			want: []calendar.Busy{
				{Start: utc(2027, 3, 1, 17, 0), End: utc(2027, 3, 1, 17, 30)},
				{Start: utc(2027, 3, 15, 16, 0), End: utc(2027, 3, 15, 16, 30)},
			},
		},
		{
			// A daily series started long ago: its occurrences today are
			// more than 5000 after its first.
			name: "daily series since 2012",
			ics: head + berlinTZ + "BEGIN:VEVENT\nUID:lunch\nDTSTAMP:20120101T000000Z\nSUMMARY:Lunch\n" +
				"DTSTART;TZID=Europe/Berlin:20120102T120000\nDTEND;TZID=Europe/Berlin:20120102T130000\nRRULE:FREQ=DAILY\nEND:VEVENT\n" + tail,
			def:  "Europe/Berlin",
			from: utc(2027, 6, 7, 0, 0), to: utc(2027, 6, 8, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 7, 10, 0), End: utc(2027, 6, 7, 11, 0)}},
		},
		{
			name: "weekday stand-up since 2006",
			ics: head + newYorkTZ + "BEGIN:VEVENT\nUID:standup\nDTSTAMP:20060101T000000Z\nSUMMARY:Stand-up\n" +
				"DTSTART;TZID=America/New_York:20060102T093000\nDTEND;TZID=America/New_York:20060102T094500\n" +
				"RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR\nEND:VEVENT\n" + tail,
			def:  "Europe/Berlin",
			from: utc(2027, 6, 5, 0, 0), to: utc(2027, 6, 8, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 7, 13, 30), End: utc(2027, 6, 7, 13, 45)}},
		},
		{
			// An all-day series' UNTIL is a date of the user's zone, and
			// inclusive: in Los Angeles the last day off, Thursday, starts
			// at 07:00 UTC, after UNTIL read as a UTC date.
			name: "all-day series until a date",
			ics: head + "BEGIN:VEVENT\nUID:days-off\nDTSTAMP:20270101T000000Z\nSUMMARY:Days off\n" +
				"DTSTART;VALUE=DATE:20270607\nDTEND;VALUE=DATE:20270608\nRRULE:FREQ=DAILY;UNTIL=20270610\nEND:VEVENT\n" + tail,
			def:  "America/Los_Angeles",
			from: utc(2027, 6, 10, 0, 0), to: utc(2027, 6, 12, 0, 0),
			want: []calendar.Busy{{Start: utc(2027, 6, 10, 0, 0), End: utc(2027, 6, 11, 7, 0)}},
		},
	}
}

// runForeignBusy stores each case's object in a calendar of its own
// (newCal returns its URL) and checks FreeBusy over it.
func runForeignBusy(t *testing.T, hc *http.Client, user, pass string, newCal func(t *testing.T, name string) string) {
	for i, tt := range foreignBusyCases() {
		t.Run(tt.name, func(t *testing.T) {
			calURL := newCal(t, "foreign"+string(rune('a'+i)))
			putObject(t, &rawCal{calURL: calURL, user: user, pass: pass, hc: hc}, tt.ics)
			def, err := time.LoadLocation(tt.def)
			if err != nil {
				t.Fatal(err)
			}
			c, err := caldav.New(calURL, user, pass, caldav.WithHTTPClient(hc), caldav.WithDefaultLocation(def))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.FreeBusy(t.Context(), tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("FreeBusy (-want +got):\n%s", diff)
			}
		})
	}
}

// putObject stores ics (one VCALENDAR, lines separated by \n) verbatim as
// the object "event" of raw's calendar, as another calendar app would.
func putObject(t *testing.T, raw *rawCal, ics string) {
	t.Helper()
	body := strings.ReplaceAll(ics, "\n", "\r\n")
	code, _, resp, err := raw.do(t.Context(), http.MethodPut, raw.objectURL("event"), []byte(body),
		map[string]string{"Content-Type": "text/calendar; charset=utf-8"})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("PUT: %d %v %s", code, err, resp)
	}
}

// TestFreeBusyForeignEventsInMemory reads the busy time of events other
// calendar apps write (recurring, all-day, in zones of their own) on the
// in-memory server.
func TestFreeBusyForeignEventsInMemory(t *testing.T) {
	t.Parallel()
	srv := caldavtest.New(caldavtest.Options{Users: map[string]string{"alice": "alice-secret"}})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	runForeignBusy(t, ts.Client(), "alice", "alice-secret", func(t *testing.T, name string) string {
		return ts.URL + srv.CreateCalendar("alice", name, name)
	})
}

// TestFreeBusyForeignEventsRadicale is TestFreeBusyForeignEventsInMemory
// on Radicale, whose calendar-query filter is its own.
func TestFreeBusyForeignEventsRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	runForeignBusy(t, http.DefaultClient, user, pass, func(t *testing.T, name string) string {
		return radicale.MakeCalendar(t, base, user, pass, name)
	})
}
