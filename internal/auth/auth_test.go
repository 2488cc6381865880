package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spotlight/gateway/internal/auth"
)

const (
	issuer   = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_TEST"
	clientID = "app-client-1"
)

var (
	keyOnce sync.Once
	key1    *rsa.PrivateKey
	key2    *rsa.PrivateKey
)

func keys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if key1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if key2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return key1, key2
}

// jwksServer is a stand-in for Cognito's JWKS endpoint over real HTTP.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	down    atomic.Bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys map[string]*rsa.PublicKey) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(auth.MarshalJWKS(s.keys))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys map[string]*rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newVerifier(t *testing.T, srv *jwksServer, clk *clock) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Issuer:    issuer,
		ClientIDs: []string{clientID},
		JWKS:      auth.HTTPJWKS(srv.Client(), srv.URL+"/.well-known/jwks.json"),
		Leeway:    30 * time.Second,
		Now:       clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// accessClaims returns valid Cognito access-token claims at t0.
func accessClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": issuer, "sub": "user-123", "client_id": clientID, "token_use": "access",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
		"cognito:groups": []string{"mentor"}, "scope": "aws.cognito.signin.user.admin", "username": "ada",
	}
}

func sign(t *testing.T, key *rsa.PrivateKey, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyAcceptsValidAccessToken(t *testing.T) {
	t.Parallel()
	k1, _ := keys(t)
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	v := newVerifier(t, srv, &clock{now: t0})
	p, err := v.Verify(t.Context(), sign(t, k1, "k1", accessClaims()))
	if err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}
	if p.Subject != "user-123" || p.ClientID != clientID || !p.Has(auth.RoleMentor) || p.Has(auth.RoleAdmin) || p.Username != "ada" {
		t.Errorf("principal = %+v", p)
	}
}

// TestVerifyMachineClient: a client-credentials token (sub == client_id, no
// groups) is a service only with the configured service scope; without it
// it is authenticated but holds no role.
func TestVerifyMachineClient(t *testing.T) {
	t.Parallel()
	k1, _ := keys(t)
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	tests := []struct {
		name         string
		serviceScope string // "" keeps the default
		sub          string
		groups       []string
		scope        string
		service      bool
	}{
		{"configured scope", "gateway/bookings.write", clientID, nil, "gateway/bookings.write gateway/bookings.read", true},
		{"default scope", "", clientID, nil, auth.DefaultServiceScope, true},
		{"no scope", "", clientID, nil, "", false},
		{"another scope", "", clientID, nil, "gateway/bookings.read", false},
		{"scope as a prefix", "", clientID, nil, auth.DefaultServiceScope + ".read", false},
		{"default scope not configured", "gateway/bookings.write", clientID, nil, auth.DefaultServiceScope, false},
		{"a user with the scope", "", "user-123", nil, auth.DefaultServiceScope, false},
		{"groups with the scope", "", clientID, []string{"mentor"}, auth.DefaultServiceScope, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := auth.NewVerifier(auth.VerifierConfig{
				Issuer: issuer, ClientIDs: []string{clientID}, ServiceScope: tt.serviceScope,
				JWKS: auth.HTTPJWKS(srv.Client(), srv.URL+"/.well-known/jwks.json"), Now: (&clock{now: t0}).Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			c := accessClaims()
			c["sub"] = tt.sub
			delete(c, "cognito:groups")
			if tt.groups != nil {
				c["cognito:groups"] = tt.groups
			}
			c["scope"] = tt.scope
			p, err := v.Verify(t.Context(), sign(t, k1, "k1", c))
			if err != nil {
				t.Fatalf("Verify = %v, want an authenticated principal", err)
			}
			if p.IsService() != tt.service {
				t.Errorf("IsService() = %v, want %v (principal %+v)", p.IsService(), tt.service, p)
			}
			if !tt.service && tt.groups == nil && len(p.Roles) != 0 {
				t.Errorf("roles = %v, want none", p.Roles)
			}
			if tt.scope != "" && !p.HasScope(strings.Fields(tt.scope)[0]) {
				t.Errorf("scopes = %v, want %q", p.Scopes, tt.scope)
			}
		})
	}
}

// TestVerifyRejectsAttacks is the attack set: each token must be refused
// with ErrInvalidToken.
func TestVerifyRejectsAttacks(t *testing.T) {
	t.Parallel()
	k1, k2 := keys(t)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k1.PublicKey))})
	with := func(mod func(jwt.MapClaims)) string {
		c := accessClaims()
		mod(c)
		return sign(t, k1, "k1", c)
	}
	valid := sign(t, k1, "k1", accessClaims())
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
	}{
		{"expired", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix(); c["iat"] = t0.Add(-time.Hour).Unix() })},
		{"no exp", with(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(5 * time.Minute).Unix() })},
		{"issued in the future", with(func(c jwt.MapClaims) { c["iat"] = t0.Add(5 * time.Minute).Unix() })},
		{"wrong iss", with(func(c jwt.MapClaims) { c["iss"] = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_OTHER" })},
		{"client_id not allowed", with(func(c jwt.MapClaims) { c["client_id"] = "someone-else" })},
		{"no client_id, aud instead", with(func(c jwt.MapClaims) { delete(c, "client_id"); c["aud"] = clientID })},
		{"id token", with(func(c jwt.MapClaims) { c["token_use"] = "id" })},
		{"no sub", with(func(c jwt.MapClaims) { delete(c, "sub") })},
		{"alg none", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, accessClaims())
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()},
		{"HS256 with the public key as secret", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, accessClaims())
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString(pubPEM)
			return s
		}()},
		{"unknown kid", sign(t, k2, "k-unknown", accessClaims())},
		{"known kid, other key", sign(t, k2, "k1", accessClaims())},
		{"no kid", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, accessClaims())
			s, _ := tok.SignedString(k1)
			return s
		}()},
		{"tampered payload", func() string {
			c := accessClaims()
			c["cognito:groups"] = []string{"admin"}
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}()},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))},
		{"garbled", "not.a.jwt"},
		{"two parts", parts[0] + "." + parts[1]},
		{"garbage header", "%%%." + parts[1] + "." + parts[2]},
	}
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	v := newVerifier(t, srv, &clock{now: t0})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := v.Verify(t.Context(), tt.token)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
		})
	}
	if _, err := v.Verify(t.Context(), ""); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("Verify(\"\") = %v, want ErrNoToken", err)
	}
}

func TestLeewayToleratesSmallSkew(t *testing.T) {
	t.Parallel()
	k1, _ := keys(t)
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	clk := &clock{now: t0.Add(time.Hour + 10*time.Second)} // 10 s after exp
	v := newVerifier(t, srv, clk)
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", accessClaims())); err != nil {
		t.Fatalf("token 10s past exp with 30s leeway: %v", err)
	}
	clk.Add(time.Minute)
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", accessClaims())); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token 70s past exp: %v, want ErrInvalidToken", err)
	}
}

func TestJWKSDownKeepsLastGoodKeys(t *testing.T) {
	t.Parallel()
	k1, _ := keys(t)
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	clk := &clock{now: t0}
	v := newVerifier(t, srv, clk)
	tok := sign(t, k1, "k1", accessClaims())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	srv.down.Store(true)
	clk.Add(10 * time.Minute)
	c := accessClaims()
	c["iat"], c["nbf"], c["exp"] = clk.Now().Unix(), clk.Now().Unix(), clk.Now().Add(time.Hour).Unix()
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", c)); err != nil {
		t.Fatalf("valid token while JWKS is down: %v", err)
	}
	// An unknown kid while down triggers a fetch, which fails, and the old
	// keys stay. The token may be signed by a key the verifier could not
	// learn: unavailable (retry), not invalid.
	if _, err := v.Verify(t.Context(), sign(t, k1, "k-new", c)); !errors.Is(err, auth.ErrKeysUnavailable) || errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("unknown kid while JWKS down: %v, want ErrKeysUnavailable", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", c)); err != nil {
		t.Fatalf("known kid after a failed refetch: %v", err)
	}
	// Within the retry interval no new fetch; still unavailable.
	fetches := srv.fetches.Load()
	if _, err := v.Verify(t.Context(), sign(t, k1, "k-new", c)); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("unknown kid right after a failed fetch: %v, want ErrKeysUnavailable", err)
	}
	if n := srv.fetches.Load(); n != fetches {
		t.Fatalf("%d fetches within the retry interval, want none", n-fetches)
	}
	// Back up with a new key: the next try after the retry interval (not
	// the one-minute refetch interval) learns it.
	srv.setKeys(map[string]*rsa.PublicKey{"k1": &k1.PublicKey, "k-new": &k1.PublicKey})
	srv.down.Store(false)
	clk.Add(6 * time.Second)
	if _, err := v.Verify(t.Context(), sign(t, k1, "k-new", c)); err != nil {
		t.Fatalf("new kid once the JWKS is back: %v", err)
	}
	// A kid the fresh key set lacks is invalid again.
	if _, err := v.Verify(t.Context(), sign(t, k1, "k-other", c)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("kid missing from a fetched key set: %v, want ErrInvalidToken", err)
	}
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	t.Parallel()
	k1, k2 := keys(t)
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	clk := &clock{now: t0}
	v := newVerifier(t, srv, clk)
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", accessClaims())); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		v.Verify(t.Context(), sign(t, k2, "k2", accessClaims()))
	}
	if got := srv.fetches.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times within a minute, want 1", got)
	}
	// Key rotation: k2 is published; after the interval it is picked up.
	srv.setKeys(map[string]*rsa.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey})
	clk.Add(61 * time.Second)
	c := accessClaims()
	c["iat"], c["nbf"], c["exp"] = clk.Now().Unix(), clk.Now().Unix(), clk.Now().Add(time.Hour).Unix()
	if _, err := v.Verify(t.Context(), sign(t, k2, "k2", c)); err != nil {
		t.Fatalf("rotated key after refetch interval: %v", err)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", got)
	}
}

func TestDevIssuerGoesThroughTheVerifier(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d, err := auth.LoadOrCreateDevIssuer(dir, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	// A second load (the `gateway token` command) shares the key.
	d2, err := auth.LoadOrCreateDevIssuer(dir, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyID() != d2.KeyID() {
		t.Fatalf("key ids differ: %s vs %s", d.KeyID(), d2.KeyID())
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: d.Issuer(), ClientIDs: []string{auth.DevClientID}, JWKS: d.Fetcher()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := d2.Mint(auth.TokenRequest{Subject: "alice", Groups: []string{"candidate", "Admin"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "alice" || !p.Has(auth.RoleCandidate) || !p.IsAdmin() {
		t.Errorf("principal = %+v", p)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSlowJWKSDoesNotStallKnownKeys: while a fetch for an unknown kid waits
// on a JWKS that does not answer (it may take the HTTP client's whole
// timeout, and after a failure a fetch is tried every RetryInterval),
// tokens signed with a key already known verify at once.
func TestSlowJWKSDoesNotStallKnownKeys(t *testing.T) {
	t.Parallel()
	k1, _ := keys(t)
	release := make(chan struct{})
	var slow atomic.Bool
	var asked atomic.Int32
	srv := newJWKSServer(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if slow.Load() {
			<-release
		}
		inner.ServeHTTP(w, r)
	})
	clk := &clock{now: t0}
	v := newVerifier(t, srv, clk)
	if _, err := v.Verify(t.Context(), sign(t, k1, "k1", accessClaims())); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	clk.Add(2 * time.Minute)
	c := accessClaims()
	c["iat"], c["nbf"], c["exp"] = clk.Now().Unix(), clk.Now().Unix(), clk.Now().Add(time.Hour).Unix()
	fetching := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), sign(t, k1, "k-rotated", c))
		fetching <- err
	}()
	for asked.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(t.Context(), sign(t, k1, "k1", c))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("known kid during a slow fetch: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("a token with a known kid waited for the JWKS fetch of another kid")
	}
	close(release)
	<-fetching
}
