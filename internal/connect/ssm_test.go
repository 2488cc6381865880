package connect_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// ssmReplica is a replica whose secret store is its own client of the SSM
// simulator at srv, keeping the production default cache of recent reads
// (5 s); mutate adjusts its config. read, when set, is called after each
// of its GetParameter calls.
func (h *harness) ssmReplica(t *testing.T, srv *httptest.Server, read func(), mutate func(*connect.Config)) (*connect.Service, secrets.Store) {
	t.Helper()
	hc := srv.Client()
	if read != nil {
		base := hc.Transport
		hc = &http.Client{Transport: afterFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := base.RoundTrip(req)
			if req.Header.Get("X-Amz-Target") == "AmazonSSM.GetParameter" {
				read()
			}
			return resp, err
		})}
	}
	sec, err := ssm.NewWithAWSConfig(aws.Config{
		Region:      ssmtest.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider(ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey, ""),
		HTTPClient:  hc,
	}, ssm.Config{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := connect.New(h.db, sec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.PutProviderCredentials(t.Context(), "google", map[string]string{"client_secret": gcaltest.DefaultClientSecret}); err != nil {
		t.Fatal(err)
	}
	return svc, sec
}

type afterFunc func(*http.Request) (*http.Response, error)

func (f afterFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestRefreshAcrossReplicasOnSSM: replicas on SSM, each with its cache of
// recent reads. Replica b needs the token while replica a refreshes it, and
// waits for a's refresh. b must then find a's token in SSM, not in its
// cache of what it read before: from there it refreshed the grant a second
// time, and where Google rotates refresh tokens the old one's invalid_grant
// looked like a revocation and the connection was marked needs_reauth.
func TestRefreshAcrossReplicasOnSSM(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{true, false} {
		name := map[bool]string{true: "rotating", false: "google-default"}[rotate]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, storetest.SQLite(t), gcaltest.Options{RotateRefreshTokens: rotate})
			srv := httptest.NewServer(ssmtest.New(ssmtest.Options{}))
			t.Cleanup(srv.Close)
			ctx := t.Context()

			bRead := make(chan struct{}, 100)
			b, _ := h.ssmReplica(t, srv, func() { bRead <- struct{}{} }, nil)
			type result struct {
				tok string
				err error
			}
			bDone := make(chan result, 1)
			var once sync.Once
			// While a's refresh request is on its way to Google (a holds the
			// refresh lease), b asks for the token and reads it from SSM.
			hook := roundTripFunc(func(req *recordedRequest) {
				if req.form.Get("grant_type") != "refresh_token" {
					return
				}
				once.Do(func() {
					for len(bRead) > 0 {
						<-bRead
					}
					go func() {
						tok, err := b.GoogleToken(ctx, "alice")
						if err != nil {
							bDone <- result{err: err}
							return
						}
						bDone <- result{tok: tok.AccessToken}
					}()
					<-bRead
				})
			})
			setup, sec := h.ssmReplica(t, srv, nil, nil)
			connectGoogle(t, setup, "alice")
			expireStored(t, sec, "alice")
			a, _ := h.ssmReplica(t, srv, nil, func(c *connect.Config) { c.GoogleBase = hook })

			var aTok string
			n := tokenRequestsDuring(h.google, func() {
				tok, err := a.GoogleToken(ctx, "alice")
				if err != nil {
					t.Fatalf("replica a: %v", err)
				}
				aTok = tok.AccessToken
				r := <-bDone
				if r.err != nil || r.tok != aTok {
					t.Errorf("replica b = %q, %v; want replica a's token", r.tok, r.err)
				}
			})
			if n != 1 {
				t.Errorf("%d token requests for one expiry, want 1", n)
			}
			if list, _ := b.List(ctx, "alice"); len(list) != 1 || list[0].Status != connect.StatusConnected {
				t.Fatalf("connection after refreshes on two replicas: %+v", list)
			}
		})
	}
}
