package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DevClientID is the client_id of tokens minted by the dev issuer.
const DevClientID = "gateway-dev"

// DevIssuerName is the iss of dev tokens. It does not depend on the listen
// address, so tokens minted by `gateway token` stay valid whatever port the
// server runs on.
const DevIssuerName = "urn:spotlight:gateway:dev"

// DevKeyFile is the name of the dev signing key inside the data directory.
const DevKeyFile = "dev-signing-key.pem"

// DevIssuer mints Cognito-shaped access tokens for the embedded default
// (GATEWAY_AUTH_MODE=dev). Its key lives in the data directory so that the
// `gateway token` command and the server share it.
type DevIssuer struct {
	key    *rsa.PrivateKey
	kid    string
	issuer string
	now    func() time.Time
}

// LoadDevIssuer reads dataDir/dev-signing-key.pem, the key a server
// created; the error wraps fs.ErrNotExist when there is none.
func LoadDevIssuer(dataDir, issuer string) (*DevIssuer, error) {
	path := filepath.Join(dataDir, DevKeyFile)
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read dev key: %w", err)
	}
	return parseDevKey(path, pemBytes, issuer)
}

// LoadOrCreateDevIssuer reads dataDir/dev-signing-key.pem, creating a new
// RSA-2048 key (mode 0600) when there is none. issuer is the iss of minted tokens.
func LoadOrCreateDevIssuer(dataDir, issuer string) (*DevIssuer, error) {
	path := filepath.Join(dataDir, DevKeyFile)
	pemBytes, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("auth: generate dev key: %w", err)
		}
		pemBytes = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(key)})
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("auth: create data dir: %w", err)
		}
		// O_EXCL: when the server and `gateway token` race, one key wins and the other reads it.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateDevIssuer(dataDir, issuer)
		}
		if err != nil {
			return nil, fmt.Errorf("auth: write dev key: %w", err)
		}
		if _, err := f.Write(pemBytes); err != nil {
			f.Close()
			return nil, fmt.Errorf("auth: write dev key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("auth: read dev key: %w", err)
	}
	return parseDevKey(path, pemBytes, issuer)
}

// parseDevKey parses the PEM of the dev key read from path.
func parseDevKey(path string, pemBytes []byte, issuer string) (*DevIssuer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("auth: %s is not PEM", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse dev key: %w", err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: %s is not an RSA key", path)
	}
	return NewDevIssuer(key, issuer), nil
}

// NewDevIssuer returns an issuer signing with key.
func NewDevIssuer(key *rsa.PrivateKey, issuer string) *DevIssuer {
	sum := sha256.Sum256(key.PublicKey.N.Bytes())
	return &DevIssuer{key: key, kid: "dev-" + base64.RawURLEncoding.EncodeToString(sum[:8]), issuer: issuer, now: time.Now}
}

func mustPKCS8(key *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	return b
}

// Issuer returns the iss claim of minted tokens.
func (d *DevIssuer) Issuer() string { return d.issuer }

// KeyID returns the kid of minted tokens.
func (d *DevIssuer) KeyID() string { return d.kid }

// JWKS returns the issuer's public key set, served at /.well-known/jwks.json.
func (d *DevIssuer) JWKS() []byte {
	return MarshalJWKS(map[string]*rsa.PublicKey{d.kid: &d.key.PublicKey})
}

// Fetcher returns a JWKSFetcher that reads the issuer's own key set, so the
// dev mode goes through the same Verifier as Cognito.
func (d *DevIssuer) Fetcher() JWKSFetcher {
	return func(context.Context) ([]byte, error) { return d.JWKS(), nil }
}

// TokenRequest describes a token to mint.
type TokenRequest struct {
	Subject string
	Groups  []string
	Scopes  []string
	TTL     time.Duration
	// ClientID defaults to DevClientID.
	ClientID string
}

// Mint signs an access token shaped like Cognito's.
func (d *DevIssuer) Mint(r TokenRequest) (string, error) {
	if r.Subject == "" {
		return "", errors.New("auth: mint: subject is required")
	}
	if r.TTL <= 0 {
		r.TTL = 12 * time.Hour
	}
	if r.ClientID == "" {
		r.ClientID = DevClientID
	}
	now := d.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    d.issuer,
			Subject:   r.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(r.TTL)),
			ID:        randomID(),
		},
		TokenUse: "access",
		ClientID: r.ClientID,
		Groups:   r.Groups,
		Scope:    strings.Join(r.Scopes, " "),
		Username: r.Subject,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = d.kid
	return t.SignedString(d.key)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
