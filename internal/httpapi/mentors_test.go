package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestAvailabilityOutsideTheBookableWindow: a valid range wholly before the
// minimum notice or after the maximum advance has no slots (200), for a
// mentor on Google Calendar and one on CalDAV alike, without asking their
// calendars (CalDAV refused year 9999 with a 400, answered 502); the range
// is echoed in the answer's zone unless that zone moves it past year 9999
// or before year 0 (it was a 500: JSON cannot carry year 10000).
func TestAvailabilityOutsideTheBookableWindow(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t) // Europe/Berlin, 365 days ahead
	// The candidate's calendar is on CalDAV: give them a schedule too.
	caldavMentor := en.candidates[0]
	if _, err := en.svc.PutSchedule(t.Context(), booking.Actor{ID: "root", Admin: true}, booking.Schedule{MentorID: caldavMentor,
		TimeZone: "Europe/Berlin", WorkingHours: []booking.WorkingHours{{Weekday: time.Monday, StartMin: 540, EndMin: 1020}},
		Slot: time.Hour, MaxAdvance: 60 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cand := en.client(t, en.candidates[0], "candidate")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name     string
		from, to time.Time
		tz       *string
	}{
		{"year 9999", utc("9999-12-01T00:00:00Z"), utc("9999-12-31T23:59:59Z"), nil},
		{"year 9999 in Kiritimati", utc("9999-12-01T00:00:00Z"), utc("9999-12-31T23:59:59Z"), ptr("Pacific/Kiritimati")},
		{"year 0 in New York", utc("0000-01-01T00:00:00Z"), utc("0000-01-02T00:00:00Z"), ptr("America/New_York")},
		{"past", time.Now().AddDate(0, 0, -20), time.Now().AddDate(0, 0, -10), nil},
		{"beyond the maximum advance", time.Now().AddDate(2, 0, 0), time.Now().AddDate(2, 0, 7), nil},
	}
	for _, mentor := range []string{en.mentors[0], caldavMentor} {
		for _, tt := range tests {
			r, err := cand.GetMentorAvailabilityWithResponse(t.Context(), mentor, &client.GetMentorAvailabilityParams{From: tt.from, To: tt.to, Tz: tt.tz})
			if err != nil {
				t.Fatal(err)
			}
			if r.StatusCode() != http.StatusOK || r.JSON200 == nil {
				t.Errorf("%s, %s: %d %s", mentor, tt.name, r.StatusCode(), r.Body)
				continue
			}
			if len(r.JSON200.Slots) != 0 || !r.JSON200.From.Equal(tt.from) || !r.JSON200.To.Equal(tt.to) {
				t.Errorf("%s, %s: %s; want no slots and the range echoed", mentor, tt.name, r.Body)
			}
		}
	}
	// Within the window the range is still echoed in the answer's zone.
	from := day(3)
	r, err := cand.GetMentorAvailabilityWithResponse(t.Context(), en.mentors[0], &client.GetMentorAvailabilityParams{From: from.UTC(), To: from.Add(24 * time.Hour).UTC()})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("availability: %v %s", err, r.Body)
	}
	if got := r.JSON200.From.Format(time.RFC3339); got != from.Format(time.RFC3339) || len(r.JSON200.Slots) != 24 {
		t.Errorf("from = %s, %d slots; want %s (Berlin) and 24 slots", got, len(r.JSON200.Slots), from.Format(time.RFC3339))
	}
}

// TestScheduleErrorsNameTheEntry: a schedule's errors name the
// working-hours entries by their index in the request, in the request
// validator's format (body.working_hours.2.end), whether the validator or
// the schedule's own check finds them; an overlap names both entries.
func TestScheduleErrorsNameTheEntry(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	mentor := en.mentors[0]
	tok := en.token(t, mentor, "mentor")
	tests := []struct {
		name   string
		hours  string
		status int
		fields []string
	}{
		{"inverted third entry", `{"weekday":"tue","start":"09:00","end":"10:00"},{"weekday":"wed","start":"09:00","end":"10:00"},{"weekday":"mon","start":"12:00","end":"09:00"}`,
			http.StatusUnprocessableEntity, []string{"body.working_hours.2.end"}},
		{"overlap", `{"weekday":"mon","start":"13:00","end":"17:00"},{"weekday":"tue","start":"09:00","end":"10:00"},{"weekday":"mon","start":"11:00","end":"14:00"}`,
			http.StatusUnprocessableEntity, []string{"body.working_hours.2", "body.working_hours.0"}},
		{"bad time, found by the request validator", `{"weekday":"mon","start":"09:00","end":"10:00"},{"weekday":"tue","start":"09:00","end":"9am"}`,
			http.StatusBadRequest, []string{"body.working_hours.1.end"}},
		{"bad weekday, found by the request validator", `{"weekday":"mon","start":"09:00","end":"10:00"},{"weekday":"someday","start":"09:00","end":"10:00"}`,
			http.StatusBadRequest, []string{"body.working_hours.1.weekday"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := en.do(t, http.MethodPut, "/v1/mentors/"+mentor+"/schedule", tok, `{"timezone":"Europe/Berlin","working_hours":[`+tt.hours+`]}`)
			p := decodeProblem(t, resp, body, tt.status)
			if diff := cmp.Diff(fieldsOf(p), tt.fields); diff != "" {
				t.Errorf("fields (-got +want):\n%s\n%s", diff, body)
			}
		})
	}
}
