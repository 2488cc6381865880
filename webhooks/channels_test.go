package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets/local"
	"github.com/spotlight/gateway/webhooks"
)

// googleChannels is the gateway's one store of Google push channels, the
// connect area's, seen through webhooks.Channels as cmd/gateway adapts it.
// Until a test connects a Google calendar (connectGoogle) it knows no
// channel.
type googleChannels struct {
	mu  sync.Mutex
	svc *connect.Service
}

func (c *googleChannels) use(svc *connect.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.svc = svc
}

func (c *googleChannels) service() *connect.Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.svc
}

func toWebhookChannel(ch connect.Channel, err error) (webhooks.Channel, error) {
	if errors.Is(err, connect.ErrUnknownChannel) {
		return webhooks.Channel{}, webhooks.ErrUnknownChannel
	}
	if errors.Is(err, connect.ErrOrphanedChannel) {
		return webhooks.Channel{}, webhooks.ErrOrphanedChannel
	}
	return webhooks.Channel{ID: ch.ID, ResourceID: ch.ResourceID, CalendarID: ch.CalendarID, UserID: ch.UserSub,
		Expiration: ch.Expiration, ReplacedBy: ch.ReplacedBy}, err
}

func (c *googleChannels) VerifyChannel(ctx context.Context, id, token, resourceID string) (webhooks.Channel, error) {
	svc := c.service()
	if svc == nil {
		return webhooks.Channel{}, webhooks.ErrUnknownChannel
	}
	return toWebhookChannel(svc.VerifyChannelToken(ctx, id, token, resourceID))
}

func (c *googleChannels) LookupChannel(ctx context.Context, id string) (webhooks.Channel, error) {
	svc := c.service()
	if svc == nil {
		return webhooks.Channel{}, webhooks.ErrUnknownChannel
	}
	return toWebhookChannel(svc.LookupChannel(ctx, id))
}

func (c *googleChannels) RenewExpiring(ctx context.Context, before time.Time) ([]webhooks.Channel, error) {
	svc := c.service()
	if svc == nil {
		return nil, nil
	}
	renewed, err := svc.RenewChannels(ctx, before)
	out := make([]webhooks.Channel, 0, len(renewed))
	for _, ch := range renewed {
		wc, _ := toWebhookChannel(ch, nil)
		out = append(out, wc)
	}
	return out, err
}

// googleAccount is mentor-1's Google account on a simulator, connected
// through the connect area as the gateway connects it: its channels notify
// h's intake.
type googleAccount struct {
	sim *gcaltest.Server
	url string
	gc  *gcal.Client // the gateway's client of mentor-1's primary calendar
	key local.Key
	h   *harness
}

// newGoogleAccount starts a simulator behind front (when not nil) with
// opts; connectMentor connects it.
func newGoogleAccount(t *testing.T, h *harness, opts gcaltest.Options, front func(http.Handler) http.Handler) *googleAccount {
	t.Helper()
	opts.AllowHTTPPush = true
	sim := gcaltest.New(opts)
	var hd http.Handler = sim
	if front != nil {
		hd = front(sim)
	}
	ts := httptest.NewServer(hd)
	t.Cleanup(ts.Close)
	tok, err := sim.IssueToken(gcaltest.DefaultClientID, gcaltest.DefaultUser)
	if err != nil {
		t.Fatal(err)
	}
	hc := outbound.NewClient(gcal.OutboundConfig(outbound.Config{BreakerFailures: -1}))
	gc, err := gcal.New(t.Context(), oauth2.StaticTokenSource(tok), gcal.WithHTTPClient(hc), gcal.WithBaseURL(gcaltest.APIBase(ts.URL)), gcal.WithCalendar(mentorCal))
	if err != nil {
		t.Fatal(err)
	}
	key, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &googleAccount{sim: sim, url: ts.URL, gc: gc, key: key, h: h}
}

// replica returns a connect.Service on h's database (a gateway replica),
// its channels notifying h's intake; mutate adjusts its config.
func (a *googleAccount) replica(t *testing.T, mutate func(*connect.Config)) *connect.Service {
	t.Helper()
	sec, err := local.New(a.h.db.DB(), string(a.h.db.Dialect()), local.NewKeyring(a.key))
	if err != nil {
		t.Fatal(err)
	}
	cfg := connect.Config{
		SecretPrefix: "spotlight", SecretEnv: "test", PublicURL: a.h.url,
		Google: connect.GoogleConfig{
			ClientID: gcaltest.DefaultClientID, AuthURL: a.url + "/o/oauth2/auth", TokenURL: a.url + "/token",
			APIURL: a.url + "/", UserinfoURL: gcaltest.UserinfoURL(a.url), RevokeURL: gcaltest.RevokeURL(a.url),
		},
		Now: a.h.clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := connect.New(a.h.db, sec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.PutProviderCredentials(t.Context(), "google", map[string]string{"client_secret": gcaltest.DefaultClientSecret}); err != nil {
		t.Fatal(err)
	}
	return svc
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// connectMentor connects mentor-1's primary calendar with a replica whose
// channels last ttl (0: connect's default), makes it h's channel store,
// and returns the channel the connection opened.
func (a *googleAccount) connectMentor(t *testing.T, ttl time.Duration) gcaltest.ChannelInfo {
	t.Helper()
	svc := a.replica(t, func(c *connect.Config) { c.Google.ChannelTTL = ttl })
	a.h.channels.use(svc)
	u, _, err := svc.StartGoogle(t.Context(), "mentor-1")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("consent answered %d without Location", resp.StatusCode)
	}
	if _, _, err := svc.CompleteGoogle(t.Context(), loc.Query().Get("state"), loc.Query().Get("code"), ""); err != nil {
		t.Fatalf("CompleteGoogle: %v", err)
	}
	live := a.sim.Channels(mentorCal)
	if len(live) != 1 {
		t.Fatalf("channels after connecting: %+v", live)
	}
	return live[0]
}
