package booking

import (
	"errors"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// The mentor's calendar answers for availability: its busy time removes
// slots; a failing calendar fails the query (ErrCalendarUnavailable); a
// calendar its owner deleted has no busy time and does not fail it.
func TestAvailabilityCalendars(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 2)
		q := AvailabilityQuery{From: day.Add(9 * time.Hour), To: day.Add(12 * time.Hour)}
		mentor := en.cals["mentor"]
		for _, tc := range []struct {
			name      string
			busy      []calendar.Busy
			busyErr   error
			wantSlots int
			wantErr   error
		}{
			{"free", nil, nil, 3, nil},
			{"busy 10-11", []calendar.Busy{{Start: day.Add(10 * time.Hour), End: day.Add(11 * time.Hour)}}, nil, 2, nil},
			{"calendar failing", nil, errors.New("upstream 503"), 0, ErrCalendarUnavailable},
			{"calendar deleted", nil, calendar.ErrCalendarNotFound, 3, nil},
		} {
			mentor.mu.Lock()
			mentor.busy, mentor.busyErr = tc.busy, tc.busyErr
			mentor.mu.Unlock()
			slots, _, err := en.svc.Availability(t.Context(), "mentor", q)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
				}
				continue
			}
			if err != nil || len(slots) != tc.wantSlots {
				t.Errorf("%s: %d slots (%v), %v; want %d", tc.name, len(slots), slots, err, tc.wantSlots)
			}
		}
	})
}
