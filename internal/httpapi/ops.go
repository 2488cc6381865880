package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	gateway "github.com/spotlight/gateway"
	"github.com/spotlight/gateway/api"
)

//go:embed docs/index.html
var docsHTML []byte

//go:embed docs/redoc.standalone.js
var redocJS []byte

// serveRedoc serves the embedded Redoc bundle (no CDN).
func serveRedoc(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", redocJS)
}

// problemFor builds a spec Problem for a typed error response: problemOf's
// document (instance, request id, field errors) as the generated type.
func problemFor(ctx context.Context, e *Error) api.Problem {
	d := problemOf(ctx, e)
	p := api.Problem{Type: d.Type, Title: d.Title, Status: d.Status, Detail: optional(d.Detail), Instance: optional(d.Instance),
		RequestId: optional(d.RequestID)}
	if len(d.Errors) > 0 {
		errs := make([]api.FieldError, 0, len(d.Errors))
		for _, f := range d.Errors {
			errs = append(errs, api.FieldError{Field: f.Field, Message: f.Message})
		}
		p.Errors = &errs
	}
	return p
}

// optional is nil for "", else a pointer to s (an omitted member).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// GetHealthz answers while the process is alive.
func (s *Server) GetHealthz(context.Context, api.GetHealthzRequestObject) (api.GetHealthzResponseObject, error) {
	return api.GetHealthz200JSONResponse{Status: api.HealthStatusOk}, nil
}

// GetReadyz answers 200 when every readiness check passes (database
// reachable, migrations applied) and 503 naming the failing checks otherwise.
func (s *Server) GetReadyz(ctx context.Context, _ api.GetReadyzRequestObject) (api.GetReadyzResponseObject, error) {
	if s.deps.Ready == nil {
		return api.GetReadyz200JSONResponse{Status: api.HealthStatusOk}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	checks := map[string]string{}
	var failed []string
	for name, err := range s.deps.Ready(ctx) {
		if err != nil {
			checks[name] = "failing"
			failed = append(failed, name)
			s.deps.Logger.Warn("readiness check failed", "check", name, "error", err.Error())
			continue
		}
		checks[name] = "ok"
	}
	if len(failed) > 0 {
		e := NewError(http.StatusServiceUnavailable, "Not ready: "+joinSorted(failed)+".")
		retry, _ := strconv.Atoi(retryAfterUnavailable)
		return api.GetReadyz503ApplicationProblemPlusJSONResponse{ServiceUnavailableApplicationProblemPlusJSONResponse: api.ServiceUnavailableApplicationProblemPlusJSONResponse{
			Body: problemFor(ctx, e), Headers: api.ServiceUnavailableResponseHeaders{RetryAfter: &retry, XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	return api.GetReadyz200JSONResponse{Status: api.HealthStatusOk, Checks: &checks}, nil
}

// GetOpenAPISpec serves openapi.yaml as it is in the repository.
func (s *Server) GetOpenAPISpec(context.Context, api.GetOpenAPISpecRequestObject) (api.GetOpenAPISpecResponseObject, error) {
	return api.GetOpenAPISpec200ApplicationyamlResponse{Body: bytes.NewReader(gateway.OpenAPI), ContentLength: int64(len(gateway.OpenAPI))}, nil
}

// GetDocs serves the API reference page, rendered by the embedded Redoc bundle.
func (s *Server) GetDocs(context.Context, api.GetDocsRequestObject) (api.GetDocsResponseObject, error) {
	return api.GetDocs200TexthtmlResponse{Body: bytes.NewReader(docsHTML), ContentLength: int64(len(docsHTML))}, nil
}

// GetJWKS serves the dev issuer's keys; 404 outside dev auth.
func (s *Server) GetJWKS(ctx context.Context, _ api.GetJWKSRequestObject) (api.GetJWKSResponseObject, error) {
	if s.deps.DevJWKS == nil {
		e := NewError(http.StatusNotFound, "The gateway publishes keys only in dev auth mode.")
		return api.GetJWKS404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse{Body: problemFor(ctx, e), Headers: api.NotFoundResponseHeaders{XRequestId: RequestIDFromContext(ctx)}}}, nil
	}
	var set api.JWKS
	if err := json.Unmarshal(s.deps.DevJWKS(), &set); err != nil {
		return nil, err
	}
	return api.GetJWKS200JSONResponse(set), nil
}

// joinSorted joins names in sorted order, for stable messages.
func joinSorted(names []string) string {
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Starting is the handler of a gateway that is not ready yet (opening and
// migrating its database, possibly waiting for another replica's
// migration): GET /healthz answers 200, since the process is alive and a
// container health check must not kill it mid-migration; every other
// request, /readyz included, a 503 unavailable problem with Retry-After.
func Starting() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
			}
			return
		}
		e := NewError(http.StatusServiceUnavailable, "The gateway is starting; retry later.")
		p := e.Problem()
		p.Instance = r.URL.Path
		body, _ := json.Marshal(p)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", retryAfterUnavailable)
		w.WriteHeader(e.Status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}
