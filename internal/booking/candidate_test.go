package booking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// candidateEnv is a saga env with three mentors ("mentor", "mentor2" and
// "mentor3", who keeps a 15-minute buffer after each session) who all work
// around the clock on a one-minute slot grid (sessions start at any whole
// minute: the tests place them to overlap by parts of an hour), and days to
// book on: day(i) is midnight UTC, i+2 days from now.
func candidateEnv(t *testing.T, s *store.Store) (*sagaEnv, func(i int) time.Time) {
	t.Helper()
	en := newSagaEnv(t, s, true)
	var hs []WorkingHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		hs = append(hs, WorkingHours{Weekday: d, StartMin: 0, EndMin: 1440})
	}
	for _, m := range []struct {
		id     string
		buffer time.Duration
	}{{"mentor", 0}, {"mentor2", 0}, {"mentor3", 15 * time.Minute}} {
		if _, err := en.svc.PutSchedule(t.Context(), Actor{ID: m.id, Mentor: true}, Schedule{MentorID: m.id, TimeZone: "UTC",
			WorkingHours: hs, Slot: time.Minute, Buffer: m.buffer, MaxAdvance: 30 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	return en, func(i int) time.Time { return today.Add(time.Duration(i+2) * 24 * time.Hour) }
}

// bookFor books a session of candidate with mentor.
func (en *sagaEnv) bookFor(ctx context.Context, candidate, mentor, key string, start time.Time, dur time.Duration) (Result, error) {
	return en.svc.Create(ctx, Actor{ID: candidate, Candidate: true}, CreateRequest{MentorID: mentor, Start: start,
		Duration: dur, TimeZone: "UTC", Topic: "t", IdempotencyKey: key})
}

// TestCandidateOverlapCreate: a candidate cannot hold two active sessions
// at once, whoever the mentors are; sessions that only touch, another
// candidate's session or a cancelled one do not count, and the mentor's
// buffer is the mentor's, not the candidate's. The mentor's own overlap
// stays ErrOverlap without the candidate's error.
func TestCandidateOverlapCreate(t *testing.T) {
	t.Parallel()
	type slot struct {
		mentor     string
		start, dur time.Duration // from 09:00 of the case's day
	}
	tests := []struct {
		name     string
		existing []slot
		// cancelled cancels the existing bookings before the new one.
		cancelled bool
		// otherCandidate books the new session for another candidate.
		otherCandidate bool
		book           slot
		want           error
	}{
		{name: "same time, other mentor", existing: []slot{{"mentor", 0, time.Hour}},
			book: slot{"mentor2", 0, time.Hour}, want: ErrCandidateOverlap},
		{name: "starts inside", existing: []slot{{"mentor", 0, time.Hour}},
			book: slot{"mentor2", 30 * time.Minute, time.Hour}, want: ErrCandidateOverlap},
		{name: "ends inside", existing: []slot{{"mentor", 0, time.Hour}},
			book: slot{"mentor2", -30 * time.Minute, time.Hour}, want: ErrCandidateOverlap},
		{name: "contains it", existing: []slot{{"mentor", 15 * time.Minute, 30 * time.Minute}},
			book: slot{"mentor2", 0, time.Hour}, want: ErrCandidateOverlap},
		{name: "overlaps the second of two", existing: []slot{{"mentor", 0, time.Hour}, {"mentor2", 2 * time.Hour, time.Hour}},
			book: slot{"mentor3", 150 * time.Minute, time.Hour}, want: ErrCandidateOverlap},
		{name: "right after, in the mentor's buffer", existing: []slot{{"mentor3", 0, time.Hour}},
			book: slot{"mentor", time.Hour, time.Hour}},
		{name: "right before", existing: []slot{{"mentor", time.Hour, time.Hour}},
			book: slot{"mentor3", 0, time.Hour}},
		{name: "between two", existing: []slot{{"mentor", 0, time.Hour}, {"mentor2", 2 * time.Hour, time.Hour}},
			book: slot{"mentor3", time.Hour, time.Hour}},
		{name: "another candidate", existing: []slot{{"mentor", 0, time.Hour}}, otherCandidate: true,
			book: slot{"mentor2", 0, time.Hour}},
		{name: "cancelled session", existing: []slot{{"mentor", 0, time.Hour}}, cancelled: true,
			book: slot{"mentor2", 0, time.Hour}},
		{name: "the mentor's overlap", existing: []slot{{"mentor", 0, time.Hour}},
			book: slot{"mentor", 30 * time.Minute, time.Hour}, want: ErrOverlap},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, day := candidateEnv(t, s)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cand := fmt.Sprintf("cand-create-%d", i)
				at := day(i).Add(9 * time.Hour)
				for j, e := range tt.existing {
					res, err := en.bookFor(t.Context(), cand, e.mentor, fmt.Sprintf("existing-%d", j), at.Add(e.start), e.dur)
					if err != nil {
						t.Fatalf("existing booking %d: %v", j, err)
					}
					if tt.cancelled {
						if _, err := en.svc.Cancel(t.Context(), Actor{ID: cand, Candidate: true}, res.Booking.ID, "changed my mind"); err != nil {
							t.Fatal(err)
						}
					}
				}
				who := cand
				if tt.otherCandidate {
					who = cand + "-other"
				}
				res, err := en.bookFor(t.Context(), who, tt.book.mentor, "new", at.Add(tt.book.start), tt.book.dur)
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("booking = %v, want %v", err, tt.want)
				}
				if errors.Is(tt.want, ErrOverlap) && !errors.Is(tt.want, ErrCandidateOverlap) && errors.Is(err, ErrCandidateOverlap) {
					t.Errorf("the mentor's overlap reported as the candidate's: %v", err)
				}
				if err == nil && res.Booking.Status != StatusConfirmed {
					t.Errorf("new booking %s, want confirmed", res.Booking.Status)
				}
			})
		}
	})
}

// TestCandidateOverlapConcurrent: bookings of one candidate with different
// mentors for overlapping times, sent at once, give exactly one booking
// (the mentors' locks do not serialise them; the candidate's does). The
// same request sent several times at once is still one booking, replayed,
// not an overlap with itself.
func TestCandidateOverlapConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, day := candidateEnv(t, s)
		mentors := []string{"mentor", "mentor2", "mentor3"}
		for round := range 4 {
			cand := fmt.Sprintf("cand-race-%d", round)
			at := day(round).Add(10 * time.Hour)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				booked  []string
				refused []error
				start   = make(chan struct{})
			)
			for i, m := range mentors {
				wg.Go(func() {
					<-start
					res, err := en.bookFor(context.Background(), cand, m, "race-"+m, at.Add(time.Duration(i)*20*time.Minute), time.Hour)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						refused = append(refused, err)
						return
					}
					booked = append(booked, res.Booking.ID)
				})
			}
			close(start)
			wg.Wait()
			if len(booked) != 1 || len(refused) != len(mentors)-1 {
				t.Fatalf("round %d: %d booked, refused %v; want one booking and %d ErrCandidateOverlap", round, len(booked), refused, len(mentors)-1)
			}
			for _, err := range refused {
				if !errors.Is(err, ErrCandidateOverlap) {
					t.Errorf("round %d: %v, want ErrCandidateOverlap", round, err)
				}
			}
			list, _, err := en.svc.List(t.Context(), Actor{ID: cand, Candidate: true}, ListQuery{})
			if err != nil || len(list) != 1 {
				t.Fatalf("round %d: the candidate holds %d bookings (%v), want 1", round, len(list), err)
			}
		}

		t.Run("same request", func(t *testing.T) {
			at := day(5).Add(10 * time.Hour)
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				ids = map[string]int{}
			)
			for range 3 {
				wg.Go(func() {
					res, err := en.bookFor(context.Background(), "cand-replay", "mentor2", "same-key", at, time.Hour)
					if err != nil {
						t.Errorf("a copy of the request: %v", err)
						return
					}
					mu.Lock()
					ids[res.Booking.ID]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if len(ids) != 1 {
				t.Errorf("bookings %v, want one booking replayed to every copy", ids)
			}
		})
	})
}

// TestCandidateOverlapReschedule: a reschedule (the API's, or one a
// provider asks for, the mentor's own calendar drag included) that would
// make the candidate's sessions overlap is refused with
// ErrCandidateOverlap and changes nothing; moving next to the other
// session, or within the session's own time, is fine.
func TestCandidateOverlapReschedule(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, day := candidateEnv(t, s)
		tests := []struct {
			name string
			// move moves booking b (13:00-14:00, mentor2) of a candidate who
			// also has a session 10:00-11:00 with mentor to to.
			move func(t *testing.T, b Booking, to time.Time) error
		}{
			{"api", func(t *testing.T, b Booking, to time.Time) error {
				_, err := en.svc.Reschedule(t.Context(), Actor{ID: b.CandidateID, Candidate: true}, b.ID, RescheduleRequest{Start: to, IfMatch: b.ETag()})
				return err
			}},
			{"admin", func(t *testing.T, b Booking, to time.Time) error {
				_, err := en.svc.Reschedule(t.Context(), Actor{ID: "root", Admin: true}, b.ID, RescheduleRequest{Start: to, IfMatch: b.ETag()})
				return err
			}},
			{"zoom", func(t *testing.T, b Booking, to time.Time) error {
				return en.svc.RescheduleAs(t.Context(), b.ID, to, to.Add(b.Duration()), StepZoom, "webhook:zoom", "moved in Zoom")
			}},
			{"mentor's calendar", func(t *testing.T, b Booking, to time.Time) error {
				return en.svc.RescheduleAs(t.Context(), b.ID, to, to.Add(b.Duration()), StepMentorCalendar, "webhook:caldav", "The mentor moved the calendar event.")
			}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cand := fmt.Sprintf("cand-move-%d", i)
				at := day(i)
				if _, err := en.bookFor(t.Context(), cand, "mentor", "first", at.Add(10*time.Hour), time.Hour); err != nil {
					t.Fatal(err)
				}
				res, err := en.bookFor(t.Context(), cand, "mentor2", "second", at.Add(13*time.Hour), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				b := en.waitFor(t, res.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })

				for _, to := range []time.Time{at.Add(10 * time.Hour), at.Add(10*time.Hour + 30*time.Minute), at.Add(9*time.Hour + 1*time.Minute)} {
					if err := tt.move(t, b, to); !errors.Is(err, ErrCandidateOverlap) {
						t.Fatalf("move to %s: %v, want ErrCandidateOverlap", to.Format("15:04"), err)
					} else if got := Explain(err); got != "the candidate already has a session at that time" {
						t.Errorf("Explain = %q", got)
					}
					after, err := en.svc.Lookup(t.Context(), b.ID)
					if err != nil || after.Version != b.Version || !after.Start.Equal(b.Start) {
						t.Fatalf("after a refused move: %+v, %v; want it unchanged at %s", after, err, b.Start)
					}
				}
				if got := actions(t, en.svc, b.ID); !slices.Equal(got, []string{"created", "confirmed"}) {
					t.Errorf("audit %v: a refused move left a trace", got)
				}

				// Within its own time, then right after the other session.
				for _, to := range []time.Time{at.Add(13*time.Hour + 30*time.Minute), at.Add(11 * time.Hour)} {
					if err := tt.move(t, b, to); err != nil {
						t.Fatalf("move to %s: %v", to.Format("15:04"), err)
					}
					b = en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool {
						return b.Status == StatusConfirmed && allSettled(b) && b.Start.Equal(to)
					})
				}
			})
		}
	})
}

// TestCandidateOverlapRestore: a refused reschedule is undone only when
// the previous time is still free for the candidate too; when the
// candidate booked that time with another mentor meanwhile, the booking
// fails instead of overlapping the new session, as when the mentor's slot
// was taken.
func TestCandidateOverlapRestore(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, day := candidateEnv(t, s)
		start := day(0).Add(10 * time.Hour)
		res, err := en.bookFor(t.Context(), "cand", "mentor", "first", start, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b := en.waitFor(t, res.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		en.cals["mentor"].failUpdates(func() error {
			entered <- struct{}{}
			<-release
			return Permanent(errors.New("calendar: forbidden"))
		})
		errc := make(chan error, 1)
		go func() {
			_, err := en.svc.Reschedule(context.Background(), Actor{ID: "cand", Candidate: true}, b.ID, RescheduleRequest{Start: start.Add(3 * time.Hour), IfMatch: b.ETag()})
			errc <- err
		}()
		<-entered
		other, err := en.bookFor(t.Context(), "cand", "mentor2", "freed", start, time.Hour) // the freed time, another mentor
		if err != nil {
			t.Fatalf("booking the time the reschedule freed: %v", err)
		}
		close(release)
		en.cals["mentor"].failUpdates(nil)
		if err := <-errc; errors.Is(err, ErrRescheduleRefused) {
			t.Errorf("reschedule = %v; the candidate's old time is taken, nothing can be restored", err)
		}
		failed := en.waitFor(t, b.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusFailed && allSettled(b) })
		if !strings.Contains(failed.FailureReason, "could not be created or updated") || strings.Contains(failed.FailureReason, "forbidden") {
			t.Errorf("failure reason %q", failed.FailureReason)
		}
		en.waitFor(t, other.Booking.ID, 10*time.Second, func(b Booking) bool { return b.Status == StatusConfirmed && allSettled(b) })
	})
}

// TestCandidateAvailability: a candidate asking for a mentor's free slots
// is not offered those that overlap one of their own sessions (with
// another mentor), though a slot touching one is; anyone else still sees
// every free slot of the mentor.
func TestCandidateAvailability(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en, day := candidateEnv(t, s)
		sch, err := en.svc.GetSchedule(t.Context(), "mentor2")
		if err != nil {
			t.Fatal(err)
		}
		sch.Slot = time.Hour
		if _, err := en.svc.PutSchedule(t.Context(), Actor{ID: "mentor2", Mentor: true}, sch); err != nil {
			t.Fatal(err)
		}
		at := day(5).Add(9 * time.Hour)
		// cand's sessions with mentor3, 10:00–11:00 and 12:30–13:00: they
		// overlap mentor2's hourly 10:00 and 12:00 slots and touch the
		// 09:00 and 11:00 ones.
		if _, err := en.bookFor(t.Context(), "cand-av", "mentor3", "own-1", at.Add(time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := en.bookFor(t.Context(), "cand-av", "mentor3", "own-2", at.Add(210*time.Minute), 30*time.Minute); err != nil {
			t.Fatal(err)
		}
		q := AvailabilityQuery{From: at, To: at.Add(4 * time.Hour)}
		starts := func(q AvailabilityQuery) []string {
			t.Helper()
			slots, _, err := en.svc.Availability(t.Context(), "mentor2", q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, sl := range slots {
				out = append(out, sl.Start.UTC().Format("15:04"))
			}
			return out
		}
		if got, want := starts(q), []string{"09:00", "10:00", "11:00", "12:00"}; !slices.Equal(got, want) {
			t.Errorf("anyone: slots %v, want %v", got, want)
		}
		q.Candidate = "cand-av"
		if got, want := starts(q), []string{"09:00", "11:00"}; !slices.Equal(got, want) {
			t.Errorf("the candidate: slots %v, want %v", got, want)
		}
		q.Candidate = "cand-other"
		if got := starts(q); len(got) != 4 {
			t.Errorf("another candidate: slots %v, want all four", got)
		}
	})
}
