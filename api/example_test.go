package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/spotlight/gateway/api"
)

// bookings implements two strict operations; embedding the interface stands in for the rest.
type bookings struct {
	api.StrictServerInterface
}

func (bookings) CreateBooking(_ context.Context, req api.CreateBookingRequestObject) (api.CreateBookingResponseObject, error) {
	if req.Body.MentorId == "self" {
		return api.CreateBooking403ApplicationProblemPlusJSONResponse{
			ForbiddenApplicationProblemPlusJSONResponse: api.ForbiddenApplicationProblemPlusJSONResponse{
				Body:    api.Problem{Type: "https://spotlight.dev/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden},
				Headers: api.ForbiddenResponseHeaders{XRequestId: "01JDQ4X1V4K8W2M3N5P6R7S8T9"},
			},
		}, nil
	}
	b := api.Booking{
		Id:       openapi_types.UUID{0x7b, 0x1f},
		MentorId: req.Body.MentorId,
		Start:    req.Body.Start,
		End:      req.Body.Start.Add(time.Duration(req.Body.DurationMinutes) * time.Minute),
		Status:   api.BookingStatusConfirmed,
		Etag:     `"1"`,
	}
	return api.CreateBooking201JSONResponse{
		Body:    b,
		Headers: api.CreateBooking201ResponseHeaders{ETag: b.Etag, Location: "/v1/bookings/" + b.Id.String()},
	}, nil
}

// routes overrides the raw-body webhook operations of the generated ServerInterface.
type routes struct {
	api.ServerInterface
}

func (routes) ReceiveZoomWebhook(c echo.Context, _ api.ReceiveZoomWebhookParams) error {
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, 256<<10))
	if err != nil {
		return err
	}
	return c.String(http.StatusOK, fmt.Sprintf("raw body of %d bytes", len(raw)))
}

// Example shows how a strict handler sets the ETag header of a 201, answers a problem+json, and how
// a webhook operation is mounted on the raw request instead of the strict handler.
func Example() {
	e := echo.New()
	api.RegisterHandlers(e, routes{ServerInterface: api.NewStrictHandler(bookings{}, nil)})

	do := func(path, body string, header map[string]string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprintln(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("ETag"), rec.Header().Get("Location"))))
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			fmt.Print(rec.Body.String())
		}
		fmt.Println()
	}
	booking := `{"mentor_id":"%s","start":"2026-12-08T10:00:00+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Practice"}`
	do("/v1/bookings", fmt.Sprintf(booking, "m-1"), map[string]string{"Idempotency-Key": "k1"})
	do("/v1/bookings", fmt.Sprintf(booking, "self"), map[string]string{"Idempotency-Key": "k2"})
	do("/webhooks/zoom", `{"event":"meeting.started"}`, nil)
	// Output:
	// 201 application/json "1" /v1/bookings/7b1f0000-0000-0000-0000-000000000000
	//
	// 403 application/problem+json
	// {"status":403,"title":"Forbidden","type":"https://spotlight.dev/problems/forbidden"}
	//
	// 200 text/plain; charset=UTF-8
	// raw body of 27 bytes
}
