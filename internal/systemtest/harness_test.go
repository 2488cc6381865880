package systemtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
)

// TestGatewayRestart books once on a live-mode gateway, waits until every
// step settled, kills the gateway with SIGKILL, restarts it on the same data
// folder and reads the booking back; the simulators hold exactly the
// booking's meeting, issue and the two events (the mentor's CalDAV calendar,
// the candidate's Google calendar connected through the OAuth flow).
func TestGatewayRestart(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, "", []string{"mentor-a"})
	gw := d.gateway(t, "gw")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	fx, err := Provision(ctx, gw, d.up, Setup{Mentors: []string{"mentor-a"}, ConnectCalDAV: true, GoogleCandidates: []string{"cand-a"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	out, err := Book(ctx, fx.Admin, NewRequest("mentor-a", "cand-a", start, "restart"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != http.StatusCreated || out.Booking == nil || out.Booking.Status != "confirmed" {
		t.Fatalf("POST /v1/bookings = %d %s, want 201 confirmed", out.Status, out.Body)
	}
	id := out.Booking.Id.String()
	if _, err := Drain(ctx, fx.Admin, []string{id}); err != nil {
		t.Fatal(err)
	}
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := GetBooking(ctx, fx.Admin, id); err == nil {
		t.Fatal("GET answered while the gateway was killed")
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := GetBooking(ctx, fx.Admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != "confirmed" || b.JoinUrl == nil || *b.JoinUrl != *out.Booking.JoinUrl {
		t.Fatalf("after restart: status %s join %v, want confirmed with %v", b.Status, b.JoinUrl, *out.Booking.JoinUrl)
	}
	rep, err := Audit(ctx, d.up, []client.Booking{b}, Scope{ZoomHosts: []string{"mentor-a@mentors.test"}, CalendarUsers: []string{"mentor-a"}, Jira: true, GoogleCandidates: []string{"cand-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Meetings != 1 || rep.Issues != 1 || rep.Events != 2 {
		t.Fatalf("audit: %+v, want one meeting, one issue, two events, no problems", rep)
	}
	for _, s := range b.Steps {
		if s.State != "done" {
			t.Errorf("step %s is %s, want done: %s", s.Name, s.State, Describe(b))
		}
	}
	t.Logf("booking: %s", Describe(b))
}
