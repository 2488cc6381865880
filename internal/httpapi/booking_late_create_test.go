package httpapi_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestBookingLateProviderCreate: Zoom (or Jira) creates a booking's meeting
// (issue) only after the gateway stopped waiting for the create's answer (a
// slow provider, a loaded machine). The booking still ends with one meeting
// and one issue, each created once:
//   - the request timed out: the client looks for what it created until it
//     shows instead of creating another (what made TestBookingScaleOut see
//     49 creates and two meetings for a booking under heavy load);
//   - the saga's run was cut short (its timeout here; a lost lease or a
//     shutdown alike) while the create was in flight: the run keeps its
//     lease, and the durable job that takes it over once it expires looks
//     for what the cut run may have created before creating it.
func TestBookingLateProviderCreate(t *testing.T) {
	t.Parallel()
	dbs := map[string]func(testing.TB) *store.Store{"sqlite": storetest.SQLite}
	if os.Getenv(storetest.PostgresEnv) != "" {
		dbs["postgres"] = storetest.Postgres
	}
	timedOut := envOptions{mentors: 1, candidates: 1, syncTimeout: 3 * time.Second}
	cutShort := envOptions{mentors: 1, candidates: 1, syncTimeout: time.Second, runTimeout: time.Second,
		leaseTTL: 900 * time.Millisecond, providerTimeout: 5 * time.Second}
	tests := []struct {
		name  string
		opts  envOptions
		late  time.Duration // the create is applied this long after it arrived
		lands time.Duration // when the late create has surely landed
		jira  bool          // the Jira create is late, not Zoom's
	}{
		{name: "zoom request timed out", opts: timedOut, late: 600 * time.Millisecond, lands: time.Second},
		{name: "zoom run cut short", opts: cutShort, late: 3 * time.Second, lands: 3600 * time.Millisecond},
		{name: "jira request timed out", opts: timedOut, late: 600 * time.Millisecond, lands: time.Second, jira: true},
		{name: "jira run cut short", opts: cutShort, late: 3 * time.Second, lands: 3600 * time.Millisecond, jira: true},
	}
	for dbName, open := range dbs {
		for _, tt := range tests {
			t.Run(dbName+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				en := newBookingEnv(t, open(t), tt.opts)
				en.openSchedule(t)
				if tt.jira {
					en.jiraSim.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue", ApplyAfter: tt.late, Times: 1})
				} else {
					en.zoomSim.Inject(zoomtest.Fault{Kind: zoomtest.FaultHang, ApplyAfter: tt.late, Route: zoomtest.RouteCreateMeeting})
				}
				mentor, cand := en.mentors[0], en.candidates[0]
				began := time.Now()
				r, err := en.client(t, cand, "candidate").CreateBookingWithResponse(context.Background(),
					&client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
					client.CreateBookingRequest{MentorId: mentor, Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "UTC", Topic: "late"})
				if err != nil {
					t.Fatal(err)
				}
				var id uuid.UUID
				switch r.StatusCode() {
				case http.StatusCreated:
					id = r.JSON201.Id
				case http.StatusAccepted:
					id = r.JSON202.Id
				default:
					t.Fatalf("booking: %d %s", r.StatusCode(), r.Body)
				}
				bk := waitSettled(t, en.client(t, "root", "admin"), id, 30*time.Second)
				if bk.Status != client.BookingStatusConfirmed {
					t.Fatalf("booking ended %s", bk.Status)
				}
				time.Sleep(time.Until(began.Add(tt.lands)))
				if n := en.zoomSim.PendingFaults(); n != 0 {
					t.Fatalf("the zoom create fault was not reached (%d pending)", n)
				}
				if tt.jira && en.jiraSim.Requests("POST /rest/api/3/issue") == 0 {
					t.Fatal("no jira create")
				}
				ms := en.meetingsOf(t, mentor)[id.String()]
				if len(ms) != 1 {
					t.Errorf("zoom: %d meetings for the booking, want 1", len(ms))
				}
				if n := en.zoomSim.Requests(zoomtest.RouteCreateMeeting); n != 1 {
					t.Errorf("zoom: %d create requests, want 1", n)
				}
				if n := en.issuesByBooking()[id.String()]; n != 1 {
					t.Errorf("jira: %d issues for the booking, want 1", n)
				}
				if n := en.jiraSim.Requests("POST /rest/api/3/issue"); n != 1 {
					t.Errorf("jira: %d create requests, want 1", n)
				}
				for _, st := range bk.Steps {
					if st.Name == client.StepNameZoom && len(ms) == 1 && (st.ProviderRef == nil || *st.ProviderRef != strconv.FormatInt(ms[0].ID, 10)) {
						t.Errorf("zoom step records meeting %v, the meeting is %d", st.ProviderRef, ms[0].ID)
					}
				}
			})
		}
	}
}
