package gcaltest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"
)

type calendarState struct {
	info       Calendar
	owner      string
	primary    bool
	resourceID string // resource id of the events collection (push channels)
	events     map[string]*storedEvent
	minSync    int64 // sync tokens below this serial are stale
}

type storedEvent struct {
	data      map[string]any // the event resource as Google would return it
	seq       int64          // serial of the last change
	cancelled bool
}

func newCalendarState(c Calendar, owner string, primary bool) *calendarState {
	return &calendarState{info: c, owner: owner, primary: primary, resourceID: randomToken("rsrc-")[:24], events: map[string]*storedEvent{}}
}

const maxBody = 1 << 20

// calendarFor resolves a calendar id ("primary" included) of the caller:
// one the caller owns or one shared with the caller (any access role).
func (s *Server) calendarFor(u *user, id string) *calendarState {
	if id == "primary" {
		id = u.calendars[0]
	}
	cs := s.calendars[id]
	if cs == nil || (cs.owner != u.email && u.roles[id] == "") {
		return nil
	}
	return cs
}

// roleOf is the caller's access role on a calendar calendarFor returned.
func roleOf(u *user, cs *calendarState) string {
	if cs.owner == u.email {
		return RoleOwner
	}
	return u.roles[cs.info.ID]
}

// requireRole answers 403 requiredAccessLevel unless the caller's role on
// cs is one of roles ("You need to have writer access to this calendar.",
// https://developers.google.com/calendar/api/guides/errors).
func requireRole(u *user, cs *calendarState, roles ...string) *response {
	if slices.Contains(roles, roleOf(u, cs)) {
		return nil
	}
	msg := "You need to have " + roles[len(roles)-1] + " access to this calendar."
	res := errResp(http.StatusForbidden, msg, errItem{Domain: "calendar", Reason: "requiredAccessLevel"})
	return &res
}

func readJSONBody(c *call) (map[string]any, *response) {
	if ct := c.r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		res := badRequest("parseError", "Parse Error", "")
		return nil, &res
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(c.body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		res := badRequest("parseError", "Parse Error", "")
		return nil, &res
	}
	return m, nil
}

// validEventID reports whether id is a valid client-chosen event id:
// base32hex characters (a-v, 0-9), 5 to 1024 of them.
func validEventID(id string) bool {
	if len(id) < 5 || len(id) > 1024 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'v' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

var readOnlyEventFields = []string{"kind", "etag", "created", "updated", "htmlLink", "iCalUID", "creator", "organizer", "hangoutLink"}

// checkSendUpdates validates and counts the sendUpdates parameter. Call with s.mu held.
func (s *Server) checkSendUpdates(r *http.Request) *response {
	switch v := r.URL.Query().Get("sendUpdates"); v {
	case "", "all", "externalOnly", "none":
		s.stats.SendUpdates[v]++
		return nil
	default:
		res := badRequest("invalidParameter", "Invalid value for sendUpdates: "+v, "sendUpdates")
		return &res
	}
}

func (s *Server) eventsInsert(c *call) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter); res != nil {
		return *res
	}
	if res := s.checkSendUpdates(c.r); res != nil {
		return *res
	}
	body, res := readJSONBody(c)
	if res != nil {
		return *res
	}
	id, _ := body["id"].(string)
	if _, present := body["id"]; present {
		if !validEventID(id) {
			return badRequest("invalid", "Invalid resource id value.", "")
		}
	} else {
		id = randomID(26)
	}
	if _, exists := cs.events[id]; exists {
		return errResp(http.StatusConflict, "The requested identifier already exists.", errItem{Domain: "global", Reason: "duplicate"})
	}
	for _, f := range readOnlyEventFields {
		delete(body, f)
	}
	body["id"] = id
	if res := s.normalizeEvent(cs, body); res != nil {
		return *res
	}
	now := s.now().UTC().Format(rfc3339Milli)
	body["created"] = now
	body["iCalUID"] = id + "@google.com"
	body["creator"] = map[string]any{"email": c.user.email, "self": true}
	body["organizer"] = organizer(cs)
	if _, ok := body["sequence"]; !ok {
		body["sequence"] = json.Number("0")
	}
	ev := &storedEvent{data: body}
	cs.events[id] = ev
	s.touch(cs, ev, now)
	s.autoPush(cs)
	return ok(ev.data)
}

const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

func organizer(cs *calendarState) map[string]any {
	if cs.primary {
		return map[string]any{"email": cs.info.ID, "self": true}
	}
	return map[string]any{"email": cs.info.ID, "displayName": cs.info.Summary, "self": true}
}

// touch records a change of ev: new serial, etag and updated time.
func (s *Server) touch(cs *calendarState, ev *storedEvent, now string) {
	ev.seq = s.nextSerial()
	ev.data["etag"] = fmt.Sprintf(`"%d"`, ev.seq)
	ev.data["updated"] = now
	ev.data["kind"] = "calendar#event"
	ev.data["htmlLink"] = "https://www.google.com/calendar/event?eid=" + base64.RawURLEncoding.EncodeToString([]byte(ev.data["id"].(string)+" "+cs.info.ID))
	st, _ := ev.data["status"].(string)
	ev.cancelled = st == "cancelled"
}

// normalizeEvent validates an event body and fills defaults; it rewrites
// start and end so that dateTime carries the offset of the event's zone.
func (s *Server) normalizeEvent(cs *calendarState, body map[string]any) *response {
	st, _ := body["status"].(string)
	switch st {
	case "":
		body["status"] = "confirmed"
	case "confirmed", "tentative", "cancelled":
	default:
		res := badRequest("invalid", "Invalid value for: status", "")
		return &res
	}
	if _, ok := body["start"]; !ok {
		res := badRequest("required", "Missing start time.", "")
		return &res
	}
	if _, ok := body["end"]; !ok {
		res := badRequest("required", "Missing end time.", "")
		return &res
	}
	rec, res := recurrenceOf(body)
	if res != nil {
		return res
	}
	start, startAllDay, res := normalizeWhen(cs, body, "start", len(rec) > 0)
	if res != nil {
		return res
	}
	end, endAllDay, res := normalizeWhen(cs, body, "end", len(rec) > 0)
	if res != nil {
		return res
	}
	if startAllDay != endAllDay {
		res := badRequest("invalid", "Start and end times must either both be date or both be dateTime.", "")
		return &res
	}
	if !end.After(start) && !(end.Equal(start) && !startAllDay) {
		res := badRequest("timeRangeEmpty", "The specified time range is empty.", "")
		return &res
	}
	if att, ok := body["attendees"]; ok {
		list, ok := att.([]any)
		if !ok {
			res := badRequest("invalid", "Invalid attendees.", "")
			return &res
		}
		for _, a := range list {
			m, ok := a.(map[string]any)
			email, _ := m["email"].(string)
			if !ok || !strings.Contains(email, "@") {
				res := badRequest("invalid", "Invalid attendee email.", "")
				return &res
			}
			if _, ok := m["responseStatus"]; !ok {
				m["responseStatus"] = "needsAction"
			}
		}
	}
	if ep, ok := body["extendedProperties"]; ok {
		m, ok := ep.(map[string]any)
		if !ok {
			res := badRequest("invalid", "Invalid extended properties.", "")
			return &res
		}
		for k, v := range m {
			props, ok := v.(map[string]any)
			if (k != "private" && k != "shared") || !ok {
				res := badRequest("invalid", "Invalid extended properties.", "")
				return &res
			}
			for _, pv := range props {
				if _, ok := pv.(string); !ok {
					res := badRequest("invalid", "Invalid extended property value.", "")
					return &res
				}
			}
		}
	}
	if _, ok := body["reminders"]; !ok {
		body["reminders"] = map[string]any{"useDefault": true}
	}
	if _, ok := body["eventType"]; !ok {
		body["eventType"] = "default"
	}
	return nil
}

func recurrenceOf(body map[string]any) ([]string, *response) {
	v, ok := body["recurrence"]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	bad := badRequest("invalid", "Invalid recurrence rule.", "")
	if !ok {
		return nil, &bad
	}
	out := make([]string, 0, len(list))
	for _, l := range list {
		line, _ := l.(string)
		name, _, _ := strings.Cut(line, ":")
		name, _, _ = strings.Cut(name, ";")
		switch name {
		case "RRULE", "EXRULE", "RDATE", "EXDATE":
		default:
			return nil, &bad
		}
		out = append(out, line)
	}
	return out, nil
}

// normalizeWhen validates body[key] (an EventDateTime) and returns its instant.
func normalizeWhen(cs *calendarState, body map[string]any, key string, recurring bool) (time.Time, bool, *response) {
	fail := func(reason, msg string) (time.Time, bool, *response) {
		res := badRequest(reason, msg, "")
		return time.Time{}, false, &res
	}
	m, ok := body[key].(map[string]any)
	if !ok {
		return fail("invalid", "Invalid "+key+" time.")
	}
	date, _ := m["date"].(string)
	dt, _ := m["dateTime"].(string)
	tz, _ := m["timeZone"].(string)
	loc, err := time.LoadLocation(cs.info.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			return fail("invalid", "Invalid time zone definition for "+key+" time.")
		}
		loc = l
	} else if recurring {
		return fail("required", "Missing time zone definition for "+key+" time.")
	}
	switch {
	case date != "" && dt != "":
		return fail("invalid", "Invalid "+key+" time.")
	case date != "":
		t, err := time.ParseInLocation("2006-01-02", date, loc)
		if err != nil {
			return fail("invalid", "Invalid "+key+" time.")
		}
		return t, true, nil
	case dt != "":
		t, err := time.Parse(time.RFC3339, dt)
		if err != nil {
			if tz == "" {
				return fail("required", "Missing time zone definition for "+key+" time.")
			}
			t, err = time.ParseInLocation("2006-01-02T15:04:05", dt, loc)
			if err != nil {
				return fail("invalid", "Invalid "+key+" time.")
			}
		}
		m["dateTime"] = t.In(loc).Format(time.RFC3339)
		return t, false, nil
	default:
		return fail("required", "Missing "+key+" time.")
	}
}

// eventTimes returns start, end of a stored (normalized) event.
func (cs *calendarState) eventTimes(data map[string]any) (start, end time.Time, loc *time.Location) {
	loc, err := time.LoadLocation(cs.info.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	get := func(key string) time.Time {
		m, _ := data[key].(map[string]any)
		l := loc
		if tz, _ := m["timeZone"].(string); tz != "" {
			if z, err := time.LoadLocation(tz); err == nil {
				l = z
			}
		}
		if key == "start" {
			loc = l
		}
		if d, _ := m["date"].(string); d != "" {
			t, _ := time.ParseInLocation("2006-01-02", d, l)
			return t
		}
		dt, _ := m["dateTime"].(string)
		t, _ := time.Parse(time.RFC3339, dt)
		return t
	}
	start = get("start")
	end = get("end")
	return start, end, loc
}

func (s *Server) eventsGet(c *call) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter, RoleReader); res != nil {
		return *res
	}
	ev := cs.events[c.r.PathValue("eventId")]
	if ev == nil {
		return notFound()
	}
	// The get method always returns cancelled (deleted) events.
	return ok(ev.data)
}

// checkIfMatch answers 412 when If-Match does not name the current etag.
func checkIfMatch(r *http.Request, ev *storedEvent) *response {
	im := r.Header.Get("If-Match")
	if im == "" || im == "*" || im == ev.data["etag"] {
		return nil
	}
	res := response{status: http.StatusPreconditionFailed, err: &apiError{
		Code: http.StatusPreconditionFailed, Message: "Precondition Failed",
		Errors: []errItem{{Domain: "global", Reason: "conditionNotMet", Message: "Precondition Failed", LocationType: "header", Location: "If-Match"}},
	}}
	return &res
}

func (s *Server) eventsPatch(c *call) response  { return s.eventsModify(c, true) }
func (s *Server) eventsUpdate(c *call) response { return s.eventsModify(c, false) }

// eventsModify serves patch (merge the body) and update (replace it).
func (s *Server) eventsModify(c *call, patch bool) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter); res != nil {
		return *res
	}
	ev := cs.events[c.r.PathValue("eventId")]
	if ev == nil {
		return notFound()
	}
	if res := s.checkSendUpdates(c.r); res != nil {
		return *res
	}
	if res := checkIfMatch(c.r, ev); res != nil {
		return *res
	}
	body, res := readJSONBody(c)
	if res != nil {
		return *res
	}
	if id, ok := body["id"]; ok && id != ev.data["id"] {
		return badRequest("invalid", "Invalid resource id value.", "")
	}
	for _, f := range readOnlyEventFields {
		delete(body, f)
	}
	var next map[string]any
	if patch {
		next = deepCopy(ev.data)
		mergePatch(next, body)
	} else {
		next = body
		for _, f := range []string{"id", "created", "iCalUID", "creator", "organizer", "sequence"} {
			if _, given := next[f]; given && f == "sequence" {
				continue
			}
			if v, ok := ev.data[f]; ok {
				next[f] = v
			}
		}
		if _, ok := next["status"]; !ok {
			next["status"] = "confirmed"
		}
	}
	if res := s.normalizeEvent(cs, next); res != nil {
		return *res
	}
	oldStart, oldEnd, _ := cs.eventTimes(ev.data)
	newStart, newEnd, _ := cs.eventTimes(next)
	if !oldStart.Equal(newStart) || !oldEnd.Equal(newEnd) {
		seq, _ := strconv.Atoi(fmt.Sprint(ev.data["sequence"]))
		if given, _ := strconv.Atoi(fmt.Sprint(body["sequence"])); given <= seq {
			next["sequence"] = json.Number(strconv.Itoa(seq + 1))
		}
	}
	ev.data = next
	s.touch(cs, ev, s.now().UTC().Format(rfc3339Milli))
	s.autoPush(cs)
	return ok(ev.data)
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	_ = d.Decode(&out)
	return out
}

// mergePatch applies patch semantics: objects merge, other values
// (arrays included) replace, null clears.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergePatch(dm, pm)
				continue
			}
		}
		dst[k] = v
	}
}

func (s *Server) eventsDelete(c *call) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter); res != nil {
		return *res
	}
	ev := cs.events[c.r.PathValue("eventId")]
	if ev == nil {
		return notFound()
	}
	if res := s.checkSendUpdates(c.r); res != nil {
		return *res
	}
	if ev.cancelled {
		return errResp(http.StatusGone, "Resource has been deleted", errItem{Domain: "global", Reason: "deleted"})
	}
	if res := checkIfMatch(c.r, ev); res != nil {
		return *res
	}
	ev.data["status"] = "cancelled"
	s.touch(cs, ev, s.now().UTC().Format(rfc3339Milli))
	s.autoPush(cs)
	return response{status: http.StatusNoContent}
}

// listCursor is the state carried by page tokens.
type listCursor struct {
	Cal         string            `json:"c"`
	Since       int64             `json:"s"` // -1 for a full listing
	Snap        int64             `json:"n"`
	Offset      int               `json:"o"`
	ShowDeleted bool              `json:"d,omitempty"`
	TimeMin     string            `json:"tmin,omitempty"`
	TimeMax     string            `json:"tmax,omitempty"`
	Private     map[string]string `json:"p,omitempty"`
	OrderStart  bool              `json:"os,omitempty"`
}

func encodeToken(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(tok string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil && json.Unmarshal(b, v) == nil
}

type syncToken struct {
	Cal string `json:"c"`
	Seq int64  `json:"q"`
}

func (s *Server) eventsList(c *call) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter, RoleReader); res != nil {
		return *res
	}
	q := c.r.URL.Query()
	maxResults := 250
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("invalid", "Invalid value for: maxResults", "maxResults")
		}
		maxResults = min(n, 2500)
	}
	var cur listCursor
	switch {
	case q.Get("pageToken") != "":
		if !decodeToken(q.Get("pageToken"), &cur) || cur.Cal != cs.info.ID {
			return badRequest("invalid", "Invalid page token value.", "pageToken")
		}
		if cur.Since >= 0 && cur.Since < cs.minSync {
			return fullSyncRequired()
		}
	case q.Get("syncToken") != "":
		for _, p := range []string{"timeMin", "timeMax", "orderBy", "q", "iCalUID", "privateExtendedProperty", "sharedExtendedProperty", "updatedMin"} {
			if q.Has(p) {
				return badRequest("invalid", "Sync token cannot be used with other request restrictions.", p)
			}
		}
		// Deleted events always come with a sync token; showDeleted=false is refused.
		if q.Has("showDeleted") && q.Get("showDeleted") != "true" {
			return badRequest("invalid", "Sync token cannot be used with other request restrictions.", "showDeleted")
		}
		var st syncToken
		if !decodeToken(q.Get("syncToken"), &st) || st.Cal != cs.info.ID {
			return badRequest("invalid", "Invalid sync token value.", "syncToken")
		}
		if st.Seq < cs.minSync {
			return fullSyncRequired()
		}
		cur = listCursor{Cal: cs.info.ID, Since: st.Seq, Snap: s.serial, ShowDeleted: true}
	default:
		cur = listCursor{Cal: cs.info.ID, Since: -1, Snap: s.serial, ShowDeleted: q.Get("showDeleted") == "true"}
		var bounds [2]time.Time
		for i, p := range []string{"timeMin", "timeMax"} {
			if v := q.Get(p); v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return badRequest("invalid", "Bad Request", p)
				}
				bounds[i] = t
			}
		}
		if !bounds[0].IsZero() && !bounds[1].IsZero() && !bounds[1].After(bounds[0]) {
			return badRequest("timeRangeEmpty", "The specified time range is empty.", "timeMax")
		}
		cur.TimeMin, cur.TimeMax = q.Get("timeMin"), q.Get("timeMax")
		for _, p := range q["privateExtendedProperty"] {
			k, v, found := strings.Cut(p, "=")
			if !found {
				return badRequest("invalid", "Invalid value for: privateExtendedProperty", "privateExtendedProperty")
			}
			if cur.Private == nil {
				cur.Private = map[string]string{}
			}
			cur.Private[k] = v
		}
		switch q.Get("orderBy") {
		case "", "updated":
		case "startTime":
			if q.Get("singleEvents") != "true" {
				return badRequest("badRequest", "The requested ordering is not available for the particular query.", "orderBy")
			}
			cur.OrderStart = true
		default:
			return badRequest("invalid", "Invalid value for: orderBy", "orderBy")
		}
	}
	items := s.selectEvents(cs, cur)
	end := min(cur.Offset+maxResults, len(items))
	page := items[min(cur.Offset, len(items)):end]
	out := make([]map[string]any, 0, len(page))
	for _, ev := range page {
		if ev.cancelled && (cur.Since >= 0 || cur.ShowDeleted) {
			// Deleted events are only guaranteed to carry their id.
			out = append(out, map[string]any{"kind": "calendar#event", "etag": ev.data["etag"], "id": ev.data["id"], "status": "cancelled", "updated": ev.data["updated"]})
			continue
		}
		out = append(out, ev.data)
	}
	resp := map[string]any{
		"kind": "calendar#events", "etag": fmt.Sprintf(`"%d"`, cur.Snap), "summary": cs.info.Summary,
		"updated": s.now().UTC().Format(rfc3339Milli), "timeZone": cs.info.TimeZone, "accessRole": "owner",
		"defaultReminders": []any{map[string]any{"method": "popup", "minutes": 10}}, "items": out,
	}
	if end < len(items) {
		next := cur
		next.Offset = end
		resp["nextPageToken"] = encodeToken(next)
	} else {
		resp["nextSyncToken"] = encodeToken(syncToken{Cal: cs.info.ID, Seq: cur.Snap})
	}
	return ok(resp)
}

func fullSyncRequired() response {
	return response{status: http.StatusGone, err: &apiError{
		Code: http.StatusGone, Message: "Sync token is no longer valid, a full sync is required.",
		Errors: []errItem{{Domain: "calendar", Reason: "fullSyncRequired", Message: "Sync token is no longer valid, a full sync is required."}},
	}}
}

// selectEvents returns the events a listing cursor covers, in a stable order.
func (s *Server) selectEvents(cs *calendarState, cur listCursor) []*storedEvent {
	var tmin, tmax time.Time
	if cur.TimeMin != "" {
		tmin, _ = time.Parse(time.RFC3339, cur.TimeMin)
	}
	if cur.TimeMax != "" {
		tmax, _ = time.Parse(time.RFC3339, cur.TimeMax)
	}
	var out []*storedEvent
	for _, ev := range cs.events {
		if ev.seq > cur.Snap {
			continue // changed after the listing began: the next sync reports it
		}
		if cur.Since >= 0 {
			if ev.seq > cur.Since {
				out = append(out, ev)
			}
			continue
		}
		if ev.cancelled && !cur.ShowDeleted {
			continue
		}
		start, end, _ := cs.eventTimes(ev.data)
		if _, rec := ev.data["recurrence"]; !rec {
			if !tmin.IsZero() && !end.After(tmin) {
				continue
			}
			if !tmax.IsZero() && !start.Before(tmax) {
				continue
			}
		}
		if !matchesPrivate(ev.data, cur.Private) {
			continue
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool {
		if cur.OrderStart {
			si, _, _ := cs.eventTimes(out[i].data)
			sj, _, _ := cs.eventTimes(out[j].data)
			if !si.Equal(sj) {
				return si.Before(sj)
			}
		}
		return out[i].seq < out[j].seq
	})
	return out
}

func matchesPrivate(data map[string]any, want map[string]string) bool {
	if len(want) == 0 {
		return true
	}
	ep, _ := data["extendedProperties"].(map[string]any)
	priv, _ := ep["private"].(map[string]any)
	for k, v := range want {
		if priv[k] != v {
			return false
		}
	}
	return true
}

type freeBusyRequest struct {
	TimeMin              string `json:"timeMin"`
	TimeMax              string `json:"timeMax"`
	TimeZone             string `json:"timeZone"`
	CalendarExpansionMax int    `json:"calendarExpansionMax"`
	Items                []struct {
		ID string `json:"id"`
	} `json:"items"`
}

func (s *Server) freeBusyQuery(c *call) response {
	var req freeBusyRequest
	if json.Unmarshal(c.body, &req) != nil {
		return badRequest("parseError", "Parse Error", "")
	}
	if req.TimeMin == "" {
		return badRequest("required", "Missing timeMin.", "timeMin")
	}
	if req.TimeMax == "" {
		return badRequest("required", "Missing timeMax.", "timeMax")
	}
	tmin, err1 := time.Parse(time.RFC3339, req.TimeMin)
	tmax, err2 := time.Parse(time.RFC3339, req.TimeMax)
	if err1 != nil || err2 != nil {
		return badRequest("invalid", "Bad Request", "")
	}
	if !tmax.After(tmin) {
		return badRequest("timeRangeEmpty", "The specified time range is empty.", "timeMax")
	}
	if tmax.Sub(tmin) > s.opts.MaxFreeBusyRange {
		return badRequest("timeRangeTooLong", "The requested time range is too long.", "timeMax")
	}
	outLoc := time.UTC
	if req.TimeZone != "" {
		l, err := time.LoadLocation(req.TimeZone)
		if err != nil {
			return badRequest("invalid", "Invalid time zone definition.", "timeZone")
		}
		outLoc = l
	}
	limit := 50
	if req.CalendarExpansionMax > 0 && req.CalendarExpansionMax < limit {
		limit = req.CalendarExpansionMax
	}
	cals := map[string]any{}
	for i, it := range req.Items {
		if i >= limit {
			cals[it.ID] = map[string]any{"busy": []any{}, "errors": []errItem{{Domain: "usageLimits", Reason: "tooManyCalendarsRequested"}}}
			continue
		}
		cs := s.calendarFor(c.user, it.ID)
		if cs == nil {
			cals[it.ID] = map[string]any{"busy": []any{}, "errors": []errItem{{Domain: "global", Reason: "notFound"}}}
			continue
		}
		busy := []map[string]string{}
		for _, iv := range mergeIntervals(cs.busyIntervals(tmin, tmax)) {
			busy = append(busy, map[string]string{"start": iv[0].In(outLoc).Format(time.RFC3339), "end": iv[1].In(outLoc).Format(time.RFC3339)})
		}
		cals[it.ID] = map[string]any{"busy": busy}
	}
	return ok(map[string]any{
		"kind": "calendar#freeBusy", "timeMin": tmin.UTC().Format(rfc3339Milli), "timeMax": tmax.UTC().Format(rfc3339Milli), "calendars": cals,
	})
}

// busyIntervals lists opaque, non-cancelled event occurrences overlapping
// [from, to), clipped to it; recurring events are expanded.
func (cs *calendarState) busyIntervals(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	add := func(a, b time.Time) {
		if b.After(from) && a.Before(to) {
			out = append(out, [2]time.Time{maxTime(a, from), minTime(b, to)})
		}
	}
	for _, ev := range cs.events {
		if ev.cancelled || ev.data["transparency"] == "transparent" {
			continue
		}
		start, end, loc := cs.eventTimes(ev.data)
		rec, _ := recurrenceOf(ev.data)
		if len(rec) == 0 {
			add(start, end)
			continue
		}
		lines := append([]string{"DTSTART;TZID=" + loc.String() + ":" + start.In(loc).Format("20060102T150405")}, rec...)
		set, err := rrule.StrSliceToRRuleSetInLoc(lines, loc)
		if err != nil {
			add(start, end) // unparsable rule: treat as a single event
			continue
		}
		dur := end.Sub(start)
		for _, t := range set.Between(from.Add(-dur), to, true) {
			add(t, t.Add(dur))
		}
	}
	return out
}

func mergeIntervals(in [][2]time.Time) [][2]time.Time {
	sort.Slice(in, func(i, j int) bool { return in[i][0].Before(in[j][0]) })
	var out [][2]time.Time
	for _, iv := range in {
		if n := len(out); n > 0 && !iv[0].After(out[n-1][1]) {
			out[n-1][1] = maxTime(out[n-1][1], iv[1])
			continue
		}
		out = append(out, iv)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Server) calendarListList(c *call) response {
	q := c.r.URL.Query()
	maxResults := 100
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("invalid", "Invalid value for: maxResults", "maxResults")
		}
		maxResults = min(n, 250)
	}
	offset := 0
	if pt := q.Get("pageToken"); pt != "" {
		var o struct {
			O int `json:"o"`
		}
		if !decodeToken(pt, &o) {
			return badRequest("invalid", "Invalid page token value.", "pageToken")
		}
		offset = o.O
	}
	// Google lists calendars in no documented order; list the primary last so
	// clients must not rely on order.
	ids := slices.Clone(c.user.calendars[1:])
	ids = append(ids, c.user.calendars[0])
	end := min(offset+maxResults, len(ids))
	var items []map[string]any
	for _, id := range ids[min(offset, len(ids)):end] {
		cs := s.calendars[id]
		e := map[string]any{
			"kind": "calendar#calendarListEntry", "etag": fmt.Sprintf(`"%d"`, len(id)), "id": id,
			"summary": cs.info.Summary, "timeZone": cs.info.TimeZone, "accessRole": roleOf(c.user, cs),
			"selected": true, "defaultReminders": []any{},
		}
		if cs.primary {
			e["primary"] = true
		}
		items = append(items, e)
	}
	resp := map[string]any{"kind": "calendar#calendarList", "etag": `"1"`, "items": items}
	if end < len(ids) {
		resp["nextPageToken"] = encodeToken(map[string]int{"o": end})
	} else {
		resp["nextSyncToken"] = encodeToken(map[string]string{"u": c.user.email})
	}
	return ok(resp)
}

type channel struct {
	id, resourceID, resourceURI string
	calendarID, user            string
	address, token              string
	expiration                  time.Time
	messages                    int64
}

func validChannelID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_+/=", r)) {
			return false
		}
	}
	return true
}

func (s *Server) eventsWatch(c *call) response {
	cs := s.calendarFor(c.user, c.r.PathValue("calendarId"))
	if cs == nil {
		return notFound()
	}
	if res := requireRole(c.user, cs, RoleOwner, RoleWriter, RoleReader); res != nil {
		return *res
	}
	var req struct {
		ID         string            `json:"id"`
		Type       string            `json:"type"`
		Address    string            `json:"address"`
		Token      string            `json:"token"`
		Expiration json.Number       `json:"expiration"`
		Params     map[string]string `json:"params"`
	}
	if json.Unmarshal(c.body, &req) != nil {
		return badRequest("parseError", "Parse Error", "")
	}
	if !validChannelID(req.ID) {
		return badRequest("invalid", "Invalid channel id.", "")
	}
	if req.Type != "web_hook" && req.Type != "webhook" {
		return badRequest("invalid", "Invalid channel type.", "")
	}
	u, err := url.Parse(req.Address)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && s.opts.AllowHTTPPush) {
		return badRequest("push.webhookUrlNotHttps", "WebHook callback must be HTTPS: "+req.Address, "")
	}
	if len(req.Token) > 256 {
		return badRequest("invalid", "Channel token too long.", "")
	}
	if _, dup := s.channels[req.ID]; dup {
		return badRequest("channelIdNotUnique", "Channel id not unique.", "")
	}
	now := s.now()
	exp := now.Add(s.opts.DefaultChannelTTL)
	if ttl := req.Params["ttl"]; ttl != "" {
		n, err := strconv.ParseInt(ttl, 10, 64)
		if err != nil || n <= 0 {
			return badRequest("invalid", "Invalid ttl.", "")
		}
		exp = now.Add(time.Duration(n) * time.Second)
	} else if req.Expiration != "" {
		ms, err := req.Expiration.Int64()
		if err != nil || ms <= now.UnixMilli() {
			return badRequest("invalid", "Invalid expiration.", "")
		}
		exp = time.UnixMilli(ms)
	}
	if maxExp := now.Add(s.opts.MaxChannelTTL); exp.After(maxExp) {
		exp = maxExp
	}
	ch := &channel{
		id: req.ID, resourceID: cs.resourceID, calendarID: cs.info.ID, user: c.user.email,
		resourceURI: "https://www.googleapis.com/calendar/v3/calendars/" + url.PathEscape(cs.info.ID) + "/events?alt=json",
		address:     req.Address, token: req.Token, expiration: exp.Truncate(time.Millisecond),
	}
	s.channels[ch.id] = ch
	resp := map[string]any{
		"kind": "api#channel", "id": ch.id, "resourceId": ch.resourceID, "resourceUri": ch.resourceURI,
		"expiration": strconv.FormatInt(ch.expiration.UnixMilli(), 10),
	}
	if ch.token != "" {
		resp["token"] = ch.token
	}
	res := ok(resp)
	if s.opts.AutoPush {
		// Google sends "sync" as soon as the channel exists: it may reach
		// the receiver before the watch answer does. Delivered before the
		// answer is written, it always does here.
		ctx := context.WithoutCancel(c.r.Context())
		res.after = func() { _, _ = s.PushChannel(ctx, ch.id, StateSync) }
	}
	return res
}

func (s *Server) channelsStop(c *call) response {
	var req struct {
		ID         string `json:"id"`
		ResourceID string `json:"resourceId"`
	}
	if json.Unmarshal(c.body, &req) != nil {
		return badRequest("parseError", "Parse Error", "")
	}
	if req.ID == "" {
		return badRequest("required", "Required", "id")
	}
	if req.ResourceID == "" {
		return badRequest("required", "Required", "resourceId")
	}
	ch := s.channels[req.ID]
	if ch == nil || ch.resourceID != req.ResourceID || ch.user != c.user.email {
		msg := fmt.Sprintf("Channel '%s' not found for project '000000000000'", req.ID)
		return errResp(http.StatusNotFound, msg, errItem{Domain: "global", Reason: "notFound"})
	}
	delete(s.channels, req.ID)
	return response{status: http.StatusNoContent}
}
