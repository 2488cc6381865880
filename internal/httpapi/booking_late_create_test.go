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
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestBookingLateZoomCreate: Zoom creates a booking's meeting only after
// the gateway stopped waiting for the create's answer (a slow provider, a
// loaded machine). The booking still ends with one meeting and one create:
//   - the request timed out: the client looks for the meeting until it
//     shows instead of creating another (what made TestBookingScaleOut see
//     49 creates and two meetings for a booking under heavy load);
//   - the saga's run was cut short (its timeout here; a lost lease or a
//     shutdown alike) while the create was in flight: the run keeps its
//     lease, and the durable job that takes it over once it expires looks
//     for the meeting the cut run may have made before creating one.
func TestBookingLateZoomCreate(t *testing.T) {
	t.Parallel()
	dbs := map[string]func(testing.TB) *store.Store{"sqlite": storetest.SQLite}
	if os.Getenv(storetest.PostgresEnv) != "" {
		dbs["postgres"] = storetest.Postgres
	}
	tests := []struct {
		name  string
		opts  envOptions
		fault zoomtest.Fault
		lands time.Duration // when the late create has surely landed
	}{
		{
			name:  "request timed out",
			opts:  envOptions{mentors: 1, candidates: 1, syncTimeout: 3 * time.Second},
			fault: zoomtest.Fault{Kind: zoomtest.FaultHang, ApplyAfter: 600 * time.Millisecond, Route: zoomtest.RouteCreateMeeting},
			lands: time.Second,
		},
		{
			name: "run cut short",
			opts: envOptions{mentors: 1, candidates: 1, syncTimeout: time.Second, runTimeout: time.Second,
				leaseTTL: 900 * time.Millisecond, providerTimeout: 5 * time.Second},
			fault: zoomtest.Fault{Kind: zoomtest.FaultHang, ApplyAfter: 3 * time.Second, Route: zoomtest.RouteCreateMeeting},
			lands: 3600 * time.Millisecond,
		},
	}
	for dbName, open := range dbs {
		for _, tt := range tests {
			t.Run(dbName+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				en := newBookingEnv(t, open(t), tt.opts)
				en.openSchedule(t)
				en.zoomSim.Inject(tt.fault)
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
					t.Fatalf("the create fault was not reached (%d pending)", n)
				}
				if got := len(en.meetingsOf(t, mentor)[id.String()]); got != 1 {
					t.Errorf("zoom: %d meetings for the booking, want 1", got)
				}
				if n := en.zoomSim.Requests(zoomtest.RouteCreateMeeting); n != 1 {
					t.Errorf("zoom: %d create requests, want 1", n)
				}
				var ref string
				for _, st := range bk.Steps {
					if st.Name == client.StepNameZoom && st.ProviderRef != nil {
						ref = *st.ProviderRef
					}
				}
				if ms := en.meetingsOf(t, mentor)[id.String()]; len(ms) == 1 && ref != "" && ref != strconv.FormatInt(ms[0].ID, 10) {
					t.Errorf("zoom step records meeting %s, the meeting is %d", ref, ms[0].ID)
				}
			})
		}
	}
}
