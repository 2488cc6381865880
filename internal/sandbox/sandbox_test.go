package sandbox_test

import (
	"net/http"
	"testing"

	"github.com/spotlight/gateway/internal/sandbox"
)

// TestStartServesEverySimulator checks that each simulator answers over
// real HTTP and enforces its auth (an unauthenticated call is refused).
func TestStartServesEverySimulator(t *testing.T) {
	t.Parallel()
	env, err := sandbox.Start(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close(t.Context())
	probes := map[string]struct {
		method, path string
		want         int
	}{
		"zoom":   {"GET", "/v2/users/me/meetings", http.StatusUnauthorized},
		"google": {"GET", "/calendar/v3/users/me/calendarList", http.StatusUnauthorized},
		"jira":   {"GET", "/rest/api/3/issue/SPOT-1", http.StatusUnauthorized},
		"caldav": {"PROPFIND", "/", http.StatusUnauthorized},
	}
	if len(env.URLs) != len(probes) {
		t.Fatalf("URLs = %v, want %d providers", env.URLs, len(probes))
	}
	for name, p := range probes {
		req, _ := http.NewRequestWithContext(t.Context(), p.method, env.URLs[name]+p.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != p.want {
			t.Errorf("%s %s %s = %d, want %d", name, p.method, p.path, resp.StatusCode, p.want)
		}
	}
}
