package gcaltest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

type authCode struct {
	clientID, redirectURI, user string
	scopes                      []string
	challenge, method           string
	offline                     bool
	consent                     bool // prompt named consent
	expires                     time.Time
	used                        bool
	grant                       *grant // set once exchanged
	access                      string // access token issued by the exchange
}

// grant is one consent: a refresh token and the access tokens minted from it.
type grant struct {
	refreshToken string
	clientID     string
	user         string
	scopes       []string
	revoked      bool
}

type accessToken struct {
	user    string
	scopes  []string
	expires time.Time
	grant   *grant // nil for tokens without a refresh token
	revoked bool
}

const codeTTL = 10 * time.Minute

// authorize serves the authorization endpoint. It consents at once as the
// user named by login_hint (else the first user) and redirects to
// redirect_uri with code and state, like a user clicking "Allow".
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, ok := s.clients[q.Get("client_id")]
	if !ok {
		http.Error(w, "Error 401: invalid_client\nThe OAuth client was not found.", http.StatusUnauthorized)
		return
	}
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if redirect == "" || err != nil || !ru.IsAbs() || (len(cl.RedirectURIs) > 0 && !slices.Contains(cl.RedirectURIs, redirect)) {
		http.Error(w, "Error 400: redirect_uri_mismatch", http.StatusBadRequest)
		return
	}
	fail := func(code, desc string) {
		v := ru.Query()
		v.Set("error", code)
		if desc != "" {
			v.Set("error_description", desc)
		}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		ru.RawQuery = v.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		fail("invalid_request", "Missing required parameter: scope")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" && method == "" {
		method = "plain"
	}
	if method != "" && method != "S256" && method != "plain" {
		fail("invalid_request", "Invalid code_challenge_method")
		return
	}
	if method != "" && challenge == "" {
		fail("invalid_request", "Missing code_challenge")
		return
	}
	if s.denyConsent {
		fail("access_denied", "")
		return
	}
	email := s.userOrder[0]
	if hint := strings.ToLower(q.Get("login_hint")); hint != "" {
		_, known := s.users[hint]
		if !known && s.opts.AutoCreateUsers && strings.Contains(hint, "@") && s.calendars[hint] == nil {
			s.addUser(User{Email: hint})
			known = true
		}
		if known {
			email = hint
		}
	}
	code := randomToken("4/0gcaltest-code-")
	s.codes[code] = &authCode{
		clientID: cl.ID, redirectURI: redirect, user: email, scopes: normalizeScopes(scopes),
		challenge: challenge, method: method, offline: q.Get("access_type") == "offline",
		consent: slices.Contains(strings.Fields(q.Get("prompt")), "consent"),
		expires: s.now().Add(codeTTL),
	}
	v := ru.Query()
	v.Set("code", code)
	v.Set("scope", strings.Join(normalizeScopes(scopes), " "))
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	ru.RawQuery = v.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// normalizeScopes expands Google's short scope aliases.
func normalizeScopes(in []string) []string {
	out := make([]string, 0, len(in))
	for _, sc := range in {
		if sc == "email" {
			sc = ScopeUserinfoEmail
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// DenyConsent makes the authorization endpoint answer access_denied (the
// user clicked "Cancel") until called again with false.
func (s *Server) DenyConsent(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyConsent = deny
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// token serves the token endpoint: authorization_code (with PKCE) and refresh_token grants.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid Content-Type")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Malformed request")
		return
	}
	cl, err := s.clientAuth(r)
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.exchangeCode(w, r, cl)
	case "refresh_token":
		s.refreshGrant(w, r, cl)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
	}
}

// clientAuth checks client_secret_basic or client_secret_post credentials.
func (s *Server) clientAuth(r *http.Request) (Client, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, errors.New("Unauthorized")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	cl, ok := s.clients[id]
	if !ok {
		return Client{}, errors.New("The OAuth client was not found.")
	}
	if subtle.ConstantTimeCompare([]byte(cl.Secret), []byte(secret)) != 1 {
		return Client{}, errors.New("Unauthorized")
	}
	return cl, nil
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request, cl Client) {
	code := r.PostForm.Get("code")
	ac, ok := s.codes[code]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Malformed auth code.")
		return
	}
	if ac.used {
		// RFC 6749 §4.1.2: a reused code revokes what it issued.
		if ac.grant != nil {
			ac.grant.revoked = true
		}
		if t := s.access[ac.access]; t != nil {
			t.revoked = true
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	}
	if ac.clientID != cl.ID || s.now().After(ac.expires) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	}
	if r.PostForm.Get("redirect_uri") != ac.redirectURI {
		oauthError(w, http.StatusBadRequest, "redirect_uri_mismatch", "Bad Request")
		return
	}
	verifier := r.PostForm.Get("code_verifier")
	switch {
	case ac.method == "" && verifier != "":
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Code verifier was provided but no code challenge was present.")
		return
	case ac.method != "" && verifier == "":
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Missing code verifier.")
		return
	case ac.method != "" && !verifyPKCE(ac.method, ac.challenge, verifier):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier.")
		return
	}
	ac.used = true
	s.stats.CodeExchanges++
	var g *grant
	issue := false
	if ac.offline {
		// Google returns a refresh token on the first exchange of an
		// offline grant; later consents of the same user to the same
		// client get one only when prompt=consent asked again.
		g = s.liveGrant(ac.user, cl.ID)
		if g == nil || ac.consent {
			g = &grant{refreshToken: randomToken("1//gcaltest-refresh-"), clientID: cl.ID, user: ac.user, scopes: ac.scopes}
			s.refresh[g.refreshToken] = g
			ac.grant = g
			issue = true
		}
	}
	resp := s.mintAccess(ac.user, ac.scopes, g)
	ac.access = resp.AccessToken
	if issue {
		resp.RefreshToken = g.refreshToken
	}
	writeTokenJSON(w, resp)
}

// liveGrant returns an unrevoked grant of user to client, if any. Call with s.mu held.
func (s *Server) liveGrant(user, clientID string) *grant {
	for _, g := range s.refresh {
		if g.user == user && g.clientID == clientID && !g.revoked {
			return g
		}
	}
	return nil
}

func verifyPKCE(method, challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, cl Client) {
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: refresh_token")
		return
	}
	g, ok := s.refresh[rt]
	if !ok || g.revoked || g.refreshToken != rt {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
		return
	}
	if g.clientID != cl.ID {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "Unauthorized")
		return
	}
	s.stats.Refreshes++
	resp := s.mintAccess(g.user, g.scopes, g)
	if s.opts.RotateRefreshTokens {
		delete(s.refresh, rt)
		g.refreshToken = randomToken("1//gcaltest-refresh-")
		s.refresh[g.refreshToken] = g
		resp.RefreshToken = g.refreshToken
	}
	writeTokenJSON(w, resp)
}

// mintAccess issues an access token. Call with s.mu held.
func (s *Server) mintAccess(email string, scopes []string, g *grant) tokenResponse {
	tok := randomToken("ya29.gcaltest-")
	s.access[tok] = &accessToken{user: email, scopes: scopes, expires: s.now().Add(s.opts.AccessTokenTTL), grant: g}
	return tokenResponse{
		AccessToken: tok, ExpiresIn: int64(s.opts.AccessTokenTTL / time.Second),
		Scope: strings.Join(scopes, " "), TokenType: "Bearer",
	}
}

func writeTokenJSON(w http.ResponseWriter, t tokenResponse) {
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	writeJSON(w, http.StatusOK, t)
}

// revoke serves the revocation endpoint. Revoking either token of a grant
// revokes the whole grant.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Malformed request")
		return
	}
	tok := r.Form.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.refresh[tok]; ok && !g.revoked {
		g.revoked = true
		s.stats.Revocations++
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	if t, ok := s.access[tok]; ok && !t.revoked && s.now().Before(t.expires) {
		t.revoked = true
		if t.grant != nil {
			t.grant.revoked = true
		}
		s.stats.Revocations++
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
}

// userinfo serves the OpenID Connect userinfo endpoint (needs the email scope).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u, tok, resp := s.authenticate(r)
	s.mu.Unlock()
	if resp != nil {
		resp.write(w)
		return
	}
	if !slices.Contains(tok.scopes, ScopeUserinfoEmail) && !slices.Contains(tok.scopes, "openid") {
		writeError(w, http.StatusForbidden, "Request had insufficient authentication scopes.", errItem{Domain: "global", Reason: "insufficientPermissions", Message: "Insufficient Permission"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub": subject(u.email), "email": u.email, "email_verified": true})
}

func subject(email string) string {
	sum := sha256.Sum256([]byte(email))
	return fmt.Sprintf("1%020d", binary.BigEndian.Uint64(sum[:8])%1e19)
}

// authenticate checks the bearer token. Call with s.mu held.
func (s *Server) authenticate(r *http.Request) (*user, *accessToken, *response) {
	h := r.Header.Get("Authorization")
	if h == "" {
		res := response{status: http.StatusUnauthorized, err: &apiError{
			Code:    http.StatusUnauthorized,
			Message: "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
			Errors:  []errItem{{Message: "Login Required.", Domain: "global", Reason: "required", Location: "Authorization", LocationType: "header"}},
			Status:  "UNAUTHENTICATED",
		}}
		return nil, nil, &res
	}
	invalid := response{status: http.StatusUnauthorized, err: &apiError{
		Code:    http.StatusUnauthorized,
		Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
		Errors:  []errItem{{Message: "Invalid Credentials", Domain: "global", Reason: "authError", Location: "Authorization", LocationType: "header"}},
		Status:  "UNAUTHENTICATED",
	}}
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return nil, nil, &invalid
	}
	t, ok := s.access[strings.TrimSpace(tok)]
	if !ok || t.revoked || (t.grant != nil && t.grant.revoked) || !s.now().Before(t.expires) {
		return nil, nil, &invalid
	}
	return s.users[t.user], t, nil
}

func hasAnyScope(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// IssueToken mints a token for user as if the OAuth flow had run with the
// given client and scopes (all calendar scopes and email when none are
// given). The token carries a refresh token and its Expiry follows the
// server clock.
func (s *Server) IssueToken(clientID, email string, scopes ...string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[clientID]; !ok {
		return nil, errors.New("gcaltest: unknown client " + clientID)
	}
	email = strings.ToLower(email)
	if _, ok := s.users[email]; !ok {
		return nil, errors.New("gcaltest: unknown user " + email)
	}
	if len(scopes) == 0 {
		scopes = []string{ScopeCalendar, ScopeUserinfoEmail, "openid"}
	}
	g := &grant{refreshToken: randomToken("1//gcaltest-refresh-"), clientID: clientID, user: email, scopes: normalizeScopes(scopes)}
	s.refresh[g.refreshToken] = g
	resp := s.mintAccess(email, g.scopes, g)
	return &oauth2.Token{
		AccessToken: resp.AccessToken, TokenType: "Bearer", RefreshToken: g.refreshToken,
		Expiry: s.now().Add(s.opts.AccessTokenTTL), ExpiresIn: resp.ExpiresIn,
	}, nil
}

// ExpireAccessTokens makes every access token issued so far invalid (as if
// they had all reached their expiry early); refresh tokens stay valid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.revoked = true
	}
}

// RevokeUser revokes every grant of a user (as if they removed the app's
// access in their Google account): refreshes answer invalid_grant.
func (s *Server) RevokeUser(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email = strings.ToLower(email)
	for _, g := range s.refresh {
		if g.user == email {
			g.revoked = true
		}
	}
	for _, t := range s.access {
		if t.user == email {
			t.revoked = true
		}
	}
}

// CodeChallenge reports the PKCE challenge and method recorded for an
// authorization code ("", "" when none or unknown).
func (s *Server) CodeChallenge(code string) (challenge, method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ac, ok := s.codes[code]; ok {
		return ac.challenge, ac.method
	}
	return "", ""
}
