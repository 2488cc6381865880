package client_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	gateway "github.com/spotlight/gateway"
	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
)

// TestOpsThroughTheClient calls the unauthenticated operations through the
// generated client against the gateway's real HTTP handler: each answers
// 200 without a decoding error. GetOpenAPISpecWithResponse failed on every
// 200 while the spec declared a string schema for application/yaml (the
// client YAML-decoded the document into a string); now Body is the document.
func TestOpsThroughTheClient(t *testing.T) {
	t.Parallel()
	issuer, err := auth.LoadOrCreateDevIssuer(t.TempDir(), auth.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: issuer.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewServer(httpapi.Deps{Authenticator: v, DevJWKS: issuer.JWKS,
		Ready: func(context.Context) map[string]error { return map[string]error{"database": nil} }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.NewClientWithResponses(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}

	// answer is what a call returned: the status, the Content-Type or a
	// value the client decoded, and the body.
	type answer struct {
		status int
		got    string
		body   []byte
	}
	tests := []struct {
		name  string
		call  func(ctx context.Context) (answer, error)
		check func(t *testing.T, a answer)
	}{
		{"GetOpenAPISpec", func(ctx context.Context) (answer, error) {
			r, err := c.GetOpenAPISpecWithResponse(ctx)
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.HTTPResponse.Header.Get("Content-Type"), r.Body}, nil
		}, func(t *testing.T, a answer) {
			if !strings.HasPrefix(a.got, "application/yaml") || !bytes.Equal(a.body, gateway.OpenAPI) {
				t.Errorf("Content-Type %q, %d bytes; want application/yaml and openapi.yaml as it is (%d bytes)", a.got, len(a.body), len(gateway.OpenAPI))
			}
		}},
		{"GetHealthz", func(ctx context.Context) (answer, error) {
			r, err := c.GetHealthzWithResponse(ctx)
			if err != nil {
				return answer{}, err
			}
			if r.JSON200 == nil {
				return answer{r.StatusCode(), "", r.Body}, nil
			}
			return answer{r.StatusCode(), string(r.JSON200.Status), r.Body}, nil
		}, func(t *testing.T, a answer) {
			if a.got != string(client.HealthStatusOk) {
				t.Errorf("health %s", a.body)
			}
		}},
		{"GetReadyz", func(ctx context.Context) (answer, error) {
			r, err := c.GetReadyzWithResponse(ctx)
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.HTTPResponse.Header.Get("Content-Type"), r.Body}, nil
		}, nil},
		{"GetJWKS", func(ctx context.Context) (answer, error) {
			r, err := c.GetJWKSWithResponse(ctx)
			if err != nil {
				return answer{}, err
			}
			if r.JSON200 == nil || len(r.JSON200.Keys) != 1 {
				return answer{0, "", r.Body}, nil
			}
			return answer{r.StatusCode(), r.JSON200.Keys[0].Kid, r.Body}, nil
		}, func(t *testing.T, a answer) {
			if a.got != issuer.KeyID() {
				t.Errorf("kid %q, want %q", a.got, issuer.KeyID())
			}
		}},
		{"GetDocs", func(ctx context.Context) (answer, error) {
			r, err := c.GetDocsWithResponse(ctx)
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.HTTPResponse.Header.Get("Content-Type"), r.Body}, nil
		}, func(t *testing.T, a answer) {
			if !strings.HasPrefix(a.got, "text/html") {
				t.Errorf("Content-Type %q", a.got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := tt.call(t.Context())
			if err != nil {
				t.Fatalf("%sWithResponse = %v", tt.name, err)
			}
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}
