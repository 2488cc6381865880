package systemtest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// TestExtraBusyCalendars runs the whole chain in the real process for a
// mentor with a Google and a mentor with a CalDAV connection: a busy block
// that exists only in another calendar of the mentor's account does not
// count until the mentor adds that calendar to busy_calendars; then
// availability leaves it out and a booking over it is refused with the
// same 409 booking-overlap a busy block in the chosen calendar gives.
func TestExtraBusyCalendars(t *testing.T) {
	t.Parallel()
	const (
		googleMentor = "bc-mg"
		calDAVMentor = "bc-mc"
		candidate    = "bc-c"
	)
	d := newDeployment(t, "", []string{calDAVMentor})
	gw := d.gateway(t, "gw")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// The candidate's Google connection makes Provision store the Google client credentials.
	fx, err := Provision(ctx, gw, d.up, Setup{Mentors: []string{googleMentor, calDAVMentor}, GoogleCandidates: []string{candidate}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ConnectGoogle(ctx, gw, googleMentor, "mentor"); err != nil {
		t.Fatal(err)
	}
	if err := ConnectCalDAV(ctx, gw, d.up, calDAVMentor, "mentor"); err != nil {
		t.Fatal(err)
	}
	firstDay := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 3)

	// Google: a calendar shared with the mentor's account read-only.
	personal := "personal-" + googleMentor + "@group.calendar.google.com"
	if err := d.up.Google.AddCalendar(GoogleEmail(googleMentor), gcaltest.Calendar{ID: personal, Summary: "Personal"}, gcaltest.RoleReader); err != nil {
		t.Fatal(err)
	}
	// CalDAV: a second calendar of the same account.
	personalPath := d.up.CalDAV.CreateCalendar(calDAVMentor, "personal", "Personal")
	putCalDAV := func(path, uid string, start, end time.Time) error {
		ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20261201T000000Z\r\n" +
			"DTSTART:" + start.Format("20060102T150405Z") + "\r\nDTEND:" + end.Format("20060102T150405Z") +
			"\r\nSUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
		return caldavtest.Send(ctx, http.MethodPut, d.up.CalDAVURL+path+uid+".ics", calDAVMentor, CalDAVPassword, ics)
	}

	for i, tc := range []struct {
		mentor string
		// setBusy adds the extra calendar to busy_calendars through the API.
		setBusy func(c *client.ClientWithResponses) (int, []byte, error)
		// putExtra and putChosen write a busy block [start, end) into the
		// extra calendar and into the chosen one.
		putExtra, putChosen func(start, end time.Time) error
		// deleteChosen, when set, deletes the chosen calendar at the
		// provider, as its owner would.
		deleteChosen func() error
	}{
		{
			mentor: googleMentor,
			setBusy: func(c *client.ClientWithResponses) (int, []byte, error) {
				r, err := c.UpdateGoogleConnectionWithResponse(ctx, client.UpdateGoogleConnectionRequest{BusyCalendars: &[]string{personal}})
				if err != nil {
					return 0, nil, err
				}
				return r.StatusCode(), r.Body, nil
			},
			putExtra: func(s, e time.Time) error {
				_, err := d.up.Google.PutEvent(personal, gcaltest.ExternalEvent{Summary: "dentist", Start: s, End: e})
				return err
			},
			putChosen: func(s, e time.Time) error {
				_, err := d.up.Google.PutEvent(GoogleEmail(googleMentor), gcaltest.ExternalEvent{Summary: "meeting", Start: s, End: e})
				return err
			},
		},
		{
			mentor: calDAVMentor,
			setBusy: func(c *client.ClientWithResponses) (int, []byte, error) {
				r, err := c.UpdateCalDAVConnectionWithResponse(ctx, client.UpdateCalDAVConnectionRequest{BusyCalendars: &[]string{personalPath}})
				if err != nil {
					return 0, nil, err
				}
				return r.StatusCode(), r.Body, nil
			},
			putExtra: func(s, e time.Time) error { return putCalDAV(personalPath, "dentist", s, e) },
			putChosen: func(s, e time.Time) error {
				return putCalDAV(caldavtest.CalendarPath(calDAVMentor, caldavtest.DefaultCalendar), "meeting", s, e)
			},
			deleteChosen: func() error {
				return caldavtest.Send(ctx, http.MethodDelete, d.up.CalDAVURL+caldavtest.CalendarPath(calDAVMentor, caldavtest.DefaultCalendar),
					calDAVMentor, CalDAVPassword, "")
			},
		},
	} {
		t.Run(tc.mentor, func(t *testing.T) {
			// A day of its own: the candidate's session of another
			// subtest would take its time off the candidate's slots.
			day := firstDay.AddDate(0, 0, i)
			at := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }
			if err := tc.putExtra(at(10), at(11)); err != nil {
				t.Fatal(err)
			}
			if err := tc.putChosen(at(14), at(15)); err != nil {
				t.Fatal(err)
			}
			free := func() []int {
				t.Helper()
				tok, err := gw.Token(ctx, candidate, "candidate")
				if err != nil {
					t.Fatal(err)
				}
				c, err := gw.Client(tok, nil)
				if err != nil {
					t.Fatal(err)
				}
				r, err := c.GetMentorAvailabilityWithResponse(ctx, tc.mentor, &client.GetMentorAvailabilityParams{From: at(9), To: at(16)})
				if err != nil || r.JSON200 == nil {
					t.Fatalf("availability of %s: %v %s", tc.mentor, err, r.Body)
				}
				var halfHours []int
				for _, s := range r.JSON200.Slots {
					halfHours = append(halfHours, int(s.Start.Sub(day)/(30*time.Minute)))
				}
				return halfHours
			}
			book := func(start time.Time) (int, string) {
				t.Helper()
				out, err := Book(ctx, fx.Admin, NewRequest(tc.mentor, candidate, start, "busy"))
				if err != nil {
					t.Fatal(err)
				}
				var p struct {
					Type string `json:"type"`
				}
				_ = json.Unmarshal(out.Body, &p)
				return out.Status, p.Type
			}
			// hh is the half hour index of h:mm.
			hh := func(h, m int) int { return h*2 + m/30 }

			// Default: only the chosen calendar counts.
			if got := free(); !slices.Contains(got, hh(10, 0)) || slices.Contains(got, hh(14, 0)) {
				t.Fatalf("before busy_calendars: free half hours %v; want 10:00 free (the extra calendar does not count yet), 14:00 busy", got)
			}
			chosenStatus, chosenType := book(at(14))
			if chosenStatus != http.StatusConflict {
				t.Fatalf("booking over the chosen calendar's busy block: %d %s", chosenStatus, chosenType)
			}

			tok, err := gw.Token(ctx, tc.mentor, "mentor")
			if err != nil {
				t.Fatal(err)
			}
			mc, err := gw.Client(tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			if status, body, err := tc.setBusy(mc); err != nil || status != http.StatusOK {
				t.Fatalf("PUT busy_calendars: %d %s %v", status, body, err)
			}

			got := free()
			for _, busy := range []int{hh(10, 0), hh(10, 30), hh(14, 0), hh(14, 30)} {
				if slices.Contains(got, busy) {
					t.Errorf("free half hours %v include busy %d:%02d", got, busy/2, busy%2*30)
				}
			}
			if !slices.Contains(got, hh(9, 0)) || !slices.Contains(got, hh(11, 0)) {
				t.Errorf("free half hours %v; want 09:00 and 11:00 free around the extra calendar's block", got)
			}
			if status, typ := book(at(10)); status != chosenStatus || typ != chosenType {
				t.Errorf("booking over the extra calendar's busy block: %d %s, want %d %s as for the chosen calendar's", status, typ, chosenStatus, chosenType)
			}
			if status, _ := book(at(11)); status != http.StatusCreated && status != http.StatusAccepted {
				t.Errorf("booking next to the busy block: %d", status)
			}
			if tc.deleteChosen == nil {
				return
			}

			// The mentor deletes the chosen calendar: its busy time goes
			// with it, the extra calendar's stays, both on the query that
			// finds the calendar gone and on later ones (the connection in
			// error until the mentor chooses another calendar).
			if err := tc.deleteChosen(); err != nil {
				t.Fatal(err)
			}
			for _, when := range []string{"as the chosen calendar is found gone", "with the connection in error"} {
				if got := free(); slices.Contains(got, hh(10, 0)) || !slices.Contains(got, hh(14, 0)) {
					t.Errorf("%s: free half hours %v; want 10:00 busy (the extra calendar) and 14:00 free (the deleted one)", when, got)
				}
			}
			if conns, err := mc.ListConnectionsWithResponse(ctx); err != nil || conns.JSON200 == nil || len(conns.JSON200.Items) != 1 ||
				conns.JSON200.Items[0].Status != client.ConnectionStatusError {
				t.Errorf("the mentor's connection after the chosen calendar was deleted: %v %s", err, conns.Body)
			}
			if status, typ := book(at(10)); status != chosenStatus || typ != chosenType {
				t.Errorf("booking over the extra calendar's busy block, the chosen calendar gone: %d %s, want %d %s", status, typ, chosenStatus, chosenType)
			}
		})
	}
}
