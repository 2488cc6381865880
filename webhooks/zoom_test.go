package webhooks_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

func newZoom(t *testing.T, now func() time.Time) (*zoomtest.Server, *zoom.Client) {
	t.Helper()
	sim := zoomtest.New(zoomtest.Options{AccountID: "acc", ClientID: "cid", ClientSecret: "csec", Now: now})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c := zoom.New(func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: "acc", ClientID: "cid", ClientSecret: "csec"}, nil
	}, zoom.WithBaseURL(ts.URL), zoom.WithOAuthURL(ts.URL))
	return sim, c
}

// signedZoom builds a Zoom delivery signed with secret at ts.
func signedZoom(secret string, ts time.Time, body []byte) map[string]string {
	s := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{"x-zm-request-timestamp": s, "x-zm-signature": zoomtest.Sign(secret, s, body)}
}

func TestZoomURLValidation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		// The fixed vector (computed with python3 hmac, see testdata/README.md).
		var v struct{ Secret, Timestamp, Body, Signature, PlainToken, EncryptedToken string }
		readJSON(t, "zoom_url_validation.json", &v)
		sec, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		h.clock.Set(time.Unix(sec, 0).Add(time.Minute))
		h.secrets.set(webhooks.Secrets{Zoom: []string{v.Secret}})
		code, _, body := h.post(t, "/webhooks/zoom", []byte(v.Body), map[string]string{"x-zm-request-timestamp": v.Timestamp, "x-zm-signature": v.Signature})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var ans map[string]string
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatal(err)
		}
		if ans["plainToken"] != v.PlainToken || ans["encryptedToken"] != v.EncryptedToken {
			t.Fatalf("answer %v, want plainToken %s encryptedToken %s", ans, v.PlainToken, v.EncryptedToken)
		}

		// The simulator's own check, during a rotation: it signs with the
		// previous secret and expects the answer under that secret.
		h.clock.Set(time.Now())
		h.secrets.set(webhooks.Secrets{Zoom: []string{"new-secret", zoomSecret}})
		sim, _ := newZoom(t, nil)
		for _, secret := range []string{zoomSecret, "new-secret"} {
			if err := sim.SendURLValidation(t.Context(), h.url+"/webhooks/zoom", secret); err != nil {
				t.Fatalf("url validation with %s: %v", secret, err)
			}
		}
		if err := sim.SendURLValidation(t.Context(), h.url+"/webhooks/zoom", "unknown-secret"); err == nil {
			t.Fatal("url validation signed with an unknown secret was answered")
		}
		if got := h.deliveries(t, webhooks.ProviderZoom); len(got) != 0 {
			t.Fatalf("url validation stored %d deliveries", len(got))
		}
	})
}

func TestZoomMeetingLifecycle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		sim, zc := newZoom(t, nil)
		start := time.Now().Add(48 * time.Hour).Truncate(time.Minute).UTC()
		m, err := zc.CreateMeeting(t.Context(), "mentor@example.com", "b-zoom", zoom.MeetingRequest{Topic: "Session", StartTime: start, Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		mid := strconv.FormatInt(m.ID, 10)
		h.bookings.add(webhooks.Booking{ID: "b-zoom", MentorID: "mentor", Start: start, End: start.Add(time.Hour)}, mid, "", "")
		hook := h.url + "/webhooks/zoom"
		send := func(event string, p *zoomtest.Participant) webhooks.Delivery {
			t.Helper()
			n := len(h.deliveries(t, webhooks.ProviderZoom))
			if err := sim.SendMeetingEvent(t.Context(), hook, zoomSecret, event, m.ID, p); err != nil {
				t.Fatalf("%s: %v", event, err)
			}
			ds := h.waitAllDone(t, webhooks.ProviderZoom, n+1)
			if ds[0].EventType != event || ds[0].Status != webhooks.StatusProcessed {
				t.Fatalf("%s: newest delivery %+v", event, ds[0])
			}
			return ds[0]
		}

		// A time change made by the gateway itself (same time as the booking) is not echoed.
		same := start
		if err := zc.UpdateMeeting(t.Context(), m.ID, zoom.MeetingUpdate{StartTime: &same}); err != nil {
			t.Fatal(err)
		}
		d := send(zoomtest.EventMeetingUpdated, nil)
		if calls := h.bookings.Calls(); len(calls) != 0 {
			t.Fatalf("own change echoed: %+v (note %q)", calls, d.Note)
		}
		// Moved in Zoom → rescheduled through the booking service.
		moved := start.Add(2 * time.Hour)
		dur := 45 * time.Minute
		if err := zc.UpdateMeeting(t.Context(), m.ID, zoom.MeetingUpdate{StartTime: &moved, Duration: &dur}); err != nil {
			t.Fatal(err)
		}
		send(zoomtest.EventMeetingUpdated, nil)
		send(zoomtest.EventMeetingStarted, nil)
		send(zoomtest.EventMeetingParticipantJoined, &zoomtest.Participant{UserID: "16778240", UserName: "Ann", Email: "ann@example.com"})
		send(zoomtest.EventMeetingParticipantLeft, &zoomtest.Participant{UserID: "16778240", UserName: "Ann", Email: "ann@example.com"})
		d = send(zoomtest.EventMeetingEnded, nil)
		if d.BookingID != "b-zoom" {
			t.Errorf("booking_id %q", d.BookingID)
		}
		// Deleting a completed meeting does not cancel the booking.
		send(zoomtest.EventMeetingDeleted, nil)

		calls := h.bookings.Calls()
		want := []string{"reschedule", "status:in_progress", "attendance", "attendance", "status:completed"}
		var got []string
		for _, c := range calls {
			s := c.Op
			if c.Status != "" {
				s += ":" + c.Status
			}
			got = append(got, s)
			if c.Actor != "webhook:zoom" && c.Op != "attendance" {
				t.Errorf("actor %q", c.Actor)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("calls %v, want %v", got, want)
		}
		if !calls[0].Start.Equal(moved) || !calls[0].End.Equal(moved.Add(dur)) || calls[0].Changed != webhooks.ArtefactMeeting {
			t.Errorf("rescheduled to %v–%v following %q, want %v–%v following the meeting", calls[0].Start, calls[0].End, calls[0].Changed, moved, moved.Add(dur))
		}
		h.bookings.mu.Lock()
		att := h.bookings.attendance
		h.bookings.mu.Unlock()
		if len(att) != 2 || !att[0].Joined || att[1].Joined || att[0].Email != "ann@example.com" || att[0].At.IsZero() {
			t.Fatalf("attendance %+v", att)
		}
	})
}

// movedMeeting creates the meeting of booking id (an hour, three days
// ahead), registers the booking, and then moves the meeting an hour later
// in Zoom, as someone editing it there would.
func movedMeeting(t *testing.T, h *harness, zc *zoom.Client, id string) *zoom.Meeting {
	t.Helper()
	start := time.Now().Add(72 * time.Hour).Truncate(time.Minute).UTC()
	m, err := zc.CreateMeeting(t.Context(), "mentor@example.com", id, zoom.MeetingRequest{Topic: "S", StartTime: start, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.bookings.add(webhooks.Booking{ID: id, Start: start, End: start.Add(time.Hour)}, strconv.FormatInt(m.ID, 10), "", "")
	moved := start.Add(time.Hour)
	if err := zc.UpdateMeeting(t.Context(), m.ID, zoom.MeetingUpdate{StartTime: &moved}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestZoomMoveRefused: the meeting is moved in Zoom to a time the booking
// refuses. The booking stays, the meeting is put back (Restore), and the
// delivery is processed with a note saying so, not retried.
func TestZoomMoveRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	sim, zc := newZoom(t, nil)
	m := movedMeeting(t, h, zc, "b-mv")
	h.bookings.refuse(true, false)
	if err := sim.SendMeetingEvent(t.Context(), h.url+"/webhooks/zoom", zoomSecret, zoomtest.EventMeetingUpdated, m.ID, nil); err != nil {
		t.Fatal(err)
	}
	ds := h.waitAllDone(t, webhooks.ProviderZoom, 1)
	// The admin's note keeps the booking service's error; the audit reason
	// (Restore's) is for the booking's candidate and mentor.
	if ds[0].Status != webhooks.StatusProcessed || ds[0].Attempts != 1 || !strings.Contains(ds[0].Note, "meeting put back") ||
		!strings.Contains(ds[0].Note, "booking: overlaps another booking") {
		t.Fatalf("delivery %+v", ds[0])
	}
	calls := h.bookings.Calls()
	if len(calls) != 2 || calls[0].Op != "reschedule" || calls[1].Op != "restore meeting" || calls[1].ID != "b-mv" || calls[1].Actor != "webhook:zoom" ||
		calls[1].Reason != "The Zoom meeting was moved to a time the booking cannot take: the mentor is not free at that time. It was put back." {
		t.Fatalf("calls %+v", calls)
	}
}

// zoomMeetings reads meetings from the Zoom simulator through the real
// client, as the gateway's wiring does.
type zoomMeetings struct{ c *zoom.Client }

func (z zoomMeetings) MeetingTime(ctx context.Context, id string) (time.Time, time.Duration, error) {
	n, _ := strconv.ParseInt(id, 10, 64)
	m, err := z.c.GetMeeting(ctx, n)
	if errors.Is(err, zoom.ErrMeetingNotFound) {
		return time.Time{}, 0, webhooks.ErrMeetingGone
	}
	if err != nil {
		return time.Time{}, 0, err
	}
	return m.StartTime, m.Duration, nil
}

// TestZoomStaleUpdate: a meeting.updated is judged against the meeting as
// it is now. An event older than a later change (here the meeting was moved
// and moved back, as the echo of the gateway's own earlier update arrives
// after a later one) changes nothing; an event for a meeting deleted since
// leaves it to the meeting.deleted; a genuine move still reschedules, to
// the meeting's current time.
func TestZoomStaleUpdate(t *testing.T) {
	t.Parallel()
	sim, zc := newZoom(t, nil)
	h := newHarness(t, storetest.SQLite(t), func(c *webhooks.Config) { c.Meetings = zoomMeetings{zc} })
	ctx := t.Context()
	hook := h.url + "/webhooks/zoom"
	start := time.Now().Add(72 * time.Hour).Truncate(time.Minute).UTC()
	meeting := func(id string) int64 {
		m, err := zc.CreateMeeting(ctx, "mentor@example.com", id, zoom.MeetingRequest{Topic: "S", StartTime: start, Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: id, Start: start, End: start.Add(time.Hour)}, strconv.FormatInt(m.ID, 10), "", "")
		return m.ID
	}
	move := func(id int64, to time.Time) map[string]any {
		if err := zc.UpdateMeeting(ctx, id, zoom.MeetingUpdate{StartTime: &to}); err != nil {
			t.Fatal(err)
		}
		p, err := sim.MeetingEvent(zoomtest.EventMeetingUpdated, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	back := meeting("b-back")
	stale := move(back, start.Add(time.Hour)) // says start+1h …
	move(back, start)                         // … but the meeting is back at the booking's time
	gone := meeting("b-gone")
	staleGone := move(gone, start.Add(2*time.Hour))
	if err := zc.DeleteMeeting(ctx, gone); err != nil {
		t.Fatal(err)
	}
	for _, p := range []map[string]any{stale, staleGone} {
		if err := sim.SendEvent(ctx, hook, zoomSecret, zoomtest.EventMeetingUpdated, p); err != nil {
			t.Fatal(err)
		}
	}
	ds := h.waitAllDone(t, webhooks.ProviderZoom, 2)
	notes := map[string]string{}
	for _, d := range ds {
		notes[d.BookingID] = d.Note
	}
	if !strings.Contains(notes["b-back"], "older than the meeting's current time") || !strings.Contains(notes["b-gone"], "meeting gone since") {
		t.Errorf("notes %v", notes)
	}
	if calls := h.bookings.Calls(); len(calls) != 0 {
		t.Fatalf("stale events changed bookings: %+v", calls)
	}

	// A genuine move, reported by an event that is itself behind: the
	// booking follows the meeting's current time.
	moving := meeting("b-moving")
	p := move(moving, start.Add(3*time.Hour))
	move(moving, start.Add(4*time.Hour))
	if err := sim.SendEvent(ctx, hook, zoomSecret, zoomtest.EventMeetingUpdated, p); err != nil {
		t.Fatal(err)
	}
	h.waitAllDone(t, webhooks.ProviderZoom, 3)
	calls := h.bookings.Calls()
	if len(calls) != 1 || calls[0].Op != "reschedule" || calls[0].ID != "b-moving" || !calls[0].Start.Equal(start.Add(4*time.Hour)) {
		t.Fatalf("calls %+v, want one reschedule of b-moving to the meeting's current time", calls)
	}
}

// TestZoomDeleteRefused: the host deletes the meeting of a session under
// way. The booking cannot be cancelled; it keeps going and gets a meeting
// back (Restore), and the delivery is processed with a note saying so.
func TestZoomDeleteRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	sim, zc := newZoom(t, nil)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UTC()
	m, err := zc.CreateMeeting(t.Context(), "mentor@example.com", "b-live", zoom.MeetingRequest{Topic: "S", StartTime: start, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.bookings.add(webhooks.Booking{ID: "b-live", Status: webhooks.BookingInProgress, Start: start, End: start.Add(time.Hour)}, strconv.FormatInt(m.ID, 10), "", "")
	h.bookings.refuse(false, true)
	payload, err := sim.DeleteMeeting(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SendEvent(t.Context(), h.url+"/webhooks/zoom", zoomSecret, zoomtest.EventMeetingDeleted, payload); err != nil {
		t.Fatal(err)
	}
	ds := h.waitAllDone(t, webhooks.ProviderZoom, 1)
	if ds[0].Status != webhooks.StatusProcessed || ds[0].Attempts != 1 || !strings.Contains(ds[0].Note, "meeting put back") {
		t.Fatalf("delivery %+v", ds[0])
	}
	calls := h.bookings.Calls()
	if len(calls) != 2 || calls[0].Op != "cancel" || calls[1].Op != "restore meeting" || calls[1].ID != "b-live" || calls[1].Actor != "webhook:zoom" ||
		calls[1].Reason != "The Zoom meeting was deleted while the booking cannot be cancelled: the session is under way. A new meeting takes its place." {
		t.Fatalf("calls %+v", calls)
	}
}

func TestZoomDeleteCancelsAndFlagPolicy(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) { c.TimeChange = webhooks.Flag })
		sim, zc := newZoom(t, nil)
		m := movedMeeting(t, h, zc, "b-del")
		hook := h.url + "/webhooks/zoom"
		if err := sim.SendMeetingEvent(t.Context(), hook, zoomSecret, zoomtest.EventMeetingUpdated, m.ID, nil); err != nil {
			t.Fatal(err)
		}
		ds := h.waitAllDone(t, webhooks.ProviderZoom, 1)
		if !strings.Contains(ds[0].Note, "flagged") || len(h.bookings.Calls()) != 0 {
			t.Fatalf("flag policy: note %q, calls %+v", ds[0].Note, h.bookings.Calls())
		}
		if err := sim.SendMeetingEvent(t.Context(), hook, zoomSecret, zoomtest.EventMeetingDeleted, m.ID, nil); err != nil {
			t.Fatal(err)
		}
		h.waitAllDone(t, webhooks.ProviderZoom, 2)
		calls := h.bookings.Calls()
		if len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-del" || calls[0].Actor != "webhook:zoom" {
			t.Fatalf("calls %+v", calls)
		}
		// An event for a meeting the gateway does not know is processed as a no-op.
		body := []byte(`{"event":"meeting.started","event_ts":1,"payload":{"account_id":"acc","object":{"id":"999","uuid":"x"}}}`)
		if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != http.StatusNoContent {
			t.Fatalf("status %d %s", code, b)
		}
		ds = h.waitAllDone(t, webhooks.ProviderZoom, 3)
		if ds[0].Note != "no booking for the meeting" || len(h.bookings.Calls()) != 1 {
			t.Fatalf("unknown meeting: %+v", ds[0])
		}
	})
}

// The same signed delivery arriving five times at once is stored once and
// processed once.
func TestZoomDuplicateConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		start := time.Now().Add(24 * time.Hour).Truncate(time.Minute).UTC()
		h.bookings.add(webhooks.Booking{ID: "b-dup", Start: start, End: start.Add(time.Hour)}, "4242", "", "")
		body := []byte(`{"event":"meeting.started","event_ts":1764069600123,"payload":{"account_id":"acc","object":{"id":"4242","uuid":"u","start_time":"` +
			start.Format(time.RFC3339) + `"}}}`)
		hdr := signedZoom(zoomSecret, time.Now(), body)
		var wg sync.WaitGroup
		codes := make([]int, 5)
		for i := range codes {
			wg.Go(func() { codes[i], _, _ = h.post(t, "/webhooks/zoom", body, hdr) })
		}
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusNoContent {
				t.Fatalf("delivery %d: status %d", i, c)
			}
		}
		ds := h.waitAllDone(t, webhooks.ProviderZoom, 1)
		if ds[0].Attempts != 1 {
			t.Errorf("attempts %d", ds[0].Attempts)
		}
		// Processed in-process right after the commit: its River job, the
		// fallback, is deleted (with a later commit, within a second), never run.
		if n := h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": "in_process"}); n != 1 {
			t.Errorf("%v in-process jobs, want 1", n)
		}
		deadline := time.Now().Add(10 * time.Second)
		for jobs := h.riverJobs(t); len(jobs) != 0; jobs = h.riverJobs(t) {
			if jobs["completed"]+jobs["running"] > 0 || time.Now().After(deadline) {
				t.Fatalf("river holds processing jobs %v, want none", jobs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The key puts the event time before the body hash (time-ordered keys).
		if want := "1764069600123/sha256:"; !strings.HasPrefix(ds[0].ExternalID, want) || len(ds[0].ExternalID) != len(want)+64 {
			t.Errorf("external id %q, want %s<hex>", ds[0].ExternalID, want)
		}
		// Retried later (as Zoom does: the same body signed at a new time), still a duplicate.
		if c, _, _ := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now().Add(time.Minute), body)); c != http.StatusNoContent {
			t.Fatalf("retry: status %d", c)
		}
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d processing jobs, want 1", n)
		}
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Status != webhooks.BookingInProgress {
			t.Fatalf("calls %+v", calls)
		}
	})
}

func TestZoomRejections(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) { c.MaxBody = 4 << 10 })
		now := time.Now()
		body := []byte(`{"event":"meeting.started","event_ts":1,"payload":{"object":{"id":"1"}}}`)
		ts := strconv.FormatInt(now.Unix(), 10)
		good := zoomtest.Sign(zoomSecret, ts, body)
		big := []byte(`{"event":"meeting.started","payload":{"x":"` + strings.Repeat("a", 5<<10) + `"}}`)
		tests := []struct {
			name   string
			body   []byte
			hdr    map[string]string
			status int
			reason string
		}{
			{"forged signature", body, map[string]string{"x-zm-request-timestamp": ts, "x-zm-signature": "v0=" + strings.Repeat("ab", 32)}, 401, "bad_signature"},
			{"wrong secret", body, signedZoom("not-the-secret", now, body), 401, "bad_signature"},
			{"stale timestamp", body, signedZoom(zoomSecret, now.Add(-6*time.Minute), body), 401, "stale_timestamp"},
			{"future timestamp", body, signedZoom(zoomSecret, now.Add(6*time.Minute), body), 401, "future_timestamp"},
			{"missing signature", body, map[string]string{"x-zm-request-timestamp": ts}, 401, "missing_header"},
			{"missing timestamp", body, map[string]string{"x-zm-signature": good}, 401, "missing_header"},
			{"malformed signature", body, map[string]string{"x-zm-request-timestamp": ts, "x-zm-signature": "sha256=abc"}, 401, "malformed_signature"},
			{"truncated body", body[:len(body)-5], map[string]string{"x-zm-request-timestamp": ts, "x-zm-signature": good}, 401, "bad_signature"},
			{"oversized body", big, signedZoom(zoomSecret, now, big), 413, "too_large"},
		}
		for _, tt := range tests {
			before := h.rejected(webhooks.ProviderZoom, tt.reason)
			code, hdr, b := h.post(t, "/webhooks/zoom", tt.body, tt.hdr)
			if code != tt.status {
				t.Errorf("%s: status %d, want %d (%s)", tt.name, code, tt.status, b)
				continue
			}
			p := problem(t, hdr, b)
			if tt.status == 401 && (p.Type != "https://spotlight.dev/problems/invalid-signature" || p.Detail != "The delivery could not be verified.") {
				t.Errorf("%s: problem %+v", tt.name, p)
			}
			if strings.Contains(string(b), tt.reason) || strings.Contains(string(b), "secret") {
				t.Errorf("%s: answer tells the reason: %s", tt.name, b)
			}
			if after := h.rejected(webhooks.ProviderZoom, tt.reason); after != before+1 {
				t.Errorf("%s: rejected{reason=%s} %v → %v", tt.name, tt.reason, before, after)
			}
		}
		// A body cut off in transit (fewer bytes than Content-Length).
		u, _ := url.Parse(h.url)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /webhooks/zoom HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nx-zm-request-timestamp: %s\r\nx-zm-signature: %s\r\n\r\n%s",
			u.Host, len(body), ts, good, body[:20])
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("incomplete body: status %d", resp.StatusCode)
		}

		// Valid signature, invalid JSON: 400, stored as poison, never processed.
		bad := []byte(`{"event":"meeting.started",`)
		code, hdr, b := h.post(t, "/webhooks/zoom", bad, signedZoom(zoomSecret, now, bad))
		if code != http.StatusBadRequest {
			t.Fatalf("poison: status %d %s", code, b)
		}
		problem(t, hdr, b)
		ds := h.deliveries(t, webhooks.ProviderZoom)
		if len(ds) != 1 || ds[0].Status != webhooks.StatusPoison {
			t.Fatalf("stored %+v, want one poison delivery", ds)
		}
		full, err := h.svc.Events().Get(t.Context(), ds[0].ID)
		if err != nil || string(full.Body) != string(bad) {
			t.Fatalf("poison body %q, %v", full.Body, err)
		}
		// The admin API says why, without quoting the body.
		if full.LastError == "" || strings.Contains(full.LastError, string(bad)) || full.Attempts != 0 || !full.ProcessedAt.IsZero() {
			t.Fatalf("poison outcome: last_error %q, %d attempts, processed %v; want the decoding error, never attempted", full.LastError, full.Attempts, full.ProcessedAt)
		}
		if r := h.reported(); len(r) != 1 || !errors.Is(r[0], webhooks.ErrUndecodable) || strings.Contains(r[0].Error(), string(bad)) {
			t.Fatalf("reports %v, want one poison report without the body", r)
		}
		// Zoom retries the poison delivery: acknowledged the same way, stored and reported once.
		if code, _, _ := h.post(t, "/webhooks/zoom", bad, signedZoom(zoomSecret, now, bad)); code != http.StatusBadRequest || len(h.deliveries(t, webhooks.ProviderZoom)) != 1 || len(h.reported()) != 1 {
			t.Fatalf("poison retry: %d", code)
		}
		if _, ok := full.Headers["X-Zm-Signature"]; ok {
			t.Fatalf("signature stored: %v", full.Headers)
		}
		if n := h.jobCount(t); n != 0 {
			t.Fatalf("%d processing jobs after rejections", n)
		}
		if len(h.bookings.Calls()) != 0 {
			t.Fatal("a rejected delivery was processed")
		}
		// No secret configured: refused.
		h.secrets.set(webhooks.Secrets{})
		if code, _, _ := h.post(t, "/webhooks/zoom", body, map[string]string{"x-zm-request-timestamp": ts, "x-zm-signature": good}); code != 401 {
			t.Fatalf("no secret: status %d", code)
		}
	})
}

// A meeting event for a booking whose saga is still running is retried
// until the booking has settled, then applied once.
func TestZoomWaitsForPendingBooking(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
		h.bookings.add(webhooks.Booking{ID: "b-pend", Status: webhooks.BookingPending, Start: start, End: start.Add(time.Hour)}, "5150", "", "")
		body := []byte(`{"event":"meeting.started","event_ts":1,"payload":{"object":{"id":"5150"}}}`)
		if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != 204 {
			t.Fatalf("%d %s", code, b)
		}
		var id string
		deadline := time.Now().Add(15 * time.Second)
		for {
			ds := h.deliveries(t, webhooks.ProviderZoom)
			if len(ds) == 1 && ds[0].Status == webhooks.StatusFailed {
				id = ds[0].ID
				if !strings.Contains(ds[0].LastError, "in flight") {
					t.Fatalf("last error %q", ds[0].LastError)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries %+v", ds)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(h.bookings.Calls()) != 0 {
			t.Fatalf("applied to a pending booking: %+v", h.bookings.Calls())
		}
		h.bookings.mu.Lock()
		h.bookings.byID["b-pend"].Status = webhooks.BookingConfirmed
		h.bookings.mu.Unlock()
		d := h.waitDone(t, id) // River retries the job after its backoff
		for d.Status != webhooks.StatusProcessed && time.Now().Before(deadline.Add(15*time.Second)) {
			time.Sleep(20 * time.Millisecond)
			d = h.waitDone(t, id)
		}
		if d.Status != webhooks.StatusProcessed || d.Attempts < 2 {
			t.Fatalf("after settling: %+v", d)
		}
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Status != webhooks.BookingInProgress {
			t.Fatalf("calls %+v", calls)
		}
	})
}

// TestZoomEarlyStart: with an EarlyStart of an hour, a host starting and
// ending the meeting days before the session (testing the link) leaves the
// booking alone, also when that test's end arrives while the session runs;
// a start within the hour before the session counts, and so does the end of
// the instance that made the booking in progress.
func TestZoomEarlyStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t), func(c *webhooks.Config) { c.EarlyStart = time.Hour })
	now := time.Now().UTC().Truncate(time.Second)
	far, soon := now.Add(48*time.Hour), now.Add(30*time.Minute)
	h.bookings.add(webhooks.Booking{ID: "b-far", Status: "confirmed", Start: far, End: far.Add(time.Hour)}, "5001", "", "")
	h.bookings.add(webhooks.Booking{ID: "b-soon", Status: "confirmed", Start: soon, End: soon.Add(time.Hour)}, "5002", "", "")
	running, early := now.Add(-10*time.Minute), now.Add(-50*time.Minute)
	h.bookings.add(webhooks.Booking{ID: "b-running", Status: webhooks.BookingInProgress, Start: running, End: running.Add(time.Hour)}, "5003", "", "")
	h.bookings.add(webhooks.Booking{ID: "b-early", Status: webhooks.BookingInProgress, Start: early.Add(30 * time.Minute), End: early.Add(90 * time.Minute)}, "5004", "", "")
	send := func(event, meeting, times string, ts int64) {
		t.Helper()
		body := []byte(`{"event":"` + event + `","event_ts":` + strconv.FormatInt(ts, 10) + `,"payload":{"account_id":"acc","object":{"id":"` + meeting + `","uuid":"u` + meeting + `"` + times + `}}}`)
		if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != http.StatusNoContent {
			t.Fatalf("%s %s: %d %s", event, meeting, code, b)
		}
	}
	at := func(field string, t time.Time) string { return `,"` + field + `":"` + t.Format(time.RFC3339) + `"` }

	send("meeting.started", "5001", at("start_time", now), now.UnixMilli())
	send("meeting.ended", "5001", at("start_time", now)+at("end_time", now.Add(5*time.Minute)), now.Add(5*time.Minute).UnixMilli())
	send("meeting.started", "5002", at("start_time", now), now.UnixMilli()+1)
	// The end of a link test three hours before b-running, delivered late.
	send("meeting.ended", "5003", at("start_time", running.Add(-3*time.Hour))+at("end_time", running.Add(-170*time.Minute)), now.UnixMilli()+2)
	// b-early's session began 40 minutes before its start and ended 10 minutes before it.
	send("meeting.ended", "5004", at("start_time", early.Add(-10*time.Minute))+at("end_time", early.Add(20*time.Minute)), now.UnixMilli()+3)
	ds := h.waitAllDone(t, webhooks.ProviderZoom, 5)
	notes := map[string]string{}
	for _, d := range ds {
		notes[d.EventType+" "+d.BookingID] = d.Note
	}
	for key, want := range map[string]string{
		"meeting.started b-far":   "meeting started more than 1 h before the session (a test of the link?); booking unchanged",
		"meeting.ended b-far":     "meeting ended before the session started; booking unchanged",
		"meeting.started b-soon":  "booking in progress",
		"meeting.ended b-running": "meeting ended before the session started; booking unchanged",
		"meeting.ended b-early":   "booking completed",
	} {
		if notes[key] != want {
			t.Errorf("%s: note %q, want %q", key, notes[key], want)
		}
	}
	calls := map[string]string{}
	for _, c := range h.bookings.Calls() {
		calls[c.ID] += c.Op + ":" + c.Status + " "
	}
	if want := map[string]string{"b-soon": "status:in_progress ", "b-early": "status:completed "}; !maps.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

// TestZoomSimulatorDeliversFiveTimesAtOnce: the Zoom simulator sends the
// same signed meeting.started five times at once (its clock stopped, so
// the five bodies are the one delivery, as Zoom's retries are): every one
// is acknowledged, one is stored, and the booking is set in progress once.
func TestZoomSimulatorDeliversFiveTimesAtOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		frozen := time.Now()
		sim, zc := newZoom(t, func() time.Time { return frozen })
		start := frozen.Add(10 * time.Minute).Truncate(time.Minute).UTC()
		m, err := zc.CreateMeeting(t.Context(), "mentor@example.com", "b-five", zoom.MeetingRequest{Topic: "Session", StartTime: start, Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: "b-five", MentorID: "mentor", Start: start, End: start.Add(time.Hour)}, strconv.FormatInt(m.ID, 10), "", "")
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Go(func() {
				errs[i] = sim.SendMeetingEvent(t.Context(), h.url+"/webhooks/zoom", zoomSecret, zoomtest.EventMeetingStarted, m.ID, nil)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("delivery %d: %v", i, err)
			}
		}
		ds := h.waitAllDone(t, webhooks.ProviderZoom, 1)
		if ds[0].Status != webhooks.StatusProcessed || ds[0].BookingID != "b-five" || ds[0].Attempts != 1 {
			t.Fatalf("stored %+v", ds[0])
		}
		if n := h.counter("gateway_webhook_accepted_total", map[string]string{"provider": webhooks.ProviderZoom, "outcome": "duplicate"}); n != 4 {
			t.Errorf("%v duplicates acknowledged, want 4", n)
		}
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "status" || calls[0].Status != webhooks.BookingInProgress {
			t.Fatalf("calls %+v, want the booking set in progress once", calls)
		}
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d processing jobs, want 1", n)
		}
	})
}
