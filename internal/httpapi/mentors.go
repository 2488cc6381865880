package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/booking"
)

// The mentor schedule and availability.

func toAPISchedule(s booking.Schedule) api.MentorSchedule {
	out := api.MentorSchedule{
		MentorId: s.MentorID, Timezone: s.TimeZone, WorkingHours: []api.WorkingHours{},
		SlotMinutes: int(s.Slot / time.Minute), BufferMinutes: int(s.Buffer / time.Minute),
		MinNoticeMinutes: int(s.MinNotice / time.Minute), MaxAdvanceDays: int(s.MaxAdvance / (24 * time.Hour)),
		UpdatedAt: s.UpdatedAt,
	}
	if s.ZoomUser != "" {
		out.ZoomUser = &s.ZoomUser
	}
	for _, w := range s.WorkingHours {
		out.WorkingHours = append(out.WorkingHours, api.WorkingHours{
			Weekday: api.Weekday(booking.WeekdayName(w.Weekday)), Start: booking.FormatClock(w.StartMin), End: booking.FormatClock(w.EndMin)})
	}
	return out
}

// GetMentorAvailability returns a mentor's free slots.
func (s *Server) GetMentorAvailability(ctx context.Context, request api.GetMentorAvailabilityRequestObject) (api.GetMentorAvailabilityResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	p := request.Params
	q := booking.AvailabilityQuery{From: p.From, To: p.To}
	if a.Candidate {
		// A candidate is offered only slots they could book.
		q.Candidate = a.ID
	}
	if p.Duration != nil {
		q.Duration = time.Duration(*p.Duration) * time.Minute
	}
	if p.Tz != nil && *p.Tz != "" {
		loc, err := time.LoadLocation(*p.Tz)
		if err != nil || *p.Tz == "Local" {
			return nil, &booking.ValidationError{Field: "query.tz", Message: fmt.Sprintf("unknown time zone %q", *p.Tz)}
		}
		q.Location = loc
	}
	slots, sch, err := svc.Availability(ctx, request.MentorId, q)
	if err != nil {
		return nil, err
	}
	loc := q.Location
	if loc == nil {
		loc = sch.Location()
	}
	dur := q.Duration
	if dur == 0 {
		dur = sch.Slot
	}
	out := api.GetMentorAvailability200JSONResponse{
		MentorId: request.MentorId, Timezone: loc.String(), DurationMinutes: int(dur / time.Minute),
		From: echoTime(p.From, loc), To: echoTime(p.To, loc), Slots: make([]api.Slot, 0, len(slots)),
	}
	for _, sl := range slots {
		out.Slots = append(out.Slots, api.Slot{Start: sl.Start, End: sl.End})
	}
	return out, nil
}

// echoTime expresses t, a time the client sent, in loc, unless RFC 3339
// cannot carry it there: out of the years 0000–9999 (9999-12-31T23:59:59Z
// is year 10000 in Berlin, and JSON encoding fails), or at an offset with
// seconds (local mean time before standard zones, which RFC 3339 would
// round). Then it stays as the client wrote it, which RFC 3339 carries.
func echoTime(t time.Time, loc *time.Location) time.Time {
	in := t.In(loc)
	if _, off := in.Zone(); in.Year() < 0 || in.Year() > 9999 || off%60 != 0 {
		return t
	}
	return in
}

// GetMentorSchedule returns a mentor's schedule.
func (s *Server) GetMentorSchedule(ctx context.Context, request api.GetMentorScheduleRequestObject) (api.GetMentorScheduleResponseObject, error) {
	svc, _, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	sch, err := svc.GetSchedule(ctx, request.MentorId)
	if err != nil {
		return nil, err
	}
	return api.GetMentorSchedule200JSONResponse(toAPISchedule(sch)), nil
}

// PutMentorSchedule replaces a mentor's schedule (the mentor or an admin).
func (s *Server) PutMentorSchedule(ctx context.Context, request api.PutMentorScheduleRequestObject) (api.PutMentorScheduleResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	body := request.Body
	if body == nil {
		return nil, NewError(http.StatusBadRequest, "A request body is required.")
	}
	sch := booking.Schedule{MentorID: request.MentorId, TimeZone: body.Timezone, Slot: booking.DefaultSlot,
		MinNotice: booking.DefaultMinNotice, MaxAdvance: booking.DefaultMaxAdvance}
	if body.SlotMinutes != nil {
		sch.Slot = time.Duration(*body.SlotMinutes) * time.Minute
	}
	if body.BufferMinutes != nil {
		sch.Buffer = time.Duration(*body.BufferMinutes) * time.Minute
	}
	if body.MinNoticeMinutes != nil {
		sch.MinNotice = time.Duration(*body.MinNoticeMinutes) * time.Minute
	}
	if body.MaxAdvanceDays != nil {
		sch.MaxAdvance = time.Duration(*body.MaxAdvanceDays) * 24 * time.Hour
	}
	if body.ZoomUser != nil {
		sch.ZoomUser = *body.ZoomUser
	}
	for i, w := range body.WorkingHours {
		d, ok := booking.ParseWeekday(string(w.Weekday))
		if !ok {
			return nil, &booking.ValidationError{Field: booking.WorkingHoursField(i) + ".weekday", Message: "is not a weekday (mon … sun)"}
		}
		start, err := booking.ParseClock(w.Start)
		if err != nil {
			return nil, &booking.ValidationError{Field: booking.WorkingHoursField(i) + ".start", Message: err.Error()}
		}
		end, err := booking.ParseClock(w.End)
		if err != nil {
			return nil, &booking.ValidationError{Field: booking.WorkingHoursField(i) + ".end", Message: err.Error()}
		}
		sch.WorkingHours = append(sch.WorkingHours, booking.WorkingHours{Weekday: d, StartMin: start, EndMin: end})
	}
	stored, err := svc.PutSchedule(ctx, a, sch)
	if err != nil {
		return nil, err
	}
	return api.PutMentorSchedule200JSONResponse(toAPISchedule(stored)), nil
}
