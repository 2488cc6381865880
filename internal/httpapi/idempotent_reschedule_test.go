package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/internal/systemtest"
)

// TestRescheduleIdempotencyKey: a reschedule sent again with its
// Idempotency-Key and body, after its answer was lost, answers what the
// first one did (200, or the 424 of a refused new time) instead of a 412
// for the If-Match the first one made stale, and moves nothing again; the
// key with another body or on another booking is a 422; a request refused
// before it changed anything records no key. Without a key a retry is a 412
// as before. On SQLite and PostgreSQL, through the generated client.
func TestRescheduleIdempotencyKey(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		c := en.client(t, en.candidates[0], "candidate")
		book := func(start time.Time) client.Booking {
			t.Helper()
			r, err := c.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
				client.CreateBookingRequest{MentorId: en.mentors[0], Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
			if err != nil || r.JSON201 == nil {
				t.Fatalf("create: %v %d %s", err, r.StatusCode(), r.Body)
			}
			return waitSettled(t, c, r.JSON201.Id, 10*time.Second)
		}
		start := day(3).Add(10 * time.Hour)
		bk := book(start)
		other := book(start.Add(5 * time.Hour))
		reschedule := func(id uuid.UUID, ifMatch, key string, to time.Time) *client.RescheduleBookingResponse {
			t.Helper()
			p := &client.RescheduleBookingParams{IfMatch: &ifMatch}
			if key != "" {
				p.IdempotencyKey = &key
			}
			r, err := c.RescheduleBookingWithResponse(ctx, id, p, client.RescheduleBookingRequest{Start: to})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		rescheduled := func() int {
			t.Helper()
			acts, err := systemtest.AuditActions(ctx, c, bk.Id)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, a := range acts {
				if a == "rescheduled" {
					n++
				}
			}
			return n
		}

		key, moved := uuid.NewString(), start.Add(time.Hour)
		// Jira fails for now: the answer shows its step pending the new
		// time, and so must the replay.
		setFaultRate(en.faults[3], 1)
		first := reschedule(bk.Id, bk.Etag, key, moved)
		if first.JSON200 == nil || !first.JSON200.Start.Equal(moved) || first.JSON200.Steps[3].State != client.StepStatePending {
			t.Fatalf("reschedule: %d %s, want 200 with the jira step pending", first.StatusCode(), first.Body)
		}
		// The answer was lost: the same request again.
		again := reschedule(bk.Id, bk.Etag, key, moved)
		if again.JSON200 == nil || !again.JSON200.Start.Equal(moved) || again.JSON200.Etag != first.JSON200.Etag ||
			again.HTTPResponse.Header.Get("ETag") != first.HTTPResponse.Header.Get("ETag") {
			t.Fatalf("the same reschedule again: %d %s, want the first answer %s", again.StatusCode(), again.Body, first.Body)
		}
		setFaultRate(en.faults[3], 0)
		if n := rescheduled(); n != 1 {
			t.Errorf("%d reschedules in the audit, want 1", n)
		}
		for _, tt := range []struct {
			name string
			id   uuid.UUID
			to   time.Time
		}{
			{"another body", bk.Id, start.Add(2 * time.Hour)},
			{"another booking", other.Id, moved.Add(6 * time.Hour)},
		} {
			r := reschedule(tt.id, "*", key, tt.to)
			if r.ApplicationproblemJSON422 == nil || problemType(t, r.Body) != "idempotency-key-reused" {
				t.Errorf("the key with %s: %d %s, want 422 idempotency-key-reused", tt.name, r.StatusCode(), r.Body)
			}
		}
		// Without a key the retry is a 412, as it always was.
		if r := reschedule(bk.Id, bk.Etag, "", moved); r.ApplicationproblemJSON412 == nil {
			t.Errorf("the reschedule again without a key: %d %s, want 412", r.StatusCode(), r.Body)
		}
		// A 412 records no key: the same key with a fresh tag moves the booking.
		key2, moved2 := uuid.NewString(), start.Add(3*time.Hour)
		if r := reschedule(bk.Id, bk.Etag, key2, moved2); r.ApplicationproblemJSON412 == nil {
			t.Fatalf("a stale tag: %d %s, want 412", r.StatusCode(), r.Body)
		}
		if r := reschedule(bk.Id, first.JSON200.Etag, key2, moved2); r.JSON200 == nil || !r.JSON200.Start.Equal(moved2) {
			t.Fatalf("the key refused with 412, now with a fresh tag: %d %s, want 200 at %s", r.StatusCode(), r.Body, moved2)
		}

		// A refused new time: the retry answers the same 424, not a 412.
		cur := waitSettled(t, c, bk.Id, 10*time.Second)
		en.gcalSim.InjectFault(gcaltest.Fault{Op: "events.patch", Times: -1, Status: http.StatusForbidden, Reason: "forbidden"})
		key3, moved3 := uuid.NewString(), start.Add(4*time.Hour)
		refused := reschedule(bk.Id, cur.Etag, key3, moved3)
		if refused.ApplicationproblemJSON424 == nil || problemType(t, refused.Body) != "reschedule-refused" {
			t.Fatalf("a refused reschedule: %d %s, want 424 reschedule-refused", refused.StatusCode(), refused.Body)
		}
		en.gcalSim.ClearFaults()
		waitSettled(t, c, bk.Id, 10*time.Second)
		r := reschedule(bk.Id, cur.Etag, key3, moved3)
		if r.ApplicationproblemJSON424 == nil || problemType(t, r.Body) != "reschedule-refused" ||
			!strings.Contains(string(r.Body), "the mentor's calendar event could not be created or updated") ||
			r.HTTPResponse.Header.Get("Location") != "/v1/bookings/"+bk.Id.String() || r.ApplicationproblemJSON424.BookingId != bk.Id {
			t.Fatalf("the refused reschedule again: %d %s, want its 424 again", r.StatusCode(), r.Body)
		}
		if b := waitSettled(t, c, bk.Id, 10*time.Second); !b.Start.Equal(moved2) {
			t.Errorf("after the refused reschedule and its retry the booking starts at %s, want %s", b.Start, moved2)
		}
	})
}
