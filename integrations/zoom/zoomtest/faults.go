package zoomtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// FaultKind selects what a Fault does to a request.
type FaultKind int

const (
	// FaultStatus answers Status (default 503) with a Zoom error body.
	FaultStatus FaultKind = iota + 1
	// FaultHang holds the request without answering until the client gives
	// up (or Server.Close).
	FaultHang
	// FaultLoseResponse applies the request, then closes the connection
	// without a response: the client cannot tell whether it took effect.
	FaultLoseResponse
	// FaultRateLimit answers 429 with Retry-After and X-RateLimit-* headers.
	FaultRateLimit
)

// Fault is a failure injected into the next matching API requests (the
// /v2 routes; the token endpoint is never faulted).
type Fault struct {
	Kind FaultKind
	// Route limits the fault to one route pattern (RouteCreateMeeting, …);
	// "" matches every API route.
	Route string
	// Count is how many matching requests the fault affects; 0 means 1.
	Count int
	// Status is the FaultStatus status; default 503.
	Status int
	// RetryAfter is sent with FaultRateLimit (default 1s, whole seconds)
	// and, when set, with FaultStatus.
	RetryAfter time.Duration
	// Apply makes FaultStatus and FaultHang apply the request before
	// failing, like a provider that did the work but answered 5xx.
	Apply bool
	// ApplyAfter makes FaultHang apply the request this long after it
	// arrived, whether or not the client still waits (Apply is implied):
	// a provider still working on a request its client gave up on, whose
	// effect shows only after the client's timeout.
	ApplyAfter time.Duration
}

// Inject queues a fault. Faults are matched in the order they were
// injected; each one is consumed by Count matching requests.
func (s *Server) Inject(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes queued faults, the failure rate and the latency.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.failRate, s.latency = nil, 0, 0
}

// PendingFaults returns how many injected fault hits are still unconsumed.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.Count
	}
	return n
}

// SetLatency adds d before every API request is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetFailureRate answers the given fraction (0..1) of API requests with
// status (default 503), drawn from the Server's random source.
func (s *Server) SetFailureRate(rate float64, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRate, s.failStatus = rate, status
}

// takeFault consumes the first fault matching r, or one drawn from the
// failure rate.
func (s *Server) takeFault(r *http.Request) (Fault, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Route != "" && f.Route != r.Pattern {
			continue
		}
		out := *f
		f.Count--
		if f.Count == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return out, s.latency, true
	}
	if s.failRate > 0 && s.rnd.Float64() < s.failRate {
		return Fault{Kind: FaultStatus, Status: s.failStatus}, s.latency, true
	}
	return Fault{}, s.latency, false
}

func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, h apiHandler) {
	f, latency, faulted := s.takeFault(r)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closed:
			t.Stop()
		}
	}
	if !faulted {
		h(w, r)
		return
	}
	switch f.Kind {
	case FaultHang:
		if f.ApplyAfter > 0 {
			s.applyLate(r, h, f.ApplyAfter)
		} else if f.Apply {
			h(newRecorder(), r)
		}
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		// Abort: no response is written.
		panic(http.ErrAbortHandler)
	case FaultLoseResponse:
		h(newRecorder(), r)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return
		}
		panic(http.ErrAbortHandler)
	case FaultRateLimit:
		ra := f.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		w.Header().Set("X-RateLimit-Category", "Light")
		w.Header().Set("X-RateLimit-Type", "QPS")
		w.Header().Set("X-RateLimit-Limit", "30")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, 429, "You have reached the maximum per-second rate limit for this API. Try again later.")
	default: // FaultStatus
		if f.Apply {
			h(newRecorder(), r)
		}
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		writeError(w, status, status, http.StatusText(status))
	}
}

// applyLate applies r with h after d, on the request's goroutine: the body is
// read at once (it arrived with the request) and the request applied later
// even when the client has gone, as a provider that is slow to act does.
func (s *Server) applyLate(r *http.Request, h apiHandler, d time.Duration) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the request never arrived whole: nothing to apply
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.closed:
		return
	}
	late := r.Clone(context.WithoutCancel(r.Context()))
	late.Body = io.NopCloser(bytes.NewReader(body))
	h(newRecorder(), late)
}
