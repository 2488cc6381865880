// Package caldavtest provides an in-memory CalDAV server for tests and for
// the gateway's embedded sandbox mode. It is go-webdav's caldav.Handler
// (github.com/emersion/go-webdav/caldav) over an in-memory Backend, wrapped
// with what a real server such as iCloud or Radicale adds:
//
//   - HTTP Basic authentication on every request (401 with
//     WWW-Authenticate otherwise), and each user sees only their own tree;
//   - discovery per RFC 6764/RFC 4791 section 6.2.1: /.well-known/caldav
//     redirects to the principal /{user}/, whose calendar-home-set is
//     /{user}/calendars/; every user starts with /{user}/calendars/default/;
//   - strong ETags, and If-None-Match: * / If-Match honoured on PUT and
//     If-Match on DELETE with 412 Precondition Failed (RFC 4918 section 10,
//     RFC 7232);
//   - CalDAV preconditions: no METHOD property, one UID per resource and
//     no-uid-conflict within a collection (RFC 4791 section 4.1, 5.3.2.1);
//   - calendar-query time-range filtering that expands recurring events;
//   - the sync-collection REPORT (RFC 6578) with DAV:valid-sync-token
//     errors for unknown or expired tokens (can be disabled to exercise a
//     client's etag-listing fallback).
//
// It does not import testing: construct it with New and serve it with
// httptest.NewServer or any listener.
package caldavtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav"
	webdavcaldav "github.com/emersion/go-webdav/caldav"

	"github.com/spotlight/gateway/integrations/caldav"
)

// DefaultCalendar is the name of the calendar every user starts with.
const DefaultCalendar = "default"

// Options configures a Server.
type Options struct {
	// Users maps user names to passwords (HTTP Basic). User names must be
	// non-empty and contain no "/".
	Users map[string]string
	// DisableSyncCollection makes the server answer the sync-collection
	// REPORT like go-webdav does (400), so clients fall back to listing etags.
	DisableSyncCollection bool
	// SyncLimit, when positive, caps the members one sync-collection
	// response reports (RFC 6578 section 3.6): the oldest changes first,
	// then a 507 response for the collection and a sync-token from which
	// the client asks for the rest.
	SyncLimit int
	// Now is the clock for Last-Modified. Default time.Now.
	Now func() time.Time
}

// Server is an in-memory CalDAV server; it implements http.Handler.
type Server struct {
	opts    Options
	handler *webdavcaldav.Handler

	mu    sync.Mutex
	epoch int
	cals  map[string]*memCalendar // collection path ("/alice/calendars/default/") → calendar
}

type memCalendar struct {
	info    webdavcaldav.Calendar
	version int64
	objects map[string]*memObject // object path → object
	deleted map[string]int64      // object path → version of deletion
}

type memObject struct {
	path    string
	data    []byte
	uid     string
	etag    string
	modTime time.Time
	version int64
}

type ctxKey struct{}

// New returns a server with the given users, each with an empty default calendar.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, cals: map[string]*memCalendar{}}
	s.handler = &webdavcaldav.Handler{Backend: &backend{s: s}}
	for user := range opts.Users {
		s.addCalendar(CalendarPath(user, DefaultCalendar), "Default")
	}
	return s
}

// PrincipalPath is a user's principal path.
func PrincipalPath(user string) string { return "/" + user + "/" }

// HomeSetPath is a user's calendar home set path.
func HomeSetPath(user string) string { return "/" + user + "/calendars/" }

// CalendarPath is the path of a user's calendar collection.
func CalendarPath(user, name string) string { return HomeSetPath(user) + name + "/" }

// CreateCalendar adds an empty event calendar for user (as MKCALENDAR would)
// and returns its path. An existing calendar is kept.
func (s *Server) CreateCalendar(user, name, displayName string) string {
	p := CalendarPath(user, name)
	s.addCalendar(p, displayName)
	return p
}

func (s *Server) addCalendar(p, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cals[p]; ok {
		return
	}
	s.cals[p] = &memCalendar{
		info:    webdavcaldav.Calendar{Path: p, Name: name, SupportedComponentSet: []string{ical.CompEvent}},
		objects: map[string]*memObject{},
		deleted: map[string]int64{},
	}
}

// ExpireSyncTokens makes every sync token handed out so far invalid, as a
// server does after pruning its change log.
func (s *Server) ExpireSyncTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	want, known := s.opts.Users[user]
	if !ok || !known || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Spotlight sandbox CalDAV", charset="UTF-8"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	if p != "/" && p != "/.well-known/caldav" && !strings.HasPrefix(p+"/", PrincipalPath(user)) {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, user))

	switch r.Method {
	case "REPORT":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		if !s.opts.DisableSyncCollection && isSyncCollection(body) {
			s.serveSyncCollection(w, r, body)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	case http.MethodDelete:
		if s.deleteCalendar(p) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if im := r.Header.Get("If-Match"); im != "" {
			if code := s.checkIfMatch(p, im); code != 0 {
				http.Error(w, http.StatusText(code), code)
				return
			}
		}
	}
	s.handler.ServeHTTP(w, r)
}

// deleteCalendar deletes the calendar collection at p, with its objects, as
// a DELETE of a collection does (RFC 4918 section 9.6.1); false when p is
// not a calendar collection.
func (s *Server) deleteCalendar(p string) bool {
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cals[p]; !ok {
		return false
	}
	delete(s.cals, p)
	return true
}

func (s *Server) checkIfMatch(p, ifMatch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.objectLocked(p)
	if obj == nil {
		return http.StatusPreconditionFailed
	}
	if ifMatch == "*" || etagMatches(ifMatch, obj.etag) {
		return 0
	}
	return http.StatusPreconditionFailed
}

func etagMatches(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.Trim(v, `"`) == etag {
			return true
		}
	}
	return false
}

func (s *Server) objectLocked(p string) *memObject {
	cal := s.cals[path.Dir(p)+"/"]
	if cal == nil {
		return nil
	}
	return cal.objects[p]
}

func userFrom(ctx context.Context) string {
	u, _ := ctx.Value(ctxKey{}).(string)
	return u
}

func notFound(what string) error {
	return webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("caldavtest: %s not found", what))
}

// backend is the webdavcaldav.Backend over the Server's store.
type backend struct{ s *Server }

var _ webdavcaldav.Backend = (*backend)(nil)

func (b *backend) CurrentUserPrincipal(ctx context.Context) (string, error) {
	return PrincipalPath(userFrom(ctx)), nil
}

func (b *backend) CalendarHomeSetPath(ctx context.Context) (string, error) {
	return HomeSetPath(userFrom(ctx)), nil
}

func (b *backend) CreateCalendar(ctx context.Context, cal *webdavcaldav.Calendar) error {
	p := strings.TrimSuffix(cal.Path, "/") + "/"
	if path.Dir(strings.TrimSuffix(p, "/"))+"/" != HomeSetPath(userFrom(ctx)) {
		return webdav.NewHTTPError(http.StatusForbidden, errors.New("caldavtest: calendars live in the home set"))
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if _, ok := b.s.cals[p]; ok {
		return webdav.NewHTTPError(http.StatusMethodNotAllowed, errors.New("caldavtest: calendar exists"))
	}
	b.s.cals[p] = &memCalendar{
		info:    webdavcaldav.Calendar{Path: p, Name: cal.Name, SupportedComponentSet: []string{ical.CompEvent}},
		objects: map[string]*memObject{},
		deleted: map[string]int64{},
	}
	return nil
}

func (b *backend) ListCalendars(ctx context.Context) ([]webdavcaldav.Calendar, error) {
	home := HomeSetPath(userFrom(ctx))
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	var out []webdavcaldav.Calendar
	for p, c := range b.s.cals {
		if strings.HasPrefix(p, home) {
			out = append(out, c.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (b *backend) calendar(ctx context.Context, p string) (*memCalendar, error) {
	p = strings.TrimSuffix(p, "/") + "/"
	if !strings.HasPrefix(p, HomeSetPath(userFrom(ctx))) {
		return nil, notFound("calendar")
	}
	c := b.s.cals[p]
	if c == nil {
		return nil, notFound("calendar")
	}
	return c, nil
}

func (b *backend) GetCalendar(ctx context.Context, p string) (*webdavcaldav.Calendar, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c, err := b.calendar(ctx, p)
	if err != nil {
		return nil, err
	}
	info := c.info
	return &info, nil
}

func (o *memObject) toCalendarObject() (*webdavcaldav.CalendarObject, error) {
	cal, err := ical.NewDecoder(bytes.NewReader(o.data)).Decode()
	if err != nil {
		return nil, err
	}
	return &webdavcaldav.CalendarObject{
		Path: o.path, ModTime: o.modTime, ContentLength: int64(len(o.data)), ETag: o.etag, Data: cal,
	}, nil
}

func (b *backend) GetCalendarObject(ctx context.Context, p string, _ *webdavcaldav.CalendarCompRequest) (*webdavcaldav.CalendarObject, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if _, err := b.calendar(ctx, path.Dir(p)); err != nil {
		return nil, err
	}
	o := b.s.objectLocked(p)
	if o == nil {
		return nil, notFound("calendar object")
	}
	return o.toCalendarObject()
}

func (b *backend) ListCalendarObjects(ctx context.Context, p string, _ *webdavcaldav.CalendarCompRequest) ([]webdavcaldav.CalendarObject, error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c, err := b.calendar(ctx, p)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(c.objects))
	for op := range c.objects {
		paths = append(paths, op)
	}
	sort.Strings(paths)
	out := make([]webdavcaldav.CalendarObject, 0, len(paths))
	for _, op := range paths {
		co, err := c.objects[op].toCalendarObject()
		if err != nil {
			return nil, err
		}
		out = append(out, *co)
	}
	return out, nil
}

// QueryCalendarObjects filters with RFC 4791 section 9.9 semantics for a
// VEVENT time-range (recurring events expanded with caldav.Expand) and with
// go-webdav's matcher for anything else.
func (b *backend) QueryCalendarObjects(ctx context.Context, p string, query *webdavcaldav.CalendarQuery) ([]webdavcaldav.CalendarObject, error) {
	all, err := b.ListCalendarObjects(ctx, p, nil)
	if err != nil {
		return nil, err
	}
	var tr *webdavcaldav.CompFilter
	rest := query.CompFilter
	for i, cf := range query.CompFilter.Comps {
		if cf.Name == ical.CompEvent && (!cf.Start.IsZero() || !cf.End.IsZero()) && len(cf.Props) == 0 && len(cf.Comps) == 0 {
			tr = &query.CompFilter.Comps[i]
			rest.Comps = append(append([]webdavcaldav.CompFilter{}, query.CompFilter.Comps[:i]...), query.CompFilter.Comps[i+1:]...)
			break
		}
	}
	if tr == nil {
		return webdavcaldav.Filter(query, all)
	}
	var out []webdavcaldav.CalendarObject
	for _, co := range all {
		if len(rest.Comps) > 0 || len(rest.Props) > 0 {
			ok, err := webdavcaldav.Match(rest, &co)
			if err != nil || !ok {
				continue
			}
		}
		start, end := tr.Start, tr.End
		if start.IsZero() {
			start = time.Unix(0, 0)
		}
		if end.IsZero() {
			end = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		busy, err := caldav.Expand(co.Data, start, end, time.UTC)
		if err != nil {
			continue
		}
		if len(busy) > 0 || hasTransparentOverlap(co.Data, start, end) {
			out = append(out, co)
		}
	}
	return out, nil
}

// hasTransparentOverlap keeps transparent or cancelled events that overlap
// the range: a time-range filter selects by time, not by busyness.
func hasTransparentOverlap(cal *ical.Calendar, start, end time.Time) bool {
	c := &ical.Calendar{Component: &ical.Component{Name: cal.Name, Props: cal.Props}}
	for _, child := range cal.Children {
		cc := *child
		cc.Props = ical.Props{}
		for k, v := range child.Props {
			if k != ical.PropTransparency && k != ical.PropStatus {
				cc.Props[k] = v
			}
		}
		c.Children = append(c.Children, &cc)
	}
	busy, err := caldav.Expand(c, start, end, time.UTC)
	return err == nil && len(busy) > 0
}

func (b *backend) PutCalendarObject(ctx context.Context, p string, cal *ical.Calendar, opts *webdavcaldav.PutCalendarObjectOptions) (*webdavcaldav.CalendarObject, error) {
	if !strings.HasSuffix(p, ".ics") {
		return nil, webdav.NewHTTPError(http.StatusForbidden, errors.New("caldavtest: calendar object names end in .ics"))
	}
	if _, _, err := webdavcaldav.ValidateCalendarObject(cal); err != nil {
		return nil, webdavcaldav.NewPreconditionError(webdavcaldav.PreconditionValidCalendarObjectResource)
	}
	_, uid, _ := webdavcaldav.ValidateCalendarObject(cal)
	if uid == "" {
		return nil, webdavcaldav.NewPreconditionError(webdavcaldav.PreconditionValidCalendarObjectResource)
	}
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}

	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c, err := b.calendar(ctx, path.Dir(p))
	if err != nil {
		return nil, webdav.NewHTTPError(http.StatusConflict, errors.New("caldavtest: no such calendar collection"))
	}
	old := c.objects[p]
	switch {
	case opts.IfNoneMatch.IsWildcard() && old != nil:
		return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("caldavtest: resource exists"))
	case opts.IfNoneMatch.IsSet() && !opts.IfNoneMatch.IsWildcard() && old != nil && etagMatches(string(opts.IfNoneMatch), old.etag):
		return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("caldavtest: etag matches"))
	case opts.IfMatch.IsSet() && (old == nil || !etagMatches(string(opts.IfMatch), old.etag)):
		return nil, webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("caldavtest: etag does not match"))
	}
	for op, o := range c.objects {
		if op != p && o.uid == uid {
			return nil, webdavcaldav.NewPreconditionError(webdavcaldav.PreconditionNoUIDConflict)
		}
	}
	c.version++
	sum := sha256.Sum256(buf.Bytes())
	o := &memObject{
		path:    p,
		data:    buf.Bytes(),
		uid:     uid,
		etag:    strconv.FormatInt(c.version, 10) + "-" + hex.EncodeToString(sum[:8]),
		modTime: b.s.opts.Now().UTC().Truncate(time.Second),
		version: c.version,
	}
	c.objects[p] = o
	delete(c.deleted, p)
	return &webdavcaldav.CalendarObject{Path: p, ModTime: o.modTime, ContentLength: int64(len(o.data)), ETag: o.etag}, nil
}

func (b *backend) DeleteCalendarObject(ctx context.Context, p string) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c, err := b.calendar(ctx, path.Dir(p))
	if err != nil {
		return err
	}
	if _, ok := c.objects[p]; !ok {
		return notFound("calendar object")
	}
	delete(c.objects, p)
	c.version++
	c.deleted[p] = c.version
	return nil
}

// isSyncCollection reports whether a REPORT body is a DAV:sync-collection.
func isSyncCollection(body []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Space == "DAV:" && se.Name.Local == "sync-collection"
		}
	}
}

type syncRequest struct {
	XMLName   xml.Name `xml:"DAV: sync-collection"`
	SyncToken string   `xml:"DAV: sync-token"`
	SyncLevel string   `xml:"DAV: sync-level"`
}

const syncTokenPrefix = "http://spotlight.invalid/ns/sync/"

// serveSyncCollection answers RFC 6578's REPORT with getetag for changed
// members and 404 responses for removed ones.
func (s *Server) serveSyncCollection(w http.ResponseWriter, r *http.Request, body []byte) {
	var req syncRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	if req.SyncLevel != "1" {
		writeDAVError(w, http.StatusForbidden, "sync-traversal-supported")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.TrimSuffix(r.URL.Path, "/") + "/"
	c := s.cals[p]
	if c == nil || !strings.HasPrefix(p, HomeSetPath(userFrom(r.Context()))) {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	var since int64
	if tok := strings.TrimSpace(req.SyncToken); tok != "" {
		var epoch int
		var v int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(tok, syncTokenPrefix), "%d-%d", &epoch, &v); err != nil ||
			!strings.HasPrefix(tok, syncTokenPrefix) || epoch != s.epoch || v > c.version {
			writeDAVError(w, http.StatusForbidden, "valid-sync-token")
			return
		}
		since = v
	}
	// The changes since the token, oldest first: live members and, for a
	// client that had a state, deleted ones.
	type change struct {
		path    string
		version int64
		etag    string // "" for a deletion
	}
	var changes []change
	for op, o := range c.objects {
		if o.version > since {
			changes = append(changes, change{op, o.version, o.etag})
		}
	}
	if since > 0 {
		for op, v := range c.deleted {
			if v > since {
				changes = append(changes, change{path: op, version: v})
			}
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].version < changes[j].version })
	upTo, truncated := c.version, false
	if lim := s.opts.SyncLimit; lim > 0 && len(changes) > lim {
		changes, truncated = changes[:lim], true
		upTo = changes[lim-1].version
	}
	var b strings.Builder
	b.WriteString(xml.Header + `<d:multistatus xmlns:d="DAV:">`)
	for _, ch := range changes {
		if ch.etag == "" {
			fmt.Fprintf(&b, `<d:response><d:href>%s</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>`, escapeHref(ch.path))
			continue
		}
		fmt.Fprintf(&b, `<d:response><d:href>%s</d:href><d:propstat><d:prop><d:getetag>%s</d:getetag></d:prop>`+
			`<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>`, escapeHref(ch.path), xmlText(`"`+ch.etag+`"`))
	}
	if truncated {
		fmt.Fprintf(&b, `<d:response><d:href>%s</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>`, escapeHref(p))
	}
	fmt.Fprintf(&b, `<d:sync-token>%s</d:sync-token></d:multistatus>`, xmlText(fmt.Sprintf("%s%d-%d", syncTokenPrefix, s.epoch, upTo)))
	w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusMultiStatus)
	_, _ = io.WriteString(w, b.String())
}

func writeDAVError(w http.ResponseWriter, code int, precondition string) {
	w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, `%s<d:error xmlns:d="DAV:"><d:%s/></d:error>`, xml.Header, precondition)
}

func escapeHref(p string) string { return xmlText((&url.URL{Path: p}).EscapedPath()) }

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// sendClient is Send's client. It has a transport of its own: an
// httptest.Server closing in a parallel test closes the idle connections
// of http.DefaultTransport, which can break a request about to reuse one
// ("CloseIdleConnections called").
var sendClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second}

// Send makes a request to a CalDAV server as another client of the
// calendar would (the user's calendar app): method on objectURL with Basic
// auth and, for a body, Content-Type text/calendar. A status other than 2xx
// is an error.
func Send(ctx context.Context, method, objectURL, user, pass, ics string) error {
	req, err := http.NewRequestWithContext(ctx, method, objectURL, strings.NewReader(ics))
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	if ics != "" {
		req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
	}
	resp, err := sendClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("caldavtest: %s %s: HTTP %d", method, objectURL, resp.StatusCode)
	}
	return nil
}
