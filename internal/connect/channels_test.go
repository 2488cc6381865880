package connect_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestGoogleChannelRenewalKeepsReplaced: a renewal stores the new channel
// before it stops the old one, and keeps the old one, replaced, until it
// expires: its notifications stored before still name alice's calendar
// (LookupChannel), while as a sender it is accepted only until it is
// stopped (a failed stop is tried again on the next run) or expires.
// Choosing another calendar forgets every channel, replaced ones included.
func TestGoogleChannelRenewalKeepsReplaced(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const cal = "mentor@example.com"
		var (
			mu      sync.Mutex
			svc     *connect.Service
			h       *harness
			atStops []error // VerifyChannelToken of the other live channel at each channels.stop
		)
		front := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/channels/stop") {
					body, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(bytes.NewReader(body))
					var req struct{ ID string }
					_ = json.Unmarshal(body, &req)
					var err error = errors.New("no other channel")
					for _, c := range h.google.Channels(cal) {
						if c.ID != req.ID {
							_, err = svc.VerifyChannelToken(r.Context(), c.ID, c.Token, c.ResourceID)
						}
					}
					mu.Lock()
					atStops = append(atStops, err)
					mu.Unlock()
				}
				next.ServeHTTP(w, r)
			})
		}
		h = newHarnessFront(t, db, gcaltest.Options{}, front)
		svc, _ = h.replica(t, nil)
		ctx := t.Context()
		connectGoogle(t, svc, "alice")
		old := h.google.Channels(cal)[0]

		// renew runs a renewal and returns the channel it opened (if any).
		renew := func(before time.Time, want int) gcaltest.ChannelInfo {
			t.Helper()
			known := map[string]bool{}
			for _, c := range h.google.Channels(cal) {
				known[c.ID] = true
			}
			if renewed, err := svc.RenewChannels(ctx, before); err != nil || len(renewed) != want {
				t.Fatalf("RenewChannels = %+v, %v; want %d", renewed, err, want)
			}
			for _, c := range h.google.Channels(cal) {
				if !known[c.ID] {
					return c
				}
			}
			return gcaltest.ChannelInfo{}
		}
		accepted := func(c gcaltest.ChannelInfo) bool {
			_, err := svc.VerifyChannelToken(ctx, c.ID, c.Token, c.ResourceID)
			return err == nil
		}

		// Renewed and stopped.
		renew(time.Now().Add(30*24*time.Hour), 1)
		live := h.google.Channels(cal)
		if len(live) != 1 || live[0].ID == old.ID {
			t.Fatalf("channels at Google: %+v", live)
		}
		cur := live[0]
		mu.Lock()
		if len(atStops) != 1 || atStops[0] != nil {
			t.Fatalf("the new channel at the old one's stop: %v; want stored and accepted", atStops)
		}
		mu.Unlock()
		if ch, err := svc.LookupChannel(ctx, old.ID); err != nil || ch.UserSub != "alice" || ch.CalendarID != cal || ch.ReplacedBy != cur.ID || ch.Stopped.IsZero() {
			t.Fatalf("replaced channel: %+v, %v", ch, err)
		}
		if accepted(old) || !accepted(cur) {
			t.Fatalf("accepted: old (stopped) %v, new %v", accepted(old), accepted(cur))
		}

		// Renewed, but its stop fails: it still delivers, and is accepted
		// until it is stopped on the next run.
		h.google.InjectFault(gcaltest.Fault{Op: "channels.stop", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		next := renew(time.Now().Add(30*24*time.Hour), 1)
		if live := h.google.Channels(cal); len(live) != 2 {
			t.Fatalf("channels at Google after a failed stop: %+v", live)
		}
		if ch, err := svc.LookupChannel(ctx, cur.ID); err != nil || ch.ReplacedBy != next.ID || !ch.Stopped.IsZero() || !accepted(cur) || !accepted(next) {
			t.Fatalf("replaced channel whose stop failed: %+v, %v; accepted %v, new one %v", ch, err, accepted(cur), accepted(next))
		}
		// ... but not past its expiration.
		h.clock.Advance(time.Until(cur.Expiration) + time.Second)
		if accepted(cur) {
			t.Error("replaced channel accepted after its expiration")
		}
		h.clock.Advance(-time.Until(cur.Expiration) - time.Second)
		renew(time.Now(), 0)
		if live := h.google.Channels(cal); len(live) != 1 || live[0].ID != next.ID || accepted(cur) {
			t.Fatalf("after the next run: channels at Google %+v, old one accepted %v", live, accepted(cur))
		}
		if ch, err := svc.LookupChannel(ctx, cur.ID); err != nil || ch.UserSub != "alice" || ch.CalendarID != cal {
			t.Fatalf("replaced channel: %+v, %v", ch, err)
		}

		// Expired replaced channels are forgotten.
		h.clock.Advance(time.Until(cur.Expiration) + time.Second)
		renew(time.Now(), 0)
		h.clock.Advance(-time.Until(cur.Expiration) - time.Second)
		for _, id := range []string{old.ID, cur.ID} {
			if _, err := svc.LookupChannel(ctx, id); !errors.Is(err, connect.ErrUnknownChannel) {
				t.Errorf("expired replaced channel %s: %v", id, err)
			}
		}

		// Another calendar: every channel of alice is stopped and forgotten.
		last := renew(time.Now().Add(30*24*time.Hour), 1)
		if ch, err := svc.LookupChannel(ctx, next.ID); err != nil || ch.ReplacedBy != last.ID {
			t.Fatalf("replaced channel: %+v, %v", ch, err)
		}
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", "work@group.calendar.google.com"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{next.ID, last.ID} {
			if _, err := svc.LookupChannel(ctx, id); !errors.Is(err, connect.ErrUnknownChannel) {
				t.Errorf("channel %s of the previous calendar: %v", id, err)
			}
		}
		if live := h.google.Channels(cal); len(live) != 0 {
			t.Errorf("channels left on the previous calendar: %+v", live)
		}
	})
}
