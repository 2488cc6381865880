package booking

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spotlight/gateway/internal/store"
)

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// repo is the SQL of the booking area, on both dialects.
type repo struct {
	db *store.Store
}

func (r repo) q(query string) string { return r.db.Rebind(query) }

func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

// fromUSOrZero is fromUS with 0 read as the zero time.
func fromUSOrZero(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromUS(v)
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type hoursJSON struct {
	Weekday string `json:"weekday"`
	Start   string `json:"start"`
	End     string `json:"end"`
}

func (r repo) putSchedule(ctx context.Context, s Schedule) error {
	hs := make([]hoursJSON, 0, len(s.WorkingHours))
	for _, w := range s.WorkingHours {
		hs = append(hs, hoursJSON{WeekdayName(w.Weekday), FormatClock(w.StartMin), FormatClock(w.EndMin)})
	}
	hj, _ := json.Marshal(hs)
	_, err := r.db.DB().ExecContext(ctx, r.q(`INSERT INTO mentor_schedules
		(mentor_id, timezone, working_hours, slot_minutes, buffer_minutes, min_notice_minutes, max_advance_days, zoom_user, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (mentor_id) DO UPDATE SET timezone = excluded.timezone, working_hours = excluded.working_hours,
		slot_minutes = excluded.slot_minutes, buffer_minutes = excluded.buffer_minutes,
		min_notice_minutes = excluded.min_notice_minutes, max_advance_days = excluded.max_advance_days,
		zoom_user = excluded.zoom_user, updated_at = excluded.updated_at`),
		s.MentorID, s.TimeZone, string(hj), int(s.Slot/time.Minute), int(s.Buffer/time.Minute),
		int(s.MinNotice/time.Minute), int(s.MaxAdvance/(24*time.Hour)), s.ZoomUser, us(s.UpdatedAt))
	if err != nil {
		return fmt.Errorf("booking: store schedule: %w", err)
	}
	return nil
}

func (r repo) getSchedule(ctx context.Context, q querier, mentorID string) (Schedule, error) {
	var (
		s                             Schedule
		hj                            string
		slot, buffer, notice, advance int
		updated                       int64
	)
	err := q.QueryRowContext(ctx, r.q(`SELECT mentor_id, timezone, working_hours, slot_minutes, buffer_minutes,
		min_notice_minutes, max_advance_days, zoom_user, updated_at FROM mentor_schedules WHERE mentor_id = ?`), mentorID).
		Scan(&s.MentorID, &s.TimeZone, &hj, &slot, &buffer, &notice, &advance, &s.ZoomUser, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Schedule{}, ErrNoSchedule
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("booking: read schedule: %w", err)
	}
	var hs []hoursJSON
	if err := json.Unmarshal([]byte(hj), &hs); err != nil {
		return Schedule{}, fmt.Errorf("booking: decode working hours: %w", err)
	}
	for _, h := range hs {
		d, _ := ParseWeekday(h.Weekday)
		st, _ := ParseClock(h.Start)
		en, _ := ParseClock(h.End)
		s.WorkingHours = append(s.WorkingHours, WorkingHours{d, st, en})
	}
	s.Slot, s.Buffer = time.Duration(slot)*time.Minute, time.Duration(buffer)*time.Minute
	s.MinNotice, s.MaxAdvance = time.Duration(notice)*time.Minute, time.Duration(advance)*24*time.Hour
	s.UpdatedAt = fromUS(updated)
	return s, nil
}

const bookingCols = `id, mentor_id, candidate_id, start_us, end_us, block_end_us, timezone, topic, notes, zoom_user,
	status, op, join_url, failure_reason, version, spec_version, created_by, created_at, updated_at,
	confirmed_start_us, confirmed_end_us, confirmed_timezone, refused_spec, refused_reason`

func scanBooking(sc interface{ Scan(...any) error }) (Booking, error) {
	var (
		b                                  Booking
		start, end, blockEnd, created, upd int64
		status                             string
		joinURL, failure                   sql.NullString
		cStart, cEnd                       sql.NullInt64
		cTZ, refused                       sql.NullString
	)
	err := sc.Scan(&b.ID, &b.MentorID, &b.CandidateID, &start, &end, &blockEnd, &b.TimeZone, &b.Topic, &b.Notes,
		&b.ZoomUser, &status, &b.op, &joinURL, &failure, &b.Version, &b.SpecVersion, &b.CreatedBy, &created, &upd,
		&cStart, &cEnd, &cTZ, &b.refusedSpec, &refused)
	if err != nil {
		return Booking{}, err
	}
	if cStart.Valid && cEnd.Valid && cTZ.Valid {
		b.confirmed = &timing{Start: fromUS(cStart.Int64), End: fromUS(cEnd.Int64), TimeZone: cTZ.String}
	}
	b.RescheduleRefused = refused.String
	b.Start, b.End = fromUS(start), fromUS(end)
	b.Buffer = time.Duration(blockEnd-end) * time.Microsecond
	b.Status = Status(status)
	b.JoinURL, b.FailureReason = joinURL.String, failure.String
	b.CreatedAt, b.UpdatedAt = fromUS(created), fromUS(upd)
	return b, nil
}

// get reads a booking with its steps in one statement, so the booking row
// and its steps come from one snapshot (a saga run decides on both).
func (r repo) get(ctx context.Context, q querier, id string) (Booking, error) {
	rows, err := q.QueryContext(ctx, r.q(`SELECT `+qualifiedBookingCols+`, s.name, s.state, s.provider_ref, s.last_error,
		s.attempts, s.applied_spec, s.updated_at, s.failures, s.failing_since_us, s.retry_at_us, s.calendar_place FROM bookings b LEFT JOIN booking_steps s ON s.booking_id = b.id WHERE b.id = ?`), id)
	if err != nil {
		return Booking{}, fmt.Errorf("booking: read: %w", err)
	}
	defer rows.Close()
	var (
		b     Booking
		found bool
		steps []Step
	)
	for rows.Next() {
		var (
			name, state, ref, lastErr, place sql.NullString
			attempts, applied, upd, failures sql.NullInt64
			failingSince, retryAt            sql.NullInt64
		)
		bk, err := scanBooking(rowScanner{rows, []any{&name, &state, &ref, &lastErr, &attempts, &applied, &upd, &failures, &failingSince, &retryAt, &place}})
		if err != nil {
			return Booking{}, fmt.Errorf("booking: read: %w", err)
		}
		b, found = bk, true
		if name.Valid {
			steps = append(steps, Step{Name: StepName(name.String), State: StepState(state.String), Ref: ref.String,
				LastError: lastErr.String, Attempts: int(attempts.Int64), AppliedSpec: applied.Int64, UpdatedAt: fromUS(upd.Int64),
				failures: int(failures.Int64), failingSince: fromUSOrZero(failingSince.Int64), retryAt: fromUSOrZero(retryAt.Int64),
				place: place.String})
		}
	}
	if err := rows.Err(); err != nil {
		return Booking{}, fmt.Errorf("booking: read: %w", err)
	}
	if !found {
		return Booking{}, ErrNotFound
	}
	b.Steps = orderSteps(steps)
	return b, nil
}

// rowScanner scans the booking columns followed by extra destinations.
type rowScanner struct {
	rows  *sql.Rows
	extra []any
}

func (r rowScanner) Scan(dest ...any) error { return r.rows.Scan(append(dest, r.extra...)...) }

var qualifiedBookingCols = "b." + strings.ReplaceAll(strings.Join(strings.Fields(bookingCols), " "), ", ", ", b.")

// orderSteps sorts steps in display order.
func orderSteps(ss []Step) []Step {
	ordered := make([]Step, 0, len(ss))
	for _, n := range Steps {
		for _, s := range ss {
			if s.Name == n {
				ordered = append(ordered, s)
			}
		}
	}
	return ordered
}

func (r repo) steps(ctx context.Context, q querier, ids []string) (map[string][]Step, error) {
	out := map[string][]Step{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := q.QueryContext(ctx, r.q(`SELECT booking_id, name, state, provider_ref, last_error, attempts, applied_spec, updated_at
		FROM booking_steps WHERE booking_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("booking: read steps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, name, state string
			ref, lastErr    sql.NullString
			s               Step
			upd             int64
		)
		if err := rows.Scan(&id, &name, &state, &ref, &lastErr, &s.Attempts, &s.AppliedSpec, &upd); err != nil {
			return nil, fmt.Errorf("booking: read steps: %w", err)
		}
		s.Name, s.State, s.Ref, s.LastError, s.UpdatedAt = StepName(name), StepState(state), ref.String, lastErr.String, fromUS(upd)
		out[id] = append(out[id], s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("booking: read steps: %w", err)
	}
	for id, ss := range out {
		out[id] = orderSteps(ss)
	}
	return out, nil
}

// overlapping returns whether an active booking of mentor other than except
// overlaps [start, blockEnd).
//
// Inside a write transaction it first serialises the mentor's writers: on
// PostgreSQL with a transaction-scoped advisory lock on the mentor (without
// it, two transactions inserting overlapping rows wait on each other under
// the exclusion constraint and one dies of a deadlock instead of a clean
// overlap); SQLite's immediate write transactions are exclusive already.
func (r repo) overlapping(ctx context.Context, q querier, mentorID, except string, start, blockEnd time.Time) (bool, error) {
	if r.db.Dialect() == store.Postgres {
		if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('booking-mentor:' || $1))`, mentorID); err != nil {
			return false, fmt.Errorf("booking: lock mentor: %w", err)
		}
	}
	var n int
	err := q.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM bookings WHERE mentor_id = ? AND active AND id <> ?
		AND start_us < ? AND block_end_us > ?`), mentorID, except, us(blockEnd), us(start)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("booking: overlap check: %w", err)
	}
	return n > 0, nil
}

// candidateOverlapping returns whether an active booking of candidate
// other than except overlaps the session [start, end): a candidate cannot
// attend two sessions at once. The mentor's buffer does not count (it is
// the mentor's, not the candidate's), so back-to-back sessions are fine.
//
// Inside a write transaction on PostgreSQL it first takes a
// transaction-scoped advisory lock on the candidate, so two bookings of the
// candidate with different mentors (which do not share the mentor's lock)
// are checked and written one after the other. Callers take it after the
// mentor's lock, always in that order (see slotFree), so that two writers
// never wait on each other's locks.
func (r repo) candidateOverlapping(ctx context.Context, q querier, candidateID, except string, start, end time.Time) (bool, error) {
	if r.db.Dialect() == store.Postgres {
		if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('booking-candidate:' || $1))`, candidateID); err != nil {
			return false, fmt.Errorf("booking: lock candidate: %w", err)
		}
	}
	var n int
	err := q.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM bookings WHERE candidate_id = ? AND active AND id <> ?
		AND start_us < ? AND end_us > ?`), candidateID, except, us(end), us(start)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("booking: candidate overlap check: %w", err)
	}
	return n > 0, nil
}

// slotFree checks, inside write transaction tx, that booking id of mentor
// and candidate may hold [start, end) blocked until blockEnd: ErrOverlap
// when it overlaps another active booking of the mentor (blocked times,
// buffers included), ErrCandidateOverlap when the session overlaps another
// active booking of the candidate. It takes the mentor's lock before the
// candidate's (on PostgreSQL), the one order every writer uses.
func (r repo) slotFree(ctx context.Context, tx *sql.Tx, id, mentorID, candidateID string, start, end, blockEnd time.Time) error {
	taken, err := r.overlapping(ctx, tx, mentorID, id, start, blockEnd)
	if err != nil {
		return err
	}
	if taken {
		return ErrOverlap
	}
	taken, err = r.candidateOverlapping(ctx, tx, candidateID, id, start, end)
	if err != nil {
		return err
	}
	if taken {
		return ErrCandidateOverlap
	}
	return nil
}

// activeBlocks returns the blocked intervals of the mentor's active bookings
// that overlap [from, to), except one booking.
func (r repo) activeBlocks(ctx context.Context, mentorID, except string, from, to time.Time) ([]Busy, error) {
	return r.activeIntervals(ctx, "mentor_id", "block_end_us", mentorID, except, from, to)
}

// candidateSessions returns the session times of the candidate's active
// bookings that overlap [from, to).
func (r repo) candidateSessions(ctx context.Context, candidateID string, from, to time.Time) ([]Busy, error) {
	return r.activeIntervals(ctx, "candidate_id", "end_us", candidateID, "", from, to)
}

// activeIntervals returns [start_us, endCol) of the active bookings whose
// column who is id, other than except, overlapping [from, to). who and
// endCol are column names of this package, never input.
func (r repo) activeIntervals(ctx context.Context, who, endCol, id, except string, from, to time.Time) ([]Busy, error) {
	rows, err := r.db.DB().QueryContext(ctx, r.q(`SELECT start_us, `+endCol+` FROM bookings WHERE `+who+` = ? AND active
		AND id <> ? AND start_us < ? AND `+endCol+` > ?`), id, except, us(to), us(from))
	if err != nil {
		return nil, fmt.Errorf("booking: read bookings: %w", err)
	}
	defer rows.Close()
	var out []Busy
	for rows.Next() {
		var s, e int64
		if err := rows.Scan(&s, &e); err != nil {
			return nil, err
		}
		out = append(out, Busy{fromUS(s), fromUS(e)})
	}
	return out, rows.Err()
}

// isOverlapViolation reports the PostgreSQL exclusion constraint.
func isOverlapViolation(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "SQLSTATE 23P01") || strings.Contains(err.Error(), "bookings_no_overlap"))
}

func (r repo) insert(ctx context.Context, tx *sql.Tx, b Booking) error {
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO bookings (`+bookingCols+`, active)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0, NULL, ?)`),
		b.ID, b.MentorID, b.CandidateID, us(b.Start), us(b.End), us(b.End.Add(b.Buffer)), b.TimeZone, b.Topic, b.Notes,
		b.ZoomUser, string(b.Status), b.op, nullStr(b.JoinURL), nullStr(b.FailureReason), b.Version, b.SpecVersion,
		b.CreatedBy, us(b.CreatedAt), us(b.UpdatedAt), b.Status.Active())
	if isOverlapViolation(err) {
		return ErrOverlap
	}
	if err != nil {
		return fmt.Errorf("booking: insert: %w", err)
	}
	for _, s := range b.Steps {
		if _, err := tx.ExecContext(ctx, r.q(`INSERT INTO booking_steps (booking_id, name, state, attempts, applied_spec, updated_at)
			VALUES (?, ?, ?, 0, 0, ?)`), b.ID, string(s.Name), string(s.State), us(b.CreatedAt)); err != nil {
			return fmt.Errorf("booking: insert step: %w", err)
		}
	}
	return nil
}

// bookingUpdate is a change of the booking row, applied when its version
// still matches.
type bookingUpdate struct {
	Status        Status
	Op            string
	Start, End    time.Time
	Buffer        time.Duration
	TimeZone      string
	SpecVersion   int64
	FailureReason string
	// Confirmed is the restore point (nil clears it); RefusedSpec and
	// RefusedReason the last refused change.
	Confirmed     *timing
	RefusedSpec   int64
	RefusedReason string
	At            time.Time
}

// update writes u over booking b (whose Version must be current) and bumps
// the version. It reports false when the version moved on.
func (r repo) update(ctx context.Context, tx *sql.Tx, b Booking, u bookingUpdate) (bool, error) {
	var cStart, cEnd, cTZ any
	if c := u.Confirmed; c != nil {
		cStart, cEnd, cTZ = us(c.Start), us(c.End), c.TimeZone
	}
	res, err := tx.ExecContext(ctx, r.q(`UPDATE bookings SET status = ?, op = ?, active = ?, start_us = ?, end_us = ?,
		block_end_us = ?, timezone = ?, spec_version = ?, failure_reason = ?, confirmed_start_us = ?, confirmed_end_us = ?,
		confirmed_timezone = ?, refused_spec = ?, refused_reason = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND version = ?`),
		string(u.Status), u.Op, u.Status.Active() && u.Op != opCompensate, us(u.Start), us(u.End), us(u.End.Add(u.Buffer)),
		u.TimeZone, u.SpecVersion, nullStr(u.FailureReason), cStart, cEnd, cTZ, u.RefusedSpec, nullStr(u.RefusedReason),
		us(u.At), b.ID, b.Version)
	if isOverlapViolation(err) {
		return false, ErrOverlap
	}
	if err != nil {
		return false, fmt.Errorf("booking: update: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("booking: update: %w", err)
	}
	return n == 1, nil
}

// apply is update that reports a version that moved on as ErrStale.
func (r repo) apply(ctx context.Context, tx *sql.Tx, b Booking, u bookingUpdate) error {
	ok, err := r.update(ctx, tx, b, u)
	if err == nil && !ok {
		err = ErrStale
	}
	return err
}

// updateOf returns the bookingUpdate that keeps b as it is.
func updateOf(b Booking, at time.Time) bookingUpdate {
	return bookingUpdate{Status: b.Status, Op: b.op, Start: b.Start, End: b.End, Buffer: b.Buffer, TimeZone: b.TimeZone,
		SpecVersion: b.SpecVersion, FailureReason: b.FailureReason, Confirmed: b.confirmed, RefusedSpec: b.refusedSpec,
		RefusedReason: b.RescheduleRefused, At: at}
}

// stepResult is the outcome of one step attempt.
type stepResult struct {
	State     StepState
	Ref       *string // nil keeps the stored ref
	LastError string
	Applied   *int64 // nil keeps the stored applied spec
	// Place is, for a calendar step, the calendar the event was written
	// to; nil keeps the stored place.
	Place   *string
	JoinURL string // zoom: the booking's join URL
	// RetryAt is when a failed step may be tried next (zero: at once).
	RetryAt time.Time
	// Audit, when set, is recorded with the step's outcome.
	Audit *AuditRecord
}

// writeStep records a step's outcome. With owner set, only while owner
// holds the booking's lease: a run that lost it (another runner took the
// booking over and may have recorded its own outcome) gets errLeaseLost and
// records nothing.
func (r repo) writeStep(ctx context.Context, bookingID, owner string, name StepName, res stepResult, at time.Time) error {
	return r.db.InTx(ctx, func(tx *sql.Tx) error {
		if res.JoinURL != "" && r.db.Dialect() == store.Postgres {
			// The join URL is written to the booking row (writeJoinURL):
			// lock it first, before the step's row, as every writer of
			// the booking and its steps does (a cancel, a refusal):
			// the other order deadlocks against a cancel committing now.
			// writeJoinURL then reads the booking's spec as it is, not
			// as it was before a reschedule committed meanwhile.
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM bookings WHERE id = $1 FOR NO KEY UPDATE`, bookingID); err != nil {
				return fmt.Errorf("booking: lock booking: %w", err)
			}
		}
		set := `state = ?, last_error = ?, attempts = attempts + 1, updated_at = ?`
		args := []any{string(res.State), nullStr(res.LastError), us(at)}
		switch res.State {
		case StepPending, StepCompensating, StepFailed:
			set += `, failures = failures + 1, failing_since_us = CASE WHEN failing_since_us = 0 THEN ? ELSE failing_since_us END, retry_at_us = ?`
			retry := int64(0)
			if !res.RetryAt.IsZero() {
				retry = us(res.RetryAt)
			}
			args = append(args, us(at), retry)
		default:
			set += `, failures = 0, failing_since_us = 0, retry_at_us = 0`
		}
		if res.Ref != nil {
			set += `, provider_ref = ?`
			args = append(args, nullStr(*res.Ref))
		}
		if res.Place != nil {
			set += `, calendar_place = ?`
			args = append(args, nullStr(*res.Place))
		}
		if res.Applied != nil {
			set += `, applied_spec = ?`
			args = append(args, *res.Applied)
		}
		where := ` WHERE booking_id = ? AND name = ?`
		args = append(args, bookingID, string(name))
		if owner != "" {
			where += ` AND EXISTS (SELECT 1 FROM bookings WHERE id = ? AND lease_owner = ?)`
			args = append(args, bookingID, owner)
		}
		done, err := tx.ExecContext(ctx, r.q(`UPDATE booking_steps SET `+set+where), args...)
		if err != nil {
			return fmt.Errorf("booking: write step: %w", err)
		}
		if owner != "" {
			if n, err := done.RowsAffected(); err != nil {
				return fmt.Errorf("booking: write step: %w", err)
			} else if n == 0 {
				return errLeaseLost
			}
		}
		if res.Audit != nil {
			if err := r.audit(ctx, tx, *res.Audit); err != nil {
				return err
			}
		}
		if res.JoinURL != "" {
			return r.writeJoinURL(ctx, tx, bookingID, name, res, at)
		}
		return nil
	})
}

// writeJoinURL records the join URL of the meeting step name (the zoom step)
// created. When it replaces another join URL (the meeting was deleted
// outside the gateway and a new one created), the calendar events and the
// Jira issue still show the old one: the booking gets a new spec, which the
// step that created the meeting already reflects when it applied the
// current spec, and the other steps are brought up to it by the saga. The
// booking's version moves on (the join URL is part of it), and the audit
// records the change.
func (r repo) writeJoinURL(ctx context.Context, tx *sql.Tx, bookingID string, name StepName, res stepResult, at time.Time) error {
	var (
		old    sql.NullString
		spec   int64
		st, op string
	)
	err := tx.QueryRowContext(ctx, r.q(`SELECT join_url, spec_version, status, op FROM bookings WHERE id = ?`), bookingID).Scan(&old, &spec, &st, &op)
	if err != nil {
		return fmt.Errorf("booking: read join url: %w", err)
	}
	if old.String == "" || old.String == res.JoinURL || op != opEnsure {
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE bookings SET join_url = ?, updated_at = ? WHERE id = ?`), res.JoinURL, us(at), bookingID); err != nil {
			return fmt.Errorf("booking: write join url: %w", err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, r.q(`UPDATE bookings SET join_url = ?, spec_version = ?, version = version + 1, updated_at = ? WHERE id = ?`),
		res.JoinURL, spec+1, us(at), bookingID); err != nil {
		return fmt.Errorf("booking: write join url: %w", err)
	}
	if res.Applied != nil && *res.Applied == spec {
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE booking_steps SET applied_spec = ? WHERE booking_id = ? AND name = ?`),
			spec+1, bookingID, string(name)); err != nil {
			return fmt.Errorf("booking: write step: %w", err)
		}
	}
	return r.audit(ctx, tx, AuditRecord{BookingID: bookingID, At: at, Actor: SystemActor, Action: "meeting_replaced",
		From: Status(st), To: Status(st), Reason: "The Zoom meeting was gone, so the session has a new one; its join link replaces the old one in the calendar events and the Jira issue.",
		Changes: map[string]Change{"join_url": {old.String, res.JoinURL}}})
}

// setStepState changes a step's state without counting an attempt.
func (r repo) setStepState(ctx context.Context, q querier, bookingID string, name StepName, st StepState, at time.Time) error {
	_, err := q.ExecContext(ctx, r.q(`UPDATE booking_steps SET state = ?, updated_at = ? WHERE booking_id = ? AND name = ?`),
		string(st), us(at), bookingID, string(name))
	if err != nil {
		return fmt.Errorf("booking: write step: %w", err)
	}
	return nil
}

// markApplied records that step name reflects spec without a provider
// call (its artefact already has that content), clearing its failures.
func (r repo) markApplied(ctx context.Context, q querier, bookingID string, name StepName, spec int64, at time.Time) error {
	_, err := q.ExecContext(ctx, r.q(`UPDATE booking_steps SET state = ?, applied_spec = ?, failures = 0, failing_since_us = 0, retry_at_us = 0, last_error = NULL, updated_at = ?
		WHERE booking_id = ? AND name = ?`), string(StepDone), spec, us(at), bookingID, string(name))
	if err != nil {
		return fmt.Errorf("booking: write step: %w", err)
	}
	return nil
}

// retryStep makes step name, which has an artefact whose content is
// unknown, done at its stored applied spec with its failures cleared, so
// that the saga applies the booking's current spec to it afresh.
func (r repo) retryStep(ctx context.Context, q querier, bookingID string, name StepName, at time.Time) error {
	_, err := q.ExecContext(ctx, r.q(`UPDATE booking_steps SET state = ?, failures = 0, failing_since_us = 0, retry_at_us = 0, updated_at = ?
		WHERE booking_id = ? AND name = ?`), string(StepDone), us(at), bookingID, string(name))
	if err != nil {
		return fmt.Errorf("booking: write step: %w", err)
	}
	return nil
}

// clearFailures forgets the failures of step name while it is failed (an
// optional step that gave up on an older spec), so that the current spec is
// tried with a budget of its own.
func (r repo) clearFailures(ctx context.Context, bookingID string, name StepName) error {
	_, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE booking_steps SET failures = 0, failing_since_us = 0, retry_at_us = 0
		WHERE booking_id = ? AND name = ? AND state = ?`), bookingID, string(name), string(StepFailed))
	if err != nil {
		return fmt.Errorf("booking: write step: %w", err)
	}
	return nil
}

// keepSpec moves the steps other than except that reflect spec from to spec
// to: after a change only except must act on (a status its issue follows).
// A run still working with the old spec writes from, which stays stale, so
// the change is never lost.
func (r repo) keepSpec(ctx context.Context, q querier, bookingID string, except StepName, from, to int64) error {
	_, err := q.ExecContext(ctx, r.q(`UPDATE booking_steps SET applied_spec = ? WHERE booking_id = ? AND name <> ? AND applied_spec = ?`),
		to, bookingID, string(except), from)
	if err != nil {
		return fmt.Errorf("booking: write steps: %w", err)
	}
	return nil
}

func (r repo) audit(ctx context.Context, q querier, a AuditRecord) error {
	var changes any
	if len(a.Changes) > 0 {
		cj, _ := json.Marshal(a.Changes)
		changes = string(cj)
	}
	_, err := q.ExecContext(ctx, r.q(`INSERT INTO booking_audit (id, booking_id, at_us, actor, action, from_status, to_status, reason, changes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), newID(), a.BookingID, us(a.At), a.Actor, a.Action, nullStr(string(a.From)),
		string(a.To), nullStr(a.Reason), changes)
	if err != nil {
		return fmt.Errorf("booking: audit: %w", err)
	}
	return nil
}

func (r repo) listAudit(ctx context.Context, bookingID string, after int64, limit int) ([]AuditRecord, error) {
	rows, err := r.db.DB().QueryContext(ctx, r.q(`SELECT seq, id, booking_id, at_us, actor, action, from_status, to_status, reason, changes
		FROM booking_audit WHERE booking_id = ? AND seq > ? ORDER BY seq LIMIT ?`), bookingID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("booking: read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var (
			a                     AuditRecord
			at                    int64
			from, reason, changes sql.NullString
			to                    string
		)
		if err := rows.Scan(&a.Seq, &a.ID, &a.BookingID, &at, &a.Actor, &a.Action, &from, &to, &reason, &changes); err != nil {
			return nil, fmt.Errorf("booking: read audit: %w", err)
		}
		a.At, a.From, a.To, a.Reason = fromUS(at), Status(from.String), Status(to), reason.String
		if changes.Valid {
			_ = json.Unmarshal([]byte(changes.String), &a.Changes)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// acquire takes the booking's lease for owner until until. It reports false
// when another owner holds an unexpired lease.
func (r repo) acquire(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	res, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE bookings SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND (lease_until < ? OR lease_owner = ?)`), owner, us(until), id, us(now), owner)
	if err != nil {
		return false, fmt.Errorf("booking: lease: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// renew extends owner's lease on the booking until until. It reports false
// when owner no longer holds it: another runner took it, even one that has
// released it since (a free lease is not taken back: the run that lost it
// must not record what it was doing over what the other recorded).
func (r repo) renew(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	res, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE bookings SET lease_until = ? WHERE id = ? AND lease_owner = ?`), us(until), id, owner)
	if err != nil {
		return false, fmt.Errorf("booking: lease: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// take takes the booking's lease for a new run by owner until until. held
// reports whether it did; tookOver whether the lease it took had expired
// without being released: its runner crashed, was cut short or lost it,
// and provider calls it made may still take effect. A free lease costs
// one statement; only a held or expired one a second.
func (r repo) take(ctx context.Context, id, owner string, now, until time.Time) (held, tookOver bool, err error) {
	for _, cond := range []string{`lease_until = 0`, `lease_until < ?`} {
		args := []any{owner, us(until), id}
		if cond != `lease_until = 0` {
			args = append(args, us(now))
		}
		res, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE bookings SET lease_owner = ?, lease_until = ? WHERE id = ? AND `+cond), args...)
		if err != nil {
			return false, false, fmt.Errorf("booking: lease: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, false, fmt.Errorf("booking: lease: %w", err)
		}
		if n == 1 {
			return true, cond != `lease_until = 0`, nil
		}
	}
	return false, false, nil
}

func (r repo) release(ctx context.Context, id, owner string) error {
	_, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE bookings SET lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ?`), id, owner)
	return err
}

// idempotency record of POST /v1/bookings or of a reschedule
// (PATCH /v1/bookings/{id}).
type idemRecord struct {
	Hash      string
	BookingID string
	// Spec is the booking spec a reschedule wrote (0 for a creation).
	Spec     int64
	Status   int
	Response []byte
}

func (r repo) getIdem(ctx context.Context, q querier, caller, key string) (idemRecord, bool, error) {
	var (
		rec  idemRecord
		resp sql.NullString
	)
	err := q.QueryRowContext(ctx, r.q(`SELECT request_hash, booking_id, spec_version, response_status, response FROM booking_idempotency
		WHERE caller = ? AND key = ?`), caller, key).Scan(&rec.Hash, &rec.BookingID, &rec.Spec, &rec.Status, &resp)
	if errors.Is(err, sql.ErrNoRows) {
		return idemRecord{}, false, nil
	}
	if err != nil {
		return idemRecord{}, false, fmt.Errorf("booking: read idempotency key: %w", err)
	}
	if resp.Valid {
		rec.Response = []byte(resp.String)
	}
	return rec, true, nil
}

// putIdem records key for the request whose body hashes to hash, which
// created booking bookingID (spec 0) or rescheduled it to spec.
func (r repo) putIdem(ctx context.Context, tx *sql.Tx, caller, key, hash, bookingID string, spec int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO booking_idempotency (caller, key, request_hash, booking_id, spec_version, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`), caller, key, hash, bookingID, spec, us(at))
	return err
}

func (r repo) setIdemResponse(ctx context.Context, caller, key string, status int, resp []byte) error {
	_, err := r.db.DB().ExecContext(ctx, r.q(`UPDATE booking_idempotency SET response_status = ?, response = ?
		WHERE caller = ? AND key = ? AND response_status = 0`), status, string(resp), caller, key)
	if err != nil {
		return fmt.Errorf("booking: store idempotent response: %w", err)
	}
	return nil
}

// forgetIdem deletes idempotency records created before before.
func (r repo) forgetIdem(ctx context.Context, before time.Time) (int64, error) {
	res, err := r.db.DB().ExecContext(ctx, r.q(`DELETE FROM booking_idempotency WHERE created_at < ?`), us(before))
	if err != nil {
		return 0, fmt.Errorf("booking: forget idempotency keys: %w", err)
	}
	return res.RowsAffected()
}

// ListFilter selects bookings.
type ListFilter struct {
	// Viewer limits to bookings where the user is mentor or candidate ("" = all).
	Viewer string
	// AsMentor / AsCandidate limit to bookings where Viewer has that role.
	AsMentor, AsCandidate string
	Status                Status
	// From: bookings that end after it; To: that start before it (nil:
	// no bound; the zero time is a bound like any other).
	From, To *time.Time
	// After continues after this (start, id) position.
	AfterStart time.Time
	AfterID    string
	Limit      int
}

func (r repo) list(ctx context.Context, f ListFilter) ([]Booking, error) {
	var (
		where []string
		args  []any
	)
	if f.Viewer != "" {
		where = append(where, `(mentor_id = ? OR candidate_id = ?)`)
		args = append(args, f.Viewer, f.Viewer)
	}
	if f.AsMentor != "" {
		where = append(where, `mentor_id = ?`)
		args = append(args, f.AsMentor)
	}
	if f.AsCandidate != "" {
		where = append(where, `candidate_id = ?`)
		args = append(args, f.AsCandidate)
	}
	if f.Status != "" {
		where = append(where, `status = ?`)
		args = append(args, string(f.Status))
	}
	if f.From != nil {
		where = append(where, `end_us > ?`)
		args = append(args, us(*f.From))
	}
	if f.To != nil {
		where = append(where, `start_us < ?`)
		args = append(args, us(*f.To))
	}
	if f.AfterID != "" {
		where = append(where, `(start_us < ? OR (start_us = ? AND id < ?))`)
		args = append(args, us(f.AfterStart), us(f.AfterStart), f.AfterID)
	}
	query := `SELECT ` + bookingCols + ` FROM bookings`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY start_us DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := r.db.DB().QueryContext(ctx, r.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("booking: list: %w", err)
	}
	var out []Booking
	var ids []string
	for rows.Next() {
		b, err := scanBooking(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("booking: list: %w", err)
		}
		out = append(out, b)
		ids = append(ids, b.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("booking: list: %w", err)
	}
	steps, err := r.steps(ctx, r.db.DB(), ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Steps = steps[out[i].ID]
	}
	return out, nil
}

// unfinished returns bookings whose saga should have settled: a transient
// status, or compensation not yet done, last changed before olderThan and
// not leased at now.
func (r repo) unfinished(ctx context.Context, now, olderThan time.Time, limit int) ([]string, error) {
	rows, err := r.db.DB().QueryContext(ctx, r.q(`SELECT id FROM bookings WHERE lease_until < ? AND updated_at < ?
		AND (status IN ('pending', 'rescheduling', 'cancelling') OR (op = 'compensate' AND status <> 'failed'))
		ORDER BY updated_at LIMIT ?`), us(now), us(olderThan), limit)
	if err != nil {
		return nil, fmt.Errorf("booking: find unfinished: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// findByStepRef returns the id of the booking whose step has ref.
// findManyByStepRef maps each of refs to the booking whose step name carries
// it (the latest updated when several do, as findByStepRef); refs without a
// booking are left out. One query per 500 refs.
func (r repo) findManyByStepRef(ctx context.Context, name StepName, refs []string) (map[string]string, error) {
	type hit struct {
		booking string
		updated int64
	}
	latest := map[string]hit{}
	for start := 0; start < len(refs); start += 500 {
		chunk := refs[start:min(start+500, len(refs))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, string(name))
		for _, ref := range chunk {
			args = append(args, ref)
		}
		rows, err := r.db.DB().QueryContext(ctx, r.q(`SELECT provider_ref, booking_id, updated_at FROM booking_steps
			WHERE name = ? AND provider_ref IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("booking: find many: %w", err)
		}
		for rows.Next() {
			var ref, id string
			var updated int64
			if err := rows.Scan(&ref, &id, &updated); err != nil {
				rows.Close()
				return nil, fmt.Errorf("booking: find many: %w", err)
			}
			if h, ok := latest[ref]; !ok || updated > h.updated {
				latest[ref] = hit{id, updated}
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("booking: find many: %w", err)
		}
	}
	out := make(map[string]string, len(latest))
	for ref, h := range latest {
		out[ref] = h.booking
	}
	return out, nil
}

// placedBy returns the refs of the done steps name of mentorID's bookings
// in one of statuses whose calendar place is place, ordered by booking id.
func (r repo) placedBy(ctx context.Context, mentorID string, name StepName, place string, statuses []Status) ([]PlacedEvent, error) {
	args := []any{mentorID, string(name), string(StepDone), place}
	ph := make([]string, len(statuses))
	for i, st := range statuses {
		ph[i] = "?"
		args = append(args, string(st))
	}
	rows, err := r.db.DB().QueryContext(ctx, r.q(`SELECT s.booking_id, s.provider_ref FROM booking_steps s
		JOIN bookings b ON b.id = s.booking_id
		WHERE b.mentor_id = ? AND s.name = ? AND s.state = ? AND s.calendar_place = ? AND s.provider_ref IS NOT NULL
		AND s.provider_ref <> '' AND b.status IN (`+strings.Join(ph, ", ")+`) ORDER BY s.booking_id`), args...)
	if err != nil {
		return nil, fmt.Errorf("booking: list placed events: %w", err)
	}
	defer rows.Close()
	var out []PlacedEvent
	for rows.Next() {
		var pe PlacedEvent
		if err := rows.Scan(&pe.BookingID, &pe.EventID); err != nil {
			return nil, fmt.Errorf("booking: list placed events: %w", err)
		}
		out = append(out, pe)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("booking: list placed events: %w", err)
	}
	return out, nil
}

func (r repo) findByStepRef(ctx context.Context, names []StepName, ref string) (string, error) {
	args := []any{ref}
	ph := make([]string, len(names))
	for i, n := range names {
		ph[i] = "?"
		args = append(args, string(n))
	}
	var id string
	err := r.db.DB().QueryRowContext(ctx, r.q(`SELECT booking_id FROM booking_steps WHERE provider_ref = ? AND name IN (`+
		strings.Join(ph, ", ")+`) ORDER BY updated_at DESC LIMIT 1`), args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("booking: find: %w", err)
	}
	return id, nil
}
