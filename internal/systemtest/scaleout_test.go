package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestScaleOut runs two gateway processes on one PostgreSQL schema and
// sends bookings to both: distinct slots alternate between them, contested
// slots go to both at once (one must win, the other gets 409), and some
// requests are sent to both with the same Idempotency-Key (both answer the
// same booking). Once drained, every step ran exactly once (one attempt per
// step, one Zoom create and one Jira create per booking) and the simulators
// hold no orphan and no duplicate.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	const (
		distinct  = 60
		contested = 10
		twice     = 6
		clients   = 8
	)
	mentors := []string{"so-m0", "so-m1", "so-m2", "so-m3"}
	var cands []string
	for i := range 8 {
		cands = append(cands, fmt.Sprintf("so-c%d", i))
	}
	d := newDeployment(t, dbURL, mentors, "GATEWAY_BOOKING_SYNC_TIMEOUT=5s")
	gwA := d.gateway(t, "gw-a")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	fx, err := Provision(ctx, gwA, d.up, Setup{Mentors: mentors, ConnectCalDAV: true, GoogleCandidates: cands})
	if err != nil {
		t.Fatal(err)
	}
	// Same data folder: the same dev signing key and local secret key, as
	// replicas share their configuration.
	gwB := d.gateway(t, "gw-b")
	clientB, err := gwB.Client(fx.AdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*client.ClientWithResponses{fx.Admin, clientB}
	d.up.SetLatency(5 * time.Millisecond)

	base := time.Now().UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	slot := func(i int) (string, time.Time) {
		return mentors[i%len(mentors)], base.Add(time.Duration(i/len(mentors)) * 30 * time.Minute)
	}
	type job struct {
		replica int
		req     Request
		group   string // "distinct", "contested:N", "twice:N"
	}
	var jobs []job
	for i := range distinct {
		m, at := slot(i)
		jobs = append(jobs, job{i % 2, NewRequest(m, cands[i%len(cands)], at, "scale-out"), "distinct"})
	}
	for k := range contested {
		m, at := slot(distinct + k)
		for r := range 2 {
			jobs = append(jobs, job{r, NewRequest(m, cands[(2*k+r)%len(cands)], at, "contested"), fmt.Sprintf("contested:%d", k)})
		}
	}
	for k := range twice {
		m, at := slot(distinct + contested + k)
		// Candidates the contested slots at the same time do not use: a
		// candidate cannot hold two sessions at once.
		req := NewRequest(m, cands[(k+4)%len(cands)], at, "same key twice")
		for r := range 2 {
			jobs = append(jobs, job{r, req, fmt.Sprintf("twice:%d", k)})
		}
	}
	outcomes := make([]Outcome, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, clients)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			outcomes[i], errs[i] = Book(ctx, replicas[j.replica], j.req)
		}()
	}
	wg.Wait()

	groups := map[string][]int{}
	for i, j := range jobs {
		if errs[i] != nil {
			t.Fatalf("request %d (%s): %v", i, j.group, errs[i])
		}
		groups[j.group] = append(groups[j.group], i)
	}
	created := map[string]bool{}
	ok := func(o Outcome) bool {
		return (o.Status == http.StatusCreated || o.Status == http.StatusAccepted) && o.Booking != nil
	}
	for g, idx := range groups {
		switch {
		case g == "distinct":
			for _, i := range idx {
				if !ok(outcomes[i]) {
					t.Errorf("distinct request %d to replica %d: %d %s, want 201 or 202", i, jobs[i].replica, outcomes[i].Status, outcomes[i].Body)
					continue
				}
				created[outcomes[i].Booking.Id.String()] = true
			}
		case strings.HasPrefix(g, "contested"):
			a, b := outcomes[idx[0]], outcomes[idx[1]]
			won, lost := a, b
			if !ok(a) {
				won, lost = b, a
			}
			if !ok(won) || lost.Status != http.StatusConflict {
				t.Errorf("%s: replicas answered %d and %d, want one 201/202 and one 409 (%s | %s)", g, a.Status, b.Status, a.Body, b.Body)
				continue
			}
			created[won.Booking.Id.String()] = true
		default: // same key on both replicas
			a, b := outcomes[idx[0]], outcomes[idx[1]]
			if !ok(a) || !ok(b) || a.Booking.Id != b.Booking.Id {
				t.Errorf("%s: replicas answered %d and %d, want the same booking from both (%s | %s)", g, a.Status, b.Status, a.Body, b.Body)
				continue
			}
			created[a.Booking.Id.String()] = true
		}
	}
	if t.Failed() {
		return
	}
	want := distinct + contested + twice
	if len(created) != want {
		t.Fatalf("%d bookings created, want %d", len(created), want)
	}
	ids := make([]string, 0, len(created))
	for id := range created {
		ids = append(ids, id)
	}
	final, err := Drain(ctx, fx.Admin, ids)
	if err != nil {
		t.Fatal(err)
	}
	all, err := ListAll(ctx, clientB)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != want {
		t.Errorf("replica B lists %d bookings, want %d", len(all), want)
	}
	var got []client.Booking
	for _, id := range ids {
		b := final[id]
		got = append(got, b)
		if b.Status != "confirmed" {
			t.Errorf("booking %s: %s, want confirmed (no faults were injected)", id, Describe(b))
		}
		for _, s := range b.Steps {
			if s.State != "skipped" && s.Attempts != 1 {
				t.Errorf("booking %s step %s ran %d times, want once: %s", id, s.Name, s.Attempts, Describe(b))
			}
		}
	}
	if n := d.up.Zoom.Requests(zoomtest.RouteCreateMeeting); n != want {
		t.Errorf("Zoom saw %d meeting creates, want %d (one per booking)", n, want)
	}
	if n := d.up.Jira.Requests("POST /rest/api/3/issue"); n != want {
		t.Errorf("Jira saw %d issue creates, want %d (one per booking)", n, want)
	}
	hosts := make([]string, len(mentors))
	for i, m := range mentors {
		hosts[i] = m + "@mentors.test"
	}
	rep, err := Audit(ctx, d.up, got, Scope{ZoomHosts: hosts, CalendarUsers: mentors, Jira: true, GoogleCandidates: cands})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("confirmed %d, failed %d; provider objects: %d meetings, %d issues, %d events", rep.Confirmed, rep.Failed, rep.Meetings, rep.Issues, rep.Events)
	for _, p := range rep.Problems {
		t.Error(p)
	}
}
