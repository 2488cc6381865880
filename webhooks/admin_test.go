package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

func TestAdminWebhookEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		h.bookings.add(webhooks.Booking{ID: "7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b", Start: time.Now(), End: time.Now().Add(time.Hour)}, "77", "", "")
		before := time.Now().Add(-time.Second)
		for _, who := range []string{"a", "b", "c"} {
			body := []byte(`{"event":"meeting.participant_joined","event_ts":1,"payload":{"object":{"id":"77","participant":{"user_id":"` + who + `","join_time":"2026-11-25T10:00:00Z"}}}}`)
			if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != 204 {
				t.Fatalf("%d %s", code, b)
			}
		}
		// A poison body that is not even UTF-8.
		bad := []byte("not json \xff\xfe\x00 end")
		if code, _, _ := h.post(t, "/webhooks/zoom", bad, signedZoom(zoomSecret, time.Now(), bad)); code != 400 {
			t.Fatalf("poison: %d", code)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			p, err := h.svc.Events().List(t.Context(), webhooks.Filter{Status: webhooks.StatusProcessed})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d processed", len(p.Items))
			}
			time.Sleep(10 * time.Millisecond)
		}
		admin, candidate := h.token(t, "admin"), h.token(t, "candidate")

		if code, _ := h.api(t, "GET", "/v1/admin/webhook-events", ""); code != 401 {
			t.Fatalf("no token: %d", code)
		}
		code, b := h.api(t, "GET", "/v1/admin/webhook-events", candidate)
		if code != 403 || !strings.Contains(string(b), "forbidden") {
			t.Fatalf("candidate: %d %s", code, b)
		}
		list := func(q string) api.WebhookEventList {
			t.Helper()
			code, b := h.api(t, "GET", "/v1/admin/webhook-events"+q, admin)
			if code != 200 {
				t.Fatalf("list %s: %d %s", q, code, b)
			}
			var l api.WebhookEventList
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		all := list("")
		if len(all.Items) != 4 || all.NextCursor != nil || all.Items[0].Status != api.WebhookEventStatusPoison || all.Items[0].Body != nil {
			t.Fatalf("all: %+v", all)
		}
		beforeQ := url.QueryEscape(before.Format(time.RFC3339Nano))
		for _, f := range []struct {
			query string
			want  int
		}{
			{"?status=processed&provider=zoom", 3},
			{"?provider=jira", 0},
			{"?event_type=meeting.participant_joined&provider=zoom", 3},
			{"?event_type=meeting.started", 0},
			{"?to=" + beforeQ, 0},
			{"?from=" + beforeQ, 4},
			// The zero instant is a bound like any other: before every delivery.
			{"?to=0001-01-01T00:00:00Z", 0},
			{"?from=0001-01-01T00:00:00Z", 4},
			{"?from=0001-01-01T00:00:00Z&to=0001-01-01T00:00:01Z", 0},
		} {
			if got := list(f.query); len(got.Items) != f.want {
				t.Errorf("list %s: %d deliveries, want %d", f.query, len(got.Items), f.want)
			}
		}
		p1 := list("?limit=3")
		if len(p1.Items) != 3 || p1.NextCursor == nil {
			t.Fatalf("page 1: %+v", p1)
		}
		p2 := list("?limit=3&cursor=" + url.QueryEscape(*p1.NextCursor))
		if len(p2.Items) != 1 || p2.NextCursor != nil || p2.Items[0].Id == p1.Items[2].Id {
			t.Fatalf("page 2: %+v", p2)
		}
		if code, b := h.api(t, "GET", "/v1/admin/webhook-events?cursor=garbage!", admin); code != 400 {
			t.Fatalf("bad cursor: %d %s", code, b)
		}

		// Detail: raw body and the safe headers, never the signature.
		target := all.Items[1]
		code, b = h.api(t, "GET", "/v1/admin/webhook-events/"+target.Id.String(), admin)
		var ev api.WebhookEvent
		if code != 200 || json.Unmarshal(b, &ev) != nil || ev.Body == nil || !strings.Contains(*ev.Body, "participant_joined") || ev.Headers == nil {
			t.Fatalf("detail: %d %s", code, b)
		}
		if _, ok := (*ev.Headers)["X-Zm-Request-Timestamp"]; !ok || strings.Contains(string(b), zoomtestSigPrefix) {
			t.Fatalf("headers %v", *ev.Headers)
		}
		if ev.BodyEncoding == nil || *ev.BodyEncoding != api.WebhookEventBodyEncodingUtf8 {
			t.Fatalf("body_encoding of a JSON body = %v", ev.BodyEncoding)
		}
		// The poison body comes back byte for byte.
		code, b = h.api(t, "GET", "/v1/admin/webhook-events/"+all.Items[0].Id.String(), admin)
		var pe api.WebhookEvent
		if code != 200 || json.Unmarshal(b, &pe) != nil || pe.Body == nil || pe.BodyEncoding == nil || *pe.BodyEncoding != api.WebhookEventBodyEncodingBase64 {
			t.Fatalf("poison detail: %d %s", code, b)
		}
		if raw, err := base64.StdEncoding.DecodeString(*pe.Body); err != nil || !bytes.Equal(raw, bad) {
			t.Fatalf("poison body = %q (%v), want %q", raw, err, bad)
		}
		if ev.BookingId == nil || ev.BookingId.String() != "7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b" || ev.ProcessedAt == nil || ev.Attempts != 1 ||
			ev.Note == nil || *ev.Note != "attendance recorded" {
			t.Fatalf("detail fields %+v", ev)
		}
		if all.Items[1].Note == nil || *all.Items[1].Note != "attendance recorded" || all.Items[0].Note != nil {
			t.Fatalf("list notes: processed %v, poison %v", all.Items[1].Note, all.Items[0].Note)
		}
		if code, _ := h.api(t, "GET", "/v1/admin/webhook-events/2d4e6f80-1a3c-4b5d-8e7f-9a0b1c2d3e4f", admin); code != 404 {
			t.Fatalf("unknown: %d", code)
		}
		if code, _ := h.api(t, "GET", "/v1/admin/webhook-events/"+target.Id.String(), candidate); code != 403 {
			t.Fatalf("detail as candidate: %d", code)
		}

		// Replay: processed again.
		calls := len(h.bookings.Calls())
		if code, _ := h.api(t, "POST", "/v1/admin/webhook-events/"+target.Id.String()+"/replay", candidate); code != 403 {
			t.Fatalf("replay as candidate: %d", code)
		}
		code, b = h.api(t, "POST", "/v1/admin/webhook-events/"+target.Id.String()+"/replay", admin)
		var replayed api.WebhookEvent
		if code != http.StatusAccepted || json.Unmarshal(b, &replayed) != nil {
			t.Fatalf("replay: %d %s", code, b)
		}
		// (Unless the replay's job already ran, the answer has no outcome.)
		if replayed.Status == api.WebhookEventStatusReceived && (replayed.Note != nil || replayed.ProcessedAt != nil) {
			t.Fatalf("replay answer keeps the last processing's outcome: %s", b)
		}
		deadline = time.Now().Add(15 * time.Second)
		for {
			d, err := h.svc.Events().Get(t.Context(), target.Id.String())
			if err != nil {
				t.Fatal(err)
			}
			if d.Attempts == 2 && d.Status == webhooks.StatusProcessed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replay not processed: %+v", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := len(h.bookings.Calls()); got != calls+1 {
			t.Fatalf("calls %d → %d", calls, got)
		}
		if code, b := h.api(t, "POST", "/v1/admin/webhook-events/"+all.Items[0].Id.String()+"/replay", admin); code != 409 {
			t.Fatalf("replay poison: %d %s", code, b)
		}
		if code, _ := h.api(t, "POST", "/v1/admin/webhook-events/2d4e6f80-1a3c-4b5d-8e7f-9a0b1c2d3e4f/replay", admin); code != 404 {
			t.Fatalf("replay unknown: %d", code)
		}
	})
}

const zoomtestSigPrefix = "v0="

// A delivery whose processing job is running now cannot be replayed (409);
// once processed it can. The 409 says that a job is queued for the
// delivery and when it runs: here the fallback job of the in-process
// processing under way, due a hand-off grace after the commit.
func TestReplayWhileProcessing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		h.bookings.add(webhooks.Booking{ID: "b-held", Start: time.Now(), End: time.Now().Add(time.Hour)}, "88", "", "")
		held, release := h.bookings.holdMeeting("88")
		defer release()
		body := []byte(`{"event":"meeting.started","event_ts":1764069600999,"payload":{"object":{"id":"88","uuid":"u88"}}}`)
		posted := time.Now()
		if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != 204 {
			t.Fatalf("%d %s", code, b)
		}
		select {
		case <-held:
		case <-time.After(15 * time.Second):
			t.Fatal("processing never started")
		}
		ds := h.deliveries(t, webhooks.ProviderZoom)
		if len(ds) != 1 {
			t.Fatalf("%d deliveries", len(ds))
		}
		admin := h.token(t, "admin")
		path := "/v1/admin/webhook-events/" + ds[0].ID + "/replay"
		code, b := h.api(t, "POST", path, admin)
		var p httpapi.Problem
		if code != http.StatusConflict || json.Unmarshal(b, &p) != nil {
			t.Fatalf("replay while processing: %d %s", code, b)
		}
		at := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).FindString(p.Detail)
		runs, err := time.Parse(time.RFC3339, at)
		if err != nil || !strings.Contains(p.Detail, "queued") ||
			runs.Before(posted.Add(webhooks.DefaultHandoffGrace-2*time.Second)) || runs.After(time.Now().Add(webhooks.DefaultHandoffGrace+2*time.Second)) {
			t.Errorf("409 detail %q: want the queued job and when it runs (%s after the delivery)", p.Detail, webhooks.DefaultHandoffGrace)
		}
		release()
		d := h.waitDone(t, ds[0].ID)
		if d.Status != webhooks.StatusProcessed || d.Attempts != 1 {
			t.Fatalf("after processing: %+v", d)
		}
		// River records the job's outcome shortly after the work returned.
		h.replayWhenFree(t, path, admin)
		h.waitProcessed(t, ds[0].ID, 2)
	})
}

// TestAdminWebhookEventProblems: every problem the webhook-event admin
// endpoints answer is a whole RFC 9457 document, as the error handler's are:
// type, status, the request path as instance, the request id, and the field
// that is wrong in a 400.
func TestAdminWebhookEventProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	bad := []byte(`not json`)
	if code, _, _ := h.post(t, "/webhooks/zoom", bad, signedZoom(zoomSecret, time.Now(), bad)); code != 400 {
		t.Fatalf("poison: %d", code)
	}
	poison := h.deliveries(t, webhooks.ProviderZoom)[0].ID
	admin, candidate := h.token(t, "admin"), h.token(t, "candidate")
	const unknown = "2d4e6f80-1a3c-4b5d-8e7f-9a0b1c2d3e4f"
	tests := []struct {
		name, method, path, query, token string
		status                           int
		slug, field                      string
	}{
		{"list as candidate", "GET", "/v1/admin/webhook-events", "", candidate, 403, "forbidden", ""},
		{"list without a token", "GET", "/v1/admin/webhook-events", "", "", 401, "unauthorized", ""},
		{"replay without a token", "POST", "/v1/admin/webhook-events/" + unknown + "/replay", "", "", 401, "unauthorized", ""},
		{"unknown provider", "GET", "/v1/admin/webhook-events", "?provider=github", admin, 400, "validation-error", "query.provider"},
		{"unknown status", "GET", "/v1/admin/webhook-events", "?status=lost", admin, 400, "validation-error", "query.status"},
		{"from not a time", "GET", "/v1/admin/webhook-events", "?from=yesterday", admin, 400, "validation-error", "query.from"},
		{"limit zero", "GET", "/v1/admin/webhook-events", "?limit=0", admin, 400, "validation-error", "query.limit"},
		{"bad cursor", "GET", "/v1/admin/webhook-events", "?cursor=garbage!", admin, 400, "validation-error", "query.cursor"},
		{"to before from", "GET", "/v1/admin/webhook-events", "?from=2026-11-26T00:00:00Z&to=2026-11-25T00:00:00Z", admin, 400, "validation-error", "query.to"},
		{"event type too long", "GET", "/v1/admin/webhook-events", "?event_type=" + strings.Repeat("x", 129), admin, 400, "validation-error", "query.event_type"},
		{"empty range", "GET", "/v1/admin/webhook-events", "?from=2026-11-26T00:00:00Z&to=2026-11-26T00:00:00Z", admin, 400, "validation-error", "query.to"},
		{"empty range at the zero instant", "GET", "/v1/admin/webhook-events", "?from=0001-01-01T00:00:00Z&to=0001-01-01T00:00:00Z", admin, 400, "validation-error", "query.to"},
		{"to the zero instant before from", "GET", "/v1/admin/webhook-events", "?from=2026-11-26T00:00:00Z&to=0001-01-01T00:00:00Z", admin, 400, "validation-error", "query.to"},
		{"provider twice", "GET", "/v1/admin/webhook-events", "?provider=zoom&provider=jira", admin, 400, "validation-error", "query.provider"},
		{"the same limit twice", "GET", "/v1/admin/webhook-events", "?limit=5&limit=5", admin, 400, "validation-error", "query.limit"},
		{"detail as candidate", "GET", "/v1/admin/webhook-events/" + unknown, "", candidate, 403, "forbidden", ""},
		{"unknown delivery", "GET", "/v1/admin/webhook-events/" + unknown, "", admin, 404, "not-found", ""},
		{"replay as candidate", "POST", "/v1/admin/webhook-events/" + poison + "/replay", "", candidate, 403, "forbidden", ""},
		{"replay unknown", "POST", "/v1/admin/webhook-events/" + unknown + "/replay", "", admin, 404, "not-found", ""},
		{"replay poison", "POST", "/v1/admin/webhook-events/" + poison + "/replay", "", admin, 409, "conflict", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, b := h.api(t, tt.method, tt.path+tt.query, tt.token)
			var p httpapi.Problem
			if err := json.Unmarshal(b, &p); err != nil || code != tt.status {
				t.Fatalf("%d %s, want a %d problem: %v", code, b, tt.status, err)
			}
			if p.Type != httpapi.ProblemBase+tt.slug || p.Status != tt.status || p.Title == "" || p.Detail == "" {
				t.Errorf("problem %+v, want type %s", p, tt.slug)
			}
			if p.Instance != tt.path || p.RequestID == "" {
				t.Errorf("instance %q, request_id %q; want the request path %q and an id", p.Instance, p.RequestID, tt.path)
			}
			if tt.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.field) {
				t.Errorf("errors %+v, want one naming %s", p.Errors, tt.field)
			}
		})
	}
}

// A delivery an earlier version left in "processing" (its job crashed or was
// discarded before recording an outcome; migration 0005 moved the status to
// webhook_outcomes) is held by no job now: replay recovers it instead of
// answering 409 "try again when it is done" for ever.
func TestReplayLegacyProcessing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		id := h.processedJoin(t, "b-legacy", "89")
		// River records the job's outcome shortly after the work returned;
		// wait until no job holds the delivery.
		deadline := time.Now().Add(15 * time.Second)
		for j := h.riverJobs(t); j["running"]+j["scheduled"]+j["available"] > 0; j = h.riverJobs(t) {
			if time.Now().After(deadline) {
				t.Fatal("job still running")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := db.DB().ExecContext(t.Context(), db.Rebind(`UPDATE webhook_outcomes SET status = ?, processed_at = NULL, note = NULL WHERE event_id = ?`),
			webhooks.StatusProcessing, id); err != nil {
			t.Fatal(err)
		}
		admin := h.token(t, "admin")
		if code, b := h.api(t, "POST", "/v1/admin/webhook-events/"+id+"/replay", admin); code != http.StatusAccepted {
			t.Fatalf("replay of a legacy processing delivery: %d %s", code, b)
		}
		h.waitProcessed(t, id, 2)
	})
}

// Replays of one delivery sent together (a double click, a script retrying
// on a timeout) process it once: while the first replay's job is queued or
// running, the others answer 409 instead of queueing jobs that would
// process the delivery again, at the same time on PostgreSQL.
func TestReplayTwiceQueuesOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		id := h.processedJoin(t, "b-twice", "90")
		admin := h.token(t, "admin")
		path := "/v1/admin/webhook-events/" + id + "/replay"
		// The job a replay queues cannot finish while the meeting is held.
		_, release := h.bookings.holdMeeting("90")
		defer release()
		codes := make(chan int, 4)
		for range cap(codes) {
			go func() {
				code, _ := h.api(t, "POST", path, admin)
				codes <- code
			}()
		}
		accepted := 0
		for range cap(codes) {
			switch code := <-codes; code {
			case http.StatusAccepted:
				accepted++
			case http.StatusConflict:
			default:
				t.Errorf("replay: %d", code)
			}
		}
		if accepted != 1 {
			t.Fatalf("%d of %d replays sent together accepted, want 1 (jobs %v)", accepted, cap(codes), h.riverJobs(t))
		}
		release()
		h.waitProcessed(t, id, 2)
		time.Sleep(200 * time.Millisecond)
		if d, _ := h.svc.Events().Get(t.Context(), id); d.Attempts != 2 {
			t.Fatalf("processed %d times, want 2 (intake and one replay)", d.Attempts)
		}
	})
}

// processedJoin books meeting for booking, delivers Zoom's
// meeting.participant_joined for it, waits until it is processed and
// returns the delivery's id (the harness's only Zoom delivery).
func (h *harness) processedJoin(t *testing.T, booking, meeting string) string {
	t.Helper()
	h.bookings.add(webhooks.Booking{ID: booking, Start: time.Now(), End: time.Now().Add(time.Hour)}, meeting, "", "")
	body := []byte(`{"event":"meeting.participant_joined","event_ts":1764069600111,"payload":{"object":{"id":"` + meeting +
		`","participant":{"user_id":"p1","join_time":"2026-11-25T10:00:00Z"}}}}`)
	if code, _, b := h.post(t, "/webhooks/zoom", body, signedZoom(zoomSecret, time.Now(), body)); code != 204 {
		t.Fatalf("%d %s", code, b)
	}
	id := h.deliveries(t, webhooks.ProviderZoom)[0].ID
	h.waitDone(t, id)
	return id
}

// A failed delivery whose job waits for its retry (retryable, a backoff
// ahead, or scheduled for later as a snoozed job is) is replayed by that
// job, made to run now, not by a second job: two jobs would each retry the
// delivery on their own backoff from then on, and could process it at the
// same time.
func TestReplayRunsWaitingRetryNow(t *testing.T) {
	t.Parallel()
	for _, waiting := range []string{"retryable", "scheduled"} {
		t.Run(waiting, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db)
				h.bookings.failCancels("b-retry-"+waiting, 1<<20) // until the test lets it through
				id := h.jiraCancel(t, "b-retry-"+waiting)
				job := h.postponeRetry(t, id, waiting)
				failed := h.waitDone(t, id)
				admin := h.token(t, "admin")
				path := "/v1/admin/webhook-events/" + id + "/replay"
				if code, b := h.api(t, "POST", path, admin); code != http.StatusAccepted {
					t.Fatalf("replay of a failed delivery waiting for its retry: %d %s", code, b)
				}
				if live := h.liveJobs(t, id); !slices.Equal(live, []int64{job}) {
					t.Fatalf("jobs holding the delivery after the replay: %v, want only its waiting job %d", h.jobsHolding(t, id), job)
				}
				moved := h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": "replay_moved"})
				queued := h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": "replay"})
				if moved != 1 || queued != 0 {
					t.Errorf("process jobs counted for the replay: replay_moved %v, replay %v; want 1, 0", moved, queued)
				}
				// The waiting job ran now, not an hour later.
				h.waitDelivery(t, id, func(d webhooks.Delivery) bool {
					return d.Status == webhooks.StatusFailed && d.Attempts == failed.Attempts+1
				})

				// Once the booking service answers again, a replay (409 while the
				// job runs) gets the delivery processed, still by that one job.
				h.bookings.failCancels("b-retry-"+waiting, 0)
				h.replayWhenFree(t, path, admin)
				h.waitProcessed(t, id, failed.Attempts+2)
				if jobs := h.jobsHolding(t, id); len(jobs) != 1 || jobs[job] == "" {
					t.Fatalf("jobs that held the delivery: %v, want only %d", jobs, job)
				}
				cancels := 0
				for _, c := range h.bookings.Calls() {
					if c.Op == "cancel" && c.ID == "b-retry-"+waiting {
						cancels++
					}
				}
				if cancels != 1 {
					t.Fatalf("booking cancelled %d times, want 1", cancels)
				}
			})
		})
	}
}

// A processed delivery whose job waits to retry another delivery of the
// same group commit is replayed by that job too, made to run now: a second
// job would process it, and so would the waiting job at its retry (the
// replay set the delivery back to received).
func TestReplayProcessedDeliveryOfWaitingJob(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) {
			c.Commit = webhooks.CommitConfig{MaxBatch: 2, Linger: 30 * time.Second, Committers: 1}
		})
		h.bookings.failCancels("b-fails", 1<<20)
		release := h.svc.HoldArrival()
		var wg sync.WaitGroup
		for _, b := range []string{"b-fails", "b-ok"} {
			body := h.jiraCancelBody(b)
			wg.Go(func() {
				if code, _, rb := h.post(t, "/webhooks/jira", body, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, body)}); code != http.StatusAccepted {
					t.Errorf("delivery for %s: %d %s", b, code, rb)
				}
			})
		}
		wg.Wait()
		release()
		var failing, ok string
		for _, d := range h.waitAllDone(t, webhooks.ProviderJira, 2) {
			if d.BookingID == "b-ok" && d.Status == webhooks.StatusProcessed {
				ok = d.ID
			} else {
				failing = d.ID
			}
		}
		if ok == "" {
			t.Fatal("b-ok's delivery not processed")
		}
		job := h.postponeRetry(t, failing, "retryable")
		if jobs := h.jobsHolding(t, ok); len(jobs) != 1 || jobs[job] != "retryable" {
			t.Fatalf("jobs holding the processed delivery: %v, want the group commit's job %d", jobs, job)
		}
		if code, b := h.api(t, "POST", "/v1/admin/webhook-events/"+ok+"/replay", h.token(t, "admin")); code != http.StatusAccepted {
			t.Fatalf("replay: %d %s", code, b)
		}
		if live := h.liveJobs(t, ok); !slices.Equal(live, []int64{job}) {
			t.Fatalf("jobs holding the delivery after the replay: %v, want only the waiting job %d", h.jobsHolding(t, ok), job)
		}
		h.waitProcessed(t, ok, 2)
	})
}

// A processed delivery is replayed at once even while the hand-off job of
// its group commit is still there: that job, scheduled a hand-off grace
// ahead as the crash fallback, is done with once the in-process processing
// recorded its outcomes, and a later commit deletes it (within a second).
// It does not hold the delivery: no 409, and the replay's own job
// processes the delivery once.
func TestReplayProcessedBeforeHandoffJobDeleted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		admin := h.token(t, "admin")
		// The job is deleted on the committer's next tick; a replay right
		// after the processing finds it nearly always, and when it did is
		// known for sure if the job is still there after the answer.
		for try := range 5 {
			id := h.jiraCancel(t, "b-handoff-"+strconv.Itoa(try))
			h.waitDone(t, id)
			before := h.jobsHolding(t, id)
			code, b := h.api(t, "POST", "/v1/admin/webhook-events/"+id+"/replay", admin)
			if code != http.StatusAccepted {
				t.Fatalf("replay of a processed delivery (jobs %v): %d %s", before, code, b)
			}
			after := h.jobsHolding(t, id)
			h.waitProcessed(t, id, 2)
			var handoff int64
			for job, state := range before {
				if state == "scheduled" && after[job] == "scheduled" {
					handoff = job
				}
			}
			if handoff == 0 {
				continue // deleted before the replay: try again
			}
			if len(after) != 2 {
				t.Fatalf("jobs after the replay: %v, want the hand-off's %d and the replay's", after, handoff)
			}
			// The hand-off's job goes as usual; the delivery is not
			// processed again.
			deadline := time.Now().Add(10 * time.Second)
			for h.jobsHolding(t, id)[handoff] != "" {
				if time.Now().After(deadline) {
					t.Fatalf("hand-off job %d not deleted: %v", handoff, h.jobsHolding(t, id))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if d, _ := h.svc.Events().Get(t.Context(), id); d.Attempts != 2 {
				t.Fatalf("processed %d times, want 2 (intake and the replay)", d.Attempts)
			}
			return
		}
		t.Fatal("the hand-off job was deleted before every replay")
	})
}

// failCancels makes the next n Cancel calls of booking id fail (0: none).
func (f *fakeBookings) failCancels(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCancel == nil {
		f.failCancel = map[string]int{}
	}
	f.failCancel[id] = n
}

// jiraCancelBody books booking, its Jira issue named after it, and
// returns Jira's delivery of that issue moved to the cancel status by a
// person.
func (h *harness) jiraCancelBody(booking string) []byte {
	h.bookings.add(webhooks.Booking{ID: booking, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", "ISSUE-"+booking)
	return []byte(`{"webhookEvent":"jira:issue_updated","user":{"accountId":"human"},"issue":{"id":"1","key":"ISSUE-` + booking +
		`","fields":{}},"changelog":{"items":[{"field":"status","toString":"Cancelled"}]}}`)
}

// jiraCancel delivers jiraCancelBody(booking) and returns the delivery's id.
func (h *harness) jiraCancel(t *testing.T, booking string) string {
	t.Helper()
	body := h.jiraCancelBody(booking)
	code, _, b := h.post(t, "/webhooks/jira", body, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, body)})
	var ack webhooks.Ack
	if code != http.StatusAccepted || json.Unmarshal(b, &ack) != nil || ack.ID == "" {
		t.Fatalf("delivery for %s: %d %s", booking, code, b)
	}
	return ack.ID
}

// jobsHolding returns the processing jobs whose args hold delivery id,
// River's id to the job's state, in any state.
func (h *harness) jobsHolding(t *testing.T, id string) map[int64]string {
	t.Helper()
	q := `SELECT river_job.id, river_job.state FROM river_job, json_each(river_job.args, '$.ids') AS ids
		WHERE river_job.kind = ? AND ids.value = ?`
	if h.db.Dialect() == store.Postgres {
		q = `SELECT id, state FROM river_job WHERE kind = $1 AND args->'ids' ? $2`
	}
	rows, err := h.db.DB().QueryContext(t.Context(), q, "webhook_process", id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var (
			job   int64
			state string
		)
		if err := rows.Scan(&job, &state); err != nil {
			t.Fatal(err)
		}
		out[job] = state
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// liveJobs returns the ids, sorted, of the processing jobs holding
// delivery id that may still run (not completed, cancelled or discarded).
func (h *harness) liveJobs(t *testing.T, id string) []int64 {
	t.Helper()
	var out []int64
	for job, state := range h.jobsHolding(t, id) {
		if state != "completed" && state != "cancelled" && state != "discarded" {
			out = append(out, job)
		}
	}
	slices.Sort(out)
	return out
}

// postponeRetry waits (30s at most) until a processing job holding
// delivery id waits for its retry (retryable) and moves that retry an hour
// ahead, as the backoff of a later attempt would, in state (retryable, or
// scheduled as a snoozed job is): the job then waits for the test. It
// returns the job's id.
func (h *harness) postponeRetry(t *testing.T, id, state string) int64 {
	t.Helper()
	q := `UPDATE river_job SET scheduled_at = datetime('now', '+1 hour', 'subsec'), state = ? WHERE id = ? AND state = 'retryable'`
	if h.db.Dialect() == store.Postgres {
		q = `UPDATE river_job SET scheduled_at = now() + interval '1 hour', state = $1 WHERE id = $2 AND state = 'retryable'`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for job, now := range h.jobsHolding(t, id) {
			if now != "retryable" {
				continue
			}
			res, err := h.db.DB().ExecContext(t.Context(), q, state, job)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return job
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job of delivery %s waits for a retry: %v", id, h.jobsHolding(t, id))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// replayWhenFree replays until the answer is 202 (15s at most): 409 while
// a job that holds the delivery runs or is queued to.
func (h *harness) replayWhenFree(t *testing.T, path, token string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, b := h.api(t, "POST", path, token)
		if code == http.StatusAccepted {
			return
		}
		if code != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("replay: %d %s", code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminListForgedCursor: a cursor this API did not return is a 400
// naming query.cursor on both databases, also when it decodes to an id
// PostgreSQL would refuse as text (a NUL, bytes that are not UTF-8).
func TestAdminListForgedCursor(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		admin := h.token(t, "admin")
		for name, raw := range map[string]string{
			"NUL in the id":      "1764069600000000|a\x00b",
			"id not UTF-8":       "1764069600000000|\xff\xfe",
			"NUL alone as an id": "1764069600000000|\x00",
		} {
			cursor := base64.RawURLEncoding.EncodeToString([]byte(raw))
			code, b := h.api(t, "GET", "/v1/admin/webhook-events?cursor="+cursor, admin)
			var p httpapi.Problem
			if err := json.Unmarshal(b, &p); err != nil || code != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want a 400 problem: %v", name, code, b, err)
				continue
			}
			if p.Type != httpapi.ProblemBase+"validation-error" || len(p.Errors) != 1 || p.Errors[0].Field != "query.cursor" {
				t.Errorf("%s: problem %+v, want a validation-error naming query.cursor", name, p)
			}
		}
	})
}
