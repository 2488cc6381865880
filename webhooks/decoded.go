package webhooks

import (
	"sync"
	"time"
)

// decodedEvents hands the Zoom events that intake decoded to processing in
// the same process, so a delivery's JSON is decoded once, not twice. It is
// bounded: when full, the oldest entry makes room if its delivery was
// processed already or it is older than maxAge (its job ran on another
// replica, or the gateway is far behind); otherwise the new event is not
// kept. Processing decodes the stored body whenever an event is missing, as
// it does after a restart, on another replica or for a replay.
type decodedEvents struct {
	mu     sync.Mutex
	m      map[string]*ZoomEvent
	ring   []decodedEntry
	head   int
	n      int
	maxAge time.Duration
}

type decodedEntry struct {
	id string
	at time.Time
}

func newDecodedEvents(size int, maxAge time.Duration) *decodedEvents {
	return &decodedEvents{m: make(map[string]*ZoomEvent, size), ring: make([]decodedEntry, size), maxAge: maxAge}
}

// put keeps ev for the delivery id (a fresh id: ids are never reused).
func (c *decodedEvents) put(id string, ev *ZoomEvent) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == len(c.ring) {
		oldest := c.ring[c.head]
		if _, live := c.m[oldest.id]; live && now.Sub(oldest.at) < c.maxAge {
			return // full of events still to be processed: keep those
		}
		delete(c.m, oldest.id)
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	c.ring[(c.head+c.n)%len(c.ring)] = decodedEntry{id: id, at: now}
	c.n++
	c.m[id] = ev
}

// take returns and forgets the event of delivery id, or nil.
func (c *decodedEvents) take(id string) *ZoomEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.m[id]
	delete(c.m, id)
	return ev
}

// drop forgets the event of delivery id (it was not stored under that id).
func (c *decodedEvents) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// len reports the events kept.
func (c *decodedEvents) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
