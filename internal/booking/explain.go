package booking

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Explain says why the booking service refused a change asked for outside
// the gateway (an error of RescheduleAs, CancelAs or SetStatus) as a clause
// for the people who read the booking's audit trail, its candidate and
// mentor: "the session is under way", "its start must be at least 12 h from
// now (the mentor's minimum notice)". It carries no package prefix, request
// field or error chain; those stay in the error, for logs and the admin's
// delivery notes. It returns "" for an error that is not such a refusal.
func Explain(err error) string {
	var (
		ce *ConflictError
		ve *ValidationError
		re *RescheduleRefusedError
	)
	switch {
	case errors.As(err, &ce):
		switch ce.Status {
		case StatusInProgress:
			return "the session is under way"
		case StatusCompleted:
			return "the session has already taken place"
		case StatusCancelling, StatusCancelled:
			return "the booking is cancelled"
		case StatusFailed:
			return "the booking failed"
		}
		return "the booking is " + strings.ReplaceAll(string(ce.Status), "_", " ")
	case errors.As(err, &ve):
		return ve.clause()
	case errors.As(err, &re):
		return "a provider refused the new time"
	case errors.Is(err, ErrCandidateOverlap):
		return "the candidate already has a session at that time"
	case errors.Is(err, ErrOverlap):
		return "the mentor is not free at that time"
	case errors.Is(err, ErrNotFound):
		return "the booking no longer exists"
	}
	return ""
}

// clause is e as a clause about the booking: "its start must be …", "its
// start is outside the mentor's working hours".
func (e *ValidationError) clause() string {
	name := strings.TrimPrefix(e.Field, "body.")
	switch name {
	case "duration_minutes":
		name = "duration"
	case "timezone":
		name = "time zone"
	}
	if strings.HasPrefix(e.Message, "must ") {
		return "its " + name + " " + e.Message
	}
	return "its " + name + " is " + e.Message
}

// humanDuration writes d for people: "12 h", "90 min", "1 h 30 min",
// "2 days".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	switch {
	case h == 0:
		return fmt.Sprintf("%d min", m)
	case m == 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}
