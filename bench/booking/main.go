// Command booking benchmarks POST /v1/bookings end to end: it builds the
// gateway, runs it as a separate process (live provider mode) against the
// provider simulators served by this process on loopback with a fixed
// latency added to every upstream request, and reports
//
//   - the median and p99 latency of POST /v1/bookings with one client,
//     next to the critical path measured with the same integration clients
//     directly: Zoom create, then the slowest of mentor calendar event and
//     Jira issue (the goal is gateway/critical path ≤ 1.1);
//   - bookings per second with many concurrent clients (default 200), and
//     their latency;
//   - the gateway process's peak RSS (VmHWM; goal ≤ 100 MB).
//
// It is not run by CI. Usage (from the repository root):
//
//	go run ./bench/booking                 # SQLite in a temp data folder
//	go run ./bench/booking -db postgres    # a fresh schema on GATEWAY_TEST_POSTGRES_URL
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/systemtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/booking:", err)
		os.Exit(1)
	}
}

type options struct {
	db, pgURL         string
	latency, duration time.Duration
	samples, clients  int
	keep              bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("booking", flag.ContinueOnError)
	fs.StringVar(&o.db, "db", "sqlite", "sqlite or postgres")
	fs.StringVar(&o.pgURL, "postgres-url", envOr("GATEWAY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server (a fresh schema is created and dropped)")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "latency added to every upstream request")
	fs.IntVar(&o.samples, "samples", 100, "sequential bookings for the single-client latency")
	fs.IntVar(&o.clients, "clients", 200, "concurrent clients for the throughput phase (one mentor each)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "length of the throughput phase")
	fs.BoolVar(&o.keep, "keep", false, "keep the data folder (gateway log) afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.db != "sqlite" && o.db != "postgres" {
		return fmt.Errorf("-db must be sqlite or postgres")
	}
	tmp, err := os.MkdirTemp("", "bench-booking-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "data folder:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	fmt.Fprintln(os.Stderr, "building the gateway…")
	bin, err := systemtest.Build(ctx, tmp)
	if err != nil {
		return err
	}
	dbURL := ""
	if o.db == "postgres" {
		u, drop, err := freshSchema(ctx, o.pgURL)
		if err != nil {
			return err
		}
		defer drop()
		dbURL = u
	}

	mentors := make([]string, o.clients)
	for i := range mentors {
		mentors[i] = fmt.Sprintf("bench-m%03d", i)
	}
	const direct = "bench-direct"
	up := systemtest.StartUpstreams(systemtest.UpstreamOptions{CalDAVUsers: append(slices.Clone(mentors), direct)})
	defer up.Close()
	gw, err := systemtest.NewGateway(systemtest.Options{Binary: bin, DataDir: filepath.Join(tmp, "data"), DatabaseURL: dbURL,
		Env: append(up.Env(), "GATEWAY_LOG_LEVEL=warn")})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := gw.Start(startCtx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = gw.Stop(sctx)
	}()
	fmt.Fprintf(os.Stderr, "provisioning %d mentors…\n", len(mentors))
	fx, err := systemtest.Provision(ctx, gw, up, systemtest.Setup{Mentors: mentors, ConnectCalDAV: true})
	if err != nil {
		return err
	}
	up.SetLatency(o.latency)

	// Slots: each mentor's bookings follow each other every 30 minutes from tomorrow on.
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	next := make([]atomic.Int64, len(mentors))
	request := func(m int, topic string) systemtest.Request {
		j := next[m].Add(1) - 1
		return systemtest.NewRequest(mentors[m], fmt.Sprintf("bench-c%03d", m), base.Add(time.Duration(j)*30*time.Minute), topic)
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients + 10}}
	api, err := gw.Client(fx.AdminToken, hc)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "measuring the critical path with the integration clients…")
	crit, err := criticalPath(ctx, up, direct, base, o.samples/2)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "single-client latency…")
	// Warm up (token fetch, connections), then measure.
	for i := range 3 {
		if _, err := book(ctx, api, request(i%len(mentors), "warm-up")); err != nil {
			return err
		}
	}
	var single []time.Duration
	codes1 := map[int]int{}
	for i := range o.samples {
		res, err := book(ctx, api, request(i%len(mentors), "latency"))
		if err != nil {
			return err
		}
		codes1[res.Status]++
		single = append(single, res.Latency)
	}

	fmt.Fprintf(os.Stderr, "throughput with %d clients for %v…\n", o.clients, o.duration)
	var (
		mu    sync.Mutex
		lat   []time.Duration
		codes = map[int]int{}
	)
	tctx, tcancel := context.WithTimeout(ctx, o.duration)
	defer tcancel()
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for c := range o.clients {
		g.Go(func() error {
			for tctx.Err() == nil {
				res, err := book(gctx, api, request(c, "throughput"))
				if err != nil {
					return err
				}
				mu.Lock()
				codes[res.Status]++
				lat = append(lat, res.Latency)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	elapsed := time.Since(began)
	rss, err := gw.PeakRSS()
	if err != nil {
		return err
	}
	ok := codes[http.StatusCreated] + codes[http.StatusAccepted]

	med, p99 := pct(single, 50), pct(single, 99)
	fmt.Fprintf(out, "## POST /v1/bookings, %s, %v upstream latency (%s)\n\n", o.db, o.latency, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(out, "machine: %d cores (%s), %s/%s, %s\n\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(out, "| critical path: Zoom + max(mentor calendar, Jira), median of %d | %v |\n", len(crit.full), ms(pct(crit.full, 50)))
	fmt.Fprintf(out, "| … of which Zoom create / calendar event / Jira issue (medians) | %v / %v / %v |\n", ms(pct(crit.zoom, 50)), ms(pct(crit.cal, 50)), ms(pct(crit.jira, 50)))
	fmt.Fprintf(out, "| mentor free/busy check (median; the gateway does it before writing) | %v |\n", ms(pct(crit.busy, 50)))
	fmt.Fprintf(out, "| gateway, 1 client: median / p99 of %d (statuses %v) | %v / %v |\n", len(single), codes1, ms(med), ms(p99))
	fmt.Fprintf(out, "| ratio median / critical path (goal ≤ 1.1) | %.2f |\n", float64(med)/float64(pct(crit.full, 50)))
	fmt.Fprintf(out, "| %d clients, %v: bookings/s (answered 201/202; statuses %v) | %.1f |\n", o.clients, o.duration, codes, float64(ok)/elapsed.Seconds())
	fmt.Fprintf(out, "| %d clients: median / p99 latency | %v / %v |\n", o.clients, ms(pct(lat, 50)), ms(pct(lat, 99)))
	fmt.Fprintf(out, "| gateway peak RSS, VmHWM (goal ≤ 100 MB) | %.1f MB |\n", float64(rss)/(1<<20))
	return nil
}

type result struct {
	Status  int
	Latency time.Duration
}

// book sends one booking; anything but 201/202 other than 409 is an error.
func book(ctx context.Context, api *client.ClientWithResponses, r systemtest.Request) (result, error) {
	t0 := time.Now()
	resp, err := api.CreateBookingWithResponse(ctx, &client.CreateBookingParams{IdempotencyKey: r.Key}, r.Body)
	if err != nil {
		return result{}, err
	}
	res := result{Status: resp.StatusCode(), Latency: time.Since(t0)}
	if res.Status != http.StatusCreated && res.Status != http.StatusAccepted {
		return res, fmt.Errorf("POST /v1/bookings answered %d: %s", res.Status, resp.Body)
	}
	return res, nil
}

type critical struct{ full, zoom, cal, jira, busy []time.Duration }

// criticalPath runs, n times, what a booking's required and parallel steps
// do at the providers, with the same integration clients the gateway uses:
// the Zoom meeting (lookup-before-create), then the mentor's calendar event
// and the Jira issue (lookup-before-create) in parallel.
func criticalPath(ctx context.Context, up *systemtest.Upstreams, user string, base time.Time, n int) (critical, error) {
	var c critical
	hc := &http.Client{Timeout: 30 * time.Second}
	zc := zoom.New(func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: systemtest.ZoomAccountID, ClientID: systemtest.ZoomClientID, ClientSecret: systemtest.ZoomClientSecret}, nil
	}, zoom.WithBaseURL(up.ZoomURL), zoom.WithOAuthURL(up.ZoomURL), zoom.WithHTTPClient(hc))
	cal, err := caldav.New(up.CalDAVURL+caldavtest.CalendarPath(user, caldavtest.DefaultCalendar), user, systemtest.CalDAVPassword, caldav.WithHTTPClient(hc))
	if err != nil {
		return c, err
	}
	jc, err := jira.New(up.JiraURL, jira.BasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken), jira.WithHTTPClient(hc))
	if err != nil {
		return c, err
	}
	if _, err := zc.Tokens().Token(ctx); err != nil { // the gateway holds a token too
		return c, err
	}
	for i := range n + 2 {
		id := "direct-" + randHex(8)
		start := base.Add(time.Duration(i) * 30 * time.Minute).Add(59 * 24 * time.Hour / 2)
		t0 := time.Now()
		if _, err := cal.FreeBusy(ctx, start, start.Add(30*time.Minute)); err != nil {
			return c, err
		}
		t1 := time.Now()
		if _, err := zc.CreateMeeting(ctx, user+"@mentors.test", id, zoom.MeetingRequest{Topic: "direct", StartTime: start, Duration: 30 * time.Minute}); err != nil {
			return c, err
		}
		t2 := time.Now()
		var tc, tj time.Duration
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			s := time.Now()
			_, err := cal.CreateEvent(gctx, calendar.Event{BookingID: id, Summary: "direct", Start: start, End: start.Add(30 * time.Minute), TimeZone: "UTC"})
			tc = time.Since(s)
			return err
		})
		g.Go(func() error {
			s := time.Now()
			_, _, err := jc.EnsureIssue(gctx, id, jira.IssueInput{ProjectKey: jiratest.DefaultProjectKey, IssueType: "Task", Summary: "direct", BookingID: id})
			tj = time.Since(s)
			return err
		})
		if err := g.Wait(); err != nil {
			return c, err
		}
		if i < 2 {
			continue // warm-up
		}
		c.busy = append(c.busy, t1.Sub(t0))
		c.zoom = append(c.zoom, t2.Sub(t1))
		c.cal, c.jira = append(c.cal, tc), append(c.jira, tj)
		c.full = append(c.full, time.Since(t1))
	}
	return c, nil
}

// freshSchema creates an empty schema on the server and returns a URL
// selecting it, and a function dropping it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	schema := "bench_" + randHex(6)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public"); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}
