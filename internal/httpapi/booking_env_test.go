package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/booking/providers"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/systemtest"
	"github.com/spotlight/gateway/webhooks"
)

// flaky injects provider faults in front of a simulator: a share of the
// requests answers 503 (not applied), 429, 502 after applying, hangs until
// the client gives up, or is applied and then loses its response.
type flaky struct {
	rate     float64
	mu       sync.Mutex
	rnd      *rand.Rand
	injected atomic.Int64
	// skip exempts requests (token endpoints).
	skip func(*http.Request) bool
}

func newFlaky(rate float64, seed uint64, skip func(*http.Request) bool) *flaky {
	return &flaky{rate: rate, rnd: rand.New(rand.NewPCG(seed, seed+1)), skip: skip}
}

func (f *flaky) roll() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate <= 0 || f.rnd.Float64() >= f.rate {
		return 0, false
	}
	return f.rnd.IntN(5), true
}

func (f *flaky) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.skip != nil && f.skip(r) {
			h.ServeHTTP(w, r)
			return
		}
		kind, fault := f.roll()
		if !fault {
			h.ServeHTTP(w, r)
			return
		}
		f.injected.Add(1)
		switch kind {
		case 0: // 503 before doing anything
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"message":"injected outage"}`))
		case 1: // rate limited
			w.Header().Set("Retry-After", "0")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"message":"injected rate limit"}`))
		case 2: // applied, then a 502
			h.ServeHTTP(httptest.NewRecorder(), r)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"message":"injected bad gateway"}`))
		case 3: // timeout: hold until the client gives up
			// Reading the body lets the server notice the client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			panic(http.ErrAbortHandler)
		default: // applied, response lost
			h.ServeHTTP(httptest.NewRecorder(), r)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
			panic(http.ErrAbortHandler)
		}
	})
}

type envOptions struct {
	faultRate        float64
	mentors          int
	candidates       int
	unconnected      int // the last candidates have no calendar
	syncTimeout      time.Duration
	requiredAttempts int
	// runTimeout and leaseTTL override the saga's (default 60s, 15s);
	// providerTimeout the provider clients' request timeout (300ms).
	runTimeout, leaseTTL, providerTimeout time.Duration
	// share reuses another env's simulators, provider clients and token
	// issuer: a second gateway instance in front of the same providers.
	share *bookingEnv
}

// bookingEnv is a running gateway (the httpapi server with the booking
// service, River workers and a real database) in front of the four provider
// simulators, each reachable through a fault injector.
type bookingEnv struct {
	url    string
	issuer *auth.DevIssuer
	svc    *booking.Service
	db     *store.Store

	zoomSim   *zoomtest.Server
	gcalSim   *gcaltest.Server
	caldavSim *caldavtest.Server
	jiraSim   *jiratest.Server
	faults    []*flaky

	// clean clients (no faults) for assertions
	zoomClean   *zoom.Client
	caldavClean map[string]*caldav.Client

	mentors, candidates []string

	meetings booking.Meetings
	issues   booking.Issues
	cals     booking.Calendars
}

func mentorEmail(id string) string { return id + "@example.com" }

const caldavPassword = "app-password"

func newBookingEnv(t *testing.T, s *store.Store, o envOptions) *bookingEnv {
	t.Helper()
	ctx := context.Background()
	if o.mentors == 0 {
		o.mentors = 2
	}
	if o.candidates == 0 {
		o.candidates = 3
	}
	if o.syncTimeout == 0 {
		o.syncTimeout = 10 * time.Second
	}
	en := &bookingEnv{db: s, caldavClean: map[string]*caldav.Client{}}
	if sh := o.share; sh != nil {
		en.issuer, en.zoomSim, en.gcalSim, en.caldavSim, en.jiraSim = sh.issuer, sh.zoomSim, sh.gcalSim, sh.caldavSim, sh.jiraSim
		en.faults, en.zoomClean, en.caldavClean, en.mentors, en.candidates = sh.faults, sh.zoomClean, sh.caldavClean, sh.mentors, sh.candidates
		en.meetings, en.issues, en.cals = sh.meetings, sh.issues, sh.cals
	} else {
		en.startProviders(t, o)
	}
	var (
		jobs *store.Jobs
		err  error
	)
	en.svc, err = booking.New(booking.Config{
		Store: s, Jobs: func() *store.Jobs { return jobs },
		Meetings: en.meetings, Issues: en.issues,
		Calendars: en.cals, PublicURL: "http://gateway.test", SyncTimeout: o.syncTimeout,
		RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, RequiredAttempts: o.requiredAttempts,
		RunTimeout: o.runTimeout, LeaseTTL: o.leaseTTL,
		DurableDelay: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, en.svc.Worker())
	jobs, err = store.NewJobs(s, store.JobsConfig{Workers: workers, Work: true, MaxWorkers: 20,
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = jobs.Stop(ctx)
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		en.svc.Close(ctx)
	})

	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: en.issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: en.issuer.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := httpapi.NewServer(httpapi.Deps{Authenticator: v, Bookings: httpapi.BookingDeps{Service: en.svc, Attendance: &webhooks.AttendanceLog{DB: s}},
		ErrorMappers: []httpapi.ErrorMapper{httpapi.BookingErrors}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(contract(t, e))
	t.Cleanup(srv.Close)
	en.url = srv.URL
	return en
}

// client returns a generated API client acting as sub with groups.
func (en *bookingEnv) client(t *testing.T, sub string, groups ...string) *client.ClientWithResponses {
	t.Helper()
	return en.clientFor(t, auth.TokenRequest{Subject: sub, Groups: groups})
}

// clientFor returns a generated API client sending a token minted for r.
func (en *bookingEnv) clientFor(t *testing.T, r auth.TokenRequest) *client.ClientWithResponses {
	t.Helper()
	tok, err := en.issuer.Mint(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewClientWithResponses(en.url, client.WithRequestEditorFn(func(ctx context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// token mints a token for sub with groups.
func (en *bookingEnv) token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	tok, err := en.issuer.Mint(auth.TokenRequest{Subject: sub, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a raw request (a JSON body when body is not empty) with token
// and header pairs, and returns the response and its body.
func (en *bookingEnv) do(t *testing.T, method, path, token, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return send(t, http.DefaultClient, method, en.url+path, token, body, hdr...)
}

// fieldsOf returns the fields a problem's errors name, in order.
func fieldsOf(p problem) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

// openSchedule gives every mentor a schedule open around the clock, with
// one-hour slots.
func (en *bookingEnv) openSchedule(t *testing.T) {
	t.Helper()
	en.openScheduleEvery(t, time.Hour)
}

// openScheduleEvery gives every mentor a schedule open around the clock
// whose sessions start every slot from midnight in Europe/Berlin.
func (en *bookingEnv) openScheduleEvery(t *testing.T, slot time.Duration) {
	t.Helper()
	admin := booking.Actor{ID: "root", Admin: true}
	for _, m := range en.mentors {
		var hs []booking.WorkingHours
		for d := time.Sunday; d <= time.Saturday; d++ {
			hs = append(hs, booking.WorkingHours{Weekday: d, StartMin: 0, EndMin: 1440})
		}
		if _, err := en.svc.PutSchedule(context.Background(), admin, booking.Schedule{MentorID: m, TimeZone: "Europe/Berlin",
			WorkingHours: hs, Slot: slot, MaxAdvance: 365 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
}

// settled reports whether a booking reached a resting state with every step settled.
func settled(b *client.Booking) bool {
	switch b.Status {
	case client.BookingStatusConfirmed, client.BookingStatusCancelled, client.BookingStatusFailed:
	default:
		return false
	}
	for _, s := range b.Steps {
		switch s.State {
		case client.StepStateDone, client.StepStateSkipped, client.StepStateCompensated:
		case client.StepStateFailed:
			if s.Name == client.StepNameZoom || s.Name == client.StepNameMentorCalendar {
				return false
			}
		default:
			return false
		}
		if b.Status == client.BookingStatusConfirmed && s.State == client.StepStateCompensated {
			return false
		}
	}
	return true
}

// bookingAt reads the booking a 424 answer's Location names; nil (and the
// test marked failed) when it cannot. Safe in goroutines.
func bookingAt(t *testing.T, c *client.ClientWithResponses, loc string) *client.Booking {
	b, err := systemtest.BookingAt(context.Background(), c, loc)
	if err != nil {
		t.Error(err)
	}
	return b
}

// waitSettled polls GET until the booking settles.
func waitSettled(t *testing.T, c *client.ClientWithResponses, id uuid.UUID, within time.Duration) client.Booking {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := c.GetBookingWithResponse(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.JSON200 == nil {
			t.Fatalf("GET booking: %d %s", r.StatusCode(), r.Body)
		}
		if settled(r.JSON200) {
			return *r.JSON200
		}
		if time.Now().After(deadline) {
			t.Fatalf("booking %s did not settle: %s", id, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startProviders starts the simulators (behind fault injectors) and builds
// the provider clients the booking service uses.
func (en *bookingEnv) startProviders(t *testing.T, o envOptions) {
	t.Helper()
	ctx := context.Background()
	var gusers []gcaltest.User
	for i := range o.mentors {
		id := fmt.Sprintf("mentor%d", i)
		en.mentors = append(en.mentors, id)
		gusers = append(gusers, gcaltest.User{Email: mentorEmail(id)})
	}
	dav := map[string]string{}
	for i := range o.candidates {
		id := fmt.Sprintf("cand%d", i)
		en.candidates = append(en.candidates, id)
		dav[id] = caldavPassword
	}
	en.zoomSim = zoomtest.New(zoomtest.Options{AccountID: "acct", ClientID: "zid", ClientSecret: "zsecret"})
	en.gcalSim = gcaltest.New(gcaltest.Options{Users: gusers})
	en.caldavSim = caldavtest.New(caldavtest.Options{Users: dav})
	en.jiraSim = jiratest.New(jiratest.Options{})

	serve := func(name string, h http.Handler, skip func(*http.Request) bool, seed uint64) (faulty, clean string) {
		f := newFlaky(o.faultRate, seed, skip)
		en.faults = append(en.faults, f)
		fs := httptest.NewServer(f.wrap(h))
		cs := httptest.NewServer(h)
		t.Cleanup(fs.Close)
		t.Cleanup(cs.Close)
		return fs.URL, cs.URL
	}
	zoomURL, zoomCleanURL := serve("zoom", en.zoomSim, func(r *http.Request) bool { return r.URL.Path == "/oauth/token" }, 1)
	gcalURL, _ := serve("gcal", en.gcalSim, func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/calendar/") }, 2)
	davURL, davCleanURL := serve("caldav", en.caldavSim, nil, 3)
	jiraURL, _ := serve("jira", en.jiraSim, nil, 4)

	oc := func(p string) outbound.Config {
		timeout := 300 * time.Millisecond
		if o.providerTimeout > 0 {
			timeout = o.providerTimeout
		}
		return outbound.Config{Provider: p, Timeout: timeout, ConnectTimeout: time.Second, MaxAttempts: 4,
			BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, BreakerFailures: 1 << 20, BreakerCooldown: time.Millisecond}
	}
	creds := func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: "acct", ClientID: "zid", ClientSecret: "zsecret"}, nil
	}
	zc := zoom.New(creds, zoom.WithHTTPClient(outbound.NewClient(oc(zoom.Provider))), zoom.WithBaseURL(zoomURL), zoom.WithOAuthURL(zoomURL))
	en.zoomClean = zoom.New(creds, zoom.WithBaseURL(zoomCleanURL), zoom.WithOAuthURL(zoomCleanURL))
	jc, err := jira.New(jiraURL, jira.BasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken), jira.WithOutboundConfig(oc(jira.Provider)))
	if err != nil {
		t.Fatal(err)
	}
	cals := providers.NewStaticCalendars()
	for _, m := range en.mentors {
		tok, err := en.gcalSim.IssueToken(gcaltest.DefaultClientID, mentorEmail(m))
		if err != nil {
			t.Fatal(err)
		}
		gc, err := gcal.New(ctx, oauth2.StaticTokenSource(tok), gcal.WithBaseURL(gcaltest.APIBase(gcalURL)),
			gcal.WithHTTPClient(outbound.NewClient(gcal.OutboundConfig(oc(gcal.Provider)))))
		if err != nil {
			t.Fatal(err)
		}
		cals.Set(m, gc)
	}
	for i, c := range en.candidates {
		if i >= len(en.candidates)-o.unconnected {
			continue
		}
		dc, err := caldav.New(davURL+caldavtest.CalendarPath(c, caldavtest.DefaultCalendar), c, caldavPassword,
			caldav.WithHTTPClient(outbound.NewClient(oc("caldav"))))
		if err != nil {
			t.Fatal(err)
		}
		cals.Set(c, dc)
		clean, err := caldav.New(davCleanURL+caldavtest.CalendarPath(c, caldavtest.DefaultCalendar), c, caldavPassword)
		if err != nil {
			t.Fatal(err)
		}
		en.caldavClean[c] = clean
	}

	en.meetings = providers.Zoom{Client: zc}
	en.issues = providers.Jira{Client: jc, ProjectKey: jiratest.DefaultProjectKey, IssueType: "Task"}
	en.cals = cals
	en.issuer, err = auth.LoadOrCreateDevIssuer(t.TempDir(), "http://gateway.test")
	if err != nil {
		t.Fatal(err)
	}
}
