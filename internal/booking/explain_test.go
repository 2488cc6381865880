package booking

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestExplain: a refusal reads as a clause for the booking's candidate and
// mentor, without the error chain the audit trail used to show
// ("webhooks: booking refused the change: booking: start: must be at least
// 12h0m0s from now").
func TestExplain(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC) // a Monday
	sch := Schedule{MentorID: "m", TimeZone: "UTC", WorkingHours: []WorkingHours{{Weekday: time.Monday, StartMin: 9 * 60, EndMin: 17 * 60}},
		Slot: time.Hour, MinNotice: DefaultMinNotice, MaxAdvance: DefaultMaxAdvance}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"minimum notice", sch.Bookable(now.Add(time.Hour), time.Hour, now),
			"its start must be at least 12 h from now (the mentor's minimum notice)"},
		{"maximum advance", sch.Bookable(now.Add(70*24*time.Hour), time.Hour, now),
			"its start must be within 60 days from now (the mentor's maximum advance)"},
		{"working hours", sch.Bookable(now.Add(7*24*time.Hour+9*time.Hour), time.Hour, now),
			"its start is outside the mentor's working hours"},
		{"duration", &ValidationError{Field: "body.duration_minutes", Message: "must be whole minutes between 15 and 240"},
			"its duration must be whole minutes between 15 and 240"},
		{"under way", &ConflictError{Status: StatusInProgress, Action: "cancel"}, "the session is under way"},
		{"taken place", &ConflictError{Status: StatusCompleted, Action: "reschedule"}, "the session has already taken place"},
		{"cancelled", &ConflictError{Status: StatusCancelling, Action: "reschedule"}, "the booking is cancelled"},
		{"another booking", ErrOverlap, "the mentor is not free at that time"},
		{"busy calendar", fmt.Errorf("%w: the mentor's calendar is busy", ErrOverlap), "the mentor is not free at that time"},
		{"candidate's other session", ErrCandidateOverlap, "the candidate already has a session at that time"},
		{"provider refused", &RescheduleRefusedError{Reason: "zoom: HTTP 400: invalid start"}, "a provider refused the new time"},
		{"gone", ErrNotFound, "the booking no longer exists"},
		{"wrapped", fmt.Errorf("webhooks: booking refused the change: %w", &ConflictError{Status: StatusInProgress, Action: "cancel"}),
			"the session is under way"},
		{"not a refusal", errors.New("database is locked"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Explain(tt.err)
			if got != tt.want {
				t.Errorf("Explain(%v) = %q, want %q", tt.err, got, tt.want)
			}
			if strings.Contains(got, "booking:") || strings.Contains(got, "body.") {
				t.Errorf("Explain(%v) = %q carries the error chain", tt.err, got)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0 min"},
		{45 * time.Minute, "45 min"},
		{12 * time.Hour, "12 h"},
		{90 * time.Minute, "1 h 30 min"},
		{24 * time.Hour, "24 h"},
		{72 * time.Hour, "3 days"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
