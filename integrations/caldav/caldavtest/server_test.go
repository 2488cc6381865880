package caldavtest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
)

const event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n%sBEGIN:VEVENT\r\nUID:%s\r\n" +
	"DTSTAMP:20270101T000000Z\r\nDTSTART:20270601T090000Z\r\nDTEND:20270601T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"

func ics(uid, extra string) string {
	return strings.Replace(strings.Replace(event, "%s", extra, 1), "%s", uid, 1)
}

func TestServerStrictness(t *testing.T) {
	t.Parallel()
	srv := caldavtest.New(caldavtest.Options{Users: map[string]string{"alice": "a-pw", "bob": "b-pw"}})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	cal := caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)

	type req struct {
		method, path, user, pass, body string
		hdr                            map[string]string
	}
	steps := []struct {
		name     string
		req      req
		want     int
		wantHdr  string // header that must be set
		wantBody string // substring of the body
	}{
		{"no credentials", req{method: "PROPFIND", path: "/alice/"}, http.StatusUnauthorized, "Www-Authenticate", ""},
		{"wrong password", req{method: "GET", path: cal + "x.ics", user: "alice", pass: "nope"}, http.StatusUnauthorized, "Www-Authenticate", ""},
		{"other user's tree", req{method: "PROPFIND", path: "/bob/calendars/", user: "alice", pass: "a-pw", hdr: map[string]string{"Depth": "0"}}, http.StatusForbidden, "", ""},
		{"well-known redirects to the principal", req{method: "PROPFIND", path: "/.well-known/caldav", user: "alice", pass: "a-pw"}, http.StatusPermanentRedirect, "Location", ""},
		{"create", req{method: "PUT", path: cal + "e1.ics", user: "alice", pass: "a-pw", body: ics("e1", ""),
			hdr: map[string]string{"If-None-Match": "*", "Content-Type": "text/calendar"}}, http.StatusCreated, "Etag", ""},
		{"create again", req{method: "PUT", path: cal + "e1.ics", user: "alice", pass: "a-pw", body: ics("e1", ""),
			hdr: map[string]string{"If-None-Match": "*", "Content-Type": "text/calendar"}}, http.StatusPreconditionFailed, "", ""},
		{"update with a stale etag", req{method: "PUT", path: cal + "e1.ics", user: "alice", pass: "a-pw", body: ics("e1", ""),
			hdr: map[string]string{"If-Match": `"0-stale"`, "Content-Type": "text/calendar"}}, http.StatusPreconditionFailed, "", ""},
		{"same UID under another name", req{method: "PUT", path: cal + "other.ics", user: "alice", pass: "a-pw", body: ics("e1", ""),
			hdr: map[string]string{"Content-Type": "text/calendar"}}, http.StatusConflict, "", "no-uid-conflict"},
		{"METHOD is refused", req{method: "PUT", path: cal + "m.ics", user: "alice", pass: "a-pw", body: ics("m", "METHOD:REQUEST\r\n"),
			hdr: map[string]string{"Content-Type": "text/calendar"}}, http.StatusConflict, "", "valid-calendar-object-resource"},
		{"delete with a stale etag", req{method: "DELETE", path: cal + "e1.ics", user: "alice", pass: "a-pw",
			hdr: map[string]string{"If-Match": `"0-stale"`}}, http.StatusPreconditionFailed, "", ""},
		{"get", req{method: "GET", path: cal + "e1.ics", user: "alice", pass: "a-pw"}, http.StatusOK, "Etag", "UID:e1"},
		{"unknown sync token", req{method: "REPORT", path: cal, user: "alice", pass: "a-pw", hdr: map[string]string{"Content-Type": "application/xml"},
			body: `<d:sync-collection xmlns:d="DAV:"><d:sync-token>http://example.com/x</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`},
			http.StatusForbidden, "", "valid-sync-token"},
		{"initial sync", req{method: "REPORT", path: cal, user: "alice", pass: "a-pw", hdr: map[string]string{"Content-Type": "application/xml"},
			body: `<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`},
			http.StatusMultiStatus, "", "e1.ics"},
		{"delete", req{method: "DELETE", path: cal + "e1.ics", user: "alice", pass: "a-pw"}, http.StatusNoContent, "", ""},
		{"delete again", req{method: "DELETE", path: cal + "e1.ics", user: "alice", pass: "a-pw"}, http.StatusNotFound, "", ""},
	}
	for _, st := range steps {
		r, err := http.NewRequestWithContext(t.Context(), st.req.method, ts.URL+st.req.path, strings.NewReader(st.req.body))
		if err != nil {
			t.Fatal(err)
		}
		if st.req.user != "" {
			r.SetBasicAuth(st.req.user, st.req.pass)
		}
		for k, v := range st.req.hdr {
			r.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(r)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.want {
			t.Errorf("%s: HTTP %d, want %d (%s)", st.name, resp.StatusCode, st.want, body)
		}
		if st.wantHdr != "" && resp.Header.Get(st.wantHdr) == "" {
			t.Errorf("%s: no %s header", st.name, st.wantHdr)
		}
		if !strings.Contains(string(body), st.wantBody) {
			t.Errorf("%s: body %q lacks %q", st.name, body, st.wantBody)
		}
	}
}

// noRedirect has a transport of its own: an httptest.Server closing in a
// parallel test closes http.DefaultTransport's idle connections, which can
// break a request about to reuse one.
var noRedirect = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
