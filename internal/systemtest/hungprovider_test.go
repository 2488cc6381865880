package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/client"
)

// TestShutdownWithAHungProvider sends SIGTERM while a booking's saga waits
// on providers that do not answer and the booking request waits for the
// saga: the request is cut when GATEWAY_SHUTDOWN_TIMEOUT runs out, and so
// is the saga's run, which does not get a budget of its own after it (the
// process would then outlive the shutdown's budget and, with the default
// 20s, be ended by its watchdog with exit 1, the rest of the cleanup
// skipped). The booking itself is durable: its job runs again later.
func TestShutdownWithAHungProvider(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const budget = 4 * time.Second
	d := newDeployment(t, "", nil, "GATEWAY_SHUTDOWN_TIMEOUT="+budget.String(), "GATEWAY_BOOKING_SYNC_TIMEOUT=60s")
	gw := d.gateway(t, "gw")
	if _, err := Provision(ctx, gw, d.up, Setup{Mentors: []string{"hang-m"}}); err != nil {
		t.Fatal(err)
	}
	tok, err := gw.Token(ctx, "hang-c", "candidate")
	if err != nil {
		t.Fatal(err)
	}
	c, err := gw.Client(tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.up.SetLatency(time.Minute) // every provider call hangs
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		r := NewRequest("hang-m", "hang-c", time.Now().UTC().Truncate(time.Hour).Add(72*time.Hour), "hung")
		_, _ = c.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: r.Key}, r.Body)
	}()
	time.Sleep(time.Second) // the request waits, its saga on Zoom
	start := time.Now()
	stopCtx, stopCancel := context.WithTimeout(ctx, 30*time.Second)
	defer stopCancel()
	if err := gw.Stop(stopCtx); err != nil {
		t.Fatalf("SIGTERM with a provider hung: %v", err)
	}
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	// The budget, then a little to cancel and close: well under twice the budget.
	if took > budget+budget/2 {
		t.Errorf("the gateway took %s to exit after SIGTERM with a provider hung, want about GATEWAY_SHUTDOWN_TIMEOUT (%s)", took.Round(time.Millisecond), budget)
	}
	if log := gw.LogTail(200); strings.Contains(log, "shutdown did not finish in time") {
		t.Errorf("the watchdog ended the process:\n%s", log)
	}
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Error("the booking request was not answered or cut when the process exited")
	}
}
