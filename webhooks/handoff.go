package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// JobSettler settles processing jobs inside an application transaction
// (*store.Jobs implements it). When the JobInserter implements it too, the
// deliveries this process commits are processed here, from memory, right
// after the commit (the hand-off); their River job is only the durable
// fallback, deleted with a group commit after the outcomes are recorded.
type JobSettler interface {
	// DeleteTx deletes the jobs (those already gone, or running, are left
	// alone).
	DeleteTx(ctx context.Context, tx *sql.Tx, ids ...int64) error
	// RetryTx makes the job available to run now (one running now, or
	// gone, is left alone).
	RetryTx(ctx context.Context, tx *sql.Tx, id int64) error
}

// DefaultHandoffGrace is how long the River job of handed-off deliveries
// waits before it may run (see Config.HandoffGrace).
const DefaultHandoffGrace = 30 * time.Second

// handoffBatch is the new deliveries of one processing job, kept in memory
// for the process that committed them.
type handoffBatch struct {
	jobID     int64
	ds        []*Delivery
	zoom      []*ZoomEvent // intake's decoded Zoom events, aligned with ds (nil: none)
	committed time.Time
}

// handoff runs the in-process processing of committed deliveries: a
// bounded queue of batches (room is reserved before the commit, so pushing
// after it never blocks) and workers that take turns with River's
// processing jobs (Service.processing).
//
// Its River job is inserted scheduled grace ahead. A batch that waited
// more than grace/4 in the queue is left to that job, and a batch's
// processing is cut off at grace/4 (recording its outcomes is bounded by
// CommitConfig.Timeout, 10 s), so with the default grace the in-process run
// and the job do not overlap; if the process dies, the job runs on any
// replica once grace has passed.
type handoff struct {
	s      *Service
	grace  time.Duration
	mu     sync.Mutex
	held   int // deliveries reserved or queued
	queue  chan handoffBatch
	quit   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

// handoffLimit bounds the deliveries waiting for in-process processing
// (about 1 KiB each); when it is reached, new deliveries go to River at
// once.
const handoffLimit = 2048

// newHandoff starts workers: more than the processing turns, so a batch
// waiting for its outcomes' commit does not hold up the next one.
func newHandoff(s *Service, grace time.Duration, turns int) *handoff {
	h := &handoff{s: s, grace: grace, queue: make(chan handoffBatch, handoffLimit), quit: make(chan struct{})}
	for range turns + 2 {
		h.wg.Go(h.work)
	}
	return h
}

// reserve makes room for a batch of n deliveries about to be committed.
func (h *handoff) reserve(n int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held+n > handoffLimit {
		return false
	}
	h.held += n
	return true
}

// release gives back the room of n deliveries (processed, or their batch
// did not commit).
func (h *handoff) release(n int) {
	h.mu.Lock()
	h.held -= n
	h.mu.Unlock()
}

// push queues a committed batch into its reserved room.
func (h *handoff) push(b handoffBatch) { h.queue <- b }

// handoffMerge bounds the deliveries of the batches one processing turn
// takes from the queue at once.
const handoffMerge = 512

func (h *handoff) work() {
	for {
		select {
		case <-h.quit:
			return
		case b := <-h.queue:
			h.run(b)
		}
	}
}

// run processes batch b, with the batches queued behind it once it has a
// processing turn: when processing falls behind intake (its turns and the
// database are shared with the commits), one turn then takes the backlog
// at once, one booking lookup and one outcome commit for all of it,
// instead of a batch at a time until the queue is full and new
// deliveries go to River. Batches that waited longer than grace/4 are
// left to their jobs.
func (h *handoff) run(b handoffBatch) {
	h.release(len(b.ds))
	ctx, cancel := context.WithTimeout(context.Background(), h.grace/4)
	defer cancel()
	select {
	case h.s.processing <- struct{}{}:
	case <-ctx.Done():
		return
	case <-h.quit:
		return
	}
	release := sync.OnceFunc(func() { <-h.s.processing })
	defer release()
	bs := []handoffBatch{b}
	for n := len(b.ds); n < handoffMerge; {
		select {
		case next := <-h.queue:
			h.release(len(next.ds))
			bs, n = append(bs, next), n+len(next.ds)
			continue
		default:
		}
		break
	}
	n := 0
	for _, b := range bs {
		n += len(b.ds)
	}
	// The deliveries themselves, not copies: processing only reads them.
	var (
		ds    = make([]*Delivery, 0, n)
		zoom  = make([]*ZoomEvent, 0, n)
		spans = make([]jobSpan, 0, len(bs))
	)
	for _, b := range bs {
		if time.Since(b.committed) > h.grace/4 {
			continue
		}
		ds, zoom = append(ds, b.ds...), append(zoom, b.zoom...)
		spans = append(spans, jobSpan{id: b.jobID, n: len(b.ds)})
	}
	if len(ds) == 0 {
		return
	}
	// Failed deliveries leave their job to River (retried with its
	// backoff; the deliveries processed now are skipped then).
	_, err := h.s.process(ctx, ds, zoom, spans, release)
	if err != nil {
		h.s.log.WarnContext(ctx, "webhook in-process processing not recorded; its job will run", "error", err.Error())
	}
}

// close stops the workers. Batches still queued are made available to
// River at once (on this or another replica) instead of after the grace.
func (h *handoff) close() {
	h.closed.Do(func() { close(h.quit) })
	h.wg.Wait()
	var ids []int64
	for {
		select {
		case b := <-h.queue:
			ids = append(ids, b.jobID)
			continue
		default:
		}
		break
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.s.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		js, ok := h.s.cfg.Jobs().(JobSettler)
		if !ok {
			return errors.New("webhooks: job runner cannot settle jobs")
		}
		for _, id := range ids {
			if err := js.RetryTx(ctx, tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.s.log.Warn("webhook processing left to River after the grace", "jobs", len(ids), "error", err.Error())
	}
}
