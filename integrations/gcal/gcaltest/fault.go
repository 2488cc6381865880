package gcaltest

import (
	"net/http"
	"strconv"
	"time"
)

// Fault is a failure injected into Calendar API requests at runtime.
type Fault struct {
	// Op limits the fault to one operation ("events.insert", "events.list",
	// "freebusy.query", ...); empty matches every Calendar API request.
	Op string
	// Times is how many matching requests the fault hits; 0 means 1,
	// a negative value means until ClearFaults.
	Times int
	// Delay is added before the request is handled (or failed).
	Delay time.Duration
	// Status, when set, answers with this status instead of handling the
	// request: a 5xx, 403 or 429. For 403 and 429 Reason picks the error
	// reason ("rateLimitExceeded" by default, "userRateLimitExceeded",
	// "quotaExceeded").
	Status int
	Reason string
	// RetryAfter, when positive, is sent as a Retry-After header (seconds).
	RetryAfter time.Duration
	// LoseResponse applies the request and then drops the connection
	// without an answer (a 502 when the connection cannot be hijacked).
	LoseResponse bool
}

// Common fault reasons (https://developers.google.com/calendar/api/guides/errors).
const (
	ReasonRateLimit     = "rateLimitExceeded"
	ReasonUserRateLimit = "userRateLimitExceeded"
	ReasonQuota         = "quotaExceeded"
)

// InjectFault adds a fault; faults are used in the order they were added.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// ClearFaults removes all pending faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault consumes the first fault matching op. Call with s.mu held.
func (s *Server) takeFault(op string) *Fault {
	for i, f := range s.faults {
		if f.Op != "" && f.Op != op {
			continue
		}
		g := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &g
	}
	return nil
}

func writeFault(w http.ResponseWriter, f *Fault) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
	switch f.Status {
	case http.StatusForbidden, http.StatusTooManyRequests:
		reason := f.Reason
		if reason == "" {
			reason = ReasonRateLimit
		}
		msg := map[string]string{
			ReasonRateLimit:     "Rate Limit Exceeded",
			ReasonUserRateLimit: "User Rate Limit Exceeded",
			ReasonQuota:         "Calendar usage limits exceeded.",
		}[reason]
		if msg == "" {
			msg = "Forbidden"
		}
		writeError(w, f.Status, msg, errItem{Domain: "usageLimits", Reason: reason, Message: msg})
	case http.StatusServiceUnavailable:
		writeError(w, f.Status, "The service is currently unavailable.", errItem{Domain: "global", Reason: "backendError"})
	default:
		writeError(w, f.Status, "Backend Error", errItem{Domain: "global", Reason: "backendError"})
	}
}

// loseResponse closes the connection without writing a response.
func loseResponse(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusBadGateway, "Bad Gateway", errItem{Domain: "global", Reason: "backendError"})
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	_ = conn.Close()
}
