package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestIfMatchIsStrong: If-Match uses the strong comparison (RFC 9110
// section 13.1.1), so the booking's ETag marked weak is a 412; the ETag
// itself, in a list or as "*", moves the booking.
func TestIfMatchIsStrong(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	cand := en.candidates[0]
	start := day(3).Add(10 * time.Hour)
	cr, err := en.client(t, cand, "candidate").CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || cr.JSON201 == nil {
		t.Fatalf("create: %v %s", err, cr.Body)
	}
	path := "/v1/bookings/" + cr.JSON201.Id.String()
	tok := en.token(t, cand, "candidate")
	etag := cr.JSON201.Etag
	tests := []struct {
		name    string
		ifMatch func(etag string) string
		status  int
	}{
		{"weak", func(e string) string { return "W/" + e }, http.StatusPreconditionFailed},
		{"weak in a list", func(e string) string { return `"0", W/` + e }, http.StatusPreconditionFailed},
		{"strong", func(e string) string { return e }, http.StatusOK},
		{"strong in a list", func(e string) string { return `"0", ` + e }, http.StatusOK},
		{"any", func(string) string { return "*" }, http.StatusOK},
	}
	for i, tt := range tests {
		// In order: each move changes the ETag.
		body := `{"start":"` + start.Add(time.Duration(i+1)*time.Hour).Format(time.RFC3339) + `"}`
		resp, b := en.do(t, http.MethodPatch, path, tok, body, "If-Match", tt.ifMatch(etag))
		if resp.StatusCode != tt.status {
			t.Fatalf("%s: If-Match %s: %d %s, want %d", tt.name, tt.ifMatch(etag), resp.StatusCode, b, tt.status)
		}
		if tt.status == http.StatusPreconditionFailed {
			decodeProblem(t, resp, b, http.StatusPreconditionFailed)
			continue
		}
		etag = resp.Header.Get("ETag")
	}
}
