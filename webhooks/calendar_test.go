package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

const mentorCal = gcaltest.DefaultUser // the primary calendar's id is the email

func newGoogle(t *testing.T) (*gcaltest.Server, *gcal.Client) {
	t.Helper()
	return newGoogleWith(t, gcaltest.Options{})
}

// newGoogleWith is newGoogle with the simulator's options (http:// push
// addresses are always allowed).
func newGoogleWith(t *testing.T, opts gcaltest.Options) (*gcaltest.Server, *gcal.Client) {
	t.Helper()
	opts.AllowHTTPPush = true
	sim := gcaltest.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	tok, err := sim.IssueToken(gcaltest.DefaultClientID, gcaltest.DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	hc := outbound.NewClient(gcal.OutboundConfig(outbound.Config{BreakerFailures: -1}))
	c, err := gcal.New(t.Context(), oauth2.StaticTokenSource(tok), gcal.WithHTTPClient(hc), gcal.WithBaseURL(gcaltest.APIBase(ts.URL)), gcal.WithCalendar(mentorCal))
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

// mentorSession puts booking id's session, an hour two days from now, in
// mentor-1's Google calendar gc and in h: the booking, and the calendar as
// a source with push. It returns the event, its start and the source.
func (h *harness) mentorSession(t *testing.T, gc *gcal.Client, id string) (calendar.Event, time.Time, webhooks.Source) {
	t.Helper()
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	ev, err := gc.CreateEvent(t.Context(), calendar.Event{BookingID: id, Summary: "Session", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	h.bookings.add(webhooks.Booking{ID: id, MentorID: "mentor-1", Start: start, End: start.Add(time.Hour)}, "", ev.ID, "")
	src := webhooks.Source{Provider: webhooks.SourceGoogle, UserID: "mentor-1", CalendarID: mentorCal}
	h.calendars.add(src, gc, false)
	return ev, start, src
}

func pushHeaders(ch gcaltest.ChannelInfo, token, state string, n int) map[string]string {
	return map[string]string{"X-Goog-Channel-ID": ch.ID, "X-Goog-Channel-Token": token, "X-Goog-Resource-ID": ch.ResourceID,
		"X-Goog-Resource-State": state, "X-Goog-Message-Number": strconv.Itoa(n)}
}

func TestGooglePushSync(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		ev, start, _ := h.mentorSession(t, gc, "b-g")
		wc := acc.connectMentor(t, 0)
		push := func(state string) gcaltest.Delivery {
			t.Helper()
			d, err := sim.PushChannel(ctx, wc.ID, state)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		if d := push(gcaltest.StateSync); d.Status != http.StatusAccepted {
			t.Fatalf("sync: %d", d.Status)
		}
		if n := len(h.deliveries(t, webhooks.ProviderGoogle)); n != 0 {
			t.Fatalf("sync stored %d deliveries", n)
		}
		// not_exists (the watched resource is gone) is acknowledged too,
		// and neither stored nor synced.
		if d := push(gcaltest.StateNotExists); d.Status != http.StatusAccepted {
			t.Fatalf("not_exists: %d", d.Status)
		}
		if n := len(h.deliveries(t, webhooks.ProviderGoogle)); n != 0 || len(h.bookings.Calls()) != 0 {
			t.Fatalf("not_exists stored %d deliveries, calls %+v", n, h.bookings.Calls())
		}
		if n := h.counter("gateway_webhook_accepted_total", map[string]string{"provider": webhooks.ProviderGoogle, "outcome": "ignored"}); n != 2 {
			t.Fatalf("accepted{outcome=ignored} = %v after sync and not_exists, want 2", n)
		}
		// The mentor drags the event in Google Calendar.
		moved := start.Add(3 * time.Hour)
		if err := sim.MoveEvent(mentorCal, ev.ID, moved, moved.Add(90*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d := push(gcaltest.StateExists); d.Status != http.StatusAccepted {
			t.Fatalf("exists: %d", d.Status)
		}
		ds := h.waitAllDone(t, webhooks.ProviderGoogle, 1)
		calls := h.bookings.Calls()
		if len(calls) != 1 || calls[0].Op != "reschedule" || !calls[0].Start.Equal(moved) || !calls[0].End.Equal(moved.Add(90*time.Minute)) ||
			calls[0].Actor != "webhook:google" || calls[0].Changed != webhooks.ArtefactMentorEvent || ds[0].BookingID != "b-g" {
			t.Fatalf("calls %+v, delivery %+v", calls, ds[0])
		}
		// Nothing changed since: the next notification syncs incrementally and does nothing.
		push(gcaltest.StateExists)
		ds = h.waitAllDone(t, webhooks.ProviderGoogle, 2)
		if ds[0].Note != "synced 0 changes: 0 cancelled, 0 rescheduled" || len(h.bookings.Calls()) != 1 {
			t.Fatalf("incremental sync: %+v", ds[0])
		}
		// The mentor deletes the event.
		if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
			t.Fatal(err)
		}
		push(gcaltest.StateExists)
		h.waitAllDone(t, webhooks.ProviderGoogle, 3)
		calls = h.bookings.Calls()
		if len(calls) != 2 || calls[1].Op != "cancel" || calls[1].ID != "b-g" {
			t.Fatalf("calls %+v", calls)
		}

		// Rejections and duplicates, as raw requests.
		info := sim.Channels(mentorCal)[0]
		tests := []struct {
			name   string
			hdr    map[string]string
			status int
			reason string
		}{
			// The channel store does not say whether the channel or the
			// token was wrong.
			{"wrong token", pushHeaders(info, wc.Token+"x", "exists", 50), 401, "unknown_channel"},
			{"unknown channel", pushHeaders(gcaltest.ChannelInfo{ID: "nope", ResourceID: info.ResourceID}, wc.Token, "exists", 50), 401, "unknown_channel"},
			{"missing token", pushHeaders(info, "", "exists", 50), 401, "missing_header"},
			{"wrong resource", pushHeaders(gcaltest.ChannelInfo{ID: info.ID, ResourceID: "other"}, wc.Token, "exists", 50), 401, "unknown_channel"},
			{"bad state", pushHeaders(info, wc.Token, "weird", 50), 400, "bad_state"},
		}
		for _, tt := range tests {
			before := h.rejected(webhooks.ProviderGoogle, tt.reason)
			code, hdr, b := h.post(t, "/webhooks/google", nil, tt.hdr)
			if code != tt.status {
				t.Errorf("%s: %d want %d %s", tt.name, code, tt.status, b)
				continue
			}
			problem(t, hdr, b)
			if h.rejected(webhooks.ProviderGoogle, tt.reason) != before+1 {
				t.Errorf("%s: reason %s not counted", tt.name, tt.reason)
			}
		}
		var a1, a2 webhooks.Ack
		_, _, b1 := h.post(t, "/webhooks/google", nil, pushHeaders(info, wc.Token, "exists", 60))
		_, _, b2 := h.post(t, "/webhooks/google", nil, pushHeaders(info, wc.Token, "exists", 60))
		if json.Unmarshal(b1, &a1) != nil || json.Unmarshal(b2, &a2) != nil || a1.Status != "accepted" || a2.Status != "duplicate" || a1.ID != a2.ID {
			t.Fatalf("same message twice: %s / %s", b1, b2)
		}
		// The same number spelt with a leading zero is the same message.
		zero := pushHeaders(info, wc.Token, "exists", 60)
		zero["X-Goog-Message-Number"] = "060"
		var a3 webhooks.Ack
		if _, _, b3 := h.post(t, "/webhooks/google", nil, zero); json.Unmarshal(b3, &a3) != nil || a3.Status != "duplicate" || a3.ID != a1.ID {
			t.Fatalf("message 060 after 60: %s", b3)
		}
		h.waitAllDone(t, webhooks.ProviderGoogle, 4)
		if len(h.bookings.Calls()) != 2 {
			t.Fatalf("calls %+v", h.bookings.Calls())
		}
	})
}

// TestGoogleMoveRefused: the mentor drags the event to a time the booking
// refuses, later deletes it while the booking cannot be cancelled. The
// booking stays, its event is put back (Restore), the sync result counts
// the refusal, and the change is not read again.
func TestGoogleMoveRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	sim, gc := newGoogle(t)
	ctx := t.Context()
	ev, start, src := h.mentorSession(t, gc, "b-r")
	h.bookings.refuse(true, false)
	if _, err := h.svc.SyncCalendar(ctx, src); err != nil { // the initial cursor
		t.Fatal(err)
	}
	moved := start.Add(2 * time.Hour)
	if err := sim.MoveEvent(mentorCal, ev.ID, moved, moved.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.SyncCalendar(ctx, src)
	if err != nil || res.Refused != 1 || res.Rescheduled != 0 || res.String() != "synced 1 changes: 0 cancelled, 0 rescheduled, 1 refused and put back" {
		t.Fatalf("sync = %+v (%s), %v", res, res, err)
	}
	calls := h.bookings.Calls()
	if len(calls) != 2 || calls[0].Op != "reschedule" || calls[1].Op != "restore mentor_event" || calls[1].ID != "b-r" || calls[1].Actor != "webhook:google" ||
		calls[1].Reason != "The mentor moved the calendar event to a time the booking cannot take: the mentor is not free at that time. It was put back." {
		t.Fatalf("calls %+v", calls)
	}
	// Handled: the cursor moved on, so the refused change is not read again.
	if res, err := h.svc.SyncCalendar(ctx, src); err != nil || res.Changes != 0 || len(h.bookings.Calls()) != 2 {
		t.Fatalf("next sync = %+v, %v; calls %+v", res, err, h.bookings.Calls())
	}
	// Deleting the event of a booking that cannot be cancelled (under way)
	// is refused the same way: the event is put back.
	h.bookings.refuse(true, true)
	if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
		t.Fatal(err)
	}
	res, err = h.svc.SyncCalendar(ctx, src)
	calls = h.bookings.Calls()
	if err != nil || res.Refused != 1 || res.Cancelled != 0 || len(calls) != 4 || calls[2].Op != "cancel" || calls[3].Op != "restore mentor_event" ||
		calls[3].Reason != "The mentor deleted the calendar event while the booking cannot be cancelled: the session is under way. It was put back." {
		t.Fatalf("sync after the delete = %+v, %v; calls %+v", res, err, calls)
	}
}

// Only the mentor's calendar moves or cancels a booking. In the candidate's
// calendar a moved copy of the session's event is put back (it would show
// the candidate a time the session does not take place at) and a deleted
// copy is left deleted; a change in anyone else's calendar does nothing.
func TestGoogleCandidateCalendar(t *testing.T) {
	t.Parallel()
	move := func(sim *gcaltest.Server, id string, start time.Time) error {
		return sim.MoveEvent(mentorCal, id, start.Add(2*time.Hour), start.Add(3*time.Hour))
	}
	del := func(sim *gcaltest.Server, id string, _ time.Time) error { return sim.DeleteEvent(mentorCal, id) }
	cases := []struct {
		name    string
		user    string
		change  func(sim *gcaltest.Server, id string, start time.Time) error
		refused int
		calls   []string
	}{
		{"candidate moves their copy", "candidate-1", move, 1, []string{"restore candidate_event"}},
		{"candidate deletes their copy", "candidate-1", del, 0, nil},
		{"another user moves a copy", "someone-else", move, 0, nil},
	}
	for _, tc := range cases {
		// A database each: the calendar's sync cursor is kept per user and
		// calendar, and every case has a simulator of its own.
		t.Run(tc.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db)
				sim, gc := newGoogle(t)
				ctx := t.Context()
				const id = "b-c"
				start := time.Now().Add(24 * time.Hour).Truncate(time.Hour).UTC()
				ev, err := gc.CreateEvent(ctx, calendar.Event{BookingID: id, Summary: "S", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"})
				if err != nil {
					t.Fatal(err)
				}
				h.bookings.add(webhooks.Booking{ID: id, MentorID: "mentor-1", CandidateID: "candidate-1", Start: start, End: start.Add(time.Hour)}, "", "", "")
				src := webhooks.Source{Provider: webhooks.SourceGoogle, UserID: tc.user, CalendarID: mentorCal}
				h.calendars.add(src, gc, false)
				// The first sync reads the event as the gateway wrote it.
				if res, err := h.svc.SyncCalendar(ctx, src); err != nil || res.Changes != 1 || len(h.bookings.Calls()) != 0 {
					t.Fatalf("first sync %+v %v, calls %+v", res, err, h.bookings.Calls())
				}
				if err := tc.change(sim, ev.ID, start); err != nil {
					t.Fatal(err)
				}
				res, err := h.svc.SyncCalendar(ctx, src)
				if err != nil || res.Changes != 1 || res.Refused != tc.refused || res.Cancelled != 0 || res.Rescheduled != 0 {
					t.Fatalf("sync %+v (%s), %v", res, res, err)
				}
				calls := h.bookings.Calls()
				var ops []string
				for _, c := range calls {
					ops = append(ops, c.Op)
				}
				if !slices.Equal(ops, tc.calls) {
					t.Fatalf("calls %+v, want ops %v", calls, tc.calls)
				}
				if len(calls) > 0 && (calls[0].ID != id || calls[0].Actor != "webhook:google" || calls[0].Reason !=
					"The candidate moved their copy of the calendar event; only the mentor's calendar or a reschedule moves the session. It was put back.") {
					t.Fatalf("restore call %+v", calls[0])
				}
			})
		})
	}
}

// connectExpiring connects mentor-1 with a channel that lasts an hour
// (due for renewal) and makes h's channel store a replica whose renewals
// open channels of connect's default lifetime; it returns the channel and
// that replica.
func (a *googleAccount) connectExpiring(t *testing.T) (gcaltest.ChannelInfo, *connect.Service) {
	t.Helper()
	old := a.connectMentor(t, time.Hour)
	svc := a.replica(t, nil)
	a.h.channels.use(svc)
	return old, svc
}

// pushOK has the simulator notify channel id with state and fails unless
// the gateway answered 202.
func pushOK(t *testing.T, sim *gcaltest.Server, id, state string) {
	t.Helper()
	d, err := sim.PushChannel(t.Context(), id, state)
	if err != nil || d.Status != http.StatusAccepted {
		t.Fatalf("push %s to %s: %+v, %v", state, id, d, err)
	}
}

func TestGoogleChannelRenewal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		h.calendars.add(webhooks.Source{Provider: webhooks.SourceGoogle, UserID: "mentor-1", CalendarID: mentorCal}, gc, false)
		short, _ := acc.connectExpiring(t)
		n, err := h.svc.RenewChannels(ctx)
		if err != nil || n != 1 {
			t.Fatalf("renewed %d, %v", n, err)
		}
		live := sim.Channels(mentorCal)
		if len(live) != 1 {
			t.Fatalf("live channels %+v", live)
		}
		for _, c := range live {
			if c.ID == short.ID {
				t.Fatal("the expiring channel was not stopped")
			}
			if ch, err := h.channels.LookupChannel(ctx, c.ID); err != nil || ch.ReplacedBy != "" {
				t.Fatalf("channel %s: %+v, %v", c.ID, ch, err)
			}
			// The renewed channel's notifications are accepted.
			pushOK(t, sim, c.ID, gcaltest.StateSync)
		}
		// The old channel is kept, replaced, for what it delivered before;
		// stopped, it is no longer accepted as a sender.
		if ch, err := h.channels.LookupChannel(ctx, short.ID); err != nil || ch.ReplacedBy == "" || ch.ReplacedBy == short.ID {
			t.Fatalf("old channel after renewal: %+v, %v", ch, err)
		}
		before := h.rejected(webhooks.ProviderGoogle, "unknown_channel")
		info := gcaltest.ChannelInfo{ID: short.ID, ResourceID: short.ResourceID}
		if code, _, b := h.post(t, "/webhooks/google", nil, pushHeaders(info, short.Token, gcaltest.StateExists, 7)); code != http.StatusUnauthorized ||
			h.rejected(webhooks.ProviderGoogle, "unknown_channel") != before+1 {
			t.Fatalf("notification on the stopped channel: %d %s", code, b)
		}
		// Renewing again renews nothing: a replaced channel is not renewed,
		// nor one that does not expire soon.
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 0 || len(sim.Channels(mentorCal)) != 1 {
			t.Fatalf("second renewal: %d, %v; channels %+v", n, err, sim.Channels(mentorCal))
		}
	})
}

// heldChannels makes the processing of Google notifications wait, before
// it looks up their channel, while a hold is on: a notification stored
// before its channel is renewed or forgotten and processed after.
type heldChannels struct {
	webhooks.Channels
	mu      sync.Mutex
	held    chan struct{}
	release chan struct{}
}

func (c *heldChannels) LookupChannel(ctx context.Context, id string) (webhooks.Channel, error) {
	c.mu.Lock()
	held, release := c.held, c.release
	c.mu.Unlock()
	if release != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
	}
	return c.Channels.LookupChannel(ctx, id)
}

// hold makes processing wait; it returns once a notification's processing
// is waiting, and the returned func lets it go on.
func (c *heldChannels) hold(t *testing.T, notify func()) (release func()) {
	t.Helper()
	c.mu.Lock()
	c.held, c.release = make(chan struct{}, 1), make(chan struct{})
	held, r := c.held, c.release
	c.mu.Unlock()
	notify()
	select {
	case <-held:
	case <-time.After(15 * time.Second):
		t.Fatal("no notification was processed")
	}
	return sync.OnceFunc(func() { close(r) })
}

// TestGoogleNotificationProcessedAfterRenewal: the mentor moves the
// session's event, Google notifies the channel, and the channel is renewed
// before the notification is processed. Its processing still syncs the
// calendar and reschedules the booking; the new channel's notifications
// sync on from the same cursor. Once the user disconnects (the channels
// are stopped and forgotten), a notification stored before is processed
// without a sync, and both channels are refused.
func TestGoogleNotificationProcessedAfterRenewal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		held := &heldChannels{}
		h := newHarness(t, db, func(cfg *webhooks.Config) {
			held.Channels = cfg.Channels
			cfg.Channels = held
		})
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		ev, start, src := h.mentorSession(t, gc, "b-n")
		old, svc := acc.connectExpiring(t)

		moved := start.Add(2 * time.Hour)
		release := held.hold(t, func() {
			if err := sim.MoveEvent(mentorCal, ev.ID, moved, moved.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			pushOK(t, sim, old.ID, gcaltest.StateExists)
		})
		// The renewal's own sync of the calendar fails: the notification
		// is what brings the change.
		sim.InjectFault(gcaltest.Fault{Op: "events.list", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		if n, err := h.svc.RenewChannels(ctx); err == nil || n != 1 {
			t.Fatalf("renewed %d, %v; want 1 and the sync's error", n, err)
		}
		live := sim.Channels(mentorCal)
		if len(live) != 1 || live[0].ID == old.ID {
			t.Fatalf("channels at Google after the renewal: %+v", live)
		}
		release()
		ds := h.waitAllDone(t, webhooks.ProviderGoogle, 1)
		calls := h.bookings.Calls()
		if len(calls) != 1 || calls[0].Op != "reschedule" || calls[0].ID != "b-n" || !calls[0].Start.Equal(moved) || ds[0].BookingID != "b-n" ||
			ds[0].Note != "synced 1 changes: 0 cancelled, 1 rescheduled (notified on a channel renewed since)" {
			t.Fatalf("notification processed after the renewal: %+v; calls %+v", ds[0], calls)
		}

		// The new channel carries on from the same cursor.
		if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
			t.Fatal(err)
		}
		pushOK(t, sim, live[0].ID, gcaltest.StateExists)
		ds = h.waitAllDone(t, webhooks.ProviderGoogle, 2)
		if calls := h.bookings.Calls(); len(calls) != 2 || calls[1].Op != "cancel" || ds[0].Note != "synced 1 changes: 1 cancelled, 0 rescheduled" {
			t.Fatalf("notification on the new channel: %+v; calls %+v", ds[0], calls)
		}

		// The user disconnects while a notification waits for processing.
		release = held.hold(t, func() { pushOK(t, sim, live[0].ID, gcaltest.StateExists) })
		if err := svc.DisconnectGoogle(ctx, "mentor-1"); err != nil {
			t.Fatal(err)
		}
		if left := sim.Channels(mentorCal); len(left) != 0 {
			t.Fatalf("channels at Google after the disconnect: %+v", left)
		}
		h.calendars.unavailable(src)
		release()
		ds = h.waitAllDone(t, webhooks.ProviderGoogle, 3)
		if ds[0].Note != "channel no longer exists" || len(h.bookings.Calls()) != 2 {
			t.Fatalf("notification of a forgotten channel: %+v; calls %+v", ds[0], h.bookings.Calls())
		}
		for _, c := range []gcaltest.ChannelInfo{old, live[0]} {
			if code, _, b := h.post(t, "/webhooks/google", nil, pushHeaders(c, c.Token, gcaltest.StateExists, 99)); code != http.StatusUnauthorized {
				t.Errorf("notification on forgotten channel %s: %d %s", c.ID, code, b)
			}
		}
	})
}

// TestGoogleRenewedChannelStillDelivering: the renewal cannot stop the old
// channel (channels.stop fails), so Google still notifies it besides the
// new one. Its notifications are accepted and synced until it is stopped
// at the next renewal run, or it expires; then they are refused, and an
// expired replaced channel is forgotten.
func TestGoogleRenewedChannelStillDelivering(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		ev, start, _ := h.mentorSession(t, gc, "b-s")
		old, _ := acc.connectExpiring(t)
		oldInfo := gcaltest.ChannelInfo{ID: old.ID, ResourceID: old.ResourceID}

		sim.InjectFault(gcaltest.Fault{Op: "channels.stop", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota, Times: -1})
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 1 {
			t.Fatalf("renewed %d, %v", n, err)
		}
		if live := sim.Channels(mentorCal); len(live) != 2 {
			t.Fatalf("channels at Google: %+v, want the old one still live", live)
		}
		moved := start.Add(2 * time.Hour)
		if err := sim.MoveEvent(mentorCal, ev.ID, moved, moved.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		pushOK(t, sim, old.ID, gcaltest.StateExists)
		ds := h.waitAllDone(t, webhooks.ProviderGoogle, 1)
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "reschedule" || !calls[0].Start.Equal(moved) ||
			ds[0].Note != "synced 1 changes: 0 cancelled, 1 rescheduled (notified on a channel renewed since)" {
			t.Fatalf("notification on the unstopped old channel: %+v; calls %+v", ds[0], calls)
		}
		// A change is notified on both channels; the second sync finds nothing new.
		if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
			t.Fatal(err)
		}
		for i, c := range sim.Channels(mentorCal) {
			pushOK(t, sim, c.ID, gcaltest.StateExists)
			h.waitAllDone(t, webhooks.ProviderGoogle, 2+i)
		}
		if calls := h.bookings.Calls(); len(calls) != 2 || calls[1].Op != "cancel" {
			t.Fatalf("calls %+v, want one cancel", calls)
		}

		// Past its expiration it is refused (Google no longer sends on it),
		// and the next renewal run forgets it.
		h.clock.Set(old.Expiration.Add(time.Second))
		if code, _, b := h.post(t, "/webhooks/google", nil, pushHeaders(oldInfo, old.Token, gcaltest.StateExists, 50)); code != http.StatusUnauthorized {
			t.Fatalf("notification on the expired old channel: %d %s", code, b)
		}
		if _, err := h.svc.RenewChannels(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := h.channels.LookupChannel(ctx, old.ID); !errors.Is(err, webhooks.ErrUnknownChannel) {
			t.Fatalf("expired replaced channel still known: %v", err)
		}
	})
}

// TestGoogleRenewedChannelStoppedLater: a replaced channel whose stop
// failed is stopped by the next renewal run; from then on its
// notifications are refused, while the new channel's are accepted.
func TestGoogleRenewedChannelStoppedLater(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		h.calendars.add(webhooks.Source{Provider: webhooks.SourceGoogle, UserID: "mentor-1", CalendarID: mentorCal}, gc, false)
		old, _ := acc.connectExpiring(t)
		sim.InjectFault(gcaltest.Fault{Op: "channels.stop", Status: http.StatusForbidden, Reason: gcaltest.ReasonQuota})
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 1 {
			t.Fatalf("renewed %d, %v", n, err)
		}
		pushOK(t, sim, old.ID, gcaltest.StateSync)
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 0 {
			t.Fatalf("second run renewed %d, %v", n, err)
		}
		live := sim.Channels(mentorCal)
		if len(live) != 1 || live[0].ID == old.ID {
			t.Fatalf("channels at Google after the second run: %+v", live)
		}
		pushOK(t, sim, live[0].ID, gcaltest.StateSync)
		info := gcaltest.ChannelInfo{ID: old.ID, ResourceID: old.ResourceID}
		if code, _, b := h.post(t, "/webhooks/google", nil, pushHeaders(info, old.Token, gcaltest.StateExists, 9)); code != http.StatusUnauthorized {
			t.Fatalf("notification on the stopped old channel: %d %s", code, b)
		}
	})
}

// TestGoogleRenewalSyncsCalendar: the mentor moves the event just before
// the renewal, and Google's notification on the old channel arrives only
// after the old channel was stopped (late, or retried after an error). It
// is refused, but the renewal synced the calendar once the old channel
// was stopped: the booking is rescheduled all the same.
func TestGoogleRenewalSyncsCalendar(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		acc := newGoogleAccount(t, h, gcaltest.Options{}, nil)
		sim, gc := acc.sim, acc.gc
		ctx := t.Context()
		ev, start, src := h.mentorSession(t, gc, "b-l")
		if _, err := h.svc.SyncCalendar(ctx, src); err != nil { // the cursor before the change
			t.Fatal(err)
		}
		old, _ := acc.connectExpiring(t)
		moved := start.Add(2 * time.Hour)
		if err := sim.MoveEvent(mentorCal, ev.ID, moved, moved.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 1 {
			t.Fatalf("renewed %d, %v", n, err)
		}
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "reschedule" || calls[0].ID != "b-l" || !calls[0].Start.Equal(moved) {
			t.Fatalf("calls %+v, want the booking rescheduled by the renewal's sync", calls)
		}
		info := gcaltest.ChannelInfo{ID: old.ID, ResourceID: old.ResourceID}
		if code, _, b := h.post(t, "/webhooks/google", nil, pushHeaders(info, old.Token, gcaltest.StateExists, 1)); code != http.StatusUnauthorized {
			t.Fatalf("late notification on the stopped channel: %d %s", code, b)
		}
		// The new channel syncs on from the renewal's cursor.
		pushOK(t, sim, sim.Channels(mentorCal)[0].ID, gcaltest.StateExists)
		if ds := h.waitAllDone(t, webhooks.ProviderGoogle, 1); ds[0].Note != "synced 0 changes: 0 cancelled, 0 rescheduled" || len(h.bookings.Calls()) != 1 {
			t.Fatalf("notification on the new channel: %+v; calls %+v", ds[0], h.bookings.Calls())
		}
	})
}

// TestGoogleRenewalStoresNewChannelFirst: a change made while the old
// channel is being stopped is notified on the new channel only; the new
// channel is already stored then, so the notification is accepted and
// synced.
func TestGoogleRenewalStoresNewChannelFirst(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		// Once the old channel is stopped at Google, before the renewal
		// returns, the mentor moves the event: only the new channel is told.
		var (
			once    sync.Once
			during  []gcaltest.Delivery
			moveErr error
			sim     *gcaltest.Server
			mu      sync.Mutex
			evID    string
			moved   time.Time
		)
		front := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				mu.Lock()
				evID, moved := evID, moved
				mu.Unlock()
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/channels/stop") || moved.IsZero() {
					return
				}
				once.Do(func() {
					if moveErr = sim.MoveEvent(mentorCal, evID, moved, moved.Add(time.Hour)); moveErr == nil {
						during = sim.Push(r.Context(), mentorCal, gcaltest.StateExists)
					}
				})
			})
		}
		acc := newGoogleAccount(t, h, gcaltest.Options{}, front)
		sim = acc.sim
		ctx := t.Context()
		ev, start, _ := h.mentorSession(t, acc.gc, "b-f")
		old, _ := acc.connectExpiring(t)
		mu.Lock()
		evID, moved = ev.ID, start.Add(2*time.Hour)
		mu.Unlock()
		if n, err := h.svc.RenewChannels(ctx); err != nil || n != 1 {
			t.Fatalf("renewed %d, %v", n, err)
		}
		live := sim.Channels(mentorCal)
		if len(live) != 1 || live[0].ID == old.ID {
			t.Fatalf("channels at Google: %+v", live)
		}
		if moveErr != nil || len(during) != 1 || during[0].ChannelID != live[0].ID || during[0].Status != http.StatusAccepted {
			t.Fatalf("notification during the renewal: %+v, %v; want the new channel's accepted", during, moveErr)
		}
		h.waitAllDone(t, webhooks.ProviderGoogle, 1)
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "reschedule" || !calls[0].Start.Equal(moved) {
			t.Fatalf("calls %+v, want the booking rescheduled", calls)
		}
	})
}

// calDAVFixture is a mentor's calendar on an in-memory CalDAV server with
// the event of one booking in it, registered as mentor-1's polled source.
type calDAVFixture struct {
	url   string // the server's base URL
	path  string // the calendar collection
	gw    *caldav.Client
	src   webhooks.Source
	ev    calendar.Event
	start time.Time
}

// newCalDAVFixture writes bookingID's event (a day ahead, an hour, in zone)
// as the gateway would.
func newCalDAVFixture(t *testing.T, h *harness, opts caldavtest.Options, bookingID, zone string) calDAVFixture {
	t.Helper()
	opts.Users = map[string]string{"mentor": "pw"}
	sim := caldavtest.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	fx := calDAVFixture{url: ts.URL, path: sim.CreateCalendar("mentor", "work", "Work"),
		start: time.Now().Add(24 * time.Hour).Truncate(time.Hour).UTC()}
	var err error
	if fx.gw, err = caldav.New(ts.URL+fx.path, "mentor", "pw"); err != nil {
		t.Fatal(err)
	}
	fx.ev, err = fx.gw.CreateEvent(t.Context(), calendar.Event{BookingID: bookingID, Summary: "S", Start: fx.start,
		End: fx.start.Add(time.Hour), TimeZone: zone})
	if err != nil {
		t.Fatal(err)
	}
	fx.src = webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-1", CalendarID: fx.path}
	h.calendars.add(fx.src, fx.gw, true)
	return fx
}

func TestCalDAVPolling(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"sync-collection", false}, {"etag-fallback", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db)
				fx := newCalDAVFixture(t, h, caldavtest.Options{DisableSyncCollection: mode.noSync}, "b-d", "Europe/Berlin")
				user, err := caldav.New(fx.url+fx.path, "mentor", "pw") // the mentor's own calendar app
				if err != nil {
					t.Fatal(err)
				}
				ctx, start, ev := t.Context(), fx.start, fx.ev
				h.bookings.add(webhooks.Booking{ID: "b-d", MentorID: "mentor-1", Start: start, End: start.Add(time.Hour)}, "", ev.ID, "")
				if res, err := h.svc.PollCalendars(ctx); err != nil || res.Rescheduled+res.Cancelled != 0 {
					t.Fatalf("first poll %+v %v", res, err)
				}
				moved := ev
				moved.Start, moved.End = start.Add(2*time.Hour), start.Add(3*time.Hour)
				if _, err := user.UpdateEvent(ctx, moved); err != nil {
					t.Fatal(err)
				}
				if res, err := h.svc.PollCalendars(ctx); err != nil || res.Rescheduled != 1 || res.Changes != 1 {
					t.Fatalf("poll after move %+v %v", res, err)
				}
				if res, err := h.svc.PollCalendars(ctx); err != nil || res.Changes != 0 {
					t.Fatalf("poll without change %+v %v", res, err)
				}
				if err := user.DeleteEvent(ctx, "b-d"); err != nil {
					t.Fatal(err)
				}
				if res, err := h.svc.PollCalendars(ctx); err != nil || res.Cancelled != 1 {
					t.Fatalf("poll after delete %+v %v", res, err)
				}
				calls := h.bookings.Calls()
				if len(calls) != 2 || calls[0].Op != "reschedule" || !calls[0].Start.Equal(moved.Start) || calls[1].Op != "cancel" || calls[1].Actor != "webhook:caldav" {
					t.Fatalf("calls %+v", calls)
				}
			})
		})
	}
}

// While the booking's own change propagates, an external time is not
// judged: the sync fails (cursor kept) and the next one applies it.
func TestCalendarChangeWaitsForBookingToSettle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		fx := newCalDAVFixture(t, h, caldavtest.Options{}, "b-busy", "UTC")
		ctx, start, ev, src, gw := t.Context(), fx.start, fx.ev, fx.src, fx.gw
		// The booking is being moved to a new time; the calendar still shows the old one.
		newStart := start.Add(4 * time.Hour)
		h.bookings.add(webhooks.Booking{ID: "b-busy", MentorID: "mentor-1", Status: webhooks.BookingRescheduled, Start: newStart, End: newStart.Add(time.Hour)}, "", ev.ID, "")
		if _, err := h.svc.SyncCalendar(ctx, src); !errors.Is(err, webhooks.ErrBookingBusy) {
			t.Fatalf("sync while rescheduling: %v", err)
		}
		// The saga updates the calendar and settles the booking: nothing to do.
		moved := ev
		moved.Start, moved.End = newStart, newStart.Add(time.Hour)
		if _, err := gw.UpdateEvent(ctx, moved); err != nil {
			t.Fatal(err)
		}
		h.bookings.mu.Lock()
		h.bookings.byID["b-busy"].Status = webhooks.BookingConfirmed
		h.bookings.mu.Unlock()
		res, err := h.svc.SyncCalendar(ctx, src)
		if err != nil || res.Changes == 0 || len(h.bookings.Calls()) != 0 {
			t.Fatalf("sync after settling: %+v %v, calls %+v", res, err, h.bookings.Calls())
		}
	})
}

// A calendar that was deleted, or whose connection is gone, is not synced:
// the sync succeeds with nothing done (so neither a push's processing nor
// the poller retries it), and no booking is touched.
func TestSyncOfUnavailableCalendar(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		fx := newCalDAVFixture(t, h, caldavtest.Options{}, "b-u", "UTC")
		ctx, start, src := t.Context(), fx.start, fx.src
		h.bookings.add(webhooks.Booking{ID: "b-u", MentorID: "mentor-1", Start: start, End: start.Add(time.Hour)}, "", fx.ev.ID, "")
		if res, err := h.svc.SyncCalendar(ctx, src); err != nil || res.Unavailable {
			t.Fatalf("first sync %+v %v", res, err)
		}

		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, fx.url+fx.path, nil)
		req.SetBasicAuth("mentor", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		res, err := h.svc.SyncCalendar(ctx, src)
		if err != nil || !res.Unavailable || res.Cancelled != 0 {
			t.Fatalf("sync of the deleted calendar = %+v, %v; want unavailable, no error, nothing cancelled", res, err)
		}
		if note := res.String(); note != "calendar no longer connected or deleted: nothing to sync" {
			t.Errorf("note %q", note)
		}
		if _, err := h.svc.PollCalendars(ctx); err != nil {
			t.Errorf("poll with the deleted calendar: %v", err)
		}

		// The connection gone: Open says so, and the sync does nothing.
		gone := webhooks.Source{Provider: webhooks.SourceGoogle, UserID: "mentor-2", CalendarID: "c"}
		h.calendars.unavailable(gone)
		if res, err := h.svc.SyncCalendar(ctx, gone); err != nil || !res.Unavailable {
			t.Fatalf("sync of a disconnected calendar = %+v, %v", res, err)
		}
		if calls := h.bookings.Calls(); len(calls) != 0 {
			t.Errorf("booking calls %+v", calls)
		}
	})
}

// TestCalendarCopyOfSessionIgnored: a copy of the session's event (the
// mentor duplicated it, or imported or restored it) carries the booking's
// marker under another UID: moving it, then deleting it, changes nothing;
// the booking's own event still decides.
func TestCalendarCopyOfSessionIgnored(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	fx := newCalDAVFixture(t, h, caldavtest.Options{}, "b-copy", "UTC")
	ctx, start := t.Context(), fx.start
	h.bookings.add(webhooks.Booking{ID: "b-copy", MentorID: "mentor-1", Start: start, End: start.Add(time.Hour)}, "", fx.ev.ID, "")
	if _, err := h.svc.SyncCalendar(ctx, fx.src); err != nil { // the initial cursor
		t.Fatal(err)
	}
	put := func(method, ics string) {
		t.Helper()
		if err := caldavtest.Send(ctx, method, fx.url+fx.path+"copy-1.ics", "mentor", "pw", ics); err != nil {
			t.Fatal(err)
		}
	}
	moved := start.Add(2 * time.Hour)
	put(http.MethodPut, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:copy-1\r\n"+
		"DTSTAMP:20261201T000000Z\r\nDTSTART:"+moved.Format("20060102T150405Z")+"\r\nDTEND:"+moved.Add(time.Hour).Format("20060102T150405Z")+
		"\r\nSUMMARY:Copy of the session\r\nX-SPOTLIGHT-BOOKING:b-copy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	res, err := h.svc.SyncCalendar(ctx, fx.src)
	if err != nil || res.Changes != 1 || res.Rescheduled != 0 {
		t.Fatalf("sync after the copy = %+v, %v; want one change and nothing rescheduled", res, err)
	}
	put(http.MethodDelete, "")
	if res, err := h.svc.SyncCalendar(ctx, fx.src); err != nil || res.Cancelled != 0 {
		t.Fatalf("sync after deleting the copy = %+v, %v; want nothing cancelled", res, err)
	}
	if calls := h.bookings.Calls(); len(calls) != 0 {
		t.Fatalf("booking calls %+v, want none", calls)
	}
}

// TestGoogleDeleteSeenAfterSyncTokenExpired: the mentor deletes the
// session's event while the stored sync token has expired (Google answers
// 410 and the sync starts over with a full listing). The deletion is still
// seen and cancels the booking, and the next sync is incremental again.
func TestGoogleDeleteSeenAfterSyncTokenExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	sim, gc := newGoogle(t)
	ctx := t.Context()
	ev, _, src := h.mentorSession(t, gc, "b-x")
	if _, err := h.svc.SyncCalendar(ctx, src); err != nil { // the initial cursor
		t.Fatal(err)
	}
	sim.ExpireSyncTokens(mentorCal)
	if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.SyncCalendar(ctx, src)
	if err != nil || !res.Reset || res.Cancelled != 1 {
		t.Fatalf("sync after the token expired = %+v (%s), %v; want a full resync that cancels the booking", res, res, err)
	}
	if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-x" || calls[0].Actor != "webhook:google" {
		t.Fatalf("calls %+v, want the booking cancelled", calls)
	}
	if res, err := h.svc.SyncCalendar(ctx, src); err != nil || res.Reset || res.Changes != 0 {
		t.Fatalf("next sync = %+v, %v; want incremental with nothing new", res, err)
	}
}

// TestGooglePeriodicSync: a change whose push notification never came (Google
// does not promise delivery, and a channel that was down is never told of
// what changed meanwhile) is found by the periodic sync of the calendars
// with push, through the same path as a notification; a sync with nothing
// new changes nothing, and calendars without push are left to their poll.
func TestGooglePeriodicSync(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		sim, gc := newGoogle(t)
		ctx := t.Context()
		ev, _, _ := h.mentorSession(t, gc, "b-p")
		h.calendars.add(webhooks.Source{Provider: webhooks.SourceCalDAV, UserID: "mentor-2", CalendarID: "/cal/"}, failingCalendar{}, true)
		if res, err := h.svc.SyncPushed(ctx); err != nil || res.Changes != 1 || res.Cancelled+res.Rescheduled != 0 {
			t.Fatalf("first sync = %+v, %v; want the booking's event read, nothing changed", res, err)
		}
		if err := sim.DeleteEvent(mentorCal, ev.ID); err != nil {
			t.Fatal(err)
		}
		if res, err := h.svc.SyncPushed(ctx); err != nil || res.Cancelled != 1 {
			t.Fatalf("sync after the mentor deleted the event = %+v, %v; want the booking cancelled", res, err)
		}
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-p" || calls[0].Actor != "webhook:google" {
			t.Fatalf("calls %+v, want the booking cancelled by the Google sync", calls)
		}
		if res, err := h.svc.SyncPushed(ctx); err != nil || res.Changes != 0 {
			t.Fatalf("next sync = %+v, %v; want nothing new", res, err)
		}
	})
}

// failingCalendar fails every call: a calendar that must not be read.
type failingCalendar struct{ calendar.Calendar }

func (failingCalendar) Changes(context.Context, string) (calendar.ChangeSet, error) {
	return calendar.ChangeSet{}, errors.New("a polled calendar was synced as a pushed one")
}
