package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
)

// eventIDPrefix starts every calendar.EventID.
var eventIDPrefix = calendar.EventID("x")[:2]

// cursors stores calendar sync cursors.
type cursors struct {
	db *store.Store
}

func (c *cursors) get(ctx context.Context, src Source) (string, error) {
	var cur string
	err := c.db.DB().QueryRowContext(ctx, c.db.Rebind(`SELECT cursor FROM webhook_calendar_cursors
		WHERE provider = ? AND user_id = ? AND calendar_id = ?`), src.Provider, src.UserID, src.CalendarID).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("webhooks: read sync cursor: %w", err)
	}
	return cur, nil
}

func (c *cursors) put(ctx context.Context, src Source, cur string, now time.Time) error {
	_, err := c.db.DB().ExecContext(ctx, c.db.Rebind(`INSERT INTO webhook_calendar_cursors (provider, user_id, calendar_id, cursor, synced_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, user_id, calendar_id) DO UPDATE SET cursor = excluded.cursor, synced_at = excluded.synced_at`),
		src.Provider, src.UserID, src.CalendarID, cur, micros(now))
	if err != nil {
		return fmt.Errorf("webhooks: store sync cursor: %w", err)
	}
	return nil
}

// SyncResult says what one calendar sync did.
type SyncResult struct {
	// Changes is the number of changed events seen.
	Changes int
	// Cancelled and Rescheduled count the booking actions taken; Refused
	// the changes the booking refused (their events are put back).
	Cancelled, Rescheduled, Refused int
	// Bookings are the ids of the bookings acted on.
	Bookings []string
	// Reset reports a full resync after an expired cursor.
	Reset bool
	// Missing counts the session events of live bookings that a complete
	// listing no longer showed, confirmed gone and handled as deletions
	// (each is counted in Cancelled or Refused too).
	Missing int
	// Unavailable reports a calendar that is no longer connected or no
	// longer exists: nothing was synced.
	Unavailable bool
}

// String summarises r for the delivery note.
func (r SyncResult) String() string {
	if r.Unavailable {
		return "calendar no longer connected or deleted: nothing to sync"
	}
	s := fmt.Sprintf("synced %d changes: %d cancelled, %d rescheduled", r.Changes, r.Cancelled, r.Rescheduled)
	if r.Refused > 0 {
		s += fmt.Sprintf(", %d refused and put back", r.Refused)
	}
	if r.Missing > 0 {
		s += fmt.Sprintf("; %d session events missing from the full listing, handled as deleted", r.Missing)
	}
	if r.Reset {
		s += " (full resync)"
	}
	return s
}

// SyncCalendar reads the changes of a connected calendar since the stored
// cursor and applies those of booking events: an event the mentor deleted
// cancels the booking, an event moved reschedules it, both through the
// booking area's normal paths; a change the booking refuses is put back.
// In the candidate's calendar a moved copy is put back and a deleted one
// left deleted (until a reschedule writes the session's new time there). Events of bookings that are already over, or whose own
// change is still propagating, and events whose time matches the booking
// (the gateway's own writes) are left alone.
//
// A complete listing (calendar.ChangeSet.Complete: after a CalDAV server
// refused the stored sync token, or a listing of every member) reports no
// deletions: the mentor's session events it no longer shows (see
// applyMissing) are handled as the deletions they are.
//
// The cursor is stored only when every change was applied, so a failure
// re-reads them.
func (s *Service) SyncCalendar(ctx context.Context, src Source) (SyncResult, error) {
	var res SyncResult
	if s.cfg.Calendars == nil || s.cfg.Bookings == nil {
		return res, errors.New("webhooks: calendar sync needs Calendars and Bookings")
	}
	cal, err := s.cfg.Calendars.Open(ctx, src)
	if errors.Is(err, ErrCalendarUnavailable) {
		res.Unavailable = true
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("webhooks: open %s calendar: %w", src.Provider, err)
	}
	cur, err := s.cursors.get(ctx, src)
	if err != nil {
		return res, err
	}
	cs, err := cal.Changes(ctx, cur)
	if errors.Is(err, calendar.ErrCalendarNotFound) {
		// Deleted by its owner: its bookings' events went with it, and
		// the connection stops using it (see connect's status error).
		s.log.WarnContext(ctx, "synced calendar is gone", "provider", src.Provider, "user", src.UserID)
		res.Unavailable = true
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("webhooks: %s changes: %w", src.Provider, err)
	}
	res.Changes, res.Reset = len(cs.Changes), cs.Reset
	var errs []error
	for _, ch := range cs.Changes {
		if err := s.applyChange(ctx, src, ch, &res); err != nil {
			errs = append(errs, err)
		}
	}
	if cs.Complete {
		gone, err := s.applyMissing(ctx, src, cal, cs, &res)
		if gone {
			s.log.WarnContext(ctx, "synced calendar is gone", "provider", src.Provider, "user", src.UserID)
			res.Unavailable = true
			return res, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	if cs.Cursor != "" && cs.Cursor != cur {
		if err := s.cursors.put(ctx, src, cs.Cursor, s.now()); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (s *Service) applyChange(ctx context.Context, src Source, ch calendar.Change, res *SyncResult) error {
	// Events the gateway wrote have ids derived from the booking id
	// (calendar.EventID); others need no lookup.
	if ch.BookingID == "" && !strings.HasPrefix(ch.ID, eventIDPrefix) {
		return nil
	}
	// Only the booking's own event decides: a copy of it (duplicated,
	// imported, restored from a backup) carries the booking's marker under
	// another id, and neither its time nor its deletion is the session's.
	if ch.BookingID != "" && ch.ID != "" && ch.ID != calendar.EventID(ch.BookingID) {
		return nil
	}
	var (
		b   Booking
		ok  bool
		err error
	)
	if ch.BookingID != "" {
		b, ok, err = find(s.cfg.Bookings.Get(ctx, ch.BookingID))
	} else if ch.ID != "" {
		b, ok, err = find(s.cfg.Bookings.FindByEvent(ctx, ch.ID))
	}
	if err != nil {
		return fmt.Errorf("webhooks: find booking of event: %w", err)
	}
	if !ok || b.ended() {
		return nil
	}
	actor := "webhook:" + src.Provider
	if b.MentorID != "" && src.UserID != "" && b.MentorID != src.UserID {
		// Only the mentor's calendar decides. A candidate removing the
		// event from their own calendar does not cancel the session (the
		// copy is theirs to drop), but a copy moved to another time would
		// show them a time the session does not take place at: it is put
		// back.
		if src.UserID != b.CandidateID || !moved(ch, b) {
			return nil
		}
		if inFlight(b) {
			return fmt.Errorf("booking %s: %w", b.ID, ErrBookingBusy)
		}
		return s.putBack(ctx, src, b.ID, ArtefactCandidateEvent, actor,
			"The candidate moved their copy of the calendar event; only the mentor's calendar or a reschedule moves the session", nil, res)
	}
	if inFlight(b) {
		return fmt.Errorf("booking %s: %w", b.ID, ErrBookingBusy)
	}
	switch {
	case ch.Deleted:
		err := s.cfg.Bookings.Cancel(ctx, b.ID, actor, "The mentor deleted the calendar event.")
		if errors.Is(err, ErrRefused) {
			return s.putBack(ctx, src, b.ID, ArtefactMentorEvent, actor, "The mentor deleted the calendar event while the booking cannot be cancelled", err, res)
		}
		if err != nil {
			return fmt.Errorf("webhooks: cancel booking %s: %w", b.ID, err)
		}
		res.Cancelled++
		res.Bookings = append(res.Bookings, b.ID)
	case moved(ch, b):
		err := s.cfg.Bookings.Reschedule(ctx, b.ID, ch.Event.Start, ch.Event.End, ArtefactMentorEvent, actor, "The mentor moved the calendar event.")
		if errors.Is(err, ErrRefused) {
			return s.putBack(ctx, src, b.ID, ArtefactMentorEvent, actor, "The mentor moved the calendar event to a time the booking cannot take", err, res)
		}
		if err != nil {
			return fmt.Errorf("webhooks: reschedule booking %s: %w", b.ID, err)
		}
		res.Rescheduled++
		res.Bookings = append(res.Bookings, b.ID)
	}
	return nil
}

// applyMissing handles the session events the gateway wrote to src's
// calendar for live bookings of its user as mentor (Bookings.MentorEvents)
// that the complete listing cs shows neither as a change nor as present:
// the mentor deleted them while no delta could say so. Each is handled
// exactly as a deletion seen in a delta (applyChange).
//
// Absence from a listing alone is not taken as a deletion: the event is
// read on its own first, and only an event the calendar answers is not
// there counts (one created after the listing was taken is there; a read
// that fails is an error, and the sync is tried again with its cursor
// kept). Should the calendar itself turn out to be gone by then, gone is
// true and nothing was done, as for a sync of a deleted calendar.
func (s *Service) applyMissing(ctx context.Context, src Source, cal calendar.Calendar, cs calendar.ChangeSet, res *SyncResult) (gone bool, err error) {
	placed, err := s.cfg.Bookings.MentorEvents(ctx, src)
	if err != nil {
		return false, fmt.Errorf("webhooks: list session events of the %s calendar: %w", src.Provider, err)
	}
	if len(placed) == 0 {
		return false, nil
	}
	listed := make(map[string]bool, len(cs.Present)+len(cs.Changes))
	for _, id := range cs.Present {
		listed[id] = true
	}
	for _, ch := range cs.Changes {
		listed[ch.ID] = true // a deletion among them was applied already
	}
	var (
		missing []PlacedEvent
		errs    []error
	)
	for _, pe := range placed {
		if pe.EventID == "" || listed[pe.EventID] || pe.EventID != calendar.EventID(pe.BookingID) {
			continue
		}
		_, err := cal.GetEvent(ctx, pe.BookingID)
		switch {
		case err == nil:
			// Written after the listing was taken.
		case errors.Is(err, calendar.ErrNotFound):
			missing = append(missing, pe)
		default:
			errs = append(errs, fmt.Errorf("webhooks: read session event of booking %s: %w", pe.BookingID, err))
		}
	}
	if len(missing) == 0 {
		return false, errors.Join(errs...)
	}
	// An event's own read cannot tell a deleted event from a deleted
	// calendar: ask the calendar as a whole.
	if _, err := cal.Changes(ctx, cs.Cursor); errors.Is(err, calendar.ErrCalendarNotFound) {
		return true, nil
	} else if err != nil {
		return false, errors.Join(append(errs, fmt.Errorf("webhooks: %s calendar check: %w", src.Provider, err))...)
	}
	for _, pe := range missing {
		acted := res.Cancelled + res.Refused
		if err := s.applyChange(ctx, src, calendar.Change{ID: pe.EventID, BookingID: pe.BookingID, Deleted: true}, res); err != nil {
			errs = append(errs, err)
		}
		if res.Cancelled+res.Refused > acted {
			res.Missing++
		}
	}
	return false, errors.Join(errs...)
}

// moved reports whether ch is the event at another (valid) time than
// booking b's.
func moved(ch calendar.Change, b Booking) bool {
	return ch.Event != nil && !ch.Event.Start.IsZero() && ch.Event.End.After(ch.Event.Start) &&
		(!ch.Event.Start.Equal(b.Start) || !ch.Event.End.Equal(b.End))
}

// putBack handles a change of booking id's event in a calendar (artefact:
// the mentor's or the candidate's event) that the booking does not follow:
// refused by the booking service (refusal), or not the calendar's to make.
// The booking stays, so its event is put back as the booking has it. The
// change is handled, and the cursor may move on.
func (s *Service) putBack(ctx context.Context, src Source, id string, artefact Artefact, actor, what string, refusal error, res *SyncResult) error {
	args := []any{"booking_id", id, "provider", src.Provider, "artefact", string(artefact)}
	if refusal != nil {
		args = append(args, "error", refusal.Error())
	}
	s.log.InfoContext(ctx, "calendar change refused; restoring the event", args...)
	if err := s.cfg.Bookings.Restore(ctx, id, artefact, actor, putBackReason(what, refusal, "It was put back.")); err != nil {
		return fmt.Errorf("webhooks: restore event of booking %s: %w", id, err)
	}
	res.Refused++
	res.Bookings = append(res.Bookings, id)
	return nil
}

// RenewChannelsArgs is the periodic job that renews expiring Google channels.
type RenewChannelsArgs struct{}

// Kind implements river.JobArgs.
func (RenewChannelsArgs) Kind() string { return "webhook_channel_renew" }

// PollCalendarsArgs is the periodic job that syncs polled (CalDAV) calendars.
type PollCalendarsArgs struct{}

// Kind implements river.JobArgs.
func (PollCalendarsArgs) Kind() string { return "webhook_caldav_poll" }

// SyncPushedArgs is the periodic job that syncs calendars with push
// (Google) in case a notification never came.
type SyncPushedArgs struct{}

// Kind implements river.JobArgs.
func (SyncPushedArgs) Kind() string { return "webhook_google_sync" }

// RenewWorker works RenewChannelsArgs.
type RenewWorker struct {
	river.WorkerDefaults[RenewChannelsArgs]
	s *Service
}

// Work implements river.Worker.
func (w *RenewWorker) Work(ctx context.Context, _ *river.Job[RenewChannelsArgs]) error {
	_, err := w.s.RenewChannels(ctx)
	return err
}

// PollWorker works PollCalendarsArgs.
type PollWorker struct {
	river.WorkerDefaults[PollCalendarsArgs]
	s *Service
}

// Work implements river.Worker.
func (w *PollWorker) Work(ctx context.Context, _ *river.Job[PollCalendarsArgs]) error {
	_, err := w.s.PollCalendars(ctx)
	return err
}

// PushSyncWorker works SyncPushedArgs.
type PushSyncWorker struct {
	river.WorkerDefaults[SyncPushedArgs]
	s *Service
}

// Work implements river.Worker.
func (w *PushSyncWorker) Work(ctx context.Context, _ *river.Job[SyncPushedArgs]) error {
	_, err := w.s.SyncPushed(ctx)
	return err
}

// RenewWorker returns the channel renewal worker.
func (s *Service) RenewWorker() *RenewWorker { return &RenewWorker{s: s} }

// PollWorker returns the calendar polling worker.
func (s *Service) PollWorker() *PollWorker { return &PollWorker{s: s} }

// PushSyncWorker returns the worker of the periodic sync of calendars with
// push.
func (s *Service) PushSyncWorker() *PushSyncWorker { return &PushSyncWorker{s: s} }

// PeriodicJobs returns the periodic jobs: channel renewal (when Channels is
// set), calendar polling (when PollInterval and Calendars are set) and the
// sync of calendars with push (when PushSyncInterval and Calendars are set).
// River runs them on the elected leader only.
func (s *Service) PeriodicJobs() []*river.PeriodicJob {
	var out []*river.PeriodicJob
	if s.cfg.Channels != nil {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(s.cfg.ChannelRenewInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RenewChannelsArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true, ID: "webhook_channel_renew"}))
	}
	if s.cfg.PollInterval > 0 && s.cfg.Calendars != nil {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(s.cfg.PollInterval),
			func() (river.JobArgs, *river.InsertOpts) { return PollCalendarsArgs{}, nil },
			&river.PeriodicJobOpts{ID: "webhook_caldav_poll"}))
	}
	if s.cfg.PushSyncInterval > 0 && s.cfg.Calendars != nil {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(s.cfg.PushSyncInterval),
			func() (river.JobArgs, *river.InsertOpts) { return SyncPushedArgs{}, nil },
			&river.PeriodicJobOpts{ID: "webhook_google_sync"}))
	}
	return out
}

// RenewChannels renews the Google channels that expire within
// ChannelRenewBefore and returns how many it renewed. Then it syncs the
// calendar of each renewed channel (when Calendars is set): a notification
// the old channel sent before it was stopped but that arrives after is
// refused, and this sync applies its change instead of leaving it to the
// calendar's next notification or the periodic sync. A sync that fails is
// logged and returned; the renewal stands.
func (s *Service) RenewChannels(ctx context.Context) (int, error) {
	if s.cfg.Channels == nil {
		return 0, nil
	}
	renewed, err := s.cfg.Channels.RenewExpiring(ctx, s.now().Add(s.cfg.ChannelRenewBefore))
	var errs []error
	if err != nil {
		s.log.WarnContext(ctx, "google channel renewal failed", "provider", ProviderGoogle, "renewed", len(renewed), "error", err.Error())
		errs = append(errs, fmt.Errorf("webhooks: renew channels: %w", err))
	}
	if s.cfg.Calendars != nil {
		synced := map[Source]bool{}
		for _, ch := range renewed {
			src := Source{Provider: SourceGoogle, UserID: ch.UserID, CalendarID: ch.CalendarID}
			if synced[src] {
				continue
			}
			synced[src] = true
			if _, err := s.SyncCalendar(ctx, src); err != nil {
				s.log.WarnContext(ctx, "calendar sync after channel renewal failed", "provider", ProviderGoogle, "error", err.Error())
				errs = append(errs, err)
			}
		}
	}
	return len(renewed), errors.Join(errs...)
}

// PollCalendars syncs every polled calendar (Calendars.Polled). A calendar
// that fails is logged and the others still sync; the failures are
// returned joined.
func (s *Service) PollCalendars(ctx context.Context) (SyncResult, error) {
	if s.cfg.Calendars == nil {
		return SyncResult{}, nil
	}
	return s.syncAll(ctx, "polled", s.cfg.Calendars.Polled)
}

// SyncPushed syncs every calendar with push (Calendars.Pushed), as a
// notification would; like PollCalendars, a failure does not stop the
// others. A calendar whose notifications all arrived has nothing new.
func (s *Service) SyncPushed(ctx context.Context) (SyncResult, error) {
	if s.cfg.Calendars == nil {
		return SyncResult{}, nil
	}
	return s.syncAll(ctx, "pushed", s.cfg.Calendars.Pushed)
}

// syncAll syncs the calendars list returns (what names them in errors).
func (s *Service) syncAll(ctx context.Context, what string, list func(context.Context) ([]Source, error)) (SyncResult, error) {
	var total SyncResult
	srcs, err := list(ctx)
	if err != nil {
		return total, fmt.Errorf("webhooks: list %s calendars: %w", what, err)
	}
	var errs []error
	for _, src := range srcs {
		res, err := s.SyncCalendar(ctx, src)
		total.Changes += res.Changes
		total.Cancelled += res.Cancelled
		total.Rescheduled += res.Rescheduled
		total.Refused += res.Refused
		total.Bookings = append(total.Bookings, res.Bookings...)
		if err != nil {
			s.log.WarnContext(ctx, "periodic calendar sync failed", "provider", src.Provider, "calendars", what, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}
