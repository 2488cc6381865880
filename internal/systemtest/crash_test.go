package systemtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestCrashRecovery sends 100 bookings (paced over a few seconds, 20 ms of
// latency on every provider call so sagas are in flight, each request
// repeated with its Idempotency-Key while the gateway is away) to one
// gateway (SQLite; PostgreSQL in TestCrashRecoveryPostgres) and kills that gateway with SIGKILL at random moments
// — six times while requests are in flight and twice while the durable
// jobs run — restarting it each time on the same data folder. One mentor's
// calendar refuses writes, so a quarter of the bookings fail after their
// meeting (and maybe issue and candidate event) exist and must be
// compensated. Once the jobs drain, every booking is confirmed, or failed
// with everything undone, with every step settled; there is exactly one
// booking per request; and the simulators, listed through their own APIs,
// hold no orphan and no duplicate meeting, issue or calendar event
// (mentors' CalDAV calendars, candidates' Google calendars).
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	crashRecovery(t, "")
}

// TestCrashRecoveryPostgres is TestCrashRecovery on a PostgreSQL schema
// (skipped without GATEWAY_TEST_POSTGRES_URL).
func TestCrashRecoveryPostgres(t *testing.T) {
	t.Parallel()
	crashRecovery(t, storetest.PostgresURL(t))
}

// crashRecovery is the body of the crash tests; dbURL "" uses SQLite.
func crashRecovery(t *testing.T, dbURL string) {
	const (
		bookings = 100
		clients  = 10
		maxKills = 6
		// pace spreads the requests over ~6 s so that kills land mid-saga.
		pace = 60 * time.Millisecond
	)
	mentors := []string{"crash-m0", "crash-m1", "crash-m2", "crash-m3"}
	var candidates []string
	for i := range 10 {
		candidates = append(candidates, fmt.Sprintf("crash-c%d", i))
	}
	// Jobs left running by a killed process are retried after 25 s, not the 5 min default.
	d := newDeployment(t, dbURL, mentors, "GATEWAY_BOOKING_SYNC_TIMEOUT=2s", "GATEWAY_JOB_TIMEOUT=20s", "GATEWAY_JOB_RESCUE_AFTER=25s")
	// The last mentor's calendar refuses writes: a quarter of the bookings
	// fail at mentor_calendar and must be compensated.
	refusing := mentors[len(mentors)-1]
	d.up.RefuseCalDAVWrites(refusing)
	gw := d.gateway(t, "gw")
	// Normally done in ~25 s. A kill that lands while a durable job runs a
	// booking leaves that job `running` in River for an hour (see the
	// report in jobcrash_test.go); the booking sweep then recovers the
	// booking within about three minutes, hence the long deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Second)
	defer cancel()
	fx, err := Provision(ctx, gw, d.up, Setup{Mentors: mentors, ConnectCalDAV: true, GoogleCandidates: candidates})
	if err != nil {
		t.Fatal(err)
	}
	d.up.SetLatency(20 * time.Millisecond)
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 6))

	base := time.Now().UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	reqs := make([]Request, bookings)
	for i := range reqs {
		m := mentors[i%len(mentors)]
		reqs[i] = NewRequest(m, candidates[i%len(candidates)], base.Add(time.Duration(i/len(mentors))*30*time.Minute), fmt.Sprintf("crash %d", i))
	}

	outcomes := make([]Outcome, bookings)
	errs := make([]error, bookings)
	var (
		wg        sync.WaitGroup
		submitted = make(chan struct{})
		started   = make(chan int)
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range started {
				outcomes[i], errs[i] = Book(ctx, fx.Admin, reqs[i])
			}
		}()
	}
	go func() {
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for i := range bookings {
			started <- i
			<-tick.C
		}
		close(started)
		wg.Wait()
		close(submitted)
	}()

	// The killer: SIGKILL at a random moment, restart at once, up to
	// maxKills times while requests are being answered; then twice more
	// while the durable jobs run.
	kills, inFlight := 0, 0
	restart := func() {
		if err := gw.Start(ctx); err != nil {
			t.Fatalf("restart after kill %d: %v", kills, err)
		}
	}
	for kills < maxKills {
		select {
		case <-submitted:
		case <-time.After(time.Duration(300+rng.IntN(1200)) * time.Millisecond):
			inFlight++
		}
		if err := gw.Kill(); err != nil {
			t.Fatal(err)
		}
		kills++
		restart()
	}
	<-submitted
	for range 2 {
		time.Sleep(time.Duration(1000+rng.IntN(3000)) * time.Millisecond)
		if err := gw.Kill(); err != nil {
			t.Fatal(err)
		}
		kills++
		restart()
	}
	t.Logf("%v: %d kills, %d of them while booking requests were in flight", time.Since(began).Round(time.Millisecond), kills, inFlight)

	ids := map[string]int{}
	var list []string
	tries := 0
	for i, o := range outcomes {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		tries += o.Tries
		if (o.Status != http.StatusCreated && o.Status != http.StatusAccepted && o.Status != http.StatusFailedDependency) || o.Booking == nil {
			t.Errorf("request %d answered %d %s, want 201, 202 or 424 (failed)", i, o.Status, o.Body)
			continue
		}
		id := o.Booking.Id.String()
		if j, dup := ids[id]; dup {
			t.Errorf("requests %d and %d got the same booking %s", j, i, id)
		}
		ids[id] = i
		list = append(list, id)
	}
	t.Logf("%d requests answered after %d tries", bookings, tries)
	if t.Failed() {
		return
	}
	quick, qcancel := context.WithTimeout(ctx, 60*time.Second)
	final, err := Drain(quick, fx.Admin, list)
	qcancel()
	if err != nil {
		t.Logf("slow recovery (waiting for the booking sweep): %v", err)
		if final, err = Drain(ctx, fx.Admin, list); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%v: drained", time.Since(began).Round(time.Millisecond))
	all, err := ListAll(ctx, fx.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != bookings {
		t.Errorf("the gateway holds %d bookings, want %d (one per request)", len(all), bookings)
	}
	var got []client.Booking
	for _, id := range list {
		b := final[id]
		r := reqs[ids[id]].Body
		if b.MentorId != r.MentorId || !b.Start.Equal(r.Start) {
			t.Errorf("booking %s is %s at %v, want %s at %v", id, b.MentorId, b.Start, r.MentorId, r.Start)
		}
		got = append(got, b)
	}
	hosts := make([]string, len(mentors))
	for i, m := range mentors {
		hosts[i] = m + "@mentors.test"
	}
	rep, err := Audit(ctx, d.up, got, Scope{ZoomHosts: hosts, CalendarUsers: mentors, Jira: true, GoogleCandidates: candidates})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("confirmed %d, failed %d; provider objects: %d meetings, %d issues, %d events", rep.Confirmed, rep.Failed, rep.Meetings, rep.Issues, rep.Events)
	for _, b := range got {
		wantFail := b.MentorId == refusing
		if failed := b.Status == "failed"; failed != wantFail {
			t.Errorf("booking %s, want failed=%v (only %s's calendar refuses writes)", Describe(b), wantFail, refusing)
		}
		if wantFail && (b.FailureReason == nil || !strings.Contains(*b.FailureReason, "the mentor's calendar event could not be created")) {
			t.Errorf("failed booking %s: failure_reason should name the mentor's calendar event", Describe(b))
		}
		for _, st := range b.Steps {
			if wantFail && st.State != "compensated" && st.State != "skipped" {
				t.Errorf("failed booking %s: step %s is %s, want compensated", b.Id, st.Name, st.State)
			}
		}
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
}
