package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/internal/systemtest"
)

// day returns 00:00 Berlin time, n days from now.
func day(n int) time.Time {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Now().In(berlin)
	return time.Date(now.Year(), now.Month(), now.Day()+n, 0, 0, 0, 0, berlin)
}

func ptr[T any](v T) *T { return &v }

// sameVersion reports whether two ETags name the same version of a
// booking: the booking itself did not change between them, though its
// steps may have progressed (which changes the tag's digest).
func sameVersion(a, b string) bool {
	va, oka := booking.VersionOfTag(a)
	vb, okb := booking.VersionOfTag(b)
	return oka && okb && va == vb
}

func problemType(t *testing.T, body []byte) string {
	t.Helper()
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem: %s", body)
	}
	return strings.TrimPrefix(p.Type, "https://spotlight.dev/problems/")
}

// meetingsOf counts the mentor's upcoming Zoom meetings by booking id.
func (en *bookingEnv) meetingsOf(t *testing.T, mentor string) map[string][]zoom.Meeting {
	t.Helper()
	ms, err := en.zoomClean.ListUpcomingMeetings(context.Background(), mentor)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]zoom.Meeting{}
	for _, m := range ms {
		out[m.BookingID] = append(out[m.BookingID], m)
	}
	return out
}

// issuesOf returns the Jira issues by booking label.
func (en *bookingEnv) issuesByBooking() map[string]int {
	out := map[string]int{}
	for _, is := range en.jiraSim.Issues() {
		for _, l := range is.Labels {
			if strings.HasPrefix(l, jira.BookingLabelPrefix) {
				out[strings.TrimPrefix(l, jira.BookingLabelPrefix)]++
			}
		}
	}
	return out
}

func TestBookingLifecycle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 2, candidates: 3, unconnected: 1})
		mentor, other := en.mentors[0], en.mentors[1]
		cand := en.candidates[0]
		mc := en.client(t, mentor, "mentor")
		cc := en.client(t, cand, "candidate")
		admin := en.client(t, "root", "admin")

		// Schedules: the mentor sets their own; not someone else's.
		var hours []client.WorkingHours
		for _, d := range []client.Weekday{client.WeekdayMon, client.WeekdayTue, client.WeekdayWed, client.WeekdayThu, client.WeekdayFri, client.WeekdaySat, client.WeekdaySun} {
			hours = append(hours, client.WorkingHours{Weekday: d, Start: "08:00", End: "20:00"})
		}
		in := client.MentorScheduleInput{Timezone: "Europe/Berlin", WorkingHours: hours, SlotMinutes: ptr(60),
			BufferMinutes: ptr(0), MinNoticeMinutes: ptr(60), MaxAdvanceDays: ptr(120), ZoomUser: ptr(mentor)}
		put, err := mc.PutMentorScheduleWithResponse(ctx, mentor, in)
		if err != nil || put.JSON200 == nil {
			t.Fatalf("PUT schedule: %v %d %s", err, put.StatusCode(), put.Body)
		}
		forbidden, _ := mc.PutMentorScheduleWithResponse(ctx, other, in)
		if forbidden.StatusCode() != http.StatusForbidden || problemType(t, forbidden.Body) != "forbidden" {
			t.Fatalf("PUT someone else's schedule: %d %s", forbidden.StatusCode(), forbidden.Body)
		}
		bad := in
		bad.WorkingHours = []client.WorkingHours{{Weekday: client.WeekdayMon, Start: "12:00", End: "09:00"}}
		if r, _ := admin.PutMentorScheduleWithResponse(ctx, other, bad); r.StatusCode() != http.StatusUnprocessableEntity {
			t.Fatalf("inverted hours: %d %s", r.StatusCode(), r.Body)
		}
		got, _ := cc.GetMentorScheduleWithResponse(ctx, mentor)
		if got.JSON200 == nil || got.JSON200.Timezone != "Europe/Berlin" || len(got.JSON200.WorkingHours) != 7 {
			t.Fatalf("GET schedule: %s", got.Body)
		}
		if r, _ := cc.GetMentorScheduleWithResponse(ctx, "nobody"); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("GET missing schedule: %d", r.StatusCode())
		}

		// Availability of day+3: 12 one-hour slots in Berlin.
		d3 := day(3)
		av, err := cc.GetMentorAvailabilityWithResponse(ctx, mentor, &client.GetMentorAvailabilityParams{From: d3, To: d3.Add(24 * time.Hour), Tz: ptr("America/New_York")})
		if err != nil || av.JSON200 == nil {
			t.Fatalf("availability: %v %s", err, av.Body)
		}
		if n := len(av.JSON200.Slots); n != 12 {
			t.Fatalf("availability: %d slots, want 12: %s", n, av.Body)
		}
		if _, off := av.JSON200.Slots[0].Start.Zone(); off != -5*3600 && off != -4*3600 {
			t.Fatalf("slot not in New York time: %s", av.JSON200.Slots[0].Start)
		}

		// Book 10:00-11:00 on day+3.
		start := d3.Add(10 * time.Hour)
		body := client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin",
			Topic: "System design", Notes: ptr("caching")}
		key := uuid.NewString()
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: key}, body)
		if err != nil {
			t.Fatal(err)
		}
		if cr.StatusCode() != http.StatusCreated || cr.JSON201 == nil {
			t.Fatalf("create: %d %s", cr.StatusCode(), cr.Body)
		}
		bk := *cr.JSON201
		if bk.Status != client.BookingStatusConfirmed || bk.JoinUrl == nil || bk.CandidateId != cand ||
			cr.HTTPResponse.Header.Get("ETag") != bk.Etag || cr.HTTPResponse.Header.Get("Location") != "/v1/bookings/"+bk.Id.String() {
			t.Fatalf("created booking: %s (headers %v)", cr.Body, cr.HTTPResponse.Header)
		}
		if !bk.Start.Equal(start) {
			t.Fatalf("start %s, want %s", bk.Start, start)
		}

		// Idempotent replay: same response; another body is a 422.
		again, _ := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: key}, body)
		if again.StatusCode() != http.StatusCreated || again.JSON201.Id != bk.Id || string(again.Body) != string(cr.Body) {
			t.Fatalf("replay: %d %s\nfirst: %s", again.StatusCode(), again.Body, cr.Body)
		}
		changed := body
		changed.Topic = "Other"
		if r, _ := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: key}, changed); r.StatusCode() != http.StatusUnprocessableEntity ||
			problemType(t, r.Body) != "idempotency-key-reused" {
			t.Fatalf("key reuse: %d %s", r.StatusCode(), r.Body)
		}
		// Keys are per caller: another candidate may use the same key.
		cc2 := en.client(t, en.candidates[1], "candidate")
		if r, _ := cc2.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: key}, body); r.StatusCode() != http.StatusConflict ||
			problemType(t, r.Body) != "booking-overlap" {
			t.Fatalf("overlap from another caller with the same key: %d %s", r.StatusCode(), r.Body)
		}
		overlap := body
		overlap.Start, overlap.DurationMinutes = start.Add(-time.Hour), 120
		if r, _ := cc2.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()}, overlap); r.StatusCode() != http.StatusConflict ||
			problemType(t, r.Body) != "booking-overlap" {
			t.Fatalf("overlap: %d %s", r.StatusCode(), r.Body)
		}

		// Roles.
		roleCases := []struct {
			name string
			c    *client.ClientWithResponses
			body client.CreateBookingRequest
		}{
			{"mentor role cannot book", mc, client.CreateBookingRequest{MentorId: other, Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "x"}},
			{"candidate books only for self", cc, client.CreateBookingRequest{MentorId: other, CandidateId: ptr(en.candidates[1]), Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "x"}},
			{"mentor cannot book themself", admin, client.CreateBookingRequest{MentorId: mentor, CandidateId: ptr(mentor), Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "x"}},
			{"candidate who is the mentor", en.client(t, mentor, "candidate", "mentor"), client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "x"}},
		}
		for _, rc := range roleCases {
			r, err := rc.c.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()}, rc.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.StatusCode() != http.StatusForbidden || r.HTTPResponse.Header.Get("Content-Type") != "application/problem+json" || problemType(t, r.Body) != "forbidden" {
				t.Errorf("%s: %d %s", rc.name, r.StatusCode(), r.Body)
			}
		}
		// Outside working hours (06:00) is a 422.
		early := body
		early.Start = d3.Add(6 * time.Hour)
		if r, _ := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()}, early); r.StatusCode() != http.StatusUnprocessableEntity {
			t.Fatalf("outside hours: %d %s", r.StatusCode(), r.Body)
		}

		// Every provider step completes: the candidate calendar and Jira too.
		bk = waitSettled(t, cc, bk.Id, 10*time.Second)
		for _, st := range bk.Steps {
			if st.State != client.StepStateDone || st.ProviderRef == nil || st.Attempts < 1 {
				t.Fatalf("step %s: %+v", st.Name, st)
			}
		}
		id := bk.Id.String()
		ms := en.meetingsOf(t, mentor)
		if len(ms[id]) != 1 || ms[id][0].JoinURL != *bk.JoinUrl || !ms[id][0].StartTime.Equal(start) {
			t.Fatalf("zoom meetings for the booking: %+v", ms[id])
		}
		gev, err := en.gcalSim.Event(mentorEmail(mentor), calendar.EventID(id))
		if err != nil || !strings.Contains(gev.Description, *bk.JoinUrl) || gev.Status == "cancelled" {
			t.Fatalf("mentor calendar event: %v %+v", err, gev)
		}
		cev, err := en.caldavClean[cand].GetEvent(ctx, id)
		if err != nil || cev.URL != *bk.JoinUrl || !cev.Start.Equal(start) {
			t.Fatalf("candidate calendar event: %v %+v", err, cev)
		}
		issue, ok := en.jiraSim.Issue(*bk.Steps[3].ProviderRef)
		if !ok || !strings.Contains(string(issue.Description), "http://gateway.test/v1/bookings/"+id) || issue.Status != "To Do" {
			t.Fatalf("jira issue: %+v", issue)
		}

		// Availability no longer offers 10:00.
		av, _ = cc.GetMentorAvailabilityWithResponse(ctx, mentor, &client.GetMentorAvailabilityParams{From: d3, To: d3.Add(24 * time.Hour)})
		if n := len(av.JSON200.Slots); n != 11 {
			t.Fatalf("availability after booking: %d slots, want 11", n)
		}

		// A candidate without a calendar: that step is skipped.
		lone := en.client(t, en.candidates[2], "candidate")
		r2, _ := lone.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: start.Add(2 * time.Hour), DurationMinutes: 30, Timezone: "Europe/Berlin", Topic: "Resume"})
		if r2.JSON201 == nil {
			t.Fatalf("second booking: %d %s", r2.StatusCode(), r2.Body)
		}
		b2 := waitSettled(t, lone, r2.JSON201.Id, 10*time.Second)
		if b2.Steps[2].Name != client.StepNameCandidateCalendar || b2.Steps[2].State != client.StepStateSkipped {
			t.Fatalf("unconnected candidate calendar step: %+v", b2.Steps[2])
		}

		// Reading and listing.
		if r, _ := en.client(t, en.candidates[1], "candidate").GetBookingWithResponse(ctx, bk.Id); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("stranger reads booking: %d", r.StatusCode())
		}
		if r, _ := mc.GetBookingWithResponse(ctx, bk.Id); r.JSON200 == nil || r.HTTPResponse.Header.Get("ETag") != bk.Etag {
			t.Fatalf("mentor reads booking: %d %s", r.StatusCode(), r.Body)
		}
		list, _ := mc.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Role: ptr(client.BookingRoleMentor), Limit: ptr(1)})
		if list.JSON200 == nil || len(list.JSON200.Items) != 1 || list.JSON200.NextCursor == nil {
			t.Fatalf("list page 1: %s", list.Body)
		}
		page2, _ := mc.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Role: ptr(client.BookingRoleMentor), Limit: ptr(1), Cursor: list.JSON200.NextCursor})
		if page2.JSON200 == nil || len(page2.JSON200.Items) != 1 || page2.JSON200.NextCursor != nil ||
			page2.JSON200.Items[0].Id == list.JSON200.Items[0].Id || !page2.JSON200.Items[0].Start.Before(list.JSON200.Items[0].Start) {
			t.Fatalf("list page 2: %s", page2.Body)
		}
		if r, _ := cc.ListBookingsWithResponse(ctx, nil); r.JSON200 == nil || len(r.JSON200.Items) != 1 || r.JSON200.Items[0].Id != bk.Id {
			t.Fatalf("candidate list: %s", r.Body)
		}
		if r, _ := cc.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Role: ptr(client.BookingRoleMentor)}); r.JSON200 == nil || len(r.JSON200.Items) != 0 {
			t.Fatalf("candidate list as mentor: %s", r.Body)
		}
		if r, _ := admin.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Status: ptr(client.BookingStatusConfirmed), From: ptr(start.Add(90 * time.Minute))}); r.JSON200 == nil || len(r.JSON200.Items) != 1 || r.JSON200.Items[0].Id != b2.Id {
			t.Fatalf("admin list with filters: %s", r.Body)
		}
		if r, _ := admin.ListBookingsWithResponse(ctx, &client.ListBookingsParams{Cursor: ptr("garbage")}); r.StatusCode() != http.StatusBadRequest || problemType(t, r.Body) != "validation-error" {
			t.Fatalf("bad cursor: %d %s", r.StatusCode(), r.Body)
		}

		// Reschedule: If-Match required and checked.
		newStart := start.Add(3 * time.Hour)
		rb := client.RescheduleBookingRequest{Start: newStart, Reason: ptr("later please")}
		if r, _ := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{}, rb); r.StatusCode() != http.StatusPreconditionRequired {
			t.Fatalf("reschedule without If-Match: %d %s", r.StatusCode(), r.Body)
		}
		if r, _ := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: ptr(`"999"`)}, rb); r.StatusCode() != http.StatusPreconditionFailed {
			t.Fatalf("reschedule with a stale ETag: %d %s", r.StatusCode(), r.Body)
		}
		clash := rb
		clash.Start = start.Add(2 * time.Hour) // the second booking's slot
		if r, _ := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, clash); r.StatusCode() != http.StatusConflict {
			t.Fatalf("reschedule onto another booking: %d %s", r.StatusCode(), r.Body)
		}
		rr, err := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, rb)
		if err != nil || rr.JSON200 == nil {
			t.Fatalf("reschedule: %v %d %s", err, rr.StatusCode(), rr.Body)
		}
		if !rr.JSON200.Start.Equal(newStart) || rr.JSON200.Status != client.BookingStatusConfirmed || rr.JSON200.Etag == bk.Etag {
			t.Fatalf("rescheduled: %s", rr.Body)
		}
		bk = waitSettled(t, cc, bk.Id, 10*time.Second)
		ms = en.meetingsOf(t, mentor)
		if len(ms[id]) != 1 || !ms[id][0].StartTime.Equal(newStart) {
			t.Fatalf("zoom after reschedule: %+v", ms[id])
		}
		gev, _ = en.gcalSim.Event(mentorEmail(mentor), calendar.EventID(id))
		if gs, _ := time.Parse(time.RFC3339, gev.Start.DateTime); !gs.Equal(newStart) {
			t.Fatalf("mentor event after reschedule: %+v", gev.Start)
		}
		if cev, _ := en.caldavClean[cand].GetEvent(ctx, id); !cev.Start.Equal(newStart) {
			t.Fatalf("candidate event after reschedule: %+v", cev)
		}

		// Cancel (twice).
		cn, err := cc.CancelBookingWithResponse(ctx, bk.Id, client.CancelBookingRequest{Reason: "ill"})
		if err != nil || cn.JSON200 == nil || cn.JSON200.Status != client.BookingStatusCancelled {
			t.Fatalf("cancel: %v %d %s", err, cn.StatusCode(), cn.Body)
		}
		cn2, _ := mc.CancelBookingWithResponse(ctx, bk.Id, client.CancelBookingRequest{Reason: "again"})
		if cn2.JSON200 == nil || cn2.JSON200.Status != client.BookingStatusCancelled || cn2.JSON200.Etag != cn.JSON200.Etag {
			t.Fatalf("second cancel: %d %s", cn2.StatusCode(), cn2.Body)
		}
		bk = waitSettled(t, cc, bk.Id, 10*time.Second)
		if len(en.meetingsOf(t, mentor)[id]) != 0 {
			t.Fatal("zoom meeting left after cancel")
		}
		if gev, _ := en.gcalSim.Event(mentorEmail(mentor), calendar.EventID(id)); gev != nil && gev.Status != "cancelled" {
			t.Fatalf("mentor event after cancel: %+v", gev)
		}
		if _, err := en.caldavClean[cand].GetEvent(ctx, id); !errors.Is(err, calendar.ErrNotFound) {
			t.Fatalf("candidate event after cancel: %v", err)
		}
		if is, _ := en.jiraSim.Issue(issue.Key); is.Status != "Cancelled" {
			t.Fatalf("jira issue after cancel: %q", is.Status)
		}
		if r, _ := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, rb); r.StatusCode() != http.StatusConflict {
			t.Fatalf("reschedule a cancelled booking: %d %s", r.StatusCode(), r.Body)
		}
		// The slot is free again.
		if r, _ := cc2.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: newStart, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "again"}); r.StatusCode() != http.StatusCreated {
			t.Fatalf("rebook the freed slot: %d %s", r.StatusCode(), r.Body)
		}

		// Audit trail.
		au, err := cc.ListBookingAuditWithResponse(ctx, bk.Id, &client.ListBookingAuditParams{Limit: ptr(3)})
		if err != nil || au.JSON200 == nil {
			t.Fatalf("audit: %v %s", err, au.Body)
		}
		items := au.JSON200.Items
		for cur := au.JSON200.NextCursor; cur != nil; {
			more, _ := cc.ListBookingAuditWithResponse(ctx, bk.Id, &client.ListBookingAuditParams{Limit: ptr(3), Cursor: cur})
			items = append(items, more.JSON200.Items...)
			cur = more.JSON200.NextCursor
		}
		var actions []string
		for _, a := range items {
			actions = append(actions, a.Action)
		}
		want := []string{"created", "confirmed", "rescheduled", "reschedule_confirmed", "cancel_requested", "cancelled"}
		if !slices.Equal(actions, want) {
			t.Fatalf("audit actions %v, want %v", actions, want)
		}
		if items[0].Actor != cand || items[0].FromStatus != nil || items[1].Actor != "system" {
			t.Fatalf("audit actors: %+v", items[:2])
		}
		if ch := items[2].Changes; ch == nil || (*ch)["start"].To == nil || items[2].Reason == nil || *items[2].Reason != "later please" {
			t.Fatalf("reschedule audit: %+v", items[2])
		}
		if items[4].Reason == nil || *items[4].Reason != "ill" || *items[4].FromStatus != client.BookingStatusConfirmed {
			t.Fatalf("cancel audit: %+v", items[4])
		}
	})
}

// TestBookingRaceRefused sends many bookings of one slot at once: exactly
// one wins, the others get 409, on both databases.
func TestBookingRaceRefused(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 8})
		en.openScheduleEvery(t, 15*time.Minute)
		start := day(5).Add(15 * time.Hour)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[int]int{}
		)
		for i, c := range en.candidates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := en.client(t, c, "candidate")
				// Overlapping but different intervals (each starting on the
				// 15-minute grid, all within two hours), so the DB rule decides.
				r, err := cl.CreateBookingWithResponse(context.Background(), &client.CreateBookingParams{IdempotencyKey: "k"},
					client.CreateBookingRequest{MentorId: en.mentors[0], Start: start.Add(time.Duration(i) * 15 * time.Minute), DurationMinutes: 120, Timezone: "UTC", Topic: "race"})
				if err != nil {
					t.Error(err)
					return
				}
				if r.StatusCode() == http.StatusConflict && problemType(t, r.Body) != "booking-overlap" {
					t.Errorf("409 of type %s", problemType(t, r.Body))
				}
				mu.Lock()
				codes[r.StatusCode()]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if codes[http.StatusCreated]+codes[http.StatusAccepted] != 1 || codes[http.StatusConflict] != len(en.candidates)-1 {
			t.Fatalf("status codes %v: want one success and %d conflicts", codes, len(en.candidates)-1)
		}
	})
}

// TestCandidateOverlapProblem: a booking or a reschedule that would give
// the candidate two sessions at once, with different mentors, is a 409
// candidate-overlap problem (not the mentor's booking-overlap), and changes
// nothing; a session right after the other one is fine.
func TestCandidateOverlapProblem(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 2, candidates: 1})
		en.openScheduleEvery(t, 15*time.Minute)
		cand := en.token(t, en.candidates[0], "candidate")
		cc := en.client(t, en.candidates[0], "candidate")
		start := day(4).Add(10 * time.Hour)
		book := func(mentor string, at time.Time) *client.CreateBookingResponse {
			t.Helper()
			r, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
				client.CreateBookingRequest{MentorId: mentor, Start: at, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "x"})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := book(en.mentors[0], start); r.JSON201 == nil {
			t.Fatalf("first booking: %d %s", r.StatusCode(), r.Body)
		}
		want := problem{Type: httpapi.ProblemBase + "candidate-overlap", Title: "Candidate overlap", Status: http.StatusConflict,
			Detail: "The candidate already has a session at that time."}
		check := func(what string, resp *http.Response, body []byte) {
			t.Helper()
			p := decodeProblem(t, resp, body, http.StatusConflict)
			want.Instance = resp.Request.URL.Path
			p.RequestID = ""
			if diff := cmp.Diff(p, want); diff != "" {
				t.Errorf("%s: problem (-got +want):\n%s", what, diff)
			}
		}
		r := book(en.mentors[1], start.Add(30*time.Minute))
		check("booking with the other mentor", r.HTTPResponse, r.Body)

		r = book(en.mentors[1], start.Add(time.Hour))
		if r.JSON201 == nil {
			t.Fatalf("booking right after the other session: %d %s", r.StatusCode(), r.Body)
		}
		second := *r.JSON201
		resp, body := en.do(t, http.MethodPatch, "/v1/bookings/"+second.Id.String(), cand,
			`{"start":"`+start.Add(15*time.Minute).Format(time.RFC3339)+`"}`, "If-Match", second.Etag, "Content-Type", "application/json")
		check("reschedule onto the other session", resp, body)
		if got, _ := cc.GetBookingWithResponse(ctx, second.Id); got.JSON200 == nil || !sameVersion(got.JSON200.Etag, second.Etag) || !got.JSON200.Start.Equal(second.Start) {
			t.Fatalf("after the refused reschedule: %s; want it unchanged", got.Body)
		}
		list, _ := cc.ListBookingsWithResponse(ctx, nil)
		if list.JSON200 == nil || len(list.JSON200.Items) != 2 {
			t.Fatalf("the candidate's bookings: %s; want the two that do not overlap", list.Body)
		}
		// The other mentor's slot at the first session's time is free, but
		// not offered to this candidate.
		slotAt := func(c *client.ClientWithResponses) bool {
			t.Helper()
			r, err := c.GetMentorAvailabilityWithResponse(ctx, en.mentors[1], &client.GetMentorAvailabilityParams{From: start, To: start.Add(time.Hour), Duration: ptr(60)})
			if err != nil || r.JSON200 == nil {
				t.Fatalf("availability: %v %s", err, r.Body)
			}
			return len(r.JSON200.Slots) == 1 && r.JSON200.Slots[0].Start.Equal(start)
		}
		if slotAt(cc) {
			t.Error("the candidate is offered a slot that overlaps their own session")
		}
		if !slotAt(en.client(t, "ops", "admin")) {
			t.Error("an admin is not offered the other mentor's free slot")
		}
	})
}

// transitionDays returns the local dates (midnight) of the next two clock
// changes of loc after from.
func transitionDays(loc *time.Location, from time.Time) []time.Time {
	var out []time.Time
	d := time.Date(from.Year(), from.Month(), from.Day()+2, 0, 0, 0, 0, loc)
	_, off := d.Zone()
	for i := 0; i < 400 && len(out) < 2; i++ {
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		if _, o := next.Zone(); o != off {
			out = append(out, d)
			off = o
		}
		d = next
	}
	return out
}

// TestAvailabilityAcrossDST asks the API for the slots of a night with
// working hours 01:00-04:00 on the next clock changes in Europe/Berlin and
// America/New_York: three wall-clock hours hold two real hours in spring and
// four in autumn.
func TestAvailabilityAcrossDST(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 2, candidates: 1})
	cand := en.client(t, en.candidates[0], "candidate")
	for i, zone := range []string{"Europe/Berlin", "America/New_York"} {
		mentor := en.mentors[i]
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		var hours []client.WorkingHours
		for _, d := range []client.Weekday{client.WeekdayMon, client.WeekdayTue, client.WeekdayWed, client.WeekdayThu, client.WeekdayFri, client.WeekdaySat, client.WeekdaySun} {
			hours = append(hours, client.WorkingHours{Weekday: d, Start: "01:00", End: "04:00"})
		}
		put, err := en.client(t, mentor, "mentor").PutMentorScheduleWithResponse(t.Context(), mentor, client.MentorScheduleInput{
			Timezone: zone, WorkingHours: hours, SlotMinutes: ptr(60), MinNoticeMinutes: ptr(0), MaxAdvanceDays: ptr(365)})
		if err != nil || put.JSON200 == nil {
			t.Fatalf("schedule: %v %s", err, put.Body)
		}
		days := transitionDays(loc, time.Now())
		if len(days) != 2 {
			t.Fatalf("%s: no clock changes found", zone)
		}
		for _, d := range days {
			from, to := d, time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
			r, err := cand.GetMentorAvailabilityWithResponse(t.Context(), mentor, &client.GetMentorAvailabilityParams{From: from, To: to})
			if err != nil || r.JSON200 == nil {
				t.Fatalf("availability: %v %s", err, r.Body)
			}
			_, before := from.Zone()
			_, after := to.Zone()
			want := 2 // spring: the clocks skip an hour
			if after < before {
				want = 4 // autumn: an hour repeats
			}
			var starts []string
			for _, s := range r.JSON200.Slots {
				starts = append(starts, s.Start.Format(time.RFC3339))
				if s.End.Sub(s.Start) != time.Hour {
					t.Errorf("%s: slot %s lasts %s", zone, s.Start, s.End.Sub(s.Start))
				}
				if s.Start.In(loc).Format(time.RFC3339) != s.Start.Format(time.RFC3339) {
					t.Errorf("%s: slot %s not in the mentor's zone", zone, s.Start)
				}
			}
			if len(starts) != want {
				t.Errorf("%s on %s: slots %v, want %d", zone, d.Format("2006-01-02"), starts, want)
			}
			for j := 1; j < len(r.JSON200.Slots); j++ {
				if gap := r.JSON200.Slots[j].Start.Sub(r.JSON200.Slots[j-1].Start); gap != time.Hour {
					t.Errorf("%s: %s after %s", zone, r.JSON200.Slots[j].Start, r.JSON200.Slots[j-1].Start)
				}
			}
		}
	}
}

// TestBookingCalendarBusyAndConcurrentReplay: a busy block in the mentor's
// Google calendar removes slots and refuses an overlapping booking with 409;
// the same Idempotency-Key sent five times at once yields one booking and
// five identical answers.
func TestBookingCalendarBusyAndConcurrentReplay(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	mentor := en.mentors[0]
	d := day(6)
	if _, err := en.gcalSim.PutEvent(mentorEmail(mentor), gcaltest.ExternalEvent{Summary: "dentist",
		Start: d.Add(10 * time.Hour), End: d.Add(11*time.Hour + 30*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c := en.client(t, en.candidates[0], "candidate")
	av, err := c.GetMentorAvailabilityWithResponse(t.Context(), mentor, &client.GetMentorAvailabilityParams{From: d.Add(9 * time.Hour), To: d.Add(13 * time.Hour)})
	if err != nil || av.JSON200 == nil {
		t.Fatalf("availability: %v %s", err, av.Body)
	}
	var starts []int
	for _, s := range av.JSON200.Slots {
		starts = append(starts, int(s.Start.Sub(d).Hours()))
	}
	if !slices.Equal(starts, []int{9, 12}) {
		t.Fatalf("free hours %v, want [9 12] around the 10:00-11:30 busy block", starts)
	}
	r, _ := c.CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: mentor, Start: d.Add(11 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "x"})
	if r.StatusCode() != http.StatusConflict || problemType(t, r.Body) != "booking-overlap" {
		t.Fatalf("booking over a busy block: %d %s", r.StatusCode(), r.Body)
	}

	key := uuid.NewString()
	body := client.CreateBookingRequest{MentorId: mentor, Start: d.Add(12 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "same"}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bodies = map[string]int{}
	)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.CreateBookingWithResponse(context.Background(), &client.CreateBookingParams{IdempotencyKey: key}, body)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			bodies[fmt.Sprintf("%d %s", r.StatusCode(), r.Body)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(bodies) != 1 {
		t.Fatalf("concurrent replays answered differently: %v", bodies)
	}
	for k := range bodies {
		if !strings.HasPrefix(k, "201 ") {
			t.Fatalf("answer %s", k)
		}
	}
	list, _ := c.ListBookingsWithResponse(t.Context(), nil)
	if list.JSON200 == nil || len(list.JSON200.Items) != 1 {
		t.Fatalf("bookings after concurrent replays: %s", list.Body)
	}
}

// TestBookingRefusedByProvider: the mentor's Google calendar refuses the
// event for good (403 forbidden). The booking fails within the wait and is
// undone: POST answers a 424 booking-failed problem whose
// Location names the failed booking, which GET shows with its reason; the same
// Idempotency-Key replays the answer; no Zoom meeting is left.
func TestBookingRefusedByProvider(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	mentor := en.mentors[0]
	en.gcalSim.InjectFault(gcaltest.Fault{Op: "events.insert", Times: -1, Status: http.StatusForbidden, Reason: "forbidden"})
	c := en.client(t, en.candidates[0], "candidate")
	key := uuid.NewString()
	body := client.CreateBookingRequest{MentorId: mentor, Start: day(5).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "refused"}
	var first string
	for i := range 2 {
		r, err := c.CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: key}, body)
		if err != nil {
			t.Fatal(err)
		}
		p := r.ApplicationproblemJSON424
		if r.StatusCode() != http.StatusFailedDependency || p == nil || problemType(t, r.Body) != "booking-failed" {
			t.Fatalf("try %d: %d %s, want a 424 booking-failed problem", i, r.StatusCode(), r.Body)
		}
		if ct := r.HTTPResponse.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("try %d: Content-Type %q", i, ct)
		}
		loc := r.HTTPResponse.Header.Get("Location")
		if !strings.HasPrefix(loc, "/v1/bookings/") {
			t.Fatalf("try %d: Location %q, want the failed booking", i, loc)
		}
		// The generated client reads the booking from the problem.
		if got := "/v1/bookings/" + p.BookingId.String(); got != loc {
			t.Errorf("try %d: booking_id %s, Location %s: want the same booking", i, p.BookingId, loc)
		}
		if i == 0 {
			first = loc
		} else if loc != first {
			t.Errorf("replay names booking %s, first answer %s", loc, first)
		}
	}
	b := bookingAt(t, c, first)
	if b == nil {
		t.FailNow()
	}
	if b.Status != client.BookingStatusFailed || b.FailureReason == nil || !strings.Contains(*b.FailureReason, "the mentor's calendar event could not be created") {
		t.Fatalf("booking %+v, want failed for the mentor's calendar", b)
	}
	if n := len(en.meetingsOf(t, mentor)); n != 0 {
		t.Errorf("%d Zoom meetings left for the failed booking", n)
	}
}

// TestRescheduleRefusedByProvider: the mentor's Google Calendar refuses to
// move the event (403 on events.patch). The reschedule answers a 424
// reschedule-refused problem and is undone: the booking stays confirmed at
// its time, the Zoom meeting and the candidate's CalDAV event are moved
// back, and nothing is deleted. Once Google accepts changes, the same
// reschedule goes through.
func TestRescheduleRefusedByProvider(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	mentor, cand := en.mentors[0], en.candidates[0]
	c := en.client(t, cand, "candidate")
	start := day(5).Add(10 * time.Hour)
	r, err := c.CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "moved"})
	if err != nil || r.JSON201 == nil {
		t.Fatalf("create: %v %d %s", err, r.StatusCode(), r.Body)
	}
	bk := waitSettled(t, c, r.JSON201.Id, 10*time.Second)
	id := bk.Id.String()
	en.gcalSim.InjectFault(gcaltest.Fault{Op: "events.patch", Times: -1, Status: http.StatusForbidden, Reason: "forbidden"})
	moved := start.Add(2 * time.Hour)
	rr, err := c.RescheduleBookingWithResponse(t.Context(), bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, client.RescheduleBookingRequest{Start: moved})
	if err != nil {
		t.Fatal(err)
	}
	if rr.StatusCode() != http.StatusFailedDependency || rr.ApplicationproblemJSON424 == nil || problemType(t, rr.Body) != "reschedule-refused" ||
		!strings.Contains(string(rr.Body), "the mentor's calendar event could not be created or updated") {
		t.Fatalf("reschedule: %d %s, want a 424 reschedule-refused problem naming the step", rr.StatusCode(), rr.Body)
	}
	// The 424 declares Location (required): the booking, at its previous time.
	if got := rr.HTTPResponse.Header.Get("Location"); got != "/v1/bookings/"+id {
		t.Errorf("424 reschedule-refused: Location %q, want /v1/bookings/%s", got, id)
	}
	if got := rr.ApplicationproblemJSON424.BookingId; got != bk.Id {
		t.Errorf("424 reschedule-refused: booking_id %s, want %s", got, bk.Id)
	}
	b := waitSettled(t, c, bk.Id, 10*time.Second)
	if b.Status != client.BookingStatusConfirmed || !b.Start.Equal(start) || b.FailureReason != nil ||
		b.RescheduleRefused == nil || !strings.Contains(*b.RescheduleRefused, "the mentor's calendar event could not be created or updated") {
		t.Fatalf("after the refusal: %+v, want confirmed at %s with the refusal's reason", b, start)
	}
	for _, st := range b.Steps {
		if st.State != client.StepStateDone {
			t.Errorf("step %s: %s", st.Name, st.State)
		}
	}
	ms := en.meetingsOf(t, mentor)
	if len(ms[id]) != 1 || !ms[id][0].StartTime.Equal(start) {
		t.Errorf("zoom: %+v, want one meeting at %s", ms[id], start)
	}
	ev, err := en.gcalSim.Event(mentorEmail(mentor), calendar.EventID(id))
	if gs, _ := time.Parse(time.RFC3339, ev.Start.DateTime); err != nil || !gs.Equal(start) {
		t.Errorf("mentor event: %+v, %v; want at %s", ev.Start, err, start)
	}
	if cev, err := en.caldavClean[cand].GetEvent(t.Context(), id); err != nil || !cev.Start.Equal(start) {
		t.Errorf("candidate event: %+v, %v; want at %s", cev, err, start)
	}
	acts, err := systemtest.AuditActions(t.Context(), c, bk.Id)
	if err != nil || !slices.Contains(acts, "reschedule_refused") || slices.Contains(acts, "compensated") {
		t.Errorf("audit %v, %v", acts, err)
	}

	en.gcalSim.ClearFaults()
	rr, err = c.RescheduleBookingWithResponse(t.Context(), bk.Id, &client.RescheduleBookingParams{IfMatch: &b.Etag}, client.RescheduleBookingRequest{Start: moved})
	if err != nil || rr.JSON200 == nil || !rr.JSON200.Start.Equal(moved) || rr.JSON200.RescheduleRefused != nil {
		t.Fatalf("reschedule once Google accepts it: %v %d %s", err, rr.StatusCode(), rr.Body)
	}
}

// TestFailedBookingInWords: when Zoom refuses the meeting, the booking
// fails; its candidate reads why in words and no provider error (whose
// URLs name the mentor's Zoom account), an admin also the step's error.
func TestFailedBookingInWords(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	en.zoomSim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: http.StatusBadRequest, Route: zoomtest.RouteCreateMeeting, Count: 100})
	ctx := t.Context()
	cc, admin := en.client(t, en.candidates[0], "candidate"), en.client(t, "ops", "admin")
	r, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || r.StatusCode() != http.StatusFailedDependency {
		t.Fatalf("booking = %v %d %s, want 424", err, r.StatusCode(), r.Body)
	}
	loc := r.HTTPResponse.Header.Get("Location")
	id, err := uuid.Parse(strings.TrimPrefix(loc, "/v1/bookings/"))
	if err != nil {
		t.Fatalf("Location %q", loc)
	}
	mine, err := cc.GetBookingWithResponse(ctx, id)
	if err != nil || mine.JSON200 == nil {
		t.Fatalf("as the candidate: %v %s", err, mine.Body)
	}
	if fr := mine.JSON200.FailureReason; fr == nil || *fr != "the Zoom meeting could not be created or updated: Zoom refused the request" {
		t.Errorf("failure_reason %v", fr)
	}
	for _, st := range mine.JSON200.Steps {
		if st.LastError != nil {
			t.Errorf("the candidate sees step %s's last_error %q", st.Name, *st.LastError)
		}
	}

	// A step that gave up on a confirmed booking (Jira refuses the issue):
	// its error is the admin's to read.
	en.zoomSim.ClearFaults()
	en.jiraSim.AddFault(jiratest.Fault{Method: http.MethodPost, Path: "/rest/api/3/issue", Status: http.StatusBadRequest})
	r, err = cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: day(3).Add(12 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || r.JSON201 == nil {
		t.Fatalf("second booking = %v %d %s, want 201", err, r.StatusCode(), r.Body)
	}
	jiraError := func(c *client.ClientWithResponses) *string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			b, err := c.GetBookingWithResponse(ctx, r.JSON201.Id)
			if err != nil || b.JSON200 == nil {
				t.Fatalf("get: %v", err)
			}
			for _, st := range b.JSON200.Steps {
				if st.Name == client.StepNameJira && st.State == client.StepStateFailed {
					return st.LastError
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the jira step never failed: %s", b.Body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if e := jiraError(admin); e == nil || !strings.Contains(*e, "400") {
		t.Errorf("admin: jira last_error %v, want the provider's error", e)
	}
	if e := jiraError(cc); e != nil {
		t.Errorf("the candidate sees the jira step's last_error %q", *e)
	}
}

// TestRescheduleToTheSameTime: a PATCH that moves nothing (a form saved
// unchanged) answers the booking as it is, 200 with the same ETag: no new
// version goes to the providers, nothing is audited, and no scheduling rule
// the booking met when it was made (here a minimum notice raised since)
// refuses it. A real move is still checked.
func TestRescheduleToTheSameTime(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		mentor := en.mentors[0]
		cc := en.client(t, en.candidates[0], "candidate")
		start := day(3).Add(10 * time.Hour)
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		bk := waitSettled(t, cc, cr.JSON201.Id, 10*time.Second)
		audit := func() int {
			t.Helper()
			r, err := cc.ListBookingAuditWithResponse(ctx, bk.Id, nil)
			if err != nil || r.JSON200 == nil {
				t.Fatalf("audit: %v %d %s", err, r.StatusCode(), r.Body)
			}
			return len(r.JSON200.Items)
		}
		before := audit()
		// The mentor now wants a week's notice: the session, 3 days ahead, stays.
		sch, err := en.svc.GetSchedule(ctx, mentor)
		if err != nil {
			t.Fatal(err)
		}
		sch.MinNotice = 7 * 24 * time.Hour
		if _, err := en.svc.PutSchedule(ctx, booking.Actor{ID: "root", Admin: true}, sch); err != nil {
			t.Fatal(err)
		}
		same := client.RescheduleBookingRequest{Start: start.In(time.UTC), DurationMinutes: ptr(60), Timezone: ptr("Europe/Berlin")}
		r, err := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, same)
		if err != nil || r.JSON200 == nil {
			t.Fatalf("reschedule to the same time: %v %d %s", err, r.StatusCode(), r.Body)
		}
		if r.JSON200.Etag != bk.Etag || r.HTTPResponse.Header.Get("ETag") != bk.Etag || !r.JSON200.Start.Equal(start) || r.JSON200.Status != client.BookingStatusConfirmed {
			t.Errorf("reschedule to the same time answered %s (ETag %s), want the booking unchanged (ETag %s)", r.Body, r.HTTPResponse.Header.Get("ETag"), bk.Etag)
		}
		if n := audit(); n != before {
			t.Errorf("audit entries %d after a reschedule that moved nothing, want %d", n, before)
		}
		later := same
		later.Start = start.Add(time.Hour)
		if r, _ := cc.RescheduleBookingWithResponse(ctx, bk.Id, &client.RescheduleBookingParams{IfMatch: &bk.Etag}, later); r.StatusCode() != http.StatusUnprocessableEntity {
			t.Errorf("a real move inside the new minimum notice: %d %s, want 422", r.StatusCode(), r.Body)
		}
	})
}

// TestOffGridStart: a booking or a reschedule may start only where
// availability offers sessions: on the slot grid of the mentor's working
// hours (from each block's start, in the mentor's zone, across clock
// changes too). Any other start is a 422 naming body.start and the grid,
// and changes nothing. A reschedule that keeps the booking's start keeps
// it even when the grid has moved since.
func TestOffGridStart(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 2, candidates: 1})
		mentor := en.mentors[0]
		cand := en.token(t, en.candidates[0], "candidate")
		cc := en.client(t, en.candidates[0], "candidate")
		mc := en.client(t, mentor, "mentor")
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		schedule := func(slot int, from string) {
			t.Helper()
			var hours []client.WorkingHours
			for _, d := range []client.Weekday{client.WeekdayMon, client.WeekdayTue, client.WeekdayWed, client.WeekdayThu, client.WeekdayFri, client.WeekdaySat, client.WeekdaySun} {
				hours = append(hours, client.WorkingHours{Weekday: d, Start: from, End: "17:00"})
			}
			put, err := mc.PutMentorScheduleWithResponse(ctx, mentor, client.MentorScheduleInput{Timezone: "Europe/Berlin", WorkingHours: hours,
				SlotMinutes: ptr(slot), MinNoticeMinutes: ptr(0), MaxAdvanceDays: ptr(365)})
			if err != nil || put.JSON200 == nil {
				t.Fatalf("schedule: %v %s", err, put.Body)
			}
		}
		schedule(30, "09:00")
		d := day(4).In(berlin)
		at := func(h, m int) time.Time { return time.Date(d.Year(), d.Month(), d.Day(), h, m, 0, 0, berlin) }
		offGrid := func(what string, resp *http.Response, body []byte, want string) {
			t.Helper()
			p := decodeProblem(t, resp, body, http.StatusUnprocessableEntity)
			if p.Type != httpapi.ProblemBase+"unprocessable" || p.Detail != want ||
				!slices.Equal(fieldsOf(p), []string{"body.start"}) || p.Errors[0].Message != want {
				t.Errorf("%s: problem %+v, want body.start %q", what, p, want)
			}
		}
		create := func(start time.Time, minutes int) (*http.Response, []byte) {
			t.Helper()
			return en.do(t, http.MethodPost, "/v1/bookings", cand,
				fmt.Sprintf(`{"mentor_id":%q,"start":%q,"duration_minutes":%d,"timezone":"America/New_York","topic":"grid"}`, mentor, start.Format(time.RFC3339), minutes),
				"Idempotency-Key", uuid.NewString())
		}

		resp, body := create(at(10, 15), 60)
		offGrid("a booking at 10:15", resp, body, "must be on the 30-minute grid of the mentor's working hours (nearest: 10:00 or 10:30 Europe/Berlin)")
		resp, body = create(at(16, 20), 30)
		offGrid("a booking at 16:20", resp, body, "must be on the 30-minute grid of the mentor's working hours (nearest: 16:00 or 16:30 Europe/Berlin)")
		if list, _ := cc.ListBookingsWithResponse(ctx, nil); list.JSON200 == nil || len(list.JSON200.Items) != 0 {
			t.Fatalf("bookings after refused ones: %s", list.Body)
		}

		// A start availability offers, written in another zone, is booked.
		av, err := cc.GetMentorAvailabilityWithResponse(ctx, mentor, &client.GetMentorAvailabilityParams{From: at(10, 0), To: at(12, 0),
			Duration: ptr(60), Tz: ptr("America/New_York")})
		if err != nil || av.JSON200 == nil || len(av.JSON200.Slots) != 3 || !av.JSON200.Slots[1].Start.Equal(at(10, 30)) {
			t.Fatalf("availability: %v %s", err, av.Body)
		}
		resp, body = create(av.JSON200.Slots[1].Start, 60)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("a booking at an offered start: %d %s", resp.StatusCode, body)
		}
		var bk client.Booking
		if err := json.Unmarshal(body, &bk); err != nil {
			t.Fatal(err)
		}

		patch := func(etag, body string) (*http.Response, []byte) {
			t.Helper()
			return en.do(t, http.MethodPatch, "/v1/bookings/"+bk.Id.String(), cand, body, "If-Match", etag, "Content-Type", "application/json")
		}
		resp, body = patch(bk.Etag, `{"start":"`+at(13, 45).Format(time.RFC3339)+`"}`)
		offGrid("a reschedule to 13:45", resp, body, "must be on the 30-minute grid of the mentor's working hours (nearest: 13:30 or 14:00 Europe/Berlin)")
		if got, _ := cc.GetBookingWithResponse(ctx, bk.Id); got.JSON200 == nil || !sameVersion(got.JSON200.Etag, bk.Etag) || !got.JSON200.Start.Equal(at(10, 30)) {
			t.Fatalf("after the refused reschedule: %s; want it unchanged", got.Body)
		}
		resp, body = patch(bk.Etag, `{"start":"`+at(14, 0).Format(time.RFC3339)+`"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a reschedule to 14:00: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &bk); err != nil {
			t.Fatal(err)
		}

		// The mentor's grid moves: hourly from 09:15. The booking keeps
		// its 14:00 and may change its length there; a move goes to the
		// new grid.
		schedule(60, "09:15")
		resp, body = patch(bk.Etag, `{"start":"`+at(14, 0).Format(time.RFC3339)+`","duration_minutes":45}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a new length at the booking's own start: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &bk); err != nil {
			t.Fatal(err)
		}
		resp, body = patch(bk.Etag, `{"start":"`+at(15, 0).Format(time.RFC3339)+`"}`)
		offGrid("a reschedule to 15:00 on the new grid", resp, body, "must be on the 60-minute grid of the mentor's working hours (nearest: 14:15 or 15:15 Europe/Berlin)")
		resp, body = patch(bk.Etag, `{"start":"`+at(15, 15).Format(time.RFC3339)+`"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a reschedule to 15:15: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &bk); err != nil {
			t.Fatal(err)
		}

		// A longer session at the same start that would end after 17:00:
		// the length is what breaks the working hours, so the problem names
		// it (was: body.start, which the caller had not changed).
		resp, body = patch(bk.Etag, `{"start":"`+at(15, 15).Format(time.RFC3339)+`","duration_minutes":120}`)
		const tooLong = "makes the session end outside the mentor's working hours"
		if p := decodeProblem(t, resp, body, http.StatusUnprocessableEntity); !slices.Equal(fieldsOf(p), []string{"body.duration_minutes"}) || p.Errors[0].Message != tooLong {
			t.Errorf("a longer session past 17:00: problem %+v, want body.duration_minutes %q", p, tooLong)
		}
		resp, body = patch(bk.Etag, `{"start":"`+at(16, 15).Format(time.RFC3339)+`","duration_minutes":120}`)
		if p := decodeProblem(t, resp, body, http.StatusUnprocessableEntity); !slices.Equal(fieldsOf(p), []string{"body.start"}) {
			t.Errorf("a move and a longer session past 17:00: problem %+v, want body.start", p)
		}

		// The mentor's hours now start at 16:00: the booking's own start,
		// 15:15, is outside them, and no length makes it fit. A new length
		// at that start is refused on the start, not on a length that is
		// not to blame (was: body.duration_minutes, "makes the session end
		// outside", for a shorter session too).
		schedule(60, "16:00")
		for _, minutes := range []int{30, 90} {
			resp, body = patch(bk.Etag, fmt.Sprintf(`{"start":%q,"duration_minutes":%d}`, at(15, 15).Format(time.RFC3339), minutes))
			if p := decodeProblem(t, resp, body, http.StatusUnprocessableEntity); !slices.Equal(fieldsOf(p), []string{"body.start"}) ||
				p.Errors[0].Message != "outside the mentor's working hours" {
				t.Errorf("%d minutes at a start now outside the hours: problem %+v, want body.start outside the working hours", minutes, p)
			}
		}
	})
}

// TestOffGridStartAcrossDST: on the nights of the next clock changes in
// Europe/Berlin, with working hours 01:00-05:00 and 45-minute slots (a grid
// the lost or repeated hour does not divide), every start availability
// offers is booked, and a start between two of them is a 422.
func TestOffGridStartAcrossDST(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	mentor := en.mentors[0]
	cand := en.token(t, en.candidates[0], "candidate")
	cc := en.client(t, en.candidates[0], "candidate")
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	var hours []client.WorkingHours
	for _, d := range []client.Weekday{client.WeekdayMon, client.WeekdayTue, client.WeekdayWed, client.WeekdayThu, client.WeekdayFri, client.WeekdaySat, client.WeekdaySun} {
		hours = append(hours, client.WorkingHours{Weekday: d, Start: "01:00", End: "05:00"})
	}
	put, err := en.client(t, mentor, "mentor").PutMentorScheduleWithResponse(t.Context(), mentor, client.MentorScheduleInput{
		Timezone: "Europe/Berlin", WorkingHours: hours, SlotMinutes: ptr(45), MinNoticeMinutes: ptr(0), MaxAdvanceDays: ptr(365)})
	if err != nil || put.JSON200 == nil {
		t.Fatalf("schedule: %v %s", err, put.Body)
	}
	days := transitionDays(loc, time.Now())
	if len(days) != 2 {
		t.Fatal("no clock changes found")
	}
	for _, d := range days {
		from, to := d, time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		r, err := cc.GetMentorAvailabilityWithResponse(t.Context(), mentor, &client.GetMentorAvailabilityParams{From: from, To: to})
		if err != nil || r.JSON200 == nil || len(r.JSON200.Slots) < 2 {
			t.Fatalf("availability: %v %s", err, r.Body)
		}
		for i, sl := range r.JSON200.Slots {
			resp, body := en.do(t, http.MethodPost, "/v1/bookings", cand,
				fmt.Sprintf(`{"mentor_id":%q,"start":%q,"duration_minutes":45,"timezone":"Europe/Berlin","topic":"night"}`, mentor, sl.Start.Format(time.RFC3339)),
				"Idempotency-Key", uuid.NewString())
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("%s: the offered start %s: %d %s", d.Format("2006-01-02"), sl.Start.Format(time.RFC3339), resp.StatusCode, body)
			}
			if i == 0 {
				continue
			}
			// Between two offered starts: off the grid.
			mid := sl.Start.Add(-20 * time.Minute)
			resp, body = en.do(t, http.MethodPost, "/v1/bookings", cand,
				fmt.Sprintf(`{"mentor_id":%q,"start":%q,"duration_minutes":15,"timezone":"Europe/Berlin","topic":"night"}`, mentor, mid.Format(time.RFC3339)),
				"Idempotency-Key", uuid.NewString())
			if p := decodeProblem(t, resp, body, http.StatusUnprocessableEntity); !slices.Equal(fieldsOf(p), []string{"body.start"}) ||
				!strings.HasPrefix(p.Detail, "must be on the 45-minute grid of the mentor's working hours") {
				t.Errorf("%s: a booking at %s: %+v", d.Format("2006-01-02"), mid.Format(time.RFC3339), p)
			}
		}
	}
}
