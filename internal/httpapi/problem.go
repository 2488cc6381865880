package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/store"
)

// retryAfterUnavailable is the Retry-After (seconds) of a 503 answered
// while the database or the token signing keys cannot be reached.
const retryAfterUnavailable = "5"

// ProblemBase is the prefix of every problem type URI. The URIs are stable
// identifiers clients may switch on; they need not resolve.
const ProblemBase = "https://spotlight.dev/problems/"

// FieldError names one invalid part of a request.
type FieldError struct {
	// Field is where the value is: "body." and its path in the JSON body,
	// array indexes as segments ("body.start", "body.working_hours.2.end"),
	// or "query.limit", "header.Idempotency-Key", "path.bookingId".
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	// BookingID is the extension member of the problems about one
	// booking (openapi.yaml's BookingProblem: the 424s).
	BookingID string `json:"booking_id,omitempty"`
}

// Error is an error a handler returns to answer with a specific problem.
// Detail is shown to the client, so it must never carry internal details or
// secrets; Err is the cause, logged and reported but never shown.
type Error struct {
	Status int
	// Slug is the last segment of the problem type URI ("not-found").
	Slug   string
	Title  string
	Detail string
	Fields []FieldError
	// BookingID, when set, is sent as the problem's booking_id member.
	BookingID string
	// Header holds extra response headers (WWW-Authenticate, Retry-After).
	Header http.Header
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Slug)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Problem returns the client-facing document of e.
func (e *Error) Problem() Problem {
	return Problem{Type: ProblemBase + e.Slug, Title: e.Title, Status: e.Status, Detail: e.Detail, Errors: e.Fields, BookingID: e.BookingID}
}

// Common problems.
var (
	// ErrNotImplemented answers endpoints described in openapi.yaml whose
	// implementation has not landed yet.
	ErrNotImplemented = &Error{Status: http.StatusNotImplemented, Slug: "not-implemented", Title: "Not implemented",
		Detail: "This endpoint is described in the API but not implemented yet."}
)

// NewError returns an *Error for status with a standard slug and title.
func NewError(status int, detail string) *Error {
	slug, title := statusSlug(status)
	return &Error{Status: status, Slug: slug, Title: title, Detail: detail}
}

// statusSlug gives the standard problem slug and title of a status.
func statusSlug(status int) (string, string) {
	switch status {
	case http.StatusBadRequest:
		return "bad-request", "Bad request"
	case http.StatusUnauthorized:
		return "unauthorized", "Unauthorized"
	case http.StatusForbidden:
		return "forbidden", "Forbidden"
	case http.StatusNotFound:
		return "not-found", "Not found"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed", "Method not allowed"
	case http.StatusConflict:
		return "conflict", "Conflict"
	case http.StatusPreconditionFailed:
		return "precondition-failed", "Precondition failed"
	case http.StatusRequestEntityTooLarge:
		return "payload-too-large", "Payload too large"
	case http.StatusUnsupportedMediaType:
		return "unsupported-media-type", "Unsupported media type"
	case http.StatusUnprocessableEntity:
		return "unprocessable", "Unprocessable content"
	case http.StatusPreconditionRequired:
		return "precondition-required", "Precondition required"
	case http.StatusTooManyRequests:
		return "rate-limited", "Too many requests"
	case http.StatusNotImplemented:
		return "not-implemented", "Not implemented"
	case http.StatusServiceUnavailable:
		return "unavailable", "Service unavailable"
	case http.StatusBadGateway:
		return "bad-gateway", "Bad gateway"
	case http.StatusGatewayTimeout:
		return "gateway-timeout", "Gateway timeout"
	case StatusClientClosedRequest:
		return "client-closed-request", "Client closed request"
	default:
		if status >= 500 {
			return "internal", "Internal server error"
		}
		return "error", http.StatusText(status)
	}
}

// StatusClientClosedRequest is the status (nginx's 499) logged and counted
// for a request whose client hung up before it was answered and which then
// failed for that reason: nobody reads the answer, and it is not the
// gateway's error (no 5xx, no Sentry report).
const StatusClientClosedRequest = 499

// errClientGone marks a handler's error that came from its request's
// context being cancelled because the client went away (see errorHandler).
var errClientGone = errors.New("httpapi: client closed the request")

// ErrorMapper turns a domain error into an *Error, or returns nil when it
// does not know err. Packages register theirs with Deps.ErrorMappers.
type ErrorMapper func(err error) *Error

// toError maps any error returned by a handler or middleware to an *Error:
// the one place where errors become statuses.
func toError(err error, mappers []ErrorMapper) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range mappers {
		if e := m(err); e != nil {
			return e
		}
	}
	var he *echo.HTTPError
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return &Error{Status: 401, Slug: "unauthorized", Title: "Unauthorized", Detail: "A bearer token is required.",
			Header: http.Header{"WWW-Authenticate": {`Bearer realm="spotlight"`}}, Err: err}
	case errors.Is(err, auth.ErrInvalidToken):
		return &Error{Status: 401, Slug: "invalid-token", Title: "Unauthorized", Detail: "The bearer token is invalid or expired.",
			Header: http.Header{"WWW-Authenticate": {`Bearer realm="spotlight", error="invalid_token"`}}, Err: err}
	case errors.Is(err, auth.ErrKeysUnavailable):
		// Neither accepted nor refused: a 401 would tell the client its
		// token is bad and make it sign the user out.
		return &Error{Status: http.StatusServiceUnavailable, Slug: "unavailable", Title: "Service unavailable",
			Detail: "The gateway cannot verify tokens right now; retry later.",
			Header: http.Header{"Retry-After": {retryAfterUnavailable}}, Err: err}
	case store.Unavailable(err):
		// The database is down or failing over: the request may be sent
		// again, and the gateway has nothing to fix.
		return &Error{Status: http.StatusServiceUnavailable, Slug: "unavailable", Title: "Service unavailable",
			Detail: "The gateway cannot reach its database right now; retry later.",
			Header: http.Header{"Retry-After": {retryAfterUnavailable}}, Err: err}
	case errors.Is(err, errClientGone):
		return &Error{Status: StatusClientClosedRequest, Slug: "client-closed-request", Title: "Client closed request",
			Detail: "The client closed the connection before the answer was ready.", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: 504, Slug: "gateway-timeout", Title: "Gateway timeout", Err: err}
	case errors.As(err, &he):
		e := NewError(he.Code, "")
		e.Err = err
		switch he.Code {
		case http.StatusNotFound:
			e.Detail = "No such resource."
		case http.StatusMethodNotAllowed:
			e.Detail = "The resource does not support this method."
		case http.StatusRequestEntityTooLarge:
			e.Detail = "The request body is too large."
		case http.StatusBadRequest, http.StatusUnsupportedMediaType:
			e.Detail = clientMessage(he)
		}
		return e
	}
	return &Error{Status: 500, Slug: "internal", Title: "Internal server error",
		Detail: "The gateway failed to handle the request; it has been reported.", Err: err}
}

// clientMessage returns an echo error message that is safe to show (echo's
// bind errors describe the JSON problem without echoing secrets).
func clientMessage(he *echo.HTTPError) string {
	msg, ok := he.Message.(string)
	if !ok || len(msg) > 300 {
		return "The request is malformed."
	}
	return strings.TrimSpace(msg)
}

// problemOf is the document of e answering the request behind ctx, with the
// request's path as instance and its request id: the one place every
// problem the API answers (written by the error handler, or a typed
// response of a handler through problemFor) gets them.
func problemOf(ctx context.Context, e *Error) Problem {
	p := e.Problem()
	p.Instance = requestPathFromContext(ctx)
	p.RequestID = RequestIDFromContext(ctx)
	return p
}

// writeProblem writes e as application/problem+json.
func writeProblem(c echo.Context, e *Error) error {
	p := problemOf(c.Request().Context(), e)
	for k, vs := range e.Header {
		for _, v := range vs {
			c.Response().Header().Add(k, v)
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if c.Request().Method == http.MethodHead {
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		return c.NoContent(e.Status)
	}
	return c.Blob(e.Status, "application/problem+json", body)
}
