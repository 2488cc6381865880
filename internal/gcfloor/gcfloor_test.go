package gcfloor_test

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/gcfloor"
)

func TestPercent(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	tests := []struct {
		name        string
		live, floor uint64
		base, want  int
	}{
		{"goal above the floor already", 20 * mib, 32 * mib, 100, 100},
		{"goal at the floor", 16 * mib, 32 * mib, 100, 100},
		{"small heap", 10 * mib, 32 * mib, 100, 220},
		{"base above what the floor needs", 10 * mib, 32 * mib, 300, 300},
		{"tiny heap: capped", 1 * mib, 32 * mib, 100, 1000},
		{"nothing live yet", 0, 32 * mib, 100, 100},
		{"lower base kept as the least", 30 * mib, 32 * mib, 50, 50},
		{"lower base raised", 20 * mib, 32 * mib, 50, 60},
	}
	for _, tt := range tests {
		if got := gcfloor.Percent(tt.live, tt.floor, tt.base); got != tt.want {
			t.Errorf("%s: Percent(%d MiB, %d MiB, %d) = %d, want %d", tt.name, tt.live/mib, tt.floor/mib, tt.base, got, tt.want)
		}
	}
}

// gogc reads the GOGC in effect without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestStart raises GOGC after collections while the live heap is far below
// the floor, and stop puts back the GOGC it found. (Not parallel: GOGC is
// the process's.)
func TestStart(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	stop := gcfloor.Start(1 << 30) // far above this test's live heap
	deadline := time.Now().Add(10 * time.Second)
	for gogc() <= 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
	if got := gogc(); got != 1000 {
		t.Fatalf("GOGC with a 1 GiB floor = %d, want the cap 1000", got)
	}
	if limit := debug.SetMemoryLimit(-1); limit < 1<<30 || limit > 2<<30 {
		t.Fatalf("memory limit with a 1 GiB floor = %d MiB, want the floor and a little more", limit>>20)
	}
	stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after stop = %d, want 100", got)
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		t.Fatalf("memory limit after stop = %d, want none", limit)
	}
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after stop and a collection = %d, want 100", got)
	}
}

func TestStartDisabled(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	gcfloor.Start(0)()
	debug.SetGCPercent(-1)
	stop := gcfloor.Start(1 << 30) // GOGC=off: nothing to raise
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if got := debug.SetGCPercent(100); got != -1 {
		t.Fatalf("GOGC under off = %d, want -1", got)
	}
	stop()
}
