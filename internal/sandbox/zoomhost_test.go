package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/sandbox"
	"github.com/spotlight/gateway/webhooks"
)

// zoomReceiver verifies deliveries with the gateway's own verifier and
// records the accepted ones; refuse makes it answer 500.
type zoomReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	refuse bool
}

func (z *zoomReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, err := webhooks.VerifyZoom([]string{"whsec"}, r.Header.Get("x-zm-request-timestamp"), body,
		r.Header.Get("x-zm-signature"), time.Now(), 5*time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.refuse {
		http.Error(w, "refused", http.StatusInternalServerError)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	z.events = append(z.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

func (z *zoomReceiver) last() map[string]any {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.events) == 0 {
		return nil
	}
	return z.events[len(z.events)-1]
}

// TestZoomHostControls drives every host control over HTTP against the
// served sandbox: each sends a delivery the gateway's verifier accepts, with
// the event and payload the action names; bad requests get a problem.
func TestZoomHostControls(t *testing.T) {
	t.Parallel()
	rc := &zoomReceiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	env, err := sandbox.Start(t.Context(), sandbox.Options{ZoomWebhookURL: hook.URL, ZoomWebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	zc := zoom.New(func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: sandbox.ZoomAccountID, ClientID: sandbox.ZoomClientID, ClientSecret: sandbox.ZoomClientSecret}, nil
	}, zoom.WithBaseURL(env.URLs["zoom"]), zoom.WithOAuthURL(env.URLs["zoom"]))
	start := time.Now().Add(24 * time.Hour).Truncate(time.Minute).UTC()
	m, err := zc.CreateMeeting(t.Context(), "host@example.com", "b-1", zoom.MeetingRequest{Topic: "S", StartTime: start, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	meeting := strconv.FormatInt(m.ID, 10)
	moved := start.Add(3 * time.Hour)

	post := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return postControl(t, env.URLs["zoom"]+sandbox.ZoomHostPath+path, method, body)
	}

	for _, tc := range []struct {
		action, body, event string
		check               func(payload map[string]any) bool
	}{
		{"start", "", "meeting.started", func(p map[string]any) bool { return p["object"].(map[string]any)["id"] == meeting }},
		{"join", `{"user_name":"Bob","email":"bob@example.com"}`, "meeting.participant_joined", func(p map[string]any) bool {
			part := p["object"].(map[string]any)["participant"].(map[string]any)
			return part["user_name"] == "Bob" && part["email"] == "bob@example.com" && part["join_time"] != nil
		}},
		{"leave", `{"email":"bob@example.com"}`, "meeting.participant_left", func(p map[string]any) bool {
			part := p["object"].(map[string]any)["participant"].(map[string]any)
			return part["email"] == "bob@example.com" && part["leave_time"] != nil && part["user_id"] == "sandbox-bob@example.com"
		}},
		{"end", "", "meeting.ended", func(p map[string]any) bool { return p["object"].(map[string]any)["end_time"] != nil }},
		{"move", `{"start_time":"` + moved.Format(time.RFC3339) + `","duration_minutes":30}`, "meeting.updated", func(p map[string]any) bool {
			return p["object"].(map[string]any)["start_time"] == moved.Format("2006-01-02T15:04:05Z") &&
				p["old_object"].(map[string]any)["start_time"] == start.Format("2006-01-02T15:04:05Z")
		}},
		{"delete", "", "meeting.deleted", func(p map[string]any) bool { return p["object"].(map[string]any)["id"] == float64(m.ID) }},
	} {
		status, out := post(http.MethodPost, meeting+"/"+tc.action, tc.body)
		if status != http.StatusOK || out["event"] != tc.event || out["meeting_id"] != float64(m.ID) {
			t.Errorf("%s: %d %v", tc.action, status, out)
			continue
		}
		ev := rc.last()
		if ev["event"] != tc.event || !tc.check(ev["payload"].(map[string]any)) {
			t.Errorf("%s: the receiver got %v", tc.action, ev)
		}
	}
	if _, err := zc.GetMeeting(t.Context(), m.ID); err == nil {
		t.Error("the meeting is still in the sandbox Zoom after the host deleted it")
	}

	m2, err := zc.CreateMeeting(t.Context(), "host@example.com", "b-2", zoom.MeetingRequest{Topic: "S", StartTime: start, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	meeting2 := strconv.FormatInt(m2.ID, 10)
	sent := len(rc.events)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"GET", http.MethodGet, meeting2 + "/start", "", http.StatusMethodNotAllowed},
		{"unknown action", http.MethodPost, meeting2 + "/explode", "", http.StatusNotFound},
		{"not a meeting id", http.MethodPost, "abc/start", "", http.StatusNotFound},
		{"no action", http.MethodPost, meeting2, "", http.StatusNotFound},
		{"unknown meeting", http.MethodPost, meeting + "/start", "", http.StatusNotFound},
		{"join without anyone", http.MethodPost, meeting2 + "/join", `{}`, http.StatusBadRequest},
		{"move without a time", http.MethodPost, meeting2 + "/move", `{"duration_minutes":30}`, http.StatusBadRequest},
		{"move with a negative duration", http.MethodPost, meeting2 + "/move", `{"start_time":"2030-01-01T10:00:00Z","duration_minutes":-1}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, meeting2 + "/join", `{"name":"Bob"}`, http.StatusBadRequest},
		{"not JSON", http.MethodPost, meeting2 + "/start", `{`, http.StatusBadRequest},
	} {
		if status, out := post(tc.method, tc.path, tc.body); status != tc.want || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.want)
		}
	}
	if len(rc.events) != sent {
		t.Errorf("refused controls sent %d deliveries", len(rc.events)-sent)
	}

	// A delivery the gateway refuses is a 502 that says so.
	rc.mu.Lock()
	rc.refuse = true
	rc.mu.Unlock()
	if status, out := post(http.MethodPost, meeting2+"/start", ""); status != http.StatusBadGateway ||
		!strings.Contains(out["detail"].(string), "did not take the meeting.started webhook") {
		t.Errorf("refused delivery: %d %v", status, out)
	}

	// The addresses file the `gateway sandbox` command reads.
	path := filepath.Join(t.TempDir(), "sandbox.json")
	if err := env.WriteURLs(path); err != nil {
		t.Fatal(err)
	}
	urls, err := sandbox.ReadURLs(path)
	if err != nil || urls["zoom"] != env.URLs["zoom"] || len(urls) != len(env.URLs) {
		t.Errorf("ReadURLs = %v, %v; want %v", urls, err, env.URLs)
	}
}

// TestZoomHostControlsNeedAnEndpoint: without a webhook URL the controls
// answer 503 instead of pretending to deliver.
func TestZoomHostControlsNeedAnEndpoint(t *testing.T) {
	t.Parallel()
	env, err := sandbox.Start(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	resp, err := http.Post(env.URLs["zoom"]+sandbox.ZoomHostPath+"123/start", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
}

// postControl sends a sandbox control request and decodes its answer,
// checking that every refusal is problem+json.
func postControl(t *testing.T, url, method, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: %d without problem+json", method, url, resp.StatusCode)
	}
	return resp.StatusCode, out
}
