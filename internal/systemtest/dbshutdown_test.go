package systemtest

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestShutdownHungDatabase sends SIGTERM while the database does not answer
// (a network partition, a frozen server) and a request waits on it: the
// process must still exit within GATEWAY_SHUTDOWN_TIMEOUT and the 8s
// margin the README asks under the orchestrator's kill timeout, not hang
// until the database answers (ECS would SIGKILL it), and the waiting
// request is cut rather than left hanging.
func TestShutdownHungDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	gw, proxy, tok := outageDeployment(t, ctx, "GATEWAY_SHUTDOWN_TIMEOUT=2s")
	// A connection idle for more than a second is pinged before use; let
	// the pool's connections get there.
	time.Sleep(1500 * time.Millisecond)
	proxy.Hang()
	defer proxy.Up()
	hung := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/v1/bookings", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			hung <- 0
			return
		}
		resp.Body.Close()
		hung <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	stopCtx, stopCancel := context.WithTimeout(ctx, 20*time.Second)
	defer stopCancel()
	if err := gw.Stop(stopCtx); err != nil {
		t.Fatalf("SIGTERM with the database hung: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	}
	// 2s for requests and jobs, then 8s at most (5s more for jobs, a little to close).
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the gateway took %s to exit after SIGTERM with the database hung, want at most 10s (GATEWAY_SHUTDOWN_TIMEOUT=2s + the 8s margin)", took.Round(time.Millisecond))
	}
	select {
	case <-hung:
	case <-time.After(5 * time.Second):
		t.Error("the request waiting on the hung database was not answered or cut when the process exited")
	}
}
