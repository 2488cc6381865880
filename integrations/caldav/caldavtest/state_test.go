package caldavtest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
)

// davClient sends requests as one user to one server.
type davClient struct {
	t          *testing.T
	base       string
	user, pass string
}

type davResponse struct {
	code int
	hdr  http.Header
	body []byte
}

func (c davClient) do(method, p, body string, hdr map[string]string) davResponse {
	c.t.Helper()
	r, err := http.NewRequestWithContext(c.t.Context(), method, c.base+p, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	r.SetBasicAuth(c.user, c.pass)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(r)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, p, err)
	}
	return davResponse{resp.StatusCode, resp.Header, b}
}

// must is do that fails the test unless the status is want.
func (c davClient) must(want int, method, p, body string, hdr map[string]string) davResponse {
	c.t.Helper()
	r := c.do(method, p, body, hdr)
	if r.code != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d (%s)", method, p, r.code, want, r.body)
	}
	return r
}

func (c davClient) put(p, data string) davResponse {
	c.t.Helper()
	return c.must(http.StatusCreated, "PUT", p, data, map[string]string{"Content-Type": "text/calendar"})
}

// syncResult is a parsed sync-collection answer: changed hrefs with their
// etags, removed hrefs, and the new token.
type syncResult struct {
	changed map[string]string
	removed []string
	token   string
}

func (c davClient) sync(calPath, token string) syncResult {
	c.t.Helper()
	body := `<d:sync-collection xmlns:d="DAV:"><d:sync-token>` + token +
		`</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`
	r := c.must(http.StatusMultiStatus, "REPORT", calPath, body, map[string]string{"Content-Type": "application/xml"})
	var ms struct {
		Responses []struct {
			Href   string `xml:"DAV: href"`
			Status string `xml:"DAV: status"`
			ETag   string `xml:"DAV: propstat>prop>getetag"`
		} `xml:"DAV: response"`
		SyncToken string `xml:"DAV: sync-token"`
	}
	if err := xml.Unmarshal(r.body, &ms); err != nil {
		c.t.Fatalf("sync-collection: %v (%s)", err, r.body)
	}
	res := syncResult{changed: map[string]string{}, token: ms.SyncToken}
	for _, resp := range ms.Responses {
		if strings.Contains(resp.Status, "404") {
			res.removed = append(res.removed, resp.Href)
		} else {
			res.changed[resp.Href] = resp.ETag
		}
	}
	sort.Strings(res.removed)
	return res
}

// propfindCalendars lists the user's home set with Depth 1.
func (c davClient) propfindCalendars() []byte {
	c.t.Helper()
	body := `<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">` +
		`<d:prop><d:resourcetype/><d:displayname/><c:calendar-description/><c:supported-calendar-component-set/>` +
		`<cs:getctag/></d:prop></d:propfind>`
	return c.must(http.StatusMultiStatus, "PROPFIND", caldavtest.HomeSetPath(c.user), body,
		map[string]string{"Depth": "1", "Content-Type": "application/xml"}).body
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	opts := caldavtest.Options{Users: map[string]string{"alice": "a-pw"}}
	srv := caldavtest.New(opts)
	srv.ExpireSyncTokens() // a non-zero epoch, which a fresh Server does not have
	work := srv.CreateCalendar("alice", "work", "Work")
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	alice := davClient{t, ts.URL, "alice", "a-pw"}

	cal := caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)
	kept, gone, added := cal+"kept.ics", cal+"gone.ics", cal+"added.ics"
	// A non-UTF-8 byte: the stored bytes must survive as they are.
	alice.put(kept, ics("kept", "X-NOTE:caf\xe9\r\n"))
	alice.put(gone, ics("gone", ""))
	alice.put(work+"w.ics", ics("w", ""))
	beforeDelete := alice.sync(cal, "").token
	alice.must(http.StatusNoContent, "DELETE", gone, "", nil)
	saved := alice.sync(cal, "")
	keptGet := alice.must(http.StatusOK, "GET", kept, "", nil)
	if !bytes.Contains(keptGet.body, []byte("caf\xe9")) {
		t.Fatalf("GET %s: %q lacks the raw byte", kept, keptGet.body)
	}
	listing := alice.propfindCalendars()

	state, err := srv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(state, &head); err != nil || head.Version == nil || *head.Version != 1 {
		t.Fatalf("state %s: version %v, %v; want 1", state, head.Version, err)
	}

	srv2 := caldavtest.New(opts)
	if err := srv2.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	ts2 := httptest.NewServer(srv2)
	t.Cleanup(ts2.Close)
	alice2 := davClient{t, ts2.URL, "alice", "a-pw"}

	got := alice2.must(http.StatusOK, "GET", kept, "", nil)
	if !bytes.Equal(got.body, keptGet.body) {
		t.Errorf("GET %s after restore:\n%q\nwant\n%q", kept, got.body, keptGet.body)
	}
	for _, h := range []string{"ETag", "Last-Modified"} {
		if g, w := got.hdr.Get(h), keptGet.hdr.Get(h); g != w || w == "" {
			t.Errorf("%s after restore %q, want %q", h, g, w)
		}
	}
	alice2.must(http.StatusNotFound, "GET", gone, "", nil)
	alice2.must(http.StatusOK, "GET", work+"w.ics", "", nil)
	if got := alice2.propfindCalendars(); !bytes.Equal(got, listing) {
		t.Errorf("PROPFIND after restore:\n%s\nwant\n%s", got, listing)
	}
	for _, p := range []string{cal, work} {
		if !bytes.Contains(listing, []byte("<href>"+p+"</href>")) {
			t.Errorf("PROPFIND does not list %s: %s", p, listing)
		}
	}

	// The collection's state token (this server's ctag) is unchanged, and
	// so is the listing behind it.
	restored := alice2.sync(cal, "")
	if restored.token != saved.token {
		t.Errorf("collection token after restore %q, want %q", restored.token, saved.token)
	}
	if fmt.Sprint(restored.changed) != fmt.Sprint(saved.changed) || len(restored.removed) != 0 {
		t.Errorf("listing after restore %v, want %v", restored, saved)
	}

	// Tokens from before the save see only what changed after them.
	alice2.put(added, ics("added", ""))
	res := alice2.sync(cal, saved.token)
	if len(res.changed) != 1 || res.changed[added] == "" || len(res.removed) != 0 {
		t.Errorf("sync from the saved token: %+v, want only %s", res, added)
	}
	if res.token == saved.token {
		t.Errorf("sync token %q did not advance", res.token)
	}
	res = alice2.sync(cal, beforeDelete)
	if len(res.changed) != 1 || res.changed[added] == "" || !slices.Equal(res.removed, []string{gone}) {
		t.Errorf("sync from before the delete: %+v, want %s changed and %s removed", res, added, gone)
	}

	// The old server is untouched by the new one.
	if got := alice.sync(cal, saved.token); len(got.changed)+len(got.removed) != 0 {
		t.Errorf("old server changed: %+v", got)
	}
}

func TestUnmarshalStateErrors(t *testing.T) {
	t.Parallel()
	opts := caldavtest.Options{Users: map[string]string{"alice": "a-pw"}}
	cal := caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)

	// other is a valid state that differs from the one under test, so a
	// bad input built from it shows whether anything was applied.
	otherSrv := caldavtest.New(opts)
	otherSrv.ExpireSyncTokens()
	otherTS := httptest.NewServer(otherSrv)
	t.Cleanup(otherTS.Close)
	davClient{t, otherTS.URL, "alice", "a-pw"}.put(cal+"other.ics", ics("other", ""))
	other, err := otherSrv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(other, []byte(`"version":1`)) {
		t.Fatalf("state %s lacks \"version\":1", other)
	}
	replace := func(old, new string) []byte {
		return bytes.Replace(other, []byte(old), []byte(new), 1)
	}

	for _, tc := range []struct {
		name  string
		state []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("<state/>")},
		{"truncated", other[:len(other)/2]},
		{"trailing data", append(slices.Clip(other), "{}"...)},
		{"null", []byte("null")},
		{"no version", replace(`"version":1,`, ``)},
		{"version 2", replace(`"version":1`, `"version":2`)},
		{"version 0", replace(`"version":1`, `"version":0`)},
		{"wrong type", replace(`"version":1`, `"version":"1"`)},
		{"object outside its calendar", replace(`"path":"`+cal+`other.ics"`, `"path":"/alice/elsewhere/other.ics"`)},
		{"bad calendar path", replace(`"path":"`+cal+`"`, `"path":"alice"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := caldavtest.New(opts)
			ts := httptest.NewServer(srv)
			t.Cleanup(ts.Close)
			alice := davClient{t, ts.URL, "alice", "a-pw"}
			alice.put(cal+"mine.ics", ics("mine", ""))
			before, err := srv.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			token := alice.sync(cal, "").token

			if err := srv.UnmarshalState(tc.state); err == nil {
				t.Fatalf("UnmarshalState(%.80q) = nil, want an error", tc.state)
			}
			after, err := srv.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, before) {
				t.Errorf("state changed by a failed UnmarshalState:\n%s\nwant\n%s", after, before)
			}
			alice.must(http.StatusOK, "GET", cal+"mine.ics", "", nil)
			alice.must(http.StatusNotFound, "GET", cal+"other.ics", "", nil)
			if got := alice.sync(cal, token); got.token != token || len(got.changed)+len(got.removed) != 0 {
				t.Errorf("sync after a failed UnmarshalState: %+v, want no changes at %q", got, token)
			}
		})
	}

	// The unmodified state is accepted: the failures above are down to the edits.
	srv := caldavtest.New(opts)
	if err := srv.UnmarshalState(other); err != nil {
		t.Fatalf("UnmarshalState(valid state): %v", err)
	}
	if got, err := srv.MarshalState(); err != nil || !bytes.Equal(got, other) {
		t.Errorf("MarshalState after restoring: %s, %v; want %s", got, err, other)
	}
}

// TestStateConcurrentUse runs saves and restores alongside writes; the race
// detector checks the locking.
func TestStateConcurrentUse(t *testing.T) {
	t.Parallel()
	opts := caldavtest.Options{Users: map[string]string{"alice": "a-pw"}}
	srv := caldavtest.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	cal := caldavtest.CalendarPath("alice", caldavtest.DefaultCalendar)

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 5 {
				uid := fmt.Sprintf("e%d-%d", i, j)
				r, err := http.NewRequestWithContext(t.Context(), "PUT", ts.URL+cal+uid+".ics", strings.NewReader(ics(uid, "")))
				if err != nil {
					t.Error(err)
					return
				}
				r.SetBasicAuth("alice", "a-pw")
				r.Header.Set("Content-Type", "text/calendar")
				resp, err := noRedirect.Do(r)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("PUT %s: HTTP %d", uid, resp.StatusCode)
				}
			}
		})
		wg.Go(func() {
			for range 5 {
				b, err := srv.MarshalState()
				if err != nil {
					t.Error(err)
					return
				}
				if err := srv.UnmarshalState(b); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := srv.MarshalState(); err != nil {
		t.Fatal(err)
	}
}
