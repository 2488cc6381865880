package gcfloor_test

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
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

// raised runs collections until GOGC is 1000 (the cap) or 10 s passed,
// and reports whether it got there.
func raised() bool {
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != 1000 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
	return gogc() == 1000
}

// TestStart raises GOGC after collections while the live heap is far below
// the floor, and stop puts back the GOGC it found. One floor at a time: a
// second Start while one runs does nothing. (Not parallel: GOGC is the
// process's.)
func TestStart(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	stop := gcfloor.Start(1 << 30) // far above this test's live heap
	if !raised() {
		t.Fatalf("GOGC with a 1 GiB floor = %d, want the cap 1000", gogc())
	}
	if limit := debug.SetMemoryLimit(-1); limit < 1<<30 || limit > 2<<30 {
		t.Fatalf("memory limit with a 1 GiB floor = %d MiB, want the floor and a little more", limit>>20)
	}
	second := gcfloor.Start(1 << 30)
	stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after stop = %d, want 100", got)
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		t.Fatalf("memory limit after stop = %d, want none", limit)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after stop and collections = %d, want 100 (a second Start must not have started a floor)", got)
	}
	second()
	third := gcfloor.Start(1 << 30)
	defer third()
	if !raised() {
		t.Fatalf("GOGC after a new Start = %d, want 1000", gogc())
	}
}

// growStack uses about n KiB of stack, then waits for release.
func growStack(n int, release <-chan struct{}) byte {
	var pad [1024]byte
	if n > 1 {
		pad[0] = growStack(n-1, release)
		return pad[0]
	}
	<-release
	return pad[1]
}

// The memory limit set while GOGC is raised follows the runtime's memory
// besides the heap: goroutine stacks that grew after the limit was set must
// not leave less room than the heap needs.
func TestStartLimitFollowsStacks(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	stop := gcfloor.Start(1 << 30)
	defer stop()
	if !raised() {
		t.Fatalf("GOGC with a 1 GiB floor = %d, want the cap 1000", gogc())
	}
	first := debug.SetMemoryLimit(-1)
	release := make(chan struct{})
	var started sync.WaitGroup
	for range 256 {
		started.Add(1)
		go func() {
			started.Done()
			growStack(256, release) // ≈ 256 KiB each, 64 MiB in all
		}()
	}
	started.Wait()
	defer close(release)
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < first+48<<20 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got < first+48<<20 {
		t.Fatalf("memory limit %d MiB after 64 MiB of stacks grew, want at least %d MiB", got>>20, (first+48<<20)>>20)
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
