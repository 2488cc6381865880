package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
)

// Request is one booking a client wants, with its Idempotency-Key.
type Request struct {
	Key  string
	Body client.CreateBookingRequest
}

// NewRequest books a 30-minute session with mentor for candidate at start.
func NewRequest(mentor, candidate string, start time.Time, topic string) Request {
	cand := candidate
	return Request{Key: uuid.NewString(), Body: client.CreateBookingRequest{
		MentorId: mentor, CandidateId: &cand, Start: start, DurationMinutes: 30, Timezone: "UTC", Topic: topic,
	}}
}

// Outcome is the answer a booking request finally got.
type Outcome struct {
	Status  int
	Booking *client.Booking
	// Tries counts the requests sent (retries after the gateway went away included).
	Tries int
	// Latency is the time of the last (answered) try.
	Latency time.Duration
	Body    []byte
}

// retryable: the gateway was not there to answer (killed, restarting) or
// said so.
func retryable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// Book sends r until the gateway answers it, repeating the same
// Idempotency-Key after transport errors and 502/503/504 as a careful
// client would, until ctx ends. A 424's failed booking is read from its
// Location; when that read fails (the gateway went away in between), the
// request is repeated, which replays the 424.
func Book(ctx context.Context, c *client.ClientWithResponses, r Request) (Outcome, error) {
	var out Outcome
	for {
		out.Tries++
		t0 := time.Now()
		resp, err := c.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: r.Key}, r.Body)
		if err == nil && !retryable(resp.StatusCode()) {
			out.Status, out.Latency, out.Body = resp.StatusCode(), time.Since(t0), resp.Body
			out.Booking = resp.JSON201
			if out.Booking == nil {
				out.Booking = resp.JSON202
			}
			if resp.StatusCode() != http.StatusFailedDependency {
				return out, nil
			}
			// The booking failed within the wait; it is at Location.
			var b *client.Booking
			if b, err = BookingAt(ctx, c, resp.HTTPResponse.Header.Get("Location")); err == nil {
				out.Booking = b
				return out, nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode())
			}
			return out, fmt.Errorf("systemtest: book %s after %d tries: %w (last: %v)", r.Key, out.Tries, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BookingAt reads the booking a Location header names (a 424 answer's
// failed booking, say).
func BookingAt(ctx context.Context, c *client.ClientWithResponses, loc string) (*client.Booking, error) {
	id, err := uuid.Parse(strings.TrimPrefix(loc, "/v1/bookings/"))
	if err != nil {
		return nil, fmt.Errorf("not a booking Location: %q", loc)
	}
	resp, err := c.GetBookingWithResponse(ctx, id)
	if err != nil {
		return nil, err
	}
	if resp.JSON200 == nil {
		return nil, fmt.Errorf("GET %s: %d %s", loc, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200, nil
}

// AuditActions lists the actions of a booking's audit trail, oldest first
// (the first page, which holds a test's few records).
func AuditActions(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID) ([]string, error) {
	r, err := c.ListBookingAuditWithResponse(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil {
		return nil, fmt.Errorf("GET audit of %s: %d %s", id, r.StatusCode(), r.Body)
	}
	acts := make([]string, 0, len(r.JSON200.Items))
	for _, a := range r.JSON200.Items {
		acts = append(acts, a.Action)
	}
	return acts, nil
}
