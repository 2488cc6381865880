package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/gcfloor"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/sandbox"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/telemetry"
)

// app holds what every command that touches the database shares.
type app struct {
	cfg     config.Config
	logger  *slog.Logger
	db      *store.Store
	secrets secrets.Store
	// keyFile is the local backend's key file ("" when the key comes from the environment).
	keyFile string
	oldKey  local.Key
}

// openBase opens the database (migrating it) and the secret store, logging
// to logw.
func openBase(ctx context.Context, cfg config.Config, logw io.Writer) (*app, error) {
	return openBaseLogging(ctx, cfg, telemetry.NewLogger(logw, cfg.LogLevel), 0)
}

// openBaseLogging is openBase with the logger the caller already has,
// waiting up to dbWait for a database server that cannot be reached yet
// (openStore).
func openBaseLogging(ctx context.Context, cfg config.Config, logger *slog.Logger, dbWait time.Duration) (*app, error) {
	a := &app{cfg: cfg, logger: logger}
	db, err := openStore(ctx, cfg, dbWait, a.logger)
	if err != nil {
		return nil, err
	}
	a.db = db
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		if ctx.Err() != nil {
			return nil, errStoppedMigrating
		}
		return nil, err
	}
	if err := a.openSecrets(ctx); err != nil {
		db.Close()
		if ctx.Err() != nil {
			return nil, stoppedError{"opening the secret store"}
		}
		return nil, err
	}
	return a, nil
}

func (a *app) openSecrets(ctx context.Context) error {
	switch a.cfg.Secrets.Backend {
	case config.SecretsSSM:
		s, err := ssm.New(ctx, ssm.Config{
			Region: a.cfg.Secrets.AWSRegion, Endpoint: a.cfg.Secrets.SSMEndpoint,
			KMSKeyID: a.cfg.Secrets.KMSKeyID, Tier: ssm.Tier(a.cfg.Secrets.Tier), Logger: a.logger,
		})
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		a.secrets = s
		return nil
	default:
		var (
			key  local.Key
			err  error
			olds []local.Key
		)
		if a.cfg.Secrets.Key != "" {
			// "NEW,OLD,…" during a rotation: NEW seals, every key opens.
			keys := strings.Split(a.cfg.Secrets.Key, ",")
			key, err = local.KeyFromBase64(strings.TrimSpace(keys[0]))
			for _, k := range keys[1:] {
				old, kerr := local.KeyFromBase64(strings.TrimSpace(k))
				if kerr != nil {
					return fmt.Errorf("secrets: GATEWAY_SECRET_KEY: %w", kerr)
				}
				olds = append(olds, old)
			}
		} else {
			a.keyFile = filepath.Join(a.cfg.DataDir, "secret.key")
			key, err = local.LoadOrCreateKeyFile(a.keyFile)
			// A rotation interrupted after re-encrypting but before the
			// rename leaves the new key beside the old one: accept both.
			if _, serr := os.Stat(a.keyFile + ".next"); serr == nil {
				next, nerr := local.LoadOrCreateKeyFile(a.keyFile + ".next")
				if nerr != nil {
					return fmt.Errorf("secrets: %s.next: %w", a.keyFile, nerr)
				}
				olds = append(olds, next)
			}
		}
		if err != nil {
			return fmt.Errorf("secrets: GATEWAY_SECRET_KEY: %w", err)
		}
		a.oldKey = key
		s, err := local.New(a.db.DB(), string(a.db.Dialect()), local.NewKeyring(key, olds...), local.WithLogger(a.logger))
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		a.secrets = s
		return nil
	}
}

// rotateKey re-encrypts every local secret under newKey. With a key file,
// the new key is written beside the old one first and renamed over it once
// every row is re-encrypted, so a crash never loses the key of any row.
func (a *app) rotateKey(ctx context.Context, newKey local.Key, writeFile bool) (int, error) {
	ls, ok := a.secrets.(*local.Store)
	if !ok {
		return 0, errors.New("secrets rotate-key: not the local backend")
	}
	if writeFile {
		if a.keyFile == "" {
			return 0, usageError{"secrets rotate-key: GATEWAY_SECRET_KEY is set; pass --new-key NEW, after restarting every process that shares the database with GATEWAY_SECRET_KEY=NEW,OLD (so that each reads secrets sealed under either key); then set GATEWAY_SECRET_KEY=NEW"}
		}
		if err := os.WriteFile(a.keyFile+".next", []byte(newKey.Base64()+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("secrets rotate-key: write new key: %w", err)
		}
	}
	n, err := ls.RotateKey(ctx, newKey)
	if err != nil {
		return n, fmt.Errorf("secrets rotate-key: %w", err)
	}
	if writeFile {
		if err := os.Rename(a.keyFile+".next", a.keyFile); err != nil {
			return n, fmt.Errorf("secrets rotate-key: install new key: %w", err)
		}
	}
	return n, nil
}

// close closes the database. It waits for the pool's connections to close
// until ctx is done: a connection to a server that stopped answering can
// take pgx 15s more to give up on, past the orchestrator's kill timeout.
func (a *app) close(ctx context.Context) {
	if a.db == nil {
		return
	}
	done := make(chan struct{})
	go func() { a.db.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.logger.Warn("database connections still closing; not waiting for them")
	}
}

// cmdMigrate applies migrations and exits.
func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway migrate\n\nApplies the database migrations of GATEWAY_DATABASE_URL (or the embedded SQLite file)\nand exits; serve applies them too at start. Replicas starting at once take turns.\nA PostgreSQL server that does not accept connections yet is waited for up to\nGATEWAY_DB_WAIT, as serve does. Exits 1 when stopped before every migration applied.")
	}
	cfg, ok, err := parseThenLoad(fs, args, stderr, getenv)
	if !ok {
		return err
	}
	logger := telemetry.NewLogger(stderr, cfg.LogLevel)
	db, err := openStore(ctx, cfg, cfg.DatabaseWait, logger)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	fmt.Fprintf(stdout, "%s: %d migrations applied\n", db.Location, len(applied))
	for _, m := range applied {
		fmt.Fprintln(stdout, "  "+m)
	}
	if err != nil && ctx.Err() != nil {
		// Status 1 all the same: a deploy that runs migrate before the
		// new version must not go on with the schema half done.
		return fmt.Errorf("migrate: %w: the rest is applied by the next migrate or serve", errStoppedMigrating)
	}
	return err
}

// cmdServe runs the gateway until ctx is cancelled (SIGTERM/SIGINT), then
// shuts down gracefully within GATEWAY_SHUTDOWN_TIMEOUT.
func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: gateway serve\n\nRuns the HTTP API and the job workers.")
		printVars(stdout)
	}
	started := time.Now()
	cfg, ok, err := parseThenLoad(fs, args, stdout, getenv)
	if !ok {
		return err
	}
	// The last thing to stop: the shutdown's watchdog (see below).
	var watchdog *time.Timer
	defer func() {
		if watchdog != nil {
			watchdog.Stop()
		}
	}()
	if cfg.Sentry.Release == "" {
		cfg.Sentry.Release = "gateway@" + version
	}
	flush, err := telemetry.InitSentry(telemetry.SentryOptions{DSN: cfg.Sentry.DSN, Environment: cfg.Sentry.Environment, Release: cfg.Sentry.Release})
	if err != nil {
		return err
	}
	defer func() { flush(2 * time.Second) }()

	// One process per data folder when it holds the database or the
	// sandbox's state: a second one would run a second set of simulators
	// over the same state files.
	if cfg.DatabaseURL == "" || cfg.Sandbox() {
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}

	// Listen before anything slow so the address (and a busy port) is known
	// at once, and serve from then on: /healthz answers while the database
	// is opened and migrated (which may wait for another replica's
	// migration), everything else 503 until the gateway is ready. The
	// metrics and pprof listeners, when configured, are bound and serving
	// from here on too.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on GATEWAY_ADDR %s: %w", cfg.Addr, err)
	}
	if cfg.PublicURL == "http://"+cfg.Addr && ln.Addr().String() != cfg.Addr {
		cfg.PublicURL = "http://" + ln.Addr().String() // port 0 in tests
	}
	logger := telemetry.NewLogger(stdout, cfg.LogLevel)
	var current atomic.Pointer[http.Handler]
	starting := httpapi.Starting()
	current.Store(&starting)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// On a failed start this closes the listener; after a shutdown it has
	// nothing left to close.
	defer srv.Close()

	// Registered into from here on (the database's pool, the jobs, the
	// requests), served by the metrics listener from the start.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The metrics and pprof listeners serve through the shutdown's drain;
	// they stop after it (see below), or here on a failed start.
	var sides []*sideServer
	stopSides := func() {
		for _, s := range sides {
			s.stop()
		}
	}
	defer stopSides()
	if cfg.MetricsAddr != "" {
		metrics, err := startMetrics(ctx, cfg.MetricsAddr, reg, logger)
		if err != nil {
			return err
		}
		sides = append(sides, metrics)
	}
	if cfg.DebugAddr != "" {
		debug, err := startDebug(ctx, cfg.DebugAddr, logger)
		if err != nil {
			return err
		}
		sides = append(sides, debug)
	}

	// A database that cannot be reached yet is waited for, up to
	// GATEWAY_DB_WAIT, answering /healthz (alive) but not /readyz.
	a, err := openBaseLogging(ctx, cfg, logger, cfg.DatabaseWait)
	if stopped := (stoppedError{}); errors.As(err, &stopped) {
		logger.Info(stopped.Error())
		return nil
	}
	if err != nil {
		return err
	}
	// closeBy bounds the wait for the database's connections to close:
	// none on a failed start, the shutdown's budget after SIGTERM. The
	// context is made here, not at the shutdown with a defer of its own,
	// which would run first and cancel it before the close.
	var closeBy time.Time
	defer func() {
		closeCtx := context.WithoutCancel(ctx)
		if !closeBy.IsZero() {
			var cancel context.CancelFunc
			closeCtx, cancel = context.WithDeadline(closeCtx, closeBy)
			defer cancel()
		}
		a.close(closeCtx)
	}()

	if cfg.Sentry.DSN == "" {
		// No SENTRY_DSN: the DSN stored as provider sentry's credentials
		// (PUT /v1/admin/providers/sentry/credentials or its SSM parameter).
		dsn, err := storedSentryDSN(ctx, cfg, a.secrets)
		if err != nil {
			return err
		}
		if dsn != "" {
			f, err := telemetry.InitSentry(telemetry.SentryOptions{DSN: dsn, Environment: cfg.Sentry.Environment, Release: cfg.Sentry.Release})
			if err != nil {
				return fmt.Errorf("the dsn stored for provider sentry: %w", err)
			}
			cfg.Sentry.DSN, flush = dsn, f
		}
	}

	if cfg.GCFloorMiB > 0 && getenv("GOGC") == "" {
		defer gcfloor.Start(cfg.GCFloorMiB << 20)()
	}

	var sb *sandbox.Env
	if cfg.Sandbox() {
		// The sandbox Jira delivers webhooks for its changes to this gateway, as a configured site
		// would; the sandbox Zoom's host controls deliver theirs here too.
		sb, err = sandbox.Start(ctx, sandbox.Options{Logger: logger,
			JiraWebhookURL: cfg.PublicURL + "/webhooks/jira", JiraWebhookSecret: sandboxJiraWebhookSecret,
			ZoomWebhookURL: cfg.PublicURL + "/webhooks/zoom", ZoomWebhookSecret: sandboxZoomWebhookSecret,
			// The simulators keep their state next to the database, so bookings survive a restart whole.
			StateDir: sandboxDir(cfg)})
		if err != nil {
			return err
		}
		defer func() {
			if err := sb.Close(context.WithoutCancel(ctx)); err != nil {
				logger.Error("sandbox close", "error", err.Error())
			}
		}()
		sb.Log()
	}

	authn, devIssuer, err := newAuthenticator(cfg, logger)
	if err != nil {
		return err
	}

	a.db.RegisterMetrics(reg)

	deps := httpapi.Deps{
		Logger:           logger,
		Registry:         reg,
		MetricsElsewhere: cfg.MetricsAddr != "",
		Authenticator:    authn,
		Sentry:           cfg.Sentry.DSN != "",
		Ready: func(ctx context.Context) map[string]error {
			return map[string]error{"database": a.db.Ping(ctx), "migrations": a.db.CheckMigrations(ctx)}
		},
	}
	if devIssuer != nil {
		deps.DevJWKS = devIssuer.JWKS
	}
	w := &wiring{cfg: cfg, logger: logger, db: a.db, secrets: a.secrets, sandbox: sb, registry: reg,
		workers: river.NewWorkers(), deps: &deps}
	for _, wire := range wireFuncs {
		if err := wire(w); err != nil {
			return err
		}
	}
	// After SIGTERM the stop functions get what is left of the shutdown's
	// budget (a booking run hanging on a provider is cancelled when it
	// runs out, not given a budget of its own past the watchdog). It is
	// made here, not at the shutdown with a defer of its own, which would
	// run first and leave the stop functions none.
	var stopBy time.Time
	defer func() {
		if stopBy.IsZero() { // a failed start
			stopBy = time.Now().Add(cfg.ShutdownTimeout)
		}
		budget, cancel := context.WithDeadline(context.WithoutCancel(ctx), stopBy)
		defer cancel()
		stopAll(budget, w.onStop)
	}()
	jobs, err := store.NewJobs(a.db, store.JobsConfig{
		Workers: w.workers, Work: w.kinds > 0, MaxWorkers: cfg.Jobs.Workers, PeriodicJobs: w.periodic,
		JobTimeout: cfg.Jobs.Timeout, RescueStuckJobsAfter: cfg.Jobs.RescueAfter,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	w.jobs = jobs

	e, err := httpapi.NewServer(deps)
	if err != nil {
		return err
	}
	var handler http.Handler = e

	jobCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	if err := jobs.Start(jobCtx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	current.Store(&handler)

	url := "http://" + ln.Addr().String()
	logger.Info("gateway ready", "url", url, "version", version, "env", cfg.Env, "auth", cfg.Auth.Mode, "providers", cfg.Providers,
		"database", a.db.Location, "secrets", cfg.Secrets.Backend, "startup_ms", time.Since(started).Milliseconds())
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration: " + w)
	}
	if devIssuer != nil {
		printDevBanner(stderr, url, cfg.Providers, devIssuer)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutStart := time.Now()
	stopBy = shutStart.Add(cfg.ShutdownTimeout)
	shutCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), stopBy)
	defer cancel()
	// The documented budget: GATEWAY_SHUTDOWN_TIMEOUT for requests and
	// jobs, store.HardStop for the jobs cancelled then, about a second to
	// close the rest, and the process is gone within shutdownMargin of
	// the SIGTERM whatever still hangs (a database that stopped answering).
	closeBy = shutStart.Add(cfg.ShutdownTimeout + store.HardStop + time.Second)
	watchdog = time.AfterFunc(cfg.ShutdownTimeout+shutdownMargin, func() {
		logger.Error("shutdown did not finish in time; exiting", "after", time.Since(shutStart).Round(time.Millisecond).String())
		exit(1)
	})
	httpErr, jobErr := drain(shutCtx, srv, jobs)
	// Before the database closes, which may wait for connections to a
	// server that stopped answering until closeBy.
	stopSides()
	if httpErr != nil {
		httpErr = fmt.Errorf("requests still running after GATEWAY_SHUTDOWN_TIMEOUT (%s) were cut", cfg.ShutdownTimeout)
	}
	if jobErr != nil {
		jobErr = fmt.Errorf("jobs still running after GATEWAY_SHUTDOWN_TIMEOUT (%s) were cancelled (they run again later): %s",
			cfg.ShutdownTimeout, strings.ReplaceAll(jobErr.Error(), "\n", "; "))
	}
	if err := errors.Join(httpErr, jobErr); err != nil {
		logger.Error("shutdown incomplete", "error", err.Error())
		return fmt.Errorf("shutdown incomplete: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// stopAll runs the stop functions in the reverse order of their wiring, as
// deferred calls run: a service stops before the ones it uses (the webhook
// hand-off, which cancels and reschedules bookings, before the booking
// service, whose Close waits for the runs it started).
func stopAll(ctx context.Context, stops []func(context.Context)) {
	for _, f := range slices.Backward(stops) {
		f(ctx)
	}
}

// drain stops accepting requests and fetching jobs at once, and waits for
// the requests and the running jobs to finish within ctx. Jobs stop at the
// SIGTERM, not after the requests have drained: a job that started while
// a slow request finished could be cut at the deadline. No request waits
// for a job (booking runs and webhook hand-offs run in the process; their
// River jobs are the durable fallback), so neither waits for the other.
func drain(ctx context.Context, srv httpServer, jobs jobRunner) (httpErr, jobErr error) {
	jobDone := make(chan error, 1)
	go func() { jobDone <- jobs.Stop(ctx) }()
	httpErr = srv.Shutdown(ctx)
	if httpErr != nil {
		// Requests still running (waiting on a database that does not
		// answer, say) are cut: closing their connections cancels their
		// contexts, so they let go of what they hold.
		_ = srv.Close()
	}
	return httpErr, <-jobDone
}

// httpServer is the part of *http.Server that drain stops.
type httpServer interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// jobRunner is the part of *store.Jobs that drain stops.
type jobRunner interface {
	Stop(ctx context.Context) error
}

// shutdownMargin is how long after GATEWAY_SHUTDOWN_TIMEOUT the process
// exits at the latest; the README tells operators to keep the timeout at
// least this much under the orchestrator's kill timeout.
const shutdownMargin = 8 * time.Second

// exit ends the process; the shutdown watchdog calls it when cleaning up
// hangs.
var exit = os.Exit

// newAuthenticator builds the token verifier: Cognito's JWKS in cognito
// mode, the dev issuer's own key set in dev mode — the same Verifier either way.
func newAuthenticator(cfg config.Config, logger *slog.Logger) (*auth.Verifier, *auth.DevIssuer, error) {
	if cfg.Auth.Mode == config.AuthDev {
		issuer, err := auth.LoadOrCreateDevIssuer(cfg.DataDir, auth.DevIssuerName)
		if err != nil {
			return nil, nil, err
		}
		v, err := auth.NewVerifier(auth.VerifierConfig{
			Issuer: issuer.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: issuer.Fetcher(),
			ServiceScope: cfg.Auth.ServiceScope, Leeway: cfg.Auth.Leeway, Logger: logger,
		})
		return v, issuer, err
	}
	jwksURL := cfg.Auth.JWKSURL
	if jwksURL == "" {
		jwksURL = cfg.Auth.Issuer() + "/.well-known/jwks.json"
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Issuer: cfg.Auth.Issuer(), ClientIDs: cfg.Auth.ClientIDs,
		JWKS:         auth.HTTPJWKS(&http.Client{Timeout: 5 * time.Second}, jwksURL),
		ServiceScope: cfg.Auth.ServiceScope, Leeway: cfg.Auth.Leeway, Logger: logger,
	})
	return v, nil, err
}

// printDevBanner tells a newcomer how to call the running gateway.
func printDevBanner(w io.Writer, url, providers string, issuer *auth.DevIssuer) {
	tok, err := issuer.Mint(auth.TokenRequest{Subject: "dev-admin", Groups: []string{"admin"}})
	if err != nil {
		return
	}
	fmt.Fprintf(w, `
Spotlight gateway (dev auth, %[3]s providers) is ready at %[1]s
  API reference:  %[1]s/docs
  Dev admin token (12h):
    export TOKEN=%[2]s
  Try it:
    curl -s %[1]s/v1/bookings -H "Authorization: Bearer $TOKEN"
  Other tokens:   go run ./cmd/gateway token --sub alice --group candidate
  Service client: go run ./cmd/gateway token --service   (client credentials with GATEWAY_SERVICE_SCOPE)
`, url, tok, providers)
	if providers == config.ProvidersSandbox {
		fmt.Fprintln(w, "  Play Zoom:      go run ./cmd/gateway sandbox zoom start <meeting-id>   (and Jira: sandbox --help)")
	}
	fmt.Fprintln(w)
}
