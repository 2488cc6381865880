package booking

// transitions lists the allowed status changes of a booking.
var transitions = map[Status][]Status{
	StatusPending:      {StatusConfirmed, StatusFailed, StatusCancelling},
	StatusConfirmed:    {StatusRescheduling, StatusCancelling, StatusInProgress, StatusCompleted, StatusFailed},
	StatusRescheduling: {StatusConfirmed, StatusCancelling, StatusFailed},
	StatusCancelling:   {StatusCancelled},
	StatusInProgress:   {StatusCompleted},
	StatusCancelled:    nil,
	StatusCompleted:    nil,
	StatusFailed:       nil,
}

// CanTransition reports whether a booking may go from one status to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports a status no change leaves.
func (s Status) Terminal() bool { return len(transitions[s]) == 0 }

// Active reports whether a booking in this status holds its slot.
func (s Status) Active() bool {
	switch s {
	case StatusPending, StatusConfirmed, StatusRescheduling, StatusInProgress:
		return true
	}
	return false
}

// Valid reports a known status.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// ops: what the saga drives the providers towards.
const (
	opEnsure     = "ensure"     // every step exists and reflects the current spec
	opCancel     = "cancel"     // meetings and events removed, issue follows
	opCompensate = "compensate" // everything created is removed; then failed
)

// stepSettled reports whether the saga has nothing left to do for step s
// under op, spec being the booking's current spec version. Under opEnsure an
// optional step that gave up (failed) is settled for the spec it gave up on
// (its AppliedSpec), not for a later one: a reschedule or a status its issue
// follows is tried again, or the candidate's event and the issue would keep
// an old time for good after one outage. A failed required step never is
// settled under opEnsure (it starts compensation). A skipped calendar step is settled only
// for the spec it was skipped for: its user had no usable calendar then and
// may have connected one since, so every new spec (a reschedule) looks
// again. Under opCancel and opCompensate every step that must be withdrawn
// (see mustWithdraw) is marked compensating and must be compensated, since
// even a failed create may have taken effect, unless its provider refused
// the removal for good (failed): retrying cannot change that, and the
// booking must not hang (the failed step and the audit show what may
// remain).
func stepSettled(op string, s Step, spec int64) bool {
	if s.State == StepSkipped {
		return op != opEnsure || !s.Name.calendar() || s.AppliedSpec >= spec
	}
	switch op {
	case opEnsure:
		return (s.State == StepDone || s.State == StepFailed && !s.Name.Required()) && s.AppliedSpec >= spec
	case opCancel, opCompensate:
		return s.State == StepCompensated || s.State == StepFailed
	}
	return true
}

// VisibleState is the state of step s as clients see it: a step done for an
// older version of the booking (before a reschedule, or a status change the
// Jira issue must follow) is pending again until the saga applies the
// current version, so GET never reports a stale artefact as done.
func (b Booking) VisibleState(s Step) StepState {
	if s.State == StepDone && s.AppliedSpec < b.SpecVersion && b.op == opEnsure {
		return StepPending
	}
	return s.State
}

// mustWithdraw reports whether a cancel or a compensation must withdraw step
// s: every step that was not skipped, and a calendar step even when it was.
// The booking's event may be in the user's calendar although the step is
// skipped (created before the user disconnected the calendar and connected
// it again); its id is the booking's, so removing it from the calendar the
// user has connected now needs no ref, and a missing event is no error.
func mustWithdraw(s Step) bool {
	return s.State != StepSkipped || s.Name.calendar()
}
