package httpapi_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/booking/providers"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestBookingRadicale books, reschedules and cancels with the candidate's
// calendar on a real Radicale server (skipped when it is not installed).
func TestBookingRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	calURL := radicale.MakeCalendar(t, base, user, pass, "sessions")
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	rc, err := caldav.New(calURL, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	cand := en.candidates[0]
	en.cals.(*providers.StaticCalendars).Set(cand, rc)

	c := en.client(t, cand, "candidate")
	start := day(4).Add(16 * time.Hour)
	r, err := c.CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: start, DurationMinutes: 45, Timezone: "Europe/Berlin", Topic: "radicale"})
	if err != nil || r.JSON201 == nil {
		t.Fatalf("create: %v %d %s", err, r.StatusCode(), r.Body)
	}
	b := waitSettled(t, c, r.JSON201.Id, 10*time.Second)
	id := b.Id.String()
	ev, err := rc.GetEvent(t.Context(), id)
	if err != nil || !ev.Start.Equal(start) || ev.URL != *b.JoinUrl || ev.ID != *b.Steps[2].ProviderRef {
		t.Fatalf("radicale event: %v %+v", err, ev)
	}
	moved := start.Add(2 * time.Hour)
	rr, err := c.RescheduleBookingWithResponse(t.Context(), b.Id, &client.RescheduleBookingParams{IfMatch: &b.Etag}, client.RescheduleBookingRequest{Start: moved})
	if err != nil || rr.StatusCode() != http.StatusOK {
		t.Fatalf("reschedule: %v %d %s", err, rr.StatusCode(), rr.Body)
	}
	waitSettled(t, c, b.Id, 10*time.Second)
	if ev, err := rc.GetEvent(t.Context(), id); err != nil || !ev.Start.Equal(moved) || !ev.End.Equal(moved.Add(45*time.Minute)) {
		t.Fatalf("radicale event after reschedule: %v %+v", err, ev)
	}
	cr, err := c.CancelBookingWithResponse(t.Context(), b.Id, client.CancelBookingRequest{Reason: "done"})
	if err != nil || cr.StatusCode() != http.StatusOK {
		t.Fatalf("cancel: %v %d %s", err, cr.StatusCode(), cr.Body)
	}
	waitSettled(t, c, b.Id, 10*time.Second)
	if _, err := rc.GetEvent(t.Context(), id); !errors.Is(err, calendar.ErrNotFound) {
		t.Fatalf("radicale event after cancel: %v", err)
	}
}
