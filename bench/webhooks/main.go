// Command webhooks is the load benchmark of the webhook intake: signed Zoom
// deliveries at rising rates against the real gateway (cmd/gateway serve,
// sandbox providers, one child process per database) on SQLite and on
// PostgreSQL, next to the same load against a bare echo handler that
// answers 200 (a child process of this program), in the same run.
//
// For every target and step it reports accepted deliveries/s, p50/p99 ack
// latency (measured from the scheduled send time, so a server that falls
// behind is not flattered) and the child's peak RSS (VmHWM). Open-loop
// steps send at a fixed rate; the final "max" steps are closed-loop (c
// connections back to back, like wrk) and give each target's ceiling.
// After each step the benchmark waits until the gateway has processed
// every stored delivery (River jobs) and prints that wait as "drain": the
// processing lag the step left. After each gateway run the gateway's own
// counters are read from /metrics: deliveries stored (must equal the 2xx
// answers seen) and the mean group-commit batch size.
//
// The gateway runs with GATEWAY_LOG_LEVEL=warn (no per-request access log
// line) and sandbox providers; every delivery is processed for real
// (booking lookup by meeting id, which finds none).
//
//	go run ./bench/webhooks                       # SQLite, PostgreSQL if -pg is reachable, echo
//	go run ./bench/webhooks -db sqlite -rates 1000,4000 -step 3s
//
// Not part of CI.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// zoomSecret is the sandbox Zoom webhook secret the gateway seeds.
const zoomSecret = "sandbox-zoom-webhook-secret"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo-server" {
		serveEcho()
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveEcho is the baseline child: a bare echo handler answering 200.
func serveEcho() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/webhooks/zoom", func(c echo.Context) error {
		_, _ = io.Copy(io.Discard, c.Request().Body)
		return c.NoContent(http.StatusOK)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String())
	_ = http.Serve(ln, e)
}

type config struct {
	dbs      []string
	pgURL    string
	rates    []int
	step     time.Duration
	conns    int
	maxConns []int
	bodySize int
	// profile, when set, is a folder for a CPU profile of the gateway
	// during each target's last max step.
	profile string
	// rounds of interleaved max steps (see runRounds); 0: none.
	rounds int
	// roundConns are the concurrency levels of each target's steps in a
	// round; its best is its ceiling.
	roundConns []int
	// compare, when set, is another checkout whose gateway runs in the
	// rounds too (an A/B of two versions).
	compare string
	// envB is extra environment (KEY=VALUE) for the -compare gateway only:
	// with -compare naming this checkout, an A/B of a setting.
	envB []string
}

func run() error {
	var (
		cfg        config
		dbs        = flag.String("db", "sqlite,postgres", "databases to run the gateway on (sqlite, postgres)")
		rates      = flag.String("rates", "500,1000,2000,4000,8000", "open-loop steps, deliveries per second")
		maxConns   string
		roundConns string
	)
	flag.StringVar(&cfg.pgURL, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL server (a fresh schema is created and dropped)")
	flag.DurationVar(&cfg.step, "step", 5*time.Second, "duration of each step")
	flag.IntVar(&cfg.conns, "conns", 512, "open-loop: most requests in flight")
	flag.StringVar(&maxConns, "c", "64,256", "closed-loop max steps: concurrent connections")
	flag.IntVar(&cfg.bodySize, "body", 1024, "approximate delivery body size in bytes")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of interleaved max steps (echo, then each database, at each -rounds-c) whose median gives the share of echo; 0: none")
	flag.StringVar(&roundConns, "rounds-c", "64,256,1024", "concurrent connections of the rounds' steps; a target's ceiling in a round is its best")
	flag.StringVar(&cfg.compare, "compare", "", "another checkout of the gateway (a git worktree, say) to run in the rounds too, for an A/B of two versions")
	flag.Func("env-b", "KEY=VALUE for the -compare gateway's environment only (repeatable): with -compare . an A/B of a setting", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		cfg.envB = append(cfg.envB, v)
		return nil
	})
	flag.StringVar(&cfg.profile, "profile", "", "folder for a CPU profile of the gateway during the last max step and the drain after it (<target>.pprof; go tool pprof)")
	flag.Parse()
	cfg.dbs = strings.Split(*dbs, ",")
	var (
		err error
		tmp string
	)
	if cfg.maxConns, err = parseConns("-c", maxConns); err != nil {
		return err
	}
	if cfg.roundConns, err = parseConns("-rounds-c", roundConns); err != nil {
		return err
	}
	for _, r := range strings.FieldsFunc(*rates, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad rate %q", r)
		}
		cfg.rates = append(cfg.rates, n)
	}

	tmp, err = os.MkdirTemp("", "bench-webhooks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "gateway")
	self := filepath.Join(tmp, "benchself")
	for _, b := range [][2]string{{bin, "./cmd/gateway"}, {self, "./bench/webhooks"}} {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}

	var binB string
	if cfg.compare != "" {
		binB = filepath.Join(tmp, "gateway-b")
		cmd := exec.Command("go", "build", "-o", binB, "./cmd/gateway")
		cmd.Dir = cfg.compare
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s/cmd/gateway: %v\n%s", cfg.compare, err, out)
		}
	}

	host, _ := os.Hostname()
	fmt.Printf("# webhook intake benchmark  %s  host=%s  %s/%s  cpus=%d  %s\n", time.Now().UTC().Format(time.RFC3339), host,
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("# step=%s open-loop in-flight cap=%d, max steps c=%v, body≈%dB, signed Zoom meeting.started deliveries\n\n",
		cfg.step, cfg.conns, cfg.maxConns, cfg.bodySize)

	targets := []string{"echo"}
	targets = append(targets, cfg.dbs...)
	if len(cfg.rates) > 0 || len(cfg.maxConns) > 1 || cfg.rounds == 0 {
		for _, target := range targets {
			if err := runTarget(cfg, target, bin, self, tmp); err != nil {
				fmt.Printf("%-9s error: %v\n\n", target, err)
			}
		}
	}
	if cfg.rounds > 0 {
		return runRounds(cfg, bin, binB, self, tmp)
	}
	return nil
}

// parseConns parses a comma-separated list of connection counts.
func parseConns(flagName, list string) ([]int, error) {
	var ns []int
	for _, c := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad %s %q", flagName, c)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// child is a running server process.
type child struct {
	cmd *exec.Cmd
	url string
	// debugURL serves pprof (gateway started for -profile).
	debugURL string
	done     chan struct{}
}

// profileDrain is how long a CPU profile goes on after the step: the
// processing of the step's backlog (drain) shows in it.
const profileDrain = 6 * time.Second

// cpuProfile writes a CPU profile of the next d (less a margin) and of
// profileDrain after it to file.
func (c *child) cpuProfile(d time.Duration, file string) error {
	secs := max(1, int((d-500*time.Millisecond+profileDrain)/time.Second))
	return c.fetchProfile(fmt.Sprintf("profile?seconds=%d", secs), file)
}

// fetchProfile writes the child's /debug/pprof/<name> to file (allocs:
// every allocation since the start, for go tool pprof -sample_index=alloc_space).
func (c *child) fetchProfile(name, file string) error {
	resp, err := http.Get(c.debugURL + "/debug/pprof/" + name)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *child) peakRSS() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%.0f MB", float64(kb)/1024)
		}
	}
	return "n/a"
}

// cpuTime is the CPU time (user + system) the child has used so far.
func (c *child) cpuTime() time.Duration { return procCPU(c.cmd.Process.Pid) }

// machineCPU returns the machine's busy and total CPU time so far (all
// cores, from /proc/stat).
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var sum, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return time.Duration(sum-idle) * 10 * time.Millisecond, time.Duration(sum) * 10 * time.Millisecond
}

// stepCPU is where the machine's CPU went during a step, and the
// gateway's group commits so far.
type stepCPU struct {
	busy, total, server, loadgen time.Duration
	batches, batched             float64
	// Context switches so far: the machine's (all processes, from
	// /proc/stat) and those of the server's and this process's threads.
	switches, serverSwitches, loadgenSwitches int64
}

func cpuNow(c *child, target string) stepCPU {
	busy, total := machineCPU()
	s := stepCPU{busy: busy, total: total, server: c.cpuTime(), loadgen: procCPU(os.Getpid()),
		switches: machineSwitches(), serverSwitches: procSwitches(c.cmd.Process.Pid), loadgenSwitches: procSwitches(os.Getpid())}
	if target != "echo" {
		_, s.batches, s.batched, _, _ = gatewayMetrics(c.url)
	}
	return s
}

// print writes the shares of the machine's CPU (all cores) used by the
// machine, the server and this load generator between from and s, and
// the context switches per request (of requests answered in between).
func (s stepCPU) print(target string, from stepCPU, requests int64) {
	total := float64(s.total - from.total)
	if total <= 0 {
		return
	}
	fmt.Printf("%-9s            CPU during the step: machine busy %.0f %%, server %.0f %%, load generator %.0f %% (of all cores)", target,
		100*float64(s.busy-from.busy)/total, 100*float64(s.server-from.server)/total, 100*float64(s.loadgen-from.loadgen)/total)
	if n := s.batches - from.batches; n > 0 {
		fmt.Printf("; mean group-commit batch %.1f", (s.batched-from.batched)/n)
	}
	if requests > 0 {
		r := float64(requests)
		fmt.Printf("; context switches per request: machine %.2f, server %.2f, load generator %.2f",
			float64(s.switches-from.switches)/r, float64(s.serverSwitches-from.serverSwitches)/r, float64(s.loadgenSwitches-from.loadgenSwitches)/r)
	}
	fmt.Println()
}

// machineSwitches is the number of context switches of all processes
// since boot (the ctxt line of /proc/stat).
func machineSwitches() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ctxt "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// procSwitches is the number of context switches (voluntary and not) of
// the live threads of process pid so far. Threads that have exited are
// not counted; a Go process keeps its threads.
func procSwitches(pid int) int64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += k
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += k
			}
		}
	}
	return n
}

// procCPU is the CPU time (user + system) process pid has used so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses): utime and stime are
	// the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startEcho(self string) (*child, error) {
	cmd := exec.Command(self, "echo-server")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, err
	}
	c.url = strings.TrimSpace(line)
	return c, nil
}

func startGateway(bin, dataDir, dbURL string, profile bool, env []string) (*child, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "GATEWAY_ADDR="+addr, "GATEWAY_DATA_DIR="+dataDir, "GATEWAY_DATABASE_URL="+dbURL,
		"GATEWAY_LOG_LEVEL=warn", "GATEWAY_ENV=development", "GATEWAY_PROVIDERS=sandbox", "SENTRY_DSN=")
	cmd.Env = append(cmd.Env, env...)
	var debugURL string
	if profile {
		debugAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "GATEWAY_DEBUG_ADDR="+debugAddr)
		debugURL = "http://" + debugAddr
	}
	logf, err := os.Create(filepath.Join(dataDir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, url: "http://" + addr, debugURL: debugURL, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(c.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c, nil
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(filepath.Join(dataDir, "gateway.log"))
			return nil, fmt.Errorf("gateway exited: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.stop()
	return nil, errors.New("gateway not ready after 60s")
}

// pgSchema creates a fresh schema and returns a URL selecting it and a cleanup.
func pgSchema(base string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "bench_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	_, _ = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public")
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	return u.String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	}, nil
}

// startTarget starts the server of target (echo, sqlite or postgres; the
// gateway built as bin) with its data in tmp/dir; stop ends it (and drops
// its PostgreSQL schema).
func startTarget(cfg config, target, bin, self, tmp, dir string, env []string) (c *child, stop func(), err error) {
	cleanup := func() {}
	switch target {
	case "echo":
		c, err = startEcho(self)
	case "sqlite":
		dir := filepath.Join(tmp, dir)
		_ = os.MkdirAll(dir, 0o700)
		c, err = startGateway(bin, dir, "", cfg.profile != "", env)
	case "postgres":
		u, drop, perr := pgSchema(cfg.pgURL)
		if perr != nil {
			return nil, nil, fmt.Errorf("postgres: %w", perr)
		}
		dir := filepath.Join(tmp, dir)
		_ = os.MkdirAll(dir, 0o700)
		if c, err = startGateway(bin, dir, u, cfg.profile != "", env); err != nil {
			drop()
		}
		cleanup = drop
	default:
		return nil, nil, fmt.Errorf("unknown target %q", target)
	}
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.stop(); cleanup() }, nil
}

// newGenerator returns a load generator for c (and a cleanup). Its
// transport allows as many connections as the largest concurrency of any
// step, so a closed-loop step of c senders has c connections (one request
// in flight on each, like wrk) and never queues senders for a connection in
// the client; the open-loop steps bound what is in flight themselves.
func newGenerator(cfg config, c *child) (*generator, func()) {
	conns := cfg.conns
	for _, n := range slices.Concat(cfg.maxConns, cfg.roundConns) {
		conns = max(conns, n)
	}
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return &generator{url: c.url + "/webhooks/zoom", hc: hc, bodySize: cfg.bodySize}, tr.CloseIdleConnections
}

func runTarget(cfg config, target, bin, self, tmp string) error {
	c, stop, err := startTarget(cfg, target, bin, self, tmp, target, nil)
	if err != nil {
		return err
	}
	defer stop()
	gen, closeIdle := newGenerator(cfg, c)
	defer closeIdle()
	// Warm up connections and the server.
	gen.closedLoop(32, time.Second)
	fmt.Printf("%-9s %-10s %12s %12s %10s %10s %8s %10s\n", "target", "step", "sent/s", "accepted/s", "p50", "p99", "errors", "drain")
	var total int64
	drain := func() string {
		if target == "echo" {
			return "-"
		}
		return drainBacklog(c.url).Round(100 * time.Millisecond).String()
	}
	drain()
	for _, r := range cfg.rates {
		res := gen.openLoop(r, cfg.step, cfg.conns)
		total += res.ok
		res.print(target, fmt.Sprintf("%d/s", r), drain())
	}
	for i, mc := range cfg.maxConns {
		var profiled chan error
		if c.debugURL != "" && i == len(cfg.maxConns)-1 {
			profiled = make(chan error, 1)
			go func() { profiled <- c.cpuProfile(cfg.step, filepath.Join(cfg.profile, target+".pprof")) }()
		}
		before := cpuNow(c, target)
		res := gen.closedLoop(mc, cfg.step)
		after := cpuNow(c, target)
		total += res.ok
		res.print(target, fmt.Sprintf("max c=%d", mc), drain())
		after.print(target, before, res.ok)
		if profiled != nil {
			if err := <-profiled; err != nil {
				fmt.Printf("%-9s profile: %v\n", target, err)
			}
			if err := c.fetchProfile("allocs", filepath.Join(cfg.profile, target+".allocs.pprof")); err != nil {
				fmt.Printf("%-9s allocs profile: %v\n", target, err)
			}
		}
	}
	fmt.Printf("%-9s peak RSS %s", target, c.peakRSS())
	if target != "echo" {
		stored, batches, sum, commitSecs, jobs := gatewayMetrics(c.url)
		// The warm-up deliveries count too.
		fmt.Printf("; gateway stored %d deliveries (2xx seen %d incl. warm-up %d); mean group-commit batch %.1f over %d transactions of %.1f ms",
			stored, total+gen.warm, gen.warm, safeDiv(sum, batches), int64(batches), 1000*safeDiv(commitSecs, batches))
		fmt.Printf("; processing jobs: %.0f in process, %.0f left to River (hand-off full)", jobs["in_process"], jobs["queued"])
		// CPU per delivery is less sensitive to other load on the machine
		// than deliveries/s: compare it between runs.
		fmt.Printf("; gateway CPU %.1fs = %.0f µs per stored delivery (intake and processing)",
			c.cpuTime().Seconds(), safeDiv(float64(c.cpuTime().Microseconds()), float64(stored)))
	}
	fmt.Print("\n\n")
	return nil
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// gatewayMetrics reads the gateway's /metrics: deliveries stored, group
// commits (count, deliveries, seconds) and the processing jobs by
// path (in_process: the hand-off; queued: left to River at once, the
// hand-off being full; replay).
func gatewayMetrics(base string) (stored int64, batches, sum, commitSecs float64, jobs map[string]float64) {
	jobs = map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0, 0, 0, jobs
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(line, `gateway_webhook_accepted_total{outcome="stored",provider="zoom"}`):
			stored = int64(v)
		case strings.HasPrefix(line, "gateway_webhook_commit_batch_size_count"):
			batches = v
		case strings.HasPrefix(line, "gateway_webhook_commit_batch_size_sum"):
			sum = v
		case strings.HasPrefix(line, "gateway_webhook_commit_seconds_sum"):
			commitSecs = v
		case strings.HasPrefix(line, `gateway_webhook_process_jobs_total{path="`):
			path, _, _ := strings.Cut(strings.TrimPrefix(line, `gateway_webhook_process_jobs_total{path="`), `"`)
			jobs[path] = v
		}
	}
	return stored, batches, sum, commitSecs, jobs
}

type generator struct {
	url      string
	hc       *http.Client
	bodySize int
	seq      atomic.Int64
	warm     int64
	pad      string
	once     sync.Once
}

// delivery builds a unique signed meeting.started delivery.
func (g *generator) delivery() ([]byte, string, string) {
	g.once.Do(func() { g.pad = strings.Repeat("x", max(0, g.bodySize-220)) })
	n := g.seq.Add(1)
	now := time.Now()
	body := fmt.Appendf(nil, `{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"bench","object":{"id":"%d","uuid":"u%d","host_id":"h","topic":"%s","type":2,"start_time":"%s","duration":60,"timezone":"UTC"}}}`,
		now.UnixMilli(), 900000000+n, n, g.pad, now.UTC().Format(time.RFC3339))
	ts := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, []byte(zoomSecret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	return body, ts, "v0=" + hex.EncodeToString(m.Sum(nil))
}

func (g *generator) send() (bool, error) {
	body, ts, sig := g.delivery()
	req, err := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", sig)
	resp, err := g.hc.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300, nil
}

type result struct {
	sent, ok, errs int64
	dur            time.Duration
	lat            []time.Duration
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) print(target, step, drain string) {
	s := r.dur.Seconds()
	fmt.Printf("%-9s %-10s %12.0f %12.0f %10s %10s %8d %10s\n", target, step, float64(r.sent)/s, float64(r.ok)/s,
		r.pct(0.50).Round(10*time.Microsecond), r.pct(0.99).Round(10*time.Microsecond), r.errs, drain)
}

// drainBacklog waits (at most 60s) until the gateway has processed every
// stored delivery and returns how long that took: the processing lag left
// by a step.
func drainBacklog(base string) time.Duration {
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		stored, processed := deliveryCounts(base)
		if processed >= stored {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// deliveryCounts reads stored and processed Zoom deliveries from /metrics.
func deliveryCounts(base string) (stored, processed int64) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(line, `gateway_webhook_accepted_total{outcome="stored",provider="zoom"}`):
			stored = int64(v)
		case strings.HasPrefix(line, `gateway_webhook_processed_total{provider="zoom"`):
			processed += int64(v)
		}
	}
	return stored, processed
}

// openLoop sends at rate for d; latency counts from the scheduled time. A
// request that cannot start because inflight requests are in flight is
// counted as an error (the server is saturated).
func (g *generator) openLoop(rate int, d time.Duration, inflight int) result {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
		sem = make(chan struct{}, inflight)
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	total := int(d / interval)
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 200*time.Microsecond {
			time.Sleep(w)
		}
		res.sent++
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			res.errs++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := g.send()
			lat := time.Since(at)
			<-sem
			mu.Lock()
			defer mu.Unlock()
			if err != nil || !ok {
				res.errs++
				return
			}
			res.ok++
			res.lat = append(res.lat, lat)
		}()
	}
	wg.Wait()
	res.dur = max(time.Since(start), d)
	return res
}

// closedLoop runs c senders back to back for d.
func (g *generator) closedLoop(c int, d time.Duration) result {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for range c {
		wg.Go(func() {
			var lats []time.Duration
			var ok, errs int64
			for time.Now().Before(stop) {
				t0 := time.Now()
				good, err := g.send()
				if err != nil || !good {
					errs++
					continue
				}
				ok++
				lats = append(lats, time.Since(t0))
			}
			mu.Lock()
			res.ok += ok
			res.errs += errs
			res.sent += ok + errs
			res.lat = append(res.lat, lats...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.dur = time.Since(start)
	if g.warm == 0 {
		g.warm = res.ok
	}
	return res
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return ""
}
