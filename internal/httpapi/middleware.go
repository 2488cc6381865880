package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
)

// requestID returns the id assigned by setRequestID.
func requestID(c echo.Context) string {
	return RequestIDFromContext(c.Request().Context())
}

type ctxKey int

const requestIDCtxKey ctxKey = iota

// RequestIDFromContext returns the request id of the request behind ctx.
func RequestIDFromContext(ctx context.Context) string {
	if rc, ok := ctx.Value(requestIDCtxKey).(*requestIDContext); ok {
		return rc.id
	}
	return ""
}

// requestPathFromContext returns the path of the request behind ctx: a
// problem's instance.
func requestPathFromContext(ctx context.Context) string {
	if rc, ok := ctx.Value(requestIDCtxKey).(*requestIDContext); ok {
		return rc.path
	}
	return ""
}

// requestIDContext is the request's context with its id (and path): one
// allocation that also backs the X-Request-Id response header value, the
// random bytes of a fresh id and the request carrying this context (the
// shallow copy Request.WithContext would allocate on its own). Value
// answers requestIDCtxKey with the *requestIDContext itself, so no string
// is boxed.
type requestIDContext struct {
	context.Context
	id     string
	path   string
	header [1]string
	random [12]byte
	req    http.Request
}

func (rc *requestIDContext) Value(key any) any {
	if key == requestIDCtxKey {
		return rc
	}
	return rc.Context.Value(key)
}

// setRequestID takes a sane X-Request-Id from upstream (API Gateway) or
// makes one, echoes it on the response and puts it in the request's
// context, where requestID and RequestIDFromContext find it.
func setRequestID(c echo.Context) string {
	r := c.Request()
	rc := &requestIDContext{Context: r.Context(), id: r.Header.Get(echo.HeaderXRequestID), path: r.URL.Path}
	if !validRequestID(rc.id) {
		_, _ = rand.Read(rc.random[:])
		var id [2 * len(rc.random)]byte
		hex.Encode(id[:], rc.random[:])
		rc.id = string(id[:]) // hex.EncodeToString would allocate twice
	}
	rc.header[0] = rc.id
	// The key is canonical; assigning skips Header.Set's []string allocation.
	c.Response().Header()[echo.HeaderXRequestID] = rc.header[:]
	// WithContext (inlined) copies r into a temporary that stays on the
	// stack; the copy that carries rc lives in rc.
	rc.req = *r.WithContext(rc)
	c.SetRequest(&rc.req)
	return rc.id
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

	// observers caches duration's children by label values, so a request
	// costs one map lookup instead of WithLabelValues (UTF-8 checks, FNV
	// hashing, a lock, strconv.Itoa of the status). Copy on write: read
	// without locking, replaced under mu when a label set is first seen.
	observers atomic.Pointer[map[durationLabels]prometheus.Observer]
	mu        sync.Mutex
}

// durationLabels are duration's label values, the status still an int.
type durationLabels struct {
	route, method string
	status        int
}

// maxCachedObservers bounds the cache: the method label comes from the
// client, so the label space is not closed. Beyond it, WithLabelValues.
const maxCachedObservers = 512

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gateway_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})}
	m.observers.Store(&map[durationLabels]prometheus.Observer{})
	reg.MustRegister(m.duration)
	return m
}

// observer returns duration's child for the labels.
func (m *httpMetrics) observer(l durationLabels) prometheus.Observer {
	if o, ok := (*m.observers.Load())[l]; ok {
		return o
	}
	o := m.duration.WithLabelValues(l.route, l.method, strconv.Itoa(l.status))
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.observers.Load()
	if _, ok := old[l]; !ok && len(old) < maxCachedObservers {
		next := make(map[durationLabels]prometheus.Observer, len(old)+1)
		maps.Copy(next, old)
		next[l] = o
		m.observers.Store(&next)
	}
	return o
}

// routeLabel is the route template (never the raw path, which would explode
// the label space), or "unmatched".
func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" && c.Response().Status != http.StatusNotFound {
		return p
	}
	return "unmatched"
}

// methodLabel is a request's method as a metric label: the methods of
// RFC 9110 and PATCH as they are, any other "other". The method is the
// client's to choose, and every distinct label value is a series of its
// own.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// observe gives each request its id (setRequestID), then logs one JSON line
// per request and records its latency. It runs outside the error handler's
// reach, so it sees the final status. It is one middleware, not two,
// because echo builds the middleware chain for every request: each layer
// costs an allocation.
func observe(logger *slog.Logger, m *httpMetrics) echo.MiddlewareFunc {
	// The line goes straight to the handler, as Logger.LogAttrs would send
	// it, without the runtime.Callers and time.Now that LogAttrs pays on
	// every call: the source of every access line is this function.
	var pcs [1]uintptr
	runtime.Callers(1, pcs[:])
	pc := pcs[0]
	handler := logger.Handler()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := setRequestID(c)
			start := time.Now()
			err := next(c)
			if err != nil {
				// Write the error now so the status below is the real one.
				c.Error(err)
			}
			end := time.Now()
			elapsed := end.Sub(start)
			req := c.Request()
			status := c.Response().Status
			route := routeLabel(c)
			m.observer(durationLabels{route: route, method: methodLabel(req.Method), status: status}).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			ctx := req.Context()
			if !handler.Enabled(ctx, level) {
				return nil
			}
			attrs := make([]slog.Attr, 0, 8)
			attrs = append(attrs,
				slog.String("request_id", id),
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes", c.Response().Size),
			)
			if p, ok := auth.FromContext(ctx); ok {
				attrs = append(attrs, slog.String("sub", p.Subject))
			}
			if e := errorCause(c); e != nil {
				attrs = append(attrs, slog.String("error", e.Error()))
			}
			r := slog.NewRecord(end, level, "request", pc)
			r.AddAttrs(attrs...)
			_ = handler.Handle(ctx, r)
			return nil
		}
	}
}

const errorCauseKey = "error_cause"

// errorCause returns the internal error behind a 5xx, or why a bearer token
// was refused, recorded by the error handler.
func errorCause(c echo.Context) error {
	err, _ := c.Get(errorCauseKey).(error)
	return err
}

// Authenticator verifies bearer tokens.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (auth.Principal, error)
}

// openAPIGate finds the spec operation of each request, authenticates it
// when the operation is secured, checks that the caller holds one of the
// operation's x-roles, and validates the request against the spec (400
// problem+json naming each bad field, a query parameter given more times
// than it takes values included), in that order: 401, 403, 400.
// Requests that match no operation pass through to echo's 404/405, and
// requests under webhookPrefix pass through without routing.
type openAPIGate struct {
	router routers.Router
	spec   *openapi3.T
	authn  Authenticator
	opts   *openapi3filter.Options
	// roles are each secured operation's x-roles.
	roles map[*openapi3.Operation][]auth.Role
	// single are each operation's query parameters that take one value.
	single map[*openapi3.Operation][]string
	// echoPaths are the spec's paths as echo routes them ("/v1/x/:id").
	echoPaths map[string]bool
}

func newOpenAPIGate(spec *openapi3.T, authn Authenticator) (*openAPIGate, error) {
	// The Host header must not be matched against servers (FACTS: oapi-codegen pitfalls).
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("httpapi: openapi router: %w", err)
	}
	if err := checkWebhookOperations(spec); err != nil {
		return nil, err
	}
	roles, err := operationRoles(spec)
	if err != nil {
		return nil, err
	}
	return &openAPIGate{
		router:    router,
		spec:      spec,
		authn:     authn,
		roles:     roles,
		single:    singleQueryParams(spec),
		echoPaths: echoPaths(spec),
		opts: &openapi3filter.Options{
			MultiError: true,
			// Authentication is done here, before validation, by authn.
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SchemaValidationOptions: api.FormatValidators(),
		},
	}, nil
}

// echoPaths returns the spec's paths written as echo's routes: each
// "{name}" parameter as ":name".
func echoPaths(spec *openapi3.T) map[string]bool {
	out := map[string]bool{}
	for path := range spec.Paths.Map() {
		out[openAPIParam.ReplaceAllString(path, ":$1")] = true
	}
	return out
}

// openAPIParam is a path parameter of an OpenAPI path template.
var openAPIParam = regexp.MustCompile(`\{([^}/]+)\}`)

// operationRoles reads the x-roles of every secured operation: the roles
// (auth.Role names) allowed to call it, which the gate enforces. A secured
// operation without x-roles, or naming a role no token can hold, is an
// error: the spec would not say who may call it.
func operationRoles(spec *openapi3.T) (map[*openapi3.Operation][]auth.Role, error) {
	out := map[*openapi3.Operation][]auth.Role{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			security := spec.Security
			if op.Security != nil {
				security = *op.Security
			}
			if len(security) == 0 {
				continue
			}
			raw, _ := op.Extensions["x-roles"].([]any)
			if len(raw) == 0 {
				return nil, fmt.Errorf("httpapi: %s %s: a secured operation needs x-roles", method, path)
			}
			for _, r := range raw {
				switch role, _ := r.(string); auth.Role(role) {
				case auth.RoleCandidate, auth.RoleMentor, auth.RoleAdmin, auth.RoleService:
					out[op] = append(out[op], auth.Role(role))
				default:
					return nil, fmt.Errorf("httpapi: %s %s: x-roles names %v, not a role (candidate, mentor, admin, service)", method, path, r)
				}
			}
		}
	}
	return out, nil
}

// singleQueryParams lists, for each operation, its query parameters that
// take one value (all but arrays), in the order the spec declares them:
// the path's parameters, then the operation's (which override a path's
// parameter of the same name).
func singleQueryParams(spec *openapi3.T) map[*openapi3.Operation][]string {
	out := map[*openapi3.Operation][]string{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			var names []string
			isArray := map[string]bool{}
			for _, ps := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, ref := range ps {
					p := ref.Value
					if p == nil || p.In != openapi3.ParameterInQuery {
						continue
					}
					if _, seen := isArray[p.Name]; !seen {
						names = append(names, p.Name)
					}
					isArray[p.Name] = p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Type.Is(openapi3.TypeArray)
				}
			}
			names = slices.DeleteFunc(names, func(n string) bool { return isArray[n] })
			if len(names) > 0 {
				out[op] = names
			}
		}
	}
	return out
}

// repeatedQuery names each query parameter of op that takes one value but
// is given more than once in req (kin-openapi validates the first value
// only, and the generated binding refused the request with a 400 naming
// no field).
func (g *openAPIGate) repeatedQuery(op *openapi3.Operation, req *http.Request) []FieldError {
	names := g.single[op]
	if len(names) == 0 || req.URL.RawQuery == "" {
		return nil
	}
	q := req.URL.Query()
	var out []FieldError
	for _, n := range names {
		if len(q[n]) > 1 {
			out = append(out, FieldError{Field: "query." + n, Message: "must be given at most once"})
		}
	}
	return out
}

// forbiddenRoles is the 403 for a caller who holds none of an operation's roles.
func forbiddenRoles(roles []auth.Role) *Error {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return NewError(http.StatusForbidden, "This operation needs one of the roles "+strings.Join(names, ", ")+"; the token holds none of them.")
}

// webhookPrefix is where the intake routes live. Every operation a path
// under it can match takes the raw body and no bearer token (checked by
// checkWebhookOperations), so for these requests the gate would find the
// route only to pass it on; it passes them on before routing instead
// (FindRoute was ~1.5 % of the gateway's CPU under webhook load). Unknown
// paths and methods under it still get echo's 404/405.
const webhookPrefix = "/webhooks/"

// checkWebhookOperations makes sure the gate may skip webhookPrefix: each
// operation whose path template can match a path under it (a literal
// prefix, or a parameter as the first segment) must be x-raw-body without
// security requirements, which the gate would pass on anyway.
func checkWebhookOperations(spec *openapi3.T) error {
	for path, item := range spec.Paths.Map() {
		if !strings.HasPrefix(path, webhookPrefix) && !strings.HasPrefix(path, "/{") {
			continue
		}
		for method, op := range item.Operations() {
			security := spec.Security
			if op.Security != nil {
				security = *op.Security
			}
			if raw, _ := op.Extensions["x-raw-body"].(bool); !raw || len(security) > 0 {
				return fmt.Errorf("httpapi: %s %s: operations under %s must be x-raw-body without security (the OpenAPI gate skips them)", method, path, webhookPrefix)
			}
		}
	}
	return nil
}

func (g *openAPIGate) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if strings.HasPrefix(req.URL.Path, webhookPrefix) {
			return next(c)
		}
		route, params, err := g.router.FindRoute(req)
		if err != nil {
			if errors.Is(err, routers.ErrPathNotFound) && g.echoPaths[c.Path()] {
				// Echo matched an operation with an empty path
				// parameter ("/v1/mentors//schedule") that the spec's
				// router does not: no such resource, for anyone, before
				// the operation's binder (400) or its security.
				return NewError(http.StatusNotFound, "No such resource: a path segment is empty.")
			}
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
			if roles := g.roles[route.Operation]; !slices.ContainsFunc(roles, p.Has) {
				return forbiddenRoles(roles)
			}
			c.SetRequest(req.WithContext(auth.WithPrincipal(req.Context(), p)))
			req = c.Request()
		}
		if raw, _ := route.Operation.Extensions["x-raw-body"].(bool); raw {
			return next(c) // webhooks verify signatures on the raw body first
		}
		if route.Operation.RequestBody != nil && isJSON(req.Header.Get(echo.HeaderContentType)) {
			if err := oneJSONValue(req); err != nil {
				return err
			}
		}
		if bad := unstorableParams(route, params, req); len(bad) > 0 {
			return invalidRequest(bad, nil)
		}
		repeated := g.repeatedQuery(route.Operation, req)
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: g.opts}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			if len(repeated) == 0 {
				return validationError(err)
			}
			return invalidRequest(withFieldErrors(repeated, err), err)
		}
		if len(repeated) > 0 {
			return invalidRequest(repeated, nil)
		}
		return next(c)
	}
}

// isJSON reports a JSON media type (application/json or a +json type).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"))
}

// oneJSONValue makes sure a JSON request body is exactly one JSON value,
// whitespace around it allowed: the decoders after the gate (kin-openapi's
// and the generated handlers') stop after the first value and would take
// `{…} garbage` for `{…}`. A body that is not JSON gets the same 400 as
// one with more after its value, naming where it goes wrong (jsonSyntax).
// The body stays readable for them.
func oneJSONValue(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	data, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return err // 413 from the body limit
		}
		return invalidRequest([]FieldError{{Field: "body", Message: "could not be read"}}, err)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	req.Body, _ = req.GetBody()
	if len(data) == 0 {
		return nil // kin-openapi answers a missing required body
	}
	if json.Valid(data) {
		if f, ok := unstorableString(data); ok {
			return invalidRequest([]FieldError{f}, nil)
		}
		return nil
	}
	// What a decoder reading one value says; when that value is fine, the
	// whole body's error names what follows it.
	err = json.NewDecoder(bytes.NewReader(data)).Decode(new(json.RawMessage))
	if err == nil {
		err = json.Unmarshal(data, new(json.RawMessage))
	}
	msg := jsonSyntax(err)
	if msg == "" {
		msg = "is not valid JSON"
	}
	return invalidRequest([]FieldError{{Field: "body", Message: msg}}, err)
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
	return invalidRequest(fields, err)
}

// withFieldErrors adds to fields the field errors of err whose field
// fields does not name yet (a repeated parameter whose first value is
// invalid too is named once, as repeated).
func withFieldErrors(fields []FieldError, err error) []FieldError {
	var more []FieldError
	collectFieldErrors(err, &more)
	for _, f := range more {
		if !slices.ContainsFunc(fields, func(g FieldError) bool { return g.Field == f.Field }) {
			fields = append(fields, f)
		}
	}
	return fields
}

// invalidRequest is the 400 validation-error problem naming fields: what
// the request validator answers, and the error mappers for malformed input
// only a handler or the domain can find.
func invalidRequest(fields []FieldError, err error) *Error {
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
		if se.SchemaField == "minProperties" && se.Schema != nil && len(se.Schema.Properties) > 0 {
			// kin-openapi says "there must be at least 1 properties".
			msg = fmt.Sprintf("must have at least %d of the fields %s", se.Schema.MinProps,
				strings.Join(slices.Sorted(maps.Keys(se.Schema.Properties)), ", "))
		}
		return FieldError{Field: field, Message: msg}
	}
	if msg := jsonSyntax(err); msg != "" {
		return FieldError{Field: prefix, Message: msg}
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

// jsonSyntax describes a body that is not JSON at all ("" for other
// errors), with where it goes wrong: kin-openapi only says it "failed to
// decode request body". Nothing of the body is quoted but the one character
// the decoder stopped at.
func jsonSyntax(err error) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "is not valid JSON: it ends too early"
	case errors.Is(err, io.EOF):
		return "is not valid JSON: it holds no value"
	}
	return ""
}

// unstorableParams names each parameter of the operation whose value is
// not UTF-8 or holds a NUL character: text no database column takes
// (PostgreSQL refuses both), which kin-openapi's patterns and lengths do
// not catch, and which no user id, idempotency key, ETag or filter holds.
func unstorableParams(route *routers.Route, pathParams map[string]string, req *http.Request) []FieldError {
	var out []FieldError
	var query map[string][]string
	check := func(in, name string, vs []string) {
		for _, v := range vs {
			if msg := unstorable(v); msg != "" {
				out = append(out, FieldError{Field: in + "." + name, Message: msg})
				return
			}
		}
	}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, ref := range ps {
			p := ref.Value
			if p == nil {
				continue
			}
			switch p.In {
			case openapi3.ParameterInPath:
				v := pathParams[p.Name]
				if u, err := url.PathUnescape(v); err == nil {
					v = u // the router matches the escaped path
				}
				check(p.In, p.Name, []string{v})
			case openapi3.ParameterInQuery:
				if req.URL.RawQuery == "" {
					continue
				}
				if query == nil {
					query = req.URL.Query()
				}
				check(p.In, p.Name, query[p.Name])
			case openapi3.ParameterInHeader:
				check(p.In, p.Name, req.Header.Values(p.Name))
			}
		}
	}
	return out
}

// unstorable says what is wrong with s as text ("" when nothing is).
func unstorable(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not hold a NUL character"
	}
	return ""
}

// unstorableString finds the first string of a JSON document (data, valid
// JSON) that the decoders would not keep as sent, or no database column
// takes: bytes that are not UTF-8 and a lone UTF-16 surrogate escape
// (\ud800), which encoding/json silently turns into U+FFFD, and a NUL
// character (\u0000). It names the string's field ("body.topic", the key
// itself for a bad key). Bodies that are UTF-8 without a \u escape, nearly
// all, are not walked.
func unstorableString(data []byte) (FieldError, bool) {
	if utf8.Valid(data) && !bytes.Contains(data, []byte(`\u`)) {
		return FieldError{}, false
	}
	type frame struct {
		array bool
		index int
		key   string
		isKey bool // an object's next string is a key
	}
	var stack []frame
	field := func() string {
		f := "body"
		for _, fr := range stack {
			if fr.array {
				f += "." + strconv.Itoa(fr.index)
			} else {
				f += "." + fr.key
			}
		}
		return f
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		from := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return FieldError{}, false // io.EOF: data is valid JSON
		}
		to := dec.InputOffset()
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && !stack[len(stack)-1].array {
				stack[len(stack)-1].isKey = true
			}
			continue
		}
		key := top != nil && !top.array && top.isKey
		if top != nil && top.array {
			top.index++
		}
		if s, ok := tok.(string); ok {
			raw := data[from:to]
			raw = raw[bytes.IndexByte(raw, '"'):]
			if key {
				top.key, top.isKey = s, false
			}
			if msg := jsonStringProblem(raw); msg != "" {
				return FieldError{Field: field(), Message: msg}, true
			}
			if key {
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{isKey: true})
		case json.Delim('['):
			stack = append(stack, frame{array: true, index: -1})
		default:
			if top != nil && !top.array {
				top.isKey = true
			}
		}
	}
}

// jsonStringProblem checks a JSON string as written (quotes included,
// valid JSON).
func jsonStringProblem(raw []byte) string {
	if !utf8.Valid(raw) {
		return "is not valid UTF-8"
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r, _ := strconv.ParseUint(string(raw[i+1:i+5]), 16, 32)
		i += 4
		switch {
		case r == 0:
			return "must not hold a NUL character (\\u0000)"
		case r >= 0xD800 && r < 0xDC00:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo, err := strconv.ParseUint(string(raw[i+3:i+7]), 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return "holds a lone UTF-16 surrogate (\\ud800 to \\udfff), which is not a character"
		case r >= 0xDC00 && r < 0xE000:
			return "holds a lone UTF-16 surrogate (\\ud800 to \\udfff), which is not a character"
		}
	}
	return ""
}
