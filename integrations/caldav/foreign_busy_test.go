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
	return []foreignBusyCase{
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
			raw := &rawCal{calURL: calURL, user: user, pass: pass, hc: hc}
			body := strings.ReplaceAll(tt.ics, "\n", "\r\n")
			code, _, resp, err := raw.do(t.Context(), http.MethodPut, raw.objectURL("event"), []byte(body),
				map[string]string{"Content-Type": "text/calendar; charset=utf-8"})
			if err != nil || code != http.StatusCreated {
				t.Fatalf("PUT: %d %v %s", code, err, resp)
			}
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
