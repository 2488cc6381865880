package connect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// intake is the gateway's webhook intake (webhooks.Service) over the
// channels of a connect.Service, served over HTTP as the gateway wires it
// (cmd/gateway's connectChannels): the receiver of the simulator's push
// notifications.
type intake struct {
	url string
	reg *prometheus.Registry

	mu  sync.Mutex
	svc *connect.Service
}

func newIntake(t *testing.T, db *store.Store) *intake {
	t.Helper()
	in := &intake{reg: prometheus.NewRegistry()}
	wh, err := webhooks.New(webhooks.Config{
		DB:       db,
		Jobs:     func() webhooks.JobInserter { return nil },
		Secrets:  func(context.Context) (webhooks.Secrets, error) { return webhooks.Secrets{}, nil },
		Channels: intakeChannels{in}, Registerer: in.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status := http.StatusInternalServerError
		if re := (*webhooks.RejectError)(nil); errors.As(err, &re) {
			status = re.Status
		}
		_ = c.NoContent(status)
	}
	wh.Mount(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		srv.Close()
		wh.Close()
	})
	in.url = srv.URL
	return in
}

func (in *intake) service() *connect.Service {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.svc
}

func (in *intake) use(svc *connect.Service) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.svc = svc
}

func (in *intake) rejected() float64 {
	return webhookCounter(in.reg, "gateway_webhook_rejected_total", "google")
}

// webhookCounter sums the intake counter name over the labels of provider.
func webhookCounter(reg *prometheus.Registry, name, provider string) float64 {
	var sum float64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == provider {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

type intakeChannels struct{ in *intake }

func toWebhook(ch connect.Channel, err error) (webhooks.Channel, error) {
	if errors.Is(err, connect.ErrUnknownChannel) {
		return webhooks.Channel{}, webhooks.ErrUnknownChannel
	}
	if errors.Is(err, connect.ErrOrphanedChannel) {
		return webhooks.Channel{}, webhooks.ErrOrphanedChannel
	}
	return webhooks.Channel{ID: ch.ID, ResourceID: ch.ResourceID, CalendarID: ch.CalendarID, UserID: ch.UserSub,
		Expiration: ch.Expiration, ReplacedBy: ch.ReplacedBy}, err
}

func (c intakeChannels) VerifyChannel(ctx context.Context, id, token, resourceID string) (webhooks.Channel, error) {
	return toWebhook(c.in.service().VerifyChannelToken(ctx, id, token, resourceID))
}

func (c intakeChannels) LookupChannel(ctx context.Context, id string) (webhooks.Channel, error) {
	return toWebhook(c.in.service().LookupChannel(ctx, id))
}

func (c intakeChannels) RenewExpiring(context.Context, time.Time) ([]webhooks.Channel, error) {
	return nil, errors.New("not used")
}

// connectGoogle is connectGoogle for a Service whose PublicURL is the intake's.
func (in *intake) connectGoogle(t *testing.T, svc *connect.Service, sub string) {
	t.Helper()
	u, _, err := svc.StartGoogle(t.Context(), sub)
	if err != nil {
		t.Fatal(err)
	}
	state, code := consentTo(t, u, in.url+"/v1/oauth/google/callback")
	if _, _, err := svc.CompleteGoogle(t.Context(), state, code, ""); err != nil {
		t.Fatalf("CompleteGoogle: %v", err)
	}
}

// pushedReplica starts the intake, a Google simulator that pushes
// (AutoPush; front, when not nil, in front of it) and a connect replica
// whose push URL is the intake.
func pushedReplica(t *testing.T, db *store.Store, front func(http.Handler) http.Handler) (*intake, *harness, *connect.Service) {
	t.Helper()
	in := newIntake(t, db)
	h := newHarnessFront(t, db, gcaltest.Options{AutoPush: true}, front)
	svc, _ := h.replica(t, func(c *connect.Config) { c.PublicURL = in.url })
	in.use(svc)
	return in, h, svc
}

// syncAnswers returns the answers to the simulator's "sync" messages.
func syncAnswers(g *gcaltest.Server) []int {
	var out []int
	for _, d := range g.Deliveries() {
		if d.State == gcaltest.StateSync {
			out = append(out, d.Status)
		}
	}
	return out
}

// pendingRows counts the channels stored without a watch answer.
func pendingRows(t *testing.T, db *store.Store) int {
	t.Helper()
	return countChannels(t, db, `WHERE resource_id = ''`)
}

// TestGoogleChannelSyncMessageAccepted: Google sends a channel's "sync"
// message as soon as events.watch created it, before the watch answer
// (the simulator always does, over HTTP to the real intake). Connecting,
// choosing another calendar and renewing store the channel before they
// call events.watch, so the message is acknowledged (202) and nothing is
// counted in gateway_webhook_rejected_total; a failed watch leaves no
// channel stored.
func TestGoogleChannelSyncMessageAccepted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const work = "work@group.calendar.google.com"
		in, h, svc := pushedReplica(t, db, nil)
		ctx := t.Context()
		check := func(step string, syncs int) {
			t.Helper()
			got := syncAnswers(h.google)
			if len(got) != syncs {
				t.Fatalf("%s: sync messages answered %v, want %d", step, got, syncs)
			}
			for _, st := range got {
				if st != http.StatusAccepted {
					t.Fatalf("%s: sync messages answered %v, want 202", step, got)
				}
			}
			if n := in.rejected(); n != 0 {
				t.Fatalf("%s: %v rejected google webhooks", step, n)
			}
			if n := pendingRows(t, db); n != 0 {
				t.Fatalf("%s: %d pending channels left", step, n)
			}
		}

		in.connectGoogle(t, svc, "alice")
		check("connect", 1)
		if live := h.google.Channels("mentor@example.com"); len(live) != 1 {
			t.Fatalf("channels after connect: %+v", live)
		}

		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", work); err != nil {
			t.Fatal(err)
		}
		check("another calendar", 2)
		live := h.google.Channels(work)
		if len(live) != 1 {
			t.Fatalf("channels on %s: %+v", work, live)
		}

		if renewed, err := svc.RenewChannels(ctx, time.Now().Add(60*24*time.Hour)); err != nil || len(renewed) != 1 {
			t.Fatalf("RenewChannels = %+v, %v", renewed, err)
		}
		check("renewal", 3)
		renewed := h.google.Channels(work)
		if len(renewed) != 1 || renewed[0].ID == live[0].ID {
			t.Fatalf("channels after renewal: %+v (before %+v)", renewed, live)
		}

		// A watch that fails leaves nothing behind: not in renewal...
		h.google.InjectFault(gcaltest.Fault{Op: "events.watch", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		if _, err := svc.RenewChannels(ctx, time.Now().Add(60*24*time.Hour)); err == nil {
			t.Fatal("renewal with a failing watch: no error")
		}
		check("failed renewal", 3)
		if ch, err := svc.LookupChannel(ctx, renewed[0].ID); err != nil || ch.ReplacedBy != "" {
			t.Fatalf("channel in use after a failed renewal: %+v, %v", ch, err)
		}
		// ... nor when another calendar is chosen.
		h.google.InjectFault(gcaltest.Fault{Op: "events.watch", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", "mentor@example.com"); err != nil {
			t.Fatal(err)
		}
		check("failed watch on another calendar", 3)
		if n := storedChannels(t, db); n != 0 {
			t.Fatalf("%d channels stored after a failed watch, want none", n)
		}
	})
}

// TestGooglePendingChannel: while events.watch has not answered, the
// stored channel is pending: a renewal run leaves it alone (it is neither
// renewed nor stopped) unless it would have expired, its notifications
// are accepted, and choosing another calendar or disconnecting forgets
// it; a forgotten pending channel that the watch then opens is stopped at
// Google rather than stored.
func TestGooglePendingChannel(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const cal = "mentor@example.com"
		var (
			svc    *connect.Service
			during func(r *http.Request)
			mu     sync.Mutex
		)
		front := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/events/watch") {
					mu.Lock()
					f := during
					during = nil
					mu.Unlock()
					if f != nil {
						f(r)
					}
				}
				next.ServeHTTP(w, r)
			})
		}
		in, h, svc := pushedReplica(t, db, front)
		ctx := t.Context()
		setDuring := func(f func(r *http.Request)) {
			mu.Lock()
			during = f
			mu.Unlock()
		}

		// A renewal run while the first channel is pending.
		var renewErr error
		renewed := -1
		setDuring(func(r *http.Request) {
			got, err := svc.RenewChannels(r.Context(), time.Now().Add(60*24*time.Hour))
			renewed, renewErr = len(got), err
		})
		in.connectGoogle(t, svc, "alice")
		if renewed != 0 || renewErr != nil {
			t.Fatalf("renewal during the watch renewed %d, %v; want the pending channel left alone", renewed, renewErr)
		}
		live := h.google.Channels(cal)
		if len(live) != 1 {
			t.Fatalf("channels after connect: %+v", live)
		}
		if _, err := svc.VerifyChannelToken(ctx, live[0].ID, live[0].Token, live[0].ResourceID); err != nil {
			t.Fatalf("channel after connect: %v", err)
		}
		if got := syncAnswers(h.google); len(got) != 1 || got[0] != http.StatusAccepted || in.rejected() != 0 {
			t.Fatalf("sync answers %v, %v rejected", got, in.rejected())
		}

		// Another calendar chosen while a renewal's channel is pending: the
		// choice forgets it, and the channel its watch opened is stopped.
		const work = "work@group.calendar.google.com"
		var chooseErr error
		setDuring(func(r *http.Request) {
			_, _, chooseErr = svc.ChooseGoogleCalendar(context.WithoutCancel(r.Context()), "alice", work)
		})
		if got, err := svc.RenewChannels(ctx, time.Now().Add(60*24*time.Hour)); err != nil || len(got) != 0 || chooseErr != nil {
			t.Fatalf("renewal during a calendar choice = %+v, %v (choice: %v); want no renewal", got, err, chooseErr)
		}
		if old := h.google.Channels(cal); len(old) != 0 {
			t.Fatalf("channels left on the calendar the connection left: %+v", old)
		}
		live = h.google.Channels(work)
		if len(live) != 1 {
			t.Fatalf("channels on %s: %+v", work, live)
		}
		if ch, err := svc.VerifyChannelToken(ctx, live[0].ID, live[0].Token, live[0].ResourceID); err != nil || ch.CalendarID != work || ch.ResourceID != live[0].ResourceID {
			t.Fatalf("channel on the chosen calendar: %+v, %v", ch, err)
		}
		if n := storedChannels(t, db); n != 1 {
			t.Fatalf("%d channels stored, want the chosen calendar's", n)
		}

		// A pending channel that would have expired by now (its replica
		// stopped during the watch, and no notification came to have it
		// stopped: see TestGoogleOrphanedPendingChannelStopped) is
		// forgotten by a renewal run; were its watch to answer after all,
		// the channel is stopped.
		setDuring(func(r *http.Request) {
			h.clock.Advance(8 * 24 * time.Hour)
			defer h.clock.Advance(-8 * 24 * time.Hour)
			got, err := svc.RenewChannels(context.WithoutCancel(r.Context()), time.Now().Add(60*24*time.Hour))
			renewed, renewErr = len(got), err
		})
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", cal); err != nil {
			t.Fatal(err)
		}
		// The same run opens a channel of its own for the calendar, which
		// has no other: the connection is not left without push.
		if renewed != 1 || renewErr != nil {
			t.Fatalf("renewal with a stale pending channel opened %d, %v; want 1", renewed, renewErr)
		}
		if n := storedChannels(t, db); n != 1 {
			t.Fatalf("%d channels stored after the stale pending one was forgotten, want the renewal's", n)
		}
		live = h.google.Channels(cal)
		if left := h.google.Channels(work); len(live) != 1 || len(left) != 0 {
			t.Fatalf("channels at Google after the stale pending one was forgotten: %+v on %s, %+v on %s; want the renewal's", live, cal, left, work)
		}
		if _, err := svc.VerifyChannelToken(ctx, live[0].ID, live[0].Token, live[0].ResourceID); err != nil {
			t.Fatalf("the renewal's channel: %v", err)
		}

		// A disconnect while a channel is pending forgets it.
		var discErr error
		setDuring(func(r *http.Request) { discErr = svc.DisconnectGoogle(context.WithoutCancel(r.Context()), "alice") })
		_, _, _ = svc.ChooseGoogleCalendar(ctx, "alice", work) // not connected any more when it reads the connection back
		if discErr != nil {
			t.Fatal(discErr)
		}
		if n := storedChannels(t, db); n != 0 {
			t.Fatalf("%d channels stored after the disconnect, want none", n)
		}
		if left := append(h.google.Channels(cal), h.google.Channels(work)...); len(left) != 0 {
			t.Fatalf("channels at Google after the disconnect: %+v", left)
		}
	})
}

func storedChannels(t *testing.T, db *store.Store) int {
	t.Helper()
	return countChannels(t, db, "")
}

// countChannels counts the stored channels that where selects.
func countChannels(t *testing.T, db *store.Store, where string) int {
	t.Helper()
	var n int
	if err := db.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM calendar_channels `+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGoogleOrphanedPendingChannelStopped: a replica that stops during
// events.watch leaves its channel stored pending (no resource id) while
// Google has opened it. While its watch call may still run, its
// notifications are accepted and the channel is left alone; once that call
// is long over, Google's next notification, whose X-Goog-Resource-ID the
// watch answer would have given, has it stopped at Google: the
// notification is acknowledged (202, not counted as rejected), the
// simulator delivers no more on it, and the renewal run forgets it once it
// would have expired. A stop that fails is tried again by the next
// renewal run.
func TestGoogleOrphanedPendingChannelStopped(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const cal = "mentor@example.com"
		in, h, svc := pushedReplica(t, db, nil)
		ctx := t.Context()

		// orphan connects sub and leaves the channel its watch opened as a
		// replica that stopped before the answer arrived leaves it: stored
		// pending, open at Google.
		orphan := func(sub string) gcaltest.ChannelInfo {
			t.Helper()
			in.connectGoogle(t, svc, sub)
			var ch gcaltest.ChannelInfo
			for _, c := range h.google.Channels(cal) {
				if got, err := svc.LookupChannel(ctx, c.ID); err == nil && got.UserSub == sub {
					ch = c
				}
			}
			if ch.ID == "" {
				t.Fatalf("no channel of %s at Google", sub)
			}
			if _, err := db.DB().ExecContext(ctx, db.Rebind(`UPDATE calendar_channels SET resource_id = '', expires_at = 0 WHERE channel_id = ?`), ch.ID); err != nil {
				t.Fatal(err)
			}
			return ch
		}
		live := func(id string) bool {
			return slices.ContainsFunc(h.google.Channels(cal), func(c gcaltest.ChannelInfo) bool { return c.ID == id })
		}
		notify := func(step, id, state string) {
			t.Helper()
			d, err := h.google.PushChannel(ctx, id, state)
			if err != nil || d.Status != http.StatusAccepted {
				t.Fatalf("%s: notification answered %+v, %v; want 202", step, d, err)
			}
		}
		// renew runs a renewal and returns the channels it opened: none
		// renewed (they all expire in a week), but a connection whose only
		// channel is orphaned gets a new one.
		renew := func(step string, want int) []connect.Channel {
			t.Helper()
			got, err := svc.RenewChannels(ctx, h.clock.Now().Add(24*time.Hour))
			if err != nil || len(got) != want {
				t.Fatalf("%s: renewal = %+v, %v; want %d opened", step, got, err, want)
			}
			for _, c := range got {
				if c.UserSub != "alice" || c.CalendarID != cal || !live(c.ID) {
					t.Fatalf("%s: renewal opened %+v, not a live channel of alice's calendar", step, c)
				}
			}
			return got
		}

		ch := orphan("alice")
		// Its watch call may still be running: accepted, left alone.
		h.clock.Advance(5 * time.Minute)
		notify("pending for 5 minutes", ch.ID, gcaltest.StateSync)
		renew("pending for 5 minutes", 0)
		if !live(ch.ID) || pendingRows(t, db) != 1 {
			t.Fatalf("a pending channel whose watch may still run was stopped or forgotten (live %v, %d pending)", live(ch.ID), pendingRows(t, db))
		}
		// An hour on, the renewal run keeps it (its token is needed to
		// tell its notifications from forged ones), and opens a channel
		// for alice's calendar, which has none Google delivers on.
		h.clock.Advance(time.Hour)
		healed := renew("pending for an hour", 1)
		if pendingRows(t, db) != 1 {
			t.Fatal("the orphaned channel was forgotten before it could be stopped")
		}
		notify("on the channel the renewal opened", healed[0].ID, gcaltest.StateSync)
		renew("with a channel in use", 0)
		notify("orphaned", ch.ID, gcaltest.StateExists)
		if live(ch.ID) {
			t.Fatal("the orphaned channel is still open at Google after its notification")
		}
		if _, err := h.google.PushChannel(ctx, ch.ID, gcaltest.StateExists); !errors.Is(err, gcaltest.ErrNotFound) {
			t.Fatalf("the simulator still delivers on the stopped channel: %v", err)
		}
		if n := in.rejected(); n != 0 {
			t.Fatalf("%v notifications rejected; the orphaned channel is ours", n)
		}
		if n := webhookOutcome(in.reg, "orphaned"); n != 1 {
			t.Fatalf("accepted as orphaned: %v, want 1", n)
		}
		if _, err := svc.VerifyChannelToken(ctx, ch.ID, ch.Token, ch.ResourceID); !errors.Is(err, connect.ErrUnknownChannel) {
			t.Fatalf("the stopped channel verifies: %v", err)
		}

		// A stop that fails is tried again by the next renewal run (alice
		// connects again: the stopped channel is forgotten, a new one
		// opened and left pending).
		first := ch
		ch = orphan("alice")
		h.clock.Advance(time.Hour)
		h.google.InjectFault(gcaltest.Fault{Op: "channels.stop", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		notify("orphaned, stop failing", ch.ID, gcaltest.StateExists)
		if !live(ch.ID) {
			t.Fatal("the stop was meant to fail")
		}
		renew("after the failed stop", 1)
		if live(ch.ID) {
			t.Fatal("the renewal run did not stop the orphaned channel again")
		}

		// Forgotten once they would have expired; the channel the last
		// run opened is renewed (and the one it replaces kept until it is
		// forgotten by the next run).
		h.clock.Advance(8 * 24 * time.Hour)
		if _, err := svc.RenewChannels(ctx, h.clock.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{first.ID, ch.ID} {
			if _, err := svc.LookupChannel(ctx, id); !errors.Is(err, connect.ErrUnknownChannel) {
				t.Fatalf("orphaned channel %s after it would have expired: %v", id, err)
			}
		}
		if n := storedChannels(t, db); n != 2 {
			t.Fatalf("%d channels stored after the orphaned ones expired, want the renewed one and its replacement", n)
		}
	})
}

// webhookOutcome is gateway_webhook_accepted_total of Google with outcome.
func webhookOutcome(reg *prometheus.Registry, outcome string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "gateway_webhook_accepted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["provider"] == "google" && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestGoogleWatchFailedAtConnectHealed: when events.watch fails as the user
// connects (Google unavailable), the connection stands without a channel;
// the next renewal run opens one for its calendar, on which Google then
// delivers and the gateway accepts. Runs after that leave it alone.
func TestGoogleWatchFailedAtConnectHealed(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const cal = "mentor@example.com"
		in, h, svc := pushedReplica(t, db, nil)
		ctx := t.Context()

		h.google.InjectFault(gcaltest.Fault{Op: "events.watch", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		in.connectGoogle(t, svc, "alice")
		if live := h.google.Channels(cal); len(live) != 0 || storedChannels(t, db) != 0 {
			t.Fatalf("channels after a failed watch: %+v at Google, %d stored", live, storedChannels(t, db))
		}

		got, err := svc.RenewChannels(ctx, h.clock.Now().Add(24*time.Hour))
		if err != nil || len(got) != 1 || got[0].UserSub != "alice" || got[0].CalendarID != cal {
			t.Fatalf("renewal = %+v, %v; want a channel opened on alice's calendar", got, err)
		}
		live := h.google.Channels(cal)
		if len(live) != 1 || live[0].ID != got[0].ID {
			t.Fatalf("channels at Google: %+v, want the renewal's %s", live, got[0].ID)
		}
		if d, err := h.google.PushChannel(ctx, live[0].ID, gcaltest.StateSync); err != nil || d.Status != http.StatusAccepted {
			t.Fatalf("notification on the opened channel answered %+v, %v; want 202", d, err)
		}
		if in.rejected() != 0 {
			t.Fatalf("%v notifications rejected", in.rejected())
		}
		if got, err := svc.RenewChannels(ctx, h.clock.Now().Add(24*time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("second renewal = %+v, %v; want nothing opened", got, err)
		}

		// A disconnected user's calendar is not watched.
		if err := svc.DisconnectGoogle(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if got, err := svc.RenewChannels(ctx, h.clock.Now().Add(24*time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("renewal after the disconnect = %+v, %v; want nothing opened", got, err)
		}
		if live := h.google.Channels(cal); len(live) != 0 {
			t.Fatalf("channels at Google after the disconnect: %+v", live)
		}
	})
}
