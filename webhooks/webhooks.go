// Package webhooks receives provider webhooks and turns them into booking
// changes: intake per provider (verify, store, enqueue) and processors.
//
// Intake (POST /webhooks/zoom, /webhooks/jira, /webhooks/google, mounted
// with Service.Mount) reads the raw body once through a size limit,
// verifies it (Zoom x-zm-signature with two secrets during rotation and a
// ±5 minute timestamp window, Jira X-Hub-Signature, Google channel id and
// token), and stores the delivery with its processing job in one
// transaction before answering 2xx. Concurrent deliveries share that
// transaction (group commit), so intake is not bound by one fsync per
// request, and nothing is acknowledged before it is durable. The unique key
// (provider, external id) makes every duplicate an acknowledged no-op. A
// verified body that does not decode is stored as poison and reported.
//
// Processing: the new deliveries of a group commit are processed by the
// same process right after the commit, from memory (the hand-off), and
// their outcomes are recorded with a later group commit; their River job,
// committed with them and scheduled a grace ahead, is the durable fallback
// (a crash, a full hand-off queue, a failed delivery's retry, a replay).
// Zoom meeting events set the booking in progress or completed, record attendance, and cancel or reschedule it
// through the booking area's normal paths; a Jira issue moved to the cancel
// status by someone other than the gateway cancels the booking; Google push
// notifications and the periodic CalDAV poll sync the calendar's changes
// (an event deleted or moved by the mentor cancels or reschedules; a move
// the booking refuses puts the event back at the booking's time). A
// periodic job renews Google push channels and then syncs their calendars
// (a renewed channel's notifications still sync its calendar; see
// Channels); River runs periodic jobs on the elected leader only.
//
// The booking side is reached only through the Bookings interface declared
// here; connected calendars through Calendars and Google channels through
// Channels. cmd/gateway adapts the concrete services.
package webhooks

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/internal/store"
)

// DefaultMaxBody is the default limit of a delivery's body (256 KiB).
const DefaultMaxBody = 256 << 10

// Secrets are the webhook secrets in force.
type Secrets struct {
	// Zoom holds the Zoom secret token(s): the current one first, then the
	// other one during a rotation.
	Zoom []string
	// Jira is the secret of the Jira admin webhook ("" = unsigned).
	Jira string
}

// SecretSource returns the secrets in force. It is called on every
// delivery; wrap a slow source with CachedSecrets.
type SecretSource func(ctx context.Context) (Secrets, error)

// CachedSecrets caches load's answer for ttl. Once it is older, the first
// delivery starts a refresh in the background and, like every other one
// until the refresh ends, goes on with the cached answer for up to another
// ttl: no delivery waits for the source while a usable answer is cached
// (Zoom's url_validation must be answered within 3 s, however slow the
// secret store is then). When a refresh fails the source is asked again
// once per ttl/10 at most (not once per delivery). Without an answer to use,
// every caller waits for a load (one at a time). A refresh is given ttl to
// end; a panicking source is an error.
func CachedSecrets(load SecretSource, ttl time.Duration, now func() time.Time) SecretSource {
	if now == nil {
		now = time.Now
	}
	pause := ttl / 10
	var (
		mu      sync.Mutex
		cached  Secrets
		fetched time.Time
		ok      bool
		// loading is closed when the load under way ends (nil: none).
		loading chan struct{}
		// After a failed load, none is tried before retryAt.
		retryAt time.Time
	)
	// refresh runs load (mu not held) for a load begun at t and records its
	// answer; ch is loading, closed when it ends.
	refresh := func(ctx context.Context, ch chan struct{}, t time.Time) (s Secrets, err error) {
		defer func() {
			if r := recover(); r != nil {
				s, err = Secrets{}, fmt.Errorf("webhooks: secret source panicked: %v", r)
			}
			mu.Lock()
			defer mu.Unlock()
			loading = nil
			close(ch)
			switch {
			case err == nil:
				cached, fetched, ok = s, t, true
			case ctx.Err() == nil:
				// The source failed, not the caller's request.
				retryAt = now().Add(pause)
			}
		}()
		return load(ctx)
	}
	return func(ctx context.Context) (Secrets, error) {
		for {
			mu.Lock()
			t := now()
			if ok && t.Sub(fetched) < 2*ttl {
				if t.Sub(fetched) >= ttl && loading == nil && !t.Before(retryAt) {
					ch := make(chan struct{})
					loading = ch
					bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
					go func() {
						defer cancel()
						_, _ = refresh(bg, ch, t)
					}()
				}
				s := cached
				mu.Unlock()
				return s, nil
			}
			if ch := loading; ch != nil {
				// Nothing to use meanwhile: wait for that load.
				mu.Unlock()
				select {
				case <-ch:
					continue
				case <-ctx.Done():
					return Secrets{}, ctx.Err()
				}
			}
			ch := make(chan struct{})
			loading = ch
			mu.Unlock()
			return refresh(ctx, ch, t)
		}
	}
}

// TimeChangePolicy says what a meeting time changed in Zoom does.
type TimeChangePolicy string

// Time change policies.
const (
	// Reschedule moves the booking (and its calendar events) to the new time.
	Reschedule TimeChangePolicy = "reschedule"
	// Flag leaves the booking alone and records the change on the delivery.
	Flag TimeChangePolicy = "flag"
)

// Config configures a Service.
type Config struct {
	// DB stores deliveries. Required.
	DB *store.Store
	// Jobs returns the job inserter; it is called when a delivery is
	// committed (the runner is built after the workers are registered).
	Jobs func() JobInserter
	// Secrets gives the webhook secrets. Required.
	Secrets SecretSource
	// RequireJiraSignature refuses unsigned Jira deliveries (production).
	RequireJiraSignature bool
	// Bookings, Channels and Calendars are the services processing uses.
	Bookings  Bookings
	Channels  Channels
	Calendars Calendars
	// Meetings reads a Zoom meeting's current time (optional: without it a
	// meeting.updated is judged by its payload alone).
	Meetings Meetings
	// JiraAccountID returns the gateway's own Jira account id; changes made
	// by it are not echoed back.
	JiraAccountID func(ctx context.Context) (string, error)
	// JiraCancelStatus is the Jira status that cancels a booking.
	JiraCancelStatus string
	// JiraBookingField is the custom field holding the booking id ("" if none).
	JiraBookingField string
	// TimeChange decides what a meeting time changed in Zoom does. Default Reschedule.
	TimeChange TimeChangePolicy
	// MaxBody bounds a delivery's body. Default DefaultMaxBody.
	MaxBody int64
	// ZoomWindow is the allowed clock distance of Zoom timestamps. Default 5 minutes.
	ZoomWindow time.Duration
	// EarlyStart is how long before a booking's start its Zoom meeting may
	// start and count as the session: a host starting the meeting earlier
	// (to test the link, say) changes nothing, and neither does that
	// meeting ending before the booking's start. 0: any start counts.
	EarlyStart time.Duration
	// Commit tunes group commit.
	Commit CommitConfig
	// HandoffGrace is how long the River job of deliveries handed off to
	// in-process processing waits before it may run: the deliveries a
	// process commits are processed by it right after the commit, from
	// memory, and their job is deleted once the outcomes are recorded; if
	// the process dies first, the job runs on any replica after the grace
	// (at 2 × CommitConfig.Timeout or more, 20 s by default, the in-process
	// run always ends before the job may start; below that, a run stalled
	// for seconds may overlap it and a delivery be processed twice).
	// Default DefaultHandoffGrace; negative processes everything through
	// River. The hand-off needs a JobInserter that is also a JobSettler.
	HandoffGrace time.Duration
	// ProcessConcurrency bounds the processing jobs (ProcessWorker and
	// in-process hand-offs) that run at once in this process; further jobs
	// wait for a turn. Default 1
	// on SQLite and 4 on PostgreSQL. Processing is not urgent, while every
	// intake ack waits for a commit: on SQLite's single connection each
	// waiting processing query is another contender for the connection the
	// group committer needs (database/sql hands a freed connection to a
	// random waiter), and on PostgreSQL processing competes for the same CPU.
	ProcessConcurrency int
	// ChannelRenewInterval is how often Google channels are checked (default
	// 1h); channels expiring within ChannelRenewBefore (default 24h) are renewed.
	ChannelRenewInterval, ChannelRenewBefore time.Duration
	// PollInterval is how often polled (CalDAV) calendars are synced; 0 disables polling.
	PollInterval time.Duration
	// PushSyncInterval is how often calendars with push (Google) are
	// synced besides their notifications, which Google does not promise
	// to deliver (nor are changes made while a channel was down ever
	// notified); 0 disables it.
	PushSyncInterval time.Duration
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives the intake metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Report sends an error to Sentry (poison deliveries); nil reports nothing.
	Report func(ctx context.Context, err error)
}

// Service is the webhook intake and processing.
type Service struct {
	cfg       Config
	events    *Events
	cursors   *cursors
	committer *committer
	metrics   *metrics
	// processing holds a token per running Process call or hand-off.
	processing chan struct{}
	handoff    *handoff
	log        *slog.Logger
	now        func() time.Time
}

// New returns a Service and starts its group committer; Close stops it.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, errors.New("webhooks: DB is required")
	}
	if cfg.Secrets == nil {
		return nil, errors.New("webhooks: Secrets is required")
	}
	if cfg.Jobs == nil {
		return nil, errors.New("webhooks: Jobs is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.ZoomWindow <= 0 {
		cfg.ZoomWindow = ZoomWindow
	}
	if cfg.TimeChange == "" {
		cfg.TimeChange = Reschedule
	}
	if cfg.TimeChange != Reschedule && cfg.TimeChange != Flag {
		return nil, fmt.Errorf("webhooks: unknown time change policy %q", cfg.TimeChange)
	}
	if cfg.JiraCancelStatus == "" {
		cfg.JiraCancelStatus = "Cancelled"
	}
	if cfg.ChannelRenewInterval <= 0 {
		cfg.ChannelRenewInterval = time.Hour
	}
	if cfg.ChannelRenewBefore <= 0 {
		cfg.ChannelRenewBefore = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcessConcurrency <= 0 {
		cfg.ProcessConcurrency = 4
		if cfg.DB.Dialect() == store.SQLite {
			cfg.ProcessConcurrency = 1
		}
	}
	s := &Service{cfg: cfg, events: NewEvents(cfg.DB), cursors: &cursors{db: cfg.DB}, metrics: newMetrics(cfg.Registerer),
		log: cfg.Logger, now: cfg.Now, processing: make(chan struct{}, cfg.ProcessConcurrency)}
	s.committer = newCommitter(cfg.DB, s.events, cfg.Jobs, cfg.Commit, cfg.ProcessConcurrency, s.metrics)
	if cfg.HandoffGrace == 0 {
		cfg.HandoffGrace = DefaultHandoffGrace
	}
	if cfg.HandoffGrace > 0 {
		s.handoff = newHandoff(s, cfg.HandoffGrace, cfg.ProcessConcurrency)
		s.committer.handoff = s.handoff
	}
	return s, nil
}

// Close commits what is queued and stops the group committer and the
// in-process processing (what it had not started is left to River). Call
// it after the HTTP server stopped.
func (s *Service) Close() {
	s.committer.close()
	if s.handoff != nil {
		s.handoff.close()
	}
}

// Events returns the delivery store (admin API).
func (s *Service) Events() *Events { return s.events }

// Mount registers the intake routes, replacing the generated ones.
func (s *Service) Mount(e *echo.Echo) {
	e.POST("/webhooks/zoom", s.arriving(s.handleZoom))
	e.POST("/webhooks/jira", s.arriving(s.handleJira))
	e.POST("/webhooks/google", s.arriving(s.handleGoogle))
}

// arriving tells the group committer that a delivery may come soon, so a
// batch being formed waits for it (bounded by CommitConfig.Linger). The
// handler gets the pending it submits with (accept, which marks that it
// has arrived); a handler that gives up is marked gone when it returns.
func (s *Service) arriving(h func(c echo.Context, p *pending) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := s.committer.enter()
		defer p.done()
		return h(c, p)
	}
}

// RejectError is a refused delivery. Status is 400, 401 or 413; Reason is
// the metric label and is never shown to the client.
type RejectError struct {
	Provider string
	Status   int
	Reason   string
	Err      error
}

// Error describes the rejection for logs (never shown to the client).
func (e *RejectError) Error() string {
	msg := fmt.Sprintf("webhooks: %s delivery rejected (%d %s)", e.Provider, e.Status, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the verification error behind the rejection.
func (e *RejectError) Unwrap() error { return e.Err }

func (s *Service) reject(provider string, status int, err error) error {
	reason := Reason(err)
	var re *RejectError
	if errors.As(err, &re) {
		reason = re.Reason
	}
	s.metrics.rejected.WithLabelValues(provider, reason).Inc()
	return &RejectError{Provider: provider, Status: status, Reason: reason, Err: err}
}

var (
	errTooLarge   = errors.New("webhooks: body too large")
	errIncomplete = errors.New("webhooks: body incomplete")
)

// readBody reads the raw body once through the size limit.
func (s *Service) readBody(c echo.Context, provider string) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > s.cfg.MaxBody {
		return nil, s.reject(provider, http.StatusRequestEntityTooLarge, &RejectError{Reason: "too_large", Err: errTooLarge})
	}
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n > 0 {
		// The server ends the body at Content-Length: read it into one
		// buffer of that size (a short body is an error).
		b = make([]byte, n)
		_, err = io.ReadFull(r.Body, b)
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	}
	if err != nil {
		return nil, s.reject(provider, http.StatusBadRequest, &RejectError{Reason: "incomplete_body", Err: errIncomplete})
	}
	if int64(len(b)) > s.cfg.MaxBody {
		return nil, s.reject(provider, http.StatusRequestEntityTooLarge, &RejectError{Reason: "too_large", Err: errTooLarge})
	}
	return b, nil
}

// safeHeaders are the request headers stored with a delivery: never
// signatures or tokens.
var safeHeaders = []string{
	"Content-Type", "User-Agent", "X-Request-Id",
	"X-Zm-Request-Timestamp", "X-Zm-Trackingid",
	"X-Atlassian-Webhook-Identifier", "X-Atlassian-Webhook-Retry", "X-Atlassian-Webhook-Flow",
	"X-Goog-Channel-Id", "X-Goog-Channel-Expiration", "X-Goog-Resource-Id", "X-Goog-Resource-State",
	"X-Goog-Resource-Uri", "X-Goog-Message-Number",
}

// headerSubset is the stored headers of a request (see safeHeaders), each
// value cut to 512 bytes.
func headerSubset(h http.Header) map[string]string {
	out := make(map[string]string, 4)
	for _, k := range safeHeaders {
		if v := h.Get(k); v != "" {
			if len(v) > 512 {
				v = v[:512]
			}
			out[k] = v
		}
	}
	return out
}

func bodyKey(b []byte) string {
	return string(appendBodyKey(make([]byte, 0, 71), b))
}

// appendBodyKey appends bodyKey(b) to dst.
func appendBodyKey(dst, b []byte) []byte {
	sum := sha256.Sum256(b)
	return hex.AppendEncode(append(dst, "sha256:"...), sum[:])
}

// zoomKey is the deduplication key of a Zoom delivery: the event time
// (event_ts, milliseconds, zero-padded so keys sort by time) before the
// body hash. Zoom retries a delivery with the same body, so the key still
// finds retries; the time prefix makes new keys land at the end of the
// unique index instead of at random places in it: a random key dirties a
// different index page per delivery, which made the insert of a delivery
// twice as expensive once the table held 150k rows (measured on SQLite).
func zoomKey(ts int64, body []byte) string {
	if ts <= 0 || ts > 9_999_999_999_999 {
		return bodyKey(body)
	}
	var digits [13]byte
	n := strconv.AppendInt(digits[:0], ts, 10)
	key := append(make([]byte, 0, 14+71), "0000000000000"[len(n):]...)
	return string(appendBodyKey(append(append(key, n...), '/'), body))
}

// accept stores d durably (group commit) and reports whether it was new.
// zoom is d's decoded Zoom event (nil for other providers); p is the
// handler's (see arriving).
func (s *Service) accept(ctx context.Context, p *pending, d *Delivery, zoom *ZoomEvent) (id string, dup bool, err error) {
	r := s.committer.submit(ctx, p, d, zoom)
	if r.err != nil {
		return "", false, r.err
	}
	outcome := "stored"
	switch {
	case r.dup:
		outcome = "duplicate"
	case d.Status == StatusPoison:
		outcome = "poison"
	}
	s.metrics.accepted.WithLabelValues(d.Provider, outcome).Inc()
	return r.id, r.dup, nil
}

func (s *Service) newDelivery(provider, externalID, eventType string, h http.Header, body []byte) *Delivery {
	d := &Delivery{ID: newID(), Provider: provider, ExternalID: externalID, EventType: eventType, Status: StatusReceived,
		headersJSON: requestHeadersJSON(h), Body: body, ReceivedAt: s.now().UTC()}
	if provider == ProviderGoogle {
		// Only Google's processing reads the headers (the channel id);
		// the others are spared the map.
		d.Headers = headerSubset(h)
	}
	return d
}

// poison stores a verified delivery whose body does not decode, reports it,
// and answers 400: it is kept for inspection, never processed.
func (s *Service) poison(c echo.Context, p *pending, d *Delivery, cause error) error {
	ctx := c.Request().Context()
	d.Status = StatusPoison
	d.EventType = ""
	d.LastError = poisonReason(cause)
	id, dup, err := s.accept(ctx, p, d, nil)
	if err != nil {
		return s.storeFailed(c, d.Provider, err)
	}
	if !dup {
		s.log.WarnContext(ctx, "webhook poison delivery stored", "provider", d.Provider, "webhook_id", id, "error", cause.Error())
		if s.cfg.Report != nil {
			s.cfg.Report(ctx, fmt.Errorf("webhooks: poison %s delivery %s: %w", d.Provider, id, cause))
		}
	}
	return &RejectError{Provider: d.Provider, Status: http.StatusBadRequest, Reason: "undecodable", Err: cause}
}

// maxPoisonReason bounds the reason stored with a poison delivery.
const maxPoisonReason = 500

// poisonReason is what is stored as a poison delivery's last_error: the
// decoding error (which never quotes the body), cut to maxPoisonReason
// bytes on a UTF-8 boundary.
func poisonReason(cause error) string {
	r := cause.Error()
	if len(r) <= maxPoisonReason {
		return r
	}
	r = r[:maxPoisonReason]
	for len(r) > 0 && !utf8.ValidString(r) {
		r = r[:len(r)-1]
	}
	return r
}

// storeFailed answers a delivery that could not be stored. When the sender
// hung up while it waited (its context is cancelled) there is nobody to
// answer and nothing to report: the delivery may even have committed, and
// the provider's retry will be a duplicate.
func (s *Service) storeFailed(c echo.Context, provider string, err error) error {
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		s.log.DebugContext(c.Request().Context(), "webhook sender hung up before the commit", "provider", provider)
		return c.NoContent(http.StatusServiceUnavailable)
	}
	return fmt.Errorf("webhooks: store %s delivery: %w", provider, err)
}

func (s *Service) secrets(ctx context.Context) (Secrets, error) {
	sec, err := s.cfg.Secrets(ctx)
	if err != nil {
		return Secrets{}, fmt.Errorf("webhooks: load secrets: %w", err)
	}
	return sec, nil
}

// Ack is the body of a 202 answer.
type Ack struct {
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
}

func ack(c echo.Context, id string, dup bool) error {
	a := Ack{Status: "accepted", ID: id}
	if dup {
		a.Status = "duplicate"
	}
	return c.JSON(http.StatusAccepted, a)
}

func (s *Service) handleZoom(c echo.Context, p *pending) error {
	ctx := c.Request().Context()
	body, err := s.readBody(c, ProviderZoom)
	if err != nil {
		return err
	}
	h := c.Request().Header
	sec, err := s.secrets(ctx)
	if err != nil {
		return err
	}
	// Header keys are written canonical: Get then need not allocate the
	// canonical form of each.
	idx, err := VerifyZoom(sec.Zoom, h.Get("X-Zm-Request-Timestamp"), body, h.Get("X-Zm-Signature"), s.now(), s.cfg.ZoomWindow)
	if err != nil {
		if errors.Is(err, ErrNoSecret) {
			s.log.WarnContext(ctx, "zoom webhook refused: no webhook secret configured", "provider", ProviderZoom)
		}
		return s.reject(ProviderZoom, http.StatusUnauthorized, err)
	}
	ev, err := decodeZoom(body, true)
	if err == nil {
		err = storableEventType(ev.Event)
	}
	if err != nil {
		return s.poison(c, p, s.newDelivery(ProviderZoom, bodyKey(body), "", h, body), err)
	}
	if ev.Event == ZoomURLValidation {
		s.metrics.accepted.WithLabelValues(ProviderZoom, "validation").Inc()
		return c.JSON(http.StatusOK, map[string]string{
			"plainToken": ev.PlainToken, "encryptedToken": ZoomEncryptedToken(sec.Zoom[idx], ev.PlainToken),
		})
	}
	d := s.newDelivery(ProviderZoom, zoomKey(ev.TS, body), ev.Event, h, body)
	if _, _, err := s.accept(ctx, p, d, ev); err != nil {
		return s.storeFailed(c, ProviderZoom, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// storableEventType refuses an event type with a NUL character (a decoded
// \u0000), which the event_type column cannot hold on PostgreSQL: such a
// delivery is poison, kept with its body for inspection, not a 500 that
// the provider retries. No provider names an event that way.
func storableEventType(t string) error {
	if strings.IndexByte(t, 0) >= 0 {
		return fmt.Errorf("%w: the event type holds a NUL character", ErrUndecodable)
	}
	return nil
}

// maxDeliveryID bounds provider delivery ids used as keys.
const maxDeliveryID = 256

func (s *Service) handleJira(c echo.Context, p *pending) error {
	ctx := c.Request().Context()
	body, err := s.readBody(c, ProviderJira)
	if err != nil {
		return err
	}
	h := c.Request().Header
	sec, err := s.secrets(ctx)
	if err != nil {
		return err
	}
	switch {
	case sec.Jira != "":
		if err := VerifyJira(sec.Jira, body, h.Get("X-Hub-Signature")); err != nil {
			return s.reject(ProviderJira, http.StatusUnauthorized, err)
		}
	case s.cfg.RequireJiraSignature:
		s.log.WarnContext(ctx, "jira webhook refused: no webhook secret configured", "provider", ProviderJira)
		return s.reject(ProviderJira, http.StatusUnauthorized, ErrNoSecret)
	}
	external := h.Get("X-Atlassian-Webhook-Identifier")
	switch {
	case len(external) > maxDeliveryID || !utf8.ValidString(external) || strings.IndexByte(external, 0) >= 0:
		// Not text a key column takes (PostgreSQL refuses bytes that are
		// not UTF-8, and NUL): Jira's identifiers are UUIDs.
		return s.reject(ProviderJira, http.StatusBadRequest, &RejectError{Reason: "bad_identifier"})
	case external == "":
		external = bodyKey(body)
	}
	d := s.newDelivery(ProviderJira, external, "", h, body)
	ev, err := DecodeJira(body, s.cfg.JiraBookingField)
	if err == nil {
		err = storableEventType(ev.Event)
	}
	if err != nil {
		return s.poison(c, p, d, err)
	}
	d.EventType = ev.Event
	id, dup, err := s.accept(ctx, p, d, nil)
	if err != nil {
		return s.storeFailed(c, ProviderJira, err)
	}
	return ack(c, id, dup)
}

// Google push resource states.
const (
	googleSync      = "sync"
	googleExists    = "exists"
	googleNotExists = "not_exists"
)

func (s *Service) handleGoogle(c echo.Context, p *pending) error {
	ctx := c.Request().Context()
	if _, err := s.readBody(c, ProviderGoogle); err != nil {
		return err
	}
	h := c.Request().Header
	chID, tok := h.Get("X-Goog-Channel-Id"), h.Get("X-Goog-Channel-Token")
	if chID == "" || tok == "" {
		return s.reject(ProviderGoogle, http.StatusUnauthorized, fmt.Errorf("%w: channel id and token are required", ErrMissingHeader))
	}
	if len(chID) > maxDeliveryID || len(tok) > maxDeliveryID || !utf8.ValidString(chID) || strings.IndexByte(chID, 0) >= 0 {
		// No channel has such an id (ours are UUIDs), and the lookup
		// would send PostgreSQL text it refuses: not UTF-8, or a NUL.
		return s.reject(ProviderGoogle, http.StatusUnauthorized, ErrUnknownChannel)
	}
	if s.cfg.Channels == nil {
		return s.reject(ProviderGoogle, http.StatusUnauthorized, ErrUnknownChannel)
	}
	rid := h.Get("X-Goog-Resource-Id")
	if len(rid) > maxDeliveryID || !utf8.ValidString(rid) || strings.IndexByte(rid, 0) >= 0 {
		rid = "" // not Google's (and not text PostgreSQL takes): it stops nothing
	}
	ch, err := s.cfg.Channels.VerifyChannel(ctx, chID, tok, rid)
	if errors.Is(err, ErrOrphanedChannel) {
		// Ours, and stopped now: not an attack, and nothing to retry. Its
		// change, if any, is found by the calendar's other channels or
		// the periodic sync.
		s.metrics.accepted.WithLabelValues(ProviderGoogle, "orphaned").Inc()
		return c.JSON(http.StatusAccepted, Ack{Status: "ignored"})
	}
	if errors.Is(err, ErrUnknownChannel) {
		return s.reject(ProviderGoogle, http.StatusUnauthorized, err)
	}
	if err != nil {
		return fmt.Errorf("webhooks: verify channel: %w", err)
	}
	if ch.ResourceID != "" && rid != ch.ResourceID {
		return s.reject(ProviderGoogle, http.StatusUnauthorized, fmt.Errorf("%w: resource id mismatch", ErrUnknownChannel))
	}
	state := h.Get("X-Goog-Resource-State")
	switch state {
	case googleSync, googleNotExists:
		s.metrics.accepted.WithLabelValues(ProviderGoogle, "ignored").Inc()
		return c.JSON(http.StatusAccepted, Ack{Status: "ignored"})
	case googleExists:
	default:
		return s.reject(ProviderGoogle, http.StatusBadRequest, &RejectError{Reason: "bad_state"})
	}
	num := h.Get("X-Goog-Message-Number")
	if num == "" || len(num) > 32 || strings.Trim(num, "0123456789") != "" {
		return s.reject(ProviderGoogle, http.StatusBadRequest, &RejectError{Reason: "bad_message_number"})
	}
	// The number, not its spelling, names the notification.
	if num = strings.TrimLeft(num, "0"); num == "" {
		num = "0"
	}
	d := s.newDelivery(ProviderGoogle, chID+":"+num, state, h, nil)
	id, dup, err := s.accept(ctx, p, d, nil)
	if err != nil {
		return s.storeFailed(c, ProviderGoogle, err)
	}
	return ack(c, id, dup)
}

// Replay sets a stored delivery back to received and has it processed
// again, in one transaction. A delivery has one live processing job at
// most: when a job that holds it waits for a later retry (a failed
// attempt's backoff), Replay makes that job run now instead of queueing
// another; without one it queues a job. A delivery a job is running or
// about to run is refused with a *BusyError (ErrBusy), a poison one with
// ErrPoison, an unknown one with ErrNotFound.
func (s *Service) Replay(ctx context.Context, id string) (Delivery, error) {
	ins := s.cfg.Jobs()
	if ins == nil {
		return Delivery{}, errors.New("webhooks: job runner not ready")
	}
	var (
		queued  bool
		forward int64
	)
	err := s.cfg.DB.InTx(ctx, func(tx *sql.Tx) error {
		waiting, ok, err := s.events.replay(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ok {
			queued = true
			_, err := ins.InsertTx(ctx, tx, ProcessArgs{DeliveryIDs: []string{id}}, nil)
			return err
		}
		js, settles := ins.(JobSettler)
		if !settles {
			// It cannot be moved up; a second job would process the
			// delivery besides it.
			return waiting.busy()
		}
		forward = waiting.id
		return js.RetryTx(ctx, tx, waiting.id)
	})
	if err != nil {
		return Delivery{}, err
	}
	if queued {
		s.metrics.jobs.WithLabelValues("replay").Inc()
	} else {
		s.metrics.jobs.WithLabelValues("replay_moved").Inc()
		s.log.InfoContext(ctx, "webhook replay runs the delivery's waiting job now", "webhook_id", id, "job_id", forward)
	}
	return s.events.Get(ctx, id)
}
