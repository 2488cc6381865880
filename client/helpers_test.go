package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
)

// newGateway serves the gateway's real HTTP handler with dev auth and
// ready as its readiness checks (all passing when nil); no database, so
// only operations answered before a handler needs one can be called.
func newGateway(t *testing.T, ready func(context.Context) map[string]error) (*httptest.Server, *auth.DevIssuer) {
	t.Helper()
	issuer, err := auth.LoadOrCreateDevIssuer(t.TempDir(), auth.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: issuer.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	if ready == nil {
		ready = func(context.Context) map[string]error { return map[string]error{"database": nil} }
	}
	h, err := httpapi.NewServer(httpapi.Deps{Authenticator: v, DevJWKS: issuer.JWKS, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, issuer
}

// TestBearerToken: the token options send the token the gateway verifies.
// A candidate's token on an admin operation is a 403 (verified, no role),
// not the 401 of a request without one; the source is asked for every
// request, and its error or an empty token fails the call before sending.
func TestBearerToken(t *testing.T) {
	t.Parallel()
	srv, issuer := newGateway(t, nil)
	token, err := issuer.Mint(auth.TokenRequest{Subject: "cand-bob", Groups: []string{"candidate"}})
	if err != nil {
		t.Fatal(err)
	}
	errSource := errors.New("token endpoint down")
	calls := 0
	tests := []struct {
		name     string
		opts     []client.ClientOption
		wantSlug string
		wantErr  error
	}{
		{"no token", nil, "unauthorized", nil},
		{"WithBearerToken", []client.ClientOption{client.WithBearerToken(token)}, "forbidden", nil},
		{"WithTokenSource", []client.ClientOption{client.WithTokenSource(func(context.Context) (string, error) {
			calls++
			return token, nil
		})}, "forbidden", nil},
		{"source fails", []client.ClientOption{client.WithTokenSource(func(context.Context) (string, error) {
			return "", errSource
		})}, "", errSource},
		{"empty token", []client.ClientOption{client.WithBearerToken("")}, "", client.ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.NewClientWithResponses(srv.URL, append([]client.ClientOption{client.WithHTTPClient(srv.Client())}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				r, err := c.ListWebhookEventsWithResponse(t.Context(), nil)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				p, ok := client.ParseProblem(r.HTTPResponse, r.Body)
				if !ok || p.Slug() != tt.wantSlug {
					t.Fatalf("status %d, problem %v; want %s: %s", r.StatusCode(), ok, tt.wantSlug, r.Body)
				}
			}
		})
	}
	if calls != 2 {
		t.Errorf("token source called %d times for 2 requests", calls)
	}
}

// TestParseProblem: ParseProblem reads the problem of any status, one the
// operation does not declare too (405), and Problem is an error that names
// the request id; a success is no problem.
func TestParseProblem(t *testing.T) {
	t.Parallel()
	srv, _ := newGateway(t, nil)
	resp, err := srv.Client().Post(srv.URL+"/healthz", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := client.ParseProblem(resp, body)
	if !ok || p.Slug() != "method-not-allowed" || p.Status != http.StatusMethodNotAllowed {
		t.Fatalf("ParseProblem(405) = %+v, %v: %s", p, ok, body)
	}
	var err2 error = p
	if id := resp.Header.Get("X-Request-Id"); id == "" || !strings.Contains(err2.Error(), id) || !strings.Contains(err2.Error(), "method-not-allowed") {
		t.Errorf("Error() = %q, want the slug and request id %q", err2.Error(), id)
	}

	c, err := client.NewClientWithResponses(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.GetHealthzWithResponse(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := client.ParseProblem(h.HTTPResponse, h.Body); ok {
		t.Errorf("ParseProblem(200) = %+v, true", p)
	}
}

// TestBookingProblemIsAnError: the problem of a 424 is an error like any
// problem's, naming its slug, request id and booking.
func TestBookingProblemIsAnError(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b")
	detail, rid := "A provider refused the new time.", "01JDQ4X1V4K8W2M3N5P6R7S8T9"
	var err error = client.BookingProblem{Type: client.ProblemTypeBase + "reschedule-refused", Title: "Reschedule refused",
		Status: http.StatusFailedDependency, Detail: &detail, RequestId: &rid, BookingId: id}
	for _, want := range []string{"reschedule-refused", detail, rid, id.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Error() = %q, want it to name %q", err.Error(), want)
		}
	}
	var bp client.BookingProblem
	if !errors.As(err, &bp) || bp.Slug() != "reschedule-refused" || bp.Problem().Status != http.StatusFailedDependency {
		t.Errorf("Slug() = %q, Problem() = %+v", bp.Slug(), bp.Problem())
	}
}
