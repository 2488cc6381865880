package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// The joins and leaves Zoom reported are listed, in time order, to whoever
// may read the booking, and to no one else.
func TestBookingAttendance(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 2})
		en.openSchedule(t)
		mentor, cand, stranger := en.mentors[0], en.candidates[0], en.candidates[1]
		cc, mc := en.client(t, cand, "candidate"), en.client(t, mentor, "mentor")
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: day(4).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "UTC", Topic: "attendance"})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create booking: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		id := cr.JSON201.Id

		// Nobody has joined yet: an empty list, not null.
		empty, err := mc.ListBookingAttendanceWithResponse(ctx, id)
		if err != nil || empty.StatusCode() != http.StatusOK || !strings.Contains(string(empty.Body), `"items":[]`) {
			t.Fatalf("attendance before anyone joined: %v %d %s", err, empty.StatusCode(), empty.Body)
		}

		start := day(4).Add(10 * time.Hour)
		log := &webhooks.AttendanceLog{DB: s}
		for _, a := range []webhooks.Attendance{
			{ParticipantID: "p2", Name: "Grace", Joined: false, At: start.Add(50 * time.Minute)},
			{ParticipantID: "p1", Name: "Ada", Email: "ada@example.com", Joined: true, At: start.Add(-time.Minute)},
			{ParticipantID: "p2", Name: "Grace", Joined: true, At: start.Add(time.Minute)},
			{ParticipantID: "p2", Name: "Grace", Joined: true, At: start.Add(time.Minute)}, // Zoom retried
		} {
			if err := log.Record(ctx, id.String(), a); err != nil {
				t.Fatal(err)
			}
		}

		for _, c := range []*client.ClientWithResponses{cc, mc, en.client(t, "root", "admin")} {
			r, err := c.ListBookingAttendanceWithResponse(ctx, id)
			if err != nil || r.JSON200 == nil {
				t.Fatalf("attendance: %v %d %s", err, r.StatusCode(), r.Body)
			}
			got := r.JSON200.Items
			if len(got) != 3 {
				t.Fatalf("attendance: %d records, want 3: %s", len(got), r.Body)
			}
			want := []struct {
				id    string
				event client.AttendanceRecordEvent
				at    time.Time
				email bool
			}{{"p1", client.AttendanceRecordEventJoined, start.Add(-time.Minute), true},
				{"p2", client.AttendanceRecordEventJoined, start.Add(time.Minute), false},
				{"p2", client.AttendanceRecordEventLeft, start.Add(50 * time.Minute), false}}
			for i, w := range want {
				g := got[i]
				if g.ParticipantId != w.id || g.Event != w.event || !g.At.Equal(w.at) || (g.Email != nil) != w.email {
					t.Fatalf("record %d: %+v, want %+v", i, g, w)
				}
			}
			if *got[0].Email != "ada@example.com" || got[0].Name != "Ada" {
				t.Fatalf("record 0: %+v", got[0])
			}
		}

		// Someone who may not read the booking learns nothing, exactly as
		// from the booking itself; an unknown booking is 404.
		sc := en.client(t, stranger, "candidate")
		r, _ := sc.ListBookingAttendanceWithResponse(ctx, id)
		b, _ := sc.GetBookingWithResponse(ctx, id)
		if r.StatusCode() != b.StatusCode() || r.StatusCode() == http.StatusOK || strings.Contains(string(r.Body), "Grace") {
			t.Fatalf("stranger: attendance %d %s, booking %d", r.StatusCode(), r.Body, b.StatusCode())
		}
		if r, _ := cc.ListBookingAttendanceWithResponse(ctx, uuid.New()); r.StatusCode() != http.StatusNotFound || problemType(t, r.Body) == "" {
			t.Fatalf("unknown booking: %d %s", r.StatusCode(), r.Body)
		}
		tok, err := en.issuer.Mint(auth.TokenRequest{Subject: cand, Groups: []string{"candidate"}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, en.url+"/v1/bookings/not-a-uuid/attendance", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("malformed booking id: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}
