package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/spotlight/gateway/api"
)

// contract wraps the gateway's handler so that every response it gives in
// a test is checked against openapi.yaml: a declared status, a declared
// content type, and a body that matches the response's schema (required
// fields, types, nullability, enums, formats). A request that matches no
// operation (404, 405, a test-only route) must still be answered with
// problem+json when it is an error. A mismatch fails the test that sent
// the request.
func contract(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	// The pages (/docs, the OAuth callback's) are HTML, which the
	// validator reads as an opaque body.
	htmlOnce.Do(func() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder) })
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		ExcludeRequestBody:      true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: api.FormatValidators(),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		// The router needs the request as the client sent it, before the
		// handler reads its body.
		probe := r.Clone(context.WithoutCancel(r.Context()))
		probe.Body = http.NoBody
		h.ServeHTTP(rec, r)
		checkResponse(t, router, opts, probe, rec)
	})
}

var htmlOnce sync.Once

// recorder passes a response through and keeps its status and body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func checkResponse(t *testing.T, router routers.Router, opts *openapi3filter.Options, req *http.Request, rec *recorder) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	hdr := rec.Header()
	where := req.Method + " " + req.URL.RequestURI()
	if status == http.StatusSwitchingProtocols || strings.HasPrefix(req.URL.Path, "/test/") {
		return
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		if status >= 400 && hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("contract: %s answered %d %q, not problem+json", where, status, hdr.Get("Content-Type"))
		}
		return
	}
	if status == StatusClientClosedRequest {
		return // nobody reads it
	}
	body := rec.body.Bytes()
	if req.Method == http.MethodHead {
		body = nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 hdr,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("contract: %s answered %d %q, which %s does not declare: %v\nbody: %.600s", where, status, hdr.Get("Content-Type"), route.Path, err, body)
	}
}

// StatusClientClosedRequest mirrors httpapi's 499 (no client reads it).
const StatusClientClosedRequest = 499
