package main

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// drainServer is an http.Server stand-in whose Shutdown waits, as a
// real one does while a request is still running, until the test lets
// the request end (release) or the shutdown's deadline passes.
type drainServer struct {
	release chan struct{}
	closed  bool
}

func (s *drainServer) Shutdown(ctx context.Context) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *drainServer) Close() error { s.closed = true; return nil }

// drainJobs records when the job runner was told to stop.
type drainJobs struct {
	stopped chan struct{}
	err     error
}

func (j *drainJobs) Stop(context.Context) error { close(j.stopped); return j.err }

// TestDrainStopsJobsWithoutWaitingForRequests: at SIGTERM the job runner
// stops fetching while a slow request is still draining (was: only after
// every request had finished, so a job could start in those seconds and
// be cut at the deadline).
func TestDrainStopsJobsWithoutWaitingForRequests(t *testing.T) {
	srv := &drainServer{release: make(chan struct{})}
	jobs := &drainJobs{stopped: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct{ httpErr, jobErr error }
	done := make(chan result, 1)
	go func() {
		h, j := drain(ctx, srv, jobs)
		done <- result{h, j}
	}()
	select {
	case <-jobs.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("jobs were not stopped while a request was still draining")
	}
	select {
	case r := <-done:
		t.Fatalf("drain returned %+v before the running request finished", r)
	default:
	}
	close(srv.release)
	r := <-done
	if r.httpErr != nil || r.jobErr != nil || srv.closed {
		t.Fatalf("drain = %v, %v (server closed: %v), want a clean stop", r.httpErr, r.jobErr, srv.closed)
	}
}

// TestDrainPastTheDeadline: requests still running at the deadline are
// cut (the server is closed) and both errors are reported.
func TestDrainPastTheDeadline(t *testing.T) {
	srv := &drainServer{release: make(chan struct{})}
	stopErr := errors.New("jobs still running")
	jobs := &drainJobs{stopped: make(chan struct{}), err: stopErr}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	httpErr, jobErr := drain(ctx, srv, jobs)
	if !errors.Is(httpErr, context.Canceled) || !srv.closed {
		t.Errorf("http: %v (closed %v), want the deadline's error and the server closed", httpErr, srv.closed)
	}
	if !errors.Is(jobErr, stopErr) {
		t.Errorf("jobs: %v, want %v", jobErr, stopErr)
	}
}

// TestStopAllLastWiredFirst: the stop functions run in the reverse order of
// their wiring (was: in wiring order, so the booking service waited for its
// runs and stopped while the webhook hand-off, wired after it, could still
// start new ones).
func TestStopAllLastWiredFirst(t *testing.T) {
	var order []string
	stop := func(name string) func(context.Context) {
		return func(context.Context) { order = append(order, name) }
	}
	stopAll(t.Context(), []func(context.Context){stop("connect"), stop("booking"), stop("webhooks")})
	if want := []string{"webhooks", "booking", "connect"}; !slices.Equal(order, want) {
		t.Errorf("stopped %v, want %v", order, want)
	}
}
