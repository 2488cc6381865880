package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/internal/httpapi"
)

// TestServiceUnavailableRetryAfter: every 503 the gateway answers while it
// cannot serve (starting, not ready) carries Retry-After, and the client
// hands it over typed as Headers503 (it did not: the spec declared no
// header on 503, and a readyz that failed its checks sent none).
func TestServiceUnavailableRetryAfter(t *testing.T) {
	t.Parallel()
	starting := httptest.NewServer(httpapi.Starting())
	t.Cleanup(starting.Close)
	notReady, _ := newGateway(t, func(context.Context) map[string]error {
		return map[string]error{"database": errors.New("connection refused")}
	})
	for _, srv := range []*httptest.Server{starting, notReady} {
		c, err := client.NewClientWithResponses(srv.URL, client.WithHTTPClient(srv.Client()), client.WithBearerToken("any"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.GetReadyzWithResponse(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode() != http.StatusServiceUnavailable || r.ApplicationproblemJSON503 == nil ||
			r.Headers503 == nil || r.Headers503.RetryAfter == nil || *r.Headers503.RetryAfter != 5 {
			t.Errorf("readyz: status %d, problem %v, headers %+v; want 503 with Retry-After 5", r.StatusCode(), r.ApplicationproblemJSON503, r.Headers503)
		}
	}
	c, err := client.NewClientWithResponses(starting.URL, client.WithHTTPClient(starting.Client()), client.WithBearerToken("any"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.ListBookingsWithResponse(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Headers503 == nil || l.Headers503.RetryAfter == nil || *l.Headers503.RetryAfter != 5 {
		t.Errorf("listBookings while starting: status %d, headers %+v; want Retry-After 5", l.StatusCode(), l.Headers503)
	}
}

// TestStartingOps: while the gateway starts, the unauthenticated operations
// but /healthz answer its 503 too, and the client hands over the problem
// and Retry-After (it did not: they declared no 503, so a service fetching
// the dev JWKS or the spec got neither).
func TestStartingOps(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(httpapi.Starting())
	t.Cleanup(srv.Close)
	c, err := client.NewClientWithResponses(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		status  int
		problem *client.Problem
		retry   *int
	}
	tests := []struct {
		name string
		call func(ctx context.Context) (got, error)
	}{
		{"GetJWKS", func(ctx context.Context) (got, error) {
			r, err := c.GetJWKSWithResponse(ctx)
			if err != nil || r.Headers503 == nil {
				return got{}, err
			}
			return got{r.StatusCode(), r.ApplicationproblemJSON503, r.Headers503.RetryAfter}, nil
		}},
		{"GetOpenAPISpec", func(ctx context.Context) (got, error) {
			r, err := c.GetOpenAPISpecWithResponse(ctx)
			if err != nil || r.Headers503 == nil {
				return got{}, err
			}
			return got{r.StatusCode(), r.ApplicationproblemJSON503, r.Headers503.RetryAfter}, nil
		}},
		{"GetDocs", func(ctx context.Context) (got, error) {
			r, err := c.GetDocsWithResponse(ctx)
			if err != nil || r.Headers503 == nil {
				return got{}, err
			}
			return got{r.StatusCode(), r.ApplicationproblemJSON503, r.Headers503.RetryAfter}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := tt.call(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if g.status != http.StatusServiceUnavailable || g.problem == nil || g.problem.Slug() != "unavailable" || g.retry == nil || *g.retry != 5 {
				t.Errorf("got %+v; want 503 unavailable with Retry-After 5", g)
			}
		})
	}
}
