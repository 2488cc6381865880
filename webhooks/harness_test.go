package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/webhooks"
)

// call is one action the processors took on the fake booking service.
type call struct {
	Op, ID, Actor, Reason, Status string
	Start, End                    time.Time
	// Changed is the artefact a reschedule follows.
	Changed webhooks.Artefact
}

// fakeBookings is the in-memory stand-in for the booking area (the only
// fake in these tests; providers are the real simulators over HTTP).
type fakeBookings struct {
	mu         sync.Mutex
	byID       map[string]*webhooks.Booking
	meetings   map[string]string
	events     map[string]string
	issues     map[string]string
	calls      []call
	attendance []webhooks.Attendance
	// failCancel makes the next n Cancel calls of a booking fail (transiently).
	failCancel map[string]int
	// refuseMoves makes Reschedule refuse every new time, refuseCancel
	// Cancel every cancel (ErrRefused).
	refuseMoves, refuseCancel bool
	// placed lists, by calendar, the session events the booking steps
	// record there (whatever the bookings' status: MentorEvents returns
	// them all, so that the sync's own checks are what keeps the ended
	// ones untouched).
	placed map[webhooks.Source][]webhooks.PlacedEvent
	// hold, when set, makes FindByMeeting of that meeting wait until
	// release is closed (a delivery whose processing is under way).
	hold    string
	held    chan struct{}
	release chan struct{}
}

func newFakeBookings() *fakeBookings {
	return &fakeBookings{byID: map[string]*webhooks.Booking{}, meetings: map[string]string{}, events: map[string]string{}, issues: map[string]string{}}
}

func (f *fakeBookings) add(b webhooks.Booking, meetingID, eventID, issueKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.Status == "" {
		b.Status = webhooks.BookingConfirmed
	}
	f.byID[b.ID] = &b
	if meetingID != "" {
		f.meetings[meetingID] = b.ID
	}
	if eventID != "" {
		f.events[eventID] = b.ID
	}
	if issueKey != "" {
		f.issues[issueKey] = b.ID
		f.byID[b.ID].Issue = issueKey
	}
}

func (f *fakeBookings) lookup(index map[string]string, key string) (webhooks.Booking, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := index[key]
	if !ok {
		return webhooks.Booking{}, webhooks.ErrBookingNotFound
	}
	return *f.byID[id], nil
}

func (f *fakeBookings) FindByMeeting(_ context.Context, id string) (webhooks.Booking, error) {
	f.mu.Lock()
	hold, held, release := f.hold, f.held, f.release
	f.mu.Unlock()
	if hold == id {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
	}
	return f.lookup(f.meetings, id)
}

// holdMeeting makes processing of meeting id wait; the returned channel
// receives when it started waiting; calling release lets it go on.
func (f *fakeBookings) holdMeeting(id string) (held <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold, f.held, f.release = id, make(chan struct{}, 1), make(chan struct{})
	r := f.release
	return f.held, sync.OnceFunc(func() { close(r) })
}

func (f *fakeBookings) FindByEvent(_ context.Context, id string) (webhooks.Booking, error) {
	return f.lookup(f.events, id)
}

func (f *fakeBookings) FindByIssue(_ context.Context, key string) (webhooks.Booking, error) {
	return f.lookup(f.issues, key)
}

func (f *fakeBookings) Get(_ context.Context, id string) (webhooks.Booking, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.byID[id]
	if !ok {
		return webhooks.Booking{}, webhooks.ErrBookingNotFound
	}
	return *b, nil
}

func (f *fakeBookings) Cancel(_ context.Context, id, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCancel[id] > 0 {
		f.failCancel[id]--
		return errors.New("booking store unavailable")
	}
	f.calls = append(f.calls, call{Op: "cancel", ID: id, Actor: actor, Reason: reason})
	if f.refuseCancel {
		return &webhooks.RefusedError{Reason: "the session is under way", Err: errors.New("booking: cannot cancel a booking that is in_progress")}
	}
	f.byID[id].Status = webhooks.BookingCancelled
	return nil
}

func (f *fakeBookings) Reschedule(_ context.Context, id string, start, end time.Time, changed webhooks.Artefact, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "reschedule", ID: id, Actor: actor, Reason: reason, Start: start, End: end, Changed: changed})
	if f.refuseMoves {
		return &webhooks.RefusedError{Reason: "the mentor is not free at that time", Err: errors.New("booking: overlaps another booking")}
	}
	f.byID[id].Start, f.byID[id].End = start, end
	return nil
}

func (f *fakeBookings) Restore(_ context.Context, id string, what webhooks.Artefact, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "restore " + string(what), ID: id, Actor: actor, Reason: reason})
	return nil
}

func (f *fakeBookings) SetStatus(_ context.Context, id, status, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "status", ID: id, Actor: actor, Reason: reason, Status: status})
	f.byID[id].Status = status
	return nil
}

func (f *fakeBookings) RecordAttendance(_ context.Context, id string, a webhooks.Attendance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "attendance", ID: id})
	f.attendance = append(f.attendance, a)
	return nil
}

// MentorEvents implements webhooks.Bookings: the events place recorded
// for src.
func (f *fakeBookings) MentorEvents(_ context.Context, src webhooks.Source) ([]webhooks.PlacedEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.placed[src]), nil
}

// place records that booking id's session event was written to src's
// calendar.
func (f *fakeBookings) place(src webhooks.Source, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.placed == nil {
		f.placed = map[webhooks.Source][]webhooks.PlacedEvent{}
	}
	f.placed[src] = append(f.placed[src], webhooks.PlacedEvent{BookingID: id, EventID: calendar.EventID(id)})
}

// refuse makes Reschedule (moves) and Cancel (cancels) refuse from now on.
func (f *fakeBookings) refuse(moves, cancels bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseMoves, f.refuseCancel = moves, cancels
}

func (f *fakeBookings) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// staticCalendars opens the real provider clients the test built.
type staticCalendars struct {
	mu     sync.Mutex
	cals   map[webhooks.Source]calendar.Calendar
	polled []webhooks.Source
}

func (s *staticCalendars) Open(_ context.Context, src webhooks.Source) (calendar.Calendar, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cals[src]
	switch {
	case !ok:
		return nil, fmt.Errorf("no calendar %v", src)
	case c == nil:
		return nil, fmt.Errorf("calendar %v: %w", src, webhooks.ErrCalendarUnavailable)
	}
	return c, nil
}

// unavailable makes Open report src as no longer connected.
func (s *staticCalendars) unavailable(src webhooks.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cals == nil {
		s.cals = map[webhooks.Source]calendar.Calendar{}
	}
	s.cals[src] = nil
}

func (s *staticCalendars) Polled(context.Context) ([]webhooks.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]webhooks.Source(nil), s.polled...), nil
}

func (s *staticCalendars) Pushed(context.Context) ([]webhooks.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []webhooks.Source
	for src, c := range s.cals {
		if c != nil && !slices.Contains(s.polled, src) {
			out = append(out, src)
		}
	}
	return out, nil
}

func (s *staticCalendars) add(src webhooks.Source, c calendar.Calendar, polled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cals == nil {
		s.cals = map[webhooks.Source]calendar.Calendar{}
	}
	s.cals[src] = c
	if polled {
		s.polled = append(s.polled, src)
	}
}

// secretBox holds the secrets in force; tests change them.
type secretBox struct {
	mu  sync.Mutex
	sec webhooks.Secrets
}

func (b *secretBox) get(context.Context) (webhooks.Secrets, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sec, nil
}

func (b *secretBox) set(s webhooks.Secrets) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sec = s
}

// clock is the real clock, shifted by an offset tests set.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Set makes the clock read t now (and run on from there).
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

const (
	zoomSecret = "zoom-secret-token"
	jiraSecret = "jira-webhook-secret"
	ownJira    = "gateway-jira-account"
)

type harness struct {
	db        *store.Store
	svc       *webhooks.Service
	url       string
	bookings  *fakeBookings
	calendars *staticCalendars
	channels  *googleChannels
	secrets   *secretBox
	clock     *clock
	reg       *prometheus.Registry
	issuer    *auth.DevIssuer

	mu      sync.Mutex
	reports []error // what would go to Sentry
}

func (h *harness) reported() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.reports...)
}

// newHarness runs the real HTTP server of the gateway (httpapi with the
// intake mounted and the admin API), River workers, and the webhooks
// service on db.
func newHarness(t *testing.T, db *store.Store, mutate ...func(*webhooks.Config)) *harness {
	t.Helper()
	h := &harness{db: db, bookings: newFakeBookings(), calendars: &staticCalendars{}, reg: prometheus.NewRegistry(),
		secrets: &secretBox{sec: webhooks.Secrets{Zoom: []string{zoomSecret}, Jira: jiraSecret}},
		clock:   &clock{}}
	h.channels = &googleChannels{}
	var jobs *store.Jobs
	cfg := webhooks.Config{
		DB: db, Jobs: func() webhooks.JobInserter {
			if jobs == nil {
				return nil
			}
			return jobs
		},
		Secrets: h.secrets.get, Bookings: h.bookings, Channels: h.channels, Calendars: h.calendars,
		JiraAccountID: func(context.Context) (string, error) { return ownJira, nil },
		Now:           h.clock.Now, Registerer: h.reg,
		Report: func(_ context.Context, err error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reports = append(h.reports, err)
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := webhooks.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	workers := river.NewWorkers()
	river.AddWorker(workers, svc.ProcessWorker())
	river.AddWorker(workers, svc.RenewWorker())
	river.AddWorker(workers, svc.PollWorker())
	jobs, err = store.NewJobs(db, store.JobsConfig{Workers: workers, Work: true, MaxWorkers: 8,
		FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}

	h.issuer, err = auth.LoadOrCreateDevIssuer(t.TempDir(), "http://gateway.test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: h.issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: h.issuer.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := httpapi.NewServer(httpapi.Deps{
		Registry: prometheus.NewRegistry(), Authenticator: v,
		Mount:        []func(*echo.Echo){svc.Mount},
		ErrorMappers: []httpapi.ErrorMapper{httpapi.WebhookErrors},
		Webhooks:     httpapi.WebhookDeps{Events: httpapi.WebhookService(svc)},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	h.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = jobs.Stop(ctx)
	})
	return h
}

func (h *harness) token(t *testing.T, groups ...string) string {
	t.Helper()
	tok, err := h.issuer.Mint(auth.TokenRequest{Subject: "ops", Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends a raw delivery.
func (h *harness) post(t *testing.T, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// get calls the admin API.
func (h *harness) api(t *testing.T, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// deliveries returns every stored delivery of a provider, newest first.
func (h *harness) deliveries(t *testing.T, provider string) []webhooks.Delivery {
	t.Helper()
	var out []webhooks.Delivery
	f := webhooks.Filter{Provider: provider, Limit: 200}
	for {
		p, err := h.svc.Events().List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		f.Cursor = p.NextCursor
	}
}

// waitDone waits until the delivery is processed or failed.
func (h *harness) waitDone(t *testing.T, id string) webhooks.Delivery {
	t.Helper()
	return h.waitDelivery(t, id, func(d webhooks.Delivery) bool {
		return d.Status == webhooks.StatusProcessed || d.Status == webhooks.StatusFailed
	})
}

// waitProcessed waits until the delivery is processed after attempts
// attempts (a replay adds one).
func (h *harness) waitProcessed(t *testing.T, id string, attempts int) webhooks.Delivery {
	t.Helper()
	return h.waitDelivery(t, id, func(d webhooks.Delivery) bool {
		return d.Status == webhooks.StatusProcessed && d.Attempts == attempts
	})
}

// waitDelivery waits (15s at most) until the delivery satisfies ok.
func (h *harness) waitDelivery(t *testing.T, id string, ok func(webhooks.Delivery) bool) webhooks.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, err := h.svc.Events().Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s still %s after %d attempts", id, d.Status, d.Attempts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAllDone waits until every stored delivery of provider is processed
// and returns them.
func (h *harness) waitAllDone(t *testing.T, provider string, want int) []webhooks.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds := h.deliveries(t, provider)
		done := 0
		for _, d := range ds {
			if d.Status == webhooks.StatusProcessed || d.Status == webhooks.StatusFailed {
				done++
			}
		}
		if len(ds) == want && done == want {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s deliveries: %d stored, %d done; want %d", provider, len(ds), done, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jobCount counts processing jobs ever committed (in-process hand-offs,
// queued for River, replays): the gateway deletes a handed-off job once
// its deliveries are processed, so river_job does not keep them.
func (h *harness) jobCount(t *testing.T) int {
	t.Helper()
	var n float64
	for _, path := range []string{"in_process", "queued", "replay"} {
		n += h.counter("gateway_webhook_process_jobs_total", map[string]string{"path": path})
	}
	return int(n)
}

// riverJobs counts the processing jobs River holds now, by state.
func (h *harness) riverJobs(t *testing.T) map[string]int {
	t.Helper()
	rows, err := h.db.DB().QueryContext(t.Context(), h.db.Rebind(`SELECT state, COUNT(*) FROM river_job WHERE kind = ? GROUP BY state`), "webhook_process")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			t.Fatal(err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *harness) rejected(provider, reason string) float64 {
	return h.counter("gateway_webhook_rejected_total", map[string]string{"provider": provider, "reason": reason})
}

// counter reads the counter name with exactly the given labels (0 if absent).
func (h *harness) counter(name string, want map[string]string) float64 {
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if maps.Equal(labels, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// problem decodes a problem+json answer.
func problem(t *testing.T, hdr http.Header, body []byte) httpapi.Problem {
	t.Helper()
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, body %s", ct, body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
