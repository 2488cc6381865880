package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestMachineClientNeedsServiceScope: a client-credentials token (sub ==
// client_id, no group) acts for anyone only with the service scope; without
// it, like a user in no group, it holds no role: it can neither list, read
// nor cancel bookings, nor read a mentor's schedule (with its zoom_user) or
// availability (403).
func TestMachineClientNeedsServiceScope(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		mentor := en.mentors[0]
		cc := en.client(t, en.candidates[0], "candidate")
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: mentor, Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		id := cr.JSON201.Id
		from := day(3)

		tests := []struct {
			name    string
			token   auth.TokenRequest
			service bool
		}{
			{"machine client, no scope", auth.TokenRequest{Subject: auth.DevClientID}, false},
			{"machine client, another scope", auth.TokenRequest{Subject: auth.DevClientID, Scopes: []string{"spotlight-gateway/other"}}, false},
			{"user in no group", auth.TokenRequest{Subject: "nobody"}, false},
			{"user in no group, with the service scope", auth.TokenRequest{Subject: "nobody", Scopes: []string{auth.DefaultServiceScope}}, false},
			{"machine client, service scope", auth.TokenRequest{Subject: auth.DevClientID, Scopes: []string{auth.DefaultServiceScope}}, true},
		}
		for _, tt := range tests {
			// Not parallel: the last case cancels the booking.
			mc := en.clientFor(t, tt.token)
			list, err := mc.ListBookingsWithResponse(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			get, _ := mc.GetBookingWithResponse(ctx, id)
			sch, _ := mc.GetMentorScheduleWithResponse(ctx, mentor)
			av, _ := mc.GetMentorAvailabilityWithResponse(ctx, mentor, &client.GetMentorAvailabilityParams{From: from, To: from.Add(24 * time.Hour)})
			cancel, _ := mc.CancelBookingWithResponse(ctx, id, client.CancelBookingRequest{Reason: "machine"})
			codes := map[string]int{"list": list.StatusCode(), "get": get.StatusCode(), "schedule": sch.StatusCode(),
				"availability": av.StatusCode(), "cancel": cancel.StatusCode()}
			if tt.service {
				listed := list.JSON200 != nil && len(list.JSON200.Items) == 1 && list.JSON200.Items[0].Id == id
				if !listed || get.JSON200 == nil || sch.JSON200 == nil || av.JSON200 == nil || cancel.JSON200 == nil {
					t.Errorf("%s: %v (list %s); want every call allowed", tt.name, codes, list.Body)
				}
				continue
			}
			for what, code := range codes {
				if code != http.StatusForbidden {
					t.Errorf("%s: %s = %d, want 403", tt.name, what, code)
				}
			}
			if b, _ := cc.GetBookingWithResponse(ctx, id); b.JSON200 == nil || b.JSON200.Status != client.BookingStatusConfirmed {
				t.Fatalf("%s: the booking after the cancel: %s", tt.name, b.Body)
			}
		}
	})
}

// TestDeclaredRolesAreEnforced walks every secured operation of the spec:
// a token holding none of its x-roles (a user in no group, a machine client
// without the service scope, or another role) is a 403 forbidden problem
// before anything else; a token with one of them gets past the gate.
func TestDeclaredRolesAreEnforced(t *testing.T) {
	t.Parallel()
	en := newEnv(t, nil)
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	mint := func(r auth.TokenRequest) string {
		tok, err := en.issuer.Mint(r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokens := map[string]string{
		"candidate": en.token(t, "cand-1", "candidate"),
		"mentor":    en.token(t, "mentor-1", "mentor"),
		"admin":     en.token(t, "admin-1", "admin"),
		"service":   mint(auth.TokenRequest{Subject: auth.DevClientID, Scopes: []string{auth.DefaultServiceScope}}),
	}
	noRole := map[string]string{
		"no group":                  en.token(t, "nobody"),
		"machine without the scope": mint(auth.TokenRequest{Subject: auth.DevClientID}),
	}
	params := strings.NewReplacer("{bookingId}", uuid.NewString(), "{eventId}", uuid.NewString(), "{mentorId}", "mentor-1", "{provider}", "zoom")
	secured := 0
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			roles, _ := op.Extensions["x-roles"].([]any)
			if op.Security != nil && len(*op.Security) == 0 {
				continue
			}
			secured++
			target := params.Replace(path)
			allowed := map[string]bool{}
			for _, r := range roles {
				allowed[r.(string)] = true
			}
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				for name, tok := range noRole {
					resp, body := en.do(t, method, target, tok, "")
					if p := decodeProblem(t, resp, body, http.StatusForbidden); p.Type != httpapi.ProblemBase+"forbidden" {
						t.Errorf("%s: type %q", name, p.Type)
					}
				}
				for role, tok := range tokens {
					resp, body := en.do(t, method, target, tok, "")
					if allowed[role] && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized) {
						t.Errorf("%s, allowed: %d %s", role, resp.StatusCode, body)
					}
					if !allowed[role] && resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s, not in x-roles %v: %d %s", role, roles, resp.StatusCode, body)
					}
				}
			})
		}
	}
	if secured < 20 {
		t.Fatalf("only %d secured operations found", secured)
	}
}

// TestPrivilegedCallersNameTheCandidate: only a candidate books for
// themself. A service client or an admin that leaves candidate_id out gets
// a 422 naming the field, and nothing is booked (no Zoom meeting, no event,
// no Jira issue for a "candidate" that is the caller); with candidate_id,
// or as an admin who is a candidate too, the booking goes through.
func TestPrivilegedCallersNameTheCandidate(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		mentor, cand := en.mentors[0], en.candidates[0]
		service := en.clientFor(t, auth.TokenRequest{Subject: auth.DevClientID, Scopes: []string{auth.DefaultServiceScope}})
		tests := []struct {
			name      string
			c         *client.ClientWithResponses
			candidate *string
			want      string // the booking's candidate; "" for the 422
		}{
			{"service client without candidate_id", service, nil, ""},
			{"admin without candidate_id", en.client(t, "admin-ann", "admin"), nil, ""},
			{"service client naming the candidate", service, ptr(cand), cand},
			{"admin who is a candidate, for themself", en.client(t, "admin-bea", "admin", "candidate"), nil, "admin-bea"},
		}
		for i, tt := range tests {
			start := day(3).Add(time.Duration(9+i) * time.Hour)
			r, err := tt.c.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
				client.CreateBookingRequest{MentorId: mentor, CandidateId: tt.candidate, Start: start, DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				if r.JSON201 == nil || r.JSON201.CandidateId != tt.want {
					t.Errorf("%s: %d %s; want 201 for candidate %s", tt.name, r.StatusCode(), r.Body, tt.want)
				}
				continue
			}
			p := decodeProblem(t, r.HTTPResponse, r.Body, http.StatusUnprocessableEntity)
			if len(p.Errors) != 1 || p.Errors[0].Field != "body.candidate_id" {
				t.Errorf("%s: problem %+v, want a validation error on body.candidate_id", tt.name, p)
			}
			if ms := en.meetingsOf(t, mentor); len(ms) != i/2 {
				t.Errorf("%s: %d Zoom meetings, want none for this request", tt.name, len(ms))
			}
		}
	})
}
