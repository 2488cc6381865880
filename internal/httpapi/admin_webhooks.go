package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/webhooks"
)

// WebhookEvents reads and replays stored webhook deliveries (*webhooks.Service
// through WebhookService, or a fake in tests).
type WebhookEvents interface {
	List(ctx context.Context, f webhooks.Filter) (webhooks.Page, error)
	Get(ctx context.Context, id string) (webhooks.Delivery, error)
	Replay(ctx context.Context, id string) (webhooks.Delivery, error)
}

// WebhookService adapts *webhooks.Service to WebhookEvents.
func WebhookService(s *webhooks.Service) WebhookEvents { return webhookService{s} }

type webhookService struct{ s *webhooks.Service }

func (w webhookService) List(ctx context.Context, f webhooks.Filter) (webhooks.Page, error) {
	return w.s.Events().List(ctx, f)
}

func (w webhookService) Get(ctx context.Context, id string) (webhooks.Delivery, error) {
	return w.s.Events().Get(ctx, id)
}

func (w webhookService) Replay(ctx context.Context, id string) (webhooks.Delivery, error) {
	return w.s.Replay(ctx, id)
}

// WebhookDeps is what the webhook-event admin endpoints need; cmd/gateway fills it in.
type WebhookDeps struct {
	// Events is nil until the webhooks area is wired (the endpoints answer 501).
	Events WebhookEvents
}

// requireAdmin returns the 403 problem for callers without the admin role.
func requireAdmin(ctx context.Context) *Error {
	if p, ok := auth.FromContext(ctx); ok && p.IsAdmin() {
		return nil
	}
	return NewError(http.StatusForbidden, "This endpoint needs the admin role.")
}

// webhookEventJSON renders a delivery; detail adds headers and body.
func webhookEventJSON(d webhooks.Delivery, detail bool) api.WebhookEvent {
	ev := api.WebhookEvent{
		Provider:   api.WebhookProvider(d.Provider),
		ExternalId: d.ExternalID,
		Status:     api.WebhookEventStatus(d.Status),
		ReceivedAt: d.ReceivedAt,
		Attempts:   d.Attempts,
	}
	if id, err := parseUUID(d.ID); err == nil {
		ev.Id = id
	}
	if d.EventType != "" {
		t := d.EventType
		ev.EventType = &t
	}
	if !d.ProcessedAt.IsZero() {
		t := d.ProcessedAt
		ev.ProcessedAt = &t
	}
	if d.LastError != "" {
		e := d.LastError
		ev.LastError = &e
	}
	if d.BookingID != "" {
		if id, err := parseUUID(d.BookingID); err == nil {
			ev.BookingId = &id
		}
	}
	if d.Note != "" {
		n := d.Note
		ev.Note = &n
	}
	if detail {
		h := d.Headers
		if h == nil {
			h = map[string]string{}
		}
		ev.Headers = &h
		b, enc := string(d.Body), api.WebhookEventBodyEncodingUtf8
		if !utf8.Valid(d.Body) {
			b, enc = base64.StdEncoding.EncodeToString(d.Body), api.WebhookEventBodyEncodingBase64
		}
		ev.Body, ev.BodyEncoding = &b, &enc
	}
	return ev
}

func parseUUID(s string) (openapi_types.UUID, error) {
	var u openapi_types.UUID
	err := u.UnmarshalText([]byte(s))
	return u, err
}

// ListWebhookEvents lists stored deliveries, newest first (admin role).
func (s *Server) ListWebhookEvents(ctx context.Context, request api.ListWebhookEventsRequestObject) (api.ListWebhookEventsResponseObject, error) {
	if s.deps.Webhooks.Events == nil {
		return nil, ErrNotImplemented
	}
	if e := requireAdmin(ctx); e != nil {
		return api.ListWebhookEvents403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: api.ForbiddenApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.ForbiddenResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	p := request.Params
	f := webhooks.Filter{}
	if p.Provider != nil {
		f.Provider = string(*p.Provider)
	}
	if p.Status != nil {
		f.Status = string(*p.Status)
	}
	if p.EventType != nil {
		f.EventType = *p.EventType
	}
	// A given bound filters whatever its value (the zero time too).
	f.From, f.To = p.From, p.To
	if p.Cursor != nil {
		f.Cursor = *p.Cursor
	}
	if p.Limit != nil {
		f.Limit = *p.Limit
	}
	page, err := s.deps.Webhooks.Events.List(ctx, f)
	var invalid *Error
	switch {
	case errors.Is(err, webhooks.ErrBadCursor):
		invalid = &Error{Status: http.StatusBadRequest, Slug: "validation-error", Title: "Invalid request",
			Detail: "The request is invalid: query.cursor is not a cursor this API returned.",
			Fields: []FieldError{{Field: "query.cursor", Message: "is not a valid cursor"}}}
	case errors.Is(err, webhooks.ErrBadRange):
		invalid = &Error{Status: http.StatusBadRequest, Slug: "validation-error", Title: "Invalid request",
			Detail: "The request is invalid: query.to must be after from.",
			Fields: []FieldError{{Field: "query.to", Message: "must be after from"}}}
	}
	if invalid != nil {
		return api.ListWebhookEvents400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: api.BadRequestApplicationProblemPlusJSONResponse{Body: problemFor(ctx, invalid), Headers: api.BadRequestResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	if err != nil {
		return nil, err
	}
	out := api.WebhookEventList{Items: make([]api.WebhookEvent, 0, len(page.Items))}
	for _, d := range page.Items {
		out.Items = append(out.Items, webhookEventJSON(d, false))
	}
	if page.NextCursor != "" {
		c := page.NextCursor
		out.NextCursor = &c
	}
	return api.ListWebhookEvents200JSONResponse(out), nil
}

// GetWebhookEvent returns one delivery with its raw body and safe headers (admin role).
func (s *Server) GetWebhookEvent(ctx context.Context, request api.GetWebhookEventRequestObject) (api.GetWebhookEventResponseObject, error) {
	if s.deps.Webhooks.Events == nil {
		return nil, ErrNotImplemented
	}
	if e := requireAdmin(ctx); e != nil {
		return api.GetWebhookEvent403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: api.ForbiddenApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.ForbiddenResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	d, err := s.deps.Webhooks.Events.Get(ctx, request.EventId.String())
	if errors.Is(err, webhooks.ErrNotFound) {
		e := NewError(http.StatusNotFound, "No such webhook delivery.")
		return api.GetWebhookEvent404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.NotFoundResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetWebhookEvent200JSONResponse(webhookEventJSON(d, true)), nil
}

// ReplayWebhookEvent has a delivery processed again (admin role): a new
// job, or the delivery's job waiting for a retry made to run now. 409 while
// a job holding it runs or is queued to run (the problem says when it
// runs), or when it is poison.
func (s *Server) ReplayWebhookEvent(ctx context.Context, request api.ReplayWebhookEventRequestObject) (api.ReplayWebhookEventResponseObject, error) {
	if s.deps.Webhooks.Events == nil {
		return nil, ErrNotImplemented
	}
	if e := requireAdmin(ctx); e != nil {
		return api.ReplayWebhookEvent403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: api.ForbiddenApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.ForbiddenResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	d, err := s.deps.Webhooks.Events.Replay(ctx, request.EventId.String())
	switch {
	case errors.Is(err, webhooks.ErrNotFound):
		e := NewError(http.StatusNotFound, "No such webhook delivery.")
		return api.ReplayWebhookEvent404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.NotFoundResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	case errors.Is(err, webhooks.ErrBusy):
		e := NewError(http.StatusConflict, replayBusyDetail(err))
		return api.ReplayWebhookEvent409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: api.ConflictApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.ConflictResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	case errors.Is(err, webhooks.ErrPoison):
		e := NewError(http.StatusConflict, "The delivery's body cannot be decoded, so it cannot be replayed.")
		return api.ReplayWebhookEvent409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: api.ConflictApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.ConflictResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	case err != nil:
		return nil, err
	}
	return api.ReplayWebhookEvent202JSONResponse(webhookEventJSON(d, false)), nil
}

// replayBusyDetail tells an operator why a replay was refused (err holds
// webhooks.ErrBusy): a processing job holds the delivery, and when it runs.
func replayBusyDetail(err error) string {
	const again = " Replay it once that job is done, if it still needs to be."
	var b *webhooks.BusyError
	if !errors.As(err, &b) {
		return "A processing job holds this delivery now." + again
	}
	at := b.RunsAt.UTC().Format(time.RFC3339)
	switch {
	case b.State == rivertype.JobStateRunning:
		return "A processing job is processing this delivery now." + again
	case b.Handoff:
		return "The gateway that received the delivery is processing it; a processing job is queued for it as the fallback and runs at " +
			at + " unless that processing finishes first." + again
	case b.State == rivertype.JobStateAvailable:
		return "A processing job is already queued for this delivery and runs as soon as a worker is free (due since " + at + ")." + again
	default:
		return "A processing job is already queued for this delivery and runs at " + at + "." + again
	}
}
