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

// TestAvailabilityAsksCalendarsOnlyForTheBookableRange: calendars are asked
// only for the part of the range between the minimum notice and the maximum
// advance (30 days in newSagaEnv); a range wholly outside it has no slots
// and costs no calendar call, even when the calendar would fail, and even
// at the end of year 9999.
func TestAvailabilityAsksCalendarsOnlyForTheBookableRange(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		en := newSagaEnv(t, s, true)
		now := time.Now().UTC()
		day := now.Truncate(24 * time.Hour)
		year9999 := time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC)
		for _, tc := range []struct {
			name     string
			from, to time.Time
			asked    bool
		}{
			{"past", day.AddDate(0, 0, -10), day.AddDate(0, 0, -9), false},
			{"ends now", day.AddDate(0, 0, -2), now, false},
			{"beyond the maximum advance", day.AddDate(0, 0, 31), day.AddDate(0, 0, 40), false},
			{"year 9999", year9999, year9999.AddDate(0, 0, 30).Add(-time.Second), false},
			{"from the past into the window", day.AddDate(0, 0, -5), day.AddDate(0, 0, 3), true},
			{"from the window beyond it", day.AddDate(0, 0, 28), day.AddDate(0, 0, 40), true},
		} {
			mentor := en.cals["mentor"]
			mentor.mu.Lock()
			mentor.freeBusy, mentor.busyErr = nil, errors.New("upstream 400")
			mentor.mu.Unlock()
			slots, _, err := en.svc.Availability(t.Context(), "mentor", AvailabilityQuery{From: tc.from, To: tc.to})
			mentor.mu.Lock()
			calls := mentor.freeBusy
			mentor.mu.Unlock()
			if !tc.asked {
				if err != nil || len(slots) != 0 || len(calls) != 0 {
					t.Errorf("%s: %d slots, %v, calendar asked for %v; want no slots, no error, no calendar call", tc.name, len(slots), err, calls)
				}
				continue
			}
			if !errors.Is(err, ErrCalendarUnavailable) || len(calls) != 1 {
				t.Fatalf("%s: %v, calendar asked for %v; want one call", tc.name, err, calls)
			}
			// Asked for the bookable part (with a day and the buffer around it), not the whole range.
			lo, hi := tc.from, tc.to
			if lo.Before(now) {
				lo = now
			}
			if limit := now.Add(30 * 24 * time.Hour); hi.After(limit) {
				hi = limit
			}
			if c := calls[0]; c.Start.Before(lo.Add(-25*time.Hour)) || c.End.After(hi.Add(25*time.Hour)) || !c.Start.Before(lo) || !c.End.After(hi) {
				t.Errorf("%s: calendar asked for [%s, %s), want about [%s, %s)", tc.name, c.Start, c.End, lo, hi)
			}
		}
	})
}
