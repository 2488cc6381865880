// Package gcal implements calendar.Calendar on Google Calendar with
// google.golang.org/api/calendar/v3 over golang.org/x/oauth2.
//
// A Client is bound to one user (an oauth2.TokenSource the caller supplies;
// the gateway passes one that persists rotated tokens) and to one calendar
// the booking events are written to, plus the calendars whose busy time
// counts for availability. Every event the gateway writes gets the
// deterministic id calendar.EventID(bookingID) and carries the booking id in
// a private extended property, so an insert retried after an ambiguous
// failure (409 duplicate) is recognised as the gateway's own event.
//
// Besides calendar.Calendar the Client offers push channels (NewChannel and
// Open, or Watch; StopChannel) and ListCalendars; OAuthConfig, AccountEmail and Revoke serve
// the connection flow. Failed calls return errors that wrap an
// *outbound.Error (Provider "gcal") and, where they apply, the calendar
// sentinels ErrNotFound and ErrConflict.
//
// References: https://developers.google.com/calendar/api/v3/reference,
// https://developers.google.com/calendar/api/guides/sync,
// https://developers.google.com/calendar/api/guides/push,
// https://developers.google.com/calendar/api/guides/errors.
package gcal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	calendarv3 "google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/outbound"
)

// Provider is the provider name used in errors and metrics.
const Provider = "gcal"

// BookingProperty is the private extended property that carries the booking id.
const BookingProperty = "spotlightBookingId"

// DefaultFreeBusyWindow is the longest range one freebusy.query asks for.
// Google rejects long ranges ("The requested time range is too long"; about
// 90 days observed), so longer ranges are split into windows of this size.
const DefaultFreeBusyWindow = 60 * 24 * time.Hour

// maxResponseBody caps every response body read by the Google library.
const maxResponseBody = 8 << 20

// Client talks to Google Calendar for one user. It implements calendar.Calendar.
type Client struct {
	svc         *calendarv3.Service
	calendarID  string
	busyIDs     []string
	sendUpdates string
	reminders   []int
	window      time.Duration
	logger      *slog.Logger
}

var _ calendar.Calendar = (*Client)(nil)

type config struct {
	httpClient  *http.Client
	baseURL     string
	calendarID  string
	busyIDs     []string
	sendUpdates string
	reminders   []int
	window      time.Duration
	logger      *slog.Logger
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient sets the client whose Transport carries the requests under
// the OAuth transport; build it with outbound.NewClient(OutboundConfig(...)).
// Default: outbound.NewClient(OutboundConfig(outbound.Config{})).
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithBaseURL sets the Calendar API base URL (default
// "https://www.googleapis.com/calendar/v3/"); the simulator's is
// gcaltest.APIBase(url).
func WithBaseURL(u string) Option { return func(c *config) { c.baseURL = u } }

// WithCalendar sets the calendar the booking events are written to and read
// from (default "primary").
func WithCalendar(id string) Option { return func(c *config) { c.calendarID = id } }

// WithBusyCalendars sets the calendars whose busy time FreeBusy reports
// (default: the write calendar only); list the write calendar too when its
// busy time counts. Ids may be of calendars the user can only read
// (calendarList accessRole reader or freeBusyReader): freebusy.query needs
// no more.
func WithBusyCalendars(ids ...string) Option {
	return func(c *config) { c.busyIDs = slices.Clone(ids) }
}

// WithSendUpdates sets who Google emails about created, changed and deleted
// events: "all", "externalOnly" or "none" (the default: the platform sends
// its own messages).
func WithSendUpdates(v string) Option { return func(c *config) { c.sendUpdates = v } }

// WithReminders replaces the calendar's default reminders of booking events
// with popup reminders the given minutes before the start.
func WithReminders(minutes ...int) Option {
	return func(c *config) { c.reminders = slices.Clone(minutes) }
}

// WithFreeBusyWindow sets the largest range of one freebusy.query (default
// DefaultFreeBusyWindow).
func WithFreeBusyWindow(d time.Duration) Option { return func(c *config) { c.window = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// New returns a Client acting for the user whose tokens ts yields.
func New(ctx context.Context, ts oauth2.TokenSource, opts ...Option) (*Client, error) {
	if ts == nil {
		return nil, errors.New("gcal: nil token source")
	}
	cfg := config{calendarID: "primary", sendUpdates: "none", window: DefaultFreeBusyWindow}
	for _, o := range opts {
		o(&cfg)
	}
	switch cfg.sendUpdates {
	case "all", "externalOnly", "none":
	default:
		return nil, fmt.Errorf("gcal: sendUpdates %q: want all, externalOnly or none", cfg.sendUpdates)
	}
	if cfg.window <= 0 {
		return nil, errors.New("gcal: free/busy window must be positive")
	}
	if cfg.calendarID == "" {
		return nil, errors.New("gcal: empty calendar id")
	}
	if len(cfg.busyIDs) == 0 {
		cfg.busyIDs = []string{cfg.calendarID}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = outbound.NewClient(OutboundConfig(outbound.Config{Logger: cfg.logger}))
	}
	base := cfg.httpClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{
		Transport: limitTransport{&oauth2.Transport{Source: ts, Base: base}},
		Timeout:   cfg.httpClient.Timeout,
	}
	svcOpts := []option.ClientOption{option.WithHTTPClient(hc)}
	if cfg.baseURL != "" {
		svcOpts = append(svcOpts, option.WithEndpoint(cfg.baseURL))
	}
	svc, err := calendarv3.NewService(ctx, svcOpts...)
	if err != nil {
		return nil, fmt.Errorf("gcal: new service: %w", err)
	}
	return &Client{
		svc: svc, calendarID: cfg.calendarID, busyIDs: cfg.busyIDs, sendUpdates: cfg.sendUpdates,
		reminders: cfg.reminders, window: cfg.window, logger: cfg.logger,
	}, nil
}

// limitTransport caps response bodies.
type limitTransport struct{ rt http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxResponseBody), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// OutboundConfig fills the gcal parts of an outbound transport config:
// Provider "gcal" and the Retryable hook for Google's 403 rate limits.
func OutboundConfig(cfg outbound.Config) outbound.Config {
	if cfg.Provider == "" {
		cfg.Provider = Provider
	}
	if cfg.Retryable == nil {
		cfg.Retryable = Retryable
	}
	return cfg
}

// Rate-limit and quota reasons of Google's error bodies.
var (
	rateLimitReasons = []string{"rateLimitExceeded", "userRateLimitExceeded"}
	quotaReasons     = []string{"quotaExceeded", "dailyLimitExceeded", "usageLimits.quotaExceeded"}
)

// Retryable is the outbound.Config.Retryable hook for Google APIs: a 403 or
// 429 with reason rateLimitExceeded or userRateLimitExceeded is retried
// (with backoff); quotaExceeded and other usage limits are not, as retrying
// them only burns more quota.
func Retryable(resp *http.Response, body []byte) (retry bool, ok bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return false, false
	}
	reason := errorReason(body)
	switch {
	case slices.Contains(rateLimitReasons, reason):
		return true, true
	case slices.Contains(quotaReasons, reason):
		return false, true
	}
	return false, false
}

func errorReason(body []byte) string {
	var e struct {
		Error struct {
			Errors []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error.Errors) == 0 {
		return ""
	}
	return e.Error.Errors[0].Reason
}

// ErrInvalidGrant is wrapped by errors of calls whose token could not be
// refreshed because Google answered invalid_grant: the refresh token was
// revoked or expired and the user must connect again.
var ErrInvalidGrant = errors.New("gcal: invalid_grant")

// calendarLevel are the operations on a calendar as a whole: their 404 can
// only mean the calendar is gone (an event's own operations cannot tell a
// missing event from a missing calendar).
var calendarLevel = map[string]bool{"insert_event": true, "list_events": true, "watch_events": true}

// fail turns an error of the Google library into an *outbound.Error (whose
// message names provider and operation); 404/410 wrap calendar.ErrNotFound
// (calendar.ErrCalendarNotFound for a 404 to a calendarLevel operation),
// 409/412 calendar.ErrConflict.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		reason := ""
		if len(ge.Errors) > 0 {
			reason = ge.Errors[0].Reason
		}
		e := outbound.NewError(Provider, op, &http.Response{StatusCode: ge.Code, Header: ge.Header}, reason, ge.Message)
		switch {
		case slices.Contains(rateLimitReasons, reason):
			e.Class = outbound.Transient
		case slices.Contains(quotaReasons, reason):
			// Worth trying later, but not soon: quotas refill slowly.
			e.Class = outbound.Transient
			e.RetryAfter = max(e.RetryAfter, time.Hour)
		}
		switch {
		case ge.Code == http.StatusNotFound && calendarLevel[op]:
			e.Err = calendar.ErrCalendarNotFound
		case ge.Code == http.StatusNotFound, ge.Code == http.StatusGone:
			e.Err = calendar.ErrNotFound
		case ge.Code == http.StatusConflict, ge.Code == http.StatusPreconditionFailed:
			e.Err = calendar.ErrConflict
		}
		return e
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		e := &outbound.Error{Provider: Provider, Operation: op, Status: status, Code: re.ErrorCode,
			Message: re.ErrorDescription, Class: outbound.ClassifyStatus(status), Err: re}
		if status == 0 {
			e.Class = outbound.Transient
		}
		if re.ErrorCode == "invalid_grant" {
			e.Class = outbound.Permanent
			e.Err = fmt.Errorf("%w: %w", ErrInvalidGrant, re)
		}
		return e
	}
	var oe *outbound.Error
	if errors.As(err, &oe) {
		return oe
	}
	return &outbound.Error{Provider: Provider, Operation: op, Class: outbound.Transient, Err: err}
}

func statusOf(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func opContext(ctx context.Context, op string) context.Context {
	return outbound.WithOperation(ctx, op)
}

// CreateEvent inserts the booking's event with id calendar.EventID(bookingID).
// A 409 (the id exists, e.g. after a retried insert whose answer was lost)
// fetches the event: when it carries the booking id it is returned (and
// restored if it had been deleted), otherwise the result is calendar.ErrConflict.
func (c *Client) CreateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	const op = "insert_event"
	if ev.BookingID == "" {
		return calendar.Event{}, errors.New("gcal: create event: empty booking id")
	}
	body, err := c.toGoogle(ev)
	if err != nil {
		return calendar.Event{}, fmt.Errorf("gcal: create event: %w", err)
	}
	body.Id = calendar.EventID(ev.BookingID)
	// The deterministic id makes a repeated insert harmless (409, handled below).
	ictx := outbound.WithRetrySafe(opContext(ctx, op))
	out, err := c.svc.Events.Insert(c.calendarID, body).SendUpdates(c.sendUpdates).Context(ictx).Do()
	if err == nil {
		return fromGoogle(out), nil
	}
	if statusOf(err) != http.StatusConflict {
		return calendar.Event{}, fail(op, err)
	}
	cur, gerr := c.svc.Events.Get(c.calendarID, body.Id).Context(opContext(ctx, "get_event")).Do()
	if gerr != nil {
		return calendar.Event{}, fail("get_event", gerr)
	}
	if bookingOf(cur) != ev.BookingID {
		return calendar.Event{}, fmt.Errorf("gcal: create event: id %s taken by another event: %w", body.Id, calendar.ErrConflict)
	}
	if cur.Status != "cancelled" {
		c.logger.DebugContext(ctx, "gcal insert found existing event", "provider", Provider, "booking_id", ev.BookingID)
		return fromGoogle(cur), nil
	}
	// Deleted earlier: Google keeps the id, so restore the event in place.
	body.Status = "confirmed"
	call := c.svc.Events.Update(c.calendarID, body.Id, body).SendUpdates(c.sendUpdates).Context(opContext(ctx, "restore_event"))
	call.Header().Set("If-Match", cur.Etag)
	out, err = call.Do()
	if err != nil {
		return calendar.Event{}, fail("restore_event", err)
	}
	return fromGoogle(out), nil
}

// UpdateEvent patches time, text and attendees of the booking's event with
// If-Match on ev.ETag (or on the current etag when ev.ETag is empty). When
// the etag is stale it compares the current event with ev: equal (a retried
// patch that had been applied) is success, different is calendar.ErrConflict.
func (c *Client) UpdateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	const op = "patch_event"
	if ev.BookingID == "" {
		return calendar.Event{}, errors.New("gcal: update event: empty booking id")
	}
	id := calendar.EventID(ev.BookingID)
	body, err := c.toGoogle(ev)
	if err != nil {
		return calendar.Event{}, fmt.Errorf("gcal: update event: %w", err)
	}
	body.ForceSendFields = append(body.ForceSendFields, "Summary", "Description", "Location", "Attendees")
	if ev.URL == "" {
		body.NullFields = append(body.NullFields, "Source")
	}
	etag := ev.ETag
	if etag == "" {
		cur, err := c.get(ctx, ev.BookingID)
		if err != nil {
			return calendar.Event{}, err
		}
		etag = cur.Etag
	}
	// A retried patch meets a changed etag (412), handled below.
	pctx := outbound.WithRetrySafe(opContext(ctx, op))
	call := c.svc.Events.Patch(c.calendarID, id, body).SendUpdates(c.sendUpdates).Context(pctx)
	call.Header().Set("If-Match", etag)
	out, err := call.Do()
	if statusOf(err) == http.StatusPreconditionFailed {
		cur, gerr := c.get(ctx, ev.BookingID)
		if gerr != nil {
			return calendar.Event{}, gerr
		}
		if got := fromGoogle(cur); sameContent(got, ev) {
			return got, nil
		}
		return calendar.Event{}, fail(op, err)
	}
	if err != nil {
		return calendar.Event{}, fail(op, err)
	}
	if out.Status == "cancelled" {
		return calendar.Event{}, fmt.Errorf("gcal: update event: %w", calendar.ErrNotFound)
	}
	return fromGoogle(out), nil
}

// DeleteEvent deletes the booking's event; 404 and 410 (already deleted) are success.
func (c *Client) DeleteEvent(ctx context.Context, bookingID string) error {
	const op = "delete_event"
	err := c.svc.Events.Delete(c.calendarID, calendar.EventID(bookingID)).SendUpdates(c.sendUpdates).Context(opContext(ctx, op)).Do()
	switch statusOf(err) {
	case http.StatusNotFound, http.StatusGone:
		return nil
	}
	return fail(op, err)
}

// GetEvent returns the booking's event; calendar.ErrNotFound when it does not
// exist, was deleted, or is not the booking's.
func (c *Client) GetEvent(ctx context.Context, bookingID string) (calendar.Event, error) {
	ge, err := c.get(ctx, bookingID)
	if err != nil {
		return calendar.Event{}, err
	}
	return fromGoogle(ge), nil
}

func (c *Client) get(ctx context.Context, bookingID string) (*calendarv3.Event, error) {
	const op = "get_event"
	ge, err := c.svc.Events.Get(c.calendarID, calendar.EventID(bookingID)).Context(opContext(ctx, op)).Do()
	if err != nil {
		return nil, fail(op, err)
	}
	if ge.Status == "cancelled" || bookingOf(ge) != bookingID {
		return nil, fmt.Errorf("gcal: get event: %w", calendar.ErrNotFound)
	}
	return ge, nil
}

// FreeBusy queries freebusy.query over the busy calendars in windows of at
// most the configured size and returns the merged busy intervals clipped to
// [from, to). A busy calendar other than the write calendar that Google
// answers with the per-calendar error notFound (deleted, or no longer shared
// with the account) is skipped with a warning log: the other calendars'
// busy time is returned. The write calendar's notFound is
// calendar.ErrCalendarNotFound; any other per-calendar error fails the call
// (busy time must not be undercounted silently).
// See https://developers.google.com/calendar/api/v3/reference/freebusy/query.
func (c *Client) FreeBusy(ctx context.Context, from, to time.Time) ([]calendar.Busy, error) {
	const op = "freebusy"
	if !to.After(from) {
		return nil, nil
	}
	items := make([]*calendarv3.FreeBusyRequestItem, len(c.busyIDs))
	for i, id := range c.busyIDs {
		items[i] = &calendarv3.FreeBusyRequestItem{Id: id}
	}
	var all []calendar.Busy
	var skipped map[string]bool // extra calendars already warned about
	for start := from; start.Before(to); start = start.Add(c.window) {
		end := start.Add(c.window)
		if end.After(to) {
			end = to
		}
		req := &calendarv3.FreeBusyRequest{
			TimeMin: start.UTC().Format(time.RFC3339Nano), TimeMax: end.UTC().Format(time.RFC3339Nano),
			TimeZone: "UTC", Items: items,
		}
		// freebusy.query is a read: repeating it is harmless.
		res, err := c.svc.Freebusy.Query(req).Context(outbound.WithRetrySafe(opContext(ctx, op))).Do()
		if err != nil {
			return nil, fail(op, err)
		}
		for _, id := range c.busyIDs {
			fc, ok := res.Calendars[id]
			if !ok {
				return nil, fail(op, &outbound.Error{Provider: Provider, Operation: op, Code: "missingCalendar",
					Message: "no free/busy answer for calendar " + id, Class: outbound.Permanent})
			}
			if len(fc.Errors) > 0 {
				reason := fc.Errors[0].Reason
				if reason == "notFound" && id != c.calendarID {
					// Another of the busy calendars, deleted or no longer
					// shared with the account since it was chosen: the
					// others' busy time still counts.
					if !skipped[id] {
						if skipped == nil {
							skipped = map[string]bool{}
						}
						skipped[id] = true
						c.logger.WarnContext(ctx, "gcal: skipping a busy calendar Google no longer finds",
							slog.String("provider", Provider), slog.String("calendar_id", id))
					}
					continue
				}
				e := &outbound.Error{Provider: Provider, Operation: op, Code: reason,
					Message: "free/busy of calendar " + id + ": " + reason, Class: outbound.Permanent}
				if reason == "notFound" {
					e.Err = calendar.ErrCalendarNotFound
				}
				return nil, e
			}
			for _, b := range fc.Busy {
				bs, err1 := time.Parse(time.RFC3339, b.Start)
				be, err2 := time.Parse(time.RFC3339, b.End)
				if err1 != nil || err2 != nil {
					return nil, fmt.Errorf("gcal: %s: bad busy period %q-%q", op, b.Start, b.End)
				}
				all = append(all, calendar.Busy{Start: bs.UTC(), End: be.UTC()})
			}
		}
	}
	return clipBusy(all, from.UTC(), to.UTC()), nil
}

// clipBusy clips busy intervals to [from, to), drops those left empty and
// merges the rest (calendar.MergeBusy).
func clipBusy(in []calendar.Busy, from, to time.Time) []calendar.Busy {
	kept := in[:0]
	for _, b := range in {
		if b.Start.Before(from) {
			b.Start = from
		}
		if b.End.After(to) {
			b.End = to
		}
		if b.End.After(b.Start) {
			kept = append(kept, b)
		}
	}
	return calendar.MergeBusy(kept)
}

// Changes lists the write calendar's events changed since cursor (a Google
// sync token; "" lists every current event). A cursor Google no longer
// accepts (410 fullSyncRequired) yields a full listing with Reset set; it
// includes the deleted events Google still keeps (showDeleted), so that a
// deletion made while the cursor was expiring is still reported.
// Deleted events come with Deleted set and, as Google guarantees only their
// id, usually without BookingID: match them by ID (calendar.EventID).
func (c *Client) Changes(ctx context.Context, cursor string) (calendar.ChangeSet, error) {
	cs, err := c.list(ctx, cursor, false)
	if cursor != "" && statusOf(err) == http.StatusGone {
		c.logger.InfoContext(ctx, "gcal sync token expired, full resync", "provider", Provider)
		cs, err = c.list(ctx, "", true)
		cs.Reset = true
	}
	if err != nil {
		return calendar.ChangeSet{}, fail("list_events", err)
	}
	return cs, nil
}

// list lists the events changed since syncToken ("" every event; deleted
// ones too when showDeleted), following pages.
func (c *Client) list(ctx context.Context, syncToken string, showDeleted bool) (calendar.ChangeSet, error) {
	var cs calendar.ChangeSet
	page := ""
	for {
		call := c.svc.Events.List(c.calendarID).MaxResults(250).Context(opContext(ctx, "list_events"))
		if syncToken != "" {
			call = call.SyncToken(syncToken)
		}
		if showDeleted {
			call = call.ShowDeleted(true)
		}
		if page != "" {
			call = call.PageToken(page)
		}
		res, err := call.Do()
		if err != nil {
			return calendar.ChangeSet{}, err
		}
		for _, it := range res.Items {
			ch := calendar.Change{ID: it.Id, BookingID: bookingOf(it), Deleted: it.Status == "cancelled"}
			if !ch.Deleted {
				e := fromGoogle(it)
				ch.Event = &e
			}
			cs.Changes = append(cs.Changes, ch)
		}
		if res.NextPageToken == "" {
			cs.Cursor = res.NextSyncToken
			return cs, nil
		}
		page = res.NextPageToken
	}
}

// Channel is a push notification channel on a calendar's events.
type Channel struct {
	// ID is the channel id the gateway chose; echoed in X-Goog-Channel-ID.
	ID string
	// ResourceID identifies the watched resource; needed to stop the channel.
	ResourceID string
	// ResourceURI is the watched resource's API URI.
	ResourceURI string
	// Token is the random secret echoed in X-Goog-Channel-Token; compare it
	// on every notification.
	Token string
	// CalendarID is the watched calendar.
	CalendarID string
	// Expiration is when Google stops the channel; renew before it.
	Expiration time.Time
}

// NewChannel returns a channel on calendarID with a random id and token,
// not open yet: Open opens it. Google sends the channel's first
// notification (resource state "sync") as soon as it exists, possibly
// before events.watch answers, so a receiver that checks notifications
// against the channels it knows stores the channel's id and token before
// it calls Open.
func NewChannel(calendarID string) (Channel, error) {
	id, err := randomHex(16)
	if err != nil {
		return Channel{}, fmt.Errorf("gcal: new channel: %w", err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return Channel{}, fmt.Errorf("gcal: new channel: %w", err)
	}
	return Channel{ID: id, Token: base64.RawURLEncoding.EncodeToString(tok), CalendarID: calendarID}, nil
}

// Open opens ch (from NewChannel: its ID, Token and CalendarID) as a push
// channel on its calendar's events that notifies address for ttl (Google
// may shorten it; see Channel.Expiration), and returns it with ResourceID,
// ResourceURI and Expiration filled in.
func (c *Client) Open(ctx context.Context, ch Channel, address string, ttl time.Duration) (Channel, error) {
	const op = "watch_events"
	req := &calendarv3.Channel{Id: ch.ID, Type: "web_hook", Address: address, Token: ch.Token}
	if ttl > 0 {
		req.Params = map[string]string{"ttl": strconv.FormatInt(int64(ttl/time.Second), 10)}
	}
	res, err := c.svc.Events.Watch(ch.CalendarID, req).Context(opContext(ctx, op)).Do()
	if err != nil {
		return Channel{}, fail(op, err)
	}
	if res.Id != ch.ID || res.ResourceId == "" {
		return Channel{}, fmt.Errorf("gcal: watch: unexpected channel %q (resource %q)", res.Id, res.ResourceId)
	}
	ch.ResourceID, ch.ResourceURI, ch.Expiration = res.ResourceId, res.ResourceUri, time.UnixMilli(res.Expiration).UTC()
	return ch, nil
}

// Watch opens a push channel on calendarID's events that notifies address
// for ttl (Google may shorten it; see Channel.Expiration). The channel id and
// token are random. It is NewChannel then Open, for a receiver that accepts
// notifications of channels it does not know yet (see NewChannel).
func (c *Client) Watch(ctx context.Context, calendarID, address string, ttl time.Duration) (Channel, error) {
	ch, err := NewChannel(calendarID)
	if err != nil {
		return Channel{}, err
	}
	return c.Open(ctx, ch, address, ttl)
}

// RenewChannel replaces a channel before it expires: it opens a new channel
// on the same calendar and address, then stops the old one, so no change
// goes unnotified in between. A failure to stop the old channel is logged,
// not returned (it expires by itself). A receiver that checks notifications
// against the channels it stored must store the new channel before the old
// one stops, or refuse what the new one sends meanwhile (its "sync" message
// included: see NewChannel): it then calls NewChannel, stores the channel,
// calls Open, and calls StopChannel itself.
func (c *Client) RenewChannel(ctx context.Context, old Channel, address string, ttl time.Duration) (Channel, error) {
	ch, err := c.Watch(ctx, old.CalendarID, address, ttl)
	if err != nil {
		return Channel{}, err
	}
	if err := c.StopChannel(ctx, old); err != nil {
		c.logger.WarnContext(ctx, "gcal stop renewed channel", "provider", Provider, "error", err.Error())
	}
	return ch, nil
}

// StopChannel stops a channel; a channel Google no longer knows is not an error.
func (c *Client) StopChannel(ctx context.Context, ch Channel) error {
	const op = "stop_channel"
	err := c.svc.Channels.Stop(&calendarv3.Channel{Id: ch.ID, ResourceId: ch.ResourceID}).Context(opContext(ctx, op)).Do()
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return fail(op, err)
}

// CalendarInfo describes one of the user's calendars.
type CalendarInfo struct {
	ID         string
	Summary    string
	TimeZone   string
	Primary    bool
	AccessRole string
}

// ListCalendars lists the user's calendars, the primary one first.
func (c *Client) ListCalendars(ctx context.Context) ([]CalendarInfo, error) {
	const op = "list_calendars"
	var out []CalendarInfo
	page := ""
	for {
		call := c.svc.CalendarList.List().Context(opContext(ctx, op))
		if page != "" {
			call = call.PageToken(page)
		}
		res, err := call.Do()
		if err != nil {
			return nil, fail(op, err)
		}
		for _, e := range res.Items {
			out = append(out, CalendarInfo{ID: e.Id, Summary: e.Summary, TimeZone: e.TimeZone, Primary: e.Primary, AccessRole: e.AccessRole})
		}
		if res.NextPageToken == "" {
			break
		}
		page = res.NextPageToken
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Primary && !out[j].Primary })
	return out, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// joinPrefix separates the booking's description from the join URL line.
const joinPrefix = "Join: "

// toGoogle builds the event body for insert and patch.
func (c *Client) toGoogle(ev calendar.Event) (*calendarv3.Event, error) {
	tz := ev.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, fmt.Errorf("time zone %q: not an IANA zone", ev.TimeZone)
	}
	if ev.Start.IsZero() || !ev.End.After(ev.Start) {
		return nil, errors.New("end must be after start")
	}
	desc := ev.Description
	if ev.URL != "" && !strings.Contains(desc, ev.URL) {
		if desc != "" {
			desc += "\n\n"
		}
		desc += joinPrefix + ev.URL
	}
	g := &calendarv3.Event{
		Summary:     ev.Summary,
		Description: desc,
		Location:    ev.Location,
		Start:       &calendarv3.EventDateTime{DateTime: ev.Start.In(loc).Format(time.RFC3339), TimeZone: tz},
		End:         &calendarv3.EventDateTime{DateTime: ev.End.In(loc).Format(time.RFC3339), TimeZone: tz},
		ExtendedProperties: &calendarv3.EventExtendedProperties{
			Private: map[string]string{BookingProperty: ev.BookingID},
		},
	}
	if ev.URL != "" {
		g.Source = &calendarv3.EventSource{Title: "Spotlight session", Url: ev.URL}
	}
	g.Attendees = make([]*calendarv3.EventAttendee, 0, len(ev.Attendees))
	for _, a := range ev.Attendees {
		g.Attendees = append(g.Attendees, &calendarv3.EventAttendee{Email: a.Email, DisplayName: a.Name})
	}
	if c.reminders != nil {
		r := &calendarv3.EventReminders{UseDefault: false, ForceSendFields: []string{"UseDefault", "Overrides"}}
		for _, m := range c.reminders {
			r.Overrides = append(r.Overrides, &calendarv3.EventReminder{Method: "popup", Minutes: int64(m), ForceSendFields: []string{"Minutes"}})
		}
		g.Reminders = r
	}
	return g, nil
}

func bookingOf(e *calendarv3.Event) string {
	if e.ExtendedProperties == nil {
		return ""
	}
	return e.ExtendedProperties.Private[BookingProperty]
}

// fromGoogle converts an event resource; instants are returned in UTC.
func fromGoogle(g *calendarv3.Event) calendar.Event {
	ev := calendar.Event{
		BookingID: bookingOf(g), ID: g.Id, Summary: g.Summary, Location: g.Location,
		ETag: g.Etag, Sequence: int(g.Sequence), Description: g.Description,
	}
	if g.Source != nil {
		ev.URL = g.Source.Url
	}
	if ev.URL != "" {
		switch {
		case ev.Description == joinPrefix+ev.URL:
			ev.Description = ""
		case strings.HasSuffix(ev.Description, "\n\n"+joinPrefix+ev.URL):
			ev.Description = strings.TrimSuffix(ev.Description, "\n\n"+joinPrefix+ev.URL)
		}
	}
	ev.Start, ev.TimeZone = when(g.Start)
	ev.End, _ = when(g.End)
	if g.Organizer != nil {
		ev.Organizer = calendar.Attendee{Email: g.Organizer.Email, Name: g.Organizer.DisplayName}
	}
	for _, a := range g.Attendees {
		ev.Attendees = append(ev.Attendees, calendar.Attendee{Email: a.Email, Name: a.DisplayName})
	}
	return ev
}

func when(d *calendarv3.EventDateTime) (time.Time, string) {
	if d == nil {
		return time.Time{}, ""
	}
	loc := time.UTC
	if d.TimeZone != "" {
		if l, err := time.LoadLocation(d.TimeZone); err == nil {
			loc = l
		}
	}
	if d.DateTime != "" {
		t, err := time.Parse(time.RFC3339, d.DateTime)
		if err == nil {
			return t.UTC(), d.TimeZone
		}
	}
	if d.Date != "" {
		t, err := time.ParseInLocation("2006-01-02", d.Date, loc)
		if err == nil {
			return t.UTC(), d.TimeZone
		}
	}
	return time.Time{}, d.TimeZone
}

// sameContent reports whether got already carries what an update asked for.
func sameContent(got, want calendar.Event) bool {
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) || got.Summary != want.Summary ||
		got.Location != want.Location || got.URL != want.URL || got.Description != want.Description {
		return false
	}
	emails := func(as []calendar.Attendee) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = strings.ToLower(a.Email)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(emails(got.Attendees), emails(want.Attendees))
}
