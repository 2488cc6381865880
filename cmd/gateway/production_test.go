package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// TestServeProduction starts the gateway as it runs on ECS — production,
// Cognito, live providers, SSM (the simulator), PostgreSQL — and checks the
// start-up rules an operator meets: without the providers' webhook secrets
// in SSM it refuses to start and names both parameters; with them it
// starts; a Jira secret removed from SSM later does not let unsigned Jira
// deliveries in; and a Sentry DSN stored in SSM (no SENTRY_DSN) reports a
// poison delivery to Sentry, without its body, signature or secret.
//
// Not parallel: the AWS SDK reads its credentials from the process
// environment.
func TestServeProduction(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	sim := httptest.NewServer(ssmtest.New(ssmtest.Options{}))
	defer sim.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", ssmtest.DefaultAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", ssmtest.DefaultSecretAccessKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	_, jwksURL := poolJWKS(t)

	// Sentry's ingest: the envelopes of the events the gateway reports.
	var (
		mu        sync.Mutex
		envelopes []string
	)
	sentrySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		envelopes = append(envelopes, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer sentrySrv.Close()

	env := map[string]string{
		"GATEWAY_ENV": "production", "GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_DATA_DIR": t.TempDir(),
		"GATEWAY_PUBLIC_URL": "https://gateway.spotlight.test", "GATEWAY_DATABASE_URL": dbURL,
		"GATEWAY_AUTH_MODE": "cognito", "GATEWAY_COGNITO_REGION": "eu-central-1",
		"GATEWAY_COGNITO_USER_POOL_ID": "eu-central-1_Pool", "GATEWAY_COGNITO_CLIENT_IDS": "web-app",
		"GATEWAY_COGNITO_JWKS_URL": jwksURL, "GATEWAY_PROVIDERS": "live",
		"GATEWAY_SECRETS_BACKEND": "ssm", "GATEWAY_SSM_ENDPOINT": sim.URL, "AWS_REGION": ssmtest.DefaultRegion,
		"GATEWAY_JIRA_SITE_URL":       "https://spotlight.atlassian.net",
		"GATEWAY_GOOGLE_REDIRECT_URL": "https://app.spotlight.test/connect/google",
	}

	err := run(t.Context(), []string{"serve"}, envOf(env), io.Discard, io.Discard)
	for _, want := range []string{
		"the Zoom webhook secret is required in production", "/spotlight/production/providers/zoom",
		"the Jira webhook secret is required in production", "/spotlight/production/providers/jira",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("serve without webhook secrets = %v, want it to say %q", err, want)
		}
	}

	store, err := ssm.NewWithAWSConfig(aws.Config{
		Region: ssmtest.DefaultRegion, HTTPClient: sim.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey, ""),
	}, ssm.Config{Endpoint: sim.URL})
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]int64{}
	dsn := strings.Replace(sentrySrv.URL, "http://", "http://publickey@", 1) + "/42"
	for path, v := range map[string]map[string]string{
		"/spotlight/production/providers/zoom":   {"webhook_secret": "zoom-production-secret"},
		"/spotlight/production/providers/jira":   {"webhook_secret": "jira-production-secret"},
		"/spotlight/production/providers/sentry": {"dsn": dsn},
	} {
		b, _ := json.Marshal(v)
		ver, err := store.Put(t.Context(), path, b, 0)
		if err != nil {
			t.Fatal(err)
		}
		versions[path] = ver
	}

	url, _, stop := startGateway(t, env)
	// The Jira credentials are replaced by a set without the webhook secret
	// (an operator rotating the API token), before the intake first reads
	// them: production still refuses unsigned Jira deliveries.
	b, _ := json.Marshal(map[string]string{"email": "gateway@spotlight.test", "api_token": "rotated-token"})
	if _, err := store.Put(t.Context(), "/spotlight/production/providers/jira", b, versions["/spotlight/production/providers/jira"]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // the SSM store's cache (5 s) forgets the start's read
	jiraBody := []byte(`{"webhookEvent":"jira:issue_updated","timestamp":1,"user":{"accountId":"human"},"issue":{"id":"1","key":"SPOT-1","fields":{}},` +
		`"changelog":{"items":[{"field":"status","fromString":"To Do","toString":"Cancelled"}]}}`)
	jreq, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/webhooks/jira", bytes.NewReader(jiraBody))
	jreq.Header.Set("Content-Type", "application/json")
	jreq.Header.Set("X-Atlassian-Webhook-Identifier", "8f1d2c3b-unsigned")
	jresp, err := http.DefaultClient.Do(jreq)
	if err != nil {
		t.Fatal(err)
	}
	jresp.Body.Close()
	if jresp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned Jira delivery in production without a stored secret = %d, want 401", jresp.StatusCode)
	}

	// A validly signed delivery whose body is not JSON is stored as poison
	// and reported to Sentry.
	body := []byte(`poison-body-7f3a: not JSON`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/webhooks/zoom", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-zm-request-timestamp", ts)
	sig := zoomtest.Sign("zoom-production-secret", ts, body)
	req.Header.Set("x-zm-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("poison delivery = %d, want 400", resp.StatusCode)
	}
	if err := stop(); err != nil { // flushes Sentry
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(envelopes) == 0 {
		t.Fatal("no event reached the Sentry DSN stored in SSM")
	}
	all := strings.Join(envelopes, "\n")
	if !strings.Contains(all, "poison zoom delivery") || !strings.Contains(all, webhooks.ErrUndecodable.Error()) {
		t.Fatalf("no poison report among the Sentry events:\n%s", all)
	}
	for what, secret := range map[string]string{"webhook secret": "zoom-production-secret", "signature": strings.TrimPrefix(sig, "v0="), "body": string(body)} {
		if strings.Contains(all, secret) {
			t.Errorf("a Sentry event carries the delivery's %s", what)
		}
	}
}
