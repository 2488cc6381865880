package connect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/internal/secrets"
)

// tokenMargin: a token expiring within it is refreshed.
const tokenMargin = 2 * time.Minute

// refreshTimeout bounds one shared refresh, detached from the caller that started it.
const refreshTimeout = 45 * time.Second

// leasePoll is how often a replica waiting for another's refresh re-reads the token.
const leasePoll = 20 * time.Millisecond

func (s *Service) fresh(t *oauth2.Token) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || s.now().Add(tokenMargin).Before(t.Expiry))
}

// userTokenSource is the persisting oauth2.TokenSource of one user.
type userTokenSource struct {
	s   *Service
	sub string
}

// Token implements oauth2.TokenSource.
func (u userTokenSource) Token() (*oauth2.Token, error) {
	return u.s.GoogleToken(context.Background(), u.sub)
}

// TokenSource returns the persisting token source of sub's Google connection.
func (s *Service) TokenSource(sub string) oauth2.TokenSource { return userTokenSource{s: s, sub: sub} }

// GoogleToken returns a valid access token of sub's Google connection,
// refreshing it when needed. Concurrent callers in this process share one
// refresh; replicas take turns through a database lease and a version check
// on write, so one expiry costs one token request. A refresh answered with
// invalid_grant re-reads the stored token first: if another replica stored a
// new one meanwhile, that one is used; otherwise the connection is marked
// needs_reauth and the error wraps ErrNeedsReauth (and the provider's
// *oauth2.RetrieveError).
func (s *Service) GoogleToken(ctx context.Context, sub string) (*oauth2.Token, error) {
	s.tokMu.Lock()
	if t := s.tokens[sub]; s.fresh(t) {
		s.tokMu.Unlock()
		return t, nil
	}
	s.tokMu.Unlock()
	ch := s.flight.DoChan(sub, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		t, err := s.refreshShared(fctx, sub)
		if err != nil {
			return nil, err
		}
		s.tokMu.Lock()
		s.tokens[sub] = t
		s.tokMu.Unlock()
		return t, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*oauth2.Token), nil
	}
}

// readToken reads the stored token and its version from the store itself,
// never from a cache of recent reads: the refresh decides by it whether
// another replica has refreshed (or the user reconnected) meanwhile.
func (s *Service) readToken(ctx context.Context, path string) (*oauth2.Token, int64, error) {
	sec, err := s.sec.Get(secrets.Fresh(ctx), path)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w to google", ErrNotConnected)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("connect: read google token: %w", err)
	}
	var st storedToken
	if err := json.Unmarshal(sec.Value, &st); err != nil {
		return nil, 0, errors.New("connect: stored google token is not valid JSON")
	}
	return st.oauth2(), sec.Version, nil
}

func (s *Service) refreshShared(ctx context.Context, sub string) (*oauth2.Token, error) {
	path, err := s.userPath(sub, ProviderGoogle)
	if err != nil {
		return nil, err
	}
	var hb [12]byte
	_, _ = rand.Read(hb[:])
	holder := hex.EncodeToString(hb[:])
	for {
		tok, _, err := s.readToken(ctx, path)
		if err != nil {
			return nil, err
		}
		if s.fresh(tok) {
			return tok, nil
		}
		ok, err := s.acquireLease(ctx, sub, ProviderGoogle, holder)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Another replica is refreshing: wait for its token (or for
			// its lease to lapse).
			if err := sleepCtx(ctx, leasePoll); err != nil {
				return nil, fmt.Errorf("connect: wait for google refresh: %w", err)
			}
			continue
		}
		t, retry, err := s.refreshLeased(ctx, sub, path)
		s.releaseLease(ctx, sub, ProviderGoogle, holder)
		if retry {
			continue
		}
		return t, err
	}
}

// refreshLeased refreshes while holding the lease. retry asks the caller to
// start over (another replica's token appeared).
func (s *Service) refreshLeased(ctx context.Context, sub, path string) (*oauth2.Token, bool, error) {
	old, version, err := s.readToken(ctx, path)
	if err != nil {
		return nil, false, err
	}
	if s.fresh(old) {
		return old, false, nil
	}
	if old.RefreshToken == "" {
		s.markNeedsReauth(ctx, sub, ProviderGoogle, "the stored Google grant has no refresh token; reconnect")
		return nil, false, fmt.Errorf("connect: google token: %w", ErrNeedsReauth)
	}
	cfg, err := s.oauthConfig(ctx)
	if err != nil {
		return nil, false, err
	}
	// A source holding only the refresh token always refreshes.
	nt, err := cfg.TokenSource(s.oauthContext(ctx), &oauth2.Token{RefreshToken: old.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			return nil, false, upstream("google token refresh", err)
		}
		// invalid_grant: a lost race (another replica rotated the refresh
		// token and stored the new one) or a real revocation.
		cur, curVersion, rerr := s.readToken(ctx, path)
		if rerr != nil {
			return nil, false, rerr
		}
		if curVersion != version || cur.RefreshToken != old.RefreshToken {
			s.log.InfoContext(ctx, "google refresh lost a race; using the token another replica stored", "provider", ProviderGoogle, "sub", sub)
			return nil, true, nil
		}
		s.markNeedsReauth(ctx, sub, ProviderGoogle, "Google refused the stored grant (revoked, expired or the password changed); reconnect")
		return nil, false, fmt.Errorf("connect: google token refresh: %w: %w", ErrNeedsReauth, err)
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = old.RefreshToken // Google keeps the grant's refresh token
	}
	if err := s.storeRefreshed(ctx, path, version, old, nt); err != nil {
		if errors.Is(err, errKeepStored) {
			return nil, true, nil
		}
		return nil, false, err
	}
	return nt, false, nil
}

// errKeepStored: a reconnect stored a different grant while we refreshed.
var errKeepStored = errors.New("connect: a newer grant is stored")

// storeRefreshed writes the refreshed token on the version read before. On a
// conflict it re-reads: a store of the same grant (same or our new refresh
// token) is overwritten with ours; a different grant (a reconnect) wins.
func (s *Service) storeRefreshed(ctx context.Context, path string, version int64, old, nt *oauth2.Token) error {
	b, err := json.Marshal(toStored(nt))
	if err != nil {
		return err
	}
	_, err = s.sec.Put(ctx, path, b, version)
	if err == nil {
		return nil
	}
	if !errors.Is(err, secrets.ErrVersionConflict) {
		return fmt.Errorf("connect: store refreshed google token: %w", err)
	}
	err = secrets.Update(ctx, s.sec, path, func(cur []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, fmt.Errorf("%w to google (disconnected during refresh)", ErrNotConnected)
		}
		var st storedToken
		if json.Unmarshal(cur, &st) != nil {
			return b, nil
		}
		if st.RefreshToken == old.RefreshToken || st.RefreshToken == nt.RefreshToken {
			return b, nil
		}
		return nil, errKeepStored
	})
	if err != nil && !errors.Is(err, errKeepStored) && !errors.Is(err, ErrNotConnected) {
		return fmt.Errorf("connect: store refreshed google token: %w", err)
	}
	return err
}

// apiBase is the Calendar API base URL below the configured API root.
func (s *Service) apiBase() string {
	return strings.TrimRight(s.cfg.Google.APIURL, "/") + "/calendar/v3/"
}

// newGoogleClient builds a gcal client over ts on calendarID; opts add to
// (or override) the defaults.
func (s *Service) newGoogleClient(ctx context.Context, ts oauth2.TokenSource, calendarID string, opts ...gcal.Option) (*gcal.Client, error) {
	if calendarID == "" {
		calendarID = "primary"
	}
	cl, err := gcal.New(ctx, ts, append([]gcal.Option{gcal.WithHTTPClient(s.googleHTTP), gcal.WithBaseURL(s.apiBase()),
		gcal.WithCalendar(calendarID), gcal.WithLogger(s.log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return cl, nil
}

// googleClient builds a gcal client on sub's persisting token source.
func (s *Service) googleClient(ctx context.Context, sub, calendarID string, opts ...gcal.Option) (*gcal.Client, error) {
	return s.newGoogleClient(ctx, s.TokenSource(sub), calendarID, opts...)
}

// rejectedTokens watches Google's answers: a 401 to a request with one of
// our access tokens means Google no longer accepts it (revoked with the
// grant, or expired early), so it is dropped from the cache and marked
// expired in the store. The next use refreshes, which tells a revocation
// (needs_reauth) from a merely stale token.
type rejectedTokens struct {
	s    *Service
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t rejectedTokens) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
			t.s.forgetAccessToken(req.Context(), tok)
		}
	}
	return resp, err
}

var errOtherToken = errors.New("connect: the stored token changed")

func (s *Service) forgetAccessToken(ctx context.Context, tok string) {
	var sub string
	s.tokMu.Lock()
	for u, t := range s.tokens {
		if t != nil && t.AccessToken == tok {
			sub = u
			delete(s.tokens, u)
		}
	}
	s.tokMu.Unlock()
	if sub == "" {
		return
	}
	path, err := s.userPath(sub, ProviderGoogle)
	if err != nil {
		return
	}
	err = secrets.Update(context.WithoutCancel(ctx), s.sec, path, func(old []byte, exists bool) ([]byte, error) {
		var st storedToken
		if !exists || json.Unmarshal(old, &st) != nil || st.AccessToken != tok {
			return nil, errOtherToken
		}
		st.Expiry = time.Unix(1, 0).UTC()
		return json.Marshal(st)
	})
	if err != nil && !errors.Is(err, errOtherToken) {
		s.log.WarnContext(ctx, "mark rejected google token expired", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
	}
}
