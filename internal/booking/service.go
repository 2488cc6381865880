package booking

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
)

// Config configures a Service. Zero durations take the defaults named.
type Config struct {
	// Store is the database. Required.
	Store *store.Store
	// Jobs returns the job runner (it is created after the workers are
	// registered, so it is read when needed). Required before the first write.
	Jobs func() *store.Jobs
	// Meetings creates Zoom meetings. Required.
	Meetings Meetings
	// Issues keeps Jira issues; nil skips the jira step.
	Issues Issues
	// Calendars gives users' calendars; nil skips both calendar steps.
	Calendars Calendars
	// PublicURL is the gateway's external base URL, for booking links.
	PublicURL string
	// SyncTimeout is how long a request waits for the required steps (default 8s).
	SyncTimeout time.Duration
	// RunTimeout bounds one run of a booking's saga (default 60s).
	RunTimeout time.Duration
	// LeaseTTL is how long a runner's claim on a booking lasts without
	// renewal (default 15s); a running saga renews it every LeaseTTL/3, so
	// after a crash another runner takes over within LeaseTTL. A run cut
	// short (RunTimeout, shutdown, a lost lease) keeps its lease until it
	// expires: the runner taking over looks for a meeting the cut run's
	// create may still have made before creating one.
	LeaseTTL time.Duration
	// StepAttempts is how often a run tries a step before leaving it to
	// the job's retry (default 4).
	StepAttempts int
	// RequiredAttempts and RetryWindow bound how long a required step is
	// retried on transient failures (5xx, timeouts, 429, an open circuit):
	// it fails the booking once it has failed RequiredAttempts times in a
	// row (default 10) and its next attempt would come more than
	// RetryWindow after the first of those failures (default 5m). Until
	// then the booking waits (pending or rescheduling).
	RequiredAttempts int
	RetryWindow      time.Duration
	// OptionalAttempts is the same for optional steps, which then give up
	// without failing the booking (default 30).
	OptionalAttempts int
	// RetryBase and RetryMax bound the exponential backoff between
	// attempts within a run (default 100ms, 2s) and, times ten, between job
	// retries.
	RetryBase, RetryMax time.Duration
	// DurableDelay is how long after SyncTimeout the durable job first runs
	// (default 2s): by then the in-process run has normally finished and
	// the job finds nothing to do.
	DurableDelay time.Duration
	// PollInterval is how often waiting requests re-read a booking that
	// another replica works on (default 100ms).
	PollInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// DefaultRetryWindow is the default Config.RetryWindow: how long a
// provider may fail transiently before a required step fails the booking.
const DefaultRetryWindow = 5 * time.Minute

// Service is the booking domain. It is safe for concurrent use.
type Service struct {
	cfg  Config
	repo repo
	log  *slog.Logger

	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}

	// noFastPath leaves every run to the job (tests of the durable path).
	noFastPath bool
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Meetings == nil || cfg.Jobs == nil {
		return nil, errors.New("booking: Store, Jobs and Meetings are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SyncTimeout, 8*time.Second)
	def(&cfg.RunTimeout, 60*time.Second)
	def(&cfg.LeaseTTL, 15*time.Second)
	def(&cfg.RetryBase, 100*time.Millisecond)
	def(&cfg.RetryMax, 2*time.Second)
	def(&cfg.DurableDelay, 2*time.Second)
	def(&cfg.PollInterval, 100*time.Millisecond)
	def(&cfg.RetryWindow, DefaultRetryWindow)
	if cfg.StepAttempts <= 0 {
		cfg.StepAttempts = 4
	}
	if cfg.RequiredAttempts <= 0 {
		cfg.RequiredAttempts = 10
	}
	if cfg.OptionalAttempts <= 0 {
		cfg.OptionalAttempts = 30
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	base, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, repo: repo{db: cfg.Store}, log: cfg.Logger, base: base, stop: cancel,
		subs: map[string]map[chan struct{}]struct{}{}}, nil
}

// Close waits for in-process saga runs until ctx ends, then cancels them
// (their jobs finish the work later).
func (s *Service) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.stop()
		<-done
	}
	s.stop()
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Actor is the caller of a service method.
type Actor struct {
	ID                                string
	Candidate, Mentor, Admin, Machine bool
}

// privileged: admins and service clients act for anyone.
func (a Actor) privileged() bool { return a.Admin || a.Machine }

// name is the audit actor.
func (a Actor) name() string {
	if a.Machine && !a.Admin {
		return "service:" + a.ID
	}
	return a.ID
}

// SystemActor is the audit actor of the saga.
const SystemActor = "system"

// BookingURL returns the API link of a booking.
func (s *Service) BookingURL(id string) string { return s.cfg.PublicURL + "/v1/bookings/" + id }

// ---- schedules and availability ----

// PutSchedule stores a mentor's schedule (the mentor themself or an admin).
func (s *Service) PutSchedule(ctx context.Context, actor Actor, sch Schedule) (Schedule, error) {
	if !actor.Admin && !(actor.Mentor && actor.ID == sch.MentorID) {
		return Schedule{}, &ForbiddenError{"only the mentor themself or an admin may set a schedule"}
	}
	if err := sch.Validate(); err != nil {
		return Schedule{}, err
	}
	sch.UpdatedAt = s.now().Truncate(time.Microsecond)
	if err := s.repo.putSchedule(ctx, sch); err != nil {
		return Schedule{}, err
	}
	return sch, nil
}

// GetSchedule returns a mentor's schedule or ErrNoSchedule.
func (s *Service) GetSchedule(ctx context.Context, mentorID string) (Schedule, error) {
	return s.repo.getSchedule(ctx, s.cfg.Store.DB(), mentorID)
}

// MaxAvailabilityRange is the longest range Availability answers.
const MaxAvailabilityRange = 62 * 24 * time.Hour

// Availability returns the mentor's free slots: working hours minus the
// busy time of every connected calendar minus active bookings. Only the
// part of [q.From, q.To) that can be booked now (after the minimum notice,
// before the maximum advance) is looked up: a range wholly outside it has
// no slots and costs no calendar call.
func (s *Service) Availability(ctx context.Context, mentorID string, q AvailabilityQuery) ([]Interval, Schedule, error) {
	if !q.From.Before(q.To) {
		return nil, Schedule{}, &ValidationError{Field: "query.to", Message: "must be after from"}
	}
	if q.To.Sub(q.From) > MaxAvailabilityRange {
		return nil, Schedule{}, &ValidationError{Field: "query.to", Message: "the range may span at most 62 days"}
	}
	sch, err := s.GetSchedule(ctx, mentorID)
	if err != nil {
		return nil, Schedule{}, err
	}
	q.Now = s.now()
	from, to, ok := sch.bookableRange(q.From, q.To, q.Now)
	if !ok {
		return nil, sch, nil
	}
	lo, hi := from.Add(-sch.Buffer-24*time.Hour), to.Add(sch.Buffer+24*time.Hour)
	busy, err := s.repo.activeBlocks(ctx, mentorID, "", lo, hi)
	if err != nil {
		return nil, sch, err
	}
	cb, err := s.calendarBusy(ctx, mentorID, lo, hi)
	if err != nil {
		return nil, sch, fmt.Errorf("%w: %v", ErrCalendarUnavailable, err)
	}
	busy = append(busy, calendarBusy(cb, sch.Buffer)...)
	slots := sch.Slots(q, busy)
	if q.Candidate == "" || len(slots) == 0 {
		return slots, sch, nil
	}
	// The candidate's own sessions, without the mentor's buffer: a slot
	// touching one is bookable.
	own, err := s.repo.candidateSessions(ctx, q.Candidate, from, to)
	if err != nil {
		return nil, sch, err
	}
	return slices.DeleteFunc(slots, func(sl Interval) bool {
		return slices.ContainsFunc(own, func(b Busy) bool { return sl.overlaps(Interval(b)) })
	}), sch, nil
}

// calendarBusy asks every connected calendar of the user for busy time.
func (s *Service) calendarBusy(ctx context.Context, userID string, from, to time.Time) ([]Interval, error) {
	if s.cfg.Calendars == nil {
		return nil, nil
	}
	cals, err := s.cfg.Calendars.BusyCalendars(ctx, userID)
	if err != nil {
		if errors.Is(err, ErrNotConnected) {
			return nil, nil
		}
		return nil, err
	}
	var out []Interval
	for _, c := range cals {
		bs, err := c.FreeBusy(ctx, from, to)
		if errors.Is(err, calendar.ErrCalendarNotFound) {
			// Deleted by its owner: it has no busy time (and the
			// connection stops offering it).
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			out = append(out, Interval{b.Start, b.End})
		}
	}
	return out, nil
}

// freshBusyConflict checks the mentor's calendars right before a write:
// true when [start, end) (with the buffer) meets busy time other than the
// booking's own previous interval. Calendar errors do not block a booking
// (the database rule still prevents double booking); they are logged.
func (s *Service) freshBusyConflict(ctx context.Context, mentorID string, start, end time.Time, buffer time.Duration, own *Interval) bool {
	cb, err := s.calendarBusy(ctx, mentorID, start.Add(-buffer), end.Add(buffer))
	if err != nil {
		s.log.WarnContext(ctx, "mentor free/busy check failed; relying on the database rule", "error", err.Error())
		return false
	}
	var busy []Busy
	for _, b := range cb {
		if own != nil {
			// The booking's own event is busy at its old time.
			for _, part := range subtract(b, *own) {
				busy = append(busy, part)
			}
			continue
		}
		busy = append(busy, b)
	}
	return conflicts(Interval{start, end}, buffer, calendarBusy(busy, buffer))
}

// subtract returns a minus b.
func subtract(a, b Interval) []Interval {
	if !a.overlaps(b) {
		return []Interval{a}
	}
	var out []Interval
	if a.Start.Before(b.Start) {
		out = append(out, Interval{a.Start, b.Start})
	}
	if b.End.Before(a.End) {
		out = append(out, Interval{b.End, a.End})
	}
	return out
}

// ---- bookings ----

// CreateRequest asks for a booking.
type CreateRequest struct {
	MentorID string
	// CandidateID defaults to the caller.
	CandidateID    string
	Start          time.Time
	Duration       time.Duration
	TimeZone       string
	Topic          string
	Notes          string
	IdempotencyKey string
}

func (r CreateRequest) hash() string {
	b, _ := json.Marshal(struct {
		M, C, S, Z, T, N string
		D                time.Duration
	}{r.MentorID, r.CandidateID, r.Start.Format(time.RFC3339Nano), r.TimeZone, r.Topic, r.Notes, r.Duration})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Result is a booking after a write, and whether the providers caught up
// within the sync timeout (Done: answer 200/201, otherwise 202).
type Result struct {
	Booking Booking
	Done    bool
}

// idempotent response encodings.
const (
	idemDone     = 1
	idemAccepted = 2
	// idemRefused: a provider refused the reschedule's new time, which
	// was undone (RescheduleRefusedError).
	idemRefused = 3
)

func (s *Service) validateTimes(start time.Time, dur time.Duration, tz string) (*time.Location, error) {
	if dur < 15*time.Minute || dur > 240*time.Minute || dur%time.Minute != 0 {
		return nil, &ValidationError{Field: "body.duration_minutes", Message: "must be whole minutes between 15 and 240"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" || strings.EqualFold(tz, "local") {
		return nil, &ValidationError{Field: "body.timezone", Message: fmt.Sprintf("unknown time zone %q", tz)}
	}
	if start.IsZero() {
		return nil, &ValidationError{Field: "body.start", Message: "required"}
	}
	return loc, nil
}

// Create books a session and runs its saga, waiting up to the sync timeout.
func (s *Service) Create(ctx context.Context, actor Actor, req CreateRequest) (Result, error) {
	if req.IdempotencyKey == "" {
		return Result{}, &ValidationError{Field: "header.Idempotency-Key", Message: "required"}
	}
	candidate := req.CandidateID
	if !actor.privileged() {
		if !actor.Candidate {
			return Result{}, &ForbiddenError{"only candidates, admins and service clients book sessions"}
		}
		if candidate != "" && candidate != actor.ID {
			return Result{}, &ForbiddenError{"a candidate books sessions only for themself"}
		}
	}
	if candidate == "" {
		// Only a candidate books for themself: a service client or an
		// admin that forgot candidate_id would book a real session (a Zoom
		// meeting, calendar events, a Jira issue) for nobody.
		if !actor.Candidate {
			return Result{}, &ValidationError{Field: "body.candidate_id", Message: "required: only a candidate books for themself"}
		}
		candidate = actor.ID
	}
	if candidate == req.MentorID {
		return Result{}, &ForbiddenError{"a mentor cannot book a session with themself"}
	}
	if strings.TrimSpace(req.Topic) == "" {
		return Result{}, &ValidationError{Field: "body.topic", Message: "required"}
	}
	if _, err := s.validateTimes(req.Start, req.Duration, req.TimeZone); err != nil {
		return Result{}, err
	}
	hash := req.hash()
	if rec, ok, err := s.repo.getIdem(ctx, s.cfg.Store.DB(), actor.ID, req.IdempotencyKey); err != nil {
		return Result{}, err
	} else if ok {
		return s.replay(ctx, actor.ID, req.IdempotencyKey, hash, rec)
	}
	sch, err := s.GetSchedule(ctx, req.MentorID)
	if errors.Is(err, ErrNoSchedule) {
		return Result{}, &ValidationError{Field: "body.mentor_id", Message: "the mentor has no schedule"}
	}
	if err != nil {
		return Result{}, err
	}
	now := s.now()
	start := req.Start.UTC().Truncate(time.Microsecond)
	end := start.Add(req.Duration)
	if err := sch.Bookable(start, req.Duration, now); err != nil {
		return Result{}, err
	}
	if err := sch.OnGrid(start, req.Duration); err != nil {
		return Result{}, err
	}
	if s.freshBusyConflict(ctx, req.MentorID, start, end, sch.Buffer, nil) {
		return s.overlapOrReplay(ctx, actor.ID, req.IdempotencyKey, hash, fmt.Errorf("%w: the mentor's calendar is busy", ErrOverlap))
	}
	zoomUser := sch.ZoomUser
	if zoomUser == "" {
		zoomUser = req.MentorID
	}
	b := Booking{
		ID: newID(), MentorID: req.MentorID, CandidateID: candidate, Start: start, End: end, Buffer: sch.Buffer,
		TimeZone: req.TimeZone, Topic: req.Topic, Notes: req.Notes, ZoomUser: zoomUser, Status: StatusPending,
		Version: 1, SpecVersion: 1, CreatedBy: actor.name(), CreatedAt: now.Truncate(time.Microsecond),
		UpdatedAt: now.Truncate(time.Microsecond), op: opEnsure,
	}
	for _, n := range Steps {
		st := StepPending
		if (n == StepJira && s.cfg.Issues == nil) || ((n == StepMentorCalendar || n == StepCandidateCalendar) && s.cfg.Calendars == nil) {
			st = StepSkipped
		}
		b.Steps = append(b.Steps, Step{Name: n, State: st, UpdatedAt: b.CreatedAt})
	}
	var replayRec *idemRecord
	err = s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.repo.putIdem(ctx, tx, actor.ID, req.IdempotencyKey, hash, b.ID, 0, now); err != nil {
			if store.IsUniqueViolation(err) {
				return errIdemTaken
			}
			return fmt.Errorf("booking: idempotency key: %w", err)
		}
		if err := s.repo.slotFree(ctx, tx, b.ID, b.MentorID, b.CandidateID, b.Start, b.End, b.End.Add(b.Buffer)); err != nil {
			return err
		}
		if err := s.repo.insert(ctx, tx, b); err != nil {
			return err
		}
		if err := s.repo.audit(ctx, tx, AuditRecord{BookingID: b.ID, At: now, Actor: actor.name(), Action: "created",
			To: StatusPending, Reason: "booked"}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, b.ID)
	})
	if errors.Is(err, ErrOverlap) {
		return s.overlapOrReplay(ctx, actor.ID, req.IdempotencyKey, hash, err)
	}
	if errors.Is(err, errIdemTaken) {
		// A concurrent request with the same key won the race.
		rec, ok, gerr := s.repo.getIdem(ctx, s.cfg.Store.DB(), actor.ID, req.IdempotencyKey)
		if gerr != nil || !ok {
			return Result{}, errors.Join(err, gerr)
		}
		replayRec = &rec
	} else if err != nil {
		return Result{}, err
	}
	if replayRec != nil {
		return s.replay(ctx, actor.ID, req.IdempotencyKey, hash, *replayRec)
	}
	s.log.InfoContext(ctx, "booking created", "booking_id", b.ID, "mentor_id", b.MentorID)
	s.kick(b.ID)
	res, err := s.waitResult(ctx, b.ID, func(b Booking) bool { return b.Status != StatusPending })
	if err != nil {
		return Result{}, err
	}
	s.storeIdem(ctx, actor.ID, req.IdempotencyKey, res)
	return res, nil
}

var errIdemTaken = errors.New("booking: idempotency key taken")

// overlapOrReplay answers a create that found its slot taken: by the
// mentor (ErrOverlap) or by the candidate (ErrCandidateOverlap). When the
// taker is the same request (same caller and key, sent twice — possibly to
// two replicas — and the other copy committed first), the slot is "taken" by
// the request's own booking: replay that one instead of answering 409.
func (s *Service) overlapOrReplay(ctx context.Context, caller, key, hash string, overlap error) (Result, error) {
	rec, ok, err := s.repo.getIdem(ctx, s.cfg.Store.DB(), caller, key)
	if err != nil || !ok {
		return Result{}, overlap
	}
	return s.replay(ctx, caller, key, hash, rec)
}

// asAnswered returns b with each step in the state its answer shows
// (VisibleState), as an idempotent response stores it: a replay decodes it
// without the booking's operation, which VisibleState needs, and would
// show a step that has not yet applied the booking's time as done.
func asAnswered(b Booking) Booking {
	steps := make([]Step, len(b.Steps))
	for i, st := range b.Steps {
		st.State = b.VisibleState(st)
		steps[i] = st
	}
	b.Steps = steps
	return b
}

func (s *Service) storeIdem(ctx context.Context, caller, key string, res Result) {
	body, err := json.Marshal(asAnswered(res.Booking))
	if err != nil {
		return
	}
	code := idemAccepted
	if res.Done {
		code = idemDone
	}
	if err := s.repo.setIdemResponse(context.WithoutCancel(ctx), caller, key, code, body); err != nil {
		s.log.WarnContext(ctx, "store idempotent response", "booking_id", res.Booking.ID, "error", err.Error())
	}
}

// result is the answer rec stored (rec.Status not 0).
func (rec idemRecord) result() (Result, error) {
	var b Booking
	if err := json.Unmarshal(rec.Response, &b); err != nil {
		return Result{}, fmt.Errorf("booking: decode idempotent response: %w", err)
	}
	return Result{Booking: b, Done: rec.Status == idemDone}, nil
}

// replay answers a repeated Idempotency-Key: the stored response, or — while
// the first request still runs — the same wait.
func (s *Service) replay(ctx context.Context, caller, key, hash string, rec idemRecord) (Result, error) {
	if rec.Hash != hash {
		return Result{}, ErrIdempotencyMismatch
	}
	rec, err := s.awaitIdem(ctx, caller, key, rec)
	if err != nil {
		return Result{}, err
	}
	if rec.Status != 0 {
		return rec.result()
	}
	// The first request died before answering: answer from the booking now.
	b, err := s.repo.get(ctx, s.cfg.Store.DB(), rec.BookingID)
	if err != nil {
		return Result{}, err
	}
	res := Result{Booking: b, Done: b.Status != StatusPending}
	s.storeIdem(ctx, caller, key, res)
	return res, nil
}

// awaitIdem waits, up to the sync timeout and a second, for the request
// that recorded rec to store its response, and returns the record as it
// is then (Status 0: it did not).
func (s *Service) awaitIdem(ctx context.Context, caller, key string, rec idemRecord) (idemRecord, error) {
	deadline := time.Now().Add(s.cfg.SyncTimeout + time.Second)
	for rec.Status == 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return idemRecord{}, ctx.Err()
		case <-time.After(s.cfg.PollInterval / 2):
		}
		r, ok, err := s.repo.getIdem(ctx, s.cfg.Store.DB(), caller, key)
		if err != nil {
			return idemRecord{}, err
		}
		if ok {
			rec = r
		}
	}
	return rec, nil
}

// enqueue inserts the durable saga job in tx.
func (s *Service) enqueue(ctx context.Context, tx *sql.Tx, id string) error {
	jobs := s.cfg.Jobs()
	if jobs == nil {
		return errors.New("booking: job runner not ready")
	}
	_, err := jobs.InsertTx(ctx, tx, SagaArgs{BookingID: id}, &river.InsertOpts{
		ScheduledAt: s.now().Add(s.cfg.SyncTimeout + s.cfg.DurableDelay),
		MaxAttempts: 25,
	})
	if err != nil {
		return fmt.Errorf("booking: enqueue saga: %w", err)
	}
	return nil
}

// visible reports whether actor may see b.
func visible(actor Actor, b Booking) bool {
	return actor.privileged() || actor.ID == b.MentorID || actor.ID == b.CandidateID
}

// Get returns a booking visible to actor.
func (s *Service) Get(ctx context.Context, actor Actor, id string) (Booking, error) {
	b, err := s.repo.get(ctx, s.cfg.Store.DB(), id)
	if err != nil {
		return Booking{}, err
	}
	if !visible(actor, b) {
		return Booking{}, ErrNotFound
	}
	return b, nil
}

// Lookup returns a booking without a visibility check (for webhooks).
func (s *Service) Lookup(ctx context.Context, id string) (Booking, error) {
	return s.repo.get(ctx, s.cfg.Store.DB(), id)
}

// ListQuery filters List.
type ListQuery struct {
	// Role limits to bookings where the caller is "mentor" or "candidate".
	Role   string
	Status Status
	// From and To, when not nil, filter whatever their value (the zero
	// time too: a To of year 1 lists nothing).
	From, To *time.Time
	Cursor   string
	Limit    int
}

// ErrBadCursor reports a cursor that List or Audit did not issue.
var ErrBadCursor = &ParameterError{Field: "query.cursor", Message: "is not a cursor this API returned"}

type cursor struct {
	S int64  `json:"s"`
	I string `json:"i"`
}

// List returns a page of the bookings actor may see, newest start first,
// and the cursor of the next page ("" on the last).
func (s *Service) List(ctx context.Context, actor Actor, q ListQuery) ([]Booking, string, error) {
	if q.From != nil && q.To != nil && q.To.Before(*q.From) {
		return nil, "", &ParameterError{Field: "query.to", Message: "must not be before from"}
	}
	f := ListFilter{Status: q.Status, From: q.From, To: q.To, Limit: q.Limit}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	switch q.Role {
	case "mentor":
		f.AsMentor = actor.ID
	case "candidate":
		f.AsCandidate = actor.ID
	default:
		if !actor.privileged() {
			f.Viewer = actor.ID
		}
	}
	if q.Cursor != "" {
		var c cursor
		raw, err := decodeCursor(q.Cursor)
		if err != nil || json.Unmarshal(raw, &c) != nil || c.I == "" {
			return nil, "", ErrBadCursor
		}
		f.AfterStart, f.AfterID = fromUS(c.S), c.I
	}
	want := f.Limit
	f.Limit++
	items, err := s.repo.list(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > want {
		items = items[:want]
		last := items[len(items)-1]
		raw, _ := json.Marshal(cursor{S: us(last.Start), I: last.ID})
		next = encodeCursor(raw)
	}
	return items, next, nil
}

// Audit returns a page of a booking's audit trail, oldest first.
func (s *Service) Audit(ctx context.Context, actor Actor, id, cur string, limit int) ([]AuditRecord, string, error) {
	if _, err := s.Get(ctx, actor, id); err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	var after int64
	if cur != "" {
		raw, err := decodeCursor(cur)
		if err != nil || json.Unmarshal(raw, &after) != nil {
			return nil, "", ErrBadCursor
		}
	}
	recs, err := s.repo.listAudit(ctx, id, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		raw, _ := json.Marshal(recs[len(recs)-1].Seq)
		next = encodeCursor(raw)
	}
	return recs, next, nil
}

// RescheduleRequest moves a booking.
type RescheduleRequest struct {
	// IfMatch is the caller's ETag of the booking. Required.
	IfMatch string
	Start   time.Time
	// Duration and TimeZone keep the booking's when zero.
	Duration time.Duration
	TimeZone string
	Reason   string
	// IdempotencyKey, when set, makes the request idempotent as
	// CreateRequest's key does: a request of the same caller with the same
	// key and body answers what the first one did (while it runs: its
	// answer once it has one), without checking IfMatch again; with
	// another body, or for another booking, it is ErrIdempotencyMismatch.
	// Only a request that moved the booking records its key: one refused
	// before (412, 409, 422, ...) changed nothing and is evaluated again.
	IdempotencyKey string
	// changed is the step whose artefact was changed outside the gateway
	// to ask for this move ("" for the API; see RescheduleAs).
	changed StepName
	// caller scopes IdempotencyKey (the actor's id).
	caller string
}

// hash fingerprints a reschedule of booking id for its idempotency key:
// the body as the caller sent it, and the booking (a key reused on another
// booking, or for a creation, is a mismatch).
func (r RescheduleRequest) hash(id string) string {
	b, _ := json.Marshal(struct {
		Op, ID, S, Z, R string
		D               time.Duration
	}{"reschedule", id, r.Start.Format(time.RFC3339Nano), r.TimeZone, r.Reason, r.Duration})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// etagMatches reports whether an If-Match value ("*" or a list of entity
// tags) names booking version v. A tag names the version it was read at
// (VersionOfTag): the steps' progress since, which a reschedule does not
// overwrite, does not make it stale, while any change of the booking row
// (status, time, a new meeting) does. Weak tags (W/"2") never match, as
// If-Match compares strongly (RFC 9110 section 13.1.1).
func etagMatches(header string, v int64) bool {
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" {
			return true
		}
		if n, ok := VersionOfTag(p); ok && n == v {
			return true
		}
	}
	return false
}

// Reschedule moves a booking to a new time and propagates the change.
func (s *Service) Reschedule(ctx context.Context, actor Actor, id string, req RescheduleRequest) (Result, error) {
	b, err := s.Get(ctx, actor, id)
	if err != nil {
		return Result{}, err
	}
	if req.IdempotencyKey != "" {
		req.caller = actor.ID
		rec, ok, err := s.repo.getIdem(ctx, s.cfg.Store.DB(), req.caller, req.IdempotencyKey)
		if err != nil {
			return Result{}, err
		}
		if ok {
			// Before If-Match: a retry carries the tag the first
			// request made stale.
			return s.replayReschedule(ctx, req, id, rec)
		}
	}
	if strings.TrimSpace(req.IfMatch) == "" {
		return Result{}, ErrPreconditionRequired
	}
	if !etagMatches(req.IfMatch, b.Version) {
		return Result{}, ErrStale
	}
	return s.reschedule(ctx, actor.name(), b, req)
}

// replayReschedule answers a reschedule whose idempotency key rec holds:
// the first request's answer, waited for while it runs, or — when it died
// before answering — the outcome of its change as the booking shows it now.
func (s *Service) replayReschedule(ctx context.Context, req RescheduleRequest, id string, rec idemRecord) (Result, error) {
	if rec.Hash != req.hash(id) {
		return Result{}, ErrIdempotencyMismatch
	}
	rec, err := s.awaitIdem(ctx, req.caller, req.IdempotencyKey, rec)
	if err != nil {
		return Result{}, err
	}
	if rec.Status != 0 {
		res, err := rec.result()
		if err == nil && rec.Status == idemRefused {
			err = &RescheduleRefusedError{Reason: res.Booking.RescheduleRefused}
		}
		return res, err
	}
	b, err := s.repo.get(ctx, s.cfg.Store.DB(), rec.BookingID)
	if err != nil {
		return Result{}, err
	}
	res := Result{Booking: b, Done: b.Status != StatusRescheduling && b.Status != StatusPending}
	if b.refusedSpec == rec.Spec {
		err = &RescheduleRefusedError{Reason: b.RescheduleRefused}
	}
	s.storeRescheduleIdem(ctx, req, res, err)
	return res, err
}

// storeRescheduleIdem records the answer of a reschedule that wrote its
// idempotency key: res, refused when err is a RescheduleRefusedError.
// Other errors (the wait cut short) store nothing: a retry then answers
// from the booking as it is.
func (s *Service) storeRescheduleIdem(ctx context.Context, req RescheduleRequest, res Result, err error) {
	code := idemAccepted
	var re *RescheduleRefusedError
	switch {
	case errors.As(err, &re):
		code = idemRefused
	case err != nil:
		return
	case res.Done:
		code = idemDone
	}
	body, merr := json.Marshal(asAnswered(res.Booking))
	if merr != nil {
		return
	}
	if serr := s.repo.setIdemResponse(context.WithoutCancel(ctx), req.caller, req.IdempotencyKey, code, body); serr != nil {
		s.log.WarnContext(ctx, "store idempotent response", "booking_id", res.Booking.ID, "error", serr.Error())
	}
}

func (s *Service) reschedule(ctx context.Context, actorName string, b Booking, req RescheduleRequest) (Result, error) {
	switch b.Status {
	case StatusPending, StatusConfirmed, StatusRescheduling:
	default:
		return Result{}, &ConflictError{Status: b.Status, Action: "reschedule"}
	}
	if b.op != opEnsure {
		return Result{}, &ConflictError{Status: b.Status, Action: "reschedule"}
	}
	dur, tz := req.Duration, req.TimeZone
	if dur == 0 {
		dur = b.Duration()
	}
	if tz == "" {
		tz = b.TimeZone
	}
	if _, err := s.validateTimes(req.Start, dur, tz); err != nil {
		return Result{}, err
	}
	start := req.Start.UTC().Truncate(time.Microsecond)
	end := start.Add(dur)
	if start.Equal(b.Start) && end.Equal(b.End) && tz == b.TimeZone {
		// Nothing moves (a form saved unchanged): no new spec to
		// propagate, no audit entry, and no minimum notice to refuse it
		// close to the session.
		return Result{Booking: b, Done: b.Status == StatusConfirmed}, nil
	}
	sch, err := s.GetSchedule(ctx, b.MentorID)
	if err != nil {
		return Result{}, err
	}
	now := s.now()
	if err := sch.Bookable(start, dur, now); err != nil {
		var ve *ValidationError
		if start.Equal(b.Start) && dur != b.Duration() && errors.As(err, &ve) && ve.Message == outsideHours && sch.inHours(start) {
			// The start stays, inside the hours: the new length is what
			// leaves them. A start the hours no longer hold (the
			// schedule changed since) is the start's problem.
			return Result{}, &ValidationError{Field: "body.duration_minutes", Message: "makes the session end outside the mentor's working hours"}
		}
		return Result{}, err
	}
	if req.changed == "" && !start.Equal(b.Start) {
		// Asked for through the API: a start availability offers. A
		// booking that keeps its start keeps it, on the grid or not (the
		// schedule may have changed since it was booked), and a move made
		// in a provider (RescheduleAs) is held to the working hours only.
		if err := sch.OnGrid(start, dur); err != nil {
			return Result{}, err
		}
	}
	own := Interval{b.Start, b.End}
	if req.changed != StepMentorCalendar && s.freshBusyConflict(ctx, b.MentorID, start, end, sch.Buffer, &own) {
		return Result{}, fmt.Errorf("%w: the mentor's calendar is busy", ErrOverlap)
	}
	to := b.Status
	if to == StatusConfirmed {
		to = StatusRescheduling
	}
	changes := timeChanges(b.timing(), timing{start, end, tz})
	spec := b.SpecVersion + 1
	err = s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
		if req.IdempotencyKey != "" {
			// With the change it answers for: a retry finds the key
			// exactly when the booking moved.
			if err := s.repo.putIdem(ctx, tx, req.caller, req.IdempotencyKey, req.hash(b.ID), b.ID, spec, now); err != nil {
				if store.IsUniqueViolation(err) {
					return errIdemTaken
				}
				return fmt.Errorf("booking: idempotency key: %w", err)
			}
		}
		if err := s.repo.slotFree(ctx, tx, b.ID, b.MentorID, b.CandidateID, start, end, end.Add(sch.Buffer)); err != nil {
			return err
		}
		u := updateOf(b, now)
		u.Status, u.Start, u.End, u.Buffer, u.TimeZone, u.SpecVersion = to, start, end, sch.Buffer, tz, b.SpecVersion+1
		u.RefusedReason = ""
		if b.Status == StatusConfirmed {
			// Where a refused reschedule takes the booking back to.
			t := b.timing()
			u.Confirmed = &t
		}
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		if err := s.repo.audit(ctx, tx, AuditRecord{BookingID: b.ID, At: now, Actor: actorName, Action: "rescheduled",
			From: b.Status, To: to, Reason: req.Reason, Changes: changes}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, b.ID)
	})
	if errors.Is(err, errIdemTaken) {
		// The same request, sent twice at once, moved the booking first.
		rec, ok, gerr := s.repo.getIdem(ctx, s.cfg.Store.DB(), req.caller, req.IdempotencyKey)
		if gerr != nil || !ok {
			return Result{}, errors.Join(err, gerr)
		}
		return s.replayReschedule(ctx, req, b.ID, rec)
	}
	if err != nil {
		return Result{}, err
	}
	s.kick(b.ID)
	res, err := s.waitResult(ctx, b.ID, func(b Booking) bool {
		return b.Status != StatusRescheduling && b.Status != StatusPending || b.refusedSpec >= spec
	})
	if err == nil && res.Booking.refusedSpec == spec {
		err = &RescheduleRefusedError{Reason: res.Booking.RescheduleRefused}
	}
	if req.IdempotencyKey != "" {
		s.storeRescheduleIdem(ctx, req, res, err)
	}
	return res, err
}

// timeChanges lists, for the audit, what moving a booking from one timing
// to another changes.
func timeChanges(from, to timing) map[string]Change {
	changes := map[string]Change{}
	if !to.Start.Equal(from.Start) {
		changes["start"] = Change{from.Start.In(mustLoc(from.TimeZone)).Format(time.RFC3339), to.Start.In(mustLoc(to.TimeZone)).Format(time.RFC3339)}
	}
	if d, td := from.End.Sub(from.Start), to.End.Sub(to.Start); d != td {
		changes["duration_minutes"] = Change{fmt.Sprint(int(d.Minutes())), fmt.Sprint(int(td.Minutes()))}
	}
	if to.TimeZone != from.TimeZone {
		changes["timezone"] = Change{from.TimeZone, to.TimeZone}
	}
	return changes
}

func mustLoc(tz string) *time.Location {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Cancel cancels a booking (idempotent) and removes its provider artefacts.
func (s *Service) Cancel(ctx context.Context, actor Actor, id, reason string) (Result, error) {
	b, err := s.Get(ctx, actor, id)
	if err != nil {
		return Result{}, err
	}
	return s.cancel(ctx, actor.name(), b, reason, false)
}

// cancel cancels booking b, read before: the cancel commits only over the
// version read (repo.apply), so a change committed meanwhile makes it look
// again. With settled (a cancel asked for outside the gateway, see
// CancelAs) a booking whose own change is in flight, at the first look or
// at a later one, is ErrChangeInFlight and is left as it is.
func (s *Service) cancel(ctx context.Context, actorName string, b Booking, reason string, settled bool) (Result, error) {
	for attempt := 0; ; attempt++ {
		switch b.Status {
		case StatusCancelled:
			return Result{Booking: b, Done: true}, nil
		case StatusCancelling:
			s.kick(b.ID)
			return s.waitResult(ctx, b.ID, func(b Booking) bool { return b.Status != StatusCancelling })
		case StatusPending, StatusConfirmed, StatusRescheduling:
		default:
			return Result{}, &ConflictError{Status: b.Status, Action: "cancel"}
		}
		if b.op == opCompensate {
			return Result{}, &ConflictError{Status: StatusFailed, Action: "cancel"}
		}
		if settled && b.changeInFlight() {
			return Result{}, ErrChangeInFlight
		}
		now := s.now()
		err := s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
			u := updateOf(b, now)
			u.Status, u.Op = StatusCancelling, opCancel
			if err := s.repo.apply(ctx, tx, b, u); err != nil {
				return err
			}
			for _, st := range b.Steps {
				if mustWithdraw(st) {
					if err := s.repo.setStepState(ctx, tx, b.ID, st.Name, StepCompensating, now); err != nil {
						return err
					}
				}
			}
			if err := s.repo.audit(ctx, tx, AuditRecord{BookingID: b.ID, At: now, Actor: actorName, Action: "cancel_requested",
				From: b.Status, To: StatusCancelling, Reason: reason}); err != nil {
				return err
			}
			return s.enqueue(ctx, tx, b.ID)
		})
		if errors.Is(err, ErrStale) && attempt < 5 {
			// The saga moved the booking on meanwhile; look again.
			if b, err = s.repo.get(ctx, s.cfg.Store.DB(), b.ID); err != nil {
				return Result{}, err
			}
			continue
		}
		if err != nil {
			return Result{}, err
		}
		s.kick(b.ID)
		return s.waitResult(ctx, b.ID, func(b Booking) bool { return b.Status != StatusCancelling })
	}
}

// waitResult waits until done(b) or the sync timeout, and reports whether
// the required steps caught up.
func (s *Service) waitResult(ctx context.Context, id string, done func(Booking) bool) (Result, error) {
	b, err := s.wait(ctx, id, done)
	if err != nil {
		return Result{}, err
	}
	ok := done(b) && (b.Status == StatusConfirmed || b.Status == StatusCancelled)
	return Result{Booking: b, Done: ok}, nil
}

func (s *Service) wait(ctx context.Context, id string, done func(Booking) bool) (Booking, error) {
	ch := s.subscribe(id)
	defer s.unsubscribe(id, ch)
	timer := time.NewTimer(s.cfg.SyncTimeout)
	defer timer.Stop()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		b, err := s.repo.get(ctx, s.cfg.Store.DB(), id)
		if err != nil {
			return Booking{}, err
		}
		if done(b) {
			return b, nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-timer.C:
			return s.repo.get(ctx, s.cfg.Store.DB(), id)
		case <-ctx.Done():
			return Booking{}, ctx.Err()
		}
	}
}

func (s *Service) subscribe(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[id]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		s.subs[id] = m
	}
	m[ch] = struct{}{}
	return ch
}

func (s *Service) unsubscribe(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs[id], ch)
	if len(s.subs[id]) == 0 {
		delete(s.subs, id)
	}
}

func (s *Service) notify(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// ---- provider-driven changes (webhooks) ----

// FindByMeeting returns the booking whose Zoom meeting id is meetingID.
func (s *Service) FindByMeeting(ctx context.Context, meetingID string) (Booking, error) {
	return s.findByRef(ctx, []StepName{StepZoom}, meetingID)
}

// FindByMeetings returns the bookings of many Zoom meetings, by meeting id,
// with the same match as FindByMeeting; meetings without a booking are
// left out.
func (s *Service) FindByMeetings(ctx context.Context, meetingIDs []string) (map[string]Booking, error) {
	ids, err := s.repo.findManyByStepRef(ctx, StepZoom, meetingIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Booking, len(ids))
	for ref, id := range ids {
		b, err := s.Lookup(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[ref] = b
	}
	return out, nil
}

// FindByEvent returns the booking whose calendar event id is eventID.
func (s *Service) FindByEvent(ctx context.Context, eventID string) (Booking, error) {
	return s.findByRef(ctx, []StepName{StepMentorCalendar, StepCandidateCalendar}, eventID)
}

// PlacedEvent is a booking's event in a calendar, as its calendar step
// records it.
type PlacedEvent struct {
	BookingID string
	// EventID is the event's provider identity (the step's ref).
	EventID string
}

// MentorEventsAt lists the events the mentor calendar steps of mentorID's
// bookings wrote to the calendar at place (a place PlacedCalendars names)
// and that are there as far as the booking knows: the step is done and the
// booking is live (pending, confirmed, rescheduling or in progress; not
// cancelling, cancelled, completed or failed). Steps that do not record
// their calendar (written before it was recorded) are left out, as their
// event may be in another calendar. Webhook processing compares them with a
// complete listing of that calendar: one the listing lacks was deleted.
func (s *Service) MentorEventsAt(ctx context.Context, mentorID, place string) ([]PlacedEvent, error) {
	if mentorID == "" || place == "" {
		return nil, nil
	}
	return s.repo.placedBy(ctx, mentorID, StepMentorCalendar, place,
		[]Status{StatusPending, StatusConfirmed, StatusRescheduling, StatusInProgress})
}

// FindByIssue returns the booking whose Jira issue key is key.
func (s *Service) FindByIssue(ctx context.Context, key string) (Booking, error) {
	return s.findByRef(ctx, []StepName{StepJira}, key)
}

func (s *Service) findByRef(ctx context.Context, names []StepName, ref string) (Booking, error) {
	if ref == "" {
		return Booking{}, ErrNotFound
	}
	id, err := s.repo.findByStepRef(ctx, names, ref)
	if err != nil {
		return Booking{}, err
	}
	return s.Lookup(ctx, id)
}

// CancelAs cancels on behalf of a provider (actor "webhook:jira", …)
// because someone deleted or cancelled an artefact outside the gateway.
// While the booking's own change (its creation, a reschedule) propagates,
// what the caller saw may be the gateway's own doing or of the booking's old
// time, and a cancel would take away the session the change's caller was
// just promised: ErrChangeInFlight, to be tried again once it has settled.
// The caller checked that on its own read, but a reschedule (another
// replica) may have committed since; the check holds up to the cancel's
// commit, which is refused when the booking changed after the read it was
// judged on.
func (s *Service) CancelAs(ctx context.Context, id, actor, reason string) error {
	b, err := s.Lookup(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.cancel(ctx, actor, b, reason, true)
	return err
}

// RescheduleAs moves a booking on behalf of a provider (actor
// "webhook:zoom", …) because someone changed the artefact of step changed
// outside the gateway; no-op when the time is unchanged. The new time is
// checked like any reschedule, except that a move of the mentor's own
// calendar event (StepMentorCalendar) is not held against the busy time of
// the mentor's calendars: the moved event itself is there now, and what else
// the mentor keeps at that time is theirs to judge. Other bookings and the
// schedule still refuse it. While the booking's own change (its creation,
// a reschedule) propagates, the artefact's time may be the gateway's old or
// new one: ErrChangeInFlight, to be tried again once it has settled. The
// caller checked that on its own read, but a reschedule (another replica)
// may have committed since.
func (s *Service) RescheduleAs(ctx context.Context, id string, start, end time.Time, changed StepName, actor, reason string) error {
	b, err := s.Lookup(ctx, id)
	if err != nil {
		return err
	}
	if b.Start.Equal(start) && b.End.Equal(end) {
		return nil
	}
	if b.changeInFlight() {
		return ErrChangeInFlight
	}
	_, err = s.reschedule(ctx, actor, b, RescheduleRequest{Start: start, Duration: end.Sub(start), Reason: reason, changed: changed})
	return err
}

// Reassert puts the booking's own state back on the artefact of one step
// (the Zoom meeting, the mentor's calendar event) after someone changed it
// outside the gateway in a way the booking refused (a time it cannot take):
// the step becomes stale (a new spec only it lacks) and the saga updates
// the artefact, or creates it again when it was deleted. Only that artefact
// is written, unless the put-back creates a new Zoom meeting: its new join
// URL then goes to the calendar events and the Jira issue as well (see
// repo.writeJoinURL). Of a completed booking only the Jira issue is put
// back. A booking whose own change is in flight, or whose step holds no
// artefact, is left alone: the saga puts every artefact right anyway.
func (s *Service) Reassert(ctx context.Context, id string, step StepName, actor, reason string) error {
	restored := false
	err := s.inBookingTx(ctx, id, func(tx *sql.Tx, b Booking) error {
		restored = false
		st := b.Step(step)
		if b.op != opEnsure || st.State != StepDone || st.Ref == "" {
			return nil
		}
		switch {
		case b.Status == StatusConfirmed, b.Status == StatusInProgress:
		case b.Status == StatusCompleted && step == StepJira:
			// The session took place: its issue still says so (Done);
			// the meeting and the events are in the past.
		default:
			return nil
		}
		now := s.now()
		u := updateOf(b, now)
		u.SpecVersion = b.SpecVersion + 1
		if err := s.repo.apply(ctx, tx, b, u); err != nil {
			return err
		}
		if err := s.repo.keepSpec(ctx, tx, id, step, b.SpecVersion, u.SpecVersion); err != nil {
			return err
		}
		if err := s.repo.audit(ctx, tx, AuditRecord{BookingID: id, At: now, Actor: actor, Action: "step_reasserted",
			From: b.Status, To: b.Status, Reason: reason}); err != nil {
			return err
		}
		restored = true
		return s.enqueue(ctx, tx, id)
	})
	if err == nil && restored {
		s.kick(id)
	}
	return err
}

// SetStatus moves a booking to in_progress or completed (from meeting
// events). A transition the state machine does not allow is a
// ConflictError; repeating the current status is a no-op.
func (s *Service) SetStatus(ctx context.Context, id string, to Status, actor, reason string) error {
	if to != StatusInProgress && to != StatusCompleted {
		return &ValidationError{Field: "status", Message: "only in_progress and completed are set from outside"}
	}
	for attempt := 0; attempt < 5; attempt++ {
		b, err := s.Lookup(ctx, id)
		if err != nil {
			return err
		}
		if b.Status == to {
			return nil
		}
		if !CanTransition(b.Status, to) || b.op != opEnsure {
			return &ConflictError{Status: b.Status, Action: "set " + string(to) + " on"}
		}
		now := s.now()
		jiraStale := false
		err = s.cfg.Store.InTx(ctx, func(tx *sql.Tx) error {
			u := updateOf(b, now)
			u.Status = to
			if b.Step(StepJira).State != StepSkipped {
				// The issue follows the status: a new spec that only the jira step lacks.
				u.SpecVersion = b.SpecVersion + 1
			}
			if err := s.repo.apply(ctx, tx, b, u); err != nil {
				return err
			}
			action := "started"
			if to == StatusCompleted {
				action = "completed"
			}
			if err := s.repo.audit(ctx, tx, AuditRecord{BookingID: b.ID, At: now, Actor: actor, Action: action, From: b.Status, To: to, Reason: reason}); err != nil {
				return err
			}
			if u.SpecVersion == b.SpecVersion {
				return nil
			}
			if err := s.repo.keepSpec(ctx, tx, b.ID, StepJira, b.SpecVersion, u.SpecVersion); err != nil {
				return err
			}
			jiraStale = true
			return s.enqueue(ctx, tx, b.ID)
		})
		if errors.Is(err, ErrStale) {
			continue
		}
		if err == nil {
			s.notify(id)
			if jiraStale {
				s.kick(id)
			}
		}
		return err
	}
	return ErrStale
}

func encodeCursor(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

func decodeCursor(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
