// Package auth verifies the bearer tokens of the public API: Amazon Cognito
// access tokens (RS256, key chosen by kid from the user pool's JWKS) in
// production, and tokens minted by the gateway's own dev issuer in the
// embedded default. Both go through the same Verifier; only the source of the
// JWKS document differs.
//
// A verified token becomes a Principal: the subject, the app client, the
// roles mapped from cognito:groups (candidate, mentor, admin) and the OAuth
// scopes. A machine client (a client-credentials token: no user, so sub is
// the client id) is a service only when its token carries the configured
// service scope; without it, it is authenticated but holds no role.
package auth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a person may do, from the token's cognito:groups.
type Role string

// The roles. Service marks a machine client (client-credentials grant)
// whose token carries the service scope (VerifierConfig.ServiceScope).
const (
	RoleCandidate Role = "candidate"
	RoleMentor    Role = "mentor"
	RoleAdmin     Role = "admin"
	RoleService   Role = "service"
)

// Principal is the authenticated caller.
type Principal struct {
	// Subject is the Cognito user's sub (or the client id of a machine client).
	Subject string
	// Username is the Cognito username, when present.
	Username string
	// ClientID is the app client the token was issued to.
	ClientID string
	// Roles from cognito:groups; RoleService for machine clients with the
	// service scope.
	Roles []Role
	// Scopes from the token's scope claim.
	Scopes []string
}

// Has reports whether the principal holds role.
func (p Principal) Has(role Role) bool { return slices.Contains(p.Roles, role) }

// HasScope reports whether the principal's token carries scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// IsAdmin reports an administrator.
func (p Principal) IsAdmin() bool { return p.Has(RoleAdmin) }

// IsService reports a machine client authorised by the service scope.
func (p Principal) IsService() bool { return p.Has(RoleService) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal stored by WithPrincipal.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Errors of Verify. Every rejected token wraps ErrInvalidToken; the wrapped
// detail is for logs, never for the client.
var (
	ErrNoToken      = errors.New("auth: no bearer token")
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrKeysUnavailable: the token names a key the verifier does not
	// have and the key set could not be fetched (the JWKS endpoint failed
	// or is unreachable), so the token can be neither accepted nor
	// refused: the request may be retried. It does not wrap
	// ErrInvalidToken.
	ErrKeysUnavailable = errors.New("auth: signing keys unavailable")
)

// claims are the Cognito access-token claims the gateway reads.
type claims struct {
	jwt.RegisteredClaims
	TokenUse string   `json:"token_use"`
	ClientID string   `json:"client_id"`
	Groups   []string `json:"cognito:groups,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	Username string   `json:"username,omitempty"`
}

// JWKSFetcher returns a JWKS document (RFC 7517).
type JWKSFetcher func(ctx context.Context) ([]byte, error)

// HTTPJWKS fetches a JWKS document over HTTP, as Cognito publishes it at
// {issuer}/.well-known/jwks.json.
func HTTPJWKS(client *http.Client, url string) JWKSFetcher {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("auth: fetch JWKS: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("auth: fetch JWKS: status %d", resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer is the required iss claim (https://cognito-idp.{region}.amazonaws.com/{poolId}).
	Issuer string
	// ClientIDs is the allowlist of client_id claims.
	ClientIDs []string
	// JWKS returns the key set; required.
	JWKS JWKSFetcher
	// ServiceScope is the OAuth scope (a Cognito resource server's
	// "identifier/scope") that makes a machine client a service, with
	// RoleService (default DefaultServiceScope). A machine client without
	// it is authenticated but holds no role.
	ServiceScope string
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// RefetchInterval is the least time between two JWKS fetches caused by
	// unknown kids (default 1 minute).
	RefetchInterval time.Duration
	// RetryInterval is the least time between two JWKS fetches after a
	// failed one (default 5 seconds): until a fetch succeeds, tokens with
	// an unknown kid get ErrKeysUnavailable, not ErrInvalidToken.
	RetryInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives key-refresh failures.
	Logger *slog.Logger
}

// DefaultServiceScope is the default of VerifierConfig.ServiceScope (and of
// GATEWAY_SERVICE_SCOPE): the scope "bookings" of a Cognito resource server
// "spotlight-gateway".
const DefaultServiceScope = "spotlight-gateway/bookings"

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey
	lastFetch time.Time
	// fetchFailed: the last fetch failed (see RetryInterval).
	fetchFailed bool
	// fetching is closed when the fetch in flight ends; nil when none is.
	fetching chan struct{}

	// verified caches principals of tokens that passed every check, by a
	// hash of the token, until the token expires: clients send the same
	// token for up to an hour, and the RSA check dominates the cost of a
	// request. Bounded; an arbitrary entry is evicted when full.
	cacheMu  sync.RWMutex
	verified map[[32]byte]cachedPrincipal
}

// cachedPrincipal is a verified token's principal and its expiry.
type cachedPrincipal struct {
	p   Principal
	exp time.Time
}

// maxCachedTokens bounds the verified-token cache.
const maxCachedTokens = 10_000

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.JWKS == nil || len(cfg.ClientIDs) == 0 {
		return nil, errors.New("auth: verifier needs Issuer, JWKS and ClientIDs")
	}
	if cfg.ServiceScope == "" {
		cfg.ServiceScope = DefaultServiceScope
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = time.Minute
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		cfg: cfg,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithIssuedAt(),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

// Verify checks raw (the compact JWT without "Bearer ") and returns its principal.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	sum := sha256.Sum256([]byte(raw))
	v.cacheMu.RLock()
	hit, ok := v.verified[sum]
	v.cacheMu.RUnlock()
	if ok && v.cfg.Now().Before(hit.exp.Add(v.cfg.Leeway)) {
		return hit.p, nil
	}
	var c claims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid")
		}
		return v.key(ctx, kid)
	})
	if errors.Is(err, ErrKeysUnavailable) {
		return Principal{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.TokenUse != "access" {
		return Principal{}, fmt.Errorf("%w: token_use %q is not access", ErrInvalidToken, c.TokenUse)
	}
	if !slices.Contains(v.cfg.ClientIDs, c.ClientID) {
		return Principal{}, fmt.Errorf("%w: client_id not allowed", ErrInvalidToken)
	}
	if c.Subject == "" {
		return Principal{}, fmt.Errorf("%w: no sub", ErrInvalidToken)
	}
	if c.IssuedAt == nil {
		return Principal{}, fmt.Errorf("%w: no iat", ErrInvalidToken)
	}
	p := Principal{Subject: c.Subject, Username: c.Username, ClientID: c.ClientID, Scopes: strings.Fields(c.Scope)}
	for _, g := range c.Groups {
		switch r := Role(strings.ToLower(g)); r {
		case RoleCandidate, RoleMentor, RoleAdmin:
			if !p.Has(r) {
				p.Roles = append(p.Roles, r)
			}
		}
	}
	// Client-credentials tokens have no user: Cognito sets sub to the
	// client id. Such a client is a service only when it was granted the
	// service scope; any other app client of the pool may get tokens too.
	if len(c.Groups) == 0 && c.Subject == c.ClientID && p.HasScope(v.cfg.ServiceScope) {
		p.Roles = append(p.Roles, RoleService)
	}
	v.remember(sum, p, c.ExpiresAt.Time)
	return p, nil
}

// remember caches a verified principal until exp.
func (v *Verifier) remember(sum [32]byte, p Principal, exp time.Time) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if v.verified == nil {
		v.verified = make(map[[32]byte]cachedPrincipal)
	}
	if len(v.verified) >= maxCachedTokens {
		now := v.cfg.Now()
		for k, e := range v.verified {
			if now.After(e.exp.Add(v.cfg.Leeway)) || len(v.verified) >= maxCachedTokens {
				delete(v.verified, k)
			}
			if len(v.verified) < maxCachedTokens/2 {
				break
			}
		}
	}
	v.verified[sum] = cachedPrincipal{p: p, exp: exp}
}

// key returns the public key for kid, fetching the JWKS when the kid is
// unknown (at most once per RefetchInterval, or per RetryInterval after a
// failed fetch). A failed fetch keeps the last good key set; until a fetch
// succeeds again an unknown kid is ErrKeysUnavailable, since the key may
// be one the verifier could not learn. The fetch runs without the lock:
// known kids never wait for it, and other unknown kids wait for its result
// instead of fetching again.
func (v *Verifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.Lock()
	for {
		if k, ok := v.keys[kid]; ok {
			v.mu.Unlock()
			return k, nil
		}
		if v.fetching == nil {
			break
		}
		ch := v.fetching
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
		}
		v.mu.Lock()
	}
	now := v.cfg.Now()
	wait := v.cfg.RefetchInterval
	if v.fetchFailed {
		wait = v.cfg.RetryInterval
	}
	if !v.lastFetch.IsZero() && now.Sub(v.lastFetch) < wait {
		failed := v.fetchFailed
		v.mu.Unlock()
		if failed {
			return nil, fmt.Errorf("%w: the last JWKS fetch failed", ErrKeysUnavailable)
		}
		return nil, errors.New("unknown kid")
	}
	v.lastFetch = now
	done := make(chan struct{})
	v.fetching = done
	v.mu.Unlock()

	// Not the request's context: the key set serves every request, and a
	// client hanging up must not count as a failed fetch. The fetcher
	// bounds the time (HTTPJWKS: its client's timeout).
	doc, err := v.cfg.JWKS(context.WithoutCancel(ctx))
	var keys map[string]*rsa.PublicKey
	if err == nil {
		keys, err = ParseJWKS(doc)
		if err != nil {
			err = fmt.Errorf("JWKS invalid: %w", err)
		}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	v.fetching = nil
	close(done)
	if err != nil {
		v.fetchFailed = true
		v.cfg.Logger.Warn("JWKS fetch failed; keeping the last good key set", "error", err)
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	v.fetchFailed = false
	v.keys = keys
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, errors.New("unknown kid")
}

// jwk is one RSA key of a JWKS document.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// ParseJWKS returns the RS256 signing keys of a JWKS document by kid.
func ParseJWKS(doc []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("auth: parse JWKS: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: JWKS has no usable RS256 keys")
	}
	return keys, nil
}

// MarshalJWKS encodes public keys as a JWKS document.
func MarshalJWKS(keys map[string]*rsa.PublicKey) []byte {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	for _, kid := range kids {
		k := keys[kid]
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	b, _ := json.Marshal(set)
	return b
}
