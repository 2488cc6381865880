package ssm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spotlight/gateway/internal/logtest"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/secretstest"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
)

// newSim starts a simulator on a loopback listener.
func newSim(t testing.TB) (*ssmtest.Server, *httptest.Server) {
	t.Helper()
	sim := ssmtest.New(ssmtest.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// awsConfig is what the gateway builds from the default chain, here with
// the simulator's static credentials.
func awsConfig(srv *httptest.Server, akid, secret string) aws.Config {
	return aws.Config{
		Region:      ssmtest.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, ""),
		HTTPClient:  srv.Client(),
	}
}

// sleeps records backoff delays instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.d)
}

func newStore(t testing.TB, srv *httptest.Server, cfg ssm.Config) *ssm.Store {
	t.Helper()
	cfg.Endpoint = srv.URL
	if cfg.Sleep == nil {
		cfg.Sleep = (&sleeps{}).sleep
	}
	s, err := ssm.NewWithAWSConfig(awsConfig(srv, ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	secretstest.Run(t, func(t *testing.T) secrets.Store {
		// Each call is an independent client (own cache, own path locks).
		return newStore(t, srv, ssm.Config{Tier: ssm.TierIntelligentTiering})
	})
}

func TestContractNoCache(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	secretstest.Run(t, func(t *testing.T) secrets.Store {
		return newStore(t, srv, ssm.Config{CacheTTL: -1})
	})
}

func TestSecureStringWithKMSKey(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	ctx := t.Context()
	tests := []struct {
		name, kms, wantKey string
	}{
		{"default key", "", ssmtest.DefaultKMSKeyID},
		{"custom key", "alias/spotlight-secrets", "alias/spotlight-secrets"},
	}
	for _, tc := range tests {
		s := newStore(t, srv, ssm.Config{KMSKeyID: tc.kms})
		p := "/spotlight/test/providers/" + strings.ReplaceAll(tc.name, " ", "-")
		if _, err := s.Put(ctx, p, []byte("client-secret-xyz"), 0); err != nil {
			t.Fatal(err)
		}
		st, ok := sim.Inspect(p)
		if !ok {
			t.Fatalf("%s: parameter not stored", tc.name)
		}
		if st.Type != "SecureString" || st.KeyID != tc.wantKey || st.Tier != "Standard" {
			t.Errorf("%s: stored as %s key %q tier %s, want SecureString %q Standard", tc.name, st.Type, st.KeyID, st.Tier, tc.wantKey)
		}
		if bytes.Contains(st.Raw, []byte("client-secret-xyz")) {
			t.Errorf("%s: value stored in clear", tc.name)
		}
	}
}

func TestThrottlingRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		throttle    int
		maxAttempts int
		wantErr     bool
	}{
		{"retried then success", 3, 5, false},
		{"exhausted", 5, 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, srv := newSim(t)
			sl := &sleeps{}
			s := newStore(t, srv, ssm.Config{MaxAttempts: tc.maxAttempts, Sleep: sl.sleep, CacheTTL: -1})
			ctx := t.Context()
			p := "/spotlight/test/users/u1/google"
			if _, err := s.Put(ctx, p, []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
			before := sim.Calls("GetParameter")
			sim.ThrottleNext(tc.throttle)
			got, err := s.Get(ctx, p)
			if tc.wantErr {
				if !errors.Is(err, ssm.ErrThrottled) {
					t.Fatalf("Get error = %v, want ErrThrottled", err)
				}
				if n := sim.Calls("GetParameter") - before; n != tc.maxAttempts {
					t.Errorf("GetParameter called %d times, want %d", n, tc.maxAttempts)
				}
				if sl.count() != tc.maxAttempts-1 {
					t.Errorf("slept %d times, want %d", sl.count(), tc.maxAttempts-1)
				}
				return
			}
			if err != nil || string(got.Value) != "v" {
				t.Fatalf("Get = %q, %v", got.Value, err)
			}
			if n := sim.Calls("GetParameter") - before; n != tc.throttle+1 {
				t.Errorf("GetParameter called %d times, want %d", n, tc.throttle+1)
			}
			if sl.count() != tc.throttle {
				t.Errorf("slept %d times, want %d", sl.count(), tc.throttle)
			}
		})
	}
}

func TestThrottledPutIsRetriedAndApplied(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	s := newStore(t, srv, ssm.Config{})
	ctx := t.Context()
	p := "/spotlight/test/providers/zoom"
	v1, err := s.Put(ctx, p, []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Throttle the read and the write of the next Put.
	sim.ThrottleNext(2)
	v2, err := s.Put(ctx, p, []byte("b"), v1)
	if err != nil || v2 != v1+1 {
		t.Fatalf("Put under throttling = %d, %v; want %d", v2, err, v1+1)
	}
}

func TestTierLimits(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	ctx := t.Context()
	big := bytes.Repeat([]byte("x"), 5000)
	tests := []struct {
		tier    ssm.Tier
		value   []byte
		wantErr error
	}{
		{ssm.TierStandard, bytes.Repeat([]byte("x"), 4000), nil},
		{ssm.TierStandard, big, secrets.ErrValueTooLarge},
		{ssm.TierAdvanced, big, nil},
		{ssm.TierIntelligentTiering, big, nil},
		{ssm.TierAdvanced, bytes.Repeat([]byte("x"), 9000), secrets.ErrValueTooLarge},
	}
	for i, tc := range tests {
		s := newStore(t, srv, ssm.Config{Tier: tc.tier})
		p := "/spotlight/test/tier/" + string(rune('a'+i))
		_, err := s.Put(ctx, p, tc.value, 0)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s with %d bytes: error = %v, want %v", tc.tier, len(tc.value), err, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), string(tc.tier)) {
			t.Errorf("error %q does not name the tier", err)
		}
	}
}

// TestDelayedWriteIsVoid: a writer whose expected version is stale is refused
// and leaves the winner's value in place.
func TestDelayedWriteIsVoid(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	ctx := t.Context()
	a := newStore(t, srv, ssm.Config{CacheTTL: -1})
	b := newStore(t, srv, ssm.Config{CacheTTL: -1})
	p := "/spotlight/test/users/u1/google"
	v1, err := a.Put(ctx, p, []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Interleave by hand: b writes v2 based on v1; a then tries to write
	// based on v1 too and must be refused without clobbering b.
	if _, err := b.Put(ctx, p, []byte("b"), v1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, p, []byte("a"), v1); !errors.Is(err, secrets.ErrVersionConflict) {
		t.Fatalf("stale Put error = %v, want conflict", err)
	}
	got, err := a.Get(ctx, p)
	if err != nil || string(got.Value) != "b" {
		t.Fatalf("Get = %q, %v; want b", got.Value, err)
	}
}

func TestVoidWritesAreSkipped(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	ctx := t.Context()
	s := newStore(t, srv, ssm.Config{CacheTTL: -1})
	p := "/spotlight/test/users/u2/zoom"
	v1, err := s.Put(ctx, p, []byte("good"), 0)
	if err != nil {
		t.Fatal(err)
	}
	// A racing writer that read v1 lost the race after another write landed:
	// simulate the two SSM writes landing as versions 2 (valid, based on 1)
	// and 3 (void, also based on 1) with a raw client.
	raw := rawPut(t, srv)
	raw(p, "gwsecret1;1;t;winner")
	raw(p, "gwsecret1;1;t;loser")
	got, err := s.Get(ctx, p)
	if err != nil || string(got.Value) != "winner" || got.Version != v1+1 {
		t.Fatalf("Get = %q v%d, %v; want winner v%d", got.Value, got.Version, err, v1+1)
	}
	list, err := s.List(ctx, "/spotlight/test/users/u2")
	if err != nil || len(list) != 1 || list[0].Version != v1+1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	// The next write is based on the latest SSM version (3) and is valid.
	v, err := s.Put(ctx, p, []byte("next"), v1+1)
	if err != nil || v != 4 {
		t.Fatalf("Put = %d, %v; want 4", v, err)
	}
	if st, _ := sim.Inspect(p); st.Version != 4 {
		t.Fatalf("simulator at version %d", st.Version)
	}
	// A value written by another tool (no header) is read verbatim.
	raw(p, "plain value from the console")
	got, err = s.Get(ctx, p)
	if err != nil || string(got.Value) != "plain value from the console" {
		t.Fatalf("Get(plain) = %q, %v", got.Value, err)
	}
}

func TestCacheInvalidatedOnWrite(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newStore(t, srv, ssm.Config{CacheTTL: 10 * time.Second, Now: clock})
	other := newStore(t, srv, ssm.Config{CacheTTL: -1})
	p := "/spotlight/test/providers/jira"
	v1, err := s.Put(ctx, p, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, p); err != nil {
		t.Fatal(err)
	}
	calls := sim.Calls("GetParameter")
	if got, _ := s.Get(ctx, p); string(got.Value) != "one" || sim.Calls("GetParameter") != calls {
		t.Fatalf("second Get went to SSM (%d calls) or returned %q", sim.Calls("GetParameter")-calls, got.Value)
	}
	// Another replica writes: within the TTL this client may serve the old value.
	if _, err := other.Put(ctx, p, []byte("two"), v1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, p); string(got.Value) != "one" {
		t.Fatalf("cached Get = %q", got.Value)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if got, _ := s.Get(ctx, p); string(got.Value) != "two" {
		t.Fatalf("Get after TTL = %q, want two", got.Value)
	}
	// Own write invalidates immediately.
	if _, err := s.Put(ctx, p, []byte("three"), v1+1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, p); string(got.Value) != "three" {
		t.Fatalf("Get after own Put = %q, want three", got.Value)
	}
	if err := s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get after own Delete error = %v", err)
	}
}

func TestWrongCredentialsRejected(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	tests := []struct{ name, akid, secret, want string }{
		{"unknown access key", "AKIAOTHER", ssmtest.DefaultSecretAccessKey, "UnrecognizedClientException"},
		{"wrong secret key", ssmtest.DefaultAccessKeyID, "not-the-secret", "InvalidSignatureException"},
	}
	for _, tc := range tests {
		s, err := ssm.NewWithAWSConfig(awsConfig(srv, tc.akid, tc.secret), ssm.Config{Endpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Get(t.Context(), "/spotlight/test/x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestNoValuesLogged(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	var buf logtest.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newStore(t, srv, ssm.Config{Logger: logger})
	ctx := t.Context()
	p := "/spotlight/test/users/u9/google"
	sim.ThrottleNext(2)
	if _, err := s.Put(ctx, p, []byte("TOPSECRET-refresh"), 0); err != nil {
		t.Fatal(err)
	}
	sim.ThrottleNext(1)
	if _, err := s.Get(ctx, p); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "ssm: retrying") {
		t.Fatalf("expected retry logs, got %q", out)
	}
	if strings.Contains(out, "TOPSECRET") {
		t.Fatalf("value logged: %s", out)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	tests := []struct {
		name string
		cfg  ssm.Config
		want string
	}{
		{"bad tier", ssm.Config{Tier: "Premium"}, "Tier"},
		{"bad endpoint", ssm.Config{Endpoint: "localhost:4566"}, "Endpoint"},
		{"negative attempts", ssm.Config{MaxAttempts: -1}, "MaxAttempts"},
	}
	for _, tc := range tests {
		_, err := ssm.NewWithAWSConfig(awsConfig(srv, "a", "b"), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want mention of %s", tc.name, err, tc.want)
		}
	}
}

// rawPut returns a function that writes a parameter value verbatim through
// a plain signed SDK call, as another tool (or a racing writer) would.
func rawPut(t *testing.T, srv *httptest.Server) func(name, value string) {
	t.Helper()
	c := newRawClient(srv)
	return func(name, value string) {
		t.Helper()
		if err := c.put(t.Context(), name, value); err != nil {
			t.Fatal(err)
		}
	}
}

var _ http.Handler = (*ssmtest.Server)(nil)

// TestNewDefaultChain builds the Store the way the gateway does: credentials
// and region from the default chain (here the environment), endpoint from
// GATEWAY_SSM_ENDPOINT. Not parallel: it sets environment variables.
func TestNewDefaultChain(t *testing.T) {
	sim, srv := newSim(t)
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", ssmtest.DefaultAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", ssmtest.DefaultSecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", ssmtest.DefaultRegion)
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s, err := ssm.New(t.Context(), ssm.Config{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := "/spotlight/dev/providers/zoom"
	if _, err := s.Put(t.Context(), p, []byte("s2s-secret"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := sim.Inspect(p); !ok {
		t.Fatal("Put did not reach the simulator")
	}
	got, err := s.Get(t.Context(), p)
	if err != nil || string(got.Value) != "s2s-secret" {
		t.Fatalf("Get = %q, %v", got.Value, err)
	}
}

// TestServerErrors: reads are retried after a 500; a write is not (its
// outcome would be unknown to the caller), so the error is returned.
func TestServerErrors(t *testing.T) {
	t.Parallel()
	sim, srv := newSim(t)
	sl := &sleeps{}
	s := newStore(t, srv, ssm.Config{CacheTTL: -1, Sleep: sl.sleep})
	ctx := t.Context()
	p := "/spotlight/test/providers/google"
	v1, err := s.Put(ctx, p, []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	sim.FailNext("", 2)
	if got, err := s.Get(ctx, p); err != nil || string(got.Value) != "a" || sl.count() != 2 {
		t.Fatalf("Get after 2 server errors = %q, %v (slept %d)", got.Value, err, sl.count())
	}
	before := sim.Calls("PutParameter")
	sim.FailNext("PutParameter", 1)
	if _, err := s.Put(ctx, p, []byte("b"), v1); err == nil || !strings.Contains(err.Error(), "InternalServerError") {
		t.Fatalf("Put with failing write error = %v, want InternalServerError", err)
	}
	if n := sim.Calls("PutParameter") - before; n != 1 {
		t.Fatalf("PutParameter attempted %d times, want 1 (writes are not retried)", n)
	}
	if got, err := s.Get(ctx, p); err != nil || string(got.Value) != "a" || got.Version != v1 {
		t.Fatalf("Get = %q v%d, %v", got.Value, got.Version, err)
	}
}

// TestAttemptTimeout: a read that hangs is abandoned after Config.Timeout
// and retried.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	sim := ssmtest.New(ssmtest.Options{})
	var mu sync.Mutex
	hung := 0
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hang := r.Header.Get("X-Amz-Target") == "AmazonSSM.GetParameter" && hung == 0
		if hang {
			hung++
		}
		mu.Unlock()
		if hang {
			select { // never answers; the client gives up
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first: release the hung handler
	s := newStore(t, srv, ssm.Config{Timeout: 100 * time.Millisecond, CacheTTL: -1})
	ctx := t.Context()
	p := "/spotlight/test/providers/zoom"
	if _, err := s.Put(ctx, p, []byte("v"), 0); err != nil { // its read hangs once, then is retried
		t.Fatal(err)
	}
	got, err := s.Get(ctx, p)
	if err != nil || string(got.Value) != "v" {
		t.Fatalf("Get = %q, %v", got.Value, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hung != 1 {
		t.Fatalf("hung %d requests, want 1", hung)
	}
}

// TestValueWithDoubleBraces: SSM refuses a parameter value with text wrapped
// in double braces ("Parameter value can't nest another parameter"); a
// password or token holding them is still stored, listed and read back.
func TestValueWithDoubleBraces(t *testing.T) {
	t.Parallel()
	_, srv := newSim(t)
	ctx := t.Context()
	s := newStore(t, srv, ssm.Config{CacheTTL: -1})
	for i, v := range []string{"pa{{ss}}word", "{{ssm:/spotlight/other}}", `{"password":"x{{y"}`, "a{{\n}}b"} {
		p := fmt.Sprintf("/spotlight/test/braces/%d", i)
		ver, err := s.Put(ctx, p, []byte(v), 0)
		if err != nil {
			t.Fatalf("Put(%q) = %v", v, err)
		}
		if ver, err = s.Put(ctx, p, []byte(v+"2"), ver); err != nil {
			t.Fatalf("Put(%q) over version 1 = %v", v+"2", err)
		}
		got, err := s.Get(ctx, p)
		if err != nil || string(got.Value) != v+"2" || got.Version != ver {
			t.Fatalf("Get = %q v%d, %v; want %q v%d", got.Value, got.Version, err, v+"2", ver)
		}
	}
	list, err := s.List(ctx, "/spotlight/test/braces")
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %v, %v; want 4 secrets", list, err)
	}
}
