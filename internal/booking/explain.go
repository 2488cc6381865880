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

// stepArtefact names what step creates, for people: "the Zoom meeting".
func stepArtefact(step StepName) string {
	switch step {
	case StepZoom:
		return "the Zoom meeting"
	case StepMentorCalendar:
		return "the mentor's calendar event"
	case StepCandidateCalendar:
		return "the candidate's calendar event"
	case StepJira:
		return "the Jira issue"
	}
	return "the " + strings.ReplaceAll(string(step), "_", " ")
}

// stepProvider names the provider behind step, for people.
func stepProvider(step StepName) string {
	switch step {
	case StepZoom:
		return "Zoom"
	case StepJira:
		return "Jira"
	}
	return "the calendar"
}

// stepFailure says, for the booking's audit trail, that step gave up under
// op: "the Jira issue could not be created or updated: Jira refused the
// request". refused tells a permanent refusal from a provider that kept
// failing. Like Explain it carries no error chain, status or URL; the
// provider's message stays in the step's last_error and the logs.
func stepFailure(step StepName, op string, refused bool) string {
	verb := "could not be created or updated"
	switch {
	case op == opCancel && step == StepJira:
		verb = "could not be marked cancelled"
	case op != opEnsure:
		verb = "could not be removed"
	}
	why := stepProvider(step) + " refused the request"
	if !refused {
		why = stepProvider(step) + " kept failing"
	}
	if op != opEnsure && step != StepJira {
		why += "; it may remain"
	}
	return stepArtefact(step) + " " + verb + ": " + why
}
