package main

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/logtest"
	_ "github.com/spotlight/gateway/internal/store" // the sqlite driver
)

// TestHealthzWhileStarting holds the database while the gateway starts, as
// a long migration of another replica (or of this one) does: the port
// answers at once, /healthz 200 (the container's health check must not
// kill a task that is migrating), /readyz and the API 503 problem+json
// until the gateway is ready; then it serves as usual.
func TestHealthzWhileStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"serve"}, envOf(map[string]string{"GATEWAY_ADDR": addr, "GATEWAY_DATA_DIR": dir}), stdout, &logtest.Buffer{})
	}()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, err := hc.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz while the database is held: %v %v, want 200 within 3s", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(stdout.String(), "gateway ready") {
		t.Fatal("the gateway was ready although its database was held")
	}
	for _, path := range []string{"/readyz", "/v1/bookings"} {
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatalf("%s while starting: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while starting = %d %q Retry-After %q, want 503 problem+json with Retry-After", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
		}
	}

	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("gateway exited: %v\n%s", err, stdout)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 20s after the database was released\n%s", stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
