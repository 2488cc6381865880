package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestBookingScaleOut runs two gateway instances (each its own booking
// service, River client and connection pool) on one PostgreSQL schema in
// front of the same providers. Bookings go to both; every provider step runs
// exactly once (the jobs both instances work find the steps done), and the
// same slot sent to both instances at once is booked once.
func TestBookingScaleOut(t *testing.T) {
	t.Parallel()
	u := storetest.PostgresURL(t)
	open := func() *store.Store {
		s, err := store.Open(context.Background(), store.Config{URL: u, MaxConns: 10}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := newBookingEnv(t, open(), envOptions{mentors: 4, candidates: 8, syncTimeout: 3 * time.Second})
	b := newBookingEnv(t, open(), envOptions{share: a, syncTimeout: 3 * time.Second})
	a.openSchedule(t)
	instances := []*bookingEnv{a, b}
	base := day(9)

	var (
		mu       sync.Mutex
		ids      []uuid.UUID
		codes    = map[int]int{}
		conflict int
		wg       sync.WaitGroup
	)
	book := func(en *bookingEnv, cand, mentor string, start time.Time) {
		defer wg.Done()
		r, err := en.client(t, cand, "candidate").CreateBookingWithResponse(context.Background(),
			&client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "scale"})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		codes[r.StatusCode()]++
		switch r.StatusCode() {
		case http.StatusCreated:
			ids = append(ids, r.JSON201.Id)
		case http.StatusAccepted:
			ids = append(ids, r.JSON202.Id)
		case http.StatusConflict:
			conflict++
		default:
			t.Errorf("booking: %d %s", r.StatusCode(), r.Body)
		}
	}
	// 40 distinct slots, alternating instances.
	for i := range 40 {
		wg.Add(1)
		go book(instances[i%2], a.candidates[i%len(a.candidates)], a.mentors[i%len(a.mentors)], base.Add(time.Duration(8+i/len(a.mentors))*time.Hour))
	}
	// 8 slots each sent to both instances at once, by two candidates who
	// send nothing else at that hour: a candidate in two contested slots of
	// one hour could lose both (the mentor's to another, the second as a
	// candidate-overlap) and leave a slot unbooked.
	for i := range 8 {
		start := base.Add(time.Duration(20) * time.Hour).Add(time.Duration(i/len(a.mentors)) * time.Hour)
		for k, en := range instances {
			wg.Add(1)
			go book(en, a.candidates[(2*i+k)%len(a.candidates)], a.mentors[i%len(a.mentors)], start)
		}
	}
	wg.Wait()
	if conflict != 8 || len(ids) != 48 {
		t.Fatalf("%d bookings, %d conflicts (codes %v); want 48 and 8", len(ids), conflict, codes)
	}

	admin := a.client(t, "root", "admin")
	final := map[string]client.Booking{}
	for _, id := range ids {
		bk := waitSettled(t, admin, id, 20*time.Second)
		if bk.Status != client.BookingStatusConfirmed {
			t.Fatalf("booking %s ended %s", id, bk.Status)
		}
		final[id.String()] = bk
	}
	// Let both instances work every saga job.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		if err := a.db.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'booking_saga'
			AND state NOT IN ('completed', 'discarded', 'cancelled')`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d saga jobs still pending", left)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if n := a.zoomSim.Requests(zoomtest.RouteCreateMeeting); n != len(final) {
		t.Errorf("zoom: %d create requests for %d bookings", n, len(final))
	}
	if n := a.jiraSim.Requests("POST /rest/api/3/issue"); n != len(final) {
		t.Errorf("jira: %d create requests for %d bookings", n, len(final))
	}
	for _, m := range a.mentors {
		for bid, ms := range a.meetingsOf(t, m) {
			if _, ok := final[bid]; !ok || len(ms) != 1 {
				t.Errorf("zoom: %d meetings for booking %q", len(ms), bid)
			}
		}
	}
	for bid, bk := range final {
		if ev, err := a.gcalSim.Event(mentorEmail(bk.MentorId), calendar.EventID(bid)); err != nil || ev.Status == "cancelled" {
			t.Errorf("gcal: no event for booking %s: %v", bid, err)
		}
	}
	if got := a.issuesByBooking(); len(got) != len(final) {
		t.Errorf("jira: issues for %d bookings, want %d", len(got), len(final))
	}
	t.Logf("scale-out: %d bookings over two instances, codes %v", len(final), fmt.Sprint(codes))
}
