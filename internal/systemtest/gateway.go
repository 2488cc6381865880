package systemtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spotlight/gateway/client"
)

// Build compiles cmd/gateway of the module containing the working
// directory into dir and returns the binary's path. It is a plain build
// (no -race): the processes under test should run at production speed.
func Build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("systemtest: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("systemtest: not inside the gateway module")
	}
	bin := filepath.Join(dir, "gateway")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gateway")
	cmd.Dir = filepath.Dir(gomod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("systemtest: go build ./cmd/gateway: %w\n%s", err, msg)
	}
	return bin, nil
}

// Options configure a gateway process.
type Options struct {
	// Binary is the gateway executable (see Build). Required.
	Binary string
	// DataDir is the gateway's data folder, kept across restarts (the
	// SQLite database, dev signing key and secret key live there). Required.
	DataDir string
	// DatabaseURL is a postgres:// URL; "" uses SQLite in DataDir.
	DatabaseURL string
	// Env are further GATEWAY_* variables (Upstreams.Env and tuning).
	Env []string
	// LogPath receives the process's output, appended across restarts;
	// default DataDir/gateway.log.
	LogPath string
}

// Gateway is one gateway process that can be started, killed and restarted
// on the same address and data folder.
type Gateway struct {
	opts Options
	// Addr is the listen address (fixed across restarts); URL its base URL.
	Addr, URL string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	starts  int
	lastPID int
}

// NewGateway prepares a gateway on a free loopback port; Start runs it.
func NewGateway(opts Options) (*Gateway, error) {
	if opts.Binary == "" || opts.DataDir == "" {
		return nil, errors.New("systemtest: Binary and DataDir are required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, err
	}
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(opts.DataDir, "gateway.log")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &Gateway{opts: opts, Addr: addr, URL: "http://" + addr}, nil
}

// environ is the process environment: the caller's without any GATEWAY_*
// variable, then the harness's settings, then Options.Env.
func (g *Gateway) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") && !strings.HasPrefix(kv, "SENTRY_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"GATEWAY_ADDR="+g.Addr,
		"GATEWAY_DATA_DIR="+g.opts.DataDir,
		"GATEWAY_DATABASE_URL="+g.opts.DatabaseURL,
		"GATEWAY_AUTH_MODE=dev",
		"GATEWAY_SHUTDOWN_TIMEOUT=5s",
	)
	return append(env, g.opts.Env...)
}

// Start starts the process and waits until /readyz answers 200.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	if g.cmd != nil {
		g.mu.Unlock()
		return errors.New("systemtest: gateway already running")
	}
	logf, err := os.OpenFile(g.opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.mu.Unlock()
		return err
	}
	g.starts++
	fmt.Fprintf(logf, "\n===== systemtest: start #%d at %s =====\n", g.starts, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(g.opts.Binary, "serve")
	cmd.Env = g.environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the test does not reach it, and
	// nothing it starts outlives a kill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		g.mu.Unlock()
		return fmt.Errorf("systemtest: start gateway: %w", err)
	}
	done := make(chan struct{})
	g.cmd, g.done, g.lastPID = cmd, done, cmd.Process.Pid
	g.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	return g.WaitReady(ctx)
}

// WaitReady polls /readyz until it answers 200, the process exits or ctx ends.
func (g *Gateway) WaitReady(ctx context.Context) error {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	if done == nil {
		return errors.New("systemtest: gateway not started")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("systemtest: gateway exited before it was ready; log tail:\n%s", g.LogTail(40))
		case <-ctx.Done():
			return fmt.Errorf("systemtest: gateway not ready: %w; log tail:\n%s", ctx.Err(), g.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signal sends sig and waits for the process to exit.
func (g *Gateway) signal(ctx context.Context, sig syscall.Signal) error {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("systemtest: signal gateway: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("systemtest: gateway did not exit after %v: %w", sig, ctx.Err())
	}
	g.mu.Lock()
	g.cmd, g.done = nil, nil
	g.mu.Unlock()
	return nil
}

// Kill ends the process with SIGKILL (no shutdown of any kind) and waits for it.
func (g *Gateway) Kill() error { return g.signal(context.Background(), syscall.SIGKILL) }

// Stop ends the process gracefully with SIGTERM and waits until ctx ends.
func (g *Gateway) Stop(ctx context.Context) error { return g.signal(ctx, syscall.SIGTERM) }

// Running reports whether the process is alive.
func (g *Gateway) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd != nil
}

// PID is the process id of the running (or last) process.
func (g *Gateway) PID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastPID
}

// Starts counts how often the process was started.
func (g *Gateway) Starts() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.starts
}

// PeakRSS returns the running process's peak resident set size (VmHWM of
// /proc/<pid>/status) in bytes.
func (g *Gateway) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.PID()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("systemtest: VmHWM %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("systemtest: no VmHWM in /proc status")
}

// Token mints a dev access token with `gateway token` in the gateway's data
// folder (the key the server verifies with).
func (g *Gateway) Token(ctx context.Context, sub string, groups ...string) (string, error) {
	args := []string{"token", "--sub", sub, "--ttl", "24h"}
	for _, gr := range groups {
		args = append(args, "--group", gr)
	}
	cmd := exec.CommandContext(ctx, g.opts.Binary, args...)
	cmd.Env = g.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("systemtest: gateway token: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// Client returns a generated API client that sends token. hc nil uses a
// client with a 60 s timeout.
func (g *Gateway) Client(token string, hc *http.Client) (*client.ClientWithResponses, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return client.NewClientWithResponses(g.URL, client.WithHTTPClient(hc),
		client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
}

// LogTail returns the last n lines of the process's log.
func (g *Gateway) LogTail(n int) string {
	b, err := os.ReadFile(g.opts.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
