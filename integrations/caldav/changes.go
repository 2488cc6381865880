package caldav

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/emersion/go-ical"

	"github.com/spotlight/gateway/integrations/calendar"
)

// Cursor prefixes: a sync-collection token, or an etag listing.
const (
	cursorSync  = "s1:"
	cursorETags = "e1:"
	// multigetBatch bounds the hrefs of one calendar-multiget REPORT.
	multigetBatch = 100
	// maxSyncRounds bounds follow-up requests of a truncated (507) sync.
	maxSyncRounds = 50
)

// etagCursor is the state of the etag-listing fallback, carried in the cursor.
type etagCursor struct {
	CTag  string            `json:"c,omitempty"`
	ETags map[string]string `json:"e"` // member path → etag
}

// Changes implements calendar.Calendar. It uses the sync-collection REPORT
// (RFC 6578) and falls back to comparing a PROPFIND listing of getetag
// (short-cut by CS:getctag when the server has it) when the server does not
// support sync-collection. An invalid or expired cursor yields a full
// listing with Reset set.
//
// A listing of the whole collection (a sync-collection from no token, as
// after a refused one, that was not cut short; every etag listing) sets
// Complete and Present, so that the caller can tell which of its events are
// gone although no deletion was reported for them.
//
// Change.ID is the event's UID for live events and the resource name
// without ".ics" for deleted ones; both are calendar.EventID(booking) for
// events the gateway wrote.
func (c *Client) Changes(ctx context.Context, cursor string) (calendar.ChangeSet, error) {
	if c.noSync && !strings.HasPrefix(cursor, cursorETags) {
		cs, err := c.etagChanges(ctx, nil)
		cs.Reset = cursor != ""
		return cs, err
	}
	switch {
	case cursor == "":
		cs, supported, err := c.syncCollection(ctx, "")
		if err != nil || supported {
			return cs, err
		}
		return c.etagChanges(ctx, nil)
	case strings.HasPrefix(cursor, cursorSync):
		cs, supported, err := c.syncCollection(ctx, strings.TrimPrefix(cursor, cursorSync))
		if err != nil || supported {
			return cs, err
		}
		cs, err = c.etagChanges(ctx, nil)
		cs.Reset = true
		return cs, err
	case strings.HasPrefix(cursor, cursorETags):
		prev, err := decodeETagCursor(strings.TrimPrefix(cursor, cursorETags))
		if err != nil {
			cs, err := c.etagChanges(ctx, nil)
			cs.Reset = true
			return cs, err
		}
		return c.etagChanges(ctx, prev)
	default:
		cs, err := c.Changes(ctx, "")
		cs.Reset = true
		return cs, err
	}
}

func decodeETagCursor(s string) (*etagCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	var ec etagCursor
	if err := json.Unmarshal(b, &ec); err != nil {
		return nil, err
	}
	if ec.ETags == nil {
		ec.ETags = map[string]string{}
	}
	return &ec, nil
}

func encodeETagCursor(ec *etagCursor) string {
	b, _ := json.Marshal(ec) // maps of strings always marshal
	return cursorETags + base64.RawURLEncoding.EncodeToString(b)
}

// syncCollection runs a sync-collection REPORT. supported is false when the
// server does not implement the report (only checked for an empty token).
func (c *Client) syncCollection(ctx context.Context, token string) (cs calendar.ChangeSet, supported bool, err error) {
	const op = "sync_collection"
	var changed []string
	deleted := map[string]bool{}
	// From no token the server lists every member: complete unless the
	// listing is still truncated when the rounds run out.
	full, truncated := token == "", false
	for round := 0; ; round++ {
		body := `<?xml version="1.0" encoding="utf-8"?>` +
			`<d:sync-collection xmlns:d="DAV:"><d:sync-token>` + xmlEscape(token) + `</d:sync-token>` +
			`<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`
		r, err := c.do(ctx, op, "REPORT", c.calURL.String(), []byte(body),
			http.Header{"Content-Type": {`application/xml; charset="utf-8"`}}, maxMultistatusBody)
		if err != nil {
			return cs, true, err
		}
		if r.status != http.StatusMultiStatus {
			switch {
			case token != "" && (r.status == http.StatusForbidden || r.status == http.StatusConflict ||
				r.status == http.StatusPreconditionFailed || r.status == http.StatusBadRequest ||
				r.status == http.StatusNotFound || r.status == http.StatusGone):
				// DAV:valid-sync-token failed (RFC 6578 section 3.2): start over.
				full, supported, err := c.syncCollection(ctx, "")
				full.Reset = true
				return full, supported, err
			case token == "" && (r.status == http.StatusBadRequest || r.status == http.StatusForbidden ||
				r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed ||
				r.status == http.StatusUnsupportedMediaType || r.status == http.StatusNotImplemented ||
				r.status == http.StatusUnprocessableEntity):
				c.logger.DebugContext(ctx, "caldav: sync-collection unsupported, using etag listing", "provider", provider, "status", r.status)
				return cs, false, nil
			}
			return cs, true, statusError(op, r)
		}
		ms, err := parseMultistatus(r.body)
		if err != nil {
			return cs, true, fmt.Errorf("caldav: %s: parse multistatus: %w", op, err)
		}
		truncated = false
		for _, resp := range ms.Responses {
			for _, href := range resp.Hrefs {
				u, err := resolveHref(c.calURL, href)
				if err != nil {
					continue
				}
				p := u.Path
				if isCollection(p, c.calURL.Path) {
					if statusCode(resp.Status) == http.StatusInsufficientStorage {
						truncated = true
					}
					continue
				}
				if resp.gone() {
					deleted[p] = true
					continue
				}
				delete(deleted, p)
				changed = append(changed, p)
			}
		}
		if ms.SyncToken == "" {
			return cs, true, fmt.Errorf("caldav: %s: multistatus without sync-token", op)
		}
		token = ms.SyncToken
		if !truncated || round >= maxSyncRounds {
			break
		}
	}
	cs.Cursor = cursorSync + token
	cs.Changes, err = c.buildChanges(ctx, changed, deleted)
	if err == nil && full && !truncated {
		cs.Complete, cs.Present = true, present(changed, deleted)
	}
	return cs, true, err
}

// present returns the resource names of the listed members (paths) that
// are not deleted, sorted and without duplicates.
func present(listed []string, deleted map[string]bool) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, p := range listed {
		id := resourceID(p)
		if deleted[p] || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// isCollection reports whether p names the calendar collection itself.
func isCollection(p, calPath string) bool {
	return strings.TrimSuffix(p, "/") == strings.TrimSuffix(calPath, "/")
}

// etagChanges lists the collection's members with their etags and compares
// them with prev (nil: everything is new).
func (c *Client) etagChanges(ctx context.Context, prev *etagCursor) (calendar.ChangeSet, error) {
	const op = "list_etags"
	var cs calendar.ChangeSet
	// Depth 0 first: an unchanged ctag means nothing changed.
	if prev != nil && prev.CTag != "" {
		ctag, err := c.ctag(ctx)
		if err != nil {
			return cs, err
		}
		if ctag == prev.CTag {
			cs.Cursor = encodeETagCursor(prev)
			return cs, nil
		}
	}
	body := `<?xml version="1.0" encoding="utf-8"?>` +
		`<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop>` +
		`<d:getetag/><d:resourcetype/><cs:getctag/></d:prop></d:propfind>`
	r, err := c.do(ctx, op, "PROPFIND", c.calURL.String(), []byte(body),
		http.Header{"Content-Type": {`application/xml; charset="utf-8"`}, "Depth": {"1"}}, maxMultistatusBody)
	if err != nil {
		return cs, err
	}
	if r.status != http.StatusMultiStatus {
		return cs, statusError(op, r)
	}
	ms, err := parseMultistatus(r.body)
	if err != nil {
		return cs, fmt.Errorf("caldav: %s: parse multistatus: %w", op, err)
	}
	cur := &etagCursor{ETags: map[string]string{}}
	for _, resp := range ms.Responses {
		props := resp.okProps()
		for _, href := range resp.Hrefs {
			u, err := resolveHref(c.calURL, href)
			if err != nil {
				continue
			}
			if isCollection(u.Path, c.calURL.Path) {
				cur.CTag = props.CTag
				continue
			}
			if props.ResourceType != nil && props.ResourceType.Collection != nil {
				continue
			}
			cur.ETags[u.Path] = props.ETag
		}
	}
	var changed []string
	deleted := map[string]bool{}
	for p, etag := range cur.ETags {
		if prev == nil || prev.ETags[p] != etag || etag == "" {
			changed = append(changed, p)
		}
	}
	if prev != nil {
		for p := range prev.ETags {
			if _, ok := cur.ETags[p]; !ok {
				deleted[p] = true
			}
		}
	}
	sort.Strings(changed)
	cs.Cursor = encodeETagCursor(cur)
	cs.Changes, err = c.buildChanges(ctx, changed, deleted)
	if err != nil {
		return cs, err
	}
	// The PROPFIND listed every member: the listing is complete.
	listed := make([]string, 0, len(cur.ETags))
	for p := range cur.ETags {
		listed = append(listed, p)
	}
	cs.Complete, cs.Present = true, present(listed, deleted)
	return cs, nil
}

func (c *Client) ctag(ctx context.Context) (string, error) {
	const op = "get_ctag"
	body := `<?xml version="1.0" encoding="utf-8"?>` +
		`<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/></d:prop></d:propfind>`
	r, err := c.do(ctx, op, "PROPFIND", c.calURL.String(), []byte(body),
		http.Header{"Content-Type": {`application/xml; charset="utf-8"`}, "Depth": {"0"}}, maxMultistatusBody)
	if err != nil {
		return "", err
	}
	if r.status != http.StatusMultiStatus {
		return "", statusError(op, r)
	}
	ms, err := parseMultistatus(r.body)
	if err != nil {
		return "", fmt.Errorf("caldav: %s: parse multistatus: %w", op, err)
	}
	for _, resp := range ms.Responses {
		if ct := resp.okProps().CTag; ct != "" {
			return ct, nil
		}
	}
	return "", nil
}

// buildChanges fetches the changed objects with calendar-multiget and
// returns them with the deletions, sorted by ID.
func (c *Client) buildChanges(ctx context.Context, changed []string, deleted map[string]bool) ([]calendar.Change, error) {
	var out []calendar.Change
	seen := map[string]bool{}
	for i := 0; i < len(changed); i += multigetBatch {
		batch := changed[i:min(i+multigetBatch, len(changed))]
		objs, unreadable, gone, err := c.multiget(ctx, batch)
		if err != nil {
			return nil, err
		}
		got := map[string]bool{}
		for _, p := range unreadable {
			got[p] = true // there, but no change that can be told
		}
		for _, o := range objs {
			got[o.path] = true
			d, err := decodeEvent(o.cal, c.defLoc)
			if err != nil {
				continue // a VTODO or an unreadable object: not an event change
			}
			ev := d.ev
			ev.ETag = unquoteETag(o.etag)
			if ev.ID == "" {
				ev.ID = resourceID(o.path)
			}
			if seen[ev.ID] {
				continue
			}
			seen[ev.ID] = true
			if d.cancelled {
				// Some calendar apps cancel an event (STATUS:CANCELLED)
				// instead of deleting it: to the gateway it is deleted,
				// as Google's cancelled events are.
				out = append(out, calendar.Change{ID: ev.ID, BookingID: ev.BookingID, Deleted: true})
				continue
			}
			out = append(out, calendar.Change{ID: ev.ID, BookingID: ev.BookingID, Event: &ev})
		}
		// Listed but gone by the time we fetched it (the server answers
		// 404 or 410 for it): report as deleted. One the server did not
		// answer for, or answered with another failure, is not known to
		// be gone: the changes cannot be told.
		failed := 0
		for _, p := range batch {
			switch {
			case got[p]:
			case gone[p]:
				deleted[p] = true
			default:
				failed++
			}
		}
		if failed > 0 {
			return nil, fmt.Errorf("caldav: calendar_multiget: %d of %d listed objects neither returned nor reported gone", failed, len(batch))
		}
	}
	for p := range deleted {
		id := resourceID(p)
		if !seen[id] {
			seen[id] = true
			out = append(out, calendar.Change{ID: id, Deleted: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// resourceID is the resource name of a member path without ".ics".
func resourceID(p string) string {
	base := path.Base(p)
	if u, err := url.PathUnescape(base); err == nil {
		base = u
	}
	return strings.TrimSuffix(base, ".ics")
}

// gone reports a multiget answer saying the object is not there: a 404 or
// 410 for the response, or for its properties with none found.
func (r msResponse) gone() bool {
	isGone := func(line string) bool {
		code := statusCode(line)
		return code == http.StatusNotFound || code == http.StatusGone
	}
	if isGone(r.Status) {
		return true
	}
	if len(r.Propstats) == 0 {
		return false
	}
	for _, ps := range r.Propstats {
		if !isGone(ps.Status) {
			return false
		}
	}
	return true
}

type fetchedObject struct {
	path string
	etag string
	cal  *ical.Calendar
}

// multiget fetches calendar objects by path (RFC 4791 section 7.9).
// unreadable are the paths returned with calendar data that cannot be
// decoded, gone those the server answered 404 or 410 for.
func (c *Client) multiget(ctx context.Context, paths []string) (objs []fetchedObject, unreadable []string, gone map[string]bool, err error) {
	const op = "calendar_multiget"
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` +
		`<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">` +
		`<d:prop><d:getetag/><c:calendar-data/></d:prop>`)
	for _, p := range paths {
		b.WriteString("<d:href>" + xmlEscape((&url.URL{Path: p}).EscapedPath()) + "</d:href>")
	}
	b.WriteString(`</c:calendar-multiget>`)
	r, err := c.do(ctx, op, "REPORT", c.calURL.String(), []byte(b.String()),
		http.Header{"Content-Type": {`application/xml; charset="utf-8"`}, "Depth": {"1"}}, maxMultistatusBody)
	if err != nil {
		return nil, nil, nil, err
	}
	if r.status != http.StatusMultiStatus {
		return nil, nil, nil, statusError(op, r)
	}
	ms, err := parseMultistatus(r.body)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("caldav: %s: parse multistatus: %w", op, err)
	}
	var out []fetchedObject
	gone = map[string]bool{}
	for _, resp := range ms.Responses {
		if resp.gone() {
			for _, href := range resp.Hrefs {
				if u, err := resolveHref(c.calURL, href); err == nil {
					gone[u.Path] = true
				}
			}
			continue
		}
		props := resp.okProps()
		if props.CalendarData == "" || len(resp.Hrefs) == 0 {
			continue
		}
		u, err := resolveHref(c.calURL, resp.Hrefs[0])
		if err != nil {
			continue
		}
		cal, err := ical.NewDecoder(bytes.NewReader([]byte(props.CalendarData))).Decode()
		if err != nil {
			c.logger.WarnContext(ctx, "caldav: skipping unreadable calendar object", "provider", provider, "path", u.Path)
			unreadable = append(unreadable, u.Path)
			continue
		}
		out = append(out, fetchedObject{path: u.Path, etag: props.ETag, cal: cal})
	}
	return out, unreadable, gone, nil
}
