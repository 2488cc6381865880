package systemtest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/sandbox"
)

// TestSandboxBusyCalendars plays "Calendars that count as busy time" in
// the embedded default, as the README tells a newcomer to: with `gateway
// sandbox google|caldav calendar` a mentor's sandbox account gets a second
// calendar, with `… busy` an event in it; the slot stays free until the
// mentor lists that calendar in busy_calendars (which the gateway checks
// against the account, so the calendar must exist), and then availability
// leaves it out and a booking over it is refused.
func TestSandboxBusyCalendars(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	work, gw := startEmbedded(t, ctx)
	cand := clientAs(t, ctx, gw, "cand-sb", "candidate")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 3)

	for i, tc := range []struct {
		mentor string
		// connect connects the mentor's sandbox account.
		connect func(mc *client.ClientWithResponses) error
		// calendar and busy are the `gateway sandbox` commands that add
		// the calendar and put busy time in it; entry is how
		// busy_calendars names it.
		calendar, busy []string
		entry          string
		setBusy        func(mc *client.ClientWithResponses, entries []string) (*http.Response, error)
	}{
		{
			mentor: "mentor-sbg",
			connect: func(*client.ClientWithResponses) error {
				return ConnectGoogleAs(ctx, gw, "mentor-sbg", "mentor", sandbox.DefaultGoogleCalendar)
			},
			calendar: []string{"google", "calendar", "family@group.calendar.google.com", "--name", "Family", "--role", "reader"},
			busy:     []string{"google", "busy", "family@group.calendar.google.com"},
			entry:    "family@group.calendar.google.com",
			setBusy: func(mc *client.ClientWithResponses, entries []string) (*http.Response, error) {
				r, err := mc.UpdateGoogleConnectionWithResponse(ctx, client.UpdateGoogleConnectionRequest{BusyCalendars: &entries})
				if err != nil {
					return nil, err
				}
				return r.HTTPResponse, nil
			},
		},
		{
			mentor: "mentor-sbc",
			connect: func(mc *client.ClientWithResponses) error {
				pw := sandbox.CalDAVPassword
				r, err := mc.CreateCalDAVConnectionWithResponse(ctx, client.CreateCalDAVConnectionRequest{Username: sandbox.CalDAVUser, AppPassword: pw})
				if err == nil && r.StatusCode() != http.StatusCreated && r.StatusCode() != http.StatusOK {
					t.Fatalf("connect caldav: %d %s", r.StatusCode(), r.Body)
				}
				return err
			},
			calendar: []string{"caldav", "calendar", "personal", "--name", "Personal"},
			busy:     []string{"caldav", "busy", "personal"},
			entry:    "/mentor/calendars/personal/",
			setBusy: func(mc *client.ClientWithResponses, entries []string) (*http.Response, error) {
				r, err := mc.UpdateCalDAVConnectionWithResponse(ctx, client.UpdateCalDAVConnectionRequest{BusyCalendars: &entries})
				if err != nil {
					return nil, err
				}
				return r.HTTPResponse, nil
			},
		},
	} {
		t.Run(tc.mentor, func(t *testing.T) {
			day := day.AddDate(0, 0, i) // the candidate's session of one subtest stays off the other's slots
			at := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }
			mc := clientAs(t, ctx, gw, tc.mentor, "mentor")
			zu := tc.mentor + "@example.com"
			if r, err := mc.PutMentorScheduleWithResponse(ctx, tc.mentor, client.MentorScheduleInput{Timezone: "UTC", WorkingHours: allDay(), ZoomUser: &zu}); err != nil ||
				r.StatusCode() != http.StatusOK && r.StatusCode() != http.StatusCreated {
				t.Fatalf("schedule: %v %v", err, r)
			}
			if err := tc.connect(mc); err != nil {
				t.Fatal(err)
			}
			free := func(h int) bool {
				t.Helper()
				r, err := cand.GetMentorAvailabilityWithResponse(ctx, tc.mentor, &client.GetMentorAvailabilityParams{From: at(8), To: at(13)})
				if err != nil || r.JSON200 == nil {
					t.Fatalf("availability: %v %v", err, r)
				}
				for _, s := range r.JSON200.Slots {
					if s.Start.Equal(at(h)) {
						return true
					}
				}
				return false
			}

			// Before the calendar exists, the gateway refuses it (the 422 the reviewer met).
			if r, err := tc.setBusy(mc, []string{tc.entry}); err != nil || r.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("busy_calendars naming a calendar the account lacks: %v %v, want 422", r, err)
			}
			playSandbox(t, ctx, work, tc.calendar...)
			playSandbox(t, ctx, work, append(tc.busy, "--start", at(10).Format(time.RFC3339), "--duration", "60")...)
			if !free(10) {
				t.Fatal("10:00 is taken before the mentor counts the extra calendar")
			}
			if r, err := tc.setBusy(mc, []string{tc.entry}); err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("PUT busy_calendars: %v %v", r, err)
			}
			if free(10) || !free(9) || !free(11) {
				t.Errorf("free at 09:00, 10:00, 11:00: %v %v %v; want 10:00 busy (the extra calendar's event) and the others free", free(9), free(10), free(11))
			}
			out, err := Book(ctx, cand, Request{Key: uuid.NewString(), Body: client.CreateBookingRequest{
				MentorId: tc.mentor, Start: at(10), DurationMinutes: 30, Timezone: "UTC", Topic: "over the busy time"}})
			if err != nil || out.Status != http.StatusConflict {
				t.Errorf("booking over the extra calendar's busy time: %v %d %s, want 409", err, out.Status, out.Body)
			}
		})
	}
}

// TestReadmeBusyCalendars runs the README's "Busy calendars in the
// sandbox" block after the walkthrough's booking block, as a newcomer
// would: the mentor's sandbox CalDAV user gets a Personal calendar, the
// mentor counts it in busy_calendars, and a dentist appointment put in it
// with `gateway sandbox caldav busy` at the first free slot takes that
// slot away.
func TestReadmeBusyCalendars(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	_, _, lines := runWalkthrough(t, ctx, "### Book a session in the sandbox", "#### Busy calendars in the sandbox")

	// The booking block prints five lines; this block the new calendar,
	// the connection, the busy event and the first free slot after it.
	if len(lines) != 9 {
		t.Fatalf("walkthrough printed %d lines, want 9:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var added struct {
		CalendarPath string `json:"calendar_path"`
		Name         string `json:"name"`
	}
	var conn struct {
		Status        string `json:"status"`
		BusyCalendars []struct {
			ID string `json:"id"`
		} `json:"busy_calendars"`
	}
	var busy struct {
		CalendarPath string    `json:"calendar_path"`
		Start        time.Time `json:"start"`
		End          time.Time `json:"end"`
	}
	for i, v := range map[int]any{5: &added, 6: &conn, 7: &busy} {
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatalf("line %d is not the JSON answer it should be: %v\n%s", i+1, err, lines[i])
		}
	}
	if added.CalendarPath != "/mentor/calendars/personal/" || added.Name != "Personal" {
		t.Errorf("sandbox caldav calendar answered %s", lines[5])
	}
	if conn.Status != "connected" || len(conn.BusyCalendars) != 2 || conn.BusyCalendars[1].ID != "/mentor/calendars/personal/" {
		t.Errorf("PUT busy_calendars answered %s", lines[6])
	}
	if busy.CalendarPath != "/mentor/calendars/personal/" || busy.End.Sub(busy.Start) != 90*time.Minute {
		t.Errorf("sandbox caldav busy answered %s", lines[7])
	}
	next, err := time.Parse(time.RFC3339, lines[8])
	if err != nil || next.Before(busy.End) {
		t.Errorf("first free slot after the dentist appointment (%v–%v): %q %v", busy.Start, busy.End, lines[8], err)
	}
}
