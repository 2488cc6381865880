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
       gateway sandbox jira status <issue-key> [--to STATUS]
       gateway sandbox caldav|google move|delete <booking-id> [flags]

Plays the providers' side of a session against a gateway running in sandbox
mode (the embedded default) from the same folder: the sandbox simulator does
what the command says and sends the gateway the signed webhook the provider
would send for it.

zoom actions (the meeting id is the provider_ref of the booking's zoom step):
  start    the meeting starts                      meeting.started
  join     a participant joins (--name, --email)   meeting.participant_joined
  leave    a participant leaves (--name, --email)  meeting.participant_left
  end      the meeting ends                        meeting.ended
  move     the host moves it (--start, --duration) meeting.updated
  delete   the host deletes it                     meeting.deleted

jira status: a person (not the gateway's account) moves the issue (the
provider_ref of the booking's jira step) to STATUS, by default the status that
cancels a booking (GATEWAY_JIRA_CANCEL_STATUS)     jira:issue_updated

caldav move|delete: the sandbox CalDAV user (the mentor of the walkthrough)
moves (--start, --duration) or deletes the booking's event in their calendar;
the gateway sees it at its next poll (GATEWAY_CALDAV_POLL_INTERVAL, 10s here).
google move|delete: the same in the Google calendar --as (default
mentor@example.com); the sandbox Google pushes the change to the gateway.
`

// sandboxDir is where the sandbox simulators keep their state and
// addresses (sandbox.Options.StateDir).
func sandboxDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "sandbox") }

// sandboxURLsFile is where serve records the sandbox simulators' addresses.
func sandboxURLsFile(cfg config.Config) string {
	return filepath.Join(sandboxDir(cfg), sandbox.URLsFile)
}

// cmdSandbox runs `gateway sandbox …` (see sandboxUsage).
func cmdSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, sandboxUsage)
		return nil
	}
	known := map[string]bool{"zoom": true, "jira": true, "caldav": true, "google": true}
	if len(args) < 3 || !known[args[0]] || strings.HasPrefix(args[1], "-") || strings.HasPrefix(args[2], "-") {
		fmt.Fprint(stderr, sandboxUsage)
		return usageError{"sandbox: want zoom|jira|caldav|google <action> <id>"}
	}
	provider, action, id := args[0], args[1], args[2]
	fset := flag.NewFlagSet("sandbox "+provider+" "+action, flag.ContinueOnError)
	name := fset.String("name", "", "participant's display name (zoom join, leave)")
	email := fset.String("email", "", "participant's email (zoom join, leave)")
	start := fset.String("start", "", "new start time, RFC 3339 (move)")
	duration := fset.Int("duration", 0, "new duration in minutes (move; 0 keeps it)")
	to := fset.String("to", "", "status to move the issue to (jira status; default GATEWAY_JIRA_CANCEL_STATUS)")
	as := fset.String("as", "", "Google calendar to act in (google; default "+sandbox.DefaultGoogleCalendar+")")
	cfg, ok, err := parseThenLoad(fset, args[3:], stderr, getenv)
	if !ok {
		return err
	}
	var startTime time.Time
	if *start != "" {
		if startTime, err = time.Parse(time.RFC3339, *start); err != nil {
			return usageError{fmt.Sprintf("sandbox: --start %q is not an RFC 3339 time", *start)}
		}
	}
	var (
		path string
		body any
	)
	switch provider {
	case "zoom":
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return usageError{fmt.Sprintf("sandbox: meeting id %q is not a Zoom meeting id (a number)", id)}
		}
		req := sandbox.ZoomHostRequest{UserName: *name, Email: *email, DurationMinutes: *duration, StartTime: startTime}
		path, body = sandbox.ZoomHostPath+id+"/"+action, req
	case "caldav", "google":
		prefix := map[string]string{"caldav": sandbox.CalDAVHostPath, "google": sandbox.GoogleHostPath}[provider]
		path, body = prefix+id+"/"+action, sandbox.CalendarHostRequest{StartTime: startTime, DurationMinutes: *duration, Calendar: *as}
	case "jira":
		if action != "status" {
			return usageError{fmt.Sprintf("sandbox: unknown jira action %q (status)", action)}
		}
		status := *to
		if status == "" {
			status = cfg.Jira.CancelStatus
		}
		path, body = sandbox.JiraHostPath+id+"/status", sandbox.JiraStatusRequest{Status: status}
	}
	urls, err := sandbox.ReadURLs(sandboxURLsFile(cfg))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sandbox: no sandbox gateway has run from this folder (%s not found); start `gateway` here first", sandboxURLsFile(cfg))
	}
	if err != nil {
		return err
	}
	out, err := sandboxPost(ctx, urls[provider]+path, body)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", provider, action, err)
	}
	_, err = stdout.Write(out)
	return err
}

// sandboxPost sends a control request to a sandbox simulator and returns
// its answer, or the problem's detail as the error.
func sandboxPost(ctx context.Context, url string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the sandbox does not answer; is the gateway running from this folder? %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		if json.Unmarshal(out, &p) == nil && p.Detail != "" {
			return nil, errors.New(p.Detail)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, out)
	}
	return out, nil
}
