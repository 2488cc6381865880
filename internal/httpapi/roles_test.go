package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestMachineClientNeedsServiceScope: a client-credentials token (sub ==
// client_id, no group) acts for anyone only with the service scope; without
// it, it can neither see nor cancel other people's bookings.
func TestMachineClientNeedsServiceScope(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		en := newBookingEnv(t, s, envOptions{mentors: 1, candidates: 1})
		en.openSchedule(t)
		cc := en.client(t, en.candidates[0], "candidate")
		cr, err := cc.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: uuid.NewString()},
			client.CreateBookingRequest{MentorId: en.mentors[0], Start: day(3).Add(10 * time.Hour), DurationMinutes: 60, Timezone: "Europe/Berlin", Topic: "t"})
		if err != nil || cr.JSON201 == nil {
			t.Fatalf("create: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		id := cr.JSON201.Id

		tests := []struct {
			name    string
			scopes  []string
			service bool
		}{
			{"no scope", nil, false},
			{"another scope", []string{"spotlight-gateway/other"}, false},
			{"service scope", []string{auth.DefaultServiceScope}, true},
		}
		for _, tt := range tests {
			// Not parallel: the last case cancels the booking.
			mc := en.clientFor(t, auth.TokenRequest{Subject: auth.DevClientID, Scopes: tt.scopes})
			list, err := mc.ListBookingsWithResponse(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			listed := list.JSON200 != nil && len(list.JSON200.Items) == 1 && list.JSON200.Items[0].Id == id
			if listed != tt.service {
				t.Errorf("%s: list = %d %s; want the booking listed: %v", tt.name, list.StatusCode(), list.Body, tt.service)
			}
			get, _ := mc.GetBookingWithResponse(ctx, id)
			cancel, _ := mc.CancelBookingWithResponse(ctx, id, client.CancelBookingRequest{Reason: "machine"})
			if tt.service {
				if get.JSON200 == nil || cancel.JSON200 == nil {
					t.Errorf("%s: get %d, cancel %d %s; want both allowed", tt.name, get.StatusCode(), cancel.StatusCode(), cancel.Body)
				}
				continue
			}
			for what, code := range map[string]int{"get": get.StatusCode(), "cancel": cancel.StatusCode()} {
				if code != http.StatusNotFound && code != http.StatusForbidden {
					t.Errorf("%s: %s = %d, want 403 or 404", tt.name, what, code)
				}
			}
			if b, _ := cc.GetBookingWithResponse(ctx, id); b.JSON200 == nil || b.JSON200.Status != client.BookingStatusConfirmed {
				t.Fatalf("%s: the booking after the machine's cancel: %s", tt.name, b.Body)
			}
		}
	})
}
