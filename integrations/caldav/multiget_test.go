package caldav_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
)

var hrefRE = regexp.MustCompile(`<d:href>([^<]*)</d:href>`)

// multigetAnswer answers every calendar-multiget REPORT itself, with the
// multistatus answer(href) gives for each requested href (RFC 4791
// section 7.9 allows a status per href), and passes every other request to
// next.
func multigetAnswer(next http.Handler, answer func(href string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "REPORT" || !bytes.Contains(body, []byte("calendar-multiget")) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">`)
		for _, m := range hrefRE.FindAllStringSubmatch(string(body), -1) {
			b.WriteString(answer(m[1]))
		}
		b.WriteString(`</d:multistatus>`)
		w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = io.WriteString(w, b.String())
	})
}

// TestChangesMultigetAnswers: after a listing, the listed objects are
// fetched with calendar-multiget. Only an object the server says is not
// there (404 or 410) is reported deleted; one it fails to return (another
// status, or no answer at all) fails Changes, as nothing can be told of it,
// and one returned unreadable is there without a change that can be told.
// A full listing must never make an event look deleted because its fetch
// failed.
func TestChangesMultigetAnswers(t *testing.T) {
	t.Parallel()
	status := func(code int) func(string) string {
		return func(href string) string {
			return fmt.Sprintf(`<d:response><d:href>%s</d:href><d:status>HTTP/1.1 %d %s</d:status></d:response>`, href, code, http.StatusText(code))
		}
	}
	tests := []struct {
		name    string
		answer  func(href string) string
		wantErr bool
		deleted bool // the event is reported deleted
	}{
		{"not found", status(http.StatusNotFound), false, true},
		{"gone", status(http.StatusGone), false, true},
		{"properties not found", func(href string) string {
			return `<d:response><d:href>` + href + `</d:href><d:propstat><d:prop><d:getetag/><c:calendar-data/></d:prop>` +
				`<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>`
		}, false, true},
		{"server error", status(http.StatusInternalServerError), true, false},
		{"forbidden", status(http.StatusForbidden), true, false},
		{"no answer", func(string) string { return "" }, true, false},
		{"unreadable", func(href string) string {
			return `<d:response><d:href>` + href + `</d:href><d:propstat><d:prop><d:getetag>"x"</d:getetag>` +
				`<c:calendar-data>not a calendar</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>`
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := caldavtest.New(caldavtest.Options{Users: map[string]string{"alice": "alice-secret"}})
			direct := httptest.NewServer(sim)
			t.Cleanup(direct.Close)
			path := caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)
			writer := newClient(t, direct.Client(), direct.URL+path, "alice", "alice-secret")
			start := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
			if _, err := writer.CreateEvent(t.Context(), calendar.Event{BookingID: "b1", Summary: "s", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(multigetAnswer(sim, tt.answer))
			t.Cleanup(ts.Close)
			for _, opts := range [][]caldav.Option{nil, {caldav.WithETagListing()}} {
				c, err := caldav.New(ts.URL+path, "alice", "alice-secret", append(opts, caldav.WithHTTPClient(ts.Client()))...)
				if err != nil {
					t.Fatal(err)
				}
				cs, err := c.Changes(t.Context(), "")
				if tt.wantErr {
					if err == nil {
						t.Fatalf("Changes = %+v, want an error", cs)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				id := calendar.EventID("b1")
				gotDeleted := len(cs.Changes) == 1 && cs.Changes[0].Deleted && cs.Changes[0].ID == id
				if gotDeleted != tt.deleted || !tt.deleted && len(cs.Changes) != 0 {
					t.Fatalf("changes %+v, want deleted=%v", cs.Changes, tt.deleted)
				}
				if present := slices.Contains(cs.Present, id); !cs.Complete || present == tt.deleted {
					t.Fatalf("complete=%v present=%v, want the event present=%v", cs.Complete, cs.Present, !tt.deleted)
				}
			}
		})
	}
}
