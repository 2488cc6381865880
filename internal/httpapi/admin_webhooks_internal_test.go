package httpapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/webhooks"
)

// TestReplayBusyDetail: a refused replay says which kind of job holds the
// delivery and, unless it is running, when it runs.
func TestReplayBusyDetail(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 11, 25, 10, 0, 30, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"running", &webhooks.BusyError{State: rivertype.JobStateRunning, RunsAt: due}, []string{"processing this delivery now"}},
		{"hand-off", &webhooks.BusyError{State: rivertype.JobStateScheduled, RunsAt: due, Handoff: true},
			[]string{"gateway that received the delivery is processing it", "queued", "runs at 2026-11-25T09:00:30Z"}},
		{"available", fmt.Errorf("replay: %w", &webhooks.BusyError{State: rivertype.JobStateAvailable, RunsAt: due}),
			[]string{"already queued", "as soon as a worker is free", "2026-11-25T09:00:30Z"}},
		{"retryable", &webhooks.BusyError{State: rivertype.JobStateRetryable, RunsAt: due}, []string{"already queued", "runs at 2026-11-25T09:00:30Z"}},
		{"no job named", webhooks.ErrBusy, []string{"holds this delivery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := replayBusyDetail(tt.err)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("detail %q does not say %q", got, w)
				}
			}
			if tt.name == "running" && strings.Contains(got, "2026") {
				t.Errorf("detail %q names a time for a running job", got)
			}
		})
	}
}
