package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestBookingFaults books 200 sessions while every simulated provider fails
// 20% of its API requests (503, 429, 502 after applying, timeouts, responses
// lost after applying). Every booking must end confirmed — with exactly one
// meeting, event per connected calendar and issue — or failed with
// everything it created removed; no provider holds an orphan or duplicate.
func TestBookingFaults(t *testing.T) {
	t.Parallel()
	const (
		mentors    = 10
		candidates = 20
		bookings   = 200
		parallel   = 16
	)
	// Provider faults do not depend on the database; PostgreSQL is used
	// when available because SQLite (translated C) is slow under -race.
	var db *store.Store
	if os.Getenv(storetest.PostgresEnv) != "" {
		db = storetest.Postgres(t)
	} else {
		db = storetest.SQLite(t)
	}
	en := newBookingEnv(t, db, envOptions{faultRate: 0.2, mentors: mentors, candidates: candidates,
		unconnected: 4, syncTimeout: 3 * time.Second, requiredAttempts: 1})
	en.openSchedule(t)
	base := day(7)

	type made struct {
		id     uuid.UUID
		mentor string
		cand   string
	}
	var (
		mu    sync.Mutex
		all   []made
		codes = map[int]int{}
		wg    sync.WaitGroup
		work  = make(chan int)
	)
	clients := map[string]*client.ClientWithResponses{}
	for _, c := range en.candidates {
		clients[c] = en.client(t, c, "candidate")
	}
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				mentor, cand := en.mentors[i%mentors], en.candidates[i%candidates]
				start := base.Add(time.Duration(8+i/mentors) * time.Hour)
				key := uuid.NewString()
				body := client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 45, Timezone: "Europe/Berlin", Topic: fmt.Sprintf("session %d", i)}
				r, err := clients[cand].CreateBookingWithResponse(context.Background(), &client.CreateBookingParams{IdempotencyKey: key}, body)
				if err != nil {
					t.Error(err)
					return
				}
				var b *client.Booking
				switch r.StatusCode() {
				case http.StatusCreated:
					b = r.JSON201
				case http.StatusAccepted:
					b = r.JSON202
				case http.StatusFailedDependency:
					// Failed within the wait: the booking is at Location.
					b = bookingAt(t, clients[cand], r.HTTPResponse.Header.Get("Location"))
					if b == nil {
						continue
					}
				default:
					t.Errorf("booking %d: %d %s", i, r.StatusCode(), r.Body)
					continue
				}
				mu.Lock()
				codes[r.StatusCode()]++
				all = append(all, made{b.Id, mentor, cand})
				mu.Unlock()
			}
		}()
	}
	began := time.Now()
	for i := range bookings {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}

	booked := time.Since(began)
	// Every booking settles: confirmed, or failed and compensated.
	cc := en.client(t, "root", "admin")
	final := map[string]client.Booking{}
	confirmed, failed := 0, 0
	for _, m := range all {
		b := waitSettled(t, cc, m.id, 45*time.Second)
		final[m.id.String()] = b
		switch b.Status {
		case client.BookingStatusConfirmed:
			confirmed++
			for _, st := range b.Steps {
				if st.State != client.StepStateDone && st.State != client.StepStateSkipped {
					t.Errorf("confirmed booking %s: step %s %s", m.id, st.Name, st.State)
				}
			}
		case client.BookingStatusFailed:
			failed++
			if b.FailureReason == nil {
				t.Errorf("failed booking %s has no reason", m.id)
			}
			for _, st := range b.Steps {
				if st.State != client.StepStateCompensated && st.State != client.StepStateSkipped {
					t.Errorf("failed booking %s: step %s %s, want compensated", m.id, st.Name, st.State)
				}
			}
		default:
			t.Errorf("booking %s ended %s", m.id, b.Status)
		}
	}
	var injected int64
	for _, f := range en.faults {
		injected += f.injected.Load()
	}
	t.Logf("%d bookings: %d confirmed, %d failed and compensated; responses %v; %d provider faults injected; booked in %s, settled after %s",
		len(all), confirmed, failed, codes, injected, booked.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if injected < bookings {
		t.Fatalf("only %d faults injected", injected)
	}

	// Zoom: one meeting per confirmed booking, none for failed ones, no strangers.
	for _, mentor := range en.mentors {
		for bid, ms := range en.meetingsOf(t, mentor) {
			b, ok := final[bid]
			switch {
			case !ok:
				t.Errorf("zoom: orphan meeting(s) %v for unknown booking %q", ms, bid)
			case b.Status != client.BookingStatusConfirmed:
				t.Errorf("zoom: %d meeting(s) left for %s booking %s", len(ms), b.Status, bid)
			case len(ms) != 1:
				t.Errorf("zoom: %d meetings for booking %s", len(ms), bid)
			case fmt.Sprint(ms[0].ID) != *b.Steps[0].ProviderRef:
				t.Errorf("zoom: booking %s points to meeting %s, the meeting is %d", bid, *b.Steps[0].ProviderRef, ms[0].ID)
			}
		}
	}
	// Mentor calendars (Google): one live event per confirmed booking.
	perMentor := map[string]int{}
	for bid, b := range final {
		ev, err := en.gcalSim.Event(mentorEmail(b.MentorId), calendar.EventID(bid))
		live := err == nil && ev.Status != "cancelled"
		if b.Status == client.BookingStatusConfirmed {
			perMentor[b.MentorId]++
			if !live {
				t.Errorf("gcal: confirmed booking %s has no event (%v)", bid, err)
			}
		} else if live {
			t.Errorf("gcal: failed booking %s left an event", bid)
		}
	}
	for _, mentor := range en.mentors {
		if n := en.gcalSim.EventCount(mentorEmail(mentor)); n != perMentor[mentor] {
			t.Errorf("gcal: %s has %d events, want %d", mentor, n, perMentor[mentor])
		}
	}
	// Candidate calendars (CalDAV): one event per confirmed booking, nothing else.
	for cand, dc := range en.caldavClean {
		cs, err := dc.Changes(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ch := range cs.Changes {
			if !ch.Deleted {
				seen[ch.BookingID]++
			}
		}
		for bid, n := range seen {
			b, ok := final[bid]
			if !ok || b.Status != client.BookingStatusConfirmed || b.CandidateId != cand || n != 1 {
				t.Errorf("caldav: %s holds %d event(s) of booking %q (%v)", cand, n, bid, b.Status)
			}
		}
		for bid, b := range final {
			if b.CandidateId == cand && b.Status == client.BookingStatusConfirmed && seen[bid] != 1 {
				t.Errorf("caldav: confirmed booking %s has no event in %s", bid, cand)
			}
		}
	}
	// Jira: one issue per confirmed booking, none for failed ones.
	issues := en.issuesByBooking()
	for bid, n := range issues {
		b, ok := final[bid]
		if !ok || b.Status != client.BookingStatusConfirmed || n != 1 {
			t.Errorf("jira: %d issue(s) for booking %q (%v)", n, bid, b.Status)
		}
	}
	for bid, b := range final {
		if b.Status == client.BookingStatusConfirmed && issues[bid] != 1 {
			t.Errorf("jira: confirmed booking %s has %d issues", bid, issues[bid])
		}
	}
}
