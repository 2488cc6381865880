package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/sandbox"
)

func sandboxZoom(env *sandbox.Env) *zoom.Client {
	return zoom.New(func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: sandbox.ZoomAccountID, ClientID: sandbox.ZoomClientID, ClientSecret: sandbox.ZoomClientSecret}, nil
	}, zoom.WithBaseURL(env.URLs["zoom"]), zoom.WithOAuthURL(env.URLs["zoom"]))
}

// TestStatePersists: with a StateDir, what the simulators hold survives a
// Close and a new Start on the same ports (a CalDAV connection stores its
// server's URL); a state that cannot be restored is set aside and that
// simulator starts empty instead of the sandbox failing to start.
func TestStatePersists(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sandbox")
	ctx := t.Context()
	env, err := sandbox.Start(ctx, sandbox.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := env.URLs
	start := time.Now().Add(48 * time.Hour).Truncate(time.Minute).UTC()
	m, err := sandboxZoom(env).CreateMeeting(ctx, "host@example.com", "b-1", zoom.MeetingRequest{Topic: "Kept", StartTime: start, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zoom", "google", "jira", "caldav", "urls"} {
		if fi, err := os.Stat(filepath.Join(dir, name+".json")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.json after Close: %v %v", name, fi, err)
		}
	}

	env, err = sandbox.Start(ctx, sandbox.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range first {
		if env.URLs[name] != u {
			t.Errorf("%s moved from %s to %s", name, u, env.URLs[name])
		}
	}
	got, err := sandboxZoom(env).GetMeeting(ctx, m.ID)
	if err != nil || got.Topic != "Kept" || !got.StartTime.Equal(start) {
		t.Errorf("meeting after the restart: %+v, %v", got, err)
	}
	if err := env.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A state file from an incompatible version: set aside, Zoom starts empty.
	if err := os.WriteFile(filepath.Join(dir, "zoom.json"), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err = sandbox.Start(ctx, sandbox.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("start with an unreadable state: %v", err)
	}
	defer env.Close(context.Background())
	if _, err := sandboxZoom(env).GetMeeting(ctx, m.ID); err == nil {
		t.Error("the meeting came back from a state that could not be restored")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "zoom.json.bad")); err != nil || string(b) != `{"version":99}` {
		t.Errorf("zoom.json.bad: %q %v", b, err)
	}
}

// TestStartWithoutStateDirKeepsNothing: tests (no StateDir) write no files.
func TestStartWithoutStateDirKeepsNothing(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	before, _ := os.ReadDir(wd)
	env, err := sandbox.Start(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadDir(wd); len(after) != len(before) {
		t.Errorf("Start without StateDir wrote into %s", wd)
	}
}
