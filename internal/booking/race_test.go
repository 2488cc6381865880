package booking

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// pgRace is a PostgreSQL store whose connections carry an application
// name of their own, so that a test can see its statements wait on a lock
// (pg_stat_activity) without counting other tests' on the same server.
type pgRace struct {
	s    *store.Store
	name string
}

func newPGRace(t *testing.T) pgRace {
	t.Helper()
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "race_" + hex.EncodeToString(b[:])
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	s, err := store.Open(context.Background(), store.Config{URL: u.String(), MaxConns: 10}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pgRace{s: s, name: name}
}

// waitBlocked waits until n statements of the store wait on a lock.
func (p pgRace) waitBlocked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var got int
		if err := p.s.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, p.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements wait on a lock, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietEnv is a saga env whose saga never runs by itself (no fast path, the
// job an hour away): the test drives each write.
func quietEnv(t *testing.T, s *store.Store) *sagaEnv {
	t.Helper()
	en := newSagaEnv(t, s, false)
	en.svc.cfg.SyncTimeout = 10 * time.Millisecond
	en.svc.cfg.DurableDelay = time.Hour
	return en
}

// TestCancelWhileTheMeetingIsRecorded: a cancel (one replica) commits while
// the saga run (another replica) records the meeting it just created. The
// run's write locks the zoom step and then the booking (for the join URL);
// the cancel locks the booking and then the steps. Both must succeed, one
// after the other, and the cancel withdraws the new meeting.
func TestCancelWhileTheMeetingIsRecorded(t *testing.T) {
	t.Parallel()
	p := newPGRace(t)
	en := quietEnv(t, p.s)
	ctx := t.Context()
	b := en.book(t, "k", time.Now().Add(48*time.Hour).Truncate(time.Hour)).Booking
	if b.Status != StatusPending {
		t.Fatalf("status %s, want pending", b.Status)
	}

	// A third transaction holds the zoom step's row, so that both writers
	// reach it in a known order: the run first, then the cancel.
	hold, err := p.s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.ExecContext(ctx, `SELECT 1 FROM booking_steps WHERE booking_id = $1 AND name = $2 FOR UPDATE`,
		b.ID, string(StepZoom)); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() {
		runErr <- en.svc.repo.writeStep(context.Background(), b.ID, "", StepZoom, stepResult{State: StepDone, Ref: ptr("m1"),
			Applied: ptr(b.SpecVersion), JoinURL: "https://zoom.test/j/m1"}, time.Now())
	}()
	p.waitBlocked(t, 1)
	cancelErr := make(chan error, 1)
	go func() {
		_, err := en.svc.Cancel(context.Background(), Actor{ID: "cand", Candidate: true}, b.ID, "changed my mind")
		cancelErr <- err
	}()
	p.waitBlocked(t, 2)
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("the run's step write: %v", err)
	}
	if err := <-cancelErr; err != nil {
		t.Errorf("cancel: %v", err)
	}
	got, err := en.svc.Lookup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if z := got.Step(StepZoom); got.Status != StatusCancelling || z.Ref != "m1" || z.State != StepCompensating {
		t.Errorf("booking %s, zoom step %s ref %q; want cancelling, the meeting m1 to withdraw", got.Status, z.State, z.Ref)
	}
}

// TestReplacedMeetingWhileRescheduled: the run records a new meeting (the
// old one was deleted in Zoom) made for spec N while a reschedule (another
// replica) commits spec N+1. The meeting has the old time: the zoom step
// must stay behind the booking's spec, so that the saga moves it.
func TestReplacedMeetingWhileRescheduled(t *testing.T) {
	t.Parallel()
	p := newPGRace(t)
	en := newSagaEnv(t, p.s, true)
	en.svc.cfg.DurableDelay = time.Hour
	ctx := t.Context()
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	b := en.book(t, "k", start).Booking
	b = en.waitFor(t, b.ID, 5*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
	if b.JoinURL == "" {
		t.Fatal("no join URL")
	}
	en.svc.noFastPath = true // the test drives the rest

	// The reschedule's transaction has moved the booking, not committed yet.
	resch, err := p.s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resch.Rollback()
	u := updateOf(b, time.Now())
	u.Status, u.Start, u.End, u.SpecVersion = StatusRescheduling, start.Add(2*time.Hour), b.End.Add(2*time.Hour), b.SpecVersion+1
	if err := en.svc.repo.apply(ctx, resch, b, u); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() {
		runErr <- en.svc.repo.writeStep(context.Background(), b.ID, "", StepZoom, stepResult{State: StepDone, Ref: ptr("m2"),
			Applied: ptr(b.SpecVersion), JoinURL: "https://zoom.test/j/m2"}, time.Now())
	}()
	p.waitBlocked(t, 1)
	if err := resch.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	got, err := en.svc.Lookup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if z := got.Step(StepZoom); !got.Start.Equal(start.Add(2*time.Hour)) || z.AppliedSpec >= got.SpecVersion {
		t.Errorf("booking at %v spec %d, zoom step applied spec %d (its meeting has the old time %v): want it behind",
			got.Start, got.SpecVersion, z.AppliedSpec, start)
	}
	if got.JoinURL != "https://zoom.test/j/m2" {
		t.Errorf("join URL %q", got.JoinURL)
	}
}

// TestRescheduleAsWhileRescheduled: a webhook processor read the booking
// before a reschedule through the API (another replica) committed, found
// it settled, and saw its Zoom meeting at a time someone set in Zoom
// before that reschedule. Its move arrives while the API's change still
// propagates: it must be judged once the booking has settled (the saga
// puts the meeting at the API's time meanwhile), not taken over the API's
// newer time, which its caller was promised.
func TestRescheduleAsWhileRescheduled(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		en.svc.cfg.DurableDelay = time.Hour
		en.svc.cfg.SyncTimeout = 10 * time.Millisecond // answers do not wait for the saga
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.book(t, "k", start).Booking
		b = en.waitFor(t, b.ID, 5*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })

		// Another runner holds the booking: the API's reschedule stays
		// in flight while the webhook's move arrives.
		// (once the run that confirmed the booking has let it go).
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			now := time.Now()
			ok, err := en.svc.repo.acquire(t.Context(), b.ID, "other", now, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if now.After(deadline) {
				t.Fatal("the booking's lease was not released")
			}
		}
		apiTo := start.Add(2 * time.Hour)
		res, err := en.svc.Reschedule(t.Context(), Actor{ID: "cand", Candidate: true}, b.ID, RescheduleRequest{IfMatch: b.ETag(), Start: apiTo})
		if err != nil || res.Booking.Status != StatusRescheduling {
			t.Fatalf("reschedule: %v %s", err, res.Booking.Status)
		}
		zoomTo := start.Add(4 * time.Hour)
		if err := en.svc.RescheduleAs(t.Context(), b.ID, zoomTo, zoomTo.Add(time.Hour), StepZoom, "webhook:zoom", "The Zoom meeting time was changed in Zoom."); !errors.Is(err, ErrChangeInFlight) {
			t.Errorf("a move from Zoom while the API's reschedule propagates: %v, want ErrChangeInFlight", err)
		}
		if err := en.svc.repo.release(t.Context(), b.ID, "other"); err != nil {
			t.Fatal(err)
		}
		en.svc.kick(b.ID)
		after := en.waitFor(t, b.ID, 5*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		if !after.Start.Equal(apiTo) || !en.meetings.start(b.ID).Equal(apiTo) {
			t.Errorf("booking at %v, meeting at %v; want the API's %v", after.Start, en.meetings.start(b.ID), apiTo)
		}
	})
}

// TestCancelAsWhileRescheduled: a webhook processor read the booking
// settled and saw its artefact deleted (the mentor's event at the old time,
// the Zoom meeting the reschedule replaces) before a reschedule through the
// API (another replica) committed. Its cancel arrives while the API's
// change still propagates: it must be judged once the booking has settled,
// not cancel the session the API's caller was just promised. That holds for
// a cancel whose commit finds the booking changed since the read it was
// judged on, and for one that looks the booking up after the reschedule
// committed (CancelAs). Once the booking has settled the cancel goes
// through and withdraws every artefact.
func TestCancelAsWhileRescheduled(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := quietEnv(t, s)
		ctx := t.Context()
		start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
		b := en.book(t, "k", start).Booking
		if _, err := en.svc.run(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		stale, err := en.svc.Lookup(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stale.Status != StatusConfirmed || !allSettled(stale) {
			t.Fatalf("booking %s, want confirmed and settled", stale.Status)
		}
		apiTo := start.Add(2 * time.Hour)
		res, err := en.svc.Reschedule(ctx, Actor{ID: "cand", Candidate: true}, b.ID, RescheduleRequest{IfMatch: stale.ETag(), Start: apiTo})
		if err != nil || res.Booking.Status != StatusRescheduling {
			t.Fatalf("reschedule: %v %s", err, res.Booking.Status)
		}
		const reason = "The mentor deleted the calendar event."
		if _, err := en.svc.cancel(ctx, "webhook:caldav", stale, reason, true); !errors.Is(err, ErrChangeInFlight) {
			t.Errorf("a cancel judged on the booking before the API's reschedule: %v, want ErrChangeInFlight", err)
		}
		if err := en.svc.CancelAs(ctx, b.ID, "webhook:caldav", reason); !errors.Is(err, ErrChangeInFlight) {
			t.Errorf("a cancel from the calendar while the API's reschedule propagates: %v, want ErrChangeInFlight", err)
		}
		if _, err := en.svc.run(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		after, err := en.svc.Lookup(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Status != StatusConfirmed || !after.Start.Equal(apiTo) || !en.meetings.has(b.ID) || !en.meetings.start(b.ID).Equal(apiTo) ||
			!en.cals["mentor"].start(b.ID).Equal(apiTo) {
			t.Fatalf("booking %s at %v, meeting at %v (exists: %t), mentor's event at %v; want confirmed, all at the API's %v",
				after.Status, after.Start, en.meetings.start(b.ID), en.meetings.has(b.ID), en.cals["mentor"].start(b.ID), apiTo)
		}
		if got := actions(t, en.svc, b.ID); slices.Contains(got, "cancel_requested") {
			t.Errorf("audit %v: a cancel was recorded", got)
		}

		// Settled: the delivery processed again cancels everywhere.
		if err := en.svc.CancelAs(ctx, b.ID, "webhook:caldav", reason); err != nil {
			t.Fatalf("a cancel once the booking settled: %v", err)
		}
		if _, err := en.svc.run(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		done, err := en.svc.Lookup(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status != StatusCancelled || en.meetings.has(b.ID) || en.cals["mentor"].count() != 0 || en.cals["cand"].count() != 0 {
			t.Errorf("booking %s, meeting left: %t, events left: %d %d; want cancelled with nothing left",
				done.Status, en.meetings.has(b.ID), en.cals["mentor"].count(), en.cals["cand"].count())
		}
	})
}
