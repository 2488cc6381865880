package connect_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

// TestProviderCredentialsMustBeWhole: a PUT replaces the stored set, so a
// set lacking a field its provider requires is refused, naming the missing
// fields, and the working set stays (a Jira set of only webhook_secret used
// to replace the service account and break Jira).
func TestProviderCredentialsMustBeWhole(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, nil)
		ctx := t.Context()
		whole := map[string]map[string]string{
			"zoom":   {"account_id": "acct", "client_id": "zid", "client_secret": "zsecret"},
			"jira":   {"email": "bot@example.com", "api_token": "tok"},
			"google": {"client_secret": "gsecret"},
			"sentry": {"dsn": "https://public@sentry.example/1"},
		}
		for p, f := range whole {
			if err := svc.PutProviderCredentials(ctx, p, f); err != nil {
				t.Fatalf("%s: whole set: %v", p, err)
			}
		}
		tests := []struct {
			provider string
			fields   map[string]string
			missing  []string
		}{
			{"jira", map[string]string{"webhook_secret": "wh"}, []string{"api_token", "email"}},
			{"jira", map[string]string{"email": "bot@example.com", "site_url": "https://x.atlassian.net"}, []string{"api_token"}},
			{"zoom", map[string]string{"webhook_secret": "wh", "webhook_secret_next": "wh2"}, []string{"account_id", "client_id", "client_secret"}},
			{"zoom", map[string]string{"account_id": "acct", "client_secret": "zsecret"}, []string{"client_id"}},
			{"google", map[string]string{"client_id": "gid"}, []string{"client_secret"}},
			{"sentry", map[string]string{}, []string{"dsn"}},
		}
		for _, tt := range tests {
			err := svc.PutProviderCredentials(ctx, tt.provider, tt.fields)
			var fe *connect.FieldsError
			if !errors.As(err, &fe) {
				t.Errorf("%s %v: err %v, want a FieldsError", tt.provider, tt.fields, err)
				continue
			}
			if diff := cmp.Diff(fe.Missing, tt.missing); diff != "" || len(fe.Unknown)+len(fe.Invalid) != 0 {
				t.Errorf("%s %v: %v; missing (-got +want):\n%s", tt.provider, tt.fields, err, diff)
			}
			m, err := svc.ProviderSecret(ctx, tt.provider)
			if err != nil || !maps.Equal(m, whole[tt.provider]) {
				t.Errorf("%s: stored set after a refused PUT: %v %v", tt.provider, err, slices.Sorted(maps.Keys(m)))
			}
		}
		// A whole set with the optional fields is stored.
		if err := svc.PutProviderCredentials(ctx, "jira", map[string]string{"email": "bot@example.com", "api_token": "tok", "webhook_secret": "wh"}); err != nil {
			t.Fatal(err)
		}
	})
}
