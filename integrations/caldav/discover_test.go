package caldav_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
)

func findCalendar(acct caldav.Account, u string) (caldav.CalendarInfo, bool) {
	for _, c := range acct.Calendars {
		if c.URL == u {
			return c, true
		}
	}
	return caldav.CalendarInfo{}, false
}

func TestDiscoverInMemory(t *testing.T) {
	t.Parallel()
	ts, srv, calURL := memServer(t, caldavtest.Options{})
	srv.CreateCalendar("alice", "work", "Work")

	acct, err := caldav.Discover(t.Context(), ts.Client(), ts.URL, "alice", "alice-secret")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if want := ts.URL + "/alice/"; acct.PrincipalURL != want {
		t.Errorf("PrincipalURL = %q, want %q", acct.PrincipalURL, want)
	}
	if want := ts.URL + "/alice/calendars/"; acct.HomeSetURL != want {
		t.Errorf("HomeSetURL = %q, want %q", acct.HomeSetURL, want)
	}
	if len(acct.Calendars) != 2 {
		t.Errorf("Calendars = %+v, want default and work", acct.Calendars)
	}
	def, ok := findCalendar(acct, calURL)
	if !ok || !def.SupportsVEVENT || def.Path != "/alice/calendars/default/" {
		t.Errorf("default calendar = %+v (found %v), want VEVENT-capable at /alice/calendars/default/", def, ok)
	}
	work, ok := findCalendar(acct, ts.URL+"/alice/calendars/work/")
	if !ok || work.Name != "Work" {
		t.Errorf("work calendar = %+v (found %v), want name Work", work, ok)
	}
	if got := len(acct.EventCalendars()); got != 2 {
		t.Errorf("EventCalendars: %d, want 2", got)
	}

	// The discovered URL works with the client.
	if _, err := newClient(t, ts.Client(), def.URL, "alice", "alice-secret").Changes(t.Context(), ""); err != nil {
		t.Errorf("Changes on the discovered calendar: %v", err)
	}
}

func TestDiscoverWrongPassword(t *testing.T) {
	t.Parallel()
	ts, _, _ := memServer(t, caldavtest.Options{})
	_, err := caldav.Discover(t.Context(), ts.Client(), ts.URL, "alice", "nope")
	if !errors.Is(err, caldav.ErrUnauthorized) {
		t.Fatalf("Discover with a wrong password: %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), "app-specific password") {
		t.Errorf("error %q does not mention app-specific passwords", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Errorf("error %q leaks the password", err)
	}
}

// TestDiscoverFollowsCrossHostRedirect mimics iCloud: the entry host
// redirects /.well-known/caldav (301, which Go's client would turn into a
// GET) to another host that serves the account.
func TestDiscoverFollowsCrossHostRedirect(t *testing.T) {
	t.Parallel()
	back, _, _ := memServer(t, caldavtest.Options{})
	var methods []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		if r.URL.Path == "/.well-known/caldav" {
			http.Redirect(w, r, back.URL+"/.well-known/caldav", http.StatusMovedPermanently)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(front.Close)

	acct, err := caldav.Discover(t.Context(), http.DefaultClient, front.URL, "alice", "alice-secret")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if want := back.URL + "/alice/"; acct.PrincipalURL != want {
		t.Errorf("PrincipalURL = %q, want %q", acct.PrincipalURL, want)
	}
	if _, ok := findCalendar(acct, back.URL+"/alice/calendars/default/"); !ok {
		t.Errorf("Calendars = %+v, want the default calendar on the redirected host", acct.Calendars)
	}
	if len(methods) == 0 || methods[0] != "PROPFIND" {
		t.Errorf("front saw %v, want a PROPFIND", methods)
	}
}

// TestDiscoverAppliesRedirectPolicy: the caller's CheckRedirect (the
// connection flow's SSRF guard) also vets the redirects Discover follows.
func TestDiscoverAppliesRedirectPolicy(t *testing.T) {
	t.Parallel()
	back, _, _ := memServer(t, caldavtest.Options{})
	front := httptest.NewServer(http.RedirectHandler(back.URL+"/.well-known/caldav", http.StatusMovedPermanently))
	t.Cleanup(front.Close)
	errRefused := errors.New("private address")
	hc := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == strings.TrimPrefix(back.URL, "http://") {
			return errRefused
		}
		return nil
	}}
	_, err := caldav.Discover(t.Context(), hc, front.URL, "alice", "alice-secret")
	if !errors.Is(err, errRefused) {
		t.Fatalf("Discover through a refused redirect: %v, want the policy's error", err)
	}
}

func TestDiscoverRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	calURL := radicale.MakeCalendar(t, base, user, pass, "mentoring")

	acct, err := caldav.Discover(t.Context(), http.DefaultClient, base, user, pass)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if want := base + user + "/"; acct.PrincipalURL != want {
		t.Errorf("PrincipalURL = %q, want %q", acct.PrincipalURL, want)
	}
	if acct.HomeSetURL == "" {
		t.Error("empty HomeSetURL")
	}
	cal, ok := findCalendar(acct, calURL)
	if !ok || !cal.SupportsVEVENT || cal.Name != "mentoring" {
		t.Errorf("calendar %s = %+v (found %v) in %+v", calURL, cal, ok, acct.Calendars)
	}

	_, err = caldav.Discover(t.Context(), http.DefaultClient, base, user, pass+"x")
	if !errors.Is(err, caldav.ErrUnauthorized) {
		t.Errorf("Discover with a wrong password: %v, want ErrUnauthorized", err)
	}
}
