package webhooks_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// tap sits between the gateway's CalDAV client and the server: a test has
// it act at a chosen moment of a sync (after the server answered the
// listing, before it answers an event's own read), as the mentor or the
// gateway's booking saga would between two requests of one sync.
type tap struct {
	next http.Handler
	mu   sync.Mutex
	// afterListing runs once, after the server answered a listing (a
	// REPORT or a PROPFIND of the collection's members) with 207.
	afterListing func()
	// beforeGet runs before each GET reaches the server; true answers it
	// with 503 instead.
	beforeGet func() (fail bool)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (x *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x.mu.Lock()
	before := x.beforeGet
	x.mu.Unlock()
	if r.Method == http.MethodGet && before != nil && before() {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	x.next.ServeHTTP(rec, r)
	listing := r.Method == "REPORT" || r.Method == "PROPFIND" && r.Header.Get("Depth") == "1"
	if !listing || rec.status != http.StatusMultiStatus {
		return
	}
	x.mu.Lock()
	after := x.afterListing
	x.afterListing = nil
	x.mu.Unlock()
	if after != nil {
		after()
	}
}

func (x *tap) set(afterListing func(), beforeGet func() bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.afterListing, x.beforeGet = afterListing, beforeGet
}

// fullListingCal is a mentor's calendar on a real CalDAV server: the
// gateway syncs it through tap; direct writes events as the booking saga
// does and deletes them as the mentor's calendar app does.
type fullListingCal struct {
	src    webhooks.Source
	calURL string
	tap    *tap
	gw     *caldav.Client
	direct *caldav.Client
	// invalidate makes the stored cursor one the server refuses (or that
	// leads to a full listing), after the deletions: the server forgot its
	// sync tokens.
	invalidate func(t *testing.T, db *store.Store)
	user, pass string
}

// deleteCollection deletes the calendar, as its owner does in their app.
func (c *fullListingCal) deleteCollection() error {
	req, err := http.NewRequest(http.MethodDelete, c.calURL, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := ownClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: HTTP %d", c.calURL, resp.StatusCode)
	}
	return nil
}

// ownClient has a transport of its own (see radicale's client).
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second}

// storeCursor replaces src's stored sync cursor.
func storeCursor(t *testing.T, db *store.Store, src webhooks.Source, cur string) {
	t.Helper()
	res, err := db.DB().ExecContext(t.Context(), db.Rebind(`UPDATE webhook_calendar_cursors SET cursor = ?
		WHERE provider = ? AND user_id = ? AND calendar_id = ?`), cur, src.Provider, src.UserID, src.CalendarID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("no stored cursor for %+v", src)
	}
}

// fullListingTargets are the CalDAV servers of the full-listing tests: the
// in-memory go-webdav server with and without sync-collection, and Radicale
// with sync-collection and with the etag listing (ctag short cut). Each
// target's newCal makes a new calendar.
func fullListingTargets(t *testing.T) []struct {
	name   string
	newCal func(t *testing.T) *fullListingCal
} {
	srv := radicale.Run(t)
	var n atomic.Int64
	inMemory := func(noSync bool) func(t *testing.T) *fullListingCal {
		return func(t *testing.T) *fullListingCal {
			sim := caldavtest.New(caldavtest.Options{Users: map[string]string{"mentor": "pw"}, DisableSyncCollection: noSync})
			direct := httptest.NewServer(sim)
			t.Cleanup(direct.Close)
			x := &tap{next: sim}
			tapped := httptest.NewServer(x)
			t.Cleanup(tapped.Close)
			path := sim.CreateCalendar("mentor", "work", "Work")
			c := &fullListingCal{src: webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: path},
				calURL: direct.URL + path, tap: x, user: "mentor", pass: "pw"}
			c.invalidate = func(t *testing.T, db *store.Store) { sim.ExpireSyncTokens() }
			if noSync {
				// A cursor of the server's sync-collection days: it no
				// longer offers the report.
				c.invalidate = func(t *testing.T, db *store.Store) {
					storeCursor(t, db, c.src, "s1:http://spotlight.invalid/ns/sync/0-1")
				}
			}
			return c.open(t, tapped.URL+path)
		}
	}
	onRadicale := func(etags bool) func(t *testing.T) *fullListingCal {
		return func(t *testing.T) *fullListingCal {
			calURL := radicale.MakeCalendar(t, srv.BaseURL, srv.User, srv.Pass, fmt.Sprintf("full%d", n.Add(1)))
			u, err := url.Parse(calURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
			proxy.Transport = ownClient.Transport
			x := &tap{next: proxy}
			tapped := httptest.NewServer(x)
			t.Cleanup(tapped.Close)
			c := &fullListingCal{src: webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: u.Path},
				calURL: calURL, tap: x, user: srv.User, pass: srv.Pass}
			// A month passes without a sync by the gateway (its poller
			// down, the connection waiting to be renewed); the mentor's
			// calendar app syncs, and Radicale forgets the gateway's token
			// and the deletions it could have reported.
			c.invalidate = func(t *testing.T, db *store.Store) {
				srv.AgeSyncState(t, calURL, 31*24*time.Hour)
				if _, err := c.direct.Changes(t.Context(), ""); err != nil {
					t.Fatal(err)
				}
			}
			if !etags {
				return c.open(t, tapped.URL+u.Path)
			}
			// The gateway lists etags (Radicale serves CS:getctag, so
			// with the ctag short cut) and finds a sync-collection
			// cursor stored, of the days it used the report.
			c.invalidate = func(t *testing.T, db *store.Store) {
				storeCursor(t, db, c.src, "s1:http://radicale.org/ns/sync/0000000000000000000000000000000000000000")
			}
			return c.open(t, tapped.URL+u.Path, caldav.WithETagListing())
		}
	}
	return []struct {
		name   string
		newCal func(t *testing.T) *fullListingCal
	}{
		{"go-webdav/sync-collection", inMemory(false)},
		{"go-webdav/etag-listing", inMemory(true)},
		{"radicale/sync-collection", onRadicale(false)},
		{"radicale/etag-listing", onRadicale(true)},
	}
}

// open makes the direct client; tapped is the calendar's URL through tap,
// for the gateway's client it returns.
func (c *fullListingCal) open(t *testing.T, tapped string, opts ...caldav.Option) *fullListingCal {
	t.Helper()
	var err error
	if c.direct, err = caldav.New(c.calURL, c.user, c.pass, caldav.WithHTTPClient(ownClient)); err != nil {
		t.Fatal(err)
	}
	gw, err := caldav.New(tapped, c.user, c.pass, append(opts, caldav.WithHTTPClient(ownClient))...)
	if err != nil {
		t.Fatal(err)
	}
	c.gw = gw
	return c
}

// session writes booking id's event (an hour at start) as the saga does,
// and records the booking (status st) and where its event is.
func (c *fullListingCal) session(t *testing.T, h *harness, id string, start time.Time, st string) {
	t.Helper()
	ev, err := c.direct.CreateEvent(t.Context(), calendar.Event{BookingID: id, Summary: "Session", Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	h.bookings.add(webhooks.Booking{ID: id, Status: st, MentorID: "mentor-1", CandidateID: "candidate-1", Start: start, End: start.Add(time.Hour)}, "", ev.ID, "")
	h.bookings.place(c.src, id)
}

// TestCalDAVDeletionSeenInFullListing: while the CalDAV server has
// forgotten the stored sync token (or no longer offers sync-collection),
// the mentor deletes a session's event. The full listing that replaces the
// token cannot report the deletion; the event's absence from it cancels
// the booking as a reported deletion would, once a read of the event
// confirms it is gone. Nothing else is touched: an event far from now, the
// events of bookings already over, a session in another calendar, and an
// event written after the listing was taken. The next sync is incremental.
func TestCalDAVDeletionSeenInFullListing(t *testing.T) {
	t.Parallel()
	for _, tg := range fullListingTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db)
				c := tg.newCal(t)
				h.calendars.add(c.src, c.gw, true)
				ctx := t.Context()
				start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
				c.session(t, h, "b-deleted", start, "")
				c.session(t, h, "b-next-year", start.AddDate(1, 0, 0), "")
				c.session(t, h, "b-completed", start.Add(-96*time.Hour), webhooks.BookingCompleted)
				c.session(t, h, "b-cancelled", start.Add(2*time.Hour), webhooks.BookingCancelled)
				// A session of the mentor's in another calendar: this one
				// never held it.
				h.bookings.add(webhooks.Booking{ID: "b-home", MentorID: "mentor-1", Start: start.Add(4 * time.Hour), End: start.Add(5 * time.Hour)}, "", calendar.EventID("b-home"), "")
				h.bookings.place(webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: "/mentor-1/home/"}, "b-home")

				if res, err := h.svc.SyncCalendar(ctx, c.src); err != nil || res.Cancelled+res.Missing != 0 {
					t.Fatalf("first sync = %+v, %v; want nothing cancelled", res, err)
				}
				for _, id := range []string{"b-deleted", "b-completed", "b-cancelled"} {
					if err := c.direct.DeleteEvent(ctx, id); err != nil {
						t.Fatal(err)
					}
				}
				c.invalidate(t, db)
				// The saga writes a new session's event just after the
				// listing was taken.
				c.tap.set(func() { c.session(t, h, "b-late", start.Add(6*time.Hour), "") }, nil)
				res, err := h.svc.SyncCalendar(ctx, c.src)
				if err != nil || !res.Reset || res.Cancelled != 1 || res.Missing != 1 || res.Refused != 0 {
					t.Fatalf("sync after the token was lost = %+v (%s), %v; want a full resync that cancels one booking", res, res, err)
				}
				calls := h.bookings.Calls()
				if len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-deleted" || calls[0].Actor != "webhook:caldav" ||
					calls[0].Reason != "The mentor deleted the calendar event." {
					t.Fatalf("calls %+v, want b-deleted cancelled as for a reported deletion", calls)
				}
				if want := "synced 1 changes: 1 cancelled, 0 rescheduled; 1 session events missing from the full listing, handled as deleted (full resync)"; res.String() != want {
					t.Errorf("note %q, want %q", res, want)
				}
				res, err = h.svc.SyncCalendar(ctx, c.src)
				if err != nil || res.Reset || res.Cancelled != 0 || len(h.bookings.Calls()) != 1 {
					t.Fatalf("next sync = %+v, %v, calls %+v; want incremental, nothing cancelled", res, err, h.bookings.Calls())
				}
			})
		})
	}
}

// TestCalDAVFullListingNotConfirmed: an event missing from a full listing
// cancels nothing until the calendar confirms it is gone. A read of the
// event that fails fails the sync and keeps the cursor (the next sync lists
// in full again and cancels then); a calendar deleted between the listing
// and the read is a deleted calendar, whose sessions stay booked.
func TestCalDAVFullListingNotConfirmed(t *testing.T) {
	t.Parallel()
	for _, tg := range fullListingTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				ctx := t.Context()
				start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
				setup := func(t *testing.T) (*harness, *fullListingCal) {
					h := newHarness(t, db)
					c := tg.newCal(t)
					h.calendars.add(c.src, c.gw, true)
					c.session(t, h, "b-1", start, "")
					c.session(t, h, "b-2", start.Add(2*time.Hour), "")
					if _, err := h.svc.SyncCalendar(ctx, c.src); err != nil {
						t.Fatal(err)
					}
					if err := c.direct.DeleteEvent(ctx, "b-1"); err != nil {
						t.Fatal(err)
					}
					c.invalidate(t, db)
					return h, c
				}
				t.Run("read fails", func(t *testing.T) {
					h, c := setup(t)
					c.tap.set(nil, func() bool { return true })
					if res, err := h.svc.SyncCalendar(ctx, c.src); err == nil || res.Cancelled != 0 || len(h.bookings.Calls()) != 0 {
						t.Fatalf("sync with the event's read failing = %+v, %v, calls %+v; want an error and nothing cancelled", res, err, h.bookings.Calls())
					}
					c.tap.set(nil, nil)
					res, err := h.svc.SyncCalendar(ctx, c.src)
					if err != nil || !res.Reset || res.Cancelled != 1 || res.Missing != 1 {
						t.Fatalf("sync once the calendar answers = %+v, %v; want the full listing again and b-1 cancelled", res, err)
					}
					if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-1" {
						t.Fatalf("calls %+v, want b-1 cancelled", calls)
					}
				})
				t.Run("calendar deleted", func(t *testing.T) {
					h, c := setup(t)
					var once sync.Once
					c.tap.set(nil, func() bool {
						once.Do(func() {
							if err := c.deleteCollection(); err != nil {
								t.Error(err)
							}
						})
						return false
					})
					res, err := h.svc.SyncCalendar(ctx, c.src)
					if err != nil || !res.Unavailable || res.Cancelled != 0 || len(h.bookings.Calls()) != 0 {
						t.Fatalf("sync with the calendar deleted after the listing = %+v, %v, calls %+v; want unavailable, nothing cancelled", res, err, h.bookings.Calls())
					}
				})
			})
		})
	}
}

// TestCalDAVMissingEventRefusedIsPutBack: an event missing from a full
// listing follows the policy of a reported deletion to the end: while the
// booking cannot be cancelled (the session is under way), the event is put
// back instead.
func TestCalDAVMissingEventRefusedIsPutBack(t *testing.T) {
	t.Parallel()
	for _, tg := range fullListingTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db)
				c := tg.newCal(t)
				h.calendars.add(c.src, c.gw, true)
				ctx := t.Context()
				c.session(t, h, "b-now", time.Now().Truncate(time.Hour).UTC(), webhooks.BookingInProgress)
				if _, err := h.svc.SyncCalendar(ctx, c.src); err != nil {
					t.Fatal(err)
				}
				if err := c.direct.DeleteEvent(ctx, "b-now"); err != nil {
					t.Fatal(err)
				}
				c.invalidate(t, db)
				h.bookings.refuse(false, true)
				res, err := h.svc.SyncCalendar(ctx, c.src)
				if err != nil || res.Refused != 1 || res.Missing != 1 || res.Cancelled != 0 {
					t.Fatalf("sync = %+v (%s), %v; want the refused cancel put back", res, res, err)
				}
				calls := h.bookings.Calls()
				if len(calls) != 2 || calls[0].Op != "cancel" || calls[1].Op != "restore mentor_event" || calls[1].ID != "b-now" {
					t.Fatalf("calls %+v, want a refused cancel, then the mentor's event restored", calls)
				}
			})
		})
	}
}
