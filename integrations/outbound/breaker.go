package outbound

import (
	"sync"
	"time"
)

type breakerState int

const (
	stateClosed breakerState = iota
	stateOpen
	stateHalfOpen
)

// String names the state for logs.
func (s breakerState) String() string {
	switch s {
	case stateOpen:
		return "open"
	case stateHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker is a consecutive-failure circuit breaker with a single half-open
// probe.
type breaker struct {
	threshold int // <= 0 disables
	cooldown  time.Duration

	mu       sync.Mutex
	state    breakerState
	failures int
	openedAt time.Time
	probing  bool
}

// outcome of one attempt as the breaker sees it.
type outcome int

const (
	outcomeSuccess outcome = iota // the provider answered sensibly
	outcomeFailure                // transport error, timeout, 5xx
	outcomeNeutral                // says nothing about the provider (caller cancelled)
)

// allow reports whether an attempt may go out now; probe is true when the
// attempt is the half-open probe and must be followed by record.
func (b *breaker) allow(now time.Time) (ok bool) {
	if b.threshold <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state = stateHalfOpen
		b.probing = true
		return true
	case stateHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return true
}

// retryIn is how long an open circuit keeps rejecting calls after now: the
// rest of its cooldown, or 0 when a call may go out (or a half-open probe
// is deciding).
func (b *breaker) retryIn(now time.Time) time.Duration {
	if b.threshold <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != stateOpen {
		return 0
	}
	return max(b.cooldown-now.Sub(b.openedAt), 0)
}

// record feeds the outcome of an allowed attempt back and returns the state
// change, if any.
func (b *breaker) record(o outcome, now time.Time) (from, to breakerState) {
	if b.threshold <= 0 {
		return stateClosed, stateClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	from = b.state
	switch b.state {
	case stateHalfOpen:
		b.probing = false
		switch o {
		case outcomeSuccess:
			b.state, b.failures = stateClosed, 0
		case outcomeFailure:
			b.state, b.openedAt = stateOpen, now
		}
	case stateClosed:
		switch o {
		case outcomeSuccess:
			b.failures = 0
		case outcomeFailure:
			b.failures++
			if b.failures >= b.threshold {
				b.state, b.openedAt = stateOpen, now
			}
		}
	case stateOpen:
		// An attempt allowed before the circuit opened finished late: a
		// success is good news but the cooldown still applies.
	}
	return from, b.state
}
