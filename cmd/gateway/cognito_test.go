package main

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spotlight/gateway/internal/auth"
)

// TestServeCognitoMode runs the gateway with Cognito auth against a JWKS
// server standing in for the user pool, and checks that a pool-signed access
// token is accepted, a dev token is not, and the dev JWKS is not served.
func TestServeCognitoMode(t *testing.T) {
	t.Parallel()
	key, jwksURL := poolJWKS(t)
	env := map[string]string{
		"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir(), "GATEWAY_AUTH_MODE": "cognito",
		"GATEWAY_COGNITO_REGION": "eu-central-1", "GATEWAY_COGNITO_USER_POOL_ID": "eu-central-1_Pool",
		"GATEWAY_COGNITO_CLIENT_IDS": "web-app", "GATEWAY_COGNITO_JWKS_URL": jwksURL,
	}
	url, _, _ := startGateway(t, env)

	signed := poolToken(t, key)
	if code, body, _ := get(t, url+"/v1/connections", signed); code == 401 {
		t.Fatalf("pool token refused: %s", body)
	}
	dev, err := auth.NewDevIssuer(key, auth.DevIssuerName).Mint(auth.TokenRequest{Subject: "user-1", Groups: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, url+"/v1/connections", dev); code != 401 {
		t.Fatalf("dev token in cognito mode = %d %s, want 401", code, body)
	}
	if code, _, _ := get(t, url+"/.well-known/jwks.json", ""); code != 404 {
		t.Fatalf("dev JWKS served in cognito mode: %d", code)
	}
}

// poolJWKS stands in for a Cognito user pool: a new signing key (kid
// pool-key-1) and the URL of a JWKS serving its public half.
func poolJWKS(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(auth.MarshalJWKS(map[string]*rsa.PublicKey{"pool-key-1": &key.PublicKey}))
	}))
	t.Cleanup(jwks.Close)
	return key, jwks.URL
}

// TestCognitoKeysUnreachable starts the gateway in Cognito mode while the
// pool's JWKS cannot be fetched (Cognito or the network path to it failing
// as a replica starts): a valid token is answered 503 with Retry-After, not
// 401 invalid-token (which tells the client its token is bad and makes it
// sign the user out), and once the JWKS answers again the token is accepted
// within seconds, not after the one-minute refetch throttle.
func TestCognitoKeysUnreachable(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write(auth.MarshalJWKS(map[string]*rsa.PublicKey{"pool-key-1": &key.PublicKey}))
	}))
	t.Cleanup(jwks.Close)
	env := map[string]string{
		"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir(), "GATEWAY_AUTH_MODE": "cognito",
		"GATEWAY_COGNITO_REGION": "eu-central-1", "GATEWAY_COGNITO_USER_POOL_ID": "eu-central-1_Pool",
		"GATEWAY_COGNITO_CLIENT_IDS": "web-app", "GATEWAY_COGNITO_JWKS_URL": jwks.URL,
	}
	url, _, _ := startGateway(t, env)
	signed := poolToken(t, key)
	for i := range 2 {
		code, body, h := get(t, url+"/v1/connections", signed)
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "problems/unavailable") {
			t.Errorf("request %d while the JWKS is unreachable = %d (Retry-After %q) %s, want 503 unavailable with Retry-After", i+1, code, h.Get("Retry-After"), body)
		}
	}
	up.Store(true)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, _ := get(t, url+"/v1/connections", signed)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after the JWKS came back, a valid token still gets %d %s", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// poolToken is an hour-long access token of user-1 (group candidate) for
// client web-app, signed with key as the test user pool's key pool-key-1.
func poolToken(t *testing.T, key *rsa.PrivateKey) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Pool", "sub": "user-1",
		"client_id": "web-app", "token_use": "access", "cognito:groups": []string{"candidate"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "pool-key-1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
