package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
)

// TestMentorMoveRefused runs the whole chain in the real process: the
// mentor drags a session's event in their CalDAV calendar onto another
// booking. The poll reads the change, the booking service refuses the
// overlap, and the saga puts the event back at the booking's time; both
// bookings stay as they were.
func TestMentorMoveRefused(t *testing.T) {
	t.Parallel()
	const mentor = "mv-m"
	ctx, d, _, fx := pollingDeployment(t, mentor)
	start := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	var ids []string
	for i, at := range []time.Time{start, start.Add(time.Hour)} {
		out, err := Book(ctx, fx.Admin, NewRequest(mentor, fmt.Sprintf("mv-c%d", i), at, "move"))
		if err != nil || out.Booking == nil || (out.Status != http.StatusCreated && out.Status != http.StatusAccepted) {
			t.Fatalf("book at %s: %v %d %s", at, err, out.Status, out.Body)
		}
		ids = append(ids, out.Booking.Id.String())
	}
	if _, err := Drain(ctx, fx.Admin, ids); err != nil {
		t.Fatal(err)
	}
	cal := d.openCalDAV(t, mentor)
	ev, err := cal.GetEvent(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	ev.Start, ev.End = start.Add(time.Hour), start.Add(90*time.Minute) // onto the second booking
	if _, err := cal.UpdateEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the event to be put back at the booking's time", func() bool {
		ev, err := cal.GetEvent(ctx, ids[0])
		return err == nil && ev.Start.Equal(start) && ev.End.Equal(start.Add(30*time.Minute))
	})
	for i, id := range ids {
		b, err := GetBooking(ctx, fx.Admin, id)
		if want := start.Add(time.Duration(i) * time.Hour); err != nil || b.Status != "confirmed" || !b.Start.Equal(want) {
			t.Errorf("booking %d: %s, %v; want confirmed at %s", i, Describe(b), err, want)
		}
	}
	acts, err := AuditActions(ctx, fx.Admin, uuid.MustParse(ids[0]))
	if err != nil || !slices.Contains(acts, "step_reasserted") || slices.Contains(acts, "rescheduled") {
		t.Errorf("audit %v, %v; want the event reasserted and no reschedule", acts, err)
	}
}

// TestCandidateMovePutBack: the candidate drags their copy of a session's
// event in their own CalDAV calendar. The poll reads the change; only the
// mentor's calendar moves a session, so the booking keeps its time and the
// saga puts the candidate's event back, leaving the mentor's alone.
func TestCandidateMovePutBack(t *testing.T) {
	t.Parallel()
	const mentor, cand = "cm-m", "cm-c"
	ctx, d, gw, fx := pollingDeployment(t, mentor, cand)
	if err := ConnectCalDAV(ctx, gw, d.up, cand, "candidate"); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	out, err := Book(ctx, fx.Admin, NewRequest(mentor, cand, start, "copy"))
	if err != nil || out.Booking == nil || (out.Status != http.StatusCreated && out.Status != http.StatusAccepted) {
		t.Fatalf("book: %v %d %s", err, out.Status, out.Body)
	}
	id := out.Booking.Id.String()
	if _, err := Drain(ctx, fx.Admin, []string{id}); err != nil {
		t.Fatal(err)
	}
	mentorCal, candCal := d.openCalDAV(t, mentor), d.openCalDAV(t, cand)
	ev, err := candCal.GetEvent(ctx, id)
	if err != nil {
		t.Fatalf("the candidate's event: %v", err)
	}
	ev.Start, ev.End = start.Add(3*time.Hour), start.Add(3*time.Hour+30*time.Minute)
	if _, err := candCal.UpdateEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the candidate's event to be put back at the booking's time", func() bool {
		ev, err := candCal.GetEvent(ctx, id)
		return err == nil && ev.Start.Equal(start) && ev.End.Equal(start.Add(30*time.Minute))
	})
	b, err := GetBooking(ctx, fx.Admin, id)
	if err != nil || b.Status != "confirmed" || !b.Start.Equal(start) {
		t.Errorf("booking: %s, %v; want confirmed at %s", Describe(b), err, start)
	}
	if mev, err := mentorCal.GetEvent(ctx, id); err != nil || !mev.Start.Equal(start) {
		t.Errorf("the mentor's event: %+v, %v; want it at %s", mev, err, start)
	}
	acts, err := AuditActions(ctx, fx.Admin, uuid.MustParse(id))
	if err != nil || !slices.Contains(acts, "step_reasserted") || slices.Contains(acts, "rescheduled") {
		t.Errorf("audit %v, %v; want the candidate's event reasserted and no reschedule", acts, err)
	}
}

// pollingDeployment starts a gateway that polls CalDAV calendars every
// second, with mentor provisioned and connected to their CalDAV calendar;
// the other CalDAV users exist upstream, unconnected. The context ends
// after 90 s.
func pollingDeployment(t *testing.T, mentor string, others ...string) (context.Context, *deployment, *Gateway, *Fixture) {
	t.Helper()
	d := newDeployment(t, "", append([]string{mentor}, others...), "GATEWAY_CALDAV_POLL_INTERVAL=1s")
	gw := d.gateway(t, "gw")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	fx, err := Provision(ctx, gw, d.up, Setup{Mentors: []string{mentor}, ConnectCalDAV: true})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, d, gw, fx
}

// openCalDAV opens user's default calendar on the deployment's CalDAV
// server, as the user's own calendar app would.
func (d *deployment) openCalDAV(t *testing.T, user string) *caldav.Client {
	t.Helper()
	c, err := caldav.New(d.up.CalDAVURL+caldavtest.CalendarPath(user, caldavtest.DefaultCalendar), user, CalDAVPassword,
		caldav.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
