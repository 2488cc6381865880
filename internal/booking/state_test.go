package booking

import "testing"

func TestCanTransition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to Status
		ok       bool
	}{
		{StatusPending, StatusConfirmed, true},
		{StatusPending, StatusFailed, true},
		{StatusPending, StatusCancelling, true},
		{StatusPending, StatusCancelled, false},
		{StatusConfirmed, StatusRescheduling, true},
		{StatusConfirmed, StatusInProgress, true},
		{StatusConfirmed, StatusPending, false},
		{StatusRescheduling, StatusConfirmed, true},
		{StatusCancelling, StatusCancelled, true},
		{StatusCancelling, StatusConfirmed, false},
		{StatusInProgress, StatusCompleted, true},
		{StatusInProgress, StatusCancelling, false},
		{StatusCancelled, StatusPending, false},
		{StatusFailed, StatusConfirmed, false},
		{StatusCompleted, StatusCancelling, false},
	}
	for _, tt := range tests {
		if got := CanTransition(tt.from, tt.to); got != tt.ok {
			t.Errorf("CanTransition(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.ok)
		}
	}
	for _, s := range []Status{StatusCancelled, StatusCompleted, StatusFailed} {
		if !s.Terminal() || s.Active() {
			t.Errorf("%s: terminal %v active %v", s, s.Terminal(), s.Active())
		}
	}
	for _, s := range []Status{StatusPending, StatusConfirmed, StatusRescheduling, StatusInProgress} {
		if s.Terminal() || !s.Active() {
			t.Errorf("%s: terminal %v active %v", s, s.Terminal(), s.Active())
		}
	}
	if StatusCancelling.Active() {
		t.Error("a cancelling booking still holds its slot")
	}
}

func TestStepSettled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op   string
		step Step
		spec int64
		want bool
	}{
		{opEnsure, Step{Name: StepZoom, State: StepPending}, 1, false},
		{opEnsure, Step{Name: StepZoom, State: StepDone, AppliedSpec: 1}, 1, true},
		{opEnsure, Step{Name: StepZoom, State: StepDone, AppliedSpec: 1}, 2, false},   // rescheduled
		{opEnsure, Step{Name: StepZoom, State: StepFailed}, 1, false},                 // required: compensation
		{opEnsure, Step{Name: StepJira, State: StepFailed, AppliedSpec: 1}, 1, true},  // optional gave up
		{opEnsure, Step{Name: StepJira, State: StepFailed, AppliedSpec: 1}, 2, false}, // … on an older spec: tried again
		{opEnsure, Step{Name: StepCandidateCalendar, State: StepSkipped, AppliedSpec: 1}, 1, true},
		{opEnsure, Step{Name: StepCandidateCalendar, State: StepSkipped, AppliedSpec: 1}, 2, false}, // rescheduled: connected now?
		{opEnsure, Step{Name: StepMentorCalendar, State: StepSkipped, AppliedSpec: 1}, 2, false},
		{opEnsure, Step{Name: StepJira, State: StepSkipped}, 2, true}, // no issue tracker configured
		{opCancel, Step{Name: StepJira, State: StepSkipped}, 1, true},
		{opCancel, Step{Name: StepZoom, State: StepDone, AppliedSpec: 1}, 1, false},
		{opCancel, Step{Name: StepZoom, State: StepCompensated}, 1, true},
		{opCancel, Step{Name: StepJira, State: StepCompensating}, 1, false},
		{opCompensate, Step{Name: StepMentorCalendar, State: StepCompensating}, 1, false},
		{opCompensate, Step{Name: StepMentorCalendar, State: StepSkipped}, 1, true},
	}
	for _, tt := range tests {
		if got := stepSettled(tt.op, tt.step, tt.spec); got != tt.want {
			t.Errorf("stepSettled(%s, %+v, %d) = %v, want %v", tt.op, tt.step, tt.spec, got, tt.want)
		}
	}
}

func TestVisibleState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op   string
		step Step
		spec int64
		want StepState
	}{
		{opEnsure, Step{Name: StepCandidateCalendar, State: StepDone, AppliedSpec: 2}, 2, StepDone},
		{opEnsure, Step{Name: StepCandidateCalendar, State: StepDone, AppliedSpec: 1}, 2, StepPending}, // rescheduled, not applied yet
		{opEnsure, Step{Name: StepJira, State: StepFailed, AppliedSpec: 1}, 2, StepFailed},
		{opCancel, Step{Name: StepZoom, State: StepDone, AppliedSpec: 1}, 2, StepDone},
		{opEnsure, Step{Name: StepZoom, State: StepSkipped}, 3, StepSkipped},
	}
	for _, tt := range tests {
		b := Booking{SpecVersion: tt.spec, op: tt.op}
		if got := b.VisibleState(tt.step); got != tt.want {
			t.Errorf("VisibleState(op %s, %+v, spec %d) = %s, want %s", tt.op, tt.step, tt.spec, got, tt.want)
		}
	}
}

// TestValidationErrorMessage: the error names the field without the API's
// "body." prefix (it reaches audit trails and webhook notes); Field keeps it
// for the problem's errors[].
func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	err := &ValidationError{Field: "body.start", Message: "outside the mentor's working hours"}
	if got := err.Error(); got != "booking: start: outside the mentor's working hours" {
		t.Errorf("Error() = %q", got)
	}
	if err.Field != "body.start" {
		t.Errorf("Field = %q", err.Field)
	}
}

// TestETagMatches: If-Match uses the strong comparison (RFC 9110 section
// 13.1.1): a weak tag never matches, "*" always does, lists are searched.
// A tag matches on the version it names: the bare version tag, or the
// HTTP layer's tag of a representation at that version ("2.<digest>").
func TestETagMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		want   bool
	}{
		{`"2"`, true},
		{` "2" `, true},
		{`*`, true},
		{`"1", "2"`, true},
		{`"1","2"`, true},
		{`W/"2"`, false},
		{`W/"1", W/"2"`, false},
		{`W/"2", "2"`, true},
		{`"3"`, false},
		{`2`, false},
		{``, false},
		{`"2.5f0c9a8e3b4e"`, true},
		{`"1.5f0c9a8e3b4e", "2.0123456789ab"`, true},
		{`W/"2.5f0c9a8e3b4e"`, false},
		{`"3.5f0c9a8e3b4e"`, false},
		{`"12.5f0c9a8e3b4e"`, false},
		{`"02"`, false},
		{`"2x"`, false},
		{`".2"`, false},
	}
	for _, tt := range tests {
		if got := etagMatches(tt.header, 2); got != tt.want {
			t.Errorf("etagMatches(%q, %q) = %v, want %v", tt.header, `"2"`, got, tt.want)
		}
	}
}
