package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestIfMatchIsStrong: If-Match uses the strong comparison (RFC 9110
// section 13.1.1), so the booking's ETag marked weak is a 412; the ETag
// itself, in a list or as "*", moves the booking.
func TestIfMatchIsStrong(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	cand := en.candidates[0]
	start := day(3).Add(10 * time.Hour)
	cr, err := en.client(t, cand, "candidate").CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || cr.JSON201 == nil {
		t.Fatalf("create: %v %s", err, cr.Body)
	}
	path := "/v1/bookings/" + cr.JSON201.Id.String()
	tok := en.token(t, cand, "candidate")
	etag := cr.JSON201.Etag
	tests := []struct {
		name    string
		ifMatch func(etag string) string
		status  int
	}{
		{"weak", func(e string) string { return "W/" + e }, http.StatusPreconditionFailed},
		{"weak in a list", func(e string) string { return `"0", W/` + e }, http.StatusPreconditionFailed},
		{"strong", func(e string) string { return e }, http.StatusOK},
		{"strong in a list", func(e string) string { return `"0", ` + e }, http.StatusOK},
		{"any", func(string) string { return "*" }, http.StatusOK},
	}
	for i, tt := range tests {
		// In order: each move changes the ETag.
		body := `{"start":"` + start.Add(time.Duration(i+1)*time.Hour).Format(time.RFC3339) + `"}`
		resp, b := en.do(t, http.MethodPatch, path, tok, body, "If-Match", tt.ifMatch(etag))
		if resp.StatusCode != tt.status {
			t.Fatalf("%s: If-Match %s: %d %s, want %d", tt.name, tt.ifMatch(etag), resp.StatusCode, b, tt.status)
		}
		if tt.status == http.StatusPreconditionFailed {
			decodeProblem(t, resp, b, http.StatusPreconditionFailed)
			continue
		}
		etag = resp.Header.Get("ETag")
	}
}

// setFaultRate changes the share of requests f fails from now on.
func setFaultRate(f *flaky, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
}

// TestETagFollowsTheRepresentation: a booking's ETag changes whenever what
// GET returns changes, step progress included (RFC 9110 section 8.8.1), so
// If-None-Match answers 304 only for the body the caller holds; If-Match on
// a reschedule is compared on the booking's version, so a tag read before a
// step progressed still moves the booking, and one read before the booking
// itself changed is a 412. On SQLite and PostgreSQL.
func TestETagFollowsTheRepresentation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		jiraFaults := en.faults[3]
		setFaultRate(jiraFaults, 1) // the Jira step stays pending
		cand := en.candidates[0]
		cc := en.client(t, cand, "candidate")
		start := day(3).Add(10 * time.Hour)
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: en.mentors[0], Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		id := cr.JSON201.Id
		get := func(hdr ...string) *client.GetBookingResponse {
			t.Helper()
			r, err := cc.GetBookingWithResponse(ctx, id, func(_ context.Context, req *http.Request) error {
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		early := get()
		if early.JSON200 == nil || early.JSON200.Steps[3].Name != client.StepNameJira || early.JSON200.Steps[3].State == client.StepStateDone {
			t.Fatalf("GET while Jira fails: %d %s, want the jira step not done", early.StatusCode(), early.Body)
		}
		tag1 := early.HTTPResponse.Header.Get("ETag")
		if tag1 != early.JSON200.Etag {
			t.Fatalf("ETag header %s, body etag %s: want the same", tag1, early.JSON200.Etag)
		}
		setFaultRate(jiraFaults, 0)
		done := waitSettled(t, cc, id, 15*time.Second)
		late := get()
		if late.JSON200 == nil || bytes.Equal(late.Body, early.Body) {
			t.Fatalf("GET after the Jira step: %d %s", late.StatusCode(), late.Body)
		}
		tag2 := late.HTTPResponse.Header.Get("ETag")
		if tag2 == tag1 || late.JSON200.Etag != tag2 || done.Etag != tag2 {
			t.Fatalf("ETag %s before the Jira step progressed and %s after (body %s, settled %s): want a new tag for a new representation", tag1, tag2, late.JSON200.Etag, done.Etag)
		}
		if again := get(); again.HTTPResponse.Header.Get("ETag") != tag2 || !bytes.Equal(again.Body, late.Body) {
			t.Errorf("the same representation read again: ETag %s, want %s", again.HTTPResponse.Header.Get("ETag"), tag2)
		}

		// If-None-Match: 304 for the current tag only (weak comparison).
		for _, tt := range []struct {
			inm    string
			status int
		}{
			{tag1, http.StatusOK},
			{tag2, http.StatusNotModified},
			{"W/" + tag2, http.StatusNotModified},
			{`"1.000000000000", ` + tag2, http.StatusNotModified},
			{"*", http.StatusNotModified},
		} {
			r := get("If-None-Match", tt.inm)
			if r.StatusCode() != tt.status {
				t.Errorf("If-None-Match %s: %d %s, want %d", tt.inm, r.StatusCode(), r.Body, tt.status)
				continue
			}
			if tt.status == http.StatusNotModified && (len(r.Body) != 0 || r.HTTPResponse.Header.Get("ETag") != tag2) {
				t.Errorf("If-None-Match %s: 304 with body %q and ETag %s, want none and %s", tt.inm, r.Body, r.HTTPResponse.Header.Get("ETag"), tag2)
			}
		}

		// If-Match: the tag read before the Jira step progressed still
		// names the booking's version.
		move := client.RescheduleBookingRequest{Start: start.Add(time.Hour)}
		r, err := cc.RescheduleBookingWithResponse(ctx, id, &client.RescheduleBookingParams{IfMatch: &tag1}, move)
		if err != nil || (r.JSON200 == nil && r.JSON202 == nil) {
			t.Fatalf("reschedule with the tag read before the step progressed: %v %d %s, want 200 or 202", err, r.StatusCode(), r.Body)
		}
		// ... and is stale once the booking itself moved.
		move.Start = start.Add(2 * time.Hour)
		r, err = cc.RescheduleBookingWithResponse(ctx, id, &client.RescheduleBookingParams{IfMatch: &tag1}, move)
		if err != nil || r.ApplicationproblemJSON412 == nil {
			t.Fatalf("reschedule with a tag read before the booking moved: %v %d %s, want 412", err, r.StatusCode(), r.Body)
		}
	})
}
