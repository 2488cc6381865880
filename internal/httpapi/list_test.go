package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestMalformedListParameters: a cursor the API did not return, and a
// bookings filter that ends before it starts, are the 400 validation-error
// the list operations declare (not an undeclared 422, nor a 200 with
// nothing); availability keeps its declared 422 for a reversed range.
func TestMalformedListParameters(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	cand := en.candidates[0]
	cr, err := en.client(t, cand, "candidate").CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || cr.JSON201 == nil {
		t.Fatalf("create: %v %s", err, cr.Body)
	}
	id := cr.JSON201.Id.String()
	tok := en.token(t, cand, "candidate")
	notJSON := base64.RawURLEncoding.EncodeToString([]byte("not json"))
	tests := []struct {
		name   string
		path   string
		status int
		slug   string
		fields []string
	}{
		{"bookings, garbage cursor", "/v1/bookings?cursor=zzz", 400, "validation-error", []string{"query.cursor"}},
		{"bookings, cursor of no JSON", "/v1/bookings?cursor=" + notJSON, 400, "validation-error", []string{"query.cursor"}},
		{"audit, garbage cursor", "/v1/bookings/" + id + "/audit?cursor=zzz", 400, "validation-error", []string{"query.cursor"}},
		{"audit, cursor of no JSON", "/v1/bookings/" + id + "/audit?cursor=" + notJSON, 400, "validation-error", []string{"query.cursor"}},
		{"bookings, to before from", "/v1/bookings?from=2026-12-10T00:00:00Z&to=2026-12-01T00:00:00Z", 400, "validation-error", []string{"query.to"}},
		{"bookings, to at from", "/v1/bookings?from=2026-12-10T00:00:00Z&to=2026-12-10T00:00:00Z", 200, "", nil},
		{"availability, to before from", "/v1/mentors/" + en.mentors[0] + "/availability?from=2026-12-10T00:00:00Z&to=2026-12-01T00:00:00Z", 422, "unprocessable", []string{"query.to"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := en.do(t, http.MethodGet, tt.path, tok, "")
			if tt.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				return
			}
			p := decodeProblem(t, resp, body, tt.status)
			if p.Type != "https://spotlight.dev/problems/"+tt.slug {
				t.Errorf("type %q, want %s", p.Type, tt.slug)
			}
			if diff := cmp.Diff(fieldsOf(p), tt.fields); diff != "" {
				t.Errorf("fields (-got +want):\n%s", diff)
			}
		})
	}
}

// TestBookingListBoundsAtTheZeroInstant: a given from or to filters the
// bookings list whatever its value, the zero time (0001-01-01T00:00:00Z)
// too: the zero time meant "not given" inside the service, so to at year 1
// listed every booking and a from after it was not refused.
func TestBookingListBoundsAtTheZeroInstant(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	en.openSchedule(t)
	cand := en.candidates[0]
	cc := en.client(t, cand, "candidate")
	cr, err := cc.CreateBookingWithResponse(t.Context(), &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
		client.CreateBookingRequest{MentorId: en.mentors[0], Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
	if err != nil || cr.JSON201 == nil {
		t.Fatalf("create: %v %s", err, cr.Body)
	}
	zero, later := time.Time{}, day(1)
	tests := []struct {
		name     string
		from, to *time.Time
		want     int // bookings listed; -1: a 400 naming query.to
	}{
		{"no bounds", nil, nil, 1},
		{"from the zero instant", &zero, nil, 1},
		{"to the zero instant", nil, &zero, 0},
		{"both at the zero instant", &zero, &zero, 0},
		{"to the zero instant, before from", &later, &zero, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := cc.ListBookingsWithResponse(t.Context(), &client.ListBookingsParams{From: tt.from, To: tt.to})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want < 0 {
				p := decodeProblem(t, resp.HTTPResponse, resp.Body, http.StatusBadRequest)
				if diff := cmp.Diff(fieldsOf(p), []string{"query.to"}); diff != "" {
					t.Errorf("fields (-got +want):\n%s", diff)
				}
				return
			}
			if resp.JSON200 == nil {
				t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
			}
			if got := len(resp.JSON200.Items); got != tt.want {
				t.Errorf("%d bookings listed, want %d", got, tt.want)
			}
		})
	}
}

// TestRepeatedQueryParameter: a query parameter that takes one value, given
// twice, is the same 400 validation-error as any other invalid parameter,
// naming it in errors[] (the generated binding refused it with a bare 400
// that named no field), on every operation, alongside the other invalid
// fields of the request.
func TestRepeatedQueryParameter(t *testing.T) {
	t.Parallel()
	en := newBookingEnv(t, storetest.SQLite(t), envOptions{mentors: 1, candidates: 1})
	tok := en.token(t, en.candidates[0], "candidate")
	booking := "/v1/bookings/" + uuid.NewString()
	availability := "/v1/mentors/" + en.mentors[0] + "/availability?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z"
	tests := []struct {
		name   string
		path   string
		fields []string
	}{
		{"bookings, status twice", "/v1/bookings?status=confirmed&status=cancelled", []string{"query.status"}},
		{"bookings, the same limit twice", "/v1/bookings?limit=5&limit=5", []string{"query.limit"}},
		{"bookings, two repeated", "/v1/bookings?role=candidate&to=2026-12-02T00:00:00Z&role=mentor&to=2026-12-03T00:00:00Z", []string{"query.role", "query.to"}},
		{"bookings, repeated and invalid", "/v1/bookings?limit=5&limit=6&status=nope", []string{"query.limit", "query.status"}},
		{"audit, cursor twice", booking + "/audit?cursor=a&cursor=b", []string{"query.cursor"}},
		{"availability, tz twice", availability + "&tz=UTC&tz=Europe/Berlin", []string{"query.tz"}},
		{"availability, from twice", availability + "&from=2026-12-01T01:00:00Z", []string{"query.from"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := en.do(t, http.MethodGet, tt.path, tok, "")
			p := decodeProblem(t, resp, body, http.StatusBadRequest)
			if p.Type != "https://spotlight.dev/problems/validation-error" {
				t.Errorf("type %q, want validation-error", p.Type)
			}
			if diff := cmp.Diff(fieldsOf(p), tt.fields); diff != "" {
				t.Errorf("fields (-got +want):\n%s", diff)
			}
			for _, e := range p.Errors {
				if e.Message == "" {
					t.Errorf("%s: no message", e.Field)
				}
			}
		})
	}
}
