package outbound

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class tells whether a failed call may succeed when tried again later.
type Class int

const (
	// Transient failures (rate limits, 5xx, timeouts, open circuit) may
	// succeed later.
	Transient Class = iota + 1
	// Permanent failures (other 4xx) will fail again unchanged.
	Permanent
)

// String returns "transient" or "permanent".
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// ErrCircuitOpen is the cause (Error.Err) of calls rejected by an open
// circuit breaker. Such an *Error is Transient; its RetryAfter is the rest
// of the breaker's cooldown (0 while a half-open probe decides).
var ErrCircuitOpen = errors.New("outbound: circuit open")

// Error is a failed provider call. Clients return it wrapped; inspect it with
// errors.As. Message is the provider's message and never carries a secret.
type Error struct {
	Provider, Operation string
	// Status is the HTTP status, 0 for transport errors.
	Status int
	// Code is the provider's error code ("124", "3001", "rateLimitExceeded").
	Code string
	// Message is the provider's error message.
	Message string
	// RetryAfter is how long the provider asked to wait (or, for
	// ErrCircuitOpen, how long the circuit stays open), 0 if unknown.
	RetryAfter time.Duration
	// Class tells whether trying again later may succeed.
	Class Class
	// Err is the cause, such as ErrCircuitOpen or a net error; may be nil.
	Err error
}

// Error describes the failure without secrets, e.g.
// "zoom get_meeting: HTTP 404 (code 3001): Meeting does not exist: 1 [permanent]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Operation != "" {
		b.WriteByte(' ')
		b.WriteString(e.Operation)
	}
	b.WriteString(":")
	if e.Status != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	fmt.Fprintf(&b, " [%s]", e.Class)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether the call may succeed when tried again later.
func (e *Error) Transient() bool { return e.Class == Transient }

// IsTransient reports whether err contains an *Error of class Transient.
func IsTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient()
}

// NewError builds an *Error for a failed response, classifying it by
// status: 408, 425, 429 and 5xx are Transient, everything else Permanent.
// RetryAfter comes from the Retry-After header. resp may be nil (Status 0,
// Transient).
func NewError(provider, op string, resp *http.Response, code, msg string) *Error {
	e := &Error{Provider: provider, Operation: op, Code: code, Message: msg, Class: Transient}
	if resp == nil {
		return e
	}
	e.Status = resp.StatusCode
	e.RetryAfter = ParseRetryAfter(resp.Header, time.Now())
	e.Class = ClassifyStatus(resp.StatusCode)
	return e
}

// ClassifyStatus returns Transient for 408, 425, 429 and 5xx and Permanent
// otherwise.
func ClassifyStatus(status int) Class {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return Transient
	}
	return Permanent
}

// ParseRetryAfter returns the wait the Retry-After header asks for, given in
// delay-seconds or as an HTTP date (or, as Zoom's daily limits send it, an
// RFC 3339 instant) relative to now. It returns 0 when the
// header is absent, malformed or in the past.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64((1<<63-1)/time.Second) {
			n = int64((1<<63 - 1) / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		// Zoom's daily limits send an ISO 8601 instant ("2020-05-31T00:00:00Z").
		if t, err = time.Parse(time.RFC3339, v); err != nil {
			return 0
		}
	}
	if d := t.Sub(now); d > 0 {
		return d
	}
	return 0
}
