package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spotlight/gateway/internal/booking"
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
