package connect_test

import (
	"context"
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

// hookedHarness is a harness whose Google runs hook, once armed, at the
// first request for which match reports true, before it is served; the
// hook is disarmed before it runs, so the requests it makes are served
// as they come.
type hookedHarness struct {
	*harness
	mu   sync.Mutex
	hook func(r *http.Request)
}

func newHookedHarness(t *testing.T, db *store.Store, match func(r *http.Request) bool) *hookedHarness {
	t.Helper()
	hh := &hookedHarness{}
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				hh.mu.Lock()
				f := hh.hook
				hh.hook = nil
				hh.mu.Unlock()
				if f != nil {
					f(r)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	hh.harness = newHarnessFront(t, db, gcaltest.Options{}, front)
	return hh
}

func (hh *hookedHarness) arm(f func(r *http.Request)) {
	hh.mu.Lock()
	hh.hook = f
	hh.mu.Unlock()
}

func isStop(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/channels/stop")
}

// TestGoogleRenewalDuringForget: a renewal run (another replica) that
// replaces a channel while a reconnect or a disconnect is stopping it
// (between the moment that listed the user's channels and the one that
// forgets them) leaves no channel of its own behind: the channel the
// renewal opened is stopped and forgotten with the one it replaced, so a
// reconnect ends with one channel on the calendar and a disconnect with
// none, at Google as in the store.
func TestGoogleRenewalDuringForget(t *testing.T) {
	t.Parallel()
	const cal = "mentor@example.com"
	for _, tc := range []struct {
		name string
		// forget stops and forgets alice's channels, and says how many
		// must be left at Google and in the store.
		forget func(t *testing.T, svc *connect.Service) int
	}{
		{"reconnect", func(t *testing.T, svc *connect.Service) int {
			connectGoogle(t, svc, "alice")
			return 1
		}},
		{"disconnect", func(t *testing.T, svc *connect.Service) int {
			if err := svc.DisconnectGoogle(t.Context(), "alice"); err != nil {
				t.Fatal(err)
			}
			return 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				hh := newHookedHarness(t, db, isStop)
				svc, _ := hh.replica(t, nil)
				other, _ := hh.replica(t, nil)
				connectGoogle(t, svc, "alice")
				if live := hh.google.Channels(cal); len(live) != 1 {
					t.Fatalf("channels after connect: %+v", live)
				}
				var (
					renewed []connect.Channel
					err     error
				)
				hh.arm(func(r *http.Request) {
					renewed, err = other.RenewChannels(context.WithoutCancel(r.Context()), time.Now().Add(60*24*time.Hour))
				})
				want := tc.forget(t, svc)
				if err != nil || len(renewed) != 1 {
					t.Fatalf("renewal during the forget = %+v, %v; want the channel renewed", renewed, err)
				}
				if live := hh.google.Channels(cal); len(live) != want {
					t.Errorf("%d channels at Google, want %d", len(live), want)
				}
				if n := storedChannels(t, db); n != want {
					t.Errorf("%d channels stored, want %d", n, want)
				}
				if live := hh.google.Channels(cal); want == 1 && len(live) == 1 {
					if _, err := svc.VerifyChannelToken(t.Context(), live[0].ID, live[0].Token, live[0].ResourceID); err != nil {
						t.Errorf("the channel left at Google: %v", err)
					}
				}
			})
		})
	}
}

// TestGoogleCalendarChoicesRace: two calendar choices of one user on two
// replicas, the second made while the first is stopping the channel of the
// calendar it leaves: the connection ends on the second choice, and so does
// its push channel. The first choice's channel, opened on a calendar the
// connection no longer uses, is stopped rather than stored.
func TestGoogleCalendarChoicesRace(t *testing.T) {
	t.Parallel()
	const (
		cal  = "mentor@example.com"
		work = "work@group.calendar.google.com"
	)
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		hh := newHookedHarness(t, db, isStop)
		svc, _ := hh.replica(t, nil)
		other, _ := hh.replica(t, nil)
		connectGoogle(t, svc, "alice")
		var err error
		hh.arm(func(r *http.Request) {
			_, _, err = other.ChooseGoogleCalendar(context.WithoutCancel(r.Context()), "alice", cal)
		})
		if _, _, err := svc.ChooseGoogleCalendar(t.Context(), "alice", work); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("second choice: %v", err)
		}
		infos, err := svc.List(t.Context(), "alice")
		if err != nil || len(infos) != 1 || infos[0].CalendarID != cal {
			t.Fatalf("connections after both choices: %+v, %v; want one on %s", infos, err, cal)
		}
		if live := hh.google.Channels(work); len(live) != 0 {
			t.Errorf("%d channels at Google on %s, which the connection left", len(live), work)
		}
		live := hh.google.Channels(cal)
		if len(live) != 1 {
			t.Fatalf("%d channels at Google on %s, want 1", len(live), cal)
		}
		if _, err := svc.VerifyChannelToken(t.Context(), live[0].ID, live[0].Token, live[0].ResourceID); err != nil {
			t.Errorf("the channel on the chosen calendar: %v", err)
		}
		if n := storedChannels(t, db); n != 1 {
			t.Errorf("%d channels stored, want 1", n)
		}
	})
}
