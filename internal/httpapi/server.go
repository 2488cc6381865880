// Package httpapi is the gateway's HTTP surface: NewServer builds the echo
// server that serves the API described by openapi.yaml through the
// generated strict-server interface (api.StrictServerInterface), with
// request ids, JSON access logs, Prometheus metrics, Sentry reporting, bearer
// authentication, request validation against the spec, and RFC 9457
// problem+json for every error, mapped in one place (toError).
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
	sentryecho "github.com/getsentry/sentry-go/echo"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
)

// MaxBodyBytes is the largest API request body (webhooks have their own limit).
const MaxBodyBytes = 1 << 20

// Deps is everything the HTTP layer needs. Only cmd/gateway fills it in.
type Deps struct {
	Logger *slog.Logger
	// Registry collects metrics and is served at /metrics (see
	// MetricsElsewhere).
	Registry *prometheus.Registry
	// MetricsElsewhere leaves /metrics off this handler, which then answers
	// it 404 like any unknown path: the metrics are served by
	// MetricsHandler on a listener of their own (GATEWAY_METRICS_ADDR).
	MetricsElsewhere bool
	// Authenticator verifies bearer tokens.
	Authenticator Authenticator
	// DevJWKS returns the dev issuer's JWKS; nil outside dev auth (404).
	DevJWKS func() []byte
	// Ready reports readiness per check (database, migrations).
	Ready func(ctx context.Context) map[string]error
	// ErrorMappers map domain errors to problems, tried in order.
	ErrorMappers []ErrorMapper
	// Sentry reports 5xx errors and panics when true (InitSentry was called).
	Sentry bool
	// Mount registers routes of other packages (webhook intake) after the
	// generated ones; a route registered here replaces the generated one.
	Mount []func(e *echo.Echo)

	// Area dependencies, each declared beside its handlers.
	Bookings    BookingDeps    // bookings.go, mentors.go
	Connections ConnectionDeps // connections.go, admin_credentials.go
	Webhooks    WebhookDeps    // admin_webhooks.go
}

// Server implements api.StrictServerInterface.
type Server struct {
	deps Deps
}

var _ api.StrictServerInterface = (*Server)(nil)

// NewServer returns the gateway's HTTP handler.
func NewServer(deps Deps) (*echo.Echo, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Authenticator == nil {
		return nil, errors.New("httpapi: Authenticator is required")
	}
	spec, err := api.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("httpapi: load embedded spec: %w", err)
	}
	gate, err := newOpenAPIGate(spec, deps.Authenticator)
	if err != nil {
		return nil, err
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(deps)
	metrics := newHTTPMetrics(deps.Registry)

	e.Use(observe(deps.Logger, metrics))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			deps.Logger.Error("panic", "request_id", requestID(c), "error", err.Error(), "stack", string(stack))
			return err
		}}))
	var api []echo.MiddlewareFunc
	if deps.Sentry {
		// Not on the webhook intake: a hub and a transaction per delivery
		// cost ~40 allocations at thousands of deliveries a second, and
		// the error handler reports its 5xx (and recovered panics) with a
		// hub of its own.
		withHub := sentryecho.New(sentryecho.Options{Repanic: true})
		api = append(api, func(next echo.HandlerFunc) echo.HandlerFunc {
			return withHub(func(c echo.Context) error {
				if hub := sentryecho.GetHubFromContext(c); hub != nil {
					hub.Scope().SetTag("request_id", requestID(c))
				}
				return next(c)
			})
		})
	}
	api = append(api, middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M"}), gate.middleware)
	e.Use(apiOnly(api...))

	srv := &Server{deps: deps}
	routes(e, srv, deps)
	return e, nil
}

// apiOnly applies ms (in order) to every request but the webhook intake's
// (under webhookPrefix), which none of them is for: Sentry's hub, the body
// limit (the intake has its own) and the OpenAPI gate. Being one layer
// saves the intake a closure per skipped middleware: echo builds the
// middleware chain for every request.
func apiOnly(ms ...echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if strings.HasPrefix(c.Request().URL.Path, webhookPrefix) {
				return next(c)
			}
			h := next
			for i := len(ms) - 1; i >= 0; i-- {
				h = ms[i](h)
			}
			return h(c)
		}
	}
}

// errorHandler writes every error as problem+json and reports 5xx to Sentry.
func errorHandler(deps Deps) echo.HTTPErrorHandler {
	outages := &outageReports{every: outageReportInterval}
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			// The client hung up and the handler gave up because of it.
			err = fmt.Errorf("%w: %w", errClientGone, err)
		}
		e := toError(err, deps.ErrorMappers)
		cause := e.Err
		if cause == nil {
			cause = err
		}
		if e.Status >= 500 || errors.Is(cause, auth.ErrInvalidToken) {
			// The access log says why: the internal error, or why a
			// bearer token was refused (an unknown kid, expired), never
			// the token.
			c.Set(errorCauseKey, cause)
		}
		if e.Status >= 500 {
			if deps.Sentry && e.Status != http.StatusNotImplemented && outages.report(e, time.Now()) {
				hub := sentryecho.GetHubFromContext(c)
				if hub == nil {
					hub = sentry.CurrentHub().Clone()
				}
				capture(c, hub, cause)
			}
		}
		if werr := writeProblem(c, e); werr != nil {
			deps.Logger.Error("write problem", "request_id", requestID(c), "error", werr.Error())
		}
	}
}

// outageReportInterval is how often one kind of outage (a 503
// "unavailable": the database or Cognito's keys out of reach) is reported
// to Sentry.
const outageReportInterval = time.Minute

// outageReports throttles the Sentry reports of 503 "unavailable" answers:
// while the database or Cognito's keys are out of reach every request fails
// the same way, and an event per request would flood Sentry (and its
// quota) with one fact. Every such request is still logged and counted.
type outageReports struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time // by the answer's detail: one per kind of outage
}

// report tells whether e should be reported to Sentry now: always for a
// 5xx that is not an outage, at most once per interval for each kind of
// outage.
func (o *outageReports) report(e *Error, now time.Time) bool {
	if e.Status != http.StatusServiceUnavailable || e.Slug != "unavailable" {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.last[e.Detail]; ok && now.Sub(t) < o.every {
		return false
	}
	if o.last == nil {
		o.last = make(map[string]time.Time)
	}
	o.last[e.Detail] = now
	return true
}

// capture reports cause to Sentry through hub with the request's id, route
// and request (whose query the routes that carry secrets in it remove).
func capture(c echo.Context, hub *sentry.Hub, cause error) {
	hub.WithScope(func(scope *sentry.Scope) {
		scope.SetTag("request_id", requestID(c))
		scope.SetTag("route", c.Path())
		scope.SetRequest(c.Request())
		hub.CaptureException(cause)
	})
}

// routes registers every route: the generated API, /metrics (unless
// MetricsElsewhere), the docs assets, and what other packages mount.
func routes(e *echo.Echo, srv *Server, deps Deps) {
	strict := api.NewStrictHandler(srv, []api.StrictMiddlewareFunc{notModified})
	api.RegisterHandlers(e, strict)
	// Health probes may send HEAD (Starting answers it): the same answer
	// as GET, whose body net/http drops. Operations without security or
	// parameters, so the OpenAPI gate has nothing to check.
	probes := &api.ServerInterfaceWrapper{Handler: strict}
	e.HEAD("/healthz", probes.GetHealthz)
	e.HEAD("/readyz", probes.GetReadyz)
	if !deps.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(MetricsHandler(deps.Registry)))
	}
	e.GET("/docs/redoc.standalone.js", serveRedoc)
	for _, m := range deps.Mount {
		m(e)
	}
}

// MetricsHandler serves the metrics of reg in Prometheus' text format: the
// API's /metrics, or the whole of a metrics listener's.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// readyTimeout bounds the readiness checks.
const readyTimeout = 2 * time.Second
