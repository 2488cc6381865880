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
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/sandbox"
)

const sandboxUsage = `usage: gateway sandbox zoom <action> <meeting-id> [flags]
       gateway sandbox jira status <issue-key> [--to STATUS]
       gateway sandbox caldav|google move|delete <booking-id> [flags]
       gateway sandbox google calendar <calendar-id> [--as EMAIL] [--name NAME] [--role ROLE]
       gateway sandbox google calendar <calendar-id> --delete [--as EMAIL]
       gateway sandbox caldav calendar <name> [--name NAME]
       gateway sandbox caldav calendar <name> --delete
       gateway sandbox caldav|google busy <calendar> --start TIME [--duration MINUTES] [--name TITLE]
       gateway sandbox google revoke [--as EMAIL]

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

Other calendars of an account, for a connection's busy_calendars:
google calendar: adds a calendar (an id like work@group.calendar.google.com)
to the calendar list of the Google account --as (default mentor@example.com),
named --name, with the access role --role: owner (the default: a calendar of
the account's own), writer, reader or freeBusyReader (someone else's calendar
shared with the account: the calendar of that id as it is when another sandbox
account has it, a new one otherwise).
caldav calendar: the sandbox CalDAV user creates the calendar <name> (its path
is /mentor/calendars/<name>/), shown as --name.
caldav|google busy: a busy event (not a booking) titled --name (default Busy)
from --start for --duration minutes (default 60) in the Google calendar
<calendar> (any calendar id; a primary calendar's id is its account's email)
or in the sandbox CalDAV user's calendar <name> or its path ("default" is the
one they start with); the sandbox Google pushes it to the gateway if it watches that
calendar.
google calendar --delete: the calendar's owner deletes it (it leaves every
account's calendar list; calls on it answer 404), or with --as it leaves the
calendar list of that account only: a calendar shared with the account is
unshared from it (the account loses access, the others keep it), one the
account owns is deleted. A primary calendar (an account's email) cannot be
deleted, as in Google.
caldav calendar --delete: the sandbox CalDAV user deletes the calendar <name>
(or its path) with its events, a WebDAV DELETE of the collection.

google revoke: the Google account --as (default mentor@example.com) removes
the app's access in its Google account settings: its grants are revoked, so
the gateway's next Google call for a connection of that account fails and the
connection shows needs_reauth until the mentor connects again.
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
	if len(args) >= 2 && args[0] == "google" && args[1] == sandbox.GoogleRevoke {
		if len(args) > 2 && !strings.HasPrefix(args[2], "-") {
			fmt.Fprint(stderr, sandboxUsage)
			return usageError{fmt.Sprintf("sandbox: google revoke takes no <id> (%q); name the account with --as", args[2])}
		}
		args = slices.Insert(slices.Clone(args), 2, "") // no id
	}
	if len(args) < 3 || !known[args[0]] || strings.HasPrefix(args[1], "-") || strings.HasPrefix(args[2], "-") {
		fmt.Fprint(stderr, sandboxUsage)
		return usageError{"sandbox: want zoom|jira|caldav|google <action> <id>"}
	}
	provider, action, id := args[0], args[1], args[2]
	fset := flag.NewFlagSet("sandbox "+provider+" "+action, flag.ContinueOnError)
	name := fset.String("name", "", "participant's display name (zoom join, leave); calendar's name (calendar); event's title (busy)")
	email := fset.String("email", "", "participant's email (zoom join, leave)")
	start := fset.String("start", "", "new start time, RFC 3339 (move); the event's start (busy)")
	duration := fset.Int("duration", 0, "new duration in minutes (move; 0 keeps it); the event's (busy; default 60)")
	to := fset.String("to", "", "status to move the issue to (jira status; default GATEWAY_JIRA_CANCEL_STATUS)")
	as := fset.String("as", "", "Google calendar to act in (google move, delete), account to add a calendar to (google calendar); default "+sandbox.DefaultGoogleCalendar)
	role := fset.String("role", "", "access role of the account on the calendar (google calendar): owner (default), writer, reader or freeBusyReader")
	del := fset.Bool("delete", false, "delete the calendar (calendar), or with --as take it out of that account's calendar list (google calendar)")
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
	path, body, err := sandboxRequest(provider, action, id, sandboxFlags{name: *name, email: *email, start: startTime,
		duration: *duration, to: *to, as: *as, role: *role, delete: *del, set: setFlags(fset)}, cfg)
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
	out, err := sandboxPost(ctx, urls[provider]+path, body)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", provider, action, err)
	}
	_, err = stdout.Write(out)
	return err
}

// sandboxFlags are the flags of a `gateway sandbox` command, parsed.
type sandboxFlags struct {
	name, email, to, as, role string
	start                     time.Time
	duration                  int
	delete                    bool
	set                       map[string]bool // the flags given
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fset *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// sandboxRequest returns the control path (on the provider's simulator)
// and body of a `gateway sandbox` command, or the usage mistake.
func sandboxRequest(provider, action, id string, f sandboxFlags, cfg config.Config) (string, any, error) {
	// only refuses the flags given that the command does not take.
	only := func(allowed ...string) error {
		for _, n := range []string{"name", "email", "start", "duration", "to", "as", "role", "delete"} {
			if f.set[n] && !slices.Contains(allowed, n) {
				return usageError{fmt.Sprintf("sandbox: %s %s takes no --%s", provider, action, n)}
			}
		}
		return nil
	}
	switch {
	case provider == "google" && action == sandbox.GoogleRevoke:
		if err := only("as"); err != nil {
			return "", nil, err
		}
		account := f.as
		if account == "" {
			account = sandbox.DefaultGoogleCalendar
		}
		if !sandbox.ValidGoogleCalendarID(account) {
			return "", nil, usageError{fmt.Sprintf("sandbox: --as %q is not an email", account)}
		}
		return sandbox.GoogleAccountsPath + url.PathEscape(account) + "/" + sandbox.GoogleRevoke, struct{}{}, nil
	case provider == "zoom":
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return "", nil, usageError{fmt.Sprintf("sandbox: meeting id %q is not a Zoom meeting id (a number)", id)}
		}
		req := sandbox.ZoomHostRequest{UserName: f.name, Email: f.email, DurationMinutes: f.duration, StartTime: f.start}
		return sandbox.ZoomHostPath + id + "/" + action, req, nil
	case provider == "jira":
		if action != "status" {
			return "", nil, usageError{fmt.Sprintf("sandbox: unknown jira action %q (status)", action)}
		}
		status := f.to
		if status == "" {
			status = cfg.Jira.CancelStatus
		}
		return sandbox.JiraHostPath + id + "/status", sandbox.JiraStatusRequest{Status: status}, nil
	case action == sandbox.CalendarMove || action == sandbox.CalendarDelete:
		prefix := map[string]string{"caldav": sandbox.CalDAVHostPath, "google": sandbox.GoogleHostPath}[provider]
		return prefix + id + "/" + action, sandbox.CalendarHostRequest{StartTime: f.start, DurationMinutes: f.duration, Calendar: f.as}, nil
	case action != "calendar" && action != sandbox.CalendarBusy:
		actions := "move, delete, calendar, busy"
		if provider == "google" {
			actions += ", revoke"
		}
		return "", nil, usageError{fmt.Sprintf("sandbox: unknown %s action %q (%s)", provider, action, actions)}
	}

	// calendar and busy: another calendar of the account, and busy time in it.
	if provider == "caldav" {
		// The calendar's path, as `caldav calendar` answers and the API
		// takes it, names it too.
		if name, ok := strings.CutPrefix(id, "/"+sandbox.CalDAVUser+"/calendars/"); ok {
			id = strings.TrimSuffix(name, "/")
		}
	}
	prefix, escaped := sandbox.CalDAVCalendarsPath, id
	if provider == "google" {
		if !sandbox.ValidGoogleCalendarID(id) {
			return "", nil, usageError{fmt.Sprintf("sandbox: %q is not a Google calendar id (like work@group.calendar.google.com)", id)}
		}
		prefix, escaped = sandbox.GoogleCalendarsPath, url.PathEscape(id)
	} else if !sandbox.ValidCalDAVCalendarName(id) {
		return "", nil, usageError{fmt.Sprintf("sandbox: %q is not a CalDAV calendar name (letters, digits, '.', '_', '-')", id)}
	}
	if action == sandbox.CalendarBusy {
		if err := only("name", "start", "duration"); err != nil {
			return "", nil, err
		}
		if f.start.IsZero() {
			return "", nil, usageError{"sandbox: busy needs --start (RFC 3339)"}
		}
		if f.duration < 0 || f.duration > 24*60 {
			return "", nil, usageError{fmt.Sprintf("sandbox: --duration %d: want 1 to 1440 minutes (default 60)", f.duration)}
		}
		return prefix + escaped + "/" + sandbox.CalendarBusy, sandbox.BusyRequest{StartTime: f.start, DurationMinutes: f.duration, Summary: f.name}, nil
	}
	if f.delete {
		allowed := []string{"delete"}
		if provider == "google" {
			allowed = append(allowed, "as")
			if slices.Contains(sandbox.GoogleUsers, strings.ToLower(id)) {
				return "", nil, usageError{fmt.Sprintf("sandbox: %q is the primary calendar of a sandbox account, which Google does not delete", id)}
			}
		}
		if err := only(allowed...); err != nil {
			return "", nil, err
		}
		return prefix + escaped + "/" + sandbox.CalendarDelete, sandbox.CalendarDeleteRequest{Account: f.as}, nil
	}
	allowed := []string{"name"}
	if provider == "google" {
		allowed = append(allowed, "as", "role")
	}
	if err := only(allowed...); err != nil {
		return "", nil, err
	}
	switch f.role {
	case "", gcaltest.RoleOwner, gcaltest.RoleWriter, gcaltest.RoleReader, gcaltest.RoleFreeBusyReader:
	default:
		return "", nil, usageError{fmt.Sprintf("sandbox: --role %q: want owner, writer, reader or freeBusyReader", f.role)}
	}
	return prefix + escaped + "/" + sandbox.CalendarAdd, sandbox.CalendarAddRequest{Account: f.as, Name: f.name, AccessRole: f.role}, nil
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
