package webhooks_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// BenchmarkZoomIntake drives signed ≈1 KiB Zoom meeting.started deliveries
// through the gateway's real HTTP stack (net/http server, httpapi's
// middleware, the intake), the real group commit on a temporary database
// and the in-process processing (a booking service that finds no booking,
// as in bench/webhooks), from intakeSenders keep-alive connections at once
// so commits batch. An op is one delivery, from its request to its outcome
// recorded and its hand-off job deleted: B/op and allocs/op are the
// gateway's allocations per delivery (the senders write prebuilt requests
// and read the answers without allocating). River runs no workers: every
// delivery must be processed in process.
//
//	go test ./webhooks -run '^$' -bench ZoomIntake -benchtime 20000x -benchmem
func BenchmarkZoomIntake(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) *store.Store
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(db.name, func(b *testing.B) { benchZoomIntake(b, db.open(b)) })
	}
}

// intakeSenders is the number of concurrent senders (connections), and
// intakeBatch the deliveries of a group commit: with four times as many
// senders, the committer finds a full batch waiting nearly every time.
const (
	intakeSenders = 128
	intakeBatch   = 32
)

func benchZoomIntake(b *testing.B, db *store.Store) {
	const secret = "bench-zoom-secret"
	quiet := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	jobs := &countingJobs{}
	svc, err := webhooks.New(webhooks.Config{
		DB:       db,
		Jobs:     func() webhooks.JobInserter { return jobs },
		Secrets:  webhooks.CachedSecrets(func(context.Context) (webhooks.Secrets, error) { return webhooks.Secrets{Zoom: []string{secret}}, nil }, time.Minute, nil),
		Bookings: noBookings{},
		// Batches of intakeBatch, whatever the machine's timing: what a
		// commit allocates is shared by its deliveries, so B/op depends
		// on the batch size.
		Commit: webhooks.CommitConfig{MaxBatch: intakeBatch},
		Logger: quiet,
		// A registry of its own: the metrics are updated as in production.
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, svc.ProcessWorker())
	if jobs.Jobs, err = store.NewJobs(db, store.JobsConfig{Workers: workers, Logger: quiet}); err != nil {
		b.Fatal(err)
	}
	e, err := httpapi.NewServer(httpapi.Deps{
		Logger: quiet, Registry: prometheus.NewRegistry(), Authenticator: rejectAll{},
		Mount:        []func(*echo.Echo){svc.Mount},
		ErrorMappers: []httpapi.ErrorMapper{httpapi.WebhookErrors},
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer func() {
		srv.Close()
		svc.Close()
	}()

	// Every delivery is unique (its meeting id and uuid) and signed now:
	// the requests are built before the timer starts.
	var seq int
	pad := strings.Repeat("x", 1024-220)
	build := func(n int) [][]byte {
		reqs := make([][]byte, n)
		for i := range reqs {
			seq++
			now := time.Now()
			body := fmt.Appendf(nil, `{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"bench","object":{"id":"%d","uuid":"u%d","host_id":"h","topic":"%s","type":2,"start_time":"%s","duration":60,"timezone":"UTC"}}}`,
				now.UnixMilli(), 900000000+seq, seq, pad, now.UTC().Format(time.RFC3339))
			ts := strconv.FormatInt(now.Unix(), 10)
			reqs[i] = fmt.Appendf(nil, "POST /webhooks/zoom HTTP/1.1\r\nHost: gateway.test\r\nUser-Agent: Zoom Marketplace/1.0a\r\nContent-Type: application/json; charset=utf-8\r\n"+
				"Content-Length: %d\r\nx-zm-request-timestamp: %s\r\nx-zm-signature: %s\r\nx-zm-trackingid: v=2.0;clid=aw1;rid=%d\r\n\r\n%s",
				len(body), ts, zoomtest.Sign(secret, ts, body), seq, body)
		}
		return reqs
	}
	conns := make([]*intakeConn, intakeSenders)
	for i := range conns {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = &intakeConn{c: c, r: bufio.NewReader(c)}
	}
	// send sends reqs over every connection at once and waits until every
	// delivery has been processed and its hand-off job deleted.
	send := func(reqs [][]byte) {
		var (
			next atomic.Int64
			wg   sync.WaitGroup
			errs = make(chan error, len(conns))
		)
		for _, c := range conns {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(reqs) {
						return
					}
					if err := c.roundTrip(reqs[i]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for jobs.deleted.Load() < jobs.inserted.Load() || jobs.deliveries.Load() < int64(seq) {
			if time.Now().After(deadline) {
				b.Fatalf("not drained: %d of %d deliveries in jobs, %d of %d hand-off jobs deleted",
					jobs.deliveries.Load(), seq, jobs.deleted.Load(), jobs.inserted.Load())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Warm up: every connection, the statement caches, the pools.
	send(build(4 * intakeSenders))
	reqs := build(b.N)
	commits0, deliveries0 := jobs.commits.Load(), jobs.deliveries.Load()
	b.ReportAllocs()
	b.ResetTimer()
	send(reqs)
	b.StopTimer()
	if n := jobs.commits.Load() - commits0; n > 0 {
		b.ReportMetric(float64(jobs.deliveries.Load()-deliveries0)/float64(n), "deliveries/commit")
	}
}

// intakeConn is a sender's keep-alive connection.
type intakeConn struct {
	c net.Conn
	r *bufio.Reader
}

// roundTrip writes a prebuilt request and reads its answer, which must be
// 204 No Content (no body), without allocating.
func (c *intakeConn) roundTrip(req []byte) error {
	if _, err := c.c.Write(req); err != nil {
		return err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 204 ")) {
		rest, _ := c.r.Peek(c.r.Buffered())
		return fmt.Errorf("answer %q %q", line, rest)
	}
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// countingJobs is the gateway's job runner (insert-only here) counting the
// processing jobs committed and the hand-off jobs deleted once processed.
type countingJobs struct {
	*store.Jobs
	commits, inserted, deliveries, deleted atomic.Int64
}

func (j *countingJobs) InsertManyTx(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	res, err := j.Jobs.InsertManyTx(ctx, tx, params)
	if err == nil {
		j.count(params)
	}
	return res, err
}

func (j *countingJobs) InsertManyPgx(ctx context.Context, tx *sql.Tx, px store.PgxFunc, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	res, err := j.Jobs.InsertManyPgx(ctx, tx, px, params)
	if err == nil {
		j.count(params)
	}
	return res, err
}

// count counts jobs inserted by a commit: the commit may still roll back
// (it does not in this benchmark).
func (j *countingJobs) count(params []river.InsertManyParams) {
	j.commits.Add(1)
	for _, p := range params {
		if a, ok := p.Args.(webhooks.ProcessArgs); ok {
			j.inserted.Add(1)
			j.deliveries.Add(int64(len(a.DeliveryIDs)))
		}
	}
}

func (j *countingJobs) DeleteTx(ctx context.Context, tx *sql.Tx, ids ...int64) error {
	err := j.Jobs.DeleteTx(ctx, tx, ids...)
	if err == nil {
		j.deleted.Add(int64(len(ids)))
	}
	return err
}

// noBookings is a booking service without bookings: every meeting lookup
// finds none (batched, as the gateway's does).
type noBookings struct{ webhooks.Bookings }

func (noBookings) FindByMeeting(context.Context, string) (webhooks.Booking, error) {
	return webhooks.Booking{}, webhooks.ErrBookingNotFound
}

func (noBookings) FindByMeetings(context.Context, []string) (map[string]webhooks.Booking, error) {
	return map[string]webhooks.Booking{}, nil
}

// rejectAll rejects every token; the intake never asks for one.
type rejectAll struct{}

func (rejectAll) Verify(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, auth.ErrInvalidToken
}
