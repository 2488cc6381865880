// Package caldav implements calendar.Calendar for one CalDAV calendar
// collection (iCloud, Radicale, Fastmail, Nextcloud, ...) and the discovery
// helpers the connection flow uses to find a user's calendars.
//
// Protocol references: RFC 4791 (CalDAV: calendar-query, time-range,
// calendar object resources, no METHOD), RFC 4918 (WebDAV: PROPFIND,
// If-Match/If-None-Match and 412), RFC 6578 (sync-collection REPORT),
// RFC 6764 (/.well-known/caldav, current-user-principal), RFC 5545
// (iCalendar: VEVENT, VTIMEZONE, TZID and its DST rules) and Apple's
// calendarserver ctag extension (CS:getctag).
//
// Every event the gateway writes lives at {calendar}/{uid}.ics with
// uid = calendar.EventID(bookingID) and carries the booking id in the
// X-SPOTLIGHT-BOOKING property. Creates use If-None-Match: * so a retried
// create never duplicates; updates and deletes use If-Match with the etag
// just read. emersion/go-webdav v0.6.0 cannot send these headers (and its
// client keeps only the path of hrefs, which loses iCloud's per-user host),
// so this package sends its requests itself over the HTTP client it is
// given, parses multistatus responses itself, and uses go-webdav's caldav
// client for the calendar-query REPORT.
package caldav

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/outbound"
)

// provider names this package in outbound errors and metrics.
const provider = "caldav"

// Response body limits.
const (
	maxObjectBody      = 1 << 20  // one calendar object
	maxMultistatusBody = 16 << 20 // a REPORT or PROPFIND listing
	maxErrorBody       = 4 << 10
)

// ErrUnauthorized reports that the server refused the credentials (HTTP 401).
var ErrUnauthorized = errors.New("caldav: the server rejected the username or password; " +
	"iCloud and other providers with two-factor authentication need an app-specific password " +
	"(create one at appleid.apple.com → Sign-In and Security → App-Specific Passwords), not the account password")

// Client is a calendar.Calendar bound to one CalDAV calendar collection.
// It is safe for concurrent use.
type Client struct {
	hc       webdav.HTTPClient
	calURL   *url.URL // the collection, path ending in "/"
	username string
	password string
	logger   *slog.Logger
	now      func() time.Time
	defLoc   *time.Location
	noSync   bool
	// busy are the other collections whose busy time FreeBusy adds (same
	// scheme and host as calURL, paths ending in "/", calURL excluded).
	busy    []*url.URL
	busyRaw []string
	// self are the account's own calendar-user addresses, lower case
	// without "mailto:": an invitation one of them declined is not busy.
	self []string
}

var _ calendar.Calendar = (*Client)(nil)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client; use one built by outbound.NewClient
// (the default is such a client with Provider "caldav"). Credentials are
// added by the Client; the HTTP client must not add its own.
func WithHTTPClient(hc webdav.HTTPClient) Option {
	return func(c *Client) { c.hc = hc }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) { c.logger = l }
}

// WithClock sets the clock used for DTSTAMP and LAST-MODIFIED (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *Client) { c.now = now }
}

// WithDefaultLocation sets the zone for floating times and all-day events
// of other clients (default UTC).
func WithDefaultLocation(loc *time.Location) Option {
	return func(c *Client) { c.defLoc = loc }
}

// WithETagListing makes Changes always use the getctag/getetag listing
// instead of the sync-collection REPORT, for servers whose sync-collection
// is unreliable.
func WithETagListing() Option {
	return func(c *Client) { c.noSync = true }
}

// WithBusyCalendars adds calendar collections (absolute URLs on the same
// server, i.e. the same scheme and host, as the client's calendar: the
// credentials are never sent elsewhere) whose busy time FreeBusy reports
// besides the client's own calendar, which always counts. They may be
// calendars the account can only read. A URL naming the client's calendar
// again, or one named twice, counts once. Event writes and Changes stay on
// the client's calendar.
func WithBusyCalendars(calendarURLs ...string) Option {
	return func(c *Client) { c.busyRaw = append(c.busyRaw, calendarURLs...) }
}

// WithAccountAddresses adds email addresses of the account besides its
// username (aliases an invitation may be addressed to, e.g. the
// mailto: entries of the principal's calendar-user-address-set, RFC 6638
// section 2.4.1): FreeBusy does not count an invitation any of them
// declined.
func WithAccountAddresses(addrs ...string) Option {
	return func(c *Client) {
		for _, a := range addrs {
			if a = calAddress(a); a != "" {
				c.self = append(c.self, a)
			}
		}
	}
}

// calAddress is a calendar-user address (RFC 5545 CAL-ADDRESS, or a bare
// email address) reduced for comparison: lower case, without "mailto:";
// "" when it is not an email address.
func calAddress(a string) string {
	a = strings.TrimSpace(a)
	if len(a) >= 7 && strings.EqualFold(a[:7], "mailto:") {
		a = a[7:]
	}
	if at := strings.IndexByte(a, '@'); at <= 0 || at == len(a)-1 || strings.ContainsAny(a, " /:") {
		return ""
	}
	return strings.ToLower(a)
}

// New returns a Client for the calendar collection at calendarURL (an
// absolute URL, e.g. one from Discover: Account.Calendars[i].URL), using
// HTTP Basic auth with username and password. A username that is an email
// address (iCloud's Apple ID, Fastmail's login) is the account's own
// calendar-user address: FreeBusy does not count invitations it declined
// (see WithAccountAddresses for others).
func New(calendarURL, username, password string, opts ...Option) (*Client, error) {
	u, err := url.Parse(calendarURL)
	if err != nil {
		return nil, fmt.Errorf("caldav: calendar URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("caldav: calendar URL %q is not an absolute http(s) URL", calendarURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	c := &Client{calURL: u, username: username, password: password}
	if a := calAddress(username); a != "" {
		c.self = append(c.self, a)
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = outbound.NewClient(outbound.Config{Provider: provider})
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.defLoc == nil {
		c.defLoc = time.UTC
	}
	seen := map[string]bool{u.String(): true}
	for _, raw := range c.busyRaw {
		b, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("caldav: busy calendar URL: %w", err)
		}
		if !strings.EqualFold(b.Scheme, u.Scheme) || !strings.EqualFold(b.Host, u.Host) {
			return nil, fmt.Errorf("caldav: busy calendar %q is not on the calendar's server %s://%s", raw, u.Scheme, u.Host)
		}
		if !strings.HasSuffix(b.Path, "/") {
			b.Path += "/"
			b.RawPath = ""
		}
		b.Scheme, b.Host = u.Scheme, u.Host
		b.RawQuery, b.Fragment, b.User = "", "", nil
		if seen[b.String()] {
			continue
		}
		seen[b.String()] = true
		c.busy = append(c.busy, b)
	}
	c.busyRaw = nil
	return c, nil
}

// CalendarURL returns the calendar collection's URL.
func (c *Client) CalendarURL() string { return c.calURL.String() }

func (c *Client) objectURL(uid string) string {
	return c.calURL.ResolveReference(&url.URL{Path: uid + ".ics"}).String()
}

// response is a finished HTTP exchange with its (size-limited) body.
type response struct {
	status int
	header http.Header
	body   []byte
	raw    *http.Response
}

// do sends one request with Basic auth and reads the body up to limit.
// Transport failures come back as *outbound.Error (from the transport) or
// wrapped errors; HTTP statuses are left to the caller.
func (c *Client) do(ctx context.Context, op, method, target string, body []byte, hdr http.Header, limit int64) (*response, error) {
	return doRequest(ctx, c.hc, op, method, target, c.username, c.password, body, hdr, limit)
}

func doRequest(ctx context.Context, hc webdav.HTTPClient, op, method, target, user, pass string, body []byte, hdr http.Header, limit int64) (*response, error) {
	ctx = outbound.WithOperation(ctx, op)
	if method == "PROPFIND" || method == "REPORT" {
		ctx = outbound.WithRetrySafe(ctx) // reads, whatever their method
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("caldav: %s: %w", op, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.SetBasicAuth(user, pass)
	resp, err := hc.Do(req)
	if err != nil {
		var oe *outbound.Error
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("caldav: %s: %w", op, err)
		}
		return nil, fmt.Errorf("caldav: %s: %w", op, &outbound.Error{Provider: provider, Operation: op, Class: outbound.Transient, Err: err})
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("caldav: %s: read body: %w", op, &outbound.Error{Provider: provider, Operation: op, Status: resp.StatusCode, Class: outbound.Transient, Err: err})
	}
	if int64(len(b)) > limit && resp.StatusCode < 300 {
		return nil, fmt.Errorf("caldav: %s: response larger than %d bytes", op, limit)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b, raw: resp}, nil
}

// calendarLevel are the requests to the calendar collection itself: their
// 404 or 410 can only mean the collection is gone. (A PUT of a new event is
// not among them: servers answer a missing parent collection with 409 or
// 404, both of which an event's own PUT can get too.)
var calendarLevel = map[string]bool{"free_busy": true, "sync_collection": true, "list_etags": true,
	"get_ctag": true, "calendar_multiget": true}

// statusError turns an unexpected status into an error: ErrUnauthorized for
// 401, calendar.ErrNotFound for 404/410 (calendar.ErrCalendarNotFound for a
// calendarLevel request), otherwise an *outbound.Error.
func statusError(op string, r *response) error {
	oe := outbound.NewError(provider, op, r.raw, "", errorMessage(r))
	switch {
	case r.status == http.StatusUnauthorized:
		oe.Err = ErrUnauthorized
	case (r.status == http.StatusNotFound || r.status == http.StatusGone) && calendarLevel[op]:
		oe.Err = calendar.ErrCalendarNotFound
	case r.status == http.StatusNotFound || r.status == http.StatusGone:
		oe.Err = calendar.ErrNotFound
	case r.status == http.StatusPreconditionFailed || r.status == http.StatusConflict:
		oe.Err = calendar.ErrConflict
	}
	return fmt.Errorf("caldav: %s: %w", op, oe)
}

// errorMessage extracts a short, secret-free message: the status text plus
// the first line of a plain-text body or the DAV:error element name.
func errorMessage(r *response) string {
	msg := http.StatusText(r.status)
	body := strings.TrimSpace(string(r.body))
	if body == "" {
		return msg
	}
	if i := strings.Index(body, "<"); i >= 0 && strings.Contains(body, "error") {
		if name := firstErrorElement(r.body); name != "" {
			return msg + " (" + name + ")"
		}
		return msg
	}
	if i := strings.IndexByte(body, '\n'); i >= 0 {
		body = body[:i]
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return msg + ": " + body
}

func (c *Client) getObject(ctx context.Context, op, uid string) (*ical.Calendar, string, error) {
	r, err := c.do(ctx, op, http.MethodGet, c.objectURL(uid), nil, http.Header{"Accept": {ical.MIMEType}}, maxObjectBody)
	if err != nil {
		return nil, "", err
	}
	if r.status != http.StatusOK {
		return nil, "", statusError(op, r)
	}
	cal, err := ical.NewDecoder(bytes.NewReader(r.body)).Decode()
	if err != nil {
		return nil, "", fmt.Errorf("caldav: %s: parse iCalendar: %w", op, err)
	}
	return cal, r.header.Get("ETag"), nil
}

// getBookingEvent reads the booking's object. found is false on 404.
func (c *Client) getBookingEvent(ctx context.Context, op, bookingID string) (ev decodedEvent, etag string, found bool, err error) {
	ev, _, etag, found, err = c.getBookingObject(ctx, op, bookingID)
	return ev, etag, found, err
}

// getBookingObject is getBookingEvent that also returns the calendar
// object as stored.
func (c *Client) getBookingObject(ctx context.Context, op, bookingID string) (ev decodedEvent, cal *ical.Calendar, etag string, found bool, err error) {
	uid := calendar.EventID(bookingID)
	cal, etag, err = c.getObject(ctx, op, uid)
	if errors.Is(err, calendar.ErrNotFound) {
		return decodedEvent{}, nil, "", false, nil
	}
	if err != nil {
		return decodedEvent{}, nil, "", false, err
	}
	ev, err = decodeEvent(cal, c.defLoc)
	if err != nil {
		return decodedEvent{}, nil, "", false, fmt.Errorf("caldav: %s: %w", op, err)
	}
	ev.ev.ETag = unquoteETag(etag)
	return ev, cal, etag, true, nil
}

func unquoteETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.Trim(s, `"`)
}

func quoteETag(s string) string {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "W/") {
		return s
	}
	return `"` + s + `"`
}

func encodeICS(cal *ical.Calendar) ([]byte, error) {
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// put writes the booking's object with the given conditional header.
func (c *Client) put(ctx context.Context, op string, ev calendar.Event, seq int, cond http.Header) (*response, error) {
	return c.putOver(ctx, op, ev, seq, nil, cond)
}

// putOver is put over the stored object cur (nil for a new one): what the
// owner of the calendar added or changed in the event and the gateway does
// not own is kept (see keepOwnerEdits).
func (c *Client) putOver(ctx context.Context, op string, ev calendar.Event, seq int, cur *ical.Calendar, cond http.Header) (*response, error) {
	uid := calendar.EventID(ev.BookingID)
	cal, err := encodeEvent(ev, uid, seq, c.now())
	if err != nil {
		return nil, fmt.Errorf("caldav: %s: %w", op, err)
	}
	if cur != nil {
		keepOwnerEdits(cal, cur)
	}
	body, err := encodeICS(cal)
	if err != nil {
		return nil, fmt.Errorf("caldav: %s: encode: %w", op, err)
	}
	hdr := http.Header{"Content-Type": {ical.MIMEType + "; charset=utf-8"}}
	for k, v := range cond {
		hdr[k] = v
	}
	return c.do(ctx, op, http.MethodPut, c.objectURL(uid), body, hdr, maxErrorBody)
}

// afterWrite returns the event as stored: from the ETag of the PUT response
// when the server sent one, else by reading it back (servers that rewrite
// the object omit the ETag, RFC 4791 section 5.3.4).
func (c *Client) afterWrite(ctx context.Context, op string, ev calendar.Event, seq int, r *response) (calendar.Event, error) {
	if etag := r.header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		ev.ID = calendar.EventID(ev.BookingID)
		ev.ETag = unquoteETag(etag)
		ev.Sequence = seq
		if ev.TimeZone == "" {
			ev.TimeZone = "UTC"
		}
		ev.Start, ev.End = ev.Start.UTC().Truncate(time.Second), ev.End.UTC().Truncate(time.Second)
		return ev, nil
	}
	got, _, found, err := c.getBookingEvent(ctx, op, ev.BookingID)
	if err != nil {
		return calendar.Event{}, err
	}
	if !found {
		return calendar.Event{}, fmt.Errorf("caldav: %s: event vanished right after writing: %w", op, calendar.ErrConflict)
	}
	return got.ev, nil
}

// CreateEvent implements calendar.Calendar: PUT {calendar}/{uid}.ics with
// If-None-Match: *. A 412 means the object exists: if it carries this
// booking's marker the existing event is returned, else ErrConflict.
func (c *Client) CreateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	const op = "create_event"
	r, err := c.put(ctx, op, ev, 0, http.Header{"If-None-Match": {"*"}})
	if err != nil {
		return calendar.Event{}, err
	}
	switch {
	case r.status == http.StatusCreated || r.status == http.StatusNoContent || r.status == http.StatusOK:
		c.logger.DebugContext(ctx, "caldav event created", slog.String("provider", provider), slog.String("booking_id", ev.BookingID))
		return c.afterWrite(ctx, op, ev, 0, r)
	case r.status == http.StatusPreconditionFailed || (r.status == http.StatusConflict && strings.Contains(string(r.body), "no-uid-conflict")):
		existing, _, found, err := c.getBookingEvent(ctx, op, ev.BookingID)
		if err != nil {
			return calendar.Event{}, err
		}
		if found && existing.ev.BookingID == ev.BookingID {
			return existing.ev, nil
		}
		return calendar.Event{}, fmt.Errorf("caldav: %s: uid %s is taken by an event that is not booking %s: %w",
			op, calendar.EventID(ev.BookingID), ev.BookingID, calendar.ErrConflict)
	default:
		return calendar.Event{}, statusError(op, r)
	}
}

// UpdateEvent implements calendar.Calendar: it reads the current object,
// bumps SEQUENCE and writes with If-Match on the etag read. A lost race
// (412) is retried once with a fresh read, then reported as ErrConflict.
func (c *Client) UpdateEvent(ctx context.Context, ev calendar.Event) (calendar.Event, error) {
	const op = "update_event"
	for attempt := 0; ; attempt++ {
		cur, stored, etag, found, err := c.getBookingObject(ctx, op, ev.BookingID)
		if err != nil {
			return calendar.Event{}, err
		}
		if !found || cur.ev.BookingID != ev.BookingID {
			return calendar.Event{}, fmt.Errorf("caldav: %s: booking %s: %w", op, ev.BookingID, calendar.ErrNotFound)
		}
		cond := http.Header{}
		if etag != "" {
			cond.Set("If-Match", quoteETag(etag))
		}
		seq := cur.ev.Sequence + 1
		r, err := c.putOver(ctx, op, ev, seq, stored, cond)
		if err != nil {
			return calendar.Event{}, err
		}
		switch {
		case r.status == http.StatusCreated || r.status == http.StatusNoContent || r.status == http.StatusOK:
			return c.afterWrite(ctx, op, ev, seq, r)
		case r.status == http.StatusPreconditionFailed && attempt == 0:
			continue
		default:
			return calendar.Event{}, statusError(op, r)
		}
	}
}

// DeleteEvent implements calendar.Calendar. It deletes only an object that
// carries this booking's marker (If-Match on its etag); a missing object is
// not an error.
func (c *Client) DeleteEvent(ctx context.Context, bookingID string) error {
	const op = "delete_event"
	for attempt := 0; ; attempt++ {
		cur, etag, found, err := c.getBookingEvent(ctx, op, bookingID)
		if err != nil {
			return err
		}
		if !found {
			return nil
		}
		if cur.ev.BookingID != bookingID {
			return fmt.Errorf("caldav: %s: uid %s belongs to another event: %w", op, calendar.EventID(bookingID), calendar.ErrConflict)
		}
		hdr := http.Header{}
		if etag != "" {
			hdr.Set("If-Match", quoteETag(etag))
		}
		r, err := c.do(ctx, op, http.MethodDelete, c.objectURL(calendar.EventID(bookingID)), nil, hdr, maxErrorBody)
		if err != nil {
			return err
		}
		switch {
		case r.status/100 == 2, r.status == http.StatusNotFound, r.status == http.StatusGone:
			return nil
		case r.status == http.StatusPreconditionFailed && attempt == 0:
			continue
		default:
			return statusError(op, r)
		}
	}
}

// GetEvent implements calendar.Calendar. An object at the booking's uid
// without the booking's marker is not the booking's event: ErrNotFound.
func (c *Client) GetEvent(ctx context.Context, bookingID string) (calendar.Event, error) {
	const op = "get_event"
	ev, _, found, err := c.getBookingEvent(ctx, op, bookingID)
	if err != nil {
		return calendar.Event{}, err
	}
	if !found || ev.ev.BookingID != bookingID {
		return calendar.Event{}, fmt.Errorf("caldav: %s: booking %s: %w", op, bookingID, calendar.ErrNotFound)
	}
	return ev.ev, nil
}
