package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
)

const requestIDKey = "request_id"

// requestID returns the id assigned by requestIDMiddleware.
func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

type ctxKey int

const requestIDCtxKey ctxKey = iota

// RequestIDFromContext returns the request id of the request behind ctx.
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDCtxKey).(string)
	return id
}

// requestIDMiddleware takes a sane X-Request-Id from upstream (API Gateway)
// or makes one, and echoes it on the response.
func requestIDMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), requestIDCtxKey, id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// httpMetrics holds the request metrics.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gateway_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})}
	reg.MustRegister(m.duration)
	return m
}

// routeLabel is the route template (never the raw path, which would explode
// the label space), or "unmatched".
func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" && c.Response().Status != http.StatusNotFound {
		return p
	}
	return "unmatched"
}

// observe logs one JSON line per request and records its latency. It runs
// outside the error handler's reach, so it sees the final status.
func observe(logger *slog.Logger, m *httpMetrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Write the error now so the status below is the real one.
				c.Error(err)
			}
			elapsed := time.Since(start)
			status := c.Response().Status
			route := routeLabel(c)
			m.duration.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(elapsed.Seconds())
			attrs := []slog.Attr{
				slog.String("request_id", requestID(c)),
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes", c.Response().Size),
			}
			if p, ok := auth.FromContext(c.Request().Context()); ok {
				attrs = append(attrs, slog.String("sub", p.Subject))
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
				if e := errorCause(c); e != nil {
					attrs = append(attrs, slog.String("error", e.Error()))
				}
			}
			logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		}
	}
}

const errorCauseKey = "error_cause"

// errorCause returns the internal error behind a 5xx, recorded by the error handler.
func errorCause(c echo.Context) error {
	err, _ := c.Get(errorCauseKey).(error)
	return err
}

// Authenticator verifies bearer tokens.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (auth.Principal, error)
}

// openAPIGate finds the spec operation of each request, authenticates it
// when the operation is secured (401 comes before 400), and validates the
// request against the spec (400 problem+json naming each bad field).
// Requests that match no operation pass through to echo's 404/405.
type openAPIGate struct {
	router routers.Router
	spec   *openapi3.T
	authn  Authenticator
	opts   *openapi3filter.Options
}

func newOpenAPIGate(spec *openapi3.T, authn Authenticator) (*openAPIGate, error) {
	// The Host header must not be matched against servers (FACTS: oapi-codegen pitfalls).
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("httpapi: openapi router: %w", err)
	}
	return &openAPIGate{
		router: router,
		spec:   spec,
		authn:  authn,
		opts: &openapi3filter.Options{
			MultiError: true,
			// Authentication is done here, before validation, by authn.
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions: api.FormatValidators(),
		},
	}, nil
}

func (g *openAPIGate) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		route, params, err := g.router.FindRoute(req)
		if err != nil {
			return next(c) // echo answers 404 or 405
		}
		security := g.spec.Security
		if route.Operation.Security != nil {
			security = *route.Operation.Security
		}
		if len(security) > 0 {
			raw, err := bearerToken(req.Header.Get(echo.HeaderAuthorization))
			if err != nil {
				return err
			}
			p, err := g.authn.Verify(req.Context(), raw)
			if err != nil {
				return err
			}
			c.SetRequest(req.WithContext(auth.WithPrincipal(req.Context(), p)))
			req = c.Request()
		}
		if raw, _ := route.Operation.Extensions["x-raw-body"].(bool); raw {
			return next(c) // webhooks verify signatures on the raw body first
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: g.opts}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			return validationError(err)
		}
		return next(c)
	}
}

// bearerToken extracts the token of an "Authorization: Bearer …" header.
func bearerToken(h string) (string, error) {
	if h == "" {
		return "", auth.ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: malformed Authorization header", auth.ErrInvalidToken)
	}
	return strings.TrimSpace(tok), nil
}

// validationError turns kin-openapi's errors into a 400 problem that names
// each invalid field. Values from the request are not echoed back.
func validationError(err error) *Error {
	var fields []FieldError
	collectFieldErrors(err, &fields)
	if len(fields) == 0 {
		fields = []FieldError{{Field: "request", Message: "does not match the API description"}}
	}
	detail := "The request is invalid: " + fields[0].Field + " " + fields[0].Message + "."
	if len(fields) > 1 {
		detail = fmt.Sprintf("The request has %d invalid fields; see errors.", len(fields))
	}
	return &Error{Status: http.StatusBadRequest, Slug: "validation-error", Title: "Invalid request", Detail: detail, Fields: fields, Err: err}
}

func collectFieldErrors(err error, out *[]FieldError) {
	// openapi3.MultiError has its own As method, so match it by type.
	if multi, ok := err.(openapi3.MultiError); ok {
		for _, e := range multi {
			collectFieldErrors(e, out)
		}
		return
	}
	var reqErr *openapi3filter.RequestError
	if errors.As(err, &reqErr) {
		prefix := "body"
		if reqErr.Parameter != nil {
			prefix = reqErr.Parameter.In + "." + reqErr.Parameter.Name
		}
		if inner, ok := reqErr.Err.(openapi3.MultiError); ok {
			for _, e := range inner {
				*out = append(*out, schemaField(prefix, e, reqErr.Reason))
			}
			return
		}
		*out = append(*out, schemaField(prefix, reqErr.Err, reqErr.Reason))
		return
	}
	var secErr *openapi3filter.SecurityRequirementsError
	if errors.As(err, &secErr) {
		*out = append(*out, FieldError{Field: "header.Authorization", Message: "is required"})
		return
	}
	*out = append(*out, FieldError{Field: "request", Message: "is invalid"})
}

// propertyReason matches kin-openapi's reasons for unknown and missing properties.
var propertyReason = regexp.MustCompile(`^property "([^"]{1,100})" is (unsupported|missing)$`)

func schemaField(prefix string, err error, reason string) FieldError {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		field := prefix
		if ptr := se.JSONPointer(); len(ptr) > 0 {
			field += "." + strings.Join(ptr, ".")
		}
		msg := se.Reason
		// Object errors name the property in the reason; move it into the field.
		if m := propertyReason.FindStringSubmatch(se.Reason); m != nil {
			if ptr := se.JSONPointer(); len(ptr) == 0 || ptr[len(ptr)-1] != m[1] {
				field += "." + m[1]
			}
			msg = map[string]string{"unsupported": "is not a known field", "missing": "is required"}[m[2]]
		}
		return FieldError{Field: field, Message: msg}
	}
	if reason == "" && err != nil {
		reason = err.Error()
	}
	if reason == "" {
		reason = "is invalid"
	}
	// Parse errors can quote the input; keep the message short and generic.
	if len(reason) > 200 {
		reason = reason[:200]
	}
	return FieldError{Field: prefix, Message: reason}
}
