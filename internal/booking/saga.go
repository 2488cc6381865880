package booking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/integrations/calendar"
)

// SagaArgs is the durable job of a booking's saga. One is inserted with
// every change (create, reschedule, cancel); running it when nothing is left
// to do is a no-op.
type SagaArgs struct {
	BookingID string `json:"booking_id"`
}

// Kind implements river.JobArgs.
func (SagaArgs) Kind() string { return "booking_saga" }

// errLeased: another runner works the booking right now.
var errLeased = errors.New("booking: saga running elsewhere")

// errLeaseLost: the run lost the booking's lease to another runner; what it
// did last was not recorded (see repo.writeStep).
var errLeaseLost = fmt.Errorf("%w: lease lost", errLeased)

// kick runs the booking's saga in-process, detached from the request. When
// another runner holds the booking (a run that is about to finish), it tries
// again for up to the sync timeout; after that the job takes over.
func (s *Service) kick(id string) {
	if s.noFastPath {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		deadline := time.Now().Add(s.cfg.SyncTimeout)
		for {
			_, err := s.run(s.base, id)
			if errors.Is(err, errLeased) && time.Now().Before(deadline) && sleepCtx(s.base, s.cfg.PollInterval) == nil {
				continue
			}
			if err != nil && !errors.Is(err, errLeased) && s.base.Err() == nil {
				s.log.Info("booking saga left work to its job", "booking_id", id, "error", err.Error())
			}
			return
		}
	}()
}

// run works the booking's saga until it settles, under the booking's lease.
// It reports whether everything settled; an error leaves work for the job.
func (s *Service) run(ctx context.Context, id string) (bool, error) {
	owner := newID()
	now := s.now()
	ok, tookOver, err := s.repo.take(ctx, id, owner, now, now.Add(s.cfg.LeaseTTL))
	if err != nil {
		return false, err
	}
	if !ok {
		if _, gerr := s.repo.get(ctx, s.cfg.Store.DB(), id); errors.Is(gerr, ErrNotFound) {
			return false, ErrNotFound
		}
		return false, errLeased
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RunTimeout)
	defer cancel()
	stopRenewing := s.renewLease(ctx, cancel, id, owner)
	defer func() {
		// A run cut short (its timeout, shutdown, a lost lease) may have
		// left a provider call that still takes effect: it keeps its
		// lease until the lease expires, so the runner taking over knows
		// to look for what that call made (see Booking.takenOver).
		cut := ctx.Err() != nil
		cancel()
		stopRenewing()
		if !cut {
			if err := s.repo.release(context.WithoutCancel(ctx), id, owner); err != nil {
				s.log.Warn("release booking lease", "booking_id", id, "error", err.Error())
			}
		}
		s.notify(id)
	}()
	if tookOver {
		s.log.Info("booking lease taken over from a runner that did not release it", "booking_id", id)
	}
	for round := 0; round < 10; round++ {
		b, err := s.repo.get(ctx, s.cfg.Store.DB(), id)
		if err != nil {
			return false, err
		}
		b.takenOver, b.runner = tookOver, owner
		if !s.needsWork(b) {
			return true, nil
		}
		if err := s.advance(ctx, b); err != nil {
			return false, err
		}
		s.notify(id)
	}
	return false, errors.New("booking: saga did not settle")
}

// renewLease renews the run's lease on booking id every LeaseTTL/3 until
// stop is called, and cancels the run when the lease was lost. Between
// renewals it holds no goroutine, only a timer: a run spends most of its
// life waiting on providers, and with hundreds of bookings in flight a
// parked goroutine per run is hundreds of stacks (and, as the collector
// counts stacks in its heap goal, about twice that in memory). stop waits
// for a renewal under way, which the cancelled ctx cuts short.
func (s *Service) renewLease(ctx context.Context, cancel context.CancelFunc, id, owner string) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	every := s.cfg.LeaseTTL / 3
	renew := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		timer.Reset(every)
		now := s.now()
		if ok, err := s.repo.renew(ctx, id, owner, now.Add(s.cfg.LeaseTTL)); err == nil && !ok {
			s.log.Warn("booking lease lost; stopping the run", "booking_id", id)
			stopped = true
			timer.Stop()
			cancel()
		}
	}
	mu.Lock()
	timer = time.AfterFunc(every, renew)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
	}
}

// needsWork reports whether the saga has anything left to do for b.
func (s *Service) needsWork(b Booking) bool {
	switch b.op {
	case opEnsure:
		switch b.Status {
		case StatusPending, StatusRescheduling:
			return true
		case StatusConfirmed, StatusInProgress, StatusCompleted:
			// Steps may lag: an optional step retrying, or the issue
			// following a status change.
		default:
			return false
		}
	case opCancel:
		if b.Status == StatusCancelling {
			return true
		}
	case opCompensate:
		if b.Status != StatusFailed {
			return true
		}
	default:
		return false
	}
	for _, st := range b.Steps {
		if !stepSettled(b.op, st, b.SpecVersion) {
			return true
		}
	}
	return false
}

// advance does one round of work for b's op.
func (s *Service) advance(ctx context.Context, b Booking) error {
	switch b.op {
	case opEnsure:
		return s.ensure(ctx, b)
	case opCancel, opCompensate:
		return s.withdraw(ctx, b)
	}
	return nil
}

// ensure creates or updates every step: Zoom first, then the calendars and
// Jira in parallel. The booking is confirmed as soon as the required steps
// are done.
func (s *Service) ensure(ctx context.Context, b Booking) error {
	zoom := b.Step(StepZoom)
	if !stepSettled(opEnsure, zoom, b.SpecVersion) {
		err := s.attempt(ctx, b, zoom, opEnsure, func(ctx context.Context) (stepResult, error) { return s.ensureZoom(ctx, b, zoom) })
		if IsPermanent(err) {
			return s.refuse(ctx, b.ID, StepZoom, b.SpecVersion, err)
		}
		if err != nil {
			return err
		}
		nb, err := s.repo.get(ctx, s.cfg.Store.DB(), b.ID)
		if err != nil {
			return err
		}
		if nb.op != opEnsure || nb.SpecVersion != b.SpecVersion {
			return nil // changed meanwhile: the next round looks again
		}
		b = nb
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = map[StepName]error{}
		todo []Step
	)
	for _, n := range []StepName{StepMentorCalendar, StepCandidateCalendar, StepJira} {
		if st := b.Step(n); !stepSettled(opEnsure, st, b.SpecVersion) {
			todo = append(todo, st)
		}
	}
	do := func(st Step) {
		n := st.Name
		err := s.attempt(ctx, b, st, opEnsure, func(ctx context.Context) (stepResult, error) {
			switch n {
			case StepJira:
				return s.ensureIssue(ctx, b, st)
			case StepMentorCalendar:
				return s.ensureEvent(ctx, b, st, b.MentorID)
			default:
				return s.ensureEvent(ctx, b, st, b.CandidateID)
			}
		})
		if err == nil && n == StepMentorCalendar {
			// Answer the waiting request without waiting for the optional steps.
			if cerr := s.tryConfirm(ctx, b.ID); cerr != nil {
				err = cerr
			}
		}
		mu.Lock()
		errs[n] = err
		mu.Unlock()
	}
	// The steps run in parallel, the last on this goroutine: it would only
	// wait for the others, and a goroutine less per booking in flight is
	// a stack less. A panic in that last step (River recovers a job's)
	// unwinds the run only once the others have finished: the run releases
	// its lease as it unwinds, and no step of it may still be running then.
	func() {
		defer wg.Wait()
		for i, st := range todo {
			if i == len(todo)-1 {
				do(st)
			} else {
				wg.Go(func() { do(st) })
			}
		}
	}()
	if err := errs[StepMentorCalendar]; IsPermanent(err) {
		return s.refuse(ctx, b.ID, StepMentorCalendar, b.SpecVersion, err)
	}
	if err := s.tryConfirm(ctx, b.ID); err != nil {
		return err
	}
	var left []error
	for _, n := range []StepName{StepMentorCalendar, StepCandidateCalendar, StepJira} {
		if err := errs[n]; err != nil && !IsPermanent(err) {
			left = append(left, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(left...)
}

// tryConfirm confirms a pending or rescheduling booking whose required
// steps reflect its current spec.
func (s *Service) tryConfirm(ctx context.Context, id string) error {
	changed := false
	err := s.inBookingTx(ctx, id, func(tx *sql.Tx, b Booking) error {
		changed = false
		if b.op != opEnsure || (b.Status != StatusPending && b.Status != StatusRescheduling) {
			return nil
		}
		for _, n := range []StepName{StepZoom, StepMentorCalendar} {
			if !stepSettled(opEnsure, b.Step(n), b.SpecVersion) {
				return nil
			}
		}
		now := s.now()
		u := updateOf(b, now)
		u.Status, u.Confirmed = StatusConfirmed, nil
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		action, reason := "confirmed", "all required steps done"
		if b.Status == StatusRescheduling {
			action, reason = "reschedule_confirmed", "required steps updated"
		}
		changed = true
		return s.repo.audit(ctx, tx, AuditRecord{BookingID: id, At: now, Actor: SystemActor, Action: action,
			From: b.Status, To: StatusConfirmed, Reason: reason})
	})
	if changed && err == nil {
		s.notify(id)
		s.log.Info("booking confirmed", "booking_id", id)
	}
	return err
}

// inBookingTx runs fn with booking id read inside a transaction, again (up
// to five times) while fn reports ErrStale: another writer changed the
// booking between the read and the write.
func (s *Service) inBookingTx(ctx context.Context, id string, fn func(tx *sql.Tx, b Booking) error) error {
	for range 5 {
		err := s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
			b, err := s.repo.get(ctx, tx, id)
			if err != nil {
				return err
			}
			return fn(tx, b)
		})
		if !errors.Is(err, ErrStale) {
			return err
		}
	}
	return ErrStale
}

// refuse handles the permanent failure of required step while ensuring
// spec of the booking. A reschedule of a confirmed booking is undone: the
// booking goes back to the times it was confirmed at, as a new spec the
// saga applies like any other (the providers that took the new times are
// moved back; step, refused, still has the old ones). Anything else — a
// new booking, a reschedule whose old slot was taken meanwhile (by another
// booking of the mentor or of the candidate), or a refusal while restoring
// — starts compensation. A failure of a spec the booking has left behind
// (changed again meanwhile) is left to the next round, which works on the
// current spec.
func (s *Service) refuse(ctx context.Context, id string, step StepName, spec int64, cause error) error {
	// Shown to the booking's people and in the API's 424: words, not the
	// provider's error (see startCompensation).
	reason := stepFailure(step, opEnsure, IsPermanent(cause))
	restored, moved := false, false
	err := s.inBookingTx(ctx, id, func(tx *sql.Tx, b Booking) error {
		restored, moved = false, b.SpecVersion != spec
		if moved {
			return nil
		}
		c := b.confirmed
		if b.op != opEnsure || b.Status != StatusRescheduling || c == nil {
			return nil
		}
		// The previous time may have been taken meanwhile, by another
		// booking of the mentor or of the candidate.
		if err := s.repo.slotFree(ctx, tx, b.ID, b.MentorID, b.CandidateID, c.Start, c.End, c.End.Add(b.Buffer)); err != nil {
			if errors.Is(err, ErrOverlap) {
				return nil
			}
			return err
		}
		now := s.now()
		u := updateOf(b, now)
		u.Start, u.End, u.TimeZone, u.SpecVersion = c.Start, c.End, c.TimeZone, b.SpecVersion+1
		u.Confirmed, u.RefusedSpec, u.RefusedReason = nil, b.SpecVersion, reason
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		// A step the provider refused never took the new times; it
		// reflects the restored spec as it is (were it gone, its ensure
		// would have created it instead). A step given up after transient
		// failures may have taken them (an attempt applied before its
		// answer was lost): it applies the restored spec again.
		if st := b.Step(step); st.Ref != "" {
			var gaveUp *gaveUpError
			if errors.As(cause, &gaveUp) {
				if err := s.repo.retryStep(ctx, tx, id, step, now); err != nil {
					return err
				}
			} else if err := s.repo.markApplied(ctx, tx, id, step, u.SpecVersion, now); err != nil {
				return err
			}
		}
		restored = true
		return s.repo.audit(ctx, tx, AuditRecord{BookingID: id, At: now, Actor: SystemActor, Action: "reschedule_refused",
			From: b.Status, To: b.Status, Reason: reason + "; restoring the previous time", Changes: timeChanges(b.timing(), *c)})
	})
	if err != nil || moved {
		return err
	}
	if !restored {
		return s.startCompensation(ctx, id, step, cause)
	}
	s.notify(id)
	s.log.Warn("booking reschedule refused; restoring the previous time", "booking_id", id, "step", string(step), "reason", reason, "error", safeMessage(cause))
	return nil
}

// startCompensation switches the booking to compensation after a required
// step failed permanently: it frees the slot and marks every step that may
// have taken effect for withdrawal.
func (s *Service) startCompensation(ctx context.Context, id string, step StepName, cause error) error {
	// The reason is shown to the booking's candidate and mentor: words, not
	// the provider's error (its URLs name the mentor's account); that stays
	// in the step's last_error and the log.
	reason := stepFailure(step, opEnsure, IsPermanent(cause))
	err := s.inBookingTx(ctx, id, func(tx *sql.Tx, b Booking) error {
		if b.op != opEnsure {
			return nil
		}
		now := s.now()
		u := updateOf(b, now)
		u.Op, u.FailureReason = opCompensate, reason
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		for _, st := range b.Steps {
			if mustWithdraw(st) {
				if err := s.repo.setStepState(ctx, tx, id, st.Name, StepCompensating, now); err != nil {
					return err
				}
			}
		}
		return s.repo.audit(ctx, tx, AuditRecord{BookingID: id, At: now, Actor: SystemActor, Action: "step_failed",
			From: b.Status, To: b.Status, Reason: reason + "; compensating"})
	})
	if err == nil {
		s.log.Warn("booking compensating", "booking_id", id, "step", string(step), "reason", reason, "error", safeMessage(cause))
	}
	return err
}

// withdraw removes (cancel, compensate) every step's artefact in parallel
// and then ends the booking cancelled or failed.
func (s *Service) withdraw(ctx context.Context, b Booking) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, st := range b.Steps {
		if stepSettled(b.op, st, b.SpecVersion) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.attempt(ctx, b, st, b.op, func(ctx context.Context) (stepResult, error) { return s.remove(ctx, b, st) })
			if err != nil && !IsPermanent(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", st.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := s.finishWithdraw(ctx, b.ID); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// finishWithdraw ends a cancelling booking as cancelled, or a compensating
// one as failed, once its required steps are withdrawn.
func (s *Service) finishWithdraw(ctx context.Context, id string) error {
	changed := false
	err := s.inBookingTx(ctx, id, func(tx *sql.Tx, b Booking) error {
		changed = false
		var to Status
		switch {
		case b.op == opCancel && b.Status == StatusCancelling:
			to = StatusCancelled
		case b.op == opCompensate && b.Status != StatusFailed:
			to = StatusFailed
		default:
			return nil
		}
		for _, n := range []StepName{StepZoom, StepMentorCalendar, StepCandidateCalendar} {
			if !stepSettled(b.op, b.Step(n), b.SpecVersion) {
				return nil
			}
		}
		now := s.now()
		u := updateOf(b, now)
		u.Status = to
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		changed = true
		a := AuditRecord{BookingID: id, At: now, Actor: SystemActor, From: b.Status, To: to}
		if to == StatusCancelled {
			a.Action, a.Reason = "cancelled", "meeting and calendar events removed"
			var left []string
			for _, n := range []StepName{StepZoom, StepMentorCalendar, StepCandidateCalendar} {
				if b.Step(n).State == StepFailed {
					left = append(left, stepArtefact(n))
				}
			}
			if len(left) > 0 {
				a.Reason = "cancelled, but " + strings.Join(left, " and ") + " could not be removed and may remain"
			}
		} else {
			a.Action, a.Reason = "compensated", b.FailureReason
		}
		return s.repo.audit(ctx, tx, a)
	})
	if changed && err == nil {
		s.notify(id)
	}
	return err
}

// attempt runs one step, retrying transient failures with backoff up to
// StepAttempts times within the run, and records every outcome. A failure
// whose provider asked for a wait (a RetryAfterError: Retry-After, an open
// circuit) longer than RetryMax, or the run's last attempt, ends the run
// with a RetryAfterError: the step records when it may be tried next, no
// runner calls the provider before then, and the job sleeps until then
// (holding neither a goroutine nor a connection). It returns a
// PermanentError when the step failed for good: a permanent provider error,
// or the step's failures exhausted (see givesUp).
func (s *Service) attempt(ctx context.Context, b Booking, st Step, op string, fn func(context.Context) (stepResult, error)) error {
	if wait := st.retryAt.Sub(s.now()); wait > 0 {
		return RetryAfter(fmt.Errorf("booking: %s waits before its next attempt: %s", st.Name, st.LastError), wait)
	}
	if op == opEnsure && st.State == StepFailed {
		// An optional step that gave up on an older spec (see
		// stepSettled): the current one gets a budget of its own.
		if err := s.repo.clearFailures(ctx, b.ID, st.Name); err != nil {
			return err
		}
		st.failures, st.failingSince = 0, time.Time{}
	}
	since := st.failingSince
	for i := 1; ; i++ {
		res, err := fn(ctx)
		if err == nil {
			return s.repo.writeStep(context.WithoutCancel(ctx), b.ID, b.runner, st.Name, res, s.now())
		}
		if ctx.Err() != nil && !IsPermanent(err) {
			return err
		}
		now := s.now()
		if since.IsZero() {
			since = now
		}
		wait := max(backoff(s.cfg.RetryBase, s.cfg.RetryMax, i), retryDelay(err))
		if i >= s.cfg.StepAttempts {
			// The run leaves the step to the job: back off further with
			// every run that failed.
			wait = max(wait, backoff(10*s.cfg.RetryBase, 30*s.cfg.RetryMax, (st.failures+i)/s.cfg.StepAttempts))
		}
		permanent := IsPermanent(err) || s.givesUp(st.Name, op, st.failures+i, since, now.Add(wait))
		res = stepResult{State: StepPending, LastError: safeMessage(err), RetryAt: now.Add(wait)}
		if op != opEnsure {
			res.State = StepCompensating
		}
		if permanent {
			res.State, res.RetryAt = StepFailed, time.Time{}
			if op == opEnsure && !st.Name.Required() {
				// Given up for this spec only: the next one (a
				// reschedule, a status the issue follows) tries again.
				res.Applied = ptr(b.SpecVersion)
			}
			if op != opEnsure || !st.Name.Required() {
				// The booking goes on without this step (a required
				// step's failure is recorded by refuse instead): say
				// so in its audit trail.
				res.Audit = &AuditRecord{BookingID: b.ID, At: now, Actor: SystemActor, Action: "step_failed",
					From: b.Status, To: b.Status, Reason: stepFailure(st.Name, b.op, IsPermanent(err))}
			}
		}
		s.log.Info("booking step failed", "booking_id", b.ID, "step", string(st.Name), "op", op,
			"attempt", st.Attempts+i, "permanent", permanent, "retry_in", wait, "error", safeMessage(err))
		if werr := s.repo.writeStep(context.WithoutCancel(ctx), b.ID, b.runner, st.Name, res, now); werr != nil {
			return werr
		}
		switch {
		case IsPermanent(err):
			return err
		case permanent:
			return Permanent(&gaveUpError{err})
		case i >= s.cfg.StepAttempts || wait > s.cfg.RetryMax:
			return RetryAfter(err, wait)
		}
		if serr := sleepCtx(ctx, wait); serr != nil {
			return err
		}
	}
}

// givesUp reports whether a step that failed failures times in a row since
// since, and would next be tried at next, has failed for good. A required
// step of ensure gives up once it has failed RequiredAttempts times and its
// next attempt would come more than RetryWindow after its first failure: a
// provider's short outage or rate limit delays the booking, only a long
// one fails it. An optional step gives up after OptionalAttempts failures.
// Withdrawing never gives up on a transient failure: it retries until the
// job does.
func (s *Service) givesUp(step StepName, op string, failures int, since, next time.Time) bool {
	switch {
	case op != opEnsure:
		return false
	case step.Required():
		return failures >= s.cfg.RequiredAttempts && next.Sub(since) > s.cfg.RetryWindow
	}
	return failures >= s.cfg.OptionalAttempts
}

// gaveUpError is a transient failure the saga stopped retrying: whether the
// last attempt took effect is unknown.
type gaveUpError struct{ err error }

func (e *gaveUpError) Error() string { return e.err.Error() }
func (e *gaveUpError) Unwrap() error { return e.err }

// backoff is exponential: base·2^(n-1), capped at max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// safeMessage is an error text fit for the booking view (bounded; the
// integration errors never carry secrets). It is valid UTF-8, cut at a
// character boundary: PostgreSQL refuses to store anything else, and the
// step's failure would never be recorded.
func safeMessage(err error) string {
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(msg) > 300 {
		n := 300
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	return msg
}

func (s *Service) meetingSpec(b Booking) MeetingSpec {
	return MeetingSpec{BookingID: b.ID, HostUser: b.ZoomUser, Topic: b.Topic, Agenda: b.Notes, Start: b.Start,
		Duration: b.Duration(), TimeZone: b.TimeZone}
}

func ptr[T any](v T) *T { return &v }

// ensureZoom creates or updates b's meeting. When the run took b over from
// a runner that did not release it, that runner's create may still take
// effect: the create looks for its meeting first (MeetingSpec.Uncertain).
func (s *Service) ensureZoom(ctx context.Context, b Booking, st Step) (stepResult, error) {
	spec := s.meetingSpec(b)
	if st.State == StepDone && st.Ref != "" {
		err := s.cfg.Meetings.UpdateMeeting(ctx, st.Ref, spec)
		if err == nil {
			return stepResult{State: StepDone, Applied: ptr(b.SpecVersion)}, nil
		}
		if !errors.Is(err, ErrGone) {
			return stepResult{}, err
		}
		// Deleted outside the gateway: create a new one.
	}
	spec.Uncertain = b.takenOver
	m, err := s.cfg.Meetings.CreateMeeting(ctx, spec)
	if err != nil {
		return stepResult{}, err
	}
	if b.SpecVersion > 1 {
		// A meeting created by an earlier, lost attempt may carry an older time.
		if err := s.cfg.Meetings.UpdateMeeting(ctx, m.ID, spec); err != nil {
			return stepResult{}, err
		}
	}
	return stepResult{State: StepDone, Ref: ptr(m.ID), Applied: ptr(b.SpecVersion), JoinURL: m.JoinURL}, nil
}

// event is the calendar event of b.
func (s *Service) event(b Booking) calendar.Event {
	var desc strings.Builder
	desc.WriteString("Mentoring session booked through Spotlight.\n")
	if b.JoinURL != "" {
		desc.WriteString("Join: " + b.JoinURL + "\n")
	}
	if b.Notes != "" {
		desc.WriteString("\n" + b.Notes + "\n")
	}
	desc.WriteString("\nBooking: " + s.BookingURL(b.ID))
	return calendar.Event{
		BookingID: b.ID, Summary: "Mentoring: " + b.Topic, Description: desc.String(), Location: b.JoinURL, URL: b.JoinURL,
		Start: b.Start, End: b.End, TimeZone: b.TimeZone,
	}
}

// ensureEvent creates or updates the booking's event in user's calendar.
// A user without a usable calendar skips the step for this spec; the step
// keeps its ref (nil Ref in the result), since an event created before may
// still exist, and the next spec looks again (see stepSettled).
func (s *Service) ensureEvent(ctx context.Context, b Booking, st Step, user string) (stepResult, error) {
	skipped := stepResult{State: StepSkipped, Applied: ptr(b.SpecVersion)}
	if s.cfg.Calendars == nil {
		return skipped, nil
	}
	cal, place, err := s.calendarFor(ctx, user)
	if errors.Is(err, ErrNotConnected) {
		return skipped, nil
	}
	if err != nil {
		return stepResult{}, err
	}
	if movedAway(st, place) {
		// The user chose another calendar since: the event moves there.
		if err := s.removeFromPlace(ctx, b, st, user); err != nil {
			return stepResult{}, err
		}
	}
	ev := s.event(b)
	if st.State == StepDone || st.State == StepSkipped && st.Ref != "" {
		// The event exists, or may (a step skipped after it was created).
		got, err := cal.UpdateEvent(ctx, ev)
		if err == nil {
			return stepResult{State: StepDone, Ref: ptr(got.ID), Applied: ptr(b.SpecVersion), Place: ptr(place)}, nil
		}
		if !errors.Is(err, calendar.ErrNotFound) {
			return stepResult{}, calErr(err)
		}
	}
	got, err := cal.CreateEvent(ctx, ev)
	if errors.Is(err, calendar.ErrCalendarNotFound) {
		// The user deleted the calendar: as if it were not connected
		// (its connection no longer offers it).
		return skipped, nil
	}
	if err != nil {
		return stepResult{}, calErr(err)
	}
	if !got.Start.Equal(ev.Start) || !got.End.Equal(ev.End) || got.URL != ev.URL {
		// An event of an earlier attempt with older content: bring it up to date.
		if got, err = cal.UpdateEvent(ctx, ev); err != nil {
			return stepResult{}, calErr(err)
		}
	}
	return stepResult{State: StepDone, Ref: ptr(got.ID), Applied: ptr(b.SpecVersion), Place: ptr(place)}, nil
}

// calendarFor returns the calendar user's booking events go to and its
// place ("" when Calendars cannot name it).
func (s *Service) calendarFor(ctx context.Context, user string) (calendar.Calendar, string, error) {
	if pc, ok := s.cfg.Calendars.(PlacedCalendars); ok {
		return pc.PlacedCalendarFor(ctx, user)
	}
	cal, err := s.cfg.Calendars.CalendarFor(ctx, user)
	return cal, "", err
}

// movedAway reports whether step st wrote its event to another calendar
// than place, the one user's booking events go to now.
func movedAway(st Step, place string) bool {
	return st.place != "" && place != "" && st.place != place
}

// removeFromPlace removes the booking's event from the calendar step st
// wrote it to, one user has switched away from (or disconnected): the old
// calendar must not keep the session at its old time, nor after a cancel.
// A calendar that can no longer be reached with the user's current
// credentials, or refuses for good, keeps the event (logged); a transient
// failure is returned, to be tried again.
func (s *Service) removeFromPlace(ctx context.Context, b Booking, st Step, user string) error {
	pc, ok := s.cfg.Calendars.(PlacedCalendars)
	if !ok || st.place == "" {
		return nil
	}
	cal, err := pc.CalendarAt(ctx, user, st.place)
	if err == nil {
		err = cal.DeleteEvent(ctx, b.ID)
	}
	switch {
	case err == nil, errors.Is(err, calendar.ErrNotFound), errors.Is(err, calendar.ErrCalendarNotFound):
		return nil
	case errors.Is(err, ErrNotConnected), IsPermanent(err):
		s.log.Warn("booking event left in a calendar the user switched away from", "booking_id", b.ID,
			"step", string(st.Name), "error", safeMessage(err))
		return nil
	}
	return fmt.Errorf("remove the event from the previous calendar: %w", err)
}

// calErr marks calendar conflicts (the booking's event id taken by a
// foreign event) permanent.
func calErr(err error) error {
	if errors.Is(err, calendar.ErrConflict) && !IsPermanent(err) {
		return Permanent(err)
	}
	return err
}

func (s *Service) issueSpec(b Booking) IssueSpec {
	return IssueSpec{BookingID: b.ID, MentorID: b.MentorID, CandidateID: b.CandidateID, Topic: b.Topic, Notes: b.Notes,
		Start: b.Start, End: b.End, TimeZone: b.TimeZone, JoinURL: b.JoinURL, BookingURL: s.BookingURL(b.ID), Status: b.Status}
}

func (s *Service) ensureIssue(ctx context.Context, b Booking, st Step) (stepResult, error) {
	spec := s.issueSpec(b)
	if st.State == StepDone && st.Ref != "" {
		err := s.cfg.Issues.UpdateIssue(ctx, st.Ref, spec)
		if err == nil {
			return stepResult{State: StepDone, Applied: ptr(b.SpecVersion)}, nil
		}
		if !errors.Is(err, ErrGone) {
			return stepResult{}, err
		}
	}
	spec.Uncertain = b.takenOver // as for the meeting (see ensureZoom)
	key, err := s.cfg.Issues.EnsureIssue(ctx, spec)
	if err != nil {
		return stepResult{}, err
	}
	if b.SpecVersion > 1 {
		if err := s.cfg.Issues.UpdateIssue(ctx, key, spec); err != nil {
			return stepResult{}, err
		}
	}
	return stepResult{State: StepDone, Ref: ptr(key), Applied: ptr(b.SpecVersion)}, nil
}

// remove withdraws one step's artefact: the meeting and events are deleted;
// the Jira issue follows a cancellation (moved to the cancel status) and is
// deleted by compensation.
func (s *Service) remove(ctx context.Context, b Booking, st Step) (stepResult, error) {
	done := stepResult{State: StepCompensated}
	switch st.Name {
	case StepZoom:
		return done, s.cfg.Meetings.DeleteMeeting(ctx, st.Ref, s.meetingSpec(b))
	case StepMentorCalendar, StepCandidateCalendar:
		user := b.MentorID
		if st.Name == StepCandidateCalendar {
			user = b.CandidateID
		}
		if s.cfg.Calendars == nil {
			return done, nil
		}
		cal, place, err := s.calendarFor(ctx, user)
		if errors.Is(err, ErrNotConnected) {
			// The calendar the event was written to may still be
			// reachable (one of a provider still connected, whose
			// calendar was replaced by another provider's since).
			return done, s.removeFromPlace(ctx, b, st, user)
		}
		if err != nil {
			return stepResult{}, err
		}
		if movedAway(st, place) {
			if err := s.removeFromPlace(ctx, b, st, user); err != nil {
				return stepResult{}, err
			}
		}
		if err := cal.DeleteEvent(ctx, b.ID); err != nil && !errors.Is(err, calendar.ErrNotFound) {
			return stepResult{}, err
		}
		return done, nil
	case StepJira:
		spec := s.issueSpec(b)
		if b.op == opCancel {
			spec.Status = StatusCancelled
			err := s.cfg.Issues.UpdateIssue(ctx, st.Ref, spec)
			if errors.Is(err, ErrGone) {
				err = nil
			}
			return done, err
		}
		return done, s.cfg.Issues.DeleteIssue(ctx, st.Ref, spec)
	}
	return done, nil
}

// Worker returns the River worker of the saga job; register it with the
// job runner.
func (s *Service) Worker() river.Worker[SagaArgs] { return &sagaWorker{s: s} }

type sagaWorker struct {
	river.WorkerDefaults[SagaArgs]
	s *Service
}

// Work runs the saga; a booking leased by another runner is looked at again later.
func (w *sagaWorker) Work(ctx context.Context, job *river.Job[SagaArgs]) error {
	// A runner holding the booking is usually about to finish: wait for it
	// a while before giving the job back to the queue.
	deadline := time.Now().Add(w.s.cfg.LeaseTTL)
	for {
		_, err := w.s.run(ctx, job.Args.BookingID)
		switch {
		case errors.Is(err, errLeased):
			if time.Now().Before(deadline) && sleepCtx(ctx, w.s.cfg.PollInterval) == nil {
				continue
			}
			return river.JobSnooze(w.s.cfg.LeaseTTL / 2)
		case errors.Is(err, ErrNotFound):
			return nil
		case retryDelay(err) > 0:
			// A step waits (Retry-After, an open circuit, backoff): sleep
			// until it may be tried, without spending one of the job's
			// attempts.
			w.s.log.Info("booking saga waits for a provider", "booking_id", job.Args.BookingID,
				"retry_in", retryDelay(err), "error", err.Error())
			return river.JobSnooze(retryDelay(err))
		}
		return err
	}
}

// NextRetry backs off exponentially from ten times RetryBase.
func (w *sagaWorker) NextRetry(job *river.Job[SagaArgs]) time.Time {
	return time.Now().Add(backoff(10*w.s.cfg.RetryBase, 30*w.s.cfg.RetryMax, job.Attempt))
}

// Timeout lets a job run as long as a run may.
func (w *sagaWorker) Timeout(job *river.Job[SagaArgs]) time.Duration {
	return w.s.cfg.RunTimeout + 10*time.Second
}

// SweepArgs is the periodic job that re-enqueues the saga of bookings left
// unfinished (their job gave up, or they were stuck behind an expired lease).
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "booking_sweep" }

// SweepInterval is how often the sweep runs (on the elected leader only,
// and once when the leader starts).
const SweepInterval = 30 * time.Second

// PeriodicSweep returns the periodic job that runs the sweep.
func PeriodicSweep() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(SweepInterval), func() (river.JobArgs, *river.InsertOpts) {
		return SweepArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// SweepWorker returns the worker of the sweep job.
func (s *Service) SweepWorker() river.Worker[SweepArgs] { return &sweepWorker{s: s} }

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	s *Service
}

// Work enqueues a saga job for every booking that should have settled a
// while ago and that no runner holds.
func (w *sweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	n, err := w.s.Sweep(ctx, w.s.now().Add(-SweepInterval))
	if n > 0 {
		w.s.log.Info("booking sweep re-enqueued unfinished sagas", "bookings", n)
	}
	if _, derr := w.s.repo.forgetIdem(ctx, w.s.now().Add(-IdempotencyKeyTTL)); derr != nil {
		err = errors.Join(err, derr)
	}
	return err
}

// IdempotencyKeyTTL is how long an Idempotency-Key of POST /v1/bookings is
// remembered; the sweep forgets older ones.
const IdempotencyKeyTTL = 24 * time.Hour

// sweepUniqueStates: a sweep adds no job while one it added earlier is
// still waiting or running, but may once that one finished.
var sweepUniqueStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled}

// Sweep enqueues the saga job of every unfinished booking last changed
// before olderThan and not held by a runner. It returns how many it enqueued.
func (s *Service) Sweep(ctx context.Context, olderThan time.Time) (int, error) {
	ids, err := s.repo.unfinished(ctx, s.now(), olderThan, 200)
	if err != nil {
		return 0, err
	}
	jobs := s.cfg.Jobs()
	if jobs == nil || len(ids) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		params = append(params, river.InsertManyParams{Args: SagaArgs{BookingID: id}, InsertOpts: &river.InsertOpts{
			MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: sweepUniqueStates}}})
	}
	added := 0
	err = s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
		res, err := jobs.InsertManyTx(ctx, tx, params)
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				added++
			}
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("booking: sweep: %w", err)
	}
	return added, nil
}
