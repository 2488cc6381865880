package webhooks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// TestSQLChannelsStalePendingForgotten: a channel SQLChannels stored,
// pending, before events.watch, and whose answer never came (the replica
// stopped during the call), is accepted and left alone by renewal runs
// for an hour, then forgotten by the next one: its notifications are
// refused from then on, as connect's channel store does.
func TestSQLChannelsStalePendingForgotten(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		_, gc := newGoogleWith(t, gcaltest.Options{})
		var (
			mu  sync.Mutex
			now = time.Now()
		)
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		advance := func(d time.Duration) {
			mu.Lock()
			now = now.Add(d)
			mu.Unlock()
		}
		chans := &webhooks.SQLChannels{DB: db, Now: clock}
		chans.WatchFunc = watchWith(gc, "http://gateway.test/webhooks/google", 7*24*time.Hour)
		chans.StopFunc = func(ctx context.Context, ch webhooks.Channel) error {
			return gc.StopChannel(ctx, gcal.Channel{ID: ch.ID, ResourceID: ch.ResourceID})
		}
		ctx := t.Context()
		stopped := errors.New("the replica stopped before the watch answered")
		_, err := chans.Open(ctx, "mentor-1", mentorCal, func(ctx context.Context, next webhooks.Channel, token string) (webhooks.Channel, error) {
			// What another replica sees while this one never completes it.
			renew := func(step string) {
				t.Helper()
				if got, err := chans.RenewExpiring(ctx, clock().Add(24*time.Hour)); err != nil || len(got) != 0 {
					t.Fatalf("%s: RenewExpiring = %+v, %v; want nothing renewed", step, got, err)
				}
			}
			renew("pending")
			if ch, err := chans.VerifyChannel(ctx, next.ID, token); err != nil || ch.ResourceID != "" {
				t.Fatalf("pending channel: %+v, %v; want accepted", ch, err)
			}
			advance(59 * time.Minute)
			renew("pending for 59 minutes")
			if _, err := chans.VerifyChannel(ctx, next.ID, token); err != nil {
				t.Fatalf("pending channel after 59 minutes: %v; want accepted", err)
			}
			advance(2 * time.Minute)
			renew("pending for over an hour")
			if _, err := chans.VerifyChannel(ctx, next.ID, token); !errors.Is(err, webhooks.ErrUnknownChannel) {
				t.Errorf("pending channel after over an hour and a renewal run: %v; want ErrUnknownChannel", err)
			}
			if _, err := chans.LookupChannel(ctx, next.ID); !errors.Is(err, webhooks.ErrUnknownChannel) {
				t.Errorf("pending channel after over an hour and a renewal run still stored: %v", err)
			}
			return webhooks.Channel{}, stopped
		})
		if !errors.Is(err, stopped) {
			t.Fatalf("Open = %v", err)
		}
	})
}
