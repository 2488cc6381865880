package connect_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

func setJSONField(t *testing.T, raw []byte, key string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func storedToken(t *testing.T, sec secrets.Store, sub string) (map[string]any, int64) {
	t.Helper()
	p, _ := secrets.UserPath("spotlight", "test", sub, "google")
	s, err := sec.Get(t.Context(), p)
	if err != nil {
		t.Fatalf("stored token of %s: %v", sub, err)
	}
	var m map[string]any
	if err := json.Unmarshal(s.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m, s.Version
}

func TestGoogleConnectFlow(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{})
		svc, sec := h.replica(t, nil)
		ctx := t.Context()

		authURL, exp, err := svc.StartGoogle(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(exp); d < 9*time.Minute || d > 11*time.Minute {
			t.Errorf("state expires in %v, want 10m", d)
		}
		q := mustParse(t, authURL).Query()
		for k, want := range map[string]string{"access_type": "offline", "prompt": "consent", "code_challenge_method": "S256",
			"response_type": "code", "client_id": gcaltest.DefaultClientID, "redirect_uri": "http://gateway.test/v1/oauth/google/callback"} {
			if q.Get(k) != want {
				t.Errorf("auth URL %s = %q, want %q", k, q.Get(k), want)
			}
		}
		if !strings.Contains(q.Get("scope"), "calendar.events") || q.Get("code_challenge") == "" || q.Get("state") == "" {
			t.Errorf("auth URL query %v lacks scope, challenge or state", q)
		}
		state, code := consent(t, authURL)
		if ch, method := h.google.CodeChallenge(code); ch != q.Get("code_challenge") || method != "S256" {
			t.Errorf("simulator recorded challenge %q/%q", ch, method)
		}
		in, cals, err := svc.CompleteGoogle(ctx, state, code, "")
		if err != nil {
			t.Fatal(err)
		}
		if in.Status != connect.StatusConnected || in.AccountEmail != "mentor@example.com" || in.CalendarID != "mentor@example.com" || in.UserSub != "alice" {
			t.Fatalf("connection = %+v", in)
		}
		if len(cals) != 2 || cals[0].ID != "mentor@example.com" || cals[1].Name != "Work" {
			t.Fatalf("calendars = %+v", cals)
		}
		tok, _ := storedToken(t, sec, "alice")
		if tok["refresh_token"] == "" || tok["access_token"] == "" {
			t.Fatalf("stored token lacks fields: %v", keys(tok))
		}
		// A push channel on the primary calendar, its token checked by hash.
		chans := h.google.Channels("mentor@example.com")
		if len(chans) != 1 || chans[0].Address != "http://gateway.test/webhooks/google" {
			t.Fatalf("channels = %+v", chans)
		}
		ch, err := svc.VerifyChannelToken(ctx, chans[0].ID, chans[0].Token, chans[0].ResourceID)
		if err != nil || ch.UserSub != "alice" || ch.CalendarID != "mentor@example.com" || ch.ResourceID != chans[0].ResourceID {
			t.Fatalf("VerifyChannelToken = %+v, %v", ch, err)
		}
		for _, bad := range [][2]string{{chans[0].ID, chans[0].Token + "x"}, {chans[0].ID, ""}, {"nope", chans[0].Token}} {
			if _, err := svc.VerifyChannelToken(ctx, bad[0], bad[1], ""); !errors.Is(err, connect.ErrUnknownChannel) {
				t.Errorf("VerifyChannelToken(%q, …) = %v, want ErrUnknownChannel", bad[0], err)
			}
		}

		// Choosing another calendar moves the channel and resets the cursor.
		if err := svc.SetSyncCursor(ctx, "alice", connect.ProviderGoogle, "cursor-1"); err != nil {
			t.Fatal(err)
		}
		in, _, err = svc.ChooseGoogleCalendar(ctx, "alice", "work@group.calendar.google.com")
		if err != nil || in.CalendarID != "work@group.calendar.google.com" || in.CalendarName != "Work" {
			t.Fatalf("choose = %+v, %v", in, err)
		}
		if cur, _ := svc.SyncCursor(ctx, "alice", connect.ProviderGoogle); cur != "" {
			t.Errorf("cursor after calendar change = %q", cur)
		}
		if n := len(h.google.Channels("mentor@example.com")); n != 0 {
			t.Errorf("%d channels left on the old calendar", n)
		}
		if n := len(h.google.Channels("work@group.calendar.google.com")); n != 1 {
			t.Errorf("%d channels on the new calendar", n)
		}
		if _, _, err := svc.ChooseGoogleCalendar(ctx, "alice", "someone-else@example.com"); !errors.Is(err, connect.ErrUnknownCalendar) {
			t.Errorf("choose unknown calendar: %v", err)
		}

		// The calendar works for booking.
		cal, info, err := svc.Calendar(ctx, "alice")
		if err != nil || info.Provider != connect.ProviderGoogle {
			t.Fatalf("Calendar = %v, %+v", err, info)
		}
		if _, err := cal.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("FreeBusy: %v", err)
		}

		// Renewal replaces the channel.
		old := h.google.Channels("work@group.calendar.google.com")[0]
		renewed, err := svc.RenewChannels(ctx, time.Now().Add(30*24*time.Hour))
		n := len(renewed)
		if err != nil || n != 1 {
			t.Fatalf("RenewChannels = %d, %v", n, err)
		}
		live := h.google.Channels("work@group.calendar.google.com")
		if len(live) != 1 || live[0].ID == old.ID {
			t.Fatalf("channels after renewal = %+v", live)
		}
		// The old one is kept, replaced, for the notifications it delivered
		// before; stopped, it is no longer accepted as a sender.
		if ch, err := svc.LookupChannel(ctx, old.ID); err != nil || ch.ReplacedBy != live[0].ID || ch.UserSub != "alice" {
			t.Errorf("old channel after renewal: %+v, %v", ch, err)
		}
		if _, err := svc.VerifyChannelToken(ctx, old.ID, old.Token, old.ResourceID); !errors.Is(err, connect.ErrUnknownChannel) {
			t.Errorf("stopped old channel accepted: %v", err)
		}

		// Disconnect: channel stopped, grant revoked, secret and record gone; idempotent.
		revs := h.google.Stats().Revocations
		if err := svc.DisconnectGoogle(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if h.google.Stats().Revocations != revs+1 {
			t.Error("grant not revoked at Google")
		}
		if n := len(h.google.Channels("work@group.calendar.google.com")); n != 0 {
			t.Errorf("%d channels left after disconnect", n)
		}
		for _, id := range []string{old.ID, live[0].ID} {
			if _, err := svc.LookupChannel(ctx, id); !errors.Is(err, connect.ErrUnknownChannel) {
				t.Errorf("channel %s after disconnect: %v", id, err)
			}
		}
		p, _ := secrets.UserPath("spotlight", "test", "alice", "google")
		if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("token after disconnect: %v", err)
		}
		if list, _ := svc.List(ctx, "alice"); len(list) != 0 {
			t.Errorf("connections after disconnect: %+v", list)
		}
		if err := svc.DisconnectGoogle(ctx, "alice"); err != nil {
			t.Errorf("second disconnect: %v", err)
		}
		if _, _, err := svc.Calendar(ctx, "alice"); !errors.Is(err, connect.ErrNotConnected) {
			t.Errorf("Calendar after disconnect: %v", err)
		}
	})
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGoogleCompletedInWebApp: with a web app redirect page, a state is
// completed only by its own user (CompleteGoogleAs); the unauthenticated
// callback and other users are refused without using the state or the code.
func TestGoogleCompletedInWebApp(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		const page = "https://app.example.test/connect/google"
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, func(c *connect.Config) { c.Google.RedirectURL = page })
		if got := svc.CallbackURL(); got != page {
			t.Fatalf("CallbackURL = %q, want the web app's page", got)
		}
		u, _, err := svc.StartGoogle(t.Context(), "mallory")
		if err != nil {
			t.Fatal(err)
		}
		state, code := consentTo(t, u, page)
		for _, tt := range []struct {
			name     string
			complete func() error
			want     error
		}{
			{"gateway callback", func() error { _, _, err := svc.CompleteGoogle(t.Context(), state, code, ""); return err }, connect.ErrStateNeedsUser},
			{"no user", func() error { _, _, err := svc.CompleteGoogleAs(t.Context(), "", state, code, ""); return err }, connect.ErrStateNeedsUser},
			{"another user", func() error { _, _, err := svc.CompleteGoogleAs(t.Context(), "alice", state, code, ""); return err }, connect.ErrStateOtherUser},
		} {
			if err := tt.complete(); !errors.Is(err, tt.want) || !errors.Is(err, connect.ErrInvalidState) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
		if n := h.google.Stats().CodeExchanges; n != 0 {
			t.Fatalf("%d codes exchanged for refused completions", n)
		}
		for _, sub := range []string{"alice", "mallory"} {
			if list, _ := svc.List(t.Context(), sub); len(list) != 0 {
				t.Fatalf("%s connected by a refused completion: %+v", sub, list)
			}
		}
		in, _, err := svc.CompleteGoogleAs(t.Context(), "mallory", state, code, "")
		if err != nil || in.UserSub != "mallory" || in.Status != connect.StatusConnected {
			t.Fatalf("completion by the state's user = %+v, %v", in, err)
		}
		if _, _, err := svc.CompleteGoogleAs(t.Context(), "mallory", state, code, ""); !errors.Is(err, connect.ErrStateReplayed) {
			t.Fatalf("replayed = %v", err)
		}

		// Without a web app page both completions work, and the
		// authenticated one still insists on the state's user.
		plain, _ := h.replica(t, nil)
		u, _, err = plain.StartGoogle(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		state, code = consent(t, u)
		if _, _, err := plain.CompleteGoogleAs(t.Context(), "alice", state, code, ""); !errors.Is(err, connect.ErrStateOtherUser) {
			t.Fatalf("another user without a web app page = %v", err)
		}
		if in, _, err := plain.CompleteGoogleAs(t.Context(), "bob", state, code, ""); err != nil || in.UserSub != "bob" {
			t.Fatalf("bob = %+v, %v", in, err)
		}
	})
}

func TestStateRejected(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		other, _ := h.replica(t, func(c *connect.Config) {}) // another replica: same key from the store
		tests := []struct {
			name string
			// tamper changes the state (or the stored row) before the callback.
			tamper func(t *testing.T, state string) string
			want   error
		}{
			{"forged signature", func(t *testing.T, s string) string {
				b := []byte(s)
				if b[len(b)-2] == 'A' {
					b[len(b)-2] = 'B'
				} else {
					b[len(b)-2] = 'A'
				}
				return string(b)
			}, connect.ErrStateForged},
			{"forged expiry", func(t *testing.T, s string) string {
				p := strings.Split(s, ".")
				return p[0] + ".9999999999." + p[2]
			}, connect.ErrStateForged},
			{"made up", func(t *testing.T, s string) string { return "bm9uY2U.1900000000.c2lnbmF0dXJl" }, connect.ErrStateReplayed},
			{"garbage", func(t *testing.T, s string) string { return "not-a-state" }, connect.ErrStateForged},
			{"bound to another user", func(t *testing.T, s string) string {
				nonce := strings.Split(s, ".")[0]
				if _, err := db.DB().ExecContext(t.Context(), db.Rebind(`UPDATE oauth_states SET user_sub = ? WHERE id = ?`), "mallory", nonce); err != nil {
					t.Fatal(err)
				}
				return s
			}, connect.ErrStateForged},
			{"expired", func(t *testing.T, s string) string {
				h.clock.Advance(11 * time.Minute)
				t.Cleanup(func() { h.clock.Advance(-11 * time.Minute) })
				return s
			}, connect.ErrStateExpired},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Sequential: "expired" moves the shared clock.
				u, _, err := svc.StartGoogle(t.Context(), "alice")
				if err != nil {
					t.Fatal(err)
				}
				state, code := consent(t, u)
				_, _, err = other.CompleteGoogle(t.Context(), tt.tamper(t, state), code, "")
				if !errors.Is(err, tt.want) || !errors.Is(err, connect.ErrInvalidState) {
					t.Fatalf("callback error = %v, want %v", err, tt.want)
				}
			})
		}
		if list, _ := svc.List(t.Context(), "alice"); len(list) != 0 {
			t.Fatalf("a rejected state connected: %+v", list)
		}
		if list, _ := svc.List(t.Context(), "mallory"); len(list) != 0 {
			t.Fatalf("a rebound state connected mallory: %+v", list)
		}
		if n := h.google.Stats().CodeExchanges; n != 0 {
			t.Fatalf("%d codes exchanged for rejected states", n)
		}

		t.Run("replayed", func(t *testing.T) {
			u, _, err := svc.StartGoogle(t.Context(), "bob")
			if err != nil {
				t.Fatal(err)
			}
			state, code := consent(t, u)
			in, _, err := other.CompleteGoogle(t.Context(), state, code, "")
			if err != nil || in.UserSub != "bob" {
				t.Fatalf("first callback = %+v, %v", in, err)
			}
			if _, _, err := svc.CompleteGoogle(t.Context(), state, code, ""); !errors.Is(err, connect.ErrStateReplayed) {
				t.Fatalf("replayed callback = %v, want ErrStateReplayed", err)
			}
		})
		t.Run("denied at Google", func(t *testing.T) {
			u, _, err := svc.StartGoogle(t.Context(), "carol")
			if err != nil {
				t.Fatal(err)
			}
			state, _ := consent(t, u)
			if _, _, err := svc.CompleteGoogle(t.Context(), state, "", "access_denied"); !errors.Is(err, connect.ErrAccessDenied) {
				t.Fatalf("denied = %v", err)
			}
		})
		t.Run("PKCE verifier mismatch", func(t *testing.T) {
			u, _, err := svc.StartGoogle(t.Context(), "dave")
			if err != nil {
				t.Fatal(err)
			}
			state, code := consent(t, u)
			nonce := strings.Split(state, ".")[0]
			if _, err := db.DB().ExecContext(t.Context(), db.Rebind(`UPDATE oauth_states SET verifier = ? WHERE id = ?`), oauth2.GenerateVerifier(), nonce); err != nil {
				t.Fatal(err)
			}
			before := h.google.Stats().CodeExchanges
			_, _, err = svc.CompleteGoogle(t.Context(), state, code, "")
			var re *oauth2.RetrieveError
			if !errors.Is(err, connect.ErrTokenExchange) || !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("tampered verifier = %v, want ErrTokenExchange with invalid_grant", err)
			}
			if h.google.Stats().CodeExchanges != before {
				t.Fatal("the simulator exchanged a code with the wrong verifier")
			}
			if list, _ := svc.List(t.Context(), "dave"); len(list) != 0 {
				t.Fatalf("connected despite PKCE mismatch: %+v", list)
			}
		})
	})
}

// TestRefreshRaceVersusRevocation: two replicas on one store; Google
// rotates refresh tokens. An invalid_grant caused by another replica's
// refresh is a lost race (use the stored token); one caused by a revocation
// marks the connection needs_reauth.
func TestRefreshRaceVersusRevocation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{RotateRefreshTokens: true})
		setup, sec := h.replica(t, nil)
		connectGoogle(t, setup, "alice")
		ctx := t.Context()

		// "Another replica" refreshes right before this replica's own
		// refresh request reaches Google, and stores its result.
		var once sync.Once
		var stolen string
		racer := roundTripFunc(func(req *recordedRequest) {
			if req.form.Get("grant_type") != "refresh_token" {
				return
			}
			once.Do(func() {
				cfg := gcal.OAuthConfig(gcaltest.DefaultClientID, gcaltest.DefaultClientSecret, "", gcaltest.Endpoint(h.url))
				tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: req.form.Get("refresh_token")}).Token()
				if err != nil {
					t.Errorf("other replica's refresh: %v", err)
					return
				}
				tok.Expiry = time.Now().Add(time.Hour)
				b, _ := json.Marshal(map[string]any{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken, "expiry": tok.Expiry, "token_type": "Bearer"})
				p, _ := secrets.UserPath("spotlight", "test", "alice", "google")
				if _, err := sec.Put(ctx, p, b, secrets.AnyVersion); err != nil {
					t.Errorf("other replica's store: %v", err)
				}
				stolen = tok.AccessToken
			})
		})
		b, _ := h.replica(t, func(c *connect.Config) { c.GoogleBase = racer })
		expireStored(t, sec, "alice")
		tok, err := b.GoogleToken(ctx, "alice")
		if err != nil {
			t.Fatalf("lost race treated as failure: %v", err)
		}
		if stolen == "" || tok.AccessToken != stolen {
			t.Fatalf("token = %q, want the other replica's %q", tok.AccessToken, stolen)
		}
		if in, _ := b.List(ctx, "alice"); len(in) != 1 || in[0].Status != connect.StatusConnected {
			t.Fatalf("after a lost race: %+v", in)
		}

		// A real revocation.
		h.google.RevokeUser("mentor@example.com")
		expireStored(t, sec, "alice")
		c, _ := h.replica(t, nil)
		_, err = c.GoogleToken(ctx, "alice")
		if !errors.Is(err, connect.ErrNeedsReauth) {
			t.Fatalf("after revocation: %v, want ErrNeedsReauth", err)
		}
		list, _ := c.List(ctx, "alice")
		if len(list) != 1 || list[0].Status != connect.StatusNeedsReauth || list[0].LastError == "" {
			t.Fatalf("after revocation: %+v", list)
		}
		if _, _, err := c.Calendar(ctx, "alice"); !errors.Is(err, connect.ErrNeedsReauth) {
			t.Fatalf("Calendar after revocation: %v", err)
		}
		// Reconnecting heals it.
		in := connectGoogle(t, c, "alice")
		if in.Status != connect.StatusConnected || in.LastError != "" {
			t.Fatalf("after reconnect: %+v", in)
		}
	})
}

// TestConcurrentRefreshIsOneTokenRequest: 50 callers on two replicas, one
// expired token, exactly one token request; the rotated refresh token is
// persisted and the old one kept when Google sends none.
func TestConcurrentRefreshIsOneTokenRequest(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{true, false} {
		name := map[bool]string{true: "rotating", false: "google-default"}[rotate]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.Store) {
				h := newHarness(t, db, gcaltest.Options{RotateRefreshTokens: rotate})
				setup, sec := h.replica(t, nil)
				connectGoogle(t, setup, "alice")
				before, _ := storedToken(t, sec, "alice")
				expireStored(t, sec, "alice")
				replicas := []*connect.Service{}
				for range 2 {
					r, _ := h.replica(t, nil)
					replicas = append(replicas, r)
				}
				tokens := make([]string, 50)
				n := tokenRequestsDuring(h.google, func() {
					var wg sync.WaitGroup
					for i := range 50 {
						wg.Go(func() {
							tok, err := replicas[i%2].GoogleToken(t.Context(), "alice")
							if err != nil {
								t.Errorf("caller %d: %v", i, err)
								return
							}
							tokens[i] = tok.AccessToken
						})
					}
					wg.Wait()
				})
				if n != 1 {
					t.Fatalf("%d token requests for 50 concurrent callers, want 1", n)
				}
				for i, tok := range tokens {
					if tok != tokens[0] || tok == "" {
						t.Fatalf("caller %d got another token", i)
					}
				}
				after, _ := storedToken(t, sec, "alice")
				if after["access_token"] != tokens[0] {
					t.Fatal("the refreshed token was not persisted")
				}
				if rotate && after["refresh_token"] == before["refresh_token"] {
					t.Fatal("the rotated refresh token was not persisted")
				}
				if !rotate && after["refresh_token"] != before["refresh_token"] {
					t.Fatal("the refresh token was lost when Google sent none")
				}
				// The persisted token works from a third replica without another refresh.
				third, _ := h.replica(t, nil)
				if n := tokenRequestsDuring(h.google, func() {
					if _, err := third.GoogleToken(t.Context(), "alice"); err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Fatalf("third replica made %d token requests", n)
				}
			})
		})
	}
}

// TestRefreshWriteConflict: while a replica refreshes, another writer
// changes the stored secret. The same grant written meanwhile is
// overwritten with the fresh token (version check, then re-read and merge);
// a different grant (the user reconnected) is kept, never overwritten by
// the stale refresh.
func TestRefreshWriteConflict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// write is what the other writer stores, given the refresh token in flight.
		write         func(rt string) map[string]any
		wantOursKept  bool
		wantStoredRT  func(rt string) string
		wantAccessTok string
	}{
		{"same grant rewritten", func(rt string) map[string]any {
			return map[string]any{"access_token": "other-writer-access", "refresh_token": rt, "expiry": time.Now().Add(-time.Minute)}
		}, true, func(rt string) string { return rt }, ""},
		{"reconnected meanwhile", func(rt string) map[string]any {
			return map[string]any{"access_token": "reconnect-access", "refresh_token": "reconnect-refresh", "expiry": time.Now().Add(time.Hour)}
		}, false, func(string) string { return "reconnect-refresh" }, "reconnect-access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, storetest.SQLite(t), gcaltest.Options{})
			setup, sec := h.replica(t, nil)
			connectGoogle(t, setup, "alice")
			p, _ := secrets.UserPath("spotlight", "test", "alice", "google")
			var once sync.Once
			var inflight string
			hook := roundTripFunc(func(req *recordedRequest) {
				if req.form.Get("grant_type") != "refresh_token" {
					return
				}
				once.Do(func() {
					inflight = req.form.Get("refresh_token")
					b, _ := json.Marshal(tt.write(inflight))
					if _, err := sec.Put(t.Context(), p, b, secrets.AnyVersion); err != nil {
						t.Error(err)
					}
				})
			})
			r, _ := h.replica(t, func(c *connect.Config) { c.GoogleBase = hook })
			expireStored(t, sec, "alice")
			tok, err := r.GoogleToken(t.Context(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := storedToken(t, sec, "alice")
			if stored["refresh_token"] != tt.wantStoredRT(inflight) {
				t.Fatalf("stored refresh token = %v", stored["refresh_token"])
			}
			if tt.wantOursKept {
				if stored["access_token"] != tok.AccessToken || tok.AccessToken == "other-writer-access" {
					t.Fatalf("stored %v, returned %q: the refreshed token was lost", stored["access_token"], tok.AccessToken)
				}
			} else if tok.AccessToken != tt.wantAccessTok || stored["access_token"] != tt.wantAccessTok {
				t.Fatalf("returned %q, stored %v: the reconnect's grant was overwritten", tok.AccessToken, stored["access_token"])
			}
		})
	}
}

// TestRejectedAccessToken: Google answering 401 to a cached access token
// makes the next use refresh: a revoked grant then shows as needs_reauth
// at once, a token that merely died early is replaced.
func TestRejectedAccessToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		kill       func(g *gcaltest.Server)
		wantStatus string
	}{
		{"revoked", func(g *gcaltest.Server) { g.RevokeUser("mentor@example.com") }, connect.StatusNeedsReauth},
		{"access token died early", func(g *gcaltest.Server) { g.ExpireAccessTokens() }, connect.StatusConnected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, storetest.SQLite(t), gcaltest.Options{})
			svc, _ := h.replica(t, nil)
			connectGoogle(t, svc, "alice")
			ctx := t.Context()
			cal, _, err := svc.Calendar(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			tt.kill(h.google)
			if _, err := cal.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour)); err == nil {
				t.Fatal("FreeBusy with a dead token succeeded")
			}
			_, err = cal.FreeBusy(ctx, time.Now(), time.Now().Add(time.Hour))
			list, _ := svc.List(ctx, "alice")
			if len(list) != 1 || list[0].Status != tt.wantStatus {
				t.Fatalf("status = %+v, want %s", list, tt.wantStatus)
			}
			if tt.wantStatus == connect.StatusConnected && err != nil {
				t.Fatalf("FreeBusy after the refresh: %v", err)
			}
			if tt.wantStatus == connect.StatusNeedsReauth && !errors.Is(err, gcal.ErrInvalidGrant) {
				t.Fatalf("FreeBusy after revocation: %v, want gcal.ErrInvalidGrant", err)
			}
		})
	}
}

// TestReconnectAnotherAccount: a user who connects another Google account
// in place of the first (no disconnect in between) has every replica work
// on the new account, also one that still holds an access token of the
// first in memory; the first account's grant, no longer stored anywhere,
// is revoked at Google.
func TestReconnectAnotherAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t), gcaltest.Options{Users: []gcaltest.User{
		{Email: "work@example.com", Calendars: []gcaltest.Calendar{{ID: "team@group.calendar.google.com", Summary: "Team"}}},
		{Email: "personal@example.com"},
	}})
	a, _ := h.replica(t, nil)
	b, _ := h.replica(t, nil)
	ctx := t.Context()
	connectAs := func(email string) {
		t.Helper()
		u, _, err := a.StartGoogle(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		state, code := consent(t, u+"&login_hint="+email)
		in, _, err := a.CompleteGoogle(ctx, state, code, "")
		if err != nil || in.AccountEmail != email {
			t.Fatalf("connect %s = %+v, %v", email, in, err)
		}
	}
	connectAs("work@example.com")
	// Replica b uses the connection: it holds the work account's access token.
	if cals, err := b.GoogleCalendars(ctx, "alice"); err != nil || len(cals) != 2 {
		t.Fatalf("b's calendars of the work account = %+v, %v", cals, err)
	}
	revs := h.google.Stats().Revocations
	connectAs("personal@example.com")
	if n := h.google.Stats().Revocations - revs; n != 1 {
		t.Errorf("%d revocations at Google when another account replaced the work account, want 1", n)
	}
	if chans := h.google.Channels("work@example.com"); len(chans) != 0 {
		t.Errorf("push channels left on the replaced account's calendar: %+v", chans)
	}
	cals, err := b.GoogleCalendars(ctx, "alice")
	if err != nil || len(cals) != 1 || cals[0].ID != "personal@example.com" {
		t.Fatalf("b's calendars after connecting the personal account = %+v, %v; want the personal account's", cals, err)
	}
	if list, _ := b.List(ctx, "alice"); len(list) != 1 || list[0].Status != connect.StatusConnected || list[0].AccountEmail != "personal@example.com" {
		t.Fatalf("connection = %+v", list)
	}
}

// TestDisconnectGoogleWithUnreadableToken: a stored token the secret store
// can no longer read (sealed with a key it lost, or tampered with) cannot be
// revoked, but it does not keep the user from disconnecting: the secret and
// the connection go, and the user can connect again.
func TestDisconnectGoogleWithUnreadableToken(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{})
		svc, sec := h.replica(t, nil)
		ctx := t.Context()
		connectGoogle(t, svc, "alice")
		p, _ := secrets.UserPath("spotlight", "test", "alice", "google")
		if _, err := db.DB().ExecContext(ctx, db.Rebind(`UPDATE secrets SET key_id = ? WHERE path = ?`), "0000000000000000", p); err != nil {
			t.Fatal(err)
		}
		if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrUnreadable) {
			t.Fatalf("the token after its key id changed: %v, want ErrUnreadable", err)
		}
		if err := svc.DisconnectGoogle(ctx, "alice"); err != nil {
			t.Fatalf("disconnect with an unreadable token: %v", err)
		}
		if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("token after disconnect: %v, want it deleted", err)
		}
		if list, _ := svc.List(ctx, "alice"); len(list) != 0 {
			t.Errorf("connections after disconnect: %+v", list)
		}
	})
}
