package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/sandbox"
)

const sandboxUsage = `usage: gateway sandbox zoom <action> <meeting-id> [flags]

Plays Zoom's side of a session against a gateway running in sandbox mode (the
embedded default) from the same folder: the sandbox Zoom does what the action
says and sends the gateway the signed webhook Zoom would send for it.

actions:
  start    the meeting starts                      meeting.started
  join     a participant joins (--name, --email)   meeting.participant_joined
  leave    a participant leaves (--name, --email)  meeting.participant_left
  end      the meeting ends                        meeting.ended
  move     the host moves it (--start, --duration) meeting.updated
  delete   the host deletes it                     meeting.deleted

The meeting id is the provider_ref of the booking's zoom step.
`

// sandboxDir is where the sandbox simulators keep their state and
// addresses (sandbox.Options.StateDir).
func sandboxDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "sandbox") }

// sandboxURLsFile is where serve records the sandbox simulators' addresses.
func sandboxURLsFile(cfg config.Config) string {
	return filepath.Join(sandboxDir(cfg), sandbox.URLsFile)
}

// cmdSandbox runs `gateway sandbox zoom …` (see sandboxUsage).
func cmdSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, sandboxUsage)
		return nil
	}
	if len(args) < 3 || args[0] != "zoom" || strings.HasPrefix(args[1], "-") || strings.HasPrefix(args[2], "-") {
		fmt.Fprint(stderr, sandboxUsage)
		return usageError{"sandbox: want zoom <action> <meeting-id>"}
	}
	action, meeting := args[1], args[2]
	if _, err := strconv.ParseInt(meeting, 10, 64); err != nil {
		return usageError{fmt.Sprintf("sandbox: meeting id %q is not a Zoom meeting id (a number)", meeting)}
	}
	fset := flag.NewFlagSet("sandbox zoom "+action, flag.ContinueOnError)
	name := fset.String("name", "", "participant's display name (join, leave)")
	email := fset.String("email", "", "participant's email (join, leave)")
	start := fset.String("start", "", "new start time, RFC 3339 (move)")
	duration := fset.Int("duration", 0, "new duration in minutes (move; 0 keeps it)")
	if err := parseFlags(fset, args[3:], stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	req := sandbox.ZoomHostRequest{UserName: *name, Email: *email, DurationMinutes: *duration}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return usageError{fmt.Sprintf("sandbox: --start %q is not an RFC 3339 time", *start)}
		}
		req.StartTime = t
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	urls, err := sandbox.ReadURLs(sandboxURLsFile(cfg))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sandbox: no sandbox gateway has run from this folder (%s not found); start `gateway` here first", sandboxURLsFile(cfg))
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, urls["zoom"]+sandbox.ZoomHostPath+meeting+"/"+action, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("sandbox: the sandbox Zoom does not answer; is the gateway running from this folder? %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		if json.Unmarshal(out, &p) == nil && p.Detail != "" {
			return fmt.Errorf("sandbox zoom %s: %s", action, p.Detail)
		}
		return fmt.Errorf("sandbox zoom %s: HTTP %d: %s", action, resp.StatusCode, out)
	}
	_, err = stdout.Write(out)
	return err
}
