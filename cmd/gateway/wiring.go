package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/sandbox"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
)

// wiring is what cmdServe hands to each area's wire function (wire_*.go).
// A wire function registers its job workers and periodic jobs, fills in its
// part of deps, and may mount routes. Anything that enqueues jobs reads
// w.jobs when it runs: Jobs is created after every worker is registered.
type wiring struct {
	cfg      config.Config
	logger   *slog.Logger
	db       *store.Store
	secrets  secrets.Store
	sandbox  *sandbox.Env // nil with live providers
	registry *prometheus.Registry
	workers  *river.Workers
	// kinds counts registered job kinds; no kinds → no workers started.
	kinds    int
	periodic []*river.PeriodicJob
	deps     *httpapi.Deps
	jobs     *store.Jobs
	// onStop runs at shutdown, after the HTTP server and jobs stopped,
	// last wired first (see stopAll), with what is left of the shutdown's
	// budget (GATEWAY_SHUTDOWN_TIMEOUT; on a failed start, a budget of its
	// own).
	onStop []func(ctx context.Context)
	// connect is the connection service (set by wireConnect, which runs first).
	connect *connect.Service
}

// addWorker registers a job worker and counts its kind.
func addWorker[T river.JobArgs](w *wiring, worker river.Worker[T]) {
	river.AddWorker(w.workers, worker)
	w.kinds++
}

// wireFuncs are the areas, in the order they are wired.
var wireFuncs = []func(*wiring) error{
	wireConnect,
	wireBooking,
	wireWebhooks,
}

// providerFields reads a provider's credential fields (a JSON object of
// strings) from the secret store; none stored gives an empty map.
func providerFields(ctx context.Context, cfg config.Config, store secrets.Store, provider string) (map[string]string, error) {
	path, err := secrets.ProviderPath(cfg.Secrets.Prefix, cfg.Env, provider)
	if err != nil {
		return nil, err
	}
	s, err := store.Get(ctx, path)
	if errors.Is(err, secrets.ErrNotFound) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s credentials: %w", provider, err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(s.Value, &m); err != nil {
		return nil, fmt.Errorf("stored %s credentials are not a JSON object", provider)
	}
	return m, nil
}

// storedSentryDSN is the dsn field of provider sentry's stored
// credentials, "" when none is stored.
func storedSentryDSN(ctx context.Context, cfg config.Config, store secrets.Store) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := providerFields(ctx, cfg, store, "sentry")
	if err != nil {
		return "", fmt.Errorf("sentry: %w", err)
	}
	return f["dsn"], nil
}
