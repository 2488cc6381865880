package httpapi

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/spotlight/gateway/api"
)

// The gate skips /webhooks/ without routing, which is only right while every
// operation such a path can match is raw-body and unsecured.
func TestCheckWebhookOperations(t *testing.T) {
	t.Parallel()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkWebhookOperations(spec); err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	const ok = "  /v1/things:\n    get: {responses: {'200': {description: ok}}}\n" +
		"  /webhooks/a:\n    post: {security: [], x-raw-body: true, responses: {'204': {description: ok}}}\n"
	tests := []struct {
		name, paths, wantErr string
	}{
		{"raw and unsecured", ok, ""},
		{"secured by default", ok + "  /webhooks/b:\n    post: {x-raw-body: true, responses: {'204': {description: ok}}}\n", "post /webhooks/b"},
		{"not raw", ok + "  /webhooks/b:\n    post: {security: [], responses: {'204': {description: ok}}}\n", "post /webhooks/b"},
		{"parameter first", ok + "  /{tenant}/b:\n    get: {security: [], parameters: [{name: tenant, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}\n", "get /{tenant}/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := testSpec(t, tt.paths)
			err := checkWebhookOperations(spec)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr)) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// Every secured operation says who may call it (x-roles), in roles a token
// can hold: the gate enforces them.
func TestOperationRoles(t *testing.T) {
	t.Parallel()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := operationRoles(spec); err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	const ok = "  /v1/things:\n    get: {x-roles: [candidate, service], responses: {'200': {description: ok}}}\n" +
		"  /open:\n    get: {security: [], responses: {'200': {description: ok}}}\n"
	tests := []struct {
		name, paths, wantErr string
	}{
		{"secured with roles, open without", ok, ""},
		{"secured without roles", ok + "  /v1/other:\n    get: {responses: {'200': {description: ok}}}\n", "get /v1/other"},
		{"empty roles", ok + "  /v1/other:\n    get: {x-roles: [], responses: {'200': {description: ok}}}\n", "get /v1/other"},
		{"unknown role", ok + "  /v1/other:\n    get: {x-roles: [candidate, superuser], responses: {'200': {description: ok}}}\n", "superuser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := testSpec(t, tt.paths)
			roles, err := operationRoles(spec)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr)) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && len(roles[spec.Paths.Find("/v1/things").Get]) != 2 {
				t.Errorf("roles = %v", roles)
			}
		})
	}
}

// testSpec loads a spec of the given paths (YAML lines under paths:),
// secured by a bearer token unless an operation says otherwise.
func testSpec(t *testing.T, paths string) *openapi3.T {
	t.Helper()
	const head = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nsecurity: [{bearer: []}]\n" +
		"components: {securitySchemes: {bearer: {type: http, scheme: bearer}}}\npaths:\n"
	spec, err := openapi3.NewLoader().LoadFromData([]byte(head + paths))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
