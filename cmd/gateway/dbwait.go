package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/store"
)

// stoppedError is the answer to SIGTERM or SIGINT before a command had
// the database ready: serve stops without having started (status 0, the
// orchestrator asked it to stop); migrate says what it did not finish.
type stoppedError struct{ while string }

func (e stoppedError) Error() string { return "stopped while " + e.while }

// errStoppedWaiting is openStore's answer to SIGTERM or SIGINT while it
// waits for the database.
var errStoppedWaiting = stoppedError{"waiting for the database"}

// errStoppedMigrating is the answer to SIGTERM or SIGINT while the
// migrations run or wait for another replica's (a migration cut short is
// rolled back and applied again at the next start).
var errStoppedMigrating = stoppedError{"migrating the database (or waiting for another replica's migration)"}

// The delay after a failed attempt to reach the database doubles from
// dbWaitFirstDelay up to dbWaitMaxDelay.
const (
	dbWaitFirstDelay = 500 * time.Millisecond
	dbWaitMaxDelay   = 5 * time.Second
)

// dbWaitDelay is the delay after the attempt-th failed attempt (from 1).
func dbWaitDelay(attempt int) time.Duration {
	d := dbWaitFirstDelay
	for i := 1; i < attempt && d < dbWaitMaxDelay; i++ {
		d *= 2
	}
	return min(d, dbWaitMaxDelay)
}

// openStore opens the database. While its server cannot be reached
// (store.Unreachable: it may come up after the gateway, as on ECS or with
// docker compose) it tries again with capped exponential backoff for up to
// wait (GATEWAY_DB_WAIT), logging each failed attempt at warn with its
// error; the error names the host and database, never the password. Any
// other error (a malformed URL, credentials or a database name the server
// refuses) is returned at once, as is every error when wait is 0. It
// returns errStoppedWaiting when ctx ends while it waits, and an error
// saying that the wait ran out, with the last attempt's, when it does.
func openStore(ctx context.Context, cfg config.Config, wait time.Duration, logger *slog.Logger) (*store.Store, error) {
	scfg := store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir}
	if wait <= 0 {
		return store.Open(ctx, scfg, logger)
	}
	start := time.Now()
	deadline := start.Add(wait)
	var last error
	for attempt := 1; ; attempt++ {
		// An attempt ends with the wait (a server that does not answer
		// holds one for connect_timeout, 10s by default).
		attemptCtx, cancel := context.WithDeadline(ctx, deadline)
		db, err := store.Open(attemptCtx, scfg, logger)
		cancel()
		if err == nil {
			if attempt > 1 {
				logger.Info("database reachable", "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return db, nil
		}
		if ctx.Err() != nil {
			return nil, errStoppedWaiting
		}
		ranOut := !time.Now().Before(deadline)
		cut := ranOut && errors.Is(err, context.DeadlineExceeded)
		if !store.Unreachable(err) && !cut {
			return nil, err
		}
		if ranOut {
			if cut && last != nil {
				err = last // more telling than the deadline that cut the attempt
			}
			return nil, fmt.Errorf("database not reachable within GATEWAY_DB_WAIT (%s; attempts: %d): %w", wait, attempt, err)
		}
		last = err
		delay := min(dbWaitDelay(attempt), time.Until(deadline))
		logger.Warn("database not reachable; waiting", "attempt", attempt, "error", err.Error(),
			"retry_in", delay.Round(time.Millisecond).String(), "wait_left", time.Until(deadline).Round(time.Second).String())
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, errStoppedWaiting
		case <-timer.C:
		}
	}
}
