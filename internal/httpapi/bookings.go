package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// BookingDeps is what the booking and mentor endpoints need; cmd/gateway fills it in.
type BookingDeps struct{}

// The booking operations (issue: book mentor sessions).
// Not implemented yet: each answers 501 problem+json.

// ListBookings answers 501 until it is implemented.
func (s *Server) ListBookings(ctx context.Context, request api.ListBookingsRequestObject) (api.ListBookingsResponseObject, error) {
	return nil, ErrNotImplemented
}

// CreateBooking answers 501 until it is implemented.
func (s *Server) CreateBooking(ctx context.Context, request api.CreateBookingRequestObject) (api.CreateBookingResponseObject, error) {
	return nil, ErrNotImplemented
}

// GetBooking answers 501 until it is implemented.
func (s *Server) GetBooking(ctx context.Context, request api.GetBookingRequestObject) (api.GetBookingResponseObject, error) {
	return nil, ErrNotImplemented
}

// RescheduleBooking answers 501 until it is implemented.
func (s *Server) RescheduleBooking(ctx context.Context, request api.RescheduleBookingRequestObject) (api.RescheduleBookingResponseObject, error) {
	return nil, ErrNotImplemented
}

// ListBookingAudit answers 501 until it is implemented.
func (s *Server) ListBookingAudit(ctx context.Context, request api.ListBookingAuditRequestObject) (api.ListBookingAuditResponseObject, error) {
	return nil, ErrNotImplemented
}

// CancelBooking answers 501 until it is implemented.
func (s *Server) CancelBooking(ctx context.Context, request api.CancelBookingRequestObject) (api.CancelBookingResponseObject, error) {
	return nil, ErrNotImplemented
}
