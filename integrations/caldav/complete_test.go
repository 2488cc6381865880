package caldav_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/calendar/calendartest"
)

// completeTarget is a server and a way of listing (sync-collection or the
// etag listing) under test; lose makes the server refuse the tokens it
// handed out (nil: the client does not use tokens).
type completeTarget struct {
	name string
	open func(t *testing.T) (c *caldav.Client, raw *rawCal, lose func(t *testing.T))
}

func completeTargets(t *testing.T) []completeTarget {
	srv := radicale.Run(t)
	var n atomic.Int64
	inMemory := func(etags bool) func(t *testing.T) (*caldav.Client, *rawCal, func(t *testing.T)) {
		return func(t *testing.T) (*caldav.Client, *rawCal, func(t *testing.T)) {
			ts, sim, calURL := memServer(t, caldavtest.Options{DisableSyncCollection: etags})
			return newClient(t, ts.Client(), calURL, "alice", "alice-secret"),
				&rawCal{calURL: calURL, user: "alice", pass: "alice-secret", hc: ts.Client()},
				func(*testing.T) { sim.ExpireSyncTokens() }
		}
	}
	onRadicale := func(opts ...caldav.Option) func(t *testing.T) (*caldav.Client, *rawCal, func(t *testing.T)) {
		return func(t *testing.T) (*caldav.Client, *rawCal, func(t *testing.T)) {
			calURL := radicale.MakeCalendar(t, srv.BaseURL, srv.User, srv.Pass, fmt.Sprintf("complete%d", n.Add(1)))
			c, err := caldav.New(calURL, srv.User, srv.Pass, append(opts, caldav.WithHTTPClient(ownTransport))...)
			if err != nil {
				t.Fatal(err)
			}
			raw := &rawCal{calURL: calURL, user: srv.User, pass: srv.Pass, hc: ownTransport}
			// Radicale forgets tokens (and the deletions they could
			// report) older than max_sync_token_age once a sync makes a
			// new token: a month passes, another client syncs.
			lose := func(t *testing.T) {
				srv.AgeSyncState(t, calURL, 31*24*time.Hour)
				other, err := caldav.New(calURL, srv.User, srv.Pass, caldav.WithHTTPClient(ownTransport))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := other.Changes(t.Context(), ""); err != nil {
					t.Fatal(err)
				}
			}
			return c, raw, lose
		}
	}
	return []completeTarget{
		{"go-webdav/sync-collection", inMemory(false)},
		{"go-webdav/etag-listing", inMemory(true)},
		{"radicale/sync-collection", onRadicale()},
		{"radicale/etag-listing", onRadicale(caldav.WithETagListing())},
	}
}

func liveIDs(cs calendar.ChangeSet) []string {
	var out []string
	for _, ch := range cs.Changes {
		if !ch.Deleted {
			out = append(out, ch.ID)
		}
	}
	slices.Sort(out)
	return out
}

// TestChangesCompleteListing: a listing of the whole collection says so
// (Complete) and names every object still there (Present), so that a
// caller can tell its events that are gone without a reported deletion.
// A sync-collection delta is not complete; a listing from a token the
// server refused is, and names no event deleted since, even where the
// server no longer reports that deletion.
func TestChangesCompleteListing(t *testing.T) {
	t.Parallel()
	for _, tg := range completeTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c, raw, lose := tg.open(t)
			start := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
			for i, id := range []string{"kept", "deleted"} {
				at := start.Add(time.Duration(i) * 2 * time.Hour)
				if _, err := c.CreateEvent(ctx, calendar.Event{BookingID: id, Summary: "s", Start: at, End: at.Add(time.Hour), TimeZone: "UTC"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.AddForeign(ctx, foreignEvent("dentist", start.AddDate(1, 0, 0))); err != nil {
				t.Fatal(err)
			}
			all := []string{calendar.EventID("deleted"), calendar.EventID("kept"), "dentist"}
			slices.Sort(all)
			first, err := c.Changes(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if !first.Complete || !slices.Equal(first.Present, all) || !slices.Equal(liveIDs(first), all) {
				t.Fatalf("first listing: complete=%v present=%v changes=%v; want complete with %v", first.Complete, first.Present, liveIDs(first), all)
			}

			if err := c.DeleteEvent(ctx, "deleted"); err != nil {
				t.Fatal(err)
			}
			want := []string{calendar.EventID("kept"), "dentist"}
			slices.Sort(want)
			delta, err := c.Changes(ctx, first.Cursor)
			if err != nil {
				t.Fatal(err)
			}
			if len(delta.Changes) != 1 || !delta.Changes[0].Deleted || delta.Changes[0].ID != calendar.EventID("deleted") {
				t.Fatalf("changes after the delete: %+v, want the deletion", delta.Changes)
			}
			if etags := delta.Complete; etags && !slices.Equal(delta.Present, want) {
				t.Fatalf("etag listing after the delete: present=%v, want %v", delta.Present, want)
			}
			if tg.name == "go-webdav/sync-collection" || tg.name == "radicale/sync-collection" {
				if delta.Complete || delta.Present != nil {
					t.Fatalf("a sync-collection delta: complete=%v present=%v; want neither", delta.Complete, delta.Present)
				}
			}

			// The server forgets the token of the first listing. (The
			// session is deleted and written again first: Radicale cleans
			// up only when a sync meets a state it has no token for.)
			if err := c.DeleteEvent(ctx, "kept"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateEvent(ctx, calendar.Event{BookingID: "kept", Summary: "s", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
				t.Fatal(err)
			}
			lose(t)
			cursor := first.Cursor
			if tg.name == "go-webdav/etag-listing" || tg.name == "radicale/etag-listing" {
				cursor = "s1:http://radicale.org/ns/sync/0000000000000000000000000000000000000000" // of the days it used sync-collection
			}
			full, err := c.Changes(ctx, cursor)
			if err != nil {
				t.Fatal(err)
			}
			if !full.Reset || !full.Complete || !slices.Equal(full.Present, want) || !slices.Equal(liveIDs(full), want) {
				t.Fatalf("listing after the token was lost: reset=%v complete=%v present=%v changes=%+v; want a complete listing of %v",
					full.Reset, full.Complete, full.Present, full.Changes, want)
			}
			for _, ch := range full.Changes {
				if ch.Deleted {
					t.Fatalf("listing after the token was lost reports deletion %+v", ch)
				}
			}
		})
	}
}

// foreignEvent is an hour of busy time at start that the gateway did not write.
func foreignEvent(id string, start time.Time) calendartest.ForeignEvent {
	return calendartest.ForeignEvent{ID: id, Summary: "Dentist", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}
}

// TestChangesTruncatedListing: a server that answers a sync-collection in
// pages (507 for the collection, RFC 6578 section 3.6) is asked for the
// rest, and the pages make one complete listing. One still truncated when
// the client stops asking is not complete: what it did not list may still
// be there. (Radicale never truncates: the in-memory server only.)
func TestChangesTruncatedListing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		limit    int
		events   int
		complete bool
	}{
		{"paged", 2, 5, true},
		{"still truncated after the last round", 1, 52, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ts, _, calURL := memServer(t, caldavtest.Options{SyncLimit: tc.limit})
			c := newClient(t, ts.Client(), calURL, "alice", "alice-secret")
			start := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
			var ids []string
			for i := range tc.events {
				id := fmt.Sprintf("b%02d", i)
				at := start.Add(time.Duration(i) * time.Hour)
				if _, err := c.CreateEvent(ctx, calendar.Event{BookingID: id, Summary: "s", Start: at, End: at.Add(time.Hour), TimeZone: "UTC"}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, calendar.EventID(id))
			}
			slices.Sort(ids)
			cs, err := c.Changes(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if cs.Complete != tc.complete {
				t.Fatalf("complete=%v, want %v (present %d of %d)", cs.Complete, tc.complete, len(cs.Present), tc.events)
			}
			if tc.complete && !slices.Equal(cs.Present, ids) {
				t.Fatalf("present %v, want %v", cs.Present, ids)
			}
			if !tc.complete && cs.Present != nil {
				t.Fatalf("an incomplete listing names what is present: %v", cs.Present)
			}
		})
	}
}
