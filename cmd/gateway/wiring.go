package main

import (
	"log/slog"

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
	// onStop runs at shutdown, after the HTTP server and jobs stopped.
	onStop []func()
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
