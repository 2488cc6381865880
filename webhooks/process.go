package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/integrations/jira"
)

// ProcessArgs is the job that processes stored deliveries: the new
// deliveries of one group commit (one job per commit, not per delivery, so
// River's per-job cost is shared), or one replayed delivery.
type ProcessArgs struct {
	DeliveryIDs []string `json:"ids"`
	// Handoff marks the job of deliveries handed off to in-process
	// processing: it waits (scheduled) as the fallback until the hand-off
	// grace has passed.
	Handoff bool `json:"handoff,omitempty"`
}

// Kind implements river.JobArgs.
func (ProcessArgs) Kind() string { return "webhook_process" }

// ProcessWorker works ProcessArgs jobs.
type ProcessWorker struct {
	river.WorkerDefaults[ProcessArgs]
	s *Service
}

// ProcessWorker returns the worker of stored deliveries; register it with River.
func (s *Service) ProcessWorker() *ProcessWorker { return &ProcessWorker{s: s} }

// Work implements river.Worker (see Process).
func (w *ProcessWorker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	return w.s.Process(ctx, job.Args.DeliveryIDs...)
}

// outcome is what processing a delivery did.
type outcome struct {
	bookingID string
	note      string
}

// Process processes stored deliveries (at most Config.ProcessConcurrency
// calls at once, in-process hand-offs included; the others wait): one read
// of the deliveries (skipping those already processed or poison), each goes
// through its provider's processor, and one transaction records every
// outcome: processed (with what it did) or failed (with the error). The
// failures are returned joined so that River retries the job; on the retry
// the deliveries already processed are skipped. A delivery that cannot be
// decoded is marked failed and not retried.
func (s *Service) Process(ctx context.Context, ids ...string) error {
	select {
	case s.processing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	release := sync.OnceFunc(func() { <-s.processing })
	defer release()
	ds, err := s.events.beginMany(ctx, ids)
	if err != nil {
		return err
	}
	ptrs := make([]*Delivery, len(ds))
	for i := range ds {
		ptrs[i] = &ds[i]
	}
	failed, err := s.process(ctx, ptrs, nil, nil, release)
	return errors.Join(append(failed, err)...)
}

// jobSpan is a handed-off job whose deliveries are the next n of those
// processed together.
type jobSpan struct {
	id int64
	n  int
}

// process runs ds through their processors and records the outcomes in
// one transaction, with the settlement of the handed-off jobs they belong
// to (spans, in the order of ds; none for a River job): each deleted, or
// made available to River again when one of its deliveries failed. ds are
// only read: the hand-off passes the deliveries intake committed, not
// copies (their Attempts is 0 then, the first attempt). zoom, when not
// nil, is aligned with ds: the Zoom events intake decoded (nil where
// none); process fills in the others. It calls release (the caller's
// processing turn) once the processors ran: recording waits for the next
// group commit, and meanwhile another job may process. It returns the
// failures to retry and the error of recording the outcomes.
func (s *Service) process(ctx context.Context, ds []*Delivery, zoom []*ZoomEvent, spans []jobSpan, release func()) (failed []error, err error) {
	rows := make([]finishRow, 0, len(ds))
	retry := make([]bool, 0, len(ds))
	pre := s.prefetch(ctx, ds, zoom)
	for i, d := range ds {
		out, err := s.dispatch(ctx, *d, pre.zoom[i], &pre)
		if out.bookingID != "" {
			pre.touch(out.bookingID)
		}
		row := finishRow{id: d.ID, status: StatusProcessed, bookingID: out.bookingID, note: out.note}
		if err != nil {
			s.metrics.processed.WithLabelValues(d.Provider, StatusFailed).Inc()
			s.deliveryLog(*d, out).WarnContext(ctx, "webhook processing failed", "attempt", max(d.Attempts, 1), "error", err.Error())
			row.status, row.lastErr = StatusFailed, truncate(err.Error(), 500)
			if !errors.Is(err, ErrUndecodable) {
				failed = append(failed, fmt.Errorf("delivery %s: %w", d.ID, err))
			}
			retry = append(retry, !errors.Is(err, ErrUndecodable))
		} else {
			s.metrics.processed.WithLabelValues(d.Provider, StatusProcessed).Inc()
			if s.log.Enabled(ctx, slog.LevelInfo) {
				s.deliveryLog(*d, out).InfoContext(ctx, "webhook processed", "note", out.note)
			}
			retry = append(retry, false)
		}
		rows = append(rows, row)
	}
	release()
	now := s.now()
	if len(spans) == 0 {
		return failed, s.committer.record(context.WithoutCancel(ctx), &finishReq{rows: rows, now: now, retry: len(failed) > 0})
	}
	fins := make([]*finishReq, 0, len(spans))
	for _, sp := range spans {
		fins = append(fins, &finishReq{rows: rows[:sp.n], now: now, jobID: sp.id, retry: slices.Contains(retry[:sp.n], true)})
		rows, retry = rows[sp.n:], retry[sp.n:]
	}
	return failed, s.committer.record(context.WithoutCancel(ctx), fins...)
}

// deliveryLog is the logger of one delivery's processing.
func (s *Service) deliveryLog(d Delivery, out outcome) *slog.Logger {
	log := s.log.With("provider", d.Provider, "webhook_id", d.ID, "event", d.EventType)
	if out.bookingID != "" {
		log = log.With("booking_id", out.bookingID)
	}
	return log
}

// prefetched is what Process learned about a job's deliveries up front.
type prefetched struct {
	// zoom holds the decoded Zoom events, aligned with the deliveries (nil:
	// not decoded).
	zoom []*ZoomEvent
	// meetings holds the bookings of the job's Zoom meetings by meeting id,
	// when looked up at once (ok); a meeting missing from it has none.
	meetings map[string]Booking
	ok       bool
	// touched holds the bookings an earlier delivery of the job acted on:
	// their prefetched state may be stale, so they are looked up again.
	touched map[string]bool
}

// touch records that a delivery acted on booking id.
func (p *prefetched) touch(id string) {
	if p.touched == nil {
		p.touched = map[string]bool{}
	}
	p.touched[id] = true
}

// prefetch decodes the job's Zoom deliveries (or takes them from zoom, the
// events intake decoded, aligned with ds; prefetch fills it in) and, when
// Bookings implements MeetingLookup, finds the bookings of all their
// meetings with one query. A failed lookup is not an error: each delivery
// then looks up its own.
func (s *Service) prefetch(ctx context.Context, ds []*Delivery, zoom []*ZoomEvent) prefetched {
	if zoom == nil {
		zoom = make([]*ZoomEvent, len(ds))
	}
	pre := prefetched{zoom: zoom}
	var ids []string
	for i, d := range ds {
		if d.Provider != ProviderZoom {
			continue
		}
		ev := zoom[i]
		if ev == nil {
			var err error
			if ev, err = decodeZoom(d.Body, true); err != nil {
				continue // processZoom decodes again and reports it
			}
		}
		zoom[i] = ev
		if id := ev.Meeting.ID; zoomHandled(ev.Event) && id != "" {
			ids = append(ids, id)
		}
	}
	// Each meeting once (sorted: a map to keep the order cost an allocation
	// per job, and the lookup's answer is a map).
	slices.Sort(ids)
	ids = slices.Compact(ids)
	ml, ok := s.cfg.Bookings.(MeetingLookup)
	if !ok || len(ids) < 2 {
		return pre
	}
	m, err := ml.FindByMeetings(ctx, ids)
	if err != nil {
		s.log.WarnContext(ctx, "webhook processing: batched meeting lookup failed; looking up one by one", "error", err.Error())
		return pre
	}
	pre.meetings, pre.ok = m, true
	return pre
}

// findMeeting returns the booking of a Zoom meeting: prefetched when it was
// and no earlier delivery of the job acted on it, else looked up now.
func (s *Service) findMeeting(ctx context.Context, pre *prefetched, meetingID string) (Booking, bool, error) {
	if pre != nil && pre.ok {
		b, ok := pre.meetings[meetingID]
		if !ok {
			return Booking{}, false, nil
		}
		if !pre.touched[b.ID] {
			return b, true, nil
		}
	}
	return find(s.cfg.Bookings.FindByMeeting(ctx, meetingID))
}

// zoomHandled reports the Zoom events processing acts on.
func zoomHandled(event string) bool {
	switch event {
	case ZoomMeetingStarted, ZoomMeetingEnded, ZoomParticipantJoined, ZoomParticipantLeft, ZoomMeetingDeleted, ZoomMeetingUpdated:
		return true
	}
	return false
}

// dispatch runs the provider's processor; zoom is d's decoded Zoom event
// (nil: not decoded). A refusal by the booking service is an outcome, not
// an error.
func (s *Service) dispatch(ctx context.Context, d Delivery, zoom *ZoomEvent, pre *prefetched) (outcome, error) {
	var (
		out outcome
		err error
	)
	switch d.Provider {
	case ProviderZoom:
		out, err = s.processZoom(ctx, d, zoom, pre)
	case ProviderJira:
		out, err = s.processJira(ctx, d)
	case ProviderGoogle:
		out, err = s.processGoogle(ctx, d)
	default:
		err = fmt.Errorf("%w: unknown provider %q", ErrUndecodable, d.Provider)
	}
	if errors.Is(err, ErrRefused) {
		// The booking service will never accept this change; keep the reason.
		out.note = truncate("booking refused: "+err.Error(), 500)
		err = nil
	}
	return out, err
}

// putBackReason is the audit reason of a put-back, in sentences for the
// booking's candidate and mentor: what happened outside the gateway, why
// the booking refused it (the words of a *RefusedError), and what was done.
// The error chain stays in the log and the admin's delivery note.
func putBackReason(what string, refusal error, done string) string {
	var re *RefusedError
	if errors.As(refusal, &re) && re.Reason != "" {
		what += ": " + re.Reason
	}
	return what + ". " + done
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// find runs a booking lookup, turning "not found" into ok=false.
func find(b Booking, err error) (Booking, bool, error) {
	if errors.Is(err, ErrBookingNotFound) {
		return Booking{}, false, nil
	}
	if err != nil {
		return Booking{}, false, err
	}
	return b, true, nil
}

// ErrBookingBusy is returned while a booking's own change (creation or a
// reschedule) is still propagating to the providers: an external time seen
// now may be the gateway's old or new state. The job is retried (and a
// calendar cursor is not advanced), so the change is judged once the
// booking has settled.
var ErrBookingBusy = errors.New("webhooks: booking change in flight; retrying later")

// inFlight reports a booking whose own change is still propagating.
func inFlight(b Booking) bool {
	return b.Status == BookingPending || b.Status == BookingRescheduled
}

const (
	actorZoom = "webhook:zoom"
	actorJira = "webhook:jira"
)

func (s *Service) processZoom(ctx context.Context, d Delivery, ev *ZoomEvent, pre *prefetched) (outcome, error) {
	if ev == nil {
		var err error
		if ev, err = decodeZoom(d.Body, true); err != nil {
			return outcome{}, err
		}
	}
	if !zoomHandled(ev.Event) {
		return outcome{note: "event not handled"}, nil
	}
	if ev.Meeting.ID == "" {
		return outcome{note: "no meeting id"}, nil
	}
	if s.cfg.Bookings == nil {
		return outcome{}, errors.New("webhooks: no booking service")
	}
	b, ok, err := s.findMeeting(ctx, pre, ev.Meeting.ID)
	if err != nil {
		return outcome{}, fmt.Errorf("find booking of meeting: %w", err)
	}
	if !ok {
		return outcome{note: "no booking for the meeting"}, nil
	}
	out := outcome{bookingID: b.ID}
	switch ev.Event {
	case ZoomMeetingStarted, ZoomMeetingEnded, ZoomMeetingDeleted:
		if inFlight(b) && !b.ended() {
			// Judged once the booking's own change has settled (the saga
			// may be creating it, or deleting the meeting to compensate).
			return out, ErrBookingBusy
		}
	}
	switch ev.Event {
	case ZoomMeetingStarted:
		switch {
		case b.ended() || b.Status == BookingInProgress:
			out.note = "booking already " + b.Status
			return out, nil
		case s.tooEarly(b, zoomEventTime(ev, ev.Meeting.StartTime)):
			out.note = "meeting started more than " + noteDuration(s.cfg.EarlyStart) + " before the session (a test of the link?); booking unchanged"
			return out, nil
		}
		out.note = "booking in progress"
		return out, s.cfg.Bookings.SetStatus(ctx, b.ID, BookingInProgress, actorZoom, "Zoom meeting started")
	case ZoomMeetingEnded:
		if b.ended() {
			out.note = "booking already " + b.Status
			return out, nil
		}
		// An instance that ended before the session started is the
		// session's end only if it made the booking in progress: not when
		// the booking is not, nor when the instance itself started too
		// early to count (a test of the link whose end arrives late, a
		// retry, while the session runs in a later instance).
		if s.cfg.EarlyStart > 0 && zoomEventTime(ev, ev.Meeting.EndTime).Before(b.Start) &&
			(b.Status != BookingInProgress || !ev.Meeting.StartTime.IsZero() && s.tooEarly(b, ev.Meeting.StartTime)) {
			out.note = "meeting ended before the session started; booking unchanged"
			return out, nil
		}
		out.note = "booking completed"
		return out, s.cfg.Bookings.SetStatus(ctx, b.ID, BookingCompleted, actorZoom, "Zoom meeting ended")
	case ZoomParticipantJoined, ZoomParticipantLeft:
		p := ev.Participant
		if p == nil {
			out.note = "no participant"
			return out, nil
		}
		at := p.At
		if at.IsZero() {
			at = time.UnixMilli(ev.TS).UTC()
		}
		a := Attendance{ParticipantID: p.UserID, Name: p.UserName, Email: p.Email, Joined: ev.Event == ZoomParticipantJoined, At: at}
		out.note = "attendance recorded"
		return out, s.cfg.Bookings.RecordAttendance(ctx, b.ID, a)
	case ZoomMeetingDeleted:
		if b.ended() {
			out.note = "booking already " + b.Status
			return out, nil
		}
		err := s.cfg.Bookings.Cancel(ctx, b.ID, actorZoom, "The Zoom meeting was deleted in Zoom.")
		if errors.Is(err, ErrRefused) {
			// The session cannot be cancelled (it is under way): the
			// booking gets its meeting back (a new one, Zoom's is gone).
			reason := putBackReason("The Zoom meeting was deleted while the booking cannot be cancelled", err, "A new meeting takes its place.")
			if rerr := s.cfg.Bookings.Restore(ctx, b.ID, ArtefactMeeting, actorZoom, reason); rerr != nil {
				return out, fmt.Errorf("restore meeting: %w", rerr)
			}
			out.note = truncate("booking refused the cancel; meeting put back: "+err.Error(), 500)
			return out, nil
		}
		out.note = "booking cancelled: meeting deleted in Zoom"
		return out, err
	default: // ZoomMeetingUpdated
		return s.zoomTimeChange(ctx, ev, b)
	}
}

// zoomTimeChange applies the time change policy to meeting.updated.
func (s *Service) zoomTimeChange(ctx context.Context, ev *ZoomEvent, b Booking) (outcome, error) {
	out := outcome{bookingID: b.ID}
	m := ev.Meeting
	if m.StartTime.IsZero() && m.Duration == 0 {
		out.note = "no time change"
		return out, nil
	}
	start := b.Start
	if !m.StartTime.IsZero() {
		start = m.StartTime
	}
	dur := b.End.Sub(b.Start)
	if m.Duration > 0 {
		dur = time.Duration(m.Duration) * time.Minute
	}
	end := start.Add(dur)
	switch {
	case start.Equal(b.Start) && end.Equal(b.End):
		out.note = "time matches the booking"
		return out, nil
	case b.ended():
		out.note = "booking already " + b.Status
		return out, nil
	case inFlight(b):
		return out, ErrBookingBusy
	}
	if s.cfg.Meetings != nil {
		// What the meeting is now decides, not what this event said.
		cur, d, err := s.cfg.Meetings.MeetingTime(ctx, m.ID)
		if errors.Is(err, ErrMeetingGone) {
			out.note = "meeting gone since; its meeting.deleted decides"
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read the meeting's current time: %w", err)
		}
		if cur.Equal(b.Start) && cur.Add(d).Equal(b.End) {
			out.note = "time matches the booking (the event is older than the meeting's current time)"
			return out, nil
		}
		start, end = cur, cur.Add(d)
	}
	if s.cfg.TimeChange == Flag {
		out.note = fmt.Sprintf("flagged: Zoom moved the meeting to %s–%s (policy: flag)", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		s.log.WarnContext(ctx, "zoom meeting time changed outside the gateway", "provider", ProviderZoom, "booking_id", b.ID)
		return out, nil
	}
	err := s.cfg.Bookings.Reschedule(ctx, b.ID, start, end, ArtefactMeeting, actorZoom, "The Zoom meeting time was changed in Zoom.")
	if errors.Is(err, ErrRefused) {
		// The booking cannot go there: it stays, and so must its meeting.
		reason := putBackReason("The Zoom meeting was moved to a time the booking cannot take", err, "It was put back.")
		if rerr := s.cfg.Bookings.Restore(ctx, b.ID, ArtefactMeeting, actorZoom, reason); rerr != nil {
			return out, fmt.Errorf("restore meeting: %w", rerr)
		}
		out.note = truncate("booking refused the Zoom meeting time; meeting put back: "+err.Error(), 500)
		return out, nil
	}
	out.note = "booking rescheduled to the Zoom meeting time"
	return out, err
}

func (s *Service) processJira(ctx context.Context, d Delivery) (outcome, error) {
	ev, err := DecodeJira(d.Body, s.cfg.JiraBookingField)
	if err != nil {
		return outcome{}, err
	}
	if ev.Event != jira.EventIssueUpdated {
		return outcome{note: "event not handled"}, nil
	}
	var moved *jira.ChangelogItem
	for i, it := range ev.Changelog {
		if strings.EqualFold(it.Field, "status") && strings.EqualFold(strings.TrimSpace(it.ToString), s.cfg.JiraCancelStatus) {
			moved = &ev.Changelog[i]
		}
	}
	if moved == nil || ev.Issue == nil {
		return outcome{note: "no move to the cancel status"}, nil
	}
	if s.cfg.JiraAccountID != nil {
		own, err := s.cfg.JiraAccountID(ctx)
		if err != nil {
			return outcome{}, fmt.Errorf("own jira account: %w", err)
		}
		if own != "" && ev.AccountID == own {
			return outcome{note: "change made by the gateway"}, nil
		}
	}
	if s.cfg.Bookings == nil {
		return outcome{}, errors.New("webhooks: no booking service")
	}
	var b Booking
	var ok bool
	if ev.Issue.BookingID != "" {
		b, ok, err = find(s.cfg.Bookings.Get(ctx, ev.Issue.BookingID))
	} else {
		b, ok, err = find(s.cfg.Bookings.FindByIssue(ctx, ev.Issue.Key))
	}
	if err != nil {
		return outcome{}, fmt.Errorf("find booking of issue: %w", err)
	}
	if !ok {
		return outcome{note: "no booking for the issue"}, nil
	}
	out := outcome{bookingID: b.ID}
	if b.Issue != "" && !strings.EqualFold(b.Issue, ev.Issue.Key) {
		// The booking field found it, but the issue is not the one the
		// gateway made: a clone (or a copy) carries the field along.
		out.note = "issue " + ev.Issue.Key + " is not the booking's issue " + b.Issue + " (a clone?): ignored"
		return out, nil
	}
	switch {
	case b.Status == BookingCompleted:
		// The session took place: the issue goes back to the status
		// that says so, as for a session under way.
		reason := putBackReason(fmt.Sprintf("The Jira issue was moved to %s after the session took place", moved.ToString), nil, "It was put back.")
		if rerr := s.cfg.Bookings.Restore(ctx, b.ID, ArtefactIssue, actorJira, reason); rerr != nil {
			return out, fmt.Errorf("restore issue: %w", rerr)
		}
		out.note = "booking already completed; issue put back"
		return out, nil
	case b.ended():
		out.note = "booking already " + b.Status
		return out, nil
	}
	err = s.cfg.Bookings.Cancel(ctx, b.ID, actorJira, fmt.Sprintf("Jira issue %s was moved to %s.", ev.Issue.Key, moved.ToString))
	if errors.Is(err, ErrRefused) {
		// The session cannot be cancelled (it is under way): the issue
		// goes back to the booking's status.
		reason := putBackReason(fmt.Sprintf("The Jira issue was moved to %s while the booking cannot be cancelled", moved.ToString), err, "It was put back.")
		if rerr := s.cfg.Bookings.Restore(ctx, b.ID, ArtefactIssue, actorJira, reason); rerr != nil {
			return out, fmt.Errorf("restore issue: %w", rerr)
		}
		out.note = truncate("booking refused the cancel; issue put back: "+err.Error(), 500)
		return out, nil
	}
	out.note = "booking cancelled: issue moved to " + s.cfg.JiraCancelStatus
	return out, err
}

func (s *Service) processGoogle(ctx context.Context, d Delivery) (outcome, error) {
	chID := d.Headers["X-Goog-Channel-Id"]
	if chID == "" || s.cfg.Channels == nil {
		return outcome{}, fmt.Errorf("%w: google notification without channel", ErrUndecodable)
	}
	ch, err := s.cfg.Channels.LookupChannel(ctx, chID)
	if errors.Is(err, ErrUnknownChannel) {
		return outcome{note: "channel no longer exists"}, nil
	}
	if err != nil {
		return outcome{}, err
	}
	// A channel replaced by its renewal watched the same calendar: its
	// notification is synced like the new channel's.
	res, err := s.SyncCalendar(ctx, Source{Provider: SourceGoogle, UserID: ch.UserID, CalendarID: ch.CalendarID})
	out := outcome{note: res.String()}
	if ch.ReplacedBy != "" {
		out.note += " (notified on a channel renewed since)"
	}
	if len(res.Bookings) == 1 {
		out.bookingID = res.Bookings[0]
	}
	return out, err
}

// tooEarly reports whether a meeting that started at t started too long
// before booking b to be its session (Config.EarlyStart).
func (s *Service) tooEarly(b Booking, t time.Time) bool {
	return s.cfg.EarlyStart > 0 && t.Before(b.Start.Add(-s.cfg.EarlyStart))
}

// zoomEventTime is when a Zoom event happened: the time its payload gives
// (the meeting's start_time or end_time), else event_ts.
func zoomEventTime(ev *ZoomEvent, payload time.Time) time.Time {
	if !payload.IsZero() {
		return payload
	}
	return time.UnixMilli(ev.TS)
}

// noteDuration writes d for a note: "1 h", "45 min".
func noteDuration(d time.Duration) string {
	if d = d.Round(time.Minute); d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return fmt.Sprintf("%d min", d/time.Minute)
}
