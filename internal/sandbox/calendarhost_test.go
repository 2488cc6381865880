package sandbox_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/sandbox"
)

// TestCalendarPersonControls: the CalDAV control moves and deletes a
// booking's event over CalDAV as the sandbox user, the Google control in
// the named Google calendar; what changed is read back independently, and
// mistakes get a problem and change nothing.
func TestCalendarPersonControls(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := startSandbox(t)
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	later := start.Add(3 * time.Hour)

	cal, err := caldav.New(env.URLs["caldav"]+caldavtest.CalendarPath(sandbox.CalDAVUser, caldavtest.DefaultCalendar),
		sandbox.CalDAVUser, sandbox.CalDAVPassword, caldav.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cal.CreateEvent(ctx, calendar.Event{BookingID: "b-cal", Summary: "S", Start: start, End: start.Add(45 * time.Minute), TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Google.PutEvent(sandbox.DefaultGoogleCalendar, gcaltest.ExternalEvent{ID: calendar.EventID("b-g"), Summary: "S",
		Start: start, End: start.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	caldavURL := env.URLs["caldav"] + sandbox.CalDAVHostPath
	googleURL := env.URLs["google"] + sandbox.GoogleHostPath
	move := `{"start_time":"` + later.Format(time.RFC3339) + `"}`

	for _, tc := range []struct {
		name, url, body string
		want            int
	}{
		{"caldav unknown booking", caldavURL + "b-none/move", move, http.StatusNotFound},
		{"caldav unknown action", caldavURL + "b-cal/drag", move, http.StatusNotFound},
		{"caldav move without a time", caldavURL + "b-cal/move", `{}`, http.StatusBadRequest},
		{"caldav negative duration", caldavURL + "b-cal/move", `{"start_time":"2030-01-01T10:00:00Z","duration_minutes":-5}`, http.StatusBadRequest},
		{"google in another calendar", googleURL + "b-g/move", `{"start_time":"2030-01-01T10:00:00Z","calendar":"candidate@example.com"}`, http.StatusNotFound},
		{"google unknown field", googleURL + "b-g/move", `{"start":"2030-01-01T10:00:00Z"}`, http.StatusBadRequest},
	} {
		if status, out := postControl(t, tc.url, http.MethodPost, tc.body); status != tc.want || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.want)
		}
	}
	if ev, err := cal.GetEvent(ctx, "b-cal"); err != nil || !ev.Start.Equal(start) {
		t.Fatalf("refused controls changed the CalDAV event: %+v %v", ev, err)
	}

	// CalDAV: moved with its duration kept, then deleted.
	if status, out := postControl(t, caldavURL+"b-cal/move", http.MethodPost, move); status != http.StatusOK || out["action"] != "move" {
		t.Fatalf("caldav move: %d %v", status, out)
	}
	if ev, err := cal.GetEvent(ctx, "b-cal"); err != nil || !ev.Start.Equal(later) || !ev.End.Equal(later.Add(45*time.Minute)) {
		t.Errorf("CalDAV event after the move: %v–%v %v", ev.Start, ev.End, err)
	}
	if status, out := postControl(t, caldavURL+"b-cal/delete", http.MethodPost, ""); status != http.StatusOK {
		t.Fatalf("caldav delete: %d %v", status, out)
	}
	if _, err := cal.GetEvent(ctx, "b-cal"); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("CalDAV event after the delete: %v", err)
	}

	// Google: moved with a new duration, then deleted (cancelled, as Google keeps it).
	if status, out := postControl(t, googleURL+"b-g/move", http.MethodPost,
		`{"start_time":"`+later.Format(time.RFC3339)+`","duration_minutes":30}`); status != http.StatusOK {
		t.Fatalf("google move: %d %v", status, out)
	}
	ev, err := env.Google.Event(sandbox.DefaultGoogleCalendar, calendar.EventID("b-g"))
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := time.Parse(time.RFC3339, ev.Start.DateTime)
	ge, _ := time.Parse(time.RFC3339, ev.End.DateTime)
	if !gs.Equal(later) || !ge.Equal(later.Add(30*time.Minute)) {
		t.Errorf("Google event after the move: %s–%s", ev.Start.DateTime, ev.End.DateTime)
	}
	if status, out := postControl(t, googleURL+"b-g/delete", http.MethodPost, ""); status != http.StatusOK {
		t.Fatalf("google delete: %d %v", status, out)
	}
	if ev, err := env.Google.Event(sandbox.DefaultGoogleCalendar, calendar.EventID("b-g")); err != nil || ev.Status != "cancelled" {
		t.Errorf("Google event after the delete: %+v %v", ev, err)
	}
	if status, _ := postControl(t, googleURL+"b-g/delete", http.MethodPost, ""); status != http.StatusNotFound {
		t.Errorf("second google delete: %d, want 404", status)
	}
}

// startSandbox starts the sandbox providers with no saved state; they stop
// with the test.
func startSandbox(t *testing.T) *sandbox.Env {
	t.Helper()
	env, err := sandbox.Start(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	return env
}
