package main

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/booking/providers"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// TestRefusal: the booking service's permanent refusals reach webhook
// processing as webhooks.ErrRefused with why in the booking's words (for the
// audit trail) and the booking's error (for logs and delivery notes); other
// errors, which processing retries, pass as they are.
func TestRefusal(t *testing.T) {
	t.Parallel()
	transient := errors.New("database is locked")
	tests := []struct {
		name   string
		err    error
		reason string // "" for an error that is not a refusal
	}{
		{"under way", &booking.ConflictError{Status: booking.StatusInProgress, Action: "cancel"}, "the session is under way"},
		{"minimum notice", &booking.ValidationError{Field: "body.start", Message: "must be at least 12 h from now (the mentor's minimum notice)"},
			"its start must be at least 12 h from now (the mentor's minimum notice)"},
		{"busy", fmt.Errorf("%w: the mentor's calendar is busy", booking.ErrOverlap), "the mentor is not free at that time"},
		{"candidate busy", booking.ErrCandidateOverlap, "the candidate already has a session at that time"},
		{"provider refused", &booking.RescheduleRefusedError{Reason: "zoom: HTTP 400"}, "a provider refused the new time"},
		{"transient", transient, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := refusal(tt.err)
			if tt.reason == "" {
				if got != tt.err {
					t.Errorf("refusal(%v) = %v, want it unchanged", tt.err, got)
				}
				return
			}
			var re *webhooks.RefusedError
			if !errors.Is(got, webhooks.ErrRefused) || !errors.As(got, &re) || re.Reason != tt.reason || !errors.Is(got, tt.err) {
				t.Errorf("refusal(%v) = %#v, want a RefusedError saying %q that wraps it", tt.err, got, tt.reason)
			}
		})
	}
}

// TestInFlight: a provider's cancel or move that the booking service
// leaves until the booking's own change has settled (ErrChangeInFlight)
// reaches webhook processing as webhooks.ErrBookingBusy, which processes the
// delivery again later, not as a refusal, which would put the deleted or
// moved artefact back; other errors pass as they are.
func TestInFlight(t *testing.T) {
	t.Parallel()
	err := inFlight(refusal(booking.ErrChangeInFlight))
	if !errors.Is(err, webhooks.ErrBookingBusy) || !errors.Is(err, booking.ErrChangeInFlight) || errors.Is(err, webhooks.ErrRefused) {
		t.Errorf("inFlight(refusal(ErrChangeInFlight)) = %v, want ErrBookingBusy wrapping it, not a refusal", err)
	}
	conflict := refusal(&booking.ConflictError{Status: booking.StatusInProgress, Action: "cancel"})
	if got := inFlight(conflict); got != conflict {
		t.Errorf("inFlight(%v) = %v, want it unchanged", conflict, got)
	}
	if got := inFlight(nil); got != nil {
		t.Errorf("inFlight(nil) = %v", got)
	}
}

// TestConnectCalendarsOpensOnlyTheSyncedCalendar: a calendar sync opens the
// calendar its cursor belongs to or none. The poller lists mentor-1's CalDAV
// calendar (work), then the mentor switches the connection to another one
// (home) before that calendar's turn: opening work must say it is no longer
// connected, not hand over home, whose listing compared with work's stored
// etags would report every session event in work as deleted and cancel
// those bookings.
func TestConnectCalendarsOpensOnlyTheSyncedCalendar(t *testing.T) {
	t.Parallel()
	svc, _, work, home := connectedWorkAndHome(t)
	ctx := t.Context()
	cals := connectCalendars{svc}
	polled, err := cals.Polled(ctx)
	if err != nil || len(polled) != 1 || polled[0].CalendarID != work {
		t.Fatalf("polled %+v, %v; want mentor-1's work calendar", polled, err)
	}
	if _, err := cals.Open(ctx, polled[0]); err != nil {
		t.Fatalf("open the connected calendar: %v", err)
	}
	if _, _, err := svc.ChooseCalDAVCalendar(ctx, "mentor-1", home); err != nil {
		t.Fatal(err)
	}
	if cal, err := cals.Open(ctx, polled[0]); !errors.Is(err, webhooks.ErrCalendarUnavailable) {
		t.Fatalf("open the calendar the connection left = %v, %v; want ErrCalendarUnavailable", cal, err)
	}
	now, err := cals.Polled(ctx)
	if err != nil || len(now) != 1 || now[0].CalendarID != home {
		t.Fatalf("polled %+v, %v; want mentor-1's home calendar", now, err)
	}
	if _, err := cals.Open(ctx, now[0]); err != nil {
		t.Fatalf("open the newly chosen calendar: %v", err)
	}
}

// TestWebhookBookingCarriesItsIssue: webhook processing tells the booking's
// own Jira issue from a clone by the key its jira step recorded.
func TestWebhookBookingCarriesItsIssue(t *testing.T) {
	t.Parallel()
	b := booking.Booking{ID: "b-1", Status: booking.StatusConfirmed, Steps: []booking.Step{
		{Name: booking.StepZoom, Ref: "8123"}, {Name: booking.StepJira, Ref: "SPOT-7"}, {Name: booking.StepMentorCalendar, Ref: "ev1"}}}
	got, err := toWebhookBooking(b, nil)
	if err != nil || got.ID != "b-1" || got.Issue != "SPOT-7" {
		t.Fatalf("toWebhookBooking = %+v, %v; want b-1 with issue SPOT-7", got, err)
	}
	if got, _ := toWebhookBooking(booking.Booking{ID: "b-2"}, nil); got.Issue != "" {
		t.Fatalf("a booking without a jira step has issue %q", got.Issue)
	}
}

// TestCalendarPlaceIsTheSagasPlace: the calendar sync asks for the session
// events at the place the booking saga records for the events it writes
// (providers.Connect's place of the user's calendar), found from the synced
// calendar's source while that calendar is the connection's; once the
// mentor chose another calendar, the old one has no place (and so no
// session events to miss), and the new one has the saga's new place.
func TestCalendarPlaceIsTheSagasPlace(t *testing.T) {
	t.Parallel()
	svc, base, work, home := connectedWorkAndHome(t)
	ctx := t.Context()
	sagas := providers.Connect{Source: svc}
	sagaPlace := func() string {
		t.Helper()
		_, place, err := sagas.PlacedCalendarFor(ctx, "mentor-1")
		if err != nil || place == "" {
			t.Fatalf("the saga's place: %q, %v", place, err)
		}
		return place
	}
	workSrc := webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: work}
	if got, err := calendarPlace(ctx, svc, workSrc); err != nil || got != sagaPlace() || got != "caldav:"+base+work {
		t.Fatalf("place of the synced calendar = %q, %v; want the saga's %q", got, err, sagaPlace())
	}
	other := webhooks.Source{Provider: webhooks.SourceGoogle, UserID: "mentor-1", CalendarID: work}
	if got, err := calendarPlace(ctx, svc, other); err != nil || got != "" {
		t.Fatalf("place of a Google calendar of that id = %q, %v; want none", got, err)
	}
	if _, _, err := svc.ChooseCalDAVCalendar(ctx, "mentor-1", home); err != nil {
		t.Fatal(err)
	}
	if got, err := calendarPlace(ctx, svc, workSrc); err != nil || got != "" {
		t.Fatalf("place of the calendar the connection left = %q, %v; want none", got, err)
	}
	homeSrc := webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: home}
	if got, err := calendarPlace(ctx, svc, homeSrc); err != nil || got != sagaPlace() || got != "caldav:"+base+home {
		t.Fatalf("place of the newly chosen calendar = %q, %v; want the saga's %q", got, err, sagaPlace())
	}
	if evs, err := (bookingActions{connect: svc}).MentorEvents(ctx, workSrc); err != nil || len(evs) != 0 {
		t.Fatalf("events of the calendar the connection left = %+v, %v; want none", evs, err)
	}
}

// connectedWorkAndHome is a connection service on SQLite whose user
// mentor-1 is connected to the work calendar of a CalDAV account (at base,
// the server's URL) that also has a home calendar (the collections' paths).
func connectedWorkAndHome(t *testing.T) (svc *connect.Service, base, work, home string) {
	t.Helper()
	db := storetest.SQLite(t)
	sim := caldavtest.New(caldavtest.Options{Users: map[string]string{"mentor": "pw"}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	work, home = sim.CreateCalendar("mentor", "work", "Work"), sim.CreateCalendar("mentor", "home", "Home")
	key, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := local.New(db.DB(), string(db.Dialect()), local.NewKeyring(key))
	if err != nil {
		t.Fatal(err)
	}
	svc, err = connect.New(db, sec, connect.Config{SecretPrefix: "spotlight", SecretEnv: "test", PublicURL: "http://gateway.test",
		CalDAV: connect.CalDAVConfig{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ConnectCalDAV(t.Context(), "mentor-1", connect.CalDAVInput{ServerURL: srv.URL, Username: "mentor", Password: "pw", CalendarPath: work}); err != nil {
		t.Fatal(err)
	}
	return svc, srv.URL, work, home
}
