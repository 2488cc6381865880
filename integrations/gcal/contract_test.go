package gcal_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/calendar/calendartest"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// external acts as the user editing their Google calendar in the simulator.
type external struct{ sim *gcaltest.Server }

func (x external) AddForeign(_ context.Context, ev calendartest.ForeignEvent) (string, error) {
	e := gcaltest.ExternalEvent{ID: ev.ID, Summary: ev.Summary, Start: ev.Start, End: ev.End, TimeZone: ev.TimeZone}
	if ev.WeeklyCount > 1 {
		e.Recurrence = []string{fmt.Sprintf("RRULE:FREQ=WEEKLY;COUNT=%d", ev.WeeklyCount)}
	}
	return x.sim.PutEvent("primary", e)
}

func (x external) Move(_ context.Context, id string, start, end time.Time) error {
	return x.sim.MoveEvent("primary", id, start, end)
}

func (x external) Delete(_ context.Context, id string) error {
	return x.sim.DeleteEvent("primary", id)
}

func (x external) ExpireCursors(context.Context) error {
	x.sim.ExpireSyncTokens("primary")
	return nil
}

var _ calendartest.CursorExpirer = external{}

func TestContract(t *testing.T) {
	t.Parallel()
	calendartest.Run(t, func(t *testing.T) calendartest.Backend {
		e := newEnv(t, gcaltest.Options{})
		return calendartest.Backend{Calendar: e.client, External: external{e.sim}}
	})
}
