// Package gcfloor keeps the garbage collector's heap goal from falling
// below a floor.
//
// With GOGC=100 the next collection starts when the heap has grown by as
// much as was live after the last one. The gateway's live heap is small
// (about 10 MB while intake runs at its ceiling) and it allocates fast
// (about 10 KiB per webhook delivery), so at load it collected 14 times a
// second and spent about a tenth of its CPU on it. Raising GOGC after each
// collection so that the goal is at least the floor collects less often
// while the heap is small, and changes nothing once the live heap is half
// the floor or more. It is the "minimum heap" half of what GOMEMLIMIT does
// for the maximum (see https://go.dev/doc/gc-guide); a ballast would do the
// same but count towards the heap for good.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// running is set while a floor is kept.
var running atomic.Bool

// maxPercent bounds the GOGC set, however small the live heap.
const maxPercent = 1000

// Start raises GOGC after every collection so that the next heap goal is at
// least floor bytes (the GOGC in effect when Start was called stays the
// lowest). While GOGC is raised, a soft memory limit of about the floor plus
// the runtime's other memory (or the limit in effect, if lower) keeps a
// sudden growth of the live heap from multiplying by the raised GOGC before
// the next collection lowers it again. stop restores the GOGC and memory
// limit it found. floor <= 0, GOGC=off, or a floor already kept (GOGC is
// the process's: one floor at a time), does nothing.
func Start(floor int64) (stop func()) {
	if floor <= 0 || !running.CompareAndSwap(false, true) {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		running.Store(false)
		return func() {}
	}
	baseLimit := debug.SetMemoryLimit(-1)
	t := &tuner{floor: uint64(floor), base: base, last: base, baseLimit: baseLimit, limit: baseLimit,
		mem: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}}
	t.arm()
	return t.stop
}

type tuner struct {
	floor     uint64
	base      int
	baseLimit int64
	mem       []metrics.Sample

	mu      sync.Mutex
	last    int   // GOGC set last
	limit   int64 // memory limit set last
	stopped bool
}

// sentinel is collected by every collection after it was allocated; it
// holds a pointer so that it is never a tiny allocation (whose cleanups may
// not run).
type sentinel struct{ _ *byte }

// arm asks to be told of the end of the next collection.
func (t *tuner) arm() {
	runtime.AddCleanup(&sentinel{}, (*tuner).collected, t)
}

// collected runs after a collection: GOGC and the memory limit for the next
// goal, then arm.
func (t *tuner) collected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	metrics.Read(t.mem)
	v := func(i int) uint64 { return t.mem[i].Value.Uint64() }
	live, total, released, objects, unused, free := v(0), v(1), v(2), v(3), v(4), v(5)
	// GOGC changes of less than a tenth are left alone: the live heap moves
	// a little after every collection.
	if pct := Percent(live, t.floor, t.base); pct != t.last && (pct == t.base || 10*abs(pct-t.last) > t.last) {
		debug.SetGCPercent(pct)
		t.last = pct
	}
	// The limit follows the runtime's other memory (stacks, metadata, ...)
	// after every collection: left behind by a burst of goroutines, it
	// could leave less room than the live heap and make the collector run
	// back to back.
	limit := t.baseLimit
	if t.last > t.base {
		other := total - min(total, released+objects+unused+free)
		limit = min(limit, int64(t.floor+other+t.floor/8))
	}
	if limit != t.limit {
		debug.SetMemoryLimit(limit)
		t.limit = limit
	}
	t.arm()
}

func (t *tuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.base)
		debug.SetMemoryLimit(t.baseLimit)
		running.Store(false)
	}
}

// Percent is the GOGC that puts the heap goal after a collection that left
// live bytes at floor or more: base when base already does, at most
// maxPercent.
func Percent(live, floor uint64, base int) int {
	if live == 0 || live*uint64(100+base) >= floor*100 {
		return base
	}
	return max(min(int((floor-live)*100/live), maxPercent), base)
}

func abs(x int) int { return max(x, -x) }
