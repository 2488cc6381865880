package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/api"
)

const specPath = "../openapi.yaml"

// loadSpec loads and validates ../openapi.yaml the way the gateway's request validator will.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("validate %s: %v", specPath, err)
	}
	return doc
}

type operation struct {
	method, path string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path }

func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range slices.Sorted(maps.Keys(doc.Paths.Map())) {
		item := doc.Paths.Value(path)
		for _, method := range slices.Sorted(maps.Keys(item.Operations())) {
			ops = append(ops, operation{method: method, path: path, item: item, op: item.Operations()[method]})
		}
	}
	return ops
}

func rawBody(op *openapi3.Operation) bool {
	v, ok := op.Extensions["x-raw-body"].(bool)
	return ok && v
}

func TestSpecHeader(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Info.Title != "Spotlight integration gateway" {
		t.Errorf("info.title = %q", doc.Info.Title)
	}
	scheme := doc.Components.SecuritySchemes["bearerAuth"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" || scheme.Value.BearerFormat != "JWT" {
		t.Errorf("securitySchemes.bearerAuth = %+v, want http bearer JWT", scheme)
	}
	if diff := cmp.Diff(openapi3.SecurityRequirements{{"bearerAuth": {}}}, doc.Security); diff != "" {
		t.Errorf("global security (-want +got):\n%s", diff)
	}
	if len(doc.Servers) != 0 {
		t.Errorf("servers = %v, want none (the validator would match the Host header against them)", doc.Servers)
	}
}

// TestSpecEndpoints pins the public surface named by the issues: every method and path, and which
// of them are public (security: []).
func TestSpecEndpoints(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	public := map[string]bool{
		"GET /healthz":                                   true,
		"GET /readyz":                                    true,
		"GET /openapi.yaml":                              true,
		"GET /docs":                                      true,
		"GET /.well-known/jwks.json":                     true,
		"GET /v1/oauth/google/callback":                  true,
		"POST /webhooks/zoom":                            true,
		"POST /webhooks/jira":                            true,
		"POST /webhooks/google":                          true,
		"POST /v1/bookings":                              false,
		"GET /v1/bookings":                               false,
		"GET /v1/bookings/{bookingId}":                   false,
		"PATCH /v1/bookings/{bookingId}":                 false,
		"POST /v1/bookings/{bookingId}/cancel":           false,
		"GET /v1/bookings/{bookingId}/attendance":        false,
		"GET /v1/bookings/{bookingId}/audit":             false,
		"PUT /v1/mentors/{mentorId}/schedule":            false,
		"GET /v1/mentors/{mentorId}/schedule":            false,
		"GET /v1/mentors/{mentorId}/availability":        false,
		"GET /v1/connections":                            false,
		"GET /v1/connections/{provider}/calendars":       false,
		"POST /v1/connections/google":                    false,
		"POST /v1/connections/google/callback":           false,
		"PUT /v1/connections/google":                     false,
		"DELETE /v1/connections/google":                  false,
		"POST /v1/connections/caldav":                    false,
		"PUT /v1/connections/caldav":                     false,
		"DELETE /v1/connections/caldav":                  false,
		"GET /v1/admin/webhook-events":                   false,
		"GET /v1/admin/webhook-events/{eventId}":         false,
		"POST /v1/admin/webhook-events/{eventId}/replay": false,
		"PUT /v1/admin/providers/{provider}/credentials": false,
		"GET /v1/admin/providers/{provider}/credentials": false,
	}
	got := map[string]bool{}
	for _, o := range operations(doc) {
		isPublic := o.op.Security != nil && len(*o.op.Security) == 0
		if o.op.Security != nil && len(*o.op.Security) != 0 {
			t.Errorf("%s: overrides security with %v; use the global bearerAuth or []", o, *o.op.Security)
		}
		got[o.String()] = isPublic
	}
	if diff := cmp.Diff(public, got); diff != "" {
		t.Errorf("operations and their public flag (-want +got):\n%s", diff)
	}
}

func TestSpecOperationConventions(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	seen := map[string]string{}
	for _, o := range operations(doc) {
		t.Run(o.String(), func(t *testing.T) {
			if !camel.MatchString(o.op.OperationID) {
				t.Errorf("operationId %q is not camelCase", o.op.OperationID)
			}
			if prev, dup := seen[o.op.OperationID]; dup {
				t.Errorf("operationId %q also used by %s", o.op.OperationID, prev)
			}
			seen[o.op.OperationID] = o.String()
			if o.op.Summary == "" {
				t.Error("no summary")
			}
			if len(o.op.Tags) != 1 || !tags[o.op.Tags[0]] {
				t.Errorf("tags = %v, want exactly one declared tag", o.op.Tags)
			}
		})
	}
}

// TestSpecErrorResponses: every operation declares error responses, and every error response is
// application/problem+json with the Problem schema, or one that adds extension members to it
// (BookingProblem: allOf Problem and an object), and nothing else.
func TestSpecErrorResponses(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	problem := doc.Components.Schemas["Problem"]
	if problem == nil {
		t.Fatal("no Problem schema")
	}
	for _, name := range []string{"type", "title", "status", "detail", "instance", "request_id", "errors"} {
		if problem.Value.Properties[name] == nil {
			t.Errorf("Problem has no %q property", name)
		}
	}
	for _, o := range operations(doc) {
		t.Run(o.String(), func(t *testing.T) {
			var errorStatuses []int
			for code, resp := range o.op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("response %q: only explicit status codes are used", code)
					continue
				}
				if status < 400 {
					continue
				}
				errorStatuses = append(errorStatuses, status)
				content := resp.Value.Content
				if len(content) != 1 || content["application/problem+json"] == nil {
					t.Errorf("%d: content types %v, want only application/problem+json", status, slices.Sorted(maps.Keys(content)))
					continue
				}
				if s := content["application/problem+json"].Schema; s == nil || !isProblem(s.Value, problem.Value) {
					t.Errorf("%d: schema is not #/components/schemas/Problem or one extending it", status)
				}
			}
			if !slices.ContainsFunc(errorStatuses, func(s int) bool { return s >= 500 }) {
				t.Errorf("error statuses %v: want at least one 5xx problem response", errorStatuses)
			}
			if len(o.op.Parameters) > 0 || len(o.item.Parameters) > 0 || o.op.RequestBody != nil {
				if !slices.Contains(errorStatuses, 400) {
					t.Errorf("error statuses %v: takes input but declares no 400", errorStatuses)
				}
			}
			secured := o.op.Security == nil
			if _, ok := o.op.Responses.Map()["401"]; secured && !ok {
				t.Error("bearer-secured operation does not declare 401")
			}
		})
	}
}

// TestSpecRequestBodiesClosed: every request-body object (nested ones included) forbids unknown
// properties and lists its required ones (or, for an update of optional fields, sets
// minProperties), so the validator rejects unknown fields and empty bodies. Webhooks
// (x-raw-body) are exempt, and so are typed maps (additionalProperties given as a schema).
func TestSpecRequestBodiesClosed(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	bodies := 0
	for _, o := range operations(doc) {
		if o.op.RequestBody == nil {
			continue
		}
		for ct, media := range o.op.RequestBody.Value.Content {
			if rawBody(o.op) {
				s := media.Schema.Value
				if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
					t.Errorf("%s %s: webhook payloads must stay open (providers add fields)", o, ct)
				}
				continue
			}
			bodies++
			for _, problem := range closedObjectProblems(media.Schema, "body") {
				t.Errorf("%s %s: %s", o, ct, problem)
			}
		}
	}
	if bodies == 0 {
		t.Fatal("no request bodies checked")
	}
}

func closedObjectProblems(ref *openapi3.SchemaRef, where string) []string {
	s := ref.Value
	var problems []string
	for _, sub := range append(append(append([]*openapi3.SchemaRef{}, s.AllOf...), s.OneOf...), s.AnyOf...) {
		problems = append(problems, closedObjectProblems(sub, where)...)
	}
	if s.Items != nil {
		problems = append(problems, closedObjectProblems(s.Items, where+"[]")...)
	}
	if s.Type == nil || !s.Type.Is("object") {
		return problems
	}
	if ap := s.AdditionalProperties.Schema; ap != nil && len(s.Properties) == 0 {
		return append(problems, closedObjectProblems(ap, where+"{}")...) // a typed map
	}
	if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
		problems = append(problems, fmt.Sprintf("%s: additionalProperties is not false", where))
	}
	// An update whose every field is optional (an omitted one is left
	// unchanged) says so with minProperties instead: it still cannot be empty.
	if len(s.Required) == 0 && s.MinProps == 0 {
		problems = append(problems, fmt.Sprintf("%s: no required list (nor minProperties for an update of optional fields)", where))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		problems = append(problems, closedObjectProblems(s.Properties[name], where+"."+name)...)
	}
	return problems
}

// TestSpecHeaders pins what the implementers rely on: the shared parameters and the ETag header on
// booking responses.
func TestSpecHeaders(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	params := doc.Components.Parameters
	tests := []struct {
		name, in, param string
		required        bool
	}{
		{"IdempotencyKey", "header", "Idempotency-Key", true},
		{"IfMatch", "header", "If-Match", false}, // handler answers 428 when missing
		{"Cursor", "query", "cursor", false},
		{"Limit", "query", "limit", false},
	}
	for _, tt := range tests {
		p := params[tt.name]
		if p == nil {
			t.Errorf("no components.parameters.%s", tt.name)
			continue
		}
		if p.Value.In != tt.in || p.Value.Name != tt.param || p.Value.Required != tt.required {
			t.Errorf("%s = {in: %s, name: %s, required: %t}, want {%s, %s, %t}", tt.name,
				p.Value.In, p.Value.Name, p.Value.Required, tt.in, tt.param, tt.required)
		}
	}
	limit := params["Limit"].Value.Schema.Value
	if limit.Min == nil || *limit.Min != 1 || limit.Max == nil || *limit.Max != 200 || limit.Default != float64(50) {
		t.Errorf("limit schema min=%v max=%v default=%v, want 1, 200, 50", limit.Min, limit.Max, limit.Default)
	}

	withETag := []struct{ method, path, status string }{
		{"POST", "/v1/bookings", "201"},
		{"POST", "/v1/bookings", "202"},
		{"GET", "/v1/bookings/{bookingId}", "200"},
		{"PATCH", "/v1/bookings/{bookingId}", "200"},
		{"PATCH", "/v1/bookings/{bookingId}", "202"},
	}
	for _, w := range withETag {
		resp := doc.Paths.Find(w.path).GetOperation(w.method).Responses.Value(w.status)
		if h := resp.Value.Headers["ETag"]; h == nil || !h.Value.Required {
			t.Errorf("%s %s %s: no required ETag header", w.method, w.path, w.status)
		}
	}
}

// TestEmbeddedSpecFresh fails when api.gen.go was not regenerated after openapi.yaml changed.
func TestEmbeddedSpecFresh(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	embedded, err := api.GetSpec()
	if err != nil {
		t.Fatalf("GetSpec: %v", err)
	}
	want, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(embedded)
	if err != nil {
		t.Fatal(err)
	}
	var wantV, gotV any
	if err := json.Unmarshal(want, &wantV); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &gotV); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Errorf("embedded spec differs from %s; run go generate ./api/... (-file +embedded):\n%s", specPath, diff)
	}
	ids := func(d *openapi3.T) []string {
		var out []string
		for _, o := range operations(d) {
			out = append(out, o.op.OperationID)
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff(ids(doc), ids(embedded)); diff != "" {
		t.Errorf("operation ids (-file +embedded):\n%s", diff)
	}
}

// TestSpecRequestValidation runs requests through kin-openapi's request validator (what the gateway's
// middleware uses) to show the spec rejects what the issues say must be rejected.
func TestSpecRequestValidation(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	const validBooking = `{"mentor_id":"m-1","start":"2026-12-08T10:00:00+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Practice"}`
	tests := []struct {
		name, method, target, body string
		header                     map[string]string
		wantErr                    bool
	}{
		{"valid booking", "POST", "/v1/bookings", validBooking, map[string]string{"Idempotency-Key": "k1"}, false},
		{"unknown field", "POST", "/v1/bookings", `{"mentor_id":"m-1","start":"2026-12-08T10:00:00+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Practice","price":1}`, map[string]string{"Idempotency-Key": "k1"}, true},
		{"missing idempotency key", "POST", "/v1/bookings", validBooking, nil, true},
		{"bad date-time", "POST", "/v1/bookings", `{"mentor_id":"m-1","start":"tomorrow","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Practice"}`, map[string]string{"Idempotency-Key": "k1"}, true},
		{"leap second date-time", "POST", "/v1/bookings", `{"mentor_id":"m-1","start":"2026-12-08T14:59:60+01:00","duration_minutes":60,"timezone":"Europe/Berlin","topic":"Practice"}`, map[string]string{"Idempotency-Key": "k1"}, true},
		{"leap second in a query date-time", "GET", "/v1/bookings?to=2026-12-31T23:59:60Z", "", nil, true},
		{"date-time at the last second of year 9999", "GET", "/v1/bookings?to=9999-12-31T23:59:59Z", "", nil, false},
		{"duration too long", "POST", "/v1/bookings", `{"mentor_id":"m-1","start":"2026-12-08T10:00:00+01:00","duration_minutes":241,"timezone":"Europe/Berlin","topic":"Practice"}`, map[string]string{"Idempotency-Key": "k1"}, true},
		{"missing required", "POST", "/v1/bookings", `{"mentor_id":"m-1","start":"2026-12-08T10:00:00+01:00","timezone":"Europe/Berlin","topic":"Practice"}`, map[string]string{"Idempotency-Key": "k1"}, true},
		{"limit too large", "GET", "/v1/bookings?limit=201", "", nil, true},
		{"unknown status filter", "GET", "/v1/bookings?status=lost", "", nil, true},
		{"booking id not a uuid", "GET", "/v1/bookings/abc", "", nil, true},
		{"reschedule without If-Match reaches the handler", "PATCH", "/v1/bookings/7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b", `{"start":"2026-12-09T15:00:00+01:00"}`, nil, false},
		{"bad working hours", "PUT", "/v1/mentors/m-1/schedule", `{"timezone":"Europe/Berlin","working_hours":[{"weekday":"mon","start":"9:00","end":"17:00"}]}`, nil, true},
		{"caldav password needed", "POST", "/v1/connections/caldav", `{"username":"u@icloud.com"}`, nil, true},
		{"caldav server_url not a uri", "POST", "/v1/connections/caldav", `{"server_url":"caldav.icloud.com","username":"u@icloud.com","app_password":"abcd-efgh"}`, nil, true},
		{"caldav minimal", "POST", "/v1/connections/caldav", `{"username":"u@icloud.com","app_password":"abcd-efgh"}`, nil, false},
		{"credentials map of strings", "PUT", "/v1/admin/providers/zoom/credentials", `{"client_id":"a","client_secret":"b"}`, nil, false},
		{"credentials unknown provider", "PUT", "/v1/admin/providers/nope/credentials", `{"client_id":"a"}`, nil, true},
		{"zoom webhook keeps unknown fields", "POST", "/webhooks/zoom", `{"event":"meeting.started","payload":{"x":1},"new_field":true}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.target, body)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			route, pathParams, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("find route: %v", err)
			}
			err = openapi3filter.ValidateRequest(t.Context(), &openapi3filter.RequestValidationInput{
				Request:    req,
				PathParams: pathParams,
				Route:      route,
				Options: &openapi3filter.Options{
					AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
					SchemaValidationOptions: api.FormatValidators(),
				},
			})
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("ValidateRequest error = %v, want error: %t", err, tt.wantErr)
			}
		})
	}
}

// isProblem reports whether s is the Problem schema, or an allOf of it and
// an object of extension members (RFC 9457 section 3.2).
func isProblem(s, problem *openapi3.Schema) bool {
	if s == problem {
		return true
	}
	if len(s.AllOf) != 2 || s.AllOf[0].Value != problem {
		return false
	}
	ext := s.AllOf[1].Value
	for name := range ext.Properties {
		if problem.Properties[name] != nil {
			return false // an extension redefines a member
		}
	}
	return ext.Type.Is("object")
}
