package logtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/spotlight/gateway/internal/logtest"
)

// Concurrent writers lose nothing, and String may be read meanwhile (run
// with -race).
func TestBufferConcurrentWrites(t *testing.T) {
	t.Parallel()
	var b logtest.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	if len(seen) != 800 || !seen["w7-99"] {
		t.Fatalf("%d distinct lines, want 800 (w7-99 %v)", len(seen), seen["w7-99"])
	}
}
