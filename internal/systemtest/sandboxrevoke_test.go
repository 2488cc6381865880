package systemtest

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/sandbox"
)

// TestSandboxRevokeAndDeleteCalendar plays, in the embedded default, what
// a reviewer could not without editing the simulators' saved state: the
// mentor removes the app's access in their Google account (`gateway
// sandbox google revoke`), and the gateway's next Google call finds the
// connection needs_reauth (422); the mentor deletes the chosen CalDAV
// calendar (`gateway sandbox caldav calendar default --delete`), and the
// busy time of their other busy calendar still hides its slots, as
// TestExtraBusyCalendars expects of a deleted chosen calendar.
func TestSandboxRevokeAndDeleteCalendar(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	work, gw := startEmbedded(t, ctx)

	t.Run("google revoke", func(t *testing.T) {
		mc := clientAs(t, ctx, gw, "mentor-sbr", "mentor")
		if err := ConnectGoogleAs(ctx, gw, "mentor-sbr", "mentor", sandbox.DefaultGoogleCalendar); err != nil {
			t.Fatal(err)
		}
		if r, err := mc.ListConnectionCalendarsWithResponse(ctx, client.ListConnectionCalendarsParamsProviderGoogle); err != nil || r.StatusCode() != http.StatusOK {
			t.Fatalf("calendars before the revoke: %v %v", err, r)
		}
		playSandbox(t, ctx, work, "google", "revoke", "--as", sandbox.DefaultGoogleCalendar)
		r, err := mc.ListConnectionCalendarsWithResponse(ctx, client.ListConnectionCalendarsParamsProviderGoogle)
		if err != nil || r.StatusCode() != http.StatusUnprocessableEntity {
			t.Fatalf("calendars after the revoke: %v %d %s, want 422", err, r.StatusCode(), r.Body)
		}
		conns, err := mc.ListConnectionsWithResponse(ctx)
		if err != nil || conns.JSON200 == nil || len(conns.JSON200.Items) != 1 || conns.JSON200.Items[0].Status != client.ConnectionStatusNeedsReauth {
			t.Errorf("the mentor's connection after the revoke: %v %s, want needs_reauth", err, conns.Body)
		}
	})

	t.Run("caldav delete the chosen calendar", func(t *testing.T) {
		const mentor = "mentor-sbd"
		cand := clientAs(t, ctx, gw, "cand-sbd", "candidate")
		day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 5)
		at := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }
		mc := clientAs(t, ctx, gw, mentor, "mentor")
		zu := mentor + "@example.com"
		if r, err := mc.PutMentorScheduleWithResponse(ctx, mentor, client.MentorScheduleInput{Timezone: "UTC", WorkingHours: allDay(), ZoomUser: &zu}); err != nil ||
			r.StatusCode() != http.StatusOK && r.StatusCode() != http.StatusCreated {
			t.Fatalf("schedule: %v %v", err, r)
		}
		pw := sandbox.CalDAVPassword
		if r, err := mc.CreateCalDAVConnectionWithResponse(ctx, client.CreateCalDAVConnectionRequest{Username: sandbox.CalDAVUser, AppPassword: pw}); err != nil ||
			r.StatusCode() != http.StatusCreated && r.StatusCode() != http.StatusOK {
			t.Fatalf("connect caldav: %v %v", err, r)
		}
		playSandbox(t, ctx, work, "caldav", "calendar", "personal", "--name", "Personal")
		playSandbox(t, ctx, work, "caldav", "busy", "personal", "--start", at(10).Format(time.RFC3339))
		playSandbox(t, ctx, work, "caldav", "busy", "default", "--start", at(14).Format(time.RFC3339))
		busy := []string{"/mentor/calendars/personal/"}
		if r, err := mc.UpdateCalDAVConnectionWithResponse(ctx, client.UpdateCalDAVConnectionRequest{BusyCalendars: &busy}); err != nil || r.StatusCode() != http.StatusOK {
			t.Fatalf("PUT busy_calendars: %v %v", err, r)
		}
		free := func() []int {
			t.Helper()
			r, err := cand.GetMentorAvailabilityWithResponse(ctx, mentor, &client.GetMentorAvailabilityParams{From: at(9), To: at(16)})
			if err != nil || r.JSON200 == nil {
				t.Fatalf("availability: %v %v", err, r)
			}
			var hours []int
			for _, s := range r.JSON200.Slots {
				if s.Start.Minute() == 0 {
					hours = append(hours, s.Start.Hour())
				}
			}
			return hours
		}
		if got := free(); slices.Contains(got, 10) || slices.Contains(got, 14) || !slices.Contains(got, 11) {
			t.Fatalf("free hours before the delete %v; want 10:00 and 14:00 busy, 11:00 free", got)
		}
		playSandbox(t, ctx, work, "caldav", "calendar", "default", "--delete")
		for _, when := range []string{"as the chosen calendar is found gone", "with the connection in error"} {
			if got := free(); slices.Contains(got, 10) || !slices.Contains(got, 14) {
				t.Errorf("%s: free hours %v; want 10:00 busy (the personal calendar) and 14:00 free (the deleted one)", when, got)
			}
		}
		if conns, err := mc.ListConnectionsWithResponse(ctx); err != nil || conns.JSON200 == nil || len(conns.JSON200.Items) != 1 ||
			conns.JSON200.Items[0].Status != client.ConnectionStatusError {
			t.Errorf("the connection after the chosen calendar was deleted: %v %s, want error", err, conns.Body)
		}
	})
}
