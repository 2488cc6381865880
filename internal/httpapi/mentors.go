package httpapi

import (
	"context"

	"github.com/spotlight/gateway/api"
)

// The mentor schedule and availability.
// Not implemented yet: each answers 501 problem+json.

// GetMentorAvailability answers 501 until it is implemented.
func (s *Server) GetMentorAvailability(ctx context.Context, request api.GetMentorAvailabilityRequestObject) (api.GetMentorAvailabilityResponseObject, error) {
	return nil, ErrNotImplemented
}

// GetMentorSchedule answers 501 until it is implemented.
func (s *Server) GetMentorSchedule(ctx context.Context, request api.GetMentorScheduleRequestObject) (api.GetMentorScheduleResponseObject, error) {
	return nil, ErrNotImplemented
}

// PutMentorSchedule answers 501 until it is implemented.
func (s *Server) PutMentorSchedule(ctx context.Context, request api.PutMentorScheduleRequestObject) (api.PutMentorScheduleResponseObject, error) {
	return nil, ErrNotImplemented
}
