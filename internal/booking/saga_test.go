package booking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// fakes record what the saga asked of the providers.

type fakeMeetings struct {
	mu       sync.Mutex
	live     map[string]Meeting // by booking
	starts   map[string]time.Time
	creates  int
	deletes  int
	next     int
	failWith error
	// updateFailWith fails updates only; transientUpdates fails the next
	// that many updates with a transient error.
	updateFailWith   error
	transientUpdates int
	// createFail, when set, may fail the nth create call (from 1);
	// createCalls records when each was made.
	createFail  func(n int) error
	createCalls []time.Time
	// updateFail, when set, may fail the nth update call (from 1), after
	// applying it when apply is true (the answer was lost).
	updateFail func(n int) (apply bool, err error)
	updates    int
	// deleteFailWith fails every delete; deleteCalls counts them.
	deleteFailWith error
	deleteCalls    int
}

func (f *fakeMeetings) CreateMeeting(ctx context.Context, spec MeetingSpec) (Meeting, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return Meeting{}, f.failWith
	}
	f.createCalls = append(f.createCalls, time.Now())
	if f.createFail != nil {
		if err := f.createFail(len(f.createCalls)); err != nil {
			return Meeting{}, err
		}
	}
	if m, ok := f.live[spec.BookingID]; ok {
		return m, nil
	}
	f.creates++
	f.next++
	m := Meeting{ID: fmt.Sprint(1000 + f.next), JoinURL: fmt.Sprintf("https://zoom.test/j/%d", 1000+f.next)}
	f.live[spec.BookingID] = m
	f.starts[spec.BookingID] = spec.Start
	return m, nil
}

// has reports whether the booking's meeting exists.
func (f *fakeMeetings) has(bookingID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.live[bookingID]
	return ok
}

// start returns the start time of the booking's meeting.
func (f *fakeMeetings) start(bookingID string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[bookingID]
}

// stats returns creates, deletes and live meetings.
func (f *fakeMeetings) stats() (int, int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates, f.deletes, len(f.live)
}

func (f *fakeMeetings) UpdateMeeting(ctx context.Context, ref string, spec MeetingSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.updateFailWith != nil {
		return f.updateFailWith
	}
	if f.transientUpdates > 0 {
		f.transientUpdates--
		return errors.New("zoom: HTTP 503")
	}
	if f.updateFail != nil {
		f.updates++
		if apply, err := f.updateFail(f.updates); err != nil {
			if apply {
				f.starts[spec.BookingID] = spec.Start
			}
			return err
		}
	}
	if m, ok := f.live[spec.BookingID]; ref != "" && (!ok || m.ID != ref) {
		return fmt.Errorf("zoom: meeting %s: %w", ref, ErrGone)
	}
	f.starts[spec.BookingID] = spec.Start
	return nil
}

// deleteOutside deletes the booking's meeting as its host would in Zoom.
func (f *fakeMeetings) deleteOutside(bookingID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, bookingID)
}

// meeting returns the booking's live meeting.
func (f *fakeMeetings) meeting(bookingID string) Meeting {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[bookingID]
}

func (f *fakeMeetings) DeleteMeeting(ctx context.Context, ref string, spec MeetingSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteCalls++
	if f.deleteFailWith != nil {
		return f.deleteFailWith
	}
	if _, ok := f.live[spec.BookingID]; ok {
		f.deletes++
		delete(f.live, spec.BookingID)
	}
	return nil
}

type fakeIssues struct {
	mu       sync.Mutex
	live     map[string]string // booking → key
	statuses map[string]Status // key → last status written
	joinURLs map[string]string // key → last join URL written
	updates  int
	deletes  int
	// ensureFailWith fails every EnsureIssue.
	ensureFailWith error
	// onEnsure, when set, runs first in every EnsureIssue.
	onEnsure func()
}

func (f *fakeIssues) EnsureIssue(ctx context.Context, spec IssueSpec) (string, error) {
	f.mu.Lock()
	hook := f.onEnsure
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ensureFailWith != nil {
		return "", f.ensureFailWith
	}
	if k, ok := f.live[spec.BookingID]; ok {
		return k, nil
	}
	k := fmt.Sprintf("SPOT-%d", len(f.live)+len(f.statuses)+1)
	f.live[spec.BookingID] = k
	return k, nil
}

func (f *fakeIssues) snapshot() (map[string]string, map[string]Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := map[string]string{}
	for k, v := range f.live {
		live[k] = v
	}
	st := map[string]Status{}
	for k, v := range f.statuses {
		st[k] = v
	}
	return live, st
}

func (f *fakeIssues) UpdateIssue(ctx context.Context, key string, spec IssueSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[key] = spec.Status
	f.joinURLs[key] = spec.JoinURL
	f.updates++
	return nil
}

func (f *fakeIssues) DeleteIssue(ctx context.Context, key string, spec IssueSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.live[spec.BookingID]; ok {
		f.deletes++
		delete(f.live, spec.BookingID)
	}
	return nil
}

type fakeCalendar struct {
	mu       sync.Mutex
	events   map[string]calendar.Event
	failWith error
	// busy and busyErr are FreeBusy's answer.
	busy    []calendar.Busy
	busyErr error
	// freeBusy records FreeBusy's ranges.
	freeBusy []Interval
	// onUpdate, when set, runs before an update and may fail it.
	onUpdate func() error
	updates  int
	// onCreate, when set, runs first in every CreateEvent.
	onCreate func()
}

func (c *fakeCalendar) FreeBusy(ctx context.Context, from, to time.Time) ([]calendar.Busy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.freeBusy = append(c.freeBusy, Interval{from, to})
	return c.busy, c.busyErr
}

func (c *fakeCalendar) CreateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	c.mu.Lock()
	hook := c.onCreate
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failWith != nil {
		return calendar.Event{}, c.failWith
	}
	ev.ID = calendar.EventID(ev.BookingID)
	c.events[ev.BookingID] = ev
	return ev, nil
}

func (c *fakeCalendar) UpdateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	c.mu.Lock()
	hook := c.onUpdate
	c.updates++
	c.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return calendar.Event{}, err
		}
	}
	return c.CreateEvent(ctx, ev)
}

// failUpdates makes every update run fn first.
func (c *fakeCalendar) failUpdates(fn func() error) {
	c.mu.Lock()
	c.onUpdate = fn
	c.mu.Unlock()
}

// start returns the start time of the booking's event.
func (c *fakeCalendar) start(bookingID string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[bookingID].Start
}

func (c *fakeCalendar) DeleteEvent(ctx context.Context, bookingID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.events, bookingID)
	return nil
}

func (c *fakeCalendar) GetEvent(ctx context.Context, bookingID string) (calendar.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev, ok := c.events[bookingID]
	if !ok {
		return calendar.Event{}, calendar.ErrNotFound
	}
	return ev, nil
}

func (c *fakeCalendar) Changes(ctx context.Context, cursor string) (calendar.ChangeSet, error) {
	return calendar.ChangeSet{}, nil
}

func (c *fakeCalendar) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

type fakeCalendars map[string]*fakeCalendar

func (f fakeCalendars) CalendarFor(ctx context.Context, user string) (calendar.Calendar, error) {
	if c, ok := f[user]; ok {
		return c, nil
	}
	return nil, ErrNotConnected
}

func (f fakeCalendars) BusyCalendars(ctx context.Context, user string) ([]calendar.Calendar, error) {
	if c, ok := f[user]; ok {
		return []calendar.Calendar{c}, nil
	}
	return nil, nil
}

// switchable gives the calendars of cals to the users that are connected:
// a test disconnects and reconnects users, and switches them to other
// calendars, while sagas run. A user's calendar is at place "fake:<user>"
// until switchTo moves the user to another.
type switchable struct {
	cals fakeCalendars
	mu   sync.Mutex
	off  map[string]bool
	// cur is the place of a user's calendar after a switch; at holds the
	// calendars switched to, by place; gone places cannot be reached.
	cur  map[string]string
	at   map[string]*fakeCalendar
	gone map[string]bool
}

func newSwitchable(cals fakeCalendars) *switchable {
	return &switchable{cals: cals, off: map[string]bool{}, cur: map[string]string{}, at: map[string]*fakeCalendar{}, gone: map[string]bool{}}
}

func (w *switchable) set(user string, connected bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.off[user] = !connected
}

// switchTo makes c, at place, the calendar user's booking events go to.
func (w *switchable) switchTo(user, place string, c *fakeCalendar) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur[user], w.at[place] = place, c
}

// unreachable makes place unreachable with the users' current credentials.
func (w *switchable) unreachable(place string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gone[place] = true
}

// lookup returns the calendar at place ("" the user's current one).
func (w *switchable) lookup(user, place string) (*fakeCalendar, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off[user] {
		return nil, "", ErrNotConnected
	}
	cur := w.cur[user]
	if cur == "" {
		cur = "fake:" + user
	}
	if place == "" {
		place = cur
	}
	if w.gone[place] {
		return nil, "", ErrNotConnected
	}
	if c, ok := w.at[place]; ok {
		return c, place, nil
	}
	if c, ok := w.cals[user]; ok && place == "fake:"+user {
		return c, place, nil
	}
	return nil, "", ErrNotConnected
}

func (w *switchable) PlacedCalendarFor(ctx context.Context, user string) (calendar.Calendar, string, error) {
	c, place, err := w.lookup(user, "")
	if err != nil {
		return nil, "", err
	}
	return c, place, nil
}

func (w *switchable) CalendarAt(ctx context.Context, user, place string) (calendar.Calendar, error) {
	c, _, err := w.lookup(user, place)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (w *switchable) CalendarFor(ctx context.Context, user string) (calendar.Calendar, error) {
	c, _, err := w.PlacedCalendarFor(ctx, user)
	return c, err
}

func (w *switchable) BusyCalendars(ctx context.Context, user string) ([]calendar.Calendar, error) {
	c, _, err := w.lookup(user, "")
	if err != nil {
		return nil, nil
	}
	return []calendar.Calendar{c}, nil
}

type sagaEnv struct {
	svc      *Service
	meetings *fakeMeetings
	issues   *fakeIssues
	cals     fakeCalendars
	// conn connects and disconnects the users of cals.
	conn *switchable
}

func newSagaEnv(t *testing.T, s *store.Store, fastPath bool) *sagaEnv {
	t.Helper()
	en := &sagaEnv{
		meetings: &fakeMeetings{live: map[string]Meeting{}, starts: map[string]time.Time{}},
		issues:   &fakeIssues{live: map[string]string{}, statuses: map[string]Status{}, joinURLs: map[string]string{}},
		cals: fakeCalendars{
			"mentor": {events: map[string]calendar.Event{}},
			"cand":   {events: map[string]calendar.Event{}},
		},
	}
	en.conn = newSwitchable(en.cals)
	var jobs *store.Jobs
	svc, err := New(Config{Store: s, Jobs: func() *store.Jobs { return jobs }, Meetings: en.meetings, Issues: en.issues,
		Calendars: en.conn, SyncTimeout: 2 * time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
		DurableDelay: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc.noFastPath = !fastPath
	en.svc = svc
	workers := river.NewWorkers()
	river.AddWorker(workers, svc.Worker())
	jobs, err = store.NewJobs(s, store.JobsConfig{Workers: workers, Work: true, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Close(ctx)
		_ = jobs.Stop(ctx)
	})
	var hs []WorkingHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		hs = append(hs, WorkingHours{Weekday: d, StartMin: 0, EndMin: 1440})
	}
	if _, err := svc.PutSchedule(t.Context(), Actor{ID: "mentor", Mentor: true}, Schedule{MentorID: "mentor", TimeZone: "UTC",
		WorkingHours: hs, Slot: time.Hour, MaxAdvance: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return en
}

func (en *sagaEnv) book(t *testing.T, key string, start time.Time) Result {
	t.Helper()
	res, err := en.svc.Create(t.Context(), Actor{ID: "cand", Candidate: true}, CreateRequest{MentorID: "mentor", Start: start,
		Duration: time.Hour, TimeZone: "Europe/Berlin", Topic: "t", IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitFor polls the booking until cond holds.
func (en *sagaEnv) waitFor(t *testing.T, id string, within time.Duration, cond func(Booking) bool) Booking {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := en.svc.Lookup(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("booking %s: condition not reached: %+v", id, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func actions(t *testing.T, svc *Service, id string) []string {
	t.Helper()
	recs, _, err := svc.Audit(t.Context(), Actor{ID: "root", Admin: true}, id, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Action)
	}
	return out
}

func allSettled(b Booking) bool {
	for _, st := range b.Steps {
		if !stepSettled(b.op, st, b.SpecVersion) {
			return false
		}
	}
	return true
}

// TestSagaCompensation: the mentor calendar fails permanently after the
// meeting, the candidate event and the issue were created; all are removed
// and the booking fails with the reason.
func TestSagaCompensation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.cals["mentor"].failWith = Permanent(errors.New("calendar: forbidden"))
		res := en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour))
		b := en.waitFor(t, res.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusFailed && allSettled(b) })
		if res.Done {
			t.Error("a failed booking reported done")
		}
		// In words for the booking's people; no provider error.
		if b.FailureReason != "the mentor's calendar event could not be created or updated: the calendar refused the request" {
			t.Errorf("failure reason %q", b.FailureReason)
		}
		for _, st := range b.Steps {
			if st.State != StepCompensated {
				t.Errorf("step %s: %s", st.Name, st.State)
			}
		}
		if c, d, l := en.meetings.stats(); c != 1 || d != 1 || l != 0 {
			t.Errorf("meetings: %d created, %d deleted, %d live", c, d, l)
		}
		if n := en.cals["cand"].count(); n != 0 {
			t.Errorf("candidate calendar keeps %d events", n)
		}
		if live, _ := en.issues.snapshot(); len(live) != 0 {
			t.Errorf("issues left: %v", live)
		}
		if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "step_failed", "compensated"}) {
			t.Errorf("audit %v", got)
		}
		// The slot is free again: booking it is not an overlap (book fails the test on errors).
		if res2 := en.book(t, "k2", b.Start); res2.Booking.ID == b.ID {
			t.Errorf("rebooking returned the failed booking")
		}
	})
}

// TestSagaRefusedReschedule: the mentor's calendar refuses to move the
// event. The reschedule is undone instead of failing the booking: the
// request learns ErrRescheduleRefused, Zoom and the candidate's event go
// back to the old time, and the booking is confirmed there. Once the
// calendar accepts changes again, the same reschedule goes through.
func TestSagaRefusedReschedule(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		res := en.book(t, "k1", start)
		b := en.waitFor(t, res.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		refused := Permanent(errors.New("calendar: forbidden"))
		en.cals["mentor"].failUpdates(func() error { return refused })
		cand := Actor{ID: "cand", Candidate: true}
		moved := start.Add(3 * time.Hour)
		_, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: moved, IfMatch: b.ETag()})
		if !errors.Is(err, ErrRescheduleRefused) || !strings.Contains(err.Error(), "the mentor's calendar event could not be created or updated: the calendar refused the request") {
			t.Fatalf("reschedule = %v, want ErrRescheduleRefused with the reason", err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if !b.Start.Equal(start) || b.Duration() != time.Hour || b.confirmed != nil || b.RescheduleRefused != "the mentor's calendar event could not be created or updated: the calendar refused the request" {
			t.Fatalf("after the refusal: %+v, want confirmed at %s with the refusal's reason, without a restore point", b, start)
		}
		for _, st := range b.Steps {
			if st.State != StepDone || st.AppliedSpec != b.SpecVersion {
				t.Errorf("step %s: %s at spec %d of %d", st.Name, st.State, st.AppliedSpec, b.SpecVersion)
			}
		}
		if got := en.meetings.start(b.ID); !got.Equal(start) {
			t.Errorf("meeting at %s, want moved back to %s", got, start)
		}
		for _, who := range []string{"mentor", "cand"} {
			if got := en.cals[who].start(b.ID); !got.Equal(start) {
				t.Errorf("%s event at %s, want %s", who, got, start)
			}
		}
		if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "confirmed", "rescheduled", "reschedule_refused", "reschedule_confirmed"}) {
			t.Errorf("audit %v", got)
		}

		en.cals["mentor"].failUpdates(nil)
		rr, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: moved, IfMatch: b.ETag()})
		if err != nil || !rr.Booking.Start.Equal(moved) || rr.Booking.RescheduleRefused != "" {
			t.Fatalf("reschedule once the calendar accepts it: %+v, %v", rr.Booking, err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if got := en.meetings.start(b.ID); !got.Equal(moved) || !en.cals["mentor"].start(b.ID).Equal(moved) {
			t.Errorf("meeting at %s, mentor event at %s; want both at %s", got, en.cals["mentor"].start(b.ID), moved)
		}
	})
}

// TestSagaRescheduleGivenUpIsUndone: Zoom applies the move but the answer
// is lost (502), then fails transiently until the step gives up. The
// reschedule is refused, and the meeting, whose state is unknown, is moved
// back to the booking's time like the other providers, not assumed to be
// there.
func TestSagaRescheduleGivenUpIsUndone(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.svc.cfg.RequiredAttempts = 3
		en.svc.cfg.RetryWindow = time.Millisecond
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.waitFor(t, en.book(t, "k1", start).Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		en.meetings.mu.Lock()
		en.meetings.updateFail = func(n int) (bool, error) {
			if n <= 3 { // the first applied, then lost; the next two fail
				return n == 1, errors.New("zoom update_meeting: HTTP 502 [transient]")
			}
			return false, nil
		}
		en.meetings.mu.Unlock()
		_, err := en.svc.Reschedule(t.Context(), Actor{ID: "cand", Candidate: true}, b.ID, RescheduleRequest{Start: start.Add(4 * time.Hour), IfMatch: b.ETag()})
		if err != nil && !errors.Is(err, ErrRescheduleRefused) {
			t.Fatalf("reschedule: %v", err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool {
			return b.Status == StatusConfirmed && allSettled(b) && slices.Contains(actions(t, en.svc, b.ID), "reschedule_refused")
		})
		if !b.Start.Equal(start) {
			t.Fatalf("booking at %s, want back at %s", b.Start, start)
		}
		if got := en.meetings.start(b.ID); !got.Equal(start) {
			t.Errorf("meeting at %s, want moved back to the booking's %s", got, start)
		}
		for _, who := range []string{"mentor", "cand"} {
			if got := en.cals[who].start(b.ID); !got.Equal(start) {
				t.Errorf("%s event at %s, want %s", who, got, start)
			}
		}
	})
}

// auditOf returns the booking's audit records with action.
func auditOf(t *testing.T, svc *Service, id, action string) []AuditRecord {
	t.Helper()
	recs, _, err := svc.Audit(t.Context(), Actor{ID: "root", Admin: true}, id, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(recs, func(r AuditRecord) bool { return r.Action != action })
}

// TestSagaCancelWithRefusedDelete: Zoom refuses to delete the meeting for
// good. The cancel finishes (cancelled, the zoom step failed so an
// operator sees the meeting may remain) after one delete, instead of
// hanging in cancelling and hammering Zoom, and the audit says why in
// words.
func TestSagaCancelWithRefusedDelete(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		b := en.waitFor(t, en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID, 10*time.Second,
			func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		en.meetings.mu.Lock()
		en.meetings.deleteFailWith = Permanent(errors.New("zoom delete_meeting: HTTP 400 (code 3000): Cannot delete [permanent]"))
		en.meetings.mu.Unlock()
		if _, err := en.svc.Cancel(t.Context(), Actor{ID: "cand", Candidate: true}, b.ID, "changed plans"); err != nil {
			t.Fatal(err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusCancelled })
		if st := b.Step(StepZoom); st.State != StepFailed || st.LastError == "" {
			t.Errorf("zoom step %+v, want failed with its error", st)
		}
		for _, n := range []StepName{StepMentorCalendar, StepCandidateCalendar} {
			if st := b.Step(n); st.State != StepCompensated {
				t.Errorf("step %s: %s, want compensated", n, st.State)
			}
		}
		en.meetings.mu.Lock()
		calls := en.meetings.deleteCalls
		en.meetings.mu.Unlock()
		if calls != 1 {
			t.Errorf("%d deletes sent, want 1: a refusal is not retried", calls)
		}
		failed := auditOf(t, en.svc, b.ID, "step_failed")
		if len(failed) != 1 || failed[0].Reason != "the Zoom meeting could not be removed: Zoom refused the request; it may remain" {
			t.Errorf("step_failed records %+v", failed)
		}
		if c := auditOf(t, en.svc, b.ID, "cancelled"); len(c) != 1 || !strings.Contains(c[0].Reason, "the Zoom meeting could not be removed") {
			t.Errorf("cancelled records %+v", c)
		}
	})
}

// TestSagaOptionalStepFailure: Jira refuses the issue. The booking is
// confirmed without it, and its audit trail says so in words (no error
// chain, status or URL).
func TestSagaOptionalStepFailure(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.issues.ensureFailWith = Permanent(errors.New("jira create_issue: HTTP 400: Field 'x' is required: https://jira.test/rest/api/3/issue [permanent]"))
		b := en.waitFor(t, en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID, 10*time.Second,
			func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if st := b.Step(StepJira); st.State != StepFailed {
			t.Fatalf("jira step %+v, want failed", st)
		}
		failed := auditOf(t, en.svc, b.ID, "step_failed")
		if len(failed) != 1 || failed[0].Reason != "the Jira issue could not be created or updated: Jira refused the request" {
			t.Errorf("step_failed records %+v", failed)
		}
	})
}

// TestStepFailure words every step's giving up for the audit trail.
func TestStepFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		step    StepName
		op      string
		refused bool
		want    string
	}{
		{StepJira, opEnsure, true, "the Jira issue could not be created or updated: Jira refused the request"},
		{StepJira, opEnsure, false, "the Jira issue could not be created or updated: Jira kept failing"},
		{StepCandidateCalendar, opEnsure, true, "the candidate's calendar event could not be created or updated: the calendar refused the request"},
		{StepZoom, opCancel, true, "the Zoom meeting could not be removed: Zoom refused the request; it may remain"},
		{StepMentorCalendar, opCompensate, true, "the mentor's calendar event could not be removed: the calendar refused the request; it may remain"},
		{StepJira, opCancel, true, "the Jira issue could not be marked cancelled: Jira refused the request"},
		{StepJira, opCompensate, true, "the Jira issue could not be removed: Jira refused the request"},
	} {
		if got := stepFailure(tc.step, tc.op, tc.refused); got != tc.want {
			t.Errorf("stepFailure(%s, %s, %v) = %q, want %q", tc.step, tc.op, tc.refused, got, tc.want)
		}
	}
}

// TestSagaRefusalOfAnOldSpec: a refusal reported for a spec the booking
// has left behind (it changed again while the step ran) neither restores
// nor compensates; the next round works on the current spec.
func TestSagaRefusalOfAnOldSpec(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		b := en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if err := en.svc.refuse(t.Context(), b.ID, StepZoom, b.SpecVersion-1, Permanent(errors.New("zoom: refused"))); err != nil {
			t.Fatal(err)
		}
		after, err := en.svc.Lookup(t.Context(), b.ID)
		if err != nil || after.Version != b.Version || after.op != opEnsure || after.Status != StatusConfirmed {
			t.Fatalf("after a stale refusal: %+v, %v; want it unchanged", after, err)
		}
	})
}

// TestSagaRefusedRescheduleCannotRestore: when the previous time cannot be
// restored — another booking took the freed slot meanwhile, or a provider
// refuses the move back too — the booking fails and everything is removed,
// as a refused new booking does; a refusal never loops.
func TestSagaRefusedRescheduleCannotRestore(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		cand := Actor{ID: "cand", Candidate: true}
		refused := Permanent(errors.New("calendar: forbidden"))
		failed := func(t *testing.T, id string) {
			t.Helper()
			b := en.waitFor(t, id, 10*time.Second, func(b Booking) bool { return b.Status == StatusFailed && allSettled(b) })
			if !strings.Contains(b.FailureReason, "could not be created or updated") || strings.Contains(b.FailureReason, "forbidden") {
				t.Errorf("failure reason %q", b.FailureReason)
			}
			if en.meetings.has(id) || !en.cals["mentor"].start(id).IsZero() {
				t.Errorf("booking %s left its meeting or mentor event", id)
			}
		}

		t.Run("slot taken", func(t *testing.T) {
			start := time.Now().Add(72 * time.Hour).Truncate(time.Hour).UTC()
			b := en.book(t, "slot-1", start).Booking
			b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			en.cals["mentor"].failUpdates(func() error {
				entered <- struct{}{}
				<-release
				return refused
			})
			errc := make(chan error, 1)
			go func() {
				_, err := en.svc.Reschedule(context.Background(), cand, b.ID, RescheduleRequest{Start: start.Add(3 * time.Hour), IfMatch: b.ETag()})
				errc <- err
			}()
			<-entered
			other := en.book(t, "slot-2", start).Booking // the freed slot
			close(release)
			en.cals["mentor"].failUpdates(nil)
			if err := <-errc; errors.Is(err, ErrRescheduleRefused) {
				t.Errorf("reschedule = %v; the old slot is taken, nothing can be restored", err)
			}
			failed(t, b.ID)
			en.waitFor(t, other.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		})
		t.Run("move back refused", func(t *testing.T) {
			start := time.Now().Add(96 * time.Hour).Truncate(time.Hour).UTC()
			b := en.book(t, "back-1", start).Booking
			b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
			en.cals["mentor"].failUpdates(func() error {
				en.meetings.mu.Lock()
				en.meetings.updateFailWith = Permanent(errors.New("zoom: meeting locked"))
				en.meetings.mu.Unlock()
				return refused
			})
			t.Cleanup(func() {
				en.cals["mentor"].failUpdates(nil)
				en.meetings.mu.Lock()
				en.meetings.updateFailWith = nil
				en.meetings.mu.Unlock()
			})
			_, _ = en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: start.Add(3 * time.Hour), IfMatch: b.ETag()})
			failed(t, b.ID)
			if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "confirmed", "rescheduled", "reschedule_refused", "step_failed", "compensated"}) {
				t.Errorf("audit %v", got)
			}
		})
	})
}

// TestReassert: the mentor dragged the event, the candidate moved their
// copy, then someone moved the meeting in Zoom, to a time the booking
// refused, and an operator cancelled the Jira issue; Reassert puts the booking's state back on that artefact,
// and only there.
func TestReassert(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.book(t, "k1", start).Booking
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		mentor, cand := en.cals["mentor"], en.cals["cand"]
		mentor.mu.Lock()
		ev := mentor.events[b.ID]
		ev.Start, ev.End = start.Add(5*time.Hour), start.Add(6*time.Hour) // the mentor's drag
		mentor.events[b.ID] = ev
		mentor.mu.Unlock()
		cand.mu.Lock()
		candUpdates := cand.updates
		cand.mu.Unlock()

		if err := en.svc.Reassert(t.Context(), b.ID, StepMentorCalendar, "webhook:google", "moved onto another booking"); err != nil {
			t.Fatal(err)
		}
		after := en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return allSettled(b) && mentor.start(b.ID).Equal(start) })
		if after.Status != StatusConfirmed || !after.Start.Equal(start) || after.SpecVersion != b.SpecVersion+1 {
			t.Fatalf("after the restore: %+v", after)
		}
		cand.mu.Lock()
		if cand.updates != candUpdates {
			t.Errorf("the candidate's event was updated %d times; only the mentor's moved", cand.updates-candUpdates)
		}
		cand.mu.Unlock()

		// The candidate's copy, moved in their calendar: only it is put back.
		cand.mu.Lock()
		cev := cand.events[b.ID]
		cev.Start, cev.End = start.Add(2*time.Hour), start.Add(3*time.Hour)
		cand.events[b.ID] = cev
		cand.mu.Unlock()
		mentor.mu.Lock()
		mentorUpdates := mentor.updates
		mentor.mu.Unlock()
		if err := en.svc.Reassert(t.Context(), b.ID, StepCandidateCalendar, "webhook:google", "the candidate moved their copy"); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return allSettled(b) && cand.start(b.ID).Equal(start) })
		mentor.mu.Lock()
		if mentor.updates != mentorUpdates {
			t.Errorf("the mentor's event was updated %d times; only the candidate's moved", mentor.updates-mentorUpdates)
		}
		mentor.mu.Unlock()

		// The same for the Zoom meeting, moved in Zoom.
		en.meetings.mu.Lock()
		en.meetings.starts[b.ID] = start.Add(time.Hour)
		en.meetings.mu.Unlock()
		mentor.mu.Lock()
		mentorUpdates = mentor.updates
		mentor.mu.Unlock()
		if err := en.svc.Reassert(t.Context(), b.ID, StepZoom, "webhook:zoom", "moved onto another booking"); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return allSettled(b) && en.meetings.start(b.ID).Equal(start) })
		mentor.mu.Lock()
		if mentor.updates != mentorUpdates {
			t.Errorf("the mentor's event was updated %d times; only the meeting moved", mentor.updates-mentorUpdates)
		}
		mentor.mu.Unlock()

		// And the Jira issue, cancelled by an operator.
		live, _ := en.issues.snapshot()
		key := live[b.ID]
		en.issues.mu.Lock()
		en.issues.statuses[key] = StatusCancelled
		en.issues.mu.Unlock()
		if err := en.svc.Reassert(t.Context(), b.ID, StepJira, "webhook:jira", "cancelled while under way"); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool {
			_, st := en.issues.snapshot()
			return allSettled(b) && st[key] == StatusConfirmed
		})
		if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "confirmed", "step_reasserted", "step_reasserted", "step_reasserted", "step_reasserted"}) {
			t.Errorf("audit %v", got)
		}
	})
}

// TestReassertNewMeeting: the meeting of a session under way is put back
// (Reassert of the zoom step). When the host only moved it, the meeting is
// moved back and nothing else is written. When the host deleted it, the
// session gets a new meeting with another join URL, and the mentor's and
// the candidate's events and the Jira issue, which show the join URL, are
// brought up to date with it (before, they kept the deleted meeting's).
func TestReassertNewMeeting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		deleted bool // deleted in Zoom, else moved
	}{
		{"moved", false},
		{"deleted", true},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now().Add(48*time.Hour + time.Duration(i)*3*time.Hour).Truncate(time.Hour).UTC()
				b := en.book(t, "k-"+tt.name, start).Booking
				b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
				if err := en.svc.SetStatus(t.Context(), b.ID, StatusInProgress, "webhook:zoom", "Zoom meeting started"); err != nil {
					t.Fatal(err)
				}
				b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusInProgress && allSettled(b) })
				mentor, cand := en.cals["mentor"], en.cals["cand"]
				counts := func() (int, int, int) {
					mentor.mu.Lock()
					m := mentor.updates
					mentor.mu.Unlock()
					cand.mu.Lock()
					c := cand.updates
					cand.mu.Unlock()
					en.issues.mu.Lock()
					defer en.issues.mu.Unlock()
					return m, c, en.issues.updates
				}
				m0, c0, i0 := counts()
				old := en.meetings.meeting(b.ID)
				if tt.deleted {
					en.meetings.deleteOutside(b.ID)
				} else {
					en.meetings.mu.Lock()
					en.meetings.starts[b.ID] = start.Add(time.Hour)
					en.meetings.mu.Unlock()
				}

				if err := en.svc.Reassert(t.Context(), b.ID, StepZoom, "webhook:zoom", "put back"); err != nil {
					t.Fatal(err)
				}
				after := en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool {
					return allSettled(b) && en.meetings.has(b.ID) && en.meetings.start(b.ID).Equal(start)
				})
				now := en.meetings.meeting(b.ID)
				if after.Status != StatusInProgress || after.JoinURL != now.JoinURL || after.Step(StepZoom).Ref != now.ID {
					t.Fatalf("after the put-back: %+v; the live meeting is %+v", after, now)
				}
				m1, c1, i1 := counts()
				if !tt.deleted {
					if now != old || m1 != m0 || c1 != c0 || i1 != i0 {
						t.Errorf("a moved meeting put back: meeting %+v (was %+v), %d/%d/%d event and issue updates, want the same meeting and none",
							now, old, m1-m0, c1-c0, i1-i0)
					}
					return
				}
				if now.ID == old.ID || now.JoinURL == old.JoinURL {
					t.Fatalf("a deleted meeting put back: %+v, was %+v; want a new one", now, old)
				}
				key := after.Step(StepJira).Ref
				en.issues.mu.Lock()
				issueURL, issueStatus := en.issues.joinURLs[key], en.issues.statuses[key]
				en.issues.mu.Unlock()
				if issueURL != now.JoinURL || issueStatus != StatusInProgress {
					t.Errorf("issue %s: join URL %q, status %s; want %q, in_progress", key, issueURL, issueStatus, now.JoinURL)
				}
				for user, c := range map[string]*fakeCalendar{"mentor": mentor, "cand": cand} {
					c.mu.Lock()
					ev := c.events[b.ID]
					c.mu.Unlock()
					if ev.Location != now.JoinURL || ev.URL != now.JoinURL || !strings.Contains(ev.Description, now.JoinURL) ||
						strings.Contains(ev.Description, old.JoinURL) || !ev.Start.Equal(start) {
						t.Errorf("%s's event: location %q, url %q, description %q, start %v; want the new join URL %q at %v",
							user, ev.Location, ev.URL, ev.Description, ev.Start, now.JoinURL, start)
					}
				}
				if m1-m0 != 1 || c1-c0 != 1 || i1-i0 != 1 {
					t.Errorf("%d mentor event, %d candidate event, %d issue updates; want one each", m1-m0, c1-c0, i1-i0)
				}
				if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "confirmed", "started", "step_reasserted", "meeting_replaced"}) {
					t.Errorf("audit %v", got)
				}
			})
		}
	})
}

// TestReassertCompleted: after the session took place, a person cancels its
// Jira issue; Reassert of the jira step moves the issue back to the status a
// completed booking implies (Done). The meeting and the events of a
// completed session are in the past: Reassert leaves them alone.
func TestReassertCompleted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		b := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking
		en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		for _, to := range []Status{StatusInProgress, StatusCompleted} {
			if err := en.svc.SetStatus(t.Context(), b.ID, to, "webhook:zoom", "meeting event"); err != nil {
				t.Fatal(err)
			}
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusCompleted && allSettled(b) })
		key := b.Step(StepJira).Ref
		en.issues.mu.Lock()
		en.issues.statuses[key] = StatusCancelled // a person's move in Jira
		en.issues.mu.Unlock()
		en.meetings.deleteOutside(b.ID)

		tests := []struct {
			step  StepName
			taken bool // whether the booking puts it back
		}{
			{StepZoom, false},
			{StepMentorCalendar, false},
			{StepJira, true},
		}
		for _, tt := range tests {
			before, _ := en.svc.Lookup(t.Context(), b.ID)
			if err := en.svc.Reassert(t.Context(), b.ID, tt.step, "webhook:jira", "put back"); err != nil {
				t.Fatalf("%s: %v", tt.step, err)
			}
			after := en.waitFor(t, b.ID, 10*time.Second, allSettled)
			if changed := after.SpecVersion != before.SpecVersion; changed != tt.taken || after.Status != StatusCompleted {
				t.Errorf("Reassert(%s) of a completed booking: spec %d → %d, status %s; want a new spec: %v", tt.step, before.SpecVersion, after.SpecVersion, after.Status, tt.taken)
			}
		}
		_, st := en.issues.snapshot()
		if st[key] != StatusCompleted {
			t.Errorf("issue %s is %s, want completed (Done)", key, st[key])
		}
		if en.meetings.has(b.ID) {
			t.Error("a meeting was created again for a session that took place")
		}
	})
}

// TestRescheduleAsFollowsTheMentorsCalendar: when the mentor drags the
// session's event in their own calendar, that calendar shows the event busy
// at the new time; the move is taken (the mentor chose it), where the same
// time asked for by a change in Zoom is refused as busy. Another booking at
// the new time refuses either.
func TestRescheduleAsFollowsTheMentorsCalendar(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.book(t, "k1", start).Booking
		en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		other := en.book(t, "k2", start.Add(8*time.Hour)).Booking
		en.waitFor(t, other.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })

		to := start.Add(5 * time.Hour)
		mentor := en.cals["mentor"]
		mentor.mu.Lock()
		ev := mentor.events[b.ID]
		ev.Start, ev.End = to, to.Add(time.Hour) // the mentor's drag
		mentor.events[b.ID] = ev
		mentor.busy = []calendar.Busy{{Start: to, End: to.Add(time.Hour)}}
		mentor.mu.Unlock()

		if err := en.svc.RescheduleAs(t.Context(), b.ID, to, to.Add(time.Hour), StepZoom, "webhook:zoom", "moved in Zoom"); !errors.Is(err, ErrOverlap) {
			t.Errorf("a move from Zoom onto the mentor's busy time: %v, want ErrOverlap", err)
		}
		if err := en.svc.RescheduleAs(t.Context(), b.ID, other.Start, other.End, StepMentorCalendar, "webhook:caldav", "moved"); !errors.Is(err, ErrOverlap) {
			t.Errorf("the mentor's move onto another booking: %v, want ErrOverlap", err)
		}
		if err := en.svc.RescheduleAs(t.Context(), b.ID, to, to.Add(time.Hour), StepMentorCalendar, "webhook:caldav", "The mentor moved the calendar event."); err != nil {
			t.Fatalf("the mentor's own move: %v", err)
		}
		after := en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if !after.Start.Equal(to) || !en.meetings.start(b.ID).Equal(to) {
			t.Errorf("after the mentor's move: booking at %v, meeting at %v; want %v", after.Start, en.meetings.start(b.ID), to)
		}
	})
}

// TestSagaFailuresInARow: a required step fails the booking after
// RequiredAttempts failures in a row, not after that many tries in its
// life: a meeting moved several times survives one transient failure.
func TestSagaFailuresInARow(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.svc.cfg.RequiredAttempts = 3
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.book(t, "k1", start).Booking
		cand := Actor{ID: "cand", Candidate: true}
		for i := 1; i <= 4; i++ {
			b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
			if i == 4 {
				en.meetings.mu.Lock()
				en.meetings.transientUpdates = 1
				en.meetings.mu.Unlock()
			}
			if _, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: start.Add(time.Duration(i) * time.Hour), IfMatch: b.ETag()}); err != nil {
				t.Fatalf("reschedule %d: %v", i, err)
			}
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		want := start.Add(4 * time.Hour)
		if zoom := b.Step(StepZoom); !b.Start.Equal(want) || !en.meetings.start(b.ID).Equal(want) || zoom.Attempts != 6 || zoom.failures != 0 {
			t.Fatalf("booking at %s, meeting at %s, zoom step %+v; want both at %s after 6 attempts", b.Start, en.meetings.start(b.ID), zoom, want)
		}
	})
}

// TestSagaWaitsOutTransientFailures: Zoom rate-limits the create (429 with
// Retry-After) or its circuit is open. The booking stays pending with the
// step's error, no create goes out before the wait is over, and it is
// confirmed once Zoom answers again; only a failure that outlasts
// RetryWindow fails (and compensates) the booking. RequiredAttempts is 1:
// attempts alone never fail a required step.
func TestSagaWaitsOutTransientFailures(t *testing.T) {
	t.Parallel()
	const wait = 700 * time.Millisecond
	rateLimited := RetryAfter(errors.New("zoom create_meeting: HTTP 429: Too many requests (retry after 1s) [transient]"), wait)
	circuitOpen := RetryAfter(errors.New("zoom create_meeting: outbound: circuit open [transient]"), wait)
	for _, tc := range []struct {
		name     string
		fail     func(n int) error
		window   time.Duration
		want     Status
		minCalls int
	}{
		{"rate limit then recovery", func(n int) error {
			if n <= 3 {
				return rateLimited
			}
			return nil
		}, time.Minute, StatusConfirmed, 4},
		{"circuit open then recovery", func(n int) error {
			if n <= 2 {
				return circuitOpen
			}
			return nil
		}, time.Minute, StatusConfirmed, 3},
		{"rate limited beyond the window", func(int) error { return rateLimited }, 2 * time.Second, StatusFailed, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			en := newSagaEnv(t, storetest.SQLite(t), true)
			en.svc.cfg.RequiredAttempts = 1
			en.svc.cfg.RetryWindow = tc.window
			// The request answers long before the retry window ends (with
			// the env's 2s it ended with it, and a loaded machine saw the
			// compensation start before the check below).
			en.svc.cfg.SyncTimeout = 300 * time.Millisecond
			en.meetings.createFail = tc.fail
			booked := time.Now()
			res := en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour))
			if res.Done {
				t.Fatalf("booking answered done while Zoom was failing: %+v", res.Booking)
			}
			b, err := en.svc.Lookup(t.Context(), res.Booking.ID)
			if err != nil {
				t.Fatal(err)
			}
			if zoom := b.Step(StepZoom); b.Status != StatusPending || zoom.State != StepPending || zoom.LastError == "" {
				t.Fatalf("while Zoom fails: %s, zoom step %+v; want pending with the step's error", b.Status, zoom)
			}
			b = en.waitFor(t, b.ID, 20*time.Second, func(b Booking) bool {
				return (b.Status == StatusConfirmed || b.Status == StatusFailed) && allSettled(b)
			})
			if b.Status != tc.want {
				t.Fatalf("settled %s (%s), want %s", b.Status, b.FailureReason, tc.want)
			}
			en.meetings.mu.Lock()
			calls := slices.Clone(en.meetings.createCalls)
			en.meetings.mu.Unlock()
			if len(calls) < tc.minCalls {
				t.Errorf("%d create calls, want at least %d", len(calls), tc.minCalls)
			}
			for i := 1; i < len(calls); i++ {
				if d := calls[i].Sub(calls[i-1]); d < wait-50*time.Millisecond {
					t.Errorf("create %d came %v after the previous one, inside the %v Zoom asked to wait", i+1, d, wait)
				}
			}
			if tc.want == StatusFailed {
				// It gives up once the next attempt Zoom allows would come
				// after the window: at the earliest one wait before its end.
				if d := time.Since(booked); d < tc.window-wait {
					t.Errorf("failed %v after booking, more than %v before the end of the %v retry window", d, wait, tc.window)
				}
				if c, _, l := en.meetings.stats(); l != 0 {
					t.Errorf("meetings: %d created, %d live after compensation", c, l)
				}
			}
		})
	}
}

// TestSagaDeletedCalendar: the mentor deleted the calendar the booking's
// event goes to. The booking is confirmed without it, as with no calendar
// connected, instead of failing or retrying.
func TestSagaDeletedCalendar(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.cals["mentor"].failWith = fmt.Errorf("gcal insert_event: HTTP 404: %w", calendar.ErrCalendarNotFound)
		res := en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour))
		b := en.waitFor(t, res.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		for _, st := range b.Steps {
			want := StepDone
			if st.Name == StepMentorCalendar {
				want = StepSkipped
			}
			if st.State != want {
				t.Errorf("step %s: %s, want %s", st.Name, st.State, want)
			}
		}
		if n := en.cals["cand"].count(); n != 1 {
			t.Errorf("candidate calendar has %d events, want 1", n)
		}
	})
}

// TestSagaDurableJob leaves every run to the River job, as after a crash
// right after the commit: the job alone confirms the booking, and a cancel
// goes the same way.
func TestSagaDurableJob(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, false)
		en.svc.cfg.SyncTimeout = 50 * time.Millisecond
		res := en.book(t, "k1", time.Now().Add(72*time.Hour).Truncate(time.Hour))
		if res.Done || res.Booking.Status != StatusPending {
			t.Fatalf("without the fast path the request answers pending: %+v", res)
		}
		b := en.waitFor(t, res.Booking.ID, 20*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		c, _, _ := en.meetings.stats()
		live, _ := en.issues.snapshot()
		if b.JoinURL == "" || c != 1 || en.cals["mentor"].count() != 1 || len(live) != 1 {
			t.Fatalf("after the job: %+v; %d meetings, %d issues", b, c, len(live))
		}
		cr, err := en.svc.Cancel(t.Context(), Actor{ID: "cand", Candidate: true}, b.ID, "changed plans")
		if err != nil {
			t.Fatal(err)
		}
		if cr.Booking.Status != StatusCancelling && cr.Booking.Status != StatusCancelled {
			t.Fatalf("cancel answered %s", cr.Booking.Status)
		}
		en.waitFor(t, b.ID, 20*time.Second, func(b Booking) bool { return b.Status == StatusCancelled && allSettled(b) })
		if _, _, l := en.meetings.stats(); l != 0 || en.cals["mentor"].count() != 0 || en.cals["cand"].count() != 0 {
			t.Fatal("the cancel job left provider objects")
		}
		live, statuses := en.issues.snapshot()
		if statuses[live[b.ID]] != StatusCancelled {
			t.Fatalf("issue statuses %v, want the booking's issue cancelled", statuses)
		}
	})
}

// TestSagaLease: a booking another runner holds is not worked.
func TestSagaLease(t *testing.T) {
	t.Parallel()
	en := newSagaEnv(t, storetest.SQLite(t), false)
	en.svc.cfg.SyncTimeout = 10 * time.Millisecond
	en.svc.cfg.DurableDelay = time.Hour // keep the job out of the way
	res := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour))
	now := time.Now()
	ok, err := en.svc.repo.acquire(t.Context(), res.Booking.ID, "other", now, now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if _, err := en.svc.run(t.Context(), res.Booking.ID); !errors.Is(err, errLeased) {
		t.Fatalf("run on a leased booking: %v", err)
	}
	if c, _, _ := en.meetings.stats(); c != 0 {
		t.Fatal("a leased booking was worked")
	}
	if err := en.svc.repo.release(t.Context(), res.Booking.ID, "other"); err != nil {
		t.Fatal(err)
	}
	done, err := en.svc.run(t.Context(), res.Booking.ID)
	if err != nil || !done {
		t.Fatalf("run after release: %v %v", done, err)
	}
	if b, _ := en.svc.Lookup(t.Context(), res.Booking.ID); b.Status != StatusConfirmed {
		t.Fatalf("status %s", b.Status)
	}
	// A second run finds nothing to do and calls no provider.
	if done, err := en.svc.run(t.Context(), res.Booking.ID); err != nil || !done {
		t.Fatalf("second run: %v %v", done, err)
	}
	if c, _, _ := en.meetings.stats(); c != 1 {
		t.Fatalf("%d meetings created", c)
	}
}

// newLeaseEnv is a saga environment whose runs renew a 300 ms lease, with
// the job kept out of the way; lost is closed when a run logs that it lost
// its lease.
func newLeaseEnv(t *testing.T, s *store.Store) (en *sagaEnv, lost chan struct{}) {
	t.Helper()
	en = newSagaEnv(t, s, false)
	en.svc.cfg.SyncTimeout = 10 * time.Millisecond
	en.svc.cfg.DurableDelay = time.Hour
	en.svc.cfg.LeaseTTL = 300 * time.Millisecond
	lost = make(chan struct{})
	en.svc.log = slog.New(slog.NewTextHandler(signalWriter{"lease lost", lost, new(sync.Once)}, nil))
	return en, lost
}

// TestSagaLeaseRenewal: a run renews its lease while it waits on a provider,
// holding no goroutine of its own between renewals, and stops when another
// runner took the lease.
func TestSagaLeaseRenewal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, lost := newLeaseEnv(t, s)
		entered, release := make(chan struct{}), make(chan struct{})
		en.meetings.mu.Lock()
		en.meetings.createFail = func(int) error {
			close(entered)
			<-release
			return nil
		}
		en.meetings.mu.Unlock()
		id := en.book(t, "renew", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID
		type outcome struct {
			done bool
			err  error
		}
		ran := make(chan outcome, 1)
		go pprof.Do(context.Background(), pprof.Labels("run", id), func(ctx context.Context) {
			done, err := en.svc.run(ctx, id)
			ran <- outcome{done, err}
		})
		<-entered

		leaseUntil := func() int64 {
			t.Helper()
			var until int64
			if err := s.DB().QueryRowContext(t.Context(), s.Rebind(`SELECT lease_until FROM bookings WHERE id = ?`), id).Scan(&until); err != nil {
				t.Fatal(err)
			}
			return until
		}
		first := leaseUntil()
		for leaseUntil() == first {
			time.Sleep(10 * time.Millisecond)
		}

		// While it waits, the run is one goroutine: the renewals are timers.
		if n, stacks := goroutinesOf(t, "run", id); n != 1 {
			t.Errorf("%d goroutines of the waiting run, want 1:\n%s", n, stacks)
		}

		// Another runner takes the lease: the run stops at its next renewal.
		far := time.Now().Add(time.Hour).UnixMicro()
		if _, err := s.DB().ExecContext(t.Context(), s.Rebind(`UPDATE bookings SET lease_owner = 'other', lease_until = ? WHERE id = ?`), far, id); err != nil {
			t.Fatal(err)
		}
		<-lost
		close(release)
		// The create it was waiting for answers: the run no longer holds
		// the lease, so it records nothing.
		if o := <-ran; o.done || !errors.Is(o.err, errLeaseLost) {
			t.Errorf("run after the lease was lost = %v, %v; want false, errLeaseLost", o.done, o.err)
		}
		if b, err := en.svc.Lookup(t.Context(), id); err != nil || b.Status != StatusPending || b.Step(StepZoom).Ref != "" {
			t.Errorf("booking %s (zoom ref %q), %v; want it pending, left to the lease's owner", b.Status, b.Step(StepZoom).Ref, err)
		}
	})
}

// TestSagaStepFencedOnLease: a run whose lease another runner took while
// it waited on Zoom records nothing of what it got: the runner holding the
// lease works the step (and looks for that meeting first), so the booking
// never records the meeting of a run that no longer holds it.
func TestSagaStepFencedOnLease(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, false)
		en.svc.cfg.SyncTimeout = 10 * time.Millisecond
		en.svc.cfg.DurableDelay = time.Hour // keep the job out of the way
		id := en.book(t, "fenced", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID
		en.meetings.mu.Lock()
		en.meetings.createFail = func(int) error {
			// Another runner takes the booking over (the run's renewal
			// was late) while Zoom answers this create.
			far := time.Now().Add(time.Hour).UnixMicro()
			_, err := s.DB().ExecContext(context.Background(), s.Rebind(`UPDATE bookings SET lease_owner = 'other', lease_until = ? WHERE id = ?`), far, id)
			return err
		}
		en.meetings.mu.Unlock()
		done, err := en.svc.run(t.Context(), id)
		if done || !errors.Is(err, errLeased) {
			t.Fatalf("run that lost its lease = %v, %v; want false, errLeased", done, err)
		}
		b, err := en.svc.Lookup(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st := b.Step(StepZoom); st.State != StepPending || st.Ref != "" || b.JoinURL != "" {
			t.Errorf("zoom step %s ref %q, join URL %q; want it pending with nothing recorded", st.State, st.Ref, b.JoinURL)
		}
		if b.Status != StatusPending {
			t.Errorf("booking %s, want pending (left to the lease's owner)", b.Status)
		}
	})
}

// TestSagaLeaseNotRetaken: a run whose lease another runner took and has
// released since (it finished the booking) learns at its next renewal that
// the lease is lost; it does not take the free lease back and record what
// it was waiting on over what the other runner recorded.
func TestSagaLeaseNotRetaken(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, lost := newLeaseEnv(t, s)
		id := en.book(t, "retaken", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID
		en.meetings.mu.Lock()
		en.meetings.createFail = func(int) error {
			// Taken over, worked and released by another runner while
			// this create is in flight.
			if _, err := s.DB().ExecContext(context.Background(), s.Rebind(`UPDATE bookings SET lease_owner = '', lease_until = 0 WHERE id = ?`), id); err != nil {
				return err
			}
			select {
			case <-lost:
			case <-time.After(3 * time.Second):
			}
			return nil
		}
		en.meetings.mu.Unlock()
		done, err := en.svc.run(t.Context(), id)
		select {
		case <-lost:
		default:
			t.Error("the run did not notice that it lost its lease")
		}
		if done || err == nil {
			t.Errorf("run = %v, %v; want it stopped", done, err)
		}
		if b, err := en.svc.Lookup(t.Context(), id); err != nil || b.Step(StepZoom).Ref != "" {
			t.Errorf("zoom ref %q, %v; want nothing recorded", b.Step(StepZoom).Ref, err)
		}
	})
}

// TestSagaParallelStepsGoroutines: the steps after Zoom run in parallel, the
// last of them on the run's own goroutine; while Jira is the one left, the
// run is that one goroutine.
func TestSagaParallelStepsGoroutines(t *testing.T) {
	t.Parallel()
	en := newSagaEnv(t, storetest.SQLite(t), false)
	en.svc.cfg.SyncTimeout = 10 * time.Millisecond
	en.svc.cfg.DurableDelay = time.Hour // keep the job out of the way
	entered, release := make(chan struct{}), make(chan struct{})
	en.issues.mu.Lock()
	en.issues.onEnsure = func() {
		close(entered)
		<-release
	}
	en.issues.mu.Unlock()
	id := en.book(t, "parallel", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID
	ran := make(chan error, 1)
	go pprof.Do(context.Background(), pprof.Labels("run", id), func(ctx context.Context) {
		_, err := en.svc.run(ctx, id)
		ran <- err
	})
	<-entered
	en.waitFor(t, id, 10*time.Second, func(b Booking) bool {
		return b.Status == StatusConfirmed && b.Step(StepCandidateCalendar).State == StepDone
	})
	if n, stacks := goroutinesOf(t, "run", id); n != 1 {
		t.Errorf("%d goroutines of the run while Jira is the one step left, want 1:\n%s", n, stacks)
	}
	close(release)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if b, _ := en.svc.Lookup(t.Context(), id); b.Step(StepJira).State != StepDone {
		t.Errorf("jira step %s, want done", b.Step(StepJira).State)
	}
}

// TestSagaStepPanicWaitsForTheOtherSteps: a panic in the step the run
// works on its own goroutine (Jira, the last of the parallel steps) unwinds
// the run only once the other steps have finished. River recovers a job's
// panic; a run that released its lease while the mentor's calendar step
// still ran would let another runner work the same steps at the same time.
func TestSagaStepPanicWaitsForTheOtherSteps(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	en := newSagaEnv(t, s, false)
	en.svc.cfg.SyncTimeout = 10 * time.Millisecond
	en.svc.cfg.DurableDelay = time.Hour // keep the job out of the way
	mentorIn, mentorGo := make(chan struct{}), make(chan struct{})
	letMentorGo := sync.OnceFunc(func() { close(mentorGo) })
	defer letMentorGo()
	mentor := en.cals["mentor"]
	mentor.mu.Lock()
	mentor.onCreate = func() {
		close(mentorIn)
		<-mentorGo
	}
	mentor.mu.Unlock()
	panicking := make(chan struct{})
	en.issues.mu.Lock()
	en.issues.onEnsure = func() {
		<-mentorIn
		close(panicking)
		panic("jira: client bug")
	}
	en.issues.mu.Unlock()
	id := en.book(t, "panic", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID
	ran := make(chan any, 1)
	go pprof.Do(context.Background(), pprof.Labels("run", id), func(ctx context.Context) {
		defer func() { ran <- recover() }() // as River's executor does
		_, _ = en.svc.run(ctx, id)
	})
	<-panicking
	// The run either unwinds at once (and releases its lease) or waits for
	// the mentor's calendar step.
	for {
		select {
		case p := <-ran:
			t.Fatalf("the run unwound (%v) while the mentor's calendar step still ran", p)
		default:
		}
		if _, stacks := goroutinesOf(t, "run", id); strings.Contains(stacks, "sync.(*WaitGroup).Wait") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var owner sql.NullString
	if err := s.DB().QueryRowContext(t.Context(), s.Rebind(`SELECT lease_owner FROM bookings WHERE id = ?`), id).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if !owner.Valid || owner.String == "" {
		t.Errorf("lease released while the mentor's calendar step runs")
	}
	letMentorGo()
	if p := <-ran; p != "jira: client bug" {
		t.Errorf("run's panic = %v, want the step's", p)
	}
	b, err := en.svc.Lookup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Step(StepMentorCalendar).State; st != StepDone {
		t.Errorf("mentor calendar step %s, want done: it finished before the run unwound", st)
	}
	if err := s.DB().QueryRowContext(t.Context(), s.Rebind(`SELECT lease_owner FROM bookings WHERE id = ?`), id).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner.Valid && owner.String != "" {
		t.Errorf("lease still held by %q after the run unwound", owner.String)
	}
}

// goroutinesOf counts the goroutines labelled key=value (pprof.Do; the
// goroutines they start inherit the label) that are in the run's own code
// (Service.run or Service.ensure: the run and its steps), and returns
// their stacks. Others that inherit the label are left out: the SQLite
// driver's watcher of a query's context, a goroutine not started yet or
// exiting (a step that has written its result), a renewal under way.
func goroutinesOf(t *testing.T, key, value string) (int, string) {
	t.Helper()
	var buf strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("%q:%q", key, value)
	n := 0
	var stacks []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		var c int
		if _, err := fmt.Sscanf(g, "%d @", &c); err != nil || !strings.Contains(g, "# labels: ") || !strings.Contains(g, label) {
			continue
		}
		if !strings.Contains(g, "booking.(*Service).run") && !strings.Contains(g, "booking.(*Service).ensure") {
			continue
		}
		n += c
		stacks = append(stacks, g)
	}
	return n, strings.Join(stacks, "\n\n")
}

// signalWriter closes ch at the first write that contains want.
type signalWriter struct {
	want string
	ch   chan struct{}
	once *sync.Once
}

func (w signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.ch) })
	}
	return len(p), nil
}

// TestSetStatusMovesIssue: meeting events move the booking and its issue.
func TestSetStatusMovesIssue(t *testing.T) {
	t.Parallel()
	en := newSagaEnv(t, storetest.SQLite(t), true)
	res := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour))
	b := en.waitFor(t, res.Booking.ID, 5*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
	key := b.Step(StepJira).Ref
	for _, to := range []Status{StatusInProgress, StatusCompleted} {
		if err := en.svc.SetStatus(t.Context(), b.ID, to, "webhook:zoom", "meeting event"); err != nil {
			t.Fatal(err)
		}
		en.waitFor(t, b.ID, 5*time.Second, func(b Booking) bool { return b.Status == to && allSettled(b) })
		_, statuses := en.issues.snapshot()
		got := statuses[key]
		if got != to {
			t.Fatalf("issue status %q, want %q", got, to)
		}
	}
	if err := en.svc.SetStatus(t.Context(), b.ID, StatusCompleted, "webhook:zoom", "again"); err != nil {
		t.Fatalf("repeating a status: %v", err)
	}
	var ce *ConflictError
	if err := en.svc.SetStatus(t.Context(), b.ID, StatusInProgress, "webhook:zoom", "late"); !errors.As(err, &ce) {
		t.Fatalf("completed → in_progress: %v", err)
	}
	if _, err := en.svc.Cancel(t.Context(), Actor{ID: "cand", Candidate: true}, b.ID, "too late"); !errors.As(err, &ce) {
		t.Fatalf("cancel a completed booking: %v", err)
	}
}

// TestSweep: a booking whose saga job lies far in the future (as if it had
// given up) is picked up by the sweep and finished.
func TestSweep(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, false)
		en.svc.cfg.SyncTimeout = 10 * time.Millisecond
		en.svc.cfg.DurableDelay = time.Hour
		res := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour))
		if n, err := en.svc.Sweep(t.Context(), time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("sweep of recent bookings: %d %v", n, err)
		}
		n, err := en.svc.Sweep(t.Context(), time.Now().Add(time.Second))
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		en.waitFor(t, res.Booking.ID, 15*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if n, err := en.svc.Sweep(t.Context(), time.Now().Add(time.Second)); err != nil || n != 0 {
			t.Fatalf("sweep after settling: %d %v", n, err)
		}
		// A later change left unfinished is swept again although the first
		// sweep job completed. Wait until it has: a sweep job still running
		// would itself pick up the cancel (correct, but not what this tests).
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var busy int
			if err := s.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'booking_saga'
				AND state IN ('available', 'running', 'retryable', 'pending')`).Scan(&busy); err != nil {
				t.Fatal(err)
			}
			if busy == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d saga jobs still busy", busy)
			}
		}
		c, err := en.svc.Cancel(t.Context(), Actor{ID: "cand", Candidate: true}, res.Booking.ID, "x")
		if err != nil || c.Booking.Status != StatusCancelling {
			t.Fatalf("cancel: %v %v", err, c.Booking.Status)
		}
		// (The first sweep's job may still be finishing: sweep until one is added.)
		added := 0
		for deadline := time.Now().Add(10 * time.Second); added == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			n, err := en.svc.Sweep(t.Context(), time.Now().Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			added += n
		}
		if added != 1 {
			t.Fatalf("second sweep added %d jobs", added)
		}
		en.waitFor(t, res.Booking.ID, 15*time.Second, func(b Booking) bool { return b.Status == StatusCancelled && allSettled(b) })
	})
}

// TestForgetIdempotencyKeys: old keys are dropped, recent ones kept.
func TestForgetIdempotencyKeys(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		res := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour))
		if n, err := en.svc.repo.forgetIdem(t.Context(), time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("forget recent: %d %v", n, err)
		}
		if _, ok, _ := en.svc.repo.getIdem(t.Context(), s.DB(), "cand", "k"); !ok {
			t.Fatal("recent key forgotten")
		}
		if n, err := en.svc.repo.forgetIdem(t.Context(), time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("forget old: %d %v", n, err)
		}
		// The key is free again: the same key books anew.
		if again := en.book(t, "k", res.Booking.Start.Add(2*time.Hour)); again.Booking.ID == res.Booking.ID {
			t.Fatal("forgotten key replayed")
		}
	})
}

// TestFindByMeetings: the batch lookup matches FindByMeeting for each
// meeting and leaves out meetings without a booking.
func TestFindByMeetings(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		day := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
		var ids []string
		var meetings []string
		for i := range 3 {
			res := en.book(t, fmt.Sprintf("k%d", i), day.Add(time.Duration(i)*2*time.Hour))
			b := en.waitFor(t, res.Booking.ID, 15*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
			ids = append(ids, b.ID)
			meetings = append(meetings, b.Step(StepZoom).Ref)
		}
		got, err := en.svc.FindByMeetings(t.Context(), append(meetings, "no-such-meeting"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(meetings) {
			t.Fatalf("FindByMeetings found %d, want %d", len(got), len(meetings))
		}
		for i, m := range meetings {
			one, err := en.svc.FindByMeeting(t.Context(), m)
			if err != nil || got[m].ID != ids[i] || one.ID != ids[i] {
				t.Errorf("meeting %s: batch %q, single %q (%v), want %q", m, got[m].ID, one.ID, err, ids[i])
			}
		}
	})
}

// TestSagaSkippedCalendarStepComesBack: a calendar step skipped because its
// user had no usable calendar is looked at again with every reschedule, and
// a cancel removes the booking's event from the calendar the user has
// connected now even when the step is skipped.
func TestSagaSkippedCalendarStepComesBack(t *testing.T) {
	t.Parallel()
	cand := Actor{ID: "cand", Candidate: true}
	tests := []struct {
		name string
		// user is disconnected at booking time (offAtBooking) or after it.
		user         string
		step         StepName
		offAtBooking bool
		// rescheduleAfterReconnect: the reconnected user's booking is
		// rescheduled before the cancel.
		rescheduleAfterReconnect bool
	}{
		{name: "candidate disconnects, reconnects, reschedule and cancel", user: "cand", step: StepCandidateCalendar, rescheduleAfterReconnect: true},
		{name: "candidate disconnects, reconnects, cancel", user: "cand", step: StepCandidateCalendar},
		{name: "mentor not connected at booking time, then reschedule", user: "mentor", step: StepMentorCalendar, offAtBooking: true, rescheduleAfterReconnect: true},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				en := newSagaEnv(t, s, true)
				cal := en.cals[tt.user]
				settled := func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) }
				reschedule := func(b Booking, start time.Time) Booking {
					t.Helper()
					if _, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: start, IfMatch: b.ETag()}); err != nil {
						t.Fatal(err)
					}
					return en.waitFor(t, b.ID, 10*time.Second, func(nb Booking) bool { return nb.SpecVersion > b.SpecVersion && settled(nb) })
				}
				start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
				en.conn.set(tt.user, !tt.offAtBooking)
				res := en.book(t, "k-"+tt.name, start)
				b := en.waitFor(t, res.Booking.ID, 10*time.Second, settled)
				if !tt.offAtBooking {
					en.conn.set(tt.user, false)
					start = start.Add(time.Hour)
					b = reschedule(b, start)
					if got := b.Step(tt.step); got.State != StepSkipped || got.Ref == "" {
						t.Fatalf("after disconnecting: %s is %s with ref %q, want skipped keeping its ref", tt.step, got.State, got.Ref)
					}
				} else if got := b.Step(tt.step).State; got != StepSkipped {
					t.Fatalf("booked without a calendar: %s is %s, want skipped", tt.step, got)
				}
				en.conn.set(tt.user, true)
				if tt.rescheduleAfterReconnect {
					start = start.Add(time.Hour)
					b = reschedule(b, start)
					if got := b.Step(tt.step); got.State != StepDone || got.Ref == "" {
						t.Fatalf("after reconnecting and rescheduling: %s is %s with ref %q, want done", tt.step, got.State, got.Ref)
					}
					if got := cal.start(b.ID); !got.Equal(start) {
						t.Errorf("%s's event starts at %v, want %v", tt.user, got, start)
					}
				}
				if _, err := en.svc.Cancel(t.Context(), cand, b.ID, "r"); err != nil {
					t.Fatal(err)
				}
				b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusCancelled })
				if n := cal.count(); n != 0 {
					t.Errorf("%s's calendar has %d events after the cancel, want 0", tt.user, n)
				}
				if got := b.Step(tt.step).State; got != StepCompensated {
					t.Errorf("after the cancel %s is %s, want compensated", tt.step, got)
				}
			})
		}
	})
}

// TestSagaSwitchedCalendar: the user chooses another calendar after the
// booking's event was written. A reschedule moves the event to the new
// calendar and removes it from the old one; a cancel removes it from the
// calendar that holds it. An old calendar out of reach keeps its event and
// blocks nothing.
func TestSagaSwitchedCalendar(t *testing.T) {
	t.Parallel()
	cand := Actor{ID: "cand", Candidate: true}
	tests := []struct {
		name       string
		user       string
		reschedule bool
		// oldGone: the old calendar cannot be reached any more.
		oldGone bool
	}{
		{name: "mentor switches, reschedule, cancel", user: "mentor", reschedule: true},
		{name: "mentor switches, cancel", user: "mentor"},
		{name: "candidate switches, reschedule, cancel", user: "cand", reschedule: true},
		{name: "old calendar out of reach", user: "mentor", reschedule: true, oldGone: true},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				en := newSagaEnv(t, s, true)
				old := en.cals[tt.user]
				step := StepMentorCalendar
				if tt.user == "cand" {
					step = StepCandidateCalendar
				}
				settled := func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) }
				start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
				res := en.book(t, "k-"+tt.name, start)
				b := en.waitFor(t, res.Booking.ID, 10*time.Second, settled)
				if got := b.Step(step).place; got != "fake:"+tt.user {
					t.Fatalf("%s records place %q, want %q", step, got, "fake:"+tt.user)
				}
				personal := &fakeCalendar{events: map[string]calendar.Event{}}
				en.conn.switchTo(tt.user, "fake:personal", personal)
				if tt.oldGone {
					en.conn.unreachable("fake:" + tt.user)
				}
				if tt.reschedule {
					start = start.Add(time.Hour)
					if _, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: start, IfMatch: b.ETag()}); err != nil {
						t.Fatal(err)
					}
					b = en.waitFor(t, b.ID, 10*time.Second, func(nb Booking) bool { return nb.SpecVersion > b.SpecVersion && settled(nb) })
					if got := personal.start(b.ID); !got.Equal(start) {
						t.Errorf("the new calendar's event starts at %v, want %v", got, start)
					}
					wantOld := 0
					if tt.oldGone {
						wantOld = 1
					}
					if n := old.count(); n != wantOld {
						t.Errorf("the old calendar has %d events after the reschedule, want %d", n, wantOld)
					}
					if got := b.Step(step).place; got != "fake:personal" {
						t.Errorf("%s records place %q after the reschedule, want fake:personal", step, got)
					}
				}
				if _, err := en.svc.Cancel(t.Context(), cand, b.ID, "r"); err != nil {
					t.Fatal(err)
				}
				b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusCancelled })
				if n := personal.count(); n != 0 {
					t.Errorf("the new calendar has %d events after the cancel, want 0", n)
				}
				if n := old.count(); n != 0 && !tt.oldGone {
					t.Errorf("the old calendar has %d events after the cancel, want 0", n)
				}
				if got := b.Step(step).State; got != StepCompensated {
					t.Errorf("after the cancel %s is %s, want compensated", step, got)
				}
			})
		}
	})
}

// TestSagaOptionalStepCatchesUpOnTheNextSpec: the candidate's calendar
// keeps failing during a reschedule until the step gives up. Once the
// calendar answers again, the next reschedule moves the candidate's event
// to the booking's time instead of leaving it at the first one for good.
func TestSagaOptionalStepCatchesUpOnTheNextSpec(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.svc.cfg.OptionalAttempts = 2
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.waitFor(t, en.book(t, "k1", start).Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		cand := Actor{ID: "cand", Candidate: true}
		en.cals["cand"].failUpdates(func() error { return errors.New("calendar: HTTP 503 [transient]") })
		if _, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: start.Add(time.Hour), IfMatch: b.ETag()}); err != nil {
			t.Fatal(err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool {
			return b.Status == StatusConfirmed && allSettled(b) && b.Step(StepCandidateCalendar).State == StepFailed
		})
		en.cals["cand"].failUpdates(nil)
		moved := start.Add(2 * time.Hour)
		if _, err := en.svc.Reschedule(t.Context(), cand, b.ID, RescheduleRequest{Start: moved, IfMatch: b.ETag()}); err != nil {
			t.Fatal(err)
		}
		b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if st := b.Step(StepCandidateCalendar); st.State != StepDone || !en.cals["cand"].start(b.ID).Equal(moved) {
			t.Fatalf("candidate step %+v, event at %s; want done at %s", st, en.cals["cand"].start(b.ID), moved)
		}
	})
}

// TestSagaLongNonASCIIProviderError: Jira refuses the issue with a long
// message in the site's language (Cyrillic here). Its shortened text is
// recorded as the step's last error, valid UTF-8 (PostgreSQL refuses
// anything else), and the booking settles without the issue.
func TestSagaLongNonASCIIProviderError(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.issues.ensureFailWith = Permanent(errors.New("jira create_issue: HTTP 400: " + strings.Repeat("Поле обязательно. ", 30) + "[permanent]"))
		b := en.waitFor(t, en.book(t, "k1", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking.ID, 10*time.Second,
			func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if st := b.Step(StepJira); st.State != StepFailed || !utf8.ValidString(st.LastError) || !strings.HasPrefix(st.LastError, "jira create_issue: HTTP 400: Поле") {
			t.Fatalf("jira step %+v, want failed with the shortened error", st)
		}
	})
}
