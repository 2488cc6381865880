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

// declinedUser is the account of the declined-invitation tests: its login
// is its email address, as on iCloud.
const declinedUser = "mentor@example.com"

// runDeclined stores invitations the account answered in a calendar of its
// own (newCal returns its URL) and checks that FreeBusy counts what it
// accepted and not what it declined.
func runDeclined(t *testing.T, hc *http.Client, pass string, newCal func(t *testing.T, name string) string) {
	day := time.Date(2027, 6, 7, 0, 0, 0, 0, time.UTC)
	at := func(d, h int) time.Time { return day.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
	const head = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Other//App//EN\n"
	const tail = "END:VCALENDAR\n"
	invite := func(uid, start, end, extra string, attendees ...string) string {
		s := "BEGIN:VEVENT\nUID:" + uid + "\nDTSTAMP:20270501T000000Z\nSUMMARY:Sync\nDTSTART:" + start + "\nDTEND:" + end + "\n" +
			"ORGANIZER;CN=Boss:mailto:boss@example.org\n" + extra
		for _, a := range attendees {
			s += "ATTENDEE;" + a + "\n"
		}
		return s + "END:VEVENT\n"
	}
	for i, tt := range []struct {
		name   string
		ics    string
		user   string // the client's login (declinedUser when empty)
		extras []string
		want   []calendar.Busy
	}{
		{
			name: "declined invitation",
			ics:  head + invite("d1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=DECLINED:mailto:mentor@example.com", "PARTSTAT=ACCEPTED:mailto:boss@example.org") + tail,
		},
		{
			name: "declined, the address written in other case",
			ics:  head + invite("d2", "20270607T090000Z", "20270607T100000Z", "", "CN=Ada;PARTSTAT=DECLINED:MAILTO:Mentor@Example.COM") + tail,
		},
		{
			name: "accepted invitation",
			ics:  head + invite("a1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=ACCEPTED:mailto:mentor@example.com") + tail,
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}},
		},
		{
			name: "not answered yet",
			ics:  head + invite("n1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:mentor@example.com") + tail,
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}},
		},
		{
			name: "another attendee declined",
			ics:  head + invite("o1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=DECLINED:mailto:someone@example.org", "PARTSTAT=ACCEPTED:mailto:mentor@example.com") + tail,
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}},
		},
		{
			name: "a login that is not an email address cannot tell whose answer it is",
			ics:  head + invite("l1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=DECLINED:mailto:mentor@example.com") + tail,
			user: "mentor",
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}},
		},
		{
			name: "the account's own meeting (it organizes, its attendee line says declined)",
			ics: head + strings.Replace(invite("m1", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=DECLINED:mailto:mentor@example.com"),
				"mailto:boss@example.org", "mailto:mentor@example.com", 1) + tail,
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}},
		},
		{
			name:   "declined through an alias the gateway was told of",
			ics:    head + invite("l2", "20270607T090000Z", "20270607T100000Z", "", "PARTSTAT=DECLINED:mailto:ada@icloud.example") + tail,
			extras: []string{"mailto:ada@icloud.example"},
		},
		{
			// A daily series accepted, its Tuesday declined: an overridden
			// instance carries its own answer.
			name: "one occurrence of an accepted series declined",
			ics: head + invite("s1", "20270607T090000Z", "20270607T100000Z", "RRULE:FREQ=DAILY;COUNT=3\n", "PARTSTAT=ACCEPTED:mailto:mentor@example.com") +
				invite("s1", "20270608T090000Z", "20270608T100000Z", "RECURRENCE-ID:20270608T090000Z\n", "PARTSTAT=DECLINED:mailto:mentor@example.com") + tail,
			want: []calendar.Busy{{Start: at(0, 9), End: at(0, 10)}, {Start: at(2, 9), End: at(2, 10)}},
		},
		{
			name: "a declined series with one occurrence accepted",
			ics: head + invite("s2", "20270607T090000Z", "20270607T100000Z", "RRULE:FREQ=DAILY;COUNT=3\n", "PARTSTAT=DECLINED:mailto:mentor@example.com") +
				invite("s2", "20270608T090000Z", "20270608T100000Z", "RECURRENCE-ID:20270608T090000Z\n", "PARTSTAT=ACCEPTED:mailto:mentor@example.com") + tail,
			want: []calendar.Busy{{Start: at(1, 9), End: at(1, 10)}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calURL := newCal(t, "declined"+string(rune('a'+i)))
			putObject(t, &rawCal{calURL: calURL, user: declinedUser, pass: pass, hc: hc}, tt.ics)
			user := tt.user
			if user == "" {
				user = declinedUser
			}
			c, err := caldav.New(calURL, user, pass, caldav.WithHTTPClient(&http.Client{Transport: loginAs{hc, declinedUser, user}}),
				caldav.WithAccountAddresses(tt.extras...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.FreeBusy(t.Context(), day, day.AddDate(0, 0, 3))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("FreeBusy (-want +got):\n%s", diff)
			}
		})
	}
}

// loginAs lets a client whose username is not the server's login (the
// case of a login that is not an email address) reach the server: it
// replaces the Basic auth user as with the real login.
type loginAs struct {
	hc         *http.Client
	real, used string
}

func (l loginAs) RoundTrip(r *http.Request) (*http.Response, error) {
	if u, p, ok := r.BasicAuth(); ok && u == l.used {
		r = r.Clone(r.Context())
		r.SetBasicAuth(l.real, p)
	}
	return l.hc.Transport.RoundTrip(r)
}

// TestFreeBusyDeclinedInvitationsInMemory: invitations the account
// declined are not busy time (was: counted like accepted ones), on the
// in-memory server.
func TestFreeBusyDeclinedInvitationsInMemory(t *testing.T) {
	t.Parallel()
	pass := "mentor-secret"
	srv := caldavtest.New(caldavtest.Options{Users: map[string]string{declinedUser: pass}})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	runDeclined(t, ts.Client(), pass, func(t *testing.T, name string) string {
		return ts.URL + srv.CreateCalendar(declinedUser, name, name)
	})
}

// TestFreeBusyDeclinedInvitationsRadicale is
// TestFreeBusyDeclinedInvitationsInMemory on Radicale.
func TestFreeBusyDeclinedInvitationsRadicale(t *testing.T) {
	t.Parallel()
	base, pass := radicale.StartAs(t, declinedUser)
	hc := &http.Client{Transport: http.DefaultTransport}
	runDeclined(t, hc, pass, func(t *testing.T, name string) string {
		return radicale.MakeCalendar(t, base, declinedUser, pass, name)
	})
}
