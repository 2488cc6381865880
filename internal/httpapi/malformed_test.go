package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/riverqueue/river"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// The walk: every operation of openapi.yaml, called by a caller holding one
// of its x-roles, with requests that are valid but for one thing: a body
// field, a path or query parameter or a header set to a value of the wrong
// type, null, empty, very long, not UTF-8, with a NUL, an emoji, a number
// out of range, a date at the ends of RFC 3339 or at an odd offset, an
// unknown enum value; a field missing or added, a key given twice, a body
// nested deep. Whatever it is, the gateway answers it below 500; an error
// is problem+json whose type and status agree, naming only fields the
// request has; and a 2xx keeps what the request said.

// walkBase is an operation's valid request, which the walk mutates.
type walkBase struct {
	sub    string
	groups []string
	path   map[string]string // path parameters
	query  url.Values
	header map[string]string
	body   any // nil: no body
	// fresh gives each request a header of its own (Idempotency-Key).
	fresh string
	// shift, when set, is a time in body that each request moves by an
	// hour more than the one before: every booking a free slot.
	shift time.Time
}

// walkCase is one request of the walk.
type walkCase struct {
	name   string
	path   map[string]string
	query  string // raw query
	header map[string]string
	body   []byte // nil: no body
	ctype  string
	// field is the body field the case changed ("" for others) and raw
	// the JSON it sent there: a 2xx must keep it.
	field string
	raw   string
}

// badValue is a JSON value (raw: invalid UTF-8 stays as it is) put where
// the request had a valid one.
type badValue struct{ name, raw string }

var long = strings.Repeat("x", 10_000)

var badValues = []badValue{
	{"number", `12`}, {"true", `true`}, {"null", `null`}, {"empty string", `""`}, {"blank", `"   "`},
	{"object", `{}`}, {"array", `[]`}, {"array of objects", `[{}]`}, {"array of strings", `["a","b"]`},
	{"10k string", `"` + long + `"`},
	{"invalid UTF-8", "\"a\xff\xfeb\""},
	{"NUL", `"a\u0000b"`},
	{"raw control character", "\"a\x01b\""},
	{"lone surrogate", `"\ud800"`},
	{"emoji", `"🦄 ünïcödé 日本"`},
	{"huge number", `1e309`}, {"int64 overflow", `9223372036854775808`}, {"int32 overflow", `2147483648`},
	{"negative", `-1`}, {"zero", `0`}, {"fraction", `60.5`}, {"exponent", `6e1`}, {"number as string", `"60"`},
	{"year 0001", `"0001-01-01T00:00:00Z"`}, {"year 9999", `"9999-12-31T23:59:59Z"`},
	{"year 9999 at -12:00", `"9999-12-31T23:59:59-12:00"`}, {"year 0001 at +14:00", `"0001-01-01T00:00:00+14:00"`},
	{"leap second", `"2026-12-31T23:59:60Z"`}, {"+14:00", `"2026-12-09T10:00:00+14:00"`}, {"-12:00", `"2026-12-09T10:00:00-12:00"`},
	{"offset with seconds", `"2026-12-09T10:00:00+01:00:30"`}, {"date only", `"2026-12-09"`}, {"no offset", `"2026-12-09T10:00:00"`},
	{"nanoseconds", `"2026-12-09T10:00:00.123456789Z"`}, {"far future", `"2999-01-01T00:00:00Z"`},
	{"unknown enum", `"bogus"`}, {"Local zone", `"Local"`}, {"zone file path", `"../../../etc/passwd"`}, {"odd zone", `"Etc/GMT+12"`},
	{"email", `"a@b.c"`}, {"url", `"http://169.254.169.254/latest"`}, {"percent", `"%2F%00"`},
	{"deep array", strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000)},
	{"deepish object", strings.Repeat(`{"a":`, 500) + "1" + strings.Repeat("}", 500)},
}

// badParams are path and query parameter values, already escaped.
var badParams = []badValue{
	{"empty", ""}, {"slash", "%2F"}, {"slashes", "a%2Fb%2F..%2Fc"}, {"dot", "."}, {"dots", ".."}, {"encoded dots", "%2E%2E"},
	{"long", long}, {"not a uuid", "not-a-uuid"}, {"nil uuid", "00000000-0000-0000-0000-000000000000"},
	{"upper-case uuid", "7B1F5C2E-9D4A-4E3B-8A6F-0C2D1E5F4A3B"}, {"uuid in braces", "%7B7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b%7D"},
	{"urn uuid", "urn:uuid:7b1f5c2e-9d4a-4e3b-8a6f-0c2d1e5f4a3b"}, {"uuid without dashes", "7b1f5c2e9d4a4e3b8a6f0c2d1e5f4a3b"},
	{"unicode", "%C3%BC%F0%9F%A6%84"}, {"invalid UTF-8", "%FF%FE"}, {"NUL", "a%00b"}, {"space", "a%20b"}, {"plus", "a+b"},
	{"number", "12"}, {"negative", "-1"}, {"fraction", "1.5"}, {"huge", "99999999999999999999"}, {"exponent", "1e3"},
	{"year 0001", "0001-01-01T00:00:00Z"}, {"year 9999", "9999-12-31T23:59:59Z"}, {"year 9999 at -12:00", "9999-12-31T23:59:59-12:00"},
	{"year 0001 at +14:00", "0001-01-01T00:00:00%2B14:00"}, {"leap second", "2026-12-31T23:59:60Z"}, {"unescaped plus offset", "2026-12-09T10:00:00+14:00"},
	{"date only", "2026-12-09"}, {"unknown enum", "bogus"}, {"Local zone", "Local"}, {"zone path", "..%2F..%2Fetc%2Fpasswd"},
	{"query-ish", "a%3Fb%3Dc%26d"}, {"hash", "a%23b"}, {"semicolon", "a;b"},
}

// badHeaders are values for the headers the operations read.
var badHeaders = []badValue{
	{"empty", ""}, {"long", long}, {"non-ASCII", "ключ-🦄"}, {"Latin-1 bytes", "caf\xe9"}, {"list", `"1", "2"`}, {"weak tag", `W/"1"`},
	{"star", "*"}, {"star in a list", `*, "1"`}, {"unquoted", "1"}, {"unbalanced quote", `"1`}, {"spaces", "   "}, {"comma", ","},
	{"quoted empty", `""`}, {"tab inside", "a\tb"},
}

// TestMalformedInput walks every operation with malformed input.
func TestMalformedInput(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) { walkAll(t, db) })
}

func walkAll(t *testing.T, db *store.Store) {
	start := time.Now()
	w := newWalkEnv(t, db)
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range spec.Paths.Map() {
			if !yield(p) {
				return
			}
		}
	})
	seen := map[string]bool{}
	for _, path := range paths {
		item := spec.Paths.Value(path)
		for _, method := range slices.Sorted(func(yield func(string) bool) {
			for m := range item.Operations() {
				if !yield(m) {
					return
				}
			}
		}) {
			op := item.GetOperation(method)
			base, ok := w.bases[op.OperationID]
			if !ok {
				t.Errorf("%s %s (%s): the walk has no valid request for it", method, path, op.OperationID)
				continue
			}
			seen[op.OperationID] = true
			t.Run(op.OperationID, func(t *testing.T) {
				t.Parallel()
				w.walk(t, method, path, item, op, base)
			})
		}
	}
	for id := range w.bases {
		if !seen[id] {
			t.Errorf("the walk has a request for %s, which openapi.yaml does not have", id)
		}
	}
	t.Cleanup(func() { t.Logf("walked in %v", time.Since(start).Round(time.Millisecond)) })
}

// walkEnv is one gateway with every area wired: bookings on the booking
// env's service, connections, provider credentials, stored webhooks.
type walkEnv struct {
	*connEnv
	bases map[string]walkBase
}

func newWalkEnv(t *testing.T, db *store.Store) *walkEnv {
	t.Helper()
	be := newBookingEnv(t, db, envOptions{mentors: 1, candidates: 1, syncTimeout: 2 * time.Second})
	be.openSchedule(t)
	hooks := newWebhookIntake(t, db)
	ce := newConnEnv(t, nil, func(d *httpapi.Deps) {
		d.Bookings = httpapi.BookingDeps{Service: be.svc, Attendance: &webhooks.AttendanceLog{DB: db}}
		d.Webhooks = httpapi.WebhookDeps{Events: httpapi.WebhookService(hooks)}
		d.ErrorMappers = append(d.ErrorMappers, httpapi.BookingErrors, httpapi.WebhookErrors)
		d.Mount = append(d.Mount, hooks.Mount)
	})
	w := &walkEnv{connEnv: ce}
	mentor, cand := be.mentors[0], be.candidates[0]

	// Two bookings: one to read and reschedule, one to cancel.
	book := func(at time.Time) string {
		resp, body := ce.do(t, "POST", "/v1/bookings", ce.token(t, cand, "candidate"),
			fmt.Sprintf(`{"mentor_id":%q,"start":%q,"duration_minutes":60,"timezone":"Europe/Berlin","topic":"walk"}`, mentor, at.Format(time.RFC3339)),
			"Idempotency-Key", "walk-"+at.Format(time.RFC3339))
		var b struct {
			ID string `json:"id"`
		}
		if resp.StatusCode != 201 && resp.StatusCode != 202 || json.Unmarshal(body, &b) != nil {
			t.Fatalf("book: %d %s", resp.StatusCode, body)
		}
		return b.ID
	}
	read, cancel := book(day(2).Add(9*time.Hour)), book(day(2).Add(11*time.Hour))

	// A stored delivery (unsigned Jira: the intake has no Jira secret).
	resp, body := ce.do(t, "POST", "/webhooks/jira", "", `{"webhookEvent":"jira:issue_updated","issue":{"key":"SPOT-1"}}`,
		"X-Atlassian-Webhook-Identifier", "walk-1")
	var ack struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != 202 || json.Unmarshal(body, &ack) != nil || ack.ID == "" {
		t.Fatalf("store a delivery: %d %s", resp.StatusCode, body)
	}

	// Connections to update: CalDAV and Google, each its own user.
	if _, _, err := ce.svc.ConnectCalDAV(t.Context(), "walk-caldav", connect.CalDAVInput{ServerURL: ce.caldavURL, Username: "mentor", Password: appPassword}); err != nil {
		t.Fatal(err)
	}
	authURL, _, err := ce.svc.StartGoogle(t.Context(), "walk-google")
	if err != nil {
		t.Fatal(err)
	}
	_, q := browse(t, authURL)
	if _, _, err := ce.svc.CompleteGoogle(t.Context(), q.Get("state"), q.Get("code"), ""); err != nil {
		t.Fatal(err)
	}

	cands := []string{"candidate"}
	free := day(4).Add(10 * time.Hour).Format(time.RFC3339)
	w.bases = map[string]walkBase{
		"getHealthz": {}, "getReadyz": {}, "getOpenAPISpec": {}, "getDocs": {}, "getJWKS": {},
		"createBooking": {sub: cand, groups: cands, fresh: "Idempotency-Key", shift: day(4).Add(10 * time.Hour),
			body: map[string]any{"mentor_id": mentor, "start": free, "duration_minutes": 60, "timezone": "Europe/Berlin", "topic": "Mock interview", "notes": "n"}},
		"listBookings": {sub: cand, groups: cands, query: url.Values{"role": {"candidate"}, "status": {"confirmed"},
			"from": {day(0).Format(time.RFC3339)}, "to": {day(30).Format(time.RFC3339)}, "limit": {"10"}}},
		"getBooking": {sub: cand, groups: cands, path: map[string]string{"bookingId": read}},
		"rescheduleBooking": {sub: cand, groups: cands, path: map[string]string{"bookingId": read}, header: map[string]string{"If-Match": "*"},
			body: map[string]any{"start": day(40).Add(10 * time.Hour).Format(time.RFC3339), "duration_minutes": 45, "timezone": "Europe/Berlin", "reason": "r"}},
		"cancelBooking":         {sub: cand, groups: cands, path: map[string]string{"bookingId": cancel}, body: map[string]any{"reason": "walk"}},
		"listBookingAudit":      {sub: cand, groups: cands, path: map[string]string{"bookingId": read}, query: url.Values{"limit": {"5"}}},
		"listBookingAttendance": {sub: cand, groups: cands, path: map[string]string{"bookingId": read}},
		"putMentorSchedule": {sub: "walk-admin", groups: []string{"admin"}, path: map[string]string{"mentorId": "walk-mentor"},
			body: map[string]any{"timezone": "Europe/Berlin", "working_hours": []any{map[string]any{"weekday": "mon", "start": "09:00", "end": "17:00"}},
				"slot_minutes": 60, "buffer_minutes": 15, "min_notice_minutes": 720, "max_advance_days": 60, "zoom_user": "m@example.com"}},
		"getMentorSchedule": {sub: cand, groups: cands, path: map[string]string{"mentorId": mentor}},
		"getMentorAvailability": {sub: cand, groups: cands, path: map[string]string{"mentorId": mentor},
			query: url.Values{"from": {day(1).Format(time.RFC3339)}, "to": {day(3).Format(time.RFC3339)}, "duration": {"60"}, "tz": {"Europe/Berlin"}}},
		"listConnections":          {sub: "walk-list", groups: []string{"mentor"}},
		"startGoogleConnection":    {sub: "walk-start", groups: []string{"mentor"}},
		"updateGoogleConnection":   {sub: "walk-google", groups: []string{"mentor"}, body: map[string]any{"calendar_id": "primary", "busy_calendars": []any{"work@group.calendar.google.com"}}},
		"deleteGoogleConnection":   {sub: "walk-delete", groups: []string{"mentor"}},
		"completeGoogleConnection": {sub: "walk-complete", groups: []string{"mentor"}, body: map[string]any{"state": "s", "code": "c", "error": "access_denied"}},
		"googleOAuthCallback":      {query: url.Values{"state": {"s"}, "code": {"c"}}},
		"createCalDAVConnection": {sub: "walk-caldav-new", groups: []string{"mentor"},
			body: map[string]any{"server_url": ce.caldavURL, "username": "mentor", "app_password": appPassword, "busy_calendars": []any{}}},
		"updateCalDAVConnection":  {sub: "walk-caldav", groups: []string{"mentor"}, body: map[string]any{"busy_calendars": []any{}}},
		"deleteCalDAVConnection":  {sub: "walk-delete", groups: []string{"mentor"}},
		"listConnectionCalendars": {sub: "walk-caldav", groups: []string{"mentor"}, path: map[string]string{"provider": "caldav"}},
		"receiveZoomWebhook": {header: map[string]string{"x-zm-signature": "v0=00", "x-zm-request-timestamp": strconv.FormatInt(time.Now().Unix(), 10)},
			body: map[string]any{"event": "meeting.started", "event_ts": 1, "payload": map[string]any{}}},
		"receiveJiraWebhook":   {header: map[string]string{"X-Atlassian-Webhook-Identifier": "walk-2"}, body: map[string]any{"webhookEvent": "jira:issue_updated", "timestamp": 1}},
		"receiveGoogleWebhook": {header: map[string]string{"X-Goog-Channel-ID": "c", "X-Goog-Channel-Token": "t", "X-Goog-Resource-State": "exists"}},
		"listWebhookEvents": {sub: "walk-admin", groups: []string{"admin"}, query: url.Values{"provider": {"jira"}, "status": {"received"},
			"event_type": {"jira:issue_updated"}, "from": {day(-1).Format(time.RFC3339)}, "to": {day(1).Format(time.RFC3339)}, "limit": {"10"}}},
		"getWebhookEvent":        {sub: "walk-admin", groups: []string{"admin"}, path: map[string]string{"eventId": ack.ID}},
		"replayWebhookEvent":     {sub: "walk-admin", groups: []string{"admin"}, path: map[string]string{"eventId": ack.ID}},
		"putProviderCredentials": {sub: "walk-admin", groups: []string{"admin"}, path: map[string]string{"provider": "jira"}, body: map[string]any{"email": "a@example.com", "api_token": "t"}},
		"getProviderCredentials": {sub: "walk-admin", groups: []string{"admin"}, path: map[string]string{"provider": "zoom"}},
	}
	return w
}

// newWebhookIntake is a webhook service on db whose processing jobs are
// only stored (nothing works them): the admin endpoints list, read and
// replay its deliveries.
func newWebhookIntake(t *testing.T, db *store.Store) *webhooks.Service {
	t.Helper()
	var jobs *store.Jobs
	svc, err := webhooks.New(webhooks.Config{DB: db,
		Jobs: func() webhooks.JobInserter { return jobs },
		Secrets: func(ctx context.Context) (webhooks.Secrets, error) {
			return webhooks.Secrets{Zoom: []string{"zoom-secret"}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, svc.ProcessWorker())
	river.AddWorker(workers, svc.RenewWorker())
	river.AddWorker(workers, svc.PollWorker())
	if jobs, err = store.NewJobs(db, store.JobsConfig{Workers: workers}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// walk sends op's cases and checks each answer.
func (w *walkEnv) walk(t *testing.T, method, path string, item *openapi3.PathItem, op *openapi3.Operation, base walkBase) {
	h := fnv.New64a()
	h.Write([]byte(op.OperationID))
	rnd := rand.New(rand.NewPCG(h.Sum64(), 1))
	token := ""
	if base.sub != "" {
		token = w.token(t, base.sub, base.groups...)
	}
	cases := walkCases(item, op, base)
	// A bounded number per operation, the same ones every run.
	const maxCases = 400
	if len(cases) > maxCases {
		rnd.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
		cases = cases[:maxCases]
	}
	statuses := map[int]int{}
	defer func() { t.Logf("%d cases: %v", len(cases), statuses) }()
	for i, c := range cases {
		target := expand(path, c.path) + "?" + c.query
		if !base.shift.IsZero() {
			at := base.shift.Add(time.Duration(i) * time.Hour).Format(time.RFC3339)
			c.body = bytes.ReplaceAll(c.body, []byte(base.shift.Format(time.RFC3339)), []byte(at))
		}
		req, err := http.NewRequestWithContext(t.Context(), method, w.srv.URL+target, bytes.NewReader(c.body))
		if err != nil {
			t.Errorf("%s %s [%s]: %v", method, path, c.name, err)
			continue
		}
		if c.body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range c.header {
			req.Header[http.CanonicalHeaderKey(k)] = []string{v}
		}
		if base.fresh != "" {
			if _, set := c.header[base.fresh]; !set {
				req.Header.Set(base.fresh, fmt.Sprintf("walk-%s-%d", op.OperationID, i))
			}
		}
		resp, body := doRaw(t, w.srv.Client(), req)
		statuses[resp.StatusCode]++
		where := fmt.Sprintf("%s %.200s [%s]", method, target, c.name)
		if raw, _ := op.Extensions["x-raw-body"].(bool); raw {
			c.field = "" // the intake keeps the bytes as they came
		}
		checkWalkAnswer(t, where, op, c, resp, body)
	}
}

// doRaw sends req and reads the answer.
func doRaw(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp, b.Bytes()
}

// expand fills a path template with already escaped values.
func expand(path string, params map[string]string) string {
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

// slugStatus is the status of each problem type that is not the standard
// one of its status.
var slugStatus = map[string]int{
	"validation-error": 400, "bad-request": 400, "unauthorized": 401, "invalid-token": 401, "invalid-signature": 401,
	"forbidden": 403, "not-found": 404, "method-not-allowed": 405, "conflict": 409, "booking-overlap": 409,
	"candidate-overlap": 409, "precondition-failed": 412, "payload-too-large": 413, "unsupported-media-type": 415,
	"unprocessable": 422, "idempotency-key-reused": 422, "booking-failed": 424, "reschedule-refused": 424,
	"precondition-required": 428, "rate-limited": 429,
}

func checkWalkAnswer(t *testing.T, where string, op *openapi3.Operation, c walkCase, resp *http.Response, body []byte) {
	t.Helper()
	status := resp.StatusCode
	if status >= 500 {
		t.Errorf("%s: %d, a client's input must never be a server error: %.400s", where, status, body)
		return
	}
	if status < 400 {
		checkKept(t, where, c, status, body)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: %d with Content-Type %q, want application/problem+json: %.300s", where, status, ct, body)
		return
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("%s: %d problem that is not JSON: %v: %.300s", where, status, err, body)
		return
	}
	slug := strings.TrimPrefix(p.Type, httpapi.ProblemBase)
	if p.Status != status || slug == p.Type || slugStatus[slug] != status || p.Title == "" {
		t.Errorf("%s: %d answered a problem of type %q, status %d, title %q (types and statuses disagree)", where, status, p.Type, p.Status, p.Title)
	}
	for _, f := range p.Errors {
		if !fieldExists(op, c, f.Field) {
			t.Errorf("%s: %d %s names the field %q, which neither the request nor the operation has (%s)", where, status, slug, f.Field, f.Message)
		}
	}
	if (status == 400 || status == 422) && slug == "validation-error" && len(p.Errors) == 0 {
		t.Errorf("%s: %d validation-error naming no field", where, status)
	}
}

// checkKept: a 2xx to a body field's new value stored it as sent. What
// the JSON decoder cannot keep (bytes that are not UTF-8, a lone
// surrogate: both become U+FFFD) must not be a 2xx.
func checkKept(t *testing.T, where string, c walkCase, status int, body []byte) {
	t.Helper()
	if c.field == "" || status == 204 || status == 302 {
		return
	}
	if !utf8.ValidString(c.raw) || strings.Contains(c.raw, `\ud800`) {
		t.Errorf("%s: %d to %s, a value the JSON decoder cannot keep (it becomes U+FFFD): %.300s", where, status, c.field, body)
		return
	}
}

// fieldExists tells whether a problem's field names part of the request:
// a body path the operation's schema or the sent body has, a declared or
// sent parameter or header.
func fieldExists(op *openapi3.Operation, c walkCase, field string) bool {
	where, rest, _ := strings.Cut(field, ".")
	switch where {
	case "body":
		if rest == "" {
			return c.body != nil || op.RequestBody != nil
		}
		segs := strings.Split(rest, ".")
		var sent any
		_ = json.Unmarshal(c.body, &sent)
		if inValue(sent, segs) {
			return true
		}
		if op.RequestBody == nil || op.RequestBody.Value == nil {
			return false
		}
		mt := op.RequestBody.Value.Content.Get("application/json")
		return mt != nil && mt.Schema != nil && inSchema(mt.Schema.Value, segs)
	case "query", "header", "path":
		for _, p := range op.Parameters {
			if p.Value != nil && p.Value.In == where && strings.EqualFold(p.Value.Name, rest) {
				return true
			}
		}
		switch where {
		case "query":
			q, _ := url.ParseQuery(c.query)
			return q.Has(rest)
		case "header":
			for k := range c.header {
				if strings.EqualFold(k, rest) {
					return true
				}
			}
			return strings.EqualFold(rest, "Authorization") || strings.EqualFold(rest, "Content-Type")
		case "path":
			_, ok := c.path[rest]
			return ok
		}
	}
	return false
}

func inValue(v any, segs []string) bool {
	for _, s := range segs {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[s]; !ok {
				return false
			}
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return false
			}
			v = x[i]
		default:
			return false
		}
	}
	return true
}

func inSchema(s *openapi3.Schema, segs []string) bool {
	for _, seg := range segs {
		if s == nil {
			return false
		}
		for _, a := range s.AllOf {
			if a.Value != nil && s.Properties == nil && a.Value.Properties != nil {
				s = a.Value
			}
		}
		switch {
		case s.Properties[seg] != nil:
			s = s.Properties[seg].Value
		case s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has || s.AdditionalProperties.Schema != nil:
			// A typed map (the credentials): the operation names its keys.
			return len(segs) == 1
		case s.Items != nil:
			if _, err := strconv.Atoi(seg); err != nil {
				return false
			}
			s = s.Items.Value
		default:
			return false
		}
	}
	return true
}

// walkCases builds the cases of an operation from its valid request.
func walkCases(item *openapi3.PathItem, op *openapi3.Operation, base walkBase) []walkCase {
	var out []walkCase
	baseBody := []byte(nil)
	if base.body != nil {
		baseBody, _ = json.Marshal(base.body)
	}
	mk := func(name string) walkCase {
		c := walkCase{name: name, path: maps(base.path), query: base.query.Encode(), header: maps(base.header), body: baseBody}
		if baseBody != nil {
			c.ctype = "application/json"
		}
		return c
	}
	out = append(out, mk("as is"))

	// Body: every value in it, and the body as a whole.
	if base.body != nil {
		for _, p := range valuePaths(base.body, nil) {
			name := "body." + strings.Join(p, ".")
			for _, bv := range badValues {
				c := mk(name + " = " + bv.name)
				c.body = replaceAt(base.body, p, bv.raw)
				c.field, c.raw = name, bv.raw
				out = append(out, c)
			}
			c := mk(name + " missing")
			c.body = deleteAt(base.body, p)
			out = append(out, c)
			c = mk(name + " given twice, a bad value last")
			c.body = duplicateAt(base.body, p, `null`, false)
			out = append(out, c)
			c = mk(name + " given twice, a bad value first")
			c.body = duplicateAt(base.body, p, `null`, true)
			out = append(out, c)
		}
		for _, p := range objectPaths(base.body, nil) {
			c := mk("unknown field in body." + strings.Join(p, "."))
			c.body = replaceAt(base.body, append(slices.Clone(p), "unexpected_field"), `1`)
			out = append(out, c)
		}
		for _, whole := range []badValue{{"empty", ""}, {"null", "null"}, {"array", "[]"}, {"array of the body", "[" + string(baseBody) + "]"},
			{"string", `"x"`}, {"number", "1"}, {"empty object", "{}"}, {"not JSON", "a=b"}, {"truncated", string(baseBody[:len(baseBody)/2])},
			{"two values", string(baseBody) + string(baseBody)}, {"BOM", "\xef\xbb\xbf" + string(baseBody)}, {"invalid UTF-8 outside strings", string(baseBody) + "\xff"},
			{"deep nesting", strings.Repeat(`{"a":`, 20_000) + "1" + strings.Repeat("}", 20_000)}} {
			c := mk("body is " + whole.name)
			c.body = []byte(whole.raw)
			out = append(out, c)
		}
		for _, ct := range []string{"", "text/plain", "application/json; charset=latin1", "application/merge-patch+json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-8"} {
			c := mk("Content-Type " + strconv.Quote(ct))
			c.ctype = ct
			out = append(out, c)
		}
	} else {
		c := mk("an unexpected body")
		c.body, c.ctype = []byte(`{"a":1}`), "application/json"
		out = append(out, c)
	}

	// Path parameters.
	for name := range base.path {
		for _, bv := range badParams {
			c := mk("path." + name + " = " + bv.name)
			c.path[name] = bv.raw
			out = append(out, c)
		}
	}

	// Query parameters: the declared ones (given or not) and a stranger.
	var params openapi3.Parameters
	params = append(params, item.Parameters...)
	params = append(params, op.Parameters...)
	for _, ref := range params {
		p := ref.Value
		switch {
		case p == nil:
		case p.In == openapi3.ParameterInQuery:
			for _, bv := range badParams {
				c := mk("query." + p.Name + " = " + bv.name)
				c.query = withQuery(base.query, p.Name, bv.raw)
				out = append(out, c)
			}
			c := mk("query." + p.Name + " given twice")
			c.query = base.query.Encode() + "&" + url.QueryEscape(p.Name) + "=1&" + url.QueryEscape(p.Name) + "=2"
			out = append(out, c)
		case p.In == openapi3.ParameterInHeader:
			for _, bv := range badHeaders {
				c := mk("header " + p.Name + " = " + bv.name)
				c.header[p.Name] = bv.raw
				out = append(out, c)
			}
		}
	}
	c := mk("unknown query parameter")
	c.query = base.query.Encode() + "&unexpected=%FF"
	out = append(out, c)
	return out
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// withQuery is q with name set to raw (already escaped).
func withQuery(q url.Values, name, raw string) string {
	rest := url.Values{}
	for k, v := range q {
		if k != name {
			rest[k] = v
		}
	}
	s := rest.Encode()
	if s != "" {
		s += "&"
	}
	return s + url.QueryEscape(name) + "=" + raw
}

// valuePaths lists the path of every value in v (not v itself).
func valuePaths(v any, prefix []string) [][]string {
	var out [][]string
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		}) {
			p := append(slices.Clone(prefix), k)
			out = append(out, p)
			out = append(out, valuePaths(x[k], p)...)
		}
	case []any:
		for i, e := range x {
			p := append(slices.Clone(prefix), strconv.Itoa(i))
			out = append(out, p)
			out = append(out, valuePaths(e, p)...)
		}
	}
	return out
}

// objectPaths lists the path of every object in v, v included.
func objectPaths(v any, prefix []string) [][]string {
	var out [][]string
	switch x := v.(type) {
	case map[string]any:
		out = append(out, prefix)
		for k, e := range x {
			out = append(out, objectPaths(e, append(slices.Clone(prefix), k))...)
		}
	case []any:
		for i, e := range x {
			out = append(out, objectPaths(e, append(slices.Clone(prefix), strconv.Itoa(i)))...)
		}
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(strings.Join(a, "."), strings.Join(b, ".")) })
	return out
}

const placeholder = "__walk_placeholder__"

// replaceAt is v encoded with the value at p replaced by raw.
func replaceAt(v any, p []string, raw string) []byte {
	return splice(setAt(clone(v), p, placeholder), raw)
}

func splice(v any, raw string) []byte {
	b, _ := json.Marshal(v)
	return bytes.Replace(b, []byte(`"`+placeholder+`"`), []byte(raw), 1)
}

// deleteAt is v encoded without the value at p (an array's element removed).
func deleteAt(v any, p []string) []byte {
	c := clone(v)
	parent := getAt(c, p[:len(p)-1])
	switch x := parent.(type) {
	case map[string]any:
		delete(x, p[len(p)-1])
	case []any:
		i, _ := strconv.Atoi(p[len(p)-1])
		setAt(c, p[:len(p)-1], slices.Delete(slices.Clone(x), i, i+1))
	}
	b, _ := json.Marshal(c)
	return b
}

// duplicateAt is v encoded with the key at p given twice: its value and
// raw, raw first or last. Only for keys of objects.
func duplicateAt(v any, p []string, raw string, first bool) []byte {
	key := p[len(p)-1]
	if _, err := strconv.Atoi(key); err == nil {
		return replaceAt(v, p, raw)
	}
	val, _ := json.Marshal(getAt(v, p))
	pair := fmt.Sprintf("%q:%s,%q:%s", key, val, key, raw)
	if first {
		pair = fmt.Sprintf("%q:%s,%q:%s", key, raw, key, val)
	}
	b := replaceAt(v, p, "0")
	// The key's member is now "key":0; find it under its parent.
	enc, _ := json.Marshal(key)
	member := append(append(enc, ':'), '0')
	return bytes.Replace(b, member, []byte(pair), 1)
}

func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func getAt(v any, p []string) any {
	for _, s := range p {
		switch x := v.(type) {
		case map[string]any:
			v = x[s]
		case []any:
			i, _ := strconv.Atoi(s)
			v = x[i]
		}
	}
	return v
}

// setAt sets the value at p in v (a clone) and returns v.
func setAt(v any, p []string, val any) any {
	if len(p) == 0 {
		return val
	}
	switch x := v.(type) {
	case map[string]any:
		x[p[0]] = setAt(x[p[0]], p[1:], val)
	case []any:
		i, _ := strconv.Atoi(p[0])
		x[i] = setAt(x[i], p[1:], val)
	}
	return v
}
