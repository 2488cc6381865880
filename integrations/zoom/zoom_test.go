package zoom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/outbound/outboundtest"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

const (
	testAccount = "acct-123"
	testClient  = "client-abc"
	testSecret  = "secret-xyz"
	testUser    = "host@example.com"
)

// fakeClock is the shared fake clock of outbound-based tests.
type fakeClock = outboundtest.Clock

type env struct {
	sim    *zoomtest.Server
	url    string
	clk    *fakeClock
	client *zoom.Client
}

func creds(ctx context.Context) (zoom.Credentials, error) {
	return zoom.Credentials{AccountID: testAccount, ClientID: testClient, ClientSecret: testSecret}, nil
}

// newEnv starts a simulator and a client sharing a fake clock; cfg tunes
// the outbound transport (its clock and Sleep are filled in).
func newEnv(t testing.TB, cfg outbound.Config, simOpts ...func(*zoomtest.Options)) *env {
	t.Helper()
	clk := outboundtest.NewClock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	o := zoomtest.Options{AccountID: testAccount, ClientID: testClient, ClientSecret: testSecret, Now: clk.Now}
	for _, f := range simOpts {
		f(&o)
	}
	sim := zoomtest.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); ts.Close() })
	cfg.Provider = zoom.Provider
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	cfg.Sleep = clk.Sleep
	c := zoom.New(creds, zoom.WithHTTPClient(outbound.NewClient(cfg)), zoom.WithBaseURL(ts.URL),
		zoom.WithOAuthURL(ts.URL), zoom.WithClock(clk.Now), zoom.WithCreateSettle(time.Second))
	return &env{sim: sim, url: ts.URL, clk: clk, client: c}
}

func (e *env) request(i int) zoom.MeetingRequest {
	return zoom.MeetingRequest{
		Topic:     fmt.Sprintf("Mentoring session %d", i),
		Agenda:    "Career planning",
		StartTime: e.clk.Now().Add(24*time.Hour + time.Duration(i)*time.Hour),
		Duration:  45 * time.Minute,
		Timezone:  "Europe/Berlin",
		Settings:  zoom.MeetingSettings{WaitingRoom: true, AutoRecording: zoom.AutoRecordingCloud},
	}
}

func asOutbound(t *testing.T, err error) *outbound.Error {
	t.Helper()
	var oe *outbound.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v does not contain an *outbound.Error", err)
	}
	return oe
}

func TestMeetingRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	ctx := t.Context()
	req := e.request(1)
	m, err := e.client.CreateMeeting(ctx, testUser, "bk-1", req)
	if err != nil {
		t.Fatalf("CreateMeeting: %v", err)
	}
	if m.ID == 0 || m.UUID == "" || m.JoinURL == "" || m.StartURL == "" || m.HostID != testUser {
		t.Errorf("created meeting lacks fields: %+v", m)
	}
	want := zoom.Meeting{
		ID: m.ID, UUID: m.UUID, HostID: testUser, Topic: req.Topic, Type: 2, Status: "waiting",
		StartTime: req.StartTime, Duration: 45 * time.Minute, Timezone: "Europe/Berlin",
		Agenda: "Career planning", BookingID: "bk-1", JoinURL: m.JoinURL, StartURL: m.StartURL,
		Password: m.Password, CreatedAt: e.clk.Now(),
		Settings: zoom.MeetingSettings{WaitingRoom: true, AutoRecording: zoom.AutoRecordingCloud},
	}
	if diff := cmp.Diff(want, *m); diff != "" {
		t.Errorf("created meeting (-want +got):\n%s", diff)
	}
	got, err := e.client.GetMeeting(ctx, m.ID)
	if err != nil {
		t.Fatalf("GetMeeting: %v", err)
	}
	if diff := cmp.Diff(*m, *got); diff != "" {
		t.Errorf("get differs from create (-create +get):\n%s", diff)
	}

	topic, agenda := "Rescheduled session", "New agenda"
	start := req.StartTime.Add(2 * time.Hour)
	dur := 30 * time.Minute
	if err := e.client.UpdateMeeting(ctx, m.ID, zoom.MeetingUpdate{
		Topic: &topic, Agenda: &agenda, StartTime: &start, Duration: &dur,
		Settings: &zoom.MeetingSettings{JoinBeforeHost: true, AutoRecording: zoom.AutoRecordingNone},
	}); err != nil {
		t.Fatalf("UpdateMeeting: %v", err)
	}
	got, err = e.client.GetMeeting(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != topic || got.Agenda != agenda || !got.StartTime.Equal(start) || got.Duration != dur ||
		got.BookingID != "bk-1" || got.Settings != (zoom.MeetingSettings{JoinBeforeHost: true, AutoRecording: zoom.AutoRecordingNone}) {
		t.Errorf("after update: %+v", got)
	}

	list, err := e.client.ListUpcomingMeetings(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != m.ID || list[0].BookingID != "bk-1" {
		t.Errorf("list = %+v, want the one meeting", list)
	}
	found, err := e.client.FindMeeting(ctx, testUser, "bk-1")
	if err != nil || found.ID != m.ID || found.StartURL == "" {
		t.Errorf("FindMeeting = %+v, %v", found, err)
	}
	if _, err := e.client.FindMeeting(ctx, testUser, "bk-other"); !errors.Is(err, zoom.ErrMeetingNotFound) {
		t.Errorf("FindMeeting(other) err = %v, want ErrMeetingNotFound", err)
	}

	if err := e.client.DeleteMeeting(ctx, m.ID); err != nil {
		t.Fatalf("DeleteMeeting: %v", err)
	}
	_, err = e.client.GetMeeting(ctx, m.ID)
	if !errors.Is(err, zoom.ErrMeetingNotFound) {
		t.Fatalf("get after delete: %v, want ErrMeetingNotFound", err)
	}
	if oe := asOutbound(t, err); oe.Transient() || oe.Status != 404 || oe.Code != "3001" {
		t.Errorf("get after delete: %+v, want permanent 404 code 3001", oe)
	}
	if err := e.client.DeleteMeeting(ctx, m.ID); !errors.Is(err, zoom.ErrMeetingNotFound) {
		t.Errorf("second delete: %v, want ErrMeetingNotFound", err)
	}
	if n := e.sim.MeetingCount(testUser); n != 0 {
		t.Errorf("meetings left = %d", n)
	}
}

// TestCreateMeetingUncertain: a caller that gave up on a create (its
// context ended, as a saga run's does when its lease is lost) leaves a
// meeting Zoom creates only later. The next create for the booking, told
// that an earlier one may still land, finds that meeting instead of
// creating a second; one not told creates a second, as before.
func TestCreateMeetingUncertain(t *testing.T) {
	t.Parallel()
	for _, uncertain := range []bool{true, false} {
		t.Run(fmt.Sprintf("uncertain=%v", uncertain), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, outbound.Config{Timeout: 5 * time.Second})
			e.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultHang, ApplyAfter: 500 * time.Millisecond, Route: zoomtest.RouteCreateMeeting})
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			began := time.Now()
			if _, err := e.client.CreateMeeting(ctx, testUser, "bk-late", e.request(1)); err == nil {
				t.Fatal("first create: succeeded, want the caller's deadline")
			}
			req := e.request(1)
			req.Uncertain = uncertain
			m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-late", req)
			if err != nil {
				t.Fatalf("second create: %v", err)
			}
			time.Sleep(time.Until(began.Add(700 * time.Millisecond)))
			want := 1
			if !uncertain {
				want = 2
			}
			if got := e.sim.MeetingCount(testUser); got != want {
				t.Errorf("meetings = %d, want %d", got, want)
			}
			if uncertain {
				if got := e.sim.Requests(zoomtest.RouteCreateMeeting); got != 1 {
					t.Errorf("create requests = %d, want 1", got)
				}
				if m.BookingID != "bk-late" {
					t.Errorf("meeting booking = %q", m.BookingID)
				}
			}
		})
	}
}

func TestCreateMeetingDuplicateSafe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		faults      []zoomtest.Fault
		wantErr     error // nil: success
		wantClass   outbound.Class
		wantCreates int // POSTs that reached the simulator
		wantCount   int // meetings existing afterwards
		// lands is how long after the call a late-applied request has
		// taken effect, before the meetings are counted.
		lands time.Duration
	}{
		{name: "no fault", wantCreates: 1, wantCount: 1},
		{
			name:        "applied but response lost",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultLoseResponse, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 1, wantCount: 1,
		},
		{
			name:        "5xx after applying",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultStatus, Status: 500, Apply: true, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 1, wantCount: 1,
		},
		{
			name:        "hang after applying, client times out",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultHang, Apply: true, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 1, wantCount: 1,
		},
		{
			// The client times out at 300ms; the simulator creates the
			// meeting at 600ms, after the client's first lookup.
			name:        "applied after the client gave up",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultHang, ApplyAfter: 600 * time.Millisecond, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 1, wantCount: 1, lands: 700 * time.Millisecond,
		},
		{
			name:        "503 before applying is created on the next round",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultStatus, Status: 503, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 2, wantCount: 1,
		},
		{
			name:        "lost twice then created",
			faults:      []zoomtest.Fault{{Kind: zoomtest.FaultStatus, Status: 502, Count: 2, Route: zoomtest.RouteCreateMeeting}},
			wantCreates: 3, wantCount: 1,
		},
		{
			name:    "ambiguous failures exhausted surface transient",
			faults:  []zoomtest.Fault{{Kind: zoomtest.FaultStatus, Status: 503, Count: 10, Route: zoomtest.RouteCreateMeeting}},
			wantErr: errTransient, wantClass: outbound.Transient, wantCreates: 3, wantCount: 0,
		},
		{
			name:    "429 is not ambiguous and not retried",
			faults:  []zoomtest.Fault{{Kind: zoomtest.FaultRateLimit, RetryAfter: 2 * time.Second, Route: zoomtest.RouteCreateMeeting}},
			wantErr: zoom.ErrRateLimited, wantClass: outbound.Transient, wantCreates: 1, wantCount: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, outbound.Config{Timeout: 300 * time.Millisecond})
			for _, f := range tt.faults {
				e.sim.Inject(f)
			}
			began := time.Now()
			m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-dup", e.request(1))
			time.Sleep(time.Until(began.Add(tt.lands)))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("CreateMeeting: %v", err)
			case tt.wantErr == errTransient:
				if oe := asOutbound(t, err); oe.Class != tt.wantClass {
					t.Errorf("class = %v, want %v (%v)", oe.Class, tt.wantClass, err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if oe := asOutbound(t, err); oe.Class != tt.wantClass {
					t.Errorf("class = %v, want %v", oe.Class, tt.wantClass)
				}
			default:
				if m.BookingID != "bk-dup" {
					t.Errorf("meeting booking = %q", m.BookingID)
				}
			}
			if got := e.sim.Requests(zoomtest.RouteCreateMeeting); got != tt.wantCreates {
				t.Errorf("create requests = %d, want %d", got, tt.wantCreates)
			}
			if got := e.sim.MeetingCount(testUser); got != tt.wantCount {
				t.Errorf("meetings = %d, want %d", got, tt.wantCount)
			}
			// Creating again for the same booking never adds a meeting.
			if tt.wantErr == nil {
				again, err := e.client.CreateMeeting(t.Context(), testUser, "bk-dup", e.request(1))
				if err != nil || again.ID != m.ID {
					t.Errorf("second create = %+v, %v; want meeting %d", again, err, m.ID)
				}
				if got := e.sim.MeetingCount(testUser); got != 1 {
					t.Errorf("meetings after second create = %d, want 1", got)
				}
			}
		})
	}
}

// errTransient marks table rows that expect a transient *outbound.Error
// without a more specific cause.
var errTransient = errors.New("any transient")

func TestCreateMeetingRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	req := e.request(1)
	req.Timezone = "Mars/Olympus_Mons"
	_, err := e.client.CreateMeeting(t.Context(), testUser, "bk-1", req)
	oe := asOutbound(t, err)
	if oe.Transient() || oe.Status != 400 || oe.Code != "300" {
		t.Errorf("err = %+v, want permanent 400 code 300", oe)
	}
	if got := e.sim.Requests(zoomtest.RouteCreateMeeting); got != 1 {
		t.Errorf("create requests = %d, want 1 (4xx is not retried)", got)
	}
	if _, err := e.client.CreateMeeting(t.Context(), testUser, "bad id", req); !errors.Is(err, zoom.ErrInvalidBookingID) {
		t.Errorf("booking id with a space: %v, want ErrInvalidBookingID", err)
	}
}

func TestTransportBehaviourAgainstSimulator(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        outbound.Config
		fault      zoomtest.Fault
		wantErr    bool
		wantStatus int
		wantGets   int
		wantSleeps []time.Duration // nil: not checked
	}{
		{
			name:       "429 with Retry-After waited out",
			fault:      zoomtest.Fault{Kind: zoomtest.FaultRateLimit, RetryAfter: 3 * time.Second, Route: zoomtest.RouteGetMeeting},
			wantGets:   2,
			wantSleeps: []time.Duration{3 * time.Second},
		},
		{
			name:       "503 Retry-After waited out",
			fault:      zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 503, RetryAfter: 2 * time.Second, Count: 2, Route: zoomtest.RouteGetMeeting},
			wantGets:   3,
			wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second},
		},
		{
			name:    "5xx retried then surfaced as transient",
			fault:   zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 502, Count: 100, Route: zoomtest.RouteGetMeeting},
			wantErr: true, wantStatus: 502, wantGets: 4,
		},
		{
			name:    "hang times out per attempt",
			cfg:     outbound.Config{Timeout: 100 * time.Millisecond, MaxAttempts: 2},
			fault:   zoomtest.Fault{Kind: zoomtest.FaultHang, Count: 2, Route: zoomtest.RouteGetMeeting},
			wantErr: true, wantStatus: 0, wantGets: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.BreakerFailures = -1
			e := newEnv(t, tt.cfg)
			m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-1", e.request(1))
			if err != nil {
				t.Fatal(err)
			}
			e.sim.Inject(tt.fault)
			before := e.sim.Requests(zoomtest.RouteGetMeeting)
			sleepsBefore := len(e.clk.Sleeps())
			got, err := e.client.GetMeeting(t.Context(), m.ID)
			if gets := e.sim.Requests(zoomtest.RouteGetMeeting) - before; gets != tt.wantGets {
				t.Errorf("GET requests = %d, want %d", gets, tt.wantGets)
			}
			if tt.wantSleeps != nil {
				if diff := cmp.Diff(tt.wantSleeps, e.clk.Sleeps()[sleepsBefore:]); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
			}
			if !tt.wantErr {
				if err != nil || got.ID != m.ID {
					t.Fatalf("GetMeeting = %+v, %v", got, err)
				}
				return
			}
			oe := asOutbound(t, err)
			if !oe.Transient() || oe.Status != tt.wantStatus {
				t.Errorf("err = %+v, want transient status %d", oe, tt.wantStatus)
			}
			if tt.wantStatus == 0 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hang: err = %v, want deadline exceeded", err)
			}
		})
	}
}

func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{MaxAttempts: 1, BreakerFailures: 3, BreakerCooldown: time.Minute})
	m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-1", e.request(1))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultStatus, Status: 500, Count: 3})
	for i := range 3 {
		if _, err := e.client.GetMeeting(t.Context(), m.ID); asOutbound(t, err).Status != 500 {
			t.Fatalf("call %d: %v, want 500", i, err)
		}
	}
	before := e.sim.Requests(zoomtest.RouteGetMeeting)
	_, err = e.client.GetMeeting(t.Context(), m.ID)
	if !errors.Is(err, outbound.ErrCircuitOpen) || !asOutbound(t, err).Transient() {
		t.Fatalf("err = %v, want transient ErrCircuitOpen", err)
	}
	if e.sim.Requests(zoomtest.RouteGetMeeting) != before {
		t.Error("open circuit let a request through")
	}
	// A create while open fails fast and creates nothing.
	if _, err := e.client.CreateMeeting(t.Context(), testUser, "bk-2", e.request(2)); !errors.Is(err, outbound.ErrCircuitOpen) {
		t.Errorf("create while open: %v, want ErrCircuitOpen", err)
	}
	e.clk.Advance(time.Minute)
	if got, err := e.client.GetMeeting(t.Context(), m.ID); err != nil || got.ID != m.ID {
		t.Fatalf("after cooldown: %v", err)
	}
	if _, err := e.client.CreateMeeting(t.Context(), testUser, "bk-2", e.request(2)); err != nil {
		t.Errorf("create after recovery: %v", err)
	}
	if n := e.sim.MeetingCount(testUser); n != 2 {
		t.Errorf("meetings = %d, want 2", n)
	}
}

func TestInvalidTokenRefetchedOnce(t *testing.T) {
	t.Parallel()
	t.Run("revoked token replaced", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, outbound.Config{})
		m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-1", e.request(1))
		if err != nil {
			t.Fatal(err)
		}
		if n := e.sim.TokensIssued(); n != 1 {
			t.Fatalf("tokens issued = %d, want 1", n)
		}
		e.sim.RevokeTokens()
		if _, err := e.client.GetMeeting(t.Context(), m.ID); err != nil {
			t.Fatalf("GetMeeting after revocation: %v", err)
		}
		if n := e.sim.TokensIssued(); n != 2 {
			t.Errorf("tokens issued = %d, want 2", n)
		}
	})
	t.Run("persistent 124 surfaces ErrUnauthorized after one refetch", func(t *testing.T) {
		t.Parallel()
		// Tokens that are expired on arrival: every API call answers 124.
		e := newEnv(t, outbound.Config{}, func(o *zoomtest.Options) {
			o.TokenTTL = time.Nanosecond
			o.Now = time.Now // a running clock, so the nanosecond passes
		})
		_, err := e.client.GetMeeting(t.Context(), 123)
		if !errors.Is(err, zoom.ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
		if oe := asOutbound(t, err); oe.Code != "124" || oe.Status != 401 || oe.Transient() {
			t.Errorf("err = %+v, want permanent 401 code 124", oe)
		}
		if n := e.sim.TokensIssued(); n != 2 {
			t.Errorf("tokens issued = %d, want 2 (one refetch)", n)
		}
		if n := e.sim.Requests(zoomtest.RouteGetMeeting); n != 2 {
			t.Errorf("GET requests = %d, want 2", n)
		}
	})
}

func TestTokenSource(t *testing.T) {
	t.Parallel()
	t.Run("single flight", func(t *testing.T) {
		t.Parallel()
		clk := outboundtest.NewClock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
		sim := zoomtest.New(zoomtest.Options{AccountID: testAccount, ClientID: testClient, ClientSecret: testSecret, Now: clk.Now})
		// Hold token requests until every caller has started, so they overlap.
		release := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			sim.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		src := zoom.NewTokenSource(creds, outbound.NewClient(outbound.Config{Provider: zoom.Provider}),
			zoom.WithTokenURL(ts.URL+"/oauth/token"), zoom.WithTokenClock(clk.Now))
		const callers = 50
		var started, done sync.WaitGroup
		toks := make([]string, callers)
		errs := make([]error, callers)
		for i := range callers {
			started.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				started.Done()
				toks[i], errs[i] = src.Token(t.Context())
			}()
		}
		started.Wait()
		time.Sleep(20 * time.Millisecond) // let callers reach the flight; not a timing assertion
		close(release)
		done.Wait()
		for i := range callers {
			if errs[i] != nil || toks[i] == "" || toks[i] != toks[0] {
				t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
			}
		}
		if n := sim.TokensIssued(); n != 1 {
			t.Errorf("tokens issued = %d, want exactly 1", n)
		}
		// Cached until shortly before expiry (1h token, 5 min margin).
		clk.Advance(54 * time.Minute)
		if tok, _ := src.Token(t.Context()); tok != toks[0] || sim.TokensIssued() != 1 {
			t.Errorf("token refetched 54 min in")
		}
		clk.Advance(2 * time.Minute)
		if tok, err := src.Token(t.Context()); err != nil || tok == toks[0] || sim.TokensIssued() != 2 {
			t.Errorf("token not replaced 56 min in: %v, issued %d", err, sim.TokensIssued())
		}
	})
	t.Run("invalid credentials", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			creds zoom.Credentials
			code  string
		}{
			{"wrong secret", zoom.Credentials{AccountID: testAccount, ClientID: testClient, ClientSecret: "nope"}, "invalid_client"},
			{"wrong client id", zoom.Credentials{AccountID: testAccount, ClientID: "other", ClientSecret: testSecret}, "invalid_client"},
			{"wrong account", zoom.Credentials{AccountID: "acct-9", ClientID: testClient, ClientSecret: testSecret}, "invalid_request"},
		}
		for _, tt := range tests {
			sim := zoomtest.New(zoomtest.Options{AccountID: testAccount, ClientID: testClient, ClientSecret: testSecret})
			ts := httptest.NewServer(sim)
			defer ts.Close()
			c := zoom.New(func(context.Context) (zoom.Credentials, error) { return tt.creds, nil },
				zoom.WithBaseURL(ts.URL), zoom.WithOAuthURL(ts.URL))
			_, err := c.GetMeeting(t.Context(), 1)
			if !errors.Is(err, zoom.ErrInvalidCredentials) {
				t.Fatalf("%s: err = %v, want ErrInvalidCredentials", tt.name, err)
			}
			if oe := asOutbound(t, err); oe.Transient() || oe.Code != tt.code {
				t.Errorf("%s: %+v, want permanent %s", tt.name, oe, tt.code)
			}
			if n := sim.Requests(zoomtest.RouteGetMeeting); n != 0 {
				t.Errorf("%s: API called %d times without a token", tt.name, n)
			}
		}
	})
	t.Run("credentials error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("secret store down")
		src := zoom.NewTokenSource(func(context.Context) (zoom.Credentials, error) { return zoom.Credentials{}, boom }, nil,
			zoom.WithTokenURL("http://127.0.0.1:1/oauth/token"))
		if _, err := src.Token(t.Context()); !errors.Is(err, boom) {
			t.Errorf("err = %v, want the credentials error", err)
		}
	})
}

func TestListUpcomingMeetingsPaginates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	// Create meetings straight through the API (one token) to stay fast.
	tok, err := e.client.Tokens().Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const n = 305
	for i := range n {
		body, _ := json.Marshal(map[string]any{
			"topic": fmt.Sprintf("m%d", i), "type": 2, "duration": 30, "timezone": "UTC",
			"start_time": e.clk.Now().Add(time.Duration(i+1) * time.Hour).UTC().Format("2006-01-02T15:04:05Z"),
			"agenda":     fmt.Sprintf("x\nspotlight-booking:b%d", i),
		})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/v2/users/"+testUser+"/meetings", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create %d: HTTP %d", i, resp.StatusCode)
		}
	}
	// One meeting already over: not upcoming.
	e.clk.Advance(90 * time.Minute)
	list, err := e.client.ListUpcomingMeetings(t.Context(), testUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n-1 {
		t.Fatalf("listed %d meetings, want %d", len(list), n-1)
	}
	seen := map[string]bool{}
	for _, m := range list {
		seen[m.BookingID] = true
	}
	if len(seen) != n-1 || seen["b0"] {
		t.Errorf("bookings listed = %d (b0 listed: %v)", len(seen), seen["b0"])
	}
	if got := e.sim.Requests(zoomtest.RouteListMeetings); got != 2 {
		t.Errorf("list requests = %d, want 2 pages", got)
	}
	if m, err := e.client.FindMeeting(t.Context(), testUser, "b300"); err != nil || m.Topic != "m300" {
		t.Errorf("FindMeeting on page 2 = %+v, %v", m, err)
	}
}

func TestConcurrentCreatesForDistinctBookings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := e.client.CreateMeeting(t.Context(), testUser, fmt.Sprintf("bk-%d", i), e.request(i)); err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := e.sim.MeetingCount(testUser); n != 20 {
		t.Errorf("meetings = %d, want 20", n)
	}
	if n := e.sim.TokensIssued(); n != 1 {
		t.Errorf("tokens issued = %d, want 1", n)
	}
}

func TestConcurrentCreatesForOneBooking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	ids := make([]int64, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			m, err := e.client.CreateMeeting(t.Context(), testUser, "bk-same", e.request(1))
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			ids[i] = m.ID
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("caller %d got meeting %d, caller 0 got %d", i, id, ids[0])
		}
	}
	if n := e.sim.MeetingCount(testUser); n != 1 {
		t.Errorf("meetings = %d, want 1", n)
	}
}

// BenchmarkCreateMeeting measures the client's overhead per duplicate-safe
// create (lookup + create) against the zero-latency simulator.
func BenchmarkCreateMeeting(b *testing.B) {
	e := newEnv(b, outbound.Config{})
	ctx := context.Background()
	req := e.request(1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A fresh user per iteration keeps the lookup list short.
		if _, err := e.client.CreateMeeting(ctx, fmt.Sprintf("user%d@example.com", i), "bk", req); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetMeeting measures one authenticated GET round trip.
func BenchmarkGetMeeting(b *testing.B) {
	e := newEnv(b, outbound.Config{})
	ctx := context.Background()
	m, err := e.client.CreateMeeting(ctx, testUser, "bk", e.request(1))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.client.GetMeeting(ctx, m.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAgendaQuotingAnotherMarker: a candidate pastes the agenda of their
// previous session (as Zoom's invitation shows it, marker line included)
// into the notes of a follow-up booking. The new meeting belongs to the new
// booking only: the lookup of the new booking finds it (a lost create
// answer does not make a second meeting), and the lookup of the previous
// booking does not (cleaning up after the previous booking leaves it alone).
func TestAgendaQuotingAnotherMarker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	ctx := t.Context()
	prev, err := e.client.CreateMeeting(ctx, testUser, "b-prev", e.request(1))
	if err != nil {
		t.Fatal(err)
	}
	req := e.request(2)
	req.Agenda = "Follow-up of:\nCareer planning\n" + zoom.BookingMarkerPrefix + "b-prev"
	e.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultLoseResponse, Route: zoomtest.RouteCreateMeeting})
	next, err := e.client.CreateMeeting(ctx, testUser, "b-next", req)
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == prev.ID || next.BookingID != "b-next" {
		t.Fatalf("create for b-next answered meeting %d of booking %q; previous meeting %d", next.ID, next.BookingID, prev.ID)
	}
	if n := e.sim.MeetingCount(testUser); n != 2 {
		t.Errorf("%d meetings, want 2 (one per booking)", n)
	}
	if err := e.client.DeleteMeeting(ctx, prev.ID); err != nil {
		t.Fatal(err)
	}
	if m, err := e.client.FindMeeting(ctx, testUser, "b-prev"); !errors.Is(err, zoom.ErrMeetingNotFound) {
		t.Errorf("FindMeeting(b-prev) after its meeting was deleted = meeting %+v, %v; want ErrMeetingNotFound", m, err)
	}
}

// TestLongAgendaFoundInList: List meetings shows only the first 250
// characters of an agenda (Zoom's documented cut, which the simulator
// makes). A booking whose notes are longer is still found by its marker:
// a create whose answer was lost is not repeated, the meeting is found for
// the booking, and its agenda reads back whole without the marker.
func TestLongAgendaFoundInList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, outbound.Config{})
	ctx := t.Context()
	req := e.request(1)
	req.Agenda = strings.Repeat("Please look at my system design notes. ", 60)[:1900]
	e.sim.Inject(zoomtest.Fault{Kind: zoomtest.FaultLoseResponse, Route: zoomtest.RouteCreateMeeting})
	m, err := e.client.CreateMeeting(ctx, testUser, "bk-long", req)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.sim.MeetingCount(testUser); n != 1 {
		t.Errorf("%d meetings after a lost create answer, want 1", n)
	}
	found, err := e.client.FindMeeting(ctx, testUser, "bk-long")
	if err != nil {
		t.Fatalf("FindMeeting: %v", err)
	}
	if found.ID != m.ID || found.BookingID != "bk-long" || found.Agenda != req.Agenda {
		t.Errorf("FindMeeting = meeting %d of booking %q, agenda of %d characters; want meeting %d of bk-long with the agenda whole",
			found.ID, found.BookingID, len(found.Agenda), m.ID)
	}
	// A marker line longer than the list shows could never be found.
	long := strings.Repeat("b", 250-len(zoom.BookingMarkerPrefix)+1)
	if _, err := e.client.CreateMeeting(ctx, testUser, long, req); !errors.Is(err, zoom.ErrInvalidBookingID) {
		t.Errorf("create for a %d-character booking id: %v, want ErrInvalidBookingID", len(long), err)
	}
}
