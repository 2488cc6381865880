package connect

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/secrets"
)

// stateKeyName is the provider-path component of the OAuth state HMAC key.
const stateKeyName = "gateway-oauth-state"

// storedToken is the JSON kept in the secret store for a Google connection.
type storedToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func (t storedToken) oauth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Expiry: t.Expiry}
}

func toStored(t *oauth2.Token) storedToken {
	return storedToken{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Expiry: t.Expiry.UTC()}
}

// oauthConfig builds the Google OAuth client configuration; the client
// secret comes from the secret store.
func (s *Service) oauthConfig(ctx context.Context) (*oauth2.Config, error) {
	fields, err := s.ProviderSecret(ctx, ProviderGoogle)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, err
	}
	id := s.cfg.Google.ClientID
	if id == "" {
		id = fields["client_id"]
	}
	if id == "" || fields["client_secret"] == "" {
		return nil, fmt.Errorf("%w: google client id or client_secret missing (PUT /v1/admin/providers/google/credentials)", ErrNotConfigured)
	}
	ep := oauth2.Endpoint{AuthURL: s.cfg.Google.AuthURL, TokenURL: s.cfg.Google.TokenURL, AuthStyle: oauth2.AuthStyleInParams}
	return gcal.OAuthConfig(id, fields["client_secret"], s.CallbackURL(), ep), nil
}

// oauthContext makes x/oauth2 send its token requests through the Google client.
func (s *Service) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.googleHTTP)
}

// key returns the state HMAC key, creating it in the secret store on first
// use (replicas racing to create it converge on the first one written).
func (s *Service) key(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.stateKey != nil {
		return s.stateKey, nil
	}
	path, err := s.providerPath(stateKeyName)
	if err != nil {
		return nil, err
	}
	for range 3 {
		sec, err := s.sec.Get(ctx, path)
		if err == nil && len(sec.Value) >= 32 {
			s.stateKey = sec.Value
			return s.stateKey, nil
		}
		if err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return nil, fmt.Errorf("connect: state key: %w", err)
		}
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if _, err := s.sec.Put(ctx, path, k, 0); err == nil {
			s.stateKey = k
			return k, nil
		} else if !errors.Is(err, secrets.ErrVersionConflict) {
			return nil, fmt.Errorf("connect: state key: %w", err)
		}
	}
	return nil, errors.New("connect: state key: could not create")
}

func stateMAC(key []byte, provider, sub, nonce string, exp int64) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "spotlight-oauth-state\x00%s\x00%s\x00%s\x00%d", provider, sub, nonce, exp)
	return m.Sum(nil)
}

// StartGoogle begins connecting Google Calendar for sub: it stores a
// single-use state with a PKCE verifier and returns the authorization URL
// and the state's expiry.
func (s *Service) StartGoogle(ctx context.Context, sub string) (string, time.Time, error) {
	if _, err := s.userPath(sub, ProviderGoogle); err != nil {
		return "", time.Time{}, err
	}
	cfg, err := s.oauthConfig(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	key, err := s.key(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	var nb [18]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return "", time.Time{}, err
	}
	nonce := base64.RawURLEncoding.EncodeToString(nb[:])
	now := s.now()
	exp := now.Add(s.cfg.StateTTL).Truncate(time.Second)
	verifier := oauth2.GenerateVerifier()
	_, err = s.db.DB().ExecContext(ctx, s.db.Rebind(`INSERT INTO oauth_states (id, user_sub, provider, verifier, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		nonce, sub, ProviderGoogle, verifier, micros(exp), micros(now))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("connect: store state: %w", err)
	}
	// Forget states that expired long ago (never used).
	_, _ = s.db.DB().ExecContext(ctx, s.db.Rebind(`DELETE FROM oauth_states WHERE expires_at < ?`), micros(now.Add(-24*time.Hour)))

	state := nonce + "." + strconv.FormatInt(exp.Unix(), 10) + "." +
		base64.RawURLEncoding.EncodeToString(stateMAC(key, ProviderGoogle, sub, nonce, exp.Unix()))
	u := cfg.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"),
		oauth2.S256ChallengeOption(verifier))
	return u, exp, nil
}

// consumeState verifies a state and consumes its row, returning the user
// and the PKCE verifier. caller is the authenticated user completing the
// connection, "" on the gateway's own callback: a state of another user is
// refused and left for its own.
func (s *Service) consumeState(ctx context.Context, state, caller string) (sub, verifier string, err error) {
	if caller == "" && s.cfg.Google.RedirectURL != "" {
		return "", "", ErrStateNeedsUser
	}
	parts := strings.Split(state, ".")
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[0]) > 64 {
		return "", "", ErrStateForged
	}
	nonce := parts[0]
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", "", ErrStateForged
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", "", ErrStateForged
	}
	key, err := s.key(ctx)
	if err != nil {
		return "", "", err
	}
	var rowExp int64
	var provider string
	err = s.db.DB().QueryRowContext(ctx, s.db.Rebind(`SELECT user_sub, provider, verifier, expires_at FROM oauth_states WHERE id = ?`), nonce).
		Scan(&sub, &provider, &verifier, &rowExp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrStateReplayed
	}
	if err != nil {
		return "", "", fmt.Errorf("connect: read state: %w", err)
	}
	if !hmac.Equal(sig, stateMAC(key, provider, sub, nonce, exp)) || provider != ProviderGoogle || fromMicros(rowExp).Unix() != exp {
		return "", "", ErrStateForged
	}
	if caller != "" && sub != caller {
		return "", "", ErrStateOtherUser
	}
	res, err := s.db.DB().ExecContext(ctx, s.db.Rebind(`DELETE FROM oauth_states WHERE id = ?`), nonce)
	if err != nil {
		return "", "", fmt.Errorf("connect: consume state: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", "", ErrStateReplayed // a concurrent callback consumed it first
	}
	if !s.now().Before(time.Unix(exp, 0)) {
		return "", "", ErrStateExpired
	}
	return sub, verifier, nil
}

// CompleteGoogle handles the gateway's own OAuth callback, where the state
// alone names the user: it consumes the state, exchanges the code with the
// PKCE verifier, stores the token, reads the account email, lists the
// calendars (keeping a previous choice that still exists, else the
// primary) and opens a push channel. googleError is the callback's error
// parameter. While Google redirects to the web app
// (GoogleConfig.RedirectURL) it refuses every state (ErrStateNeedsUser).
func (s *Service) CompleteGoogle(ctx context.Context, state, code, googleError string) (Info, []CalendarRef, error) {
	return s.completeGoogle(ctx, "", state, code, googleError)
}

// CompleteGoogleAs is CompleteGoogle for the authenticated user sub: the
// web app's redirect page posts what Google gave it with the user's token.
// A state issued to another user is refused (ErrStateOtherUser) and left
// unused, so a user lured into consenting to someone else's authorization
// URL does not connect their calendar to that account.
func (s *Service) CompleteGoogleAs(ctx context.Context, sub, state, code, googleError string) (Info, []CalendarRef, error) {
	if sub == "" {
		return Info{}, nil, ErrStateNeedsUser
	}
	return s.completeGoogle(ctx, sub, state, code, googleError)
}

func (s *Service) completeGoogle(ctx context.Context, caller, state, code, googleError string) (Info, []CalendarRef, error) {
	sub, verifier, err := s.consumeState(ctx, state, caller)
	if err != nil {
		return Info{}, nil, err
	}
	if googleError != "" {
		return Info{}, nil, ErrAccessDenied
	}
	if code == "" {
		return Info{}, nil, ErrMissingCode
	}
	cfg, err := s.oauthConfig(ctx)
	if err != nil {
		return Info{}, nil, err
	}
	octx := s.oauthContext(ctx)
	tok, err := cfg.Exchange(octx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Info{}, nil, fmt.Errorf("%w: %w", ErrTokenExchange, err)
	}
	if tok.RefreshToken == "" {
		s.log.WarnContext(ctx, "google granted no refresh token", "provider", ProviderGoogle, "sub", sub)
	}
	static := oauth2.StaticTokenSource(tok)
	email, err := gcal.AccountEmail(octx, oauth2.NewClient(octx, static), s.cfg.Google.UserinfoURL)
	if err != nil {
		return Info{}, nil, upstream("google userinfo", err)
	}
	cl, err := s.newGoogleClient(ctx, static, "primary")
	if err != nil {
		return Info{}, nil, err
	}
	cals, err := cl.ListCalendars(ctx)
	if err != nil {
		return Info{}, nil, upstream("google list calendars", err)
	}
	refs := googleRefs(cals)
	if len(refs) == 0 {
		return Info{}, nil, ErrNoEventCalendar
	}
	chosen := refs[0] // ListCalendars puts the primary first
	var busy []CalendarRef
	// Connecting the same Google account again keeps the user's choices
	// where they still apply; another account starts from its primary,
	// and the grant of the account it replaces is revoked below.
	var replaced *oauth2.Token
	if prev, err := s.get(ctx, sub, ProviderGoogle); err == nil && strings.EqualFold(prev.AccountEmail, email) {
		for _, r := range refs {
			if r.ID == prev.CalendarID {
				chosen = r
			}
		}
		busy = keepKnown(prev.BusyCalendars, googleAllRefs(cals))
	} else if err == nil {
		if path, err := s.userPath(sub, ProviderGoogle); err == nil {
			replaced, _, _ = s.readToken(ctx, path)
		}
	}
	if err := s.storeToken(ctx, sub, tok); err != nil {
		return Info{}, nil, err
	}
	in := Info{UserSub: sub, Provider: ProviderGoogle, AccountEmail: email, CalendarID: chosen.ID, CalendarName: chosen.Name,
		BusyCalendars: busy}
	if err := s.upsert(ctx, in); err != nil {
		return Info{}, nil, err
	}
	s.log.InfoContext(ctx, "google calendar connected", "provider", ProviderGoogle, "sub", sub, "calendars", len(refs))
	if replaced != nil {
		s.revokeReplaced(ctx, sub, cfg, replaced)
	}
	s.rewatch(ctx, sub, chosen.ID)
	in, err = s.get(ctx, sub, ProviderGoogle)
	return in, refs, err
}

// revokeReplaced stops the push channels of the Google account a new
// connection of sub replaced and revokes that account's grant, which is no
// longer stored: replicas still holding one of its access tokens find it
// refused and read the new one. Failures are logged, not returned.
func (s *Service) revokeReplaced(ctx context.Context, sub string, cfg *oauth2.Config, old *oauth2.Token) {
	s.stopChannels(ctx, sub, cfg.TokenSource(s.oauthContext(ctx), old))
	revoke := old.RefreshToken
	if revoke == "" {
		revoke = old.AccessToken
	}
	if err := gcal.Revoke(ctx, s.googleHTTP, s.cfg.Google.RevokeURL, revoke); err != nil {
		s.log.WarnContext(ctx, "google revoke of the replaced account failed", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
	}
}

// storeToken writes a freshly granted token, replacing any previous grant.
func (s *Service) storeToken(ctx context.Context, sub string, tok *oauth2.Token) error {
	path, err := s.userPath(sub, ProviderGoogle)
	if err != nil {
		return err
	}
	b, err := json.Marshal(toStored(tok))
	if err != nil {
		return err
	}
	if _, err := s.sec.Put(ctx, path, b, secrets.AnyVersion); err != nil {
		return fmt.Errorf("connect: store google token: %w", err)
	}
	s.tokMu.Lock()
	s.tokens[sub] = tok
	s.tokMu.Unlock()
	return nil
}

// googleRefs keeps the calendars the user may write events to.
func googleRefs(cals []gcal.CalendarInfo) []CalendarRef {
	var out []CalendarRef
	for _, c := range cals {
		if googleWritable(c) {
			out = append(out, googleRef(c))
		}
	}
	return out
}

// googleRef names calendar c by its summary, or its id when it has none.
func googleRef(c gcal.CalendarInfo) CalendarRef {
	name := c.Summary
	if name == "" {
		name = c.ID
	}
	return CalendarRef{ID: c.ID, Name: name}
}

// googleWritable reports whether the account may write events to c.
func googleWritable(c gcal.CalendarInfo) bool {
	return c.AccessRole == "" || c.AccessRole == "owner" || c.AccessRole == "writer"
}

// googleAllRefs keeps every calendar of the list, whatever the account's
// access role: any of them can count for busy time (freebusy.query needs
// only freeBusyReader).
func googleAllRefs(cals []gcal.CalendarInfo) []CalendarRef {
	out := make([]CalendarRef, 0, len(cals))
	for _, c := range cals {
		out = append(out, googleRef(c))
	}
	return out
}

// GoogleCalendars lists the connected account's writable calendars.
func (s *Service) GoogleCalendars(ctx context.Context, sub string) ([]CalendarRef, error) {
	cals, err := s.googleCalendarList(ctx, sub)
	if err != nil {
		return nil, err
	}
	return googleRefs(cals), nil
}

// googleCalendarList lists the connected account's calendar list.
func (s *Service) googleCalendarList(ctx context.Context, sub string) ([]gcal.CalendarInfo, error) {
	in, err := s.get(ctx, sub, ProviderGoogle)
	if err != nil {
		return nil, err
	}
	cl, err := s.googleClient(ctx, sub, in.CalendarID)
	if err != nil {
		return nil, err
	}
	cals, err := cl.ListCalendars(ctx)
	var oe *outbound.Error
	if errors.As(err, &oe) && oe.Status == http.StatusUnauthorized {
		// Google refused the access token: revoked with the grant, or
		// stale. rejectedTokens has dropped it, so a second try refreshes
		// it, which tells the two apart (needs_reauth, or the list).
		cals, err = cl.ListCalendars(ctx)
	}
	if err != nil {
		return nil, s.googleCallError("google list calendars", err)
	}
	return cals, nil
}

// googleCallError keeps revocation errors recognisable and wraps the rest as upstream failures.
func (s *Service) googleCallError(op string, err error) error {
	if errors.Is(err, ErrNeedsReauth) || errors.Is(err, ErrNotConnected) {
		return err
	}
	if revoked(err) {
		return fmt.Errorf("%w: %w", ErrNeedsReauth, err)
	}
	return upstream(op, err)
}

// revoked reports a refused grant: gcal turns the token source's verdict
// (which has already marked the connection) into gcal.ErrInvalidGrant.
func revoked(err error) bool {
	return errors.Is(err, ErrNeedsReauth) || errors.Is(err, gcal.ErrInvalidGrant)
}

// ChooseGoogleCalendar makes calendarID (one of the account's writable
// calendars) the calendar booking events go to, and moves the push channel.
func (s *Service) ChooseGoogleCalendar(ctx context.Context, sub, calendarID string) (Info, []CalendarRef, error) {
	return s.UpdateGoogleCalendars(ctx, sub, CalendarChoice{Calendar: calendarID})
}

// UpdateGoogleCalendars changes the calendars of sub's Google connection:
// the calendar booking events go to (one of the account's writable
// calendars; the push channel moves with it) and the calendars whose busy
// time counts (any calendar of the account's calendar list). Everything is
// checked against the calendar list before anything changes:
// ErrUnknownCalendar, ErrUnknownBusyCalendar or ErrTooManyBusyCalendars
// change nothing. It returns the connection and the writable calendars.
func (s *Service) UpdateGoogleCalendars(ctx context.Context, sub string, ch CalendarChoice) (Info, []CalendarRef, error) {
	in, err := s.get(ctx, sub, ProviderGoogle)
	if err != nil {
		return Info{}, nil, err
	}
	cals, err := s.googleCalendarList(ctx, sub)
	if err != nil {
		return Info{}, nil, err
	}
	refs := googleRefs(cals)
	ch = googlePrimaryAlias(ch, cals)
	chosen := &CalendarRef{ID: in.CalendarID, Name: in.CalendarName}
	if ch.Calendar != "" {
		chosen = nil
		for i := range refs {
			if refs[i].ID == ch.Calendar {
				chosen = &refs[i]
			}
		}
		if chosen == nil {
			return Info{}, refs, ErrUnknownCalendar
		}
	}
	var busy *[]CalendarRef
	if ch.Busy != nil {
		picked, err := pickBusy(googleAllRefs(cals), ch.Busy, in.Busy(), googleMatch)
		if err != nil {
			return Info{}, refs, err
		}
		busy = &picked
	}
	switch {
	case chosen.ID != in.CalendarID || chosen.Name != in.CalendarName:
		if err := s.setCalendar(ctx, sub, ProviderGoogle, chosen.ID, chosen.Name, "", busy); err != nil {
			return Info{}, nil, err
		}
	case busy != nil:
		if err := s.setBusyCalendars(ctx, sub, ProviderGoogle, *busy); err != nil {
			return Info{}, nil, err
		}
	}
	if chosen.ID != in.CalendarID {
		s.rewatch(ctx, sub, chosen.ID)
	}
	in, err = s.get(ctx, sub, ProviderGoogle)
	return in, refs, err
}

// googlePrimaryAlias reads "primary", Google's alias of the account's
// primary calendar, as that calendar's id in ch.
func googlePrimaryAlias(ch CalendarChoice, cals []gcal.CalendarInfo) CalendarChoice {
	i := slices.IndexFunc(cals, func(c gcal.CalendarInfo) bool { return c.Primary })
	if i < 0 {
		return ch
	}
	alias := func(id string) string {
		if id == "primary" {
			return cals[i].ID
		}
		return id
	}
	ch.Calendar = alias(ch.Calendar)
	if ch.Busy != nil {
		busy := make([]string, len(ch.Busy))
		for j, id := range ch.Busy {
			busy[j] = alias(id)
		}
		ch.Busy = busy
	}
	return ch
}

// DisconnectGoogle stops the user's push channels, revokes the grant at
// Google and deletes the token and the connection. Failures at Google are
// logged, not returned: the local credentials go either way. Disconnecting
// without a connection is not an error.
func (s *Service) DisconnectGoogle(ctx context.Context, sub string) error {
	path, err := s.userPath(sub, ProviderGoogle)
	if err != nil {
		return err
	}
	sec, err := s.sec.Get(ctx, path)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
	case errors.Is(err, secrets.ErrUnreadable):
		// Nothing to revoke it with; left in place, it would fail every
		// disconnect. The grant lapses at Google unused (or the user
		// removes the app in their Google account).
		s.log.WarnContext(ctx, "google token unreadable; deleting it without revoking", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
		if err := s.sec.Delete(ctx, path); err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return fmt.Errorf("connect: delete google token: %w", err)
		}
	case err != nil:
		return fmt.Errorf("connect: read google token: %w", err)
	default:
		var st storedToken
		if err := json.Unmarshal(sec.Value, &st); err == nil {
			// The persisting source refreshes an expired token first.
			s.stopChannels(ctx, sub, s.TokenSource(sub))
			revoke := st.RefreshToken
			if revoke == "" {
				revoke = st.AccessToken
			}
			if err := gcal.Revoke(ctx, s.googleHTTP, s.cfg.Google.RevokeURL, revoke); err != nil {
				s.log.WarnContext(ctx, "google revoke failed; deleting the local token anyway", "provider", ProviderGoogle, "sub", sub, "error", err.Error())
			}
		}
		if err := s.sec.Delete(ctx, path); err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return fmt.Errorf("connect: delete google token: %w", err)
		}
	}
	s.tokMu.Lock()
	delete(s.tokens, sub)
	s.tokMu.Unlock()
	if err := s.deleteRecords(ctx, sub, ProviderGoogle); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "google calendar disconnected", "provider", ProviderGoogle, "sub", sub)
	return nil
}
