package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/webhooks"
)

// BookingDeps is what the booking and mentor endpoints need; cmd/gateway fills it in.
type BookingDeps struct {
	// Service is the booking domain; nil answers 501.
	Service *booking.Service
	// Attendance lists the joins and leaves Zoom reported for a booking;
	// nil answers 501 on the attendance route.
	Attendance AttendanceLister
}

// AttendanceLister lists a booking's attendance records in time order
// (*webhooks.AttendanceLog implements it).
type AttendanceLister interface {
	List(ctx context.Context, bookingID string) ([]webhooks.Attendance, error)
}

// BookingErrors maps the booking domain's errors to problems; register it
// in Deps.ErrorMappers.
func BookingErrors(err error) *Error {
	var (
		fe *booking.ForbiddenError
		ce *booking.ConflictError
		ve *booking.ValidationError
		pe *booking.ParameterError
		re *booking.RescheduleRefusedError
	)
	switch {
	case errors.As(err, &pe):
		// A malformed parameter is the request validator's 400, not a 422.
		return invalidRequest([]FieldError{{Field: pe.Field, Message: pe.Message}}, err)
	case errors.As(err, &fe):
		return &Error{Status: http.StatusForbidden, Slug: "forbidden", Title: "Forbidden", Detail: fe.Reason, Err: err}
	case errors.As(err, &ce):
		return &Error{Status: http.StatusConflict, Slug: "conflict", Title: "Conflict",
			Detail: "A booking that is " + string(ce.Status) + " cannot be changed that way (" + ce.Action + ").", Err: err}
	case errors.As(err, &ve):
		fields := []FieldError{{Field: ve.Field, Message: ve.Message}}
		for _, f := range ve.Also {
			fields = append(fields, FieldError{Field: f, Message: ve.Message})
		}
		return &Error{Status: http.StatusUnprocessableEntity, Slug: "unprocessable", Title: "Unprocessable content",
			Detail: ve.Message, Fields: fields, Err: err}
	case errors.Is(err, booking.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Slug: "not-found", Title: "Not found", Detail: "No such booking.", Err: err}
	case errors.Is(err, booking.ErrNoSchedule):
		return &Error{Status: http.StatusNotFound, Slug: "not-found", Title: "Not found", Detail: "The mentor has no schedule.", Err: err}
	case errors.Is(err, booking.ErrCandidateOverlap):
		// Before ErrOverlap, which it also is.
		return &Error{Status: http.StatusConflict, Slug: "candidate-overlap", Title: "Candidate overlap",
			Detail: "The candidate already has a session at that time.", Err: err}
	case errors.Is(err, booking.ErrOverlap):
		return &Error{Status: http.StatusConflict, Slug: "booking-overlap", Title: "Booking overlap",
			Detail: "The slot overlaps another booking or a busy time of the mentor.", Err: err}
	case errors.Is(err, booking.ErrStale):
		return &Error{Status: http.StatusPreconditionFailed, Slug: "precondition-failed", Title: "Precondition failed",
			Detail: "If-Match does not match the booking's current ETag; read it again.", Err: err}
	case errors.Is(err, booking.ErrPreconditionRequired):
		return &Error{Status: http.StatusPreconditionRequired, Slug: "precondition-required", Title: "Precondition required",
			Detail: "Send If-Match with the booking's ETag.", Err: err}
	case errors.Is(err, booking.ErrIdempotencyMismatch):
		return &Error{Status: http.StatusUnprocessableEntity, Slug: "idempotency-key-reused", Title: "Idempotency key reused",
			Detail: "This Idempotency-Key was used with a different request body.", Err: err}
	case errors.As(err, &re):
		return &Error{Status: http.StatusFailedDependency, Slug: "reschedule-refused", Title: "Reschedule refused",
			Detail: "A provider refused the new time (" + re.Reason + "); the booking keeps its previous time.", Err: err}
	case errors.Is(err, booking.ErrCalendarUnavailable):
		return &Error{Status: http.StatusBadGateway, Slug: "bad-gateway", Title: "Bad gateway",
			Detail: "A calendar of the mentor could not be read; try again.", Err: err}
	}
	return nil
}

// bookings returns the service or ErrNotImplemented.
func (s *Server) bookings() (*booking.Service, error) {
	if s.deps.Bookings.Service == nil {
		return nil, ErrNotImplemented
	}
	return s.deps.Bookings.Service, nil
}

// bookingsFor returns the booking service and the caller as the booking
// domain sees it: what every booking and mentor handler starts with.
func (s *Server) bookingsFor(ctx context.Context) (*booking.Service, booking.Actor, error) {
	svc, err := s.bookings()
	if err != nil {
		return nil, booking.Actor{}, err
	}
	a, err := actor(ctx)
	return svc, a, err
}

// actor is the authenticated caller as the booking domain sees it.
func actor(ctx context.Context) (booking.Actor, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return booking.Actor{}, auth.ErrNoToken
	}
	return booking.Actor{ID: p.Subject, Candidate: p.Has(auth.RoleCandidate), Mentor: p.Has(auth.RoleMentor),
		Admin: p.IsAdmin(), Machine: p.IsService()}, nil
}

// toAPIBooking renders a booking for caller a, its times in the booking's
// zone. A step's last_error is the provider's error, whose URLs and
// messages name the mentor's accounts: admins and service clients see it,
// the booking's candidate and mentor the step's state and, when it failed,
// the booking's failure_reason in words.
func toAPIBooking(b booking.Booking, a booking.Actor) api.Booking {
	loc, err := time.LoadLocation(b.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	id, _ := uuid.Parse(b.ID)
	out := api.Booking{
		Id: id, MentorId: b.MentorID, CandidateId: b.CandidateID, Start: b.Start.In(loc), End: b.End.In(loc),
		DurationMinutes: int(b.Duration() / time.Minute), Timezone: b.TimeZone, Topic: b.Topic,
		Status: api.BookingStatus(b.Status), CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt,
		Steps: []api.BookingStep{},
	}
	if b.Notes != "" {
		out.Notes = &b.Notes
	}
	if b.JoinURL != "" {
		out.JoinUrl = &b.JoinURL
	}
	if b.FailureReason != "" {
		out.FailureReason = &b.FailureReason
	}
	if b.RescheduleRefused != "" {
		out.RescheduleRefused = &b.RescheduleRefused
	}
	for _, st := range b.Steps {
		s := api.BookingStep{Name: api.StepName(st.Name), State: api.StepState(b.VisibleState(st)), Attempts: st.Attempts, UpdatedAt: st.UpdatedAt}
		if st.Ref != "" {
			s.ProviderRef = &st.Ref
		}
		if st.LastError != "" && (a.Admin || a.Machine) {
			s.LastError = &st.LastError
		}
		out.Steps = append(out.Steps, s)
	}
	out.Etag = representationTag(b.Version, out)
	return out
}

// representationTag is the strong entity tag of out, a booking's
// representation at version v: "<v>.<digest>", the digest (48 bits of
// SHA-256) of everything else out holds, so that the tag changes whenever
// what a GET returns does (RFC 9110 section 8.8.1), step progress included,
// while If-Match still finds the version it was read at
// (booking.VersionOfTag).
func representationTag(v int64, out api.Booking) string {
	out.Etag = ""
	body, err := json.Marshal(out)
	if err != nil {
		// Not with this type; a tag that matches no other one.
		body = []byte(uuid.NewString())
	}
	sum := sha256.Sum256(body)
	return `"` + strconv.FormatInt(v, 10) + "." + hex.EncodeToString(sum[:6]) + `"`
}

// notModified answers a GET of a booking whose If-None-Match names the
// booking's current ETag with 304 (RFC 9110 section 13.1.2: weak
// comparison, "*" matches any). The header is read from the request, not
// declared as a parameter, so the generated clients' GetBooking keeps its
// signature.
func notModified(f api.StrictHandlerFunc, operationID string) api.StrictHandlerFunc {
	if operationID != "GetBooking" {
		return f
	}
	return func(c echo.Context, request any) (any, error) {
		res, err := f(c, request)
		inm := c.Request().Header.Get("If-None-Match")
		if ok, isOK := res.(api.GetBooking200JSONResponse); err == nil && isOK && inm != "" && noneMatchHolds(inm, ok.Headers.ETag) {
			return api.GetBooking304Response{Headers: api.GetBooking304ResponseHeaders{ETag: ok.Headers.ETag}}, nil
		}
		return res, err
	}
}

// noneMatchHolds reports whether an If-None-Match value ("*" or a list of
// tags) names etag under the weak comparison: W/ prefixes are ignored.
func noneMatchHolds(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || strings.TrimPrefix(p, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

func location(id string) string { return "/v1/bookings/" + id }

// failedBooking answers a booking that failed within the wait: a provider
// refused a required step and every step was undone. The booking stays
// readable (status failed, with its failure_reason) at Location, and the
// problem names it in booking_id. 424 Failed
// Dependency, not 502: a client retries a 502 (a proxy says it when the
// gateway is away), and repeating this request only replays the failure.
func failedBooking(id string) *Error {
	return &Error{Status: http.StatusFailedDependency, Slug: "booking-failed", Title: "Booking failed",
		Detail: "A provider refused a required step of the booking; every step was undone. The failed booking, with its failure_reason, is at Location.",
		Header: http.Header{"Location": {location(id)}}, BookingID: id}
}

// ListBookings lists the caller's bookings.
func (s *Server) ListBookings(ctx context.Context, request api.ListBookingsRequestObject) (api.ListBookingsResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	p := request.Params
	q := booking.ListQuery{}
	if p.Role != nil {
		q.Role = string(*p.Role)
	}
	if p.Status != nil {
		q.Status = booking.Status(*p.Status)
	}
	// A given bound filters whatever its value (the zero time too).
	q.From, q.To = p.From, p.To
	if p.Cursor != nil {
		q.Cursor = *p.Cursor
	}
	if p.Limit != nil {
		q.Limit = *p.Limit
	}
	items, next, err := svc.List(ctx, a, q)
	if err != nil {
		return nil, err
	}
	out := api.ListBookings200JSONResponse{Items: make([]api.Booking, 0, len(items))}
	for _, b := range items {
		out.Items = append(out.Items, toAPIBooking(b, a))
	}
	if next != "" {
		out.NextCursor = &next
	}
	return out, nil
}

// CreateBooking books a session.
func (s *Server) CreateBooking(ctx context.Context, request api.CreateBookingRequestObject) (api.CreateBookingResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	body := request.Body
	if body == nil {
		return nil, NewError(http.StatusBadRequest, "A request body is required.")
	}
	req := booking.CreateRequest{
		MentorID: body.MentorId, Start: body.Start, Duration: time.Duration(body.DurationMinutes) * time.Minute,
		TimeZone: body.Timezone, Topic: body.Topic, IdempotencyKey: request.Params.IdempotencyKey,
	}
	if body.CandidateId != nil {
		req.CandidateID = *body.CandidateId
	}
	if body.Notes != nil {
		req.Notes = *body.Notes
	}
	res, err := svc.Create(ctx, a, req)
	if err != nil {
		return nil, err
	}
	if res.Booking.Status == booking.StatusFailed {
		return nil, failedBooking(res.Booking.ID)
	}
	b := toAPIBooking(res.Booking, a)
	if res.Done {
		return api.CreateBooking201JSONResponse{Body: b, Headers: api.CreateBooking201ResponseHeaders{ETag: b.Etag, Location: location(res.Booking.ID)}}, nil
	}
	return api.CreateBooking202JSONResponse{Body: b, Headers: api.CreateBooking202ResponseHeaders{ETag: b.Etag, Location: location(res.Booking.ID)}}, nil
}

// GetBooking returns one booking.
func (s *Server) GetBooking(ctx context.Context, request api.GetBookingRequestObject) (api.GetBookingResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	bk, err := svc.Get(ctx, a, request.BookingId.String())
	if err != nil {
		return nil, err
	}
	b := toAPIBooking(bk, a)
	return api.GetBooking200JSONResponse{Body: b, Headers: api.GetBooking200ResponseHeaders{ETag: b.Etag}}, nil
}

// RescheduleBooking moves a booking (If-Match required).
func (s *Server) RescheduleBooking(ctx context.Context, request api.RescheduleBookingRequestObject) (api.RescheduleBookingResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	body := request.Body
	if body == nil {
		return nil, NewError(http.StatusBadRequest, "A request body is required.")
	}
	req := booking.RescheduleRequest{Start: body.Start}
	if request.Params.IfMatch != nil {
		req.IfMatch = *request.Params.IfMatch
	}
	if request.Params.IdempotencyKey != nil {
		req.IdempotencyKey = *request.Params.IdempotencyKey
	}
	if body.DurationMinutes != nil {
		req.Duration = time.Duration(*body.DurationMinutes) * time.Minute
	}
	if body.Timezone != nil {
		req.TimeZone = *body.Timezone
	}
	if body.Reason != nil {
		req.Reason = *body.Reason
	}
	res, err := svc.Reschedule(ctx, a, request.BookingId.String(), req)
	if re := (*booking.RescheduleRefusedError)(nil); errors.As(err, &re) {
		// The 424 declares Location: the booking, which keeps its
		// previous time.
		e := BookingErrors(err)
		e.Header = http.Header{"Location": {location(request.BookingId.String())}}
		e.BookingID = request.BookingId.String()
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	if res.Booking.Status == booking.StatusFailed {
		// Refused, and the previous time could not be restored.
		return nil, failedBooking(res.Booking.ID)
	}
	b := toAPIBooking(res.Booking, a)
	if res.Done {
		return api.RescheduleBooking200JSONResponse{Body: b, Headers: api.RescheduleBooking200ResponseHeaders{ETag: b.Etag}}, nil
	}
	return api.RescheduleBooking202JSONResponse{Body: b, Headers: api.RescheduleBooking202ResponseHeaders{ETag: b.Etag}}, nil
}

// ListBookingAudit returns a booking's audit trail.
func (s *Server) ListBookingAudit(ctx context.Context, request api.ListBookingAuditRequestObject) (api.ListBookingAuditResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	cur, limit := "", 0
	if request.Params.Cursor != nil {
		cur = *request.Params.Cursor
	}
	if request.Params.Limit != nil {
		limit = *request.Params.Limit
	}
	recs, next, err := svc.Audit(ctx, a, request.BookingId.String(), cur, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListBookingAudit200JSONResponse{Items: make([]api.AuditRecord, 0, len(recs))}
	for _, r := range recs {
		id, _ := uuid.Parse(r.ID)
		bid, _ := uuid.Parse(r.BookingID)
		rec := api.AuditRecord{Id: id, BookingId: bid, At: r.At, Actor: r.Actor, Action: r.Action, ToStatus: api.BookingStatus(r.To)}
		if r.From != "" {
			from := api.BookingStatus(r.From)
			rec.FromStatus = &from
		}
		if r.Reason != "" {
			rec.Reason = &r.Reason
		}
		if len(r.Changes) > 0 {
			ch := map[string]api.AuditChange{}
			for k, c := range r.Changes {
				ch[k] = api.AuditChange{From: &c.From, To: &c.To}
			}
			rec.Changes = &ch
		}
		out.Items = append(out.Items, rec)
	}
	if next != "" {
		out.NextCursor = &next
	}
	return out, nil
}

// ListBookingAttendance returns who joined and left a booking's meeting,
// to whoever may read the booking.
func (s *Server) ListBookingAttendance(ctx context.Context, request api.ListBookingAttendanceRequestObject) (api.ListBookingAttendanceResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	if s.deps.Bookings.Attendance == nil {
		return nil, ErrNotImplemented
	}
	id := request.BookingId.String()
	if _, err := svc.Get(ctx, a, id); err != nil {
		return nil, err
	}
	recs, err := s.deps.Bookings.Attendance.List(ctx, id)
	if err != nil {
		return nil, err
	}
	out := api.ListBookingAttendance200JSONResponse{Items: make([]api.AttendanceRecord, 0, len(recs))}
	for _, r := range recs {
		rec := api.AttendanceRecord{ParticipantId: r.ParticipantID, Name: r.Name, Event: api.AttendanceRecordEventLeft, At: r.At.UTC()}
		if r.Joined {
			rec.Event = api.AttendanceRecordEventJoined
		}
		if r.Email != "" {
			rec.Email = &r.Email
		}
		out.Items = append(out.Items, rec)
	}
	return out, nil
}

// CancelBooking cancels a booking (idempotent).
func (s *Server) CancelBooking(ctx context.Context, request api.CancelBookingRequestObject) (api.CancelBookingResponseObject, error) {
	svc, a, err := s.bookingsFor(ctx)
	if err != nil {
		return nil, err
	}
	reason := ""
	if request.Body != nil {
		reason = request.Body.Reason
	}
	res, err := svc.Cancel(ctx, a, request.BookingId.String(), reason)
	if err != nil {
		return nil, err
	}
	b := toAPIBooking(res.Booking, a)
	if res.Done {
		return api.CancelBooking200JSONResponse{Body: b, Headers: api.CancelBooking200ResponseHeaders{ETag: b.Etag}}, nil
	}
	return api.CancelBooking202JSONResponse{Body: b, Headers: api.CancelBooking202ResponseHeaders{ETag: b.Etag}}, nil
}
