package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/internal/sandbox"
)

// RequireShellToolsEnv makes TestReadmeWalkthrough fail, instead of
// skipping, when bash, curl or jq is missing (scripts/test sets it after
// installing them).
const RequireShellToolsEnv = "GATEWAY_REQUIRE_SHELL_TOOLS"

// readmeBlock returns the first shell block under the README heading.
func readmeBlock(readme, heading string) (string, bool) {
	_, rest, ok := strings.Cut(readme, heading+"\n")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "```")
	return block, ok
}

// runWalkthrough starts a gateway in its embedded default in a fresh
// folder and runs the README's shell blocks under headings in it with bash,
// verbatim but for `go run ./cmd/gateway` (the built binary instead) and the
// address. It returns the gateway (stopped at the end of the test), the
// folder it runs from and the lines the blocks printed.
func runWalkthrough(t *testing.T, ctx context.Context, headings ...string) (gw *Gateway, work string, lines []string) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(RequireShellToolsEnv) != "" {
				t.Fatalf("%s is required (%s is set): %v", tool, RequireShellToolsEnv, err)
			}
			t.Skipf("the README walkthrough needs %s: %v", tool, err)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, heading := range headings {
		b, ok := readmeBlock(string(readme), heading)
		if !ok {
			t.Fatalf("README.md has no sh block under %q", heading)
		}
		block += b
	}

	work, gw = startEmbedded(t, ctx)

	script := block
	for old, repl := range map[string]string{
		`gw() { go run ./cmd/gateway "$@"; }`: `gw() { "` + binary + `" "$@"; }`,
		`API=http://127.0.0.1:8080`:           `API=` + gw.URL,
	} {
		if !strings.Contains(script, old) {
			t.Fatalf("the walkthrough no longer contains %q; update this test with it", old)
		}
		script = strings.ReplaceAll(script, old, repl)
	}
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = work // `gateway token` finds the server's ./data/dev-signing-key.pem
	cmd.Env = newcomerEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("walkthrough: %v\nstdout:\n%s\nstderr:\n%s\ngateway log:\n%s", err, out, stderr.String(), gw.LogTail(30))
	}
	return gw, work, strings.Split(strings.TrimSpace(string(out)), "\n")
}

// clientAs returns an API client acting as sub in group, with a dev token
// minted by the gateway's `gateway token`.
func clientAs(t *testing.T, ctx context.Context, gw *Gateway, sub, group string) *client.ClientWithResponses {
	t.Helper()
	tok, err := gw.Token(ctx, sub, group)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gw.Client(tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newcomerEnv is this process's environment without any GATEWAY_ variable,
// as a newcomer's shell has it.
func newcomerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// playSandbox runs `gateway sandbox args…` from the walkthrough's folder.
func playSandbox(t *testing.T, ctx context.Context, work string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, append([]string{"sandbox"}, args...)...)
	cmd.Dir, cmd.Env = work, newcomerEnv()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gateway sandbox %v: %v\n%s", args, err, msg)
	}
}

// TestReadmeWalkthrough runs the README's sandbox walkthrough as a newcomer
// would, against the real binary in its embedded default (SQLite in
// ./data, dev auth, sandbox providers): the shell blocks of "Book a session
// in the sandbox" and "Play Zoom's side" verbatim, but for `go run
// ./cmd/gateway` (the built binary instead) and the address. Every answer
// the blocks print must be the success they describe: the booking is
// confirmed, then the sandbox Zoom's webhooks take it to completed with the
// candidate's attendance recorded.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	gw, _, lines := runWalkthrough(t, ctx, "### Book a session in the sandbox", "### Play Zoom's side")

	// The blocks print, one per line: the schedule, the CalDAV connection,
	// the Google connection, the chosen start and the booking; then the four
	// Zoom host controls, the booking's status and its attendance.
	if len(lines) != 11 {
		t.Fatalf("walkthrough printed %d lines, want 11:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var schedule struct {
		MentorID string `json:"mentor_id"`
	}
	var conn struct {
		Provider, Status string
	}
	decode := func(i int, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatalf("line %d is not the JSON answer it should be: %v\n%s", i+1, err, lines[i])
		}
	}
	if decode(0, &schedule); schedule.MentorID != "mentor-ada" {
		t.Errorf("schedule answer: %s", lines[0])
	}
	for i, want := range []string{"caldav", "google"} {
		conn.Provider, conn.Status = "", ""
		if decode(1+i, &conn); conn.Provider != want || conn.Status != "connected" {
			t.Errorf("%s connection answer: %s", want, lines[1+i])
		}
	}
	start, err := time.Parse(time.RFC3339, lines[3])
	if err != nil || !start.After(time.Now().Add(12*time.Hour)) {
		t.Errorf("chosen start %q: %v (want a slot at least 12 h ahead)", lines[3], err)
	}
	var b struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		JoinURL string `json:"join_url"`
		Start   string `json:"start"`
	}
	if decode(4, &b); b.Status != "confirmed" || !strings.HasPrefix(b.JoinURL, "https://") {
		t.Fatalf("booking answer is not a confirmed booking with a join URL: %s", lines[4])
	}
	if at, err := time.Parse(time.RFC3339, b.Start); err != nil || !at.Equal(start) {
		t.Errorf("booked start %q, want the chosen %s", b.Start, start)
	}

	for i, want := range []string{"meeting.started", "meeting.participant_joined", "meeting.participant_left", "meeting.ended"} {
		var sent struct {
			MeetingID int64  `json:"meeting_id"`
			Event     string `json:"event"`
		}
		if decode(5+i, &sent); sent.Event != want || sent.MeetingID == 0 {
			t.Errorf("sandbox zoom answer %d: %s, want %s", i+1, lines[5+i], want)
		}
	}
	if lines[9] != "completed" {
		t.Errorf("status after the meeting ended: %q, want completed", lines[9])
	}
	var attendance struct {
		Items []struct {
			Email string `json:"email"`
			Event string `json:"event"`
		} `json:"items"`
	}
	if decode(10, &attendance); len(attendance.Items) != 2 || attendance.Items[0].Event != "joined" ||
		attendance.Items[1].Event != "left" || attendance.Items[0].Email != "candidate@example.com" {
		t.Errorf("attendance: %s", lines[10])
	}

	// The optional steps finish after the answer (the README says so).
	c := clientAs(t, ctx, gw, "readme-admin", "admin")
	got, err := GetBooking(ctx, c, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got.Steps {
		if st.State != "done" {
			t.Errorf("step %s is %s, want done", st.Name, st.State)
		}
	}
}

// sandboxSession is the walkthrough's booking block run against a fresh
// gateway in its embedded default.
type sandboxSession struct {
	gw     *Gateway
	work   string         // the folder it runs from
	booked client.Booking // the booking the block printed
	cand   *client.ClientWithResponses
}

// bookInSandbox runs the README's "Book a session in the sandbox" block and
// returns its booking and a client acting as its candidate (cand-bob).
func bookInSandbox(t *testing.T, ctx context.Context) sandboxSession {
	t.Helper()
	gw, work, lines := runWalkthrough(t, ctx, "### Book a session in the sandbox")
	ss := sandboxSession{gw: gw, work: work}
	if len(lines) != 5 || json.Unmarshal([]byte(lines[4]), &ss.booked) != nil {
		t.Fatalf("walkthrough output:\n%s", strings.Join(lines, "\n"))
	}
	ss.cand = clientAs(t, ctx, gw, "cand-bob", "candidate")
	return ss
}

// slots returns at least n free slots of the walkthrough's mentor in the
// week after from.
func (ss sandboxSession) slots(t *testing.T, ctx context.Context, from time.Time, n int) []client.Slot {
	t.Helper()
	avail, err := ss.cand.GetMentorAvailabilityWithResponse(ctx, "mentor-ada", &client.GetMentorAvailabilityParams{From: from, To: from.Add(8 * 24 * time.Hour)})
	if err != nil || avail.JSON200 == nil || len(avail.JSON200.Slots) < n {
		t.Fatalf("availability: %v %v", err, avail)
	}
	return avail.JSON200.Slots
}

// TestSandboxSurvivesRestart: a booking made in the embedded default is
// still whole after the gateway restarts, because the sandbox simulators
// keep their state (and their ports) in ./data/sandbox: it reschedules with
// the same Zoom meeting, calendar events and Jira issue, all moved, and a
// person moving the issue to the cancel status in Jira then cancels it
// everywhere. Before, the simulators started empty: the reschedule
// recreated the meeting, the candidate's Google grant was gone (401) and
// the mentor's CalDAV server had moved to another port.
func TestSandboxSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	ss := bookInSandbox(t, ctx)
	gw, work, c := ss.gw, ss.work, ss.cand
	slots := ss.slots(t, ctx, time.Now().Add(24*time.Hour).Truncate(24*time.Hour), 6)
	first, moved := slots[3].Start, slots[5].Start
	out, err := Book(ctx, c, Request{Key: uuid.NewString(), Body: client.CreateBookingRequest{
		MentorId: "mentor-ada", Start: first, DurationMinutes: 30, Timezone: "Europe/Berlin", Topic: "restart",
	}})
	if err != nil || out.Booking == nil {
		t.Fatalf("book: %v %d %s", err, out.Status, out.Body)
	}
	id := out.Booking.Id.String()
	before, err := Drain(ctx, c, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	refs := stepRefs(t, before[id], "done")

	if err := gw.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}

	etag := before[id].Etag
	resp, err := c.RescheduleBookingWithResponse(ctx, out.Booking.Id, &client.RescheduleBookingParams{IfMatch: &etag},
		client.RescheduleBookingRequest{Start: moved})
	if err != nil || (resp.StatusCode() != 200 && resp.StatusCode() != 202) {
		t.Fatalf("reschedule after the restart: %v %v", err, resp)
	}
	var after client.Booking
	waitFor(t, ctx, "the reschedule to reach every provider", func() bool {
		after, err = GetBooking(ctx, c, id)
		return err == nil && Terminal(after) && after.Start.Equal(moved)
	})
	if after.Status != "confirmed" {
		t.Fatalf("after the reschedule: %s, steps %+v", after.Status, after.Steps)
	}
	for name, ref := range stepRefs(t, after, "done") {
		if ref != refs[name] {
			t.Errorf("step %s: %s before the restart, %s after: recreated instead of moved", name, refs[name], ref)
		}
	}

	// A person cancels it in Jira (the sandbox's person control, through
	// the CLI): the Jira webhook cancels the booking everywhere.
	playSandbox(t, ctx, work, "jira", "status", refs["jira"])
	waitFor(t, ctx, "the cancellation to reach every provider", func() bool {
		after, err = GetBooking(ctx, c, id)
		return err == nil && after.Status == "cancelled" && Terminal(client.Booking{Status: "confirmed", Steps: after.Steps})
	})
	stepRefs(t, after, "compensated")
}

// stepRefs checks that every step of b is in state and returns each step's
// provider reference.
func stepRefs(t *testing.T, b client.Booking, state string) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for _, st := range b.Steps {
		if string(st.State) != state || st.ProviderRef == nil {
			t.Errorf("step %s is %s (ref %v, error %v), want %s", st.Name, st.State, st.ProviderRef, st.LastError, state)
			continue
		}
		refs[string(st.Name)] = *st.ProviderRef
	}
	if len(refs) != 4 {
		t.Errorf("%d steps with a reference, want 4", len(refs))
	}
	return refs
}

// TestSandboxMentorMovesEvent: the walkthrough's mentor (on the sandbox
// CalDAV server) moves the session's event and then deletes it, played with
// `gateway sandbox caldav`; the gateway's poll (10 s by default with sandbox
// providers) reschedules the booking everywhere and then cancels it.
func TestSandboxMentorMovesEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	ss := bookInSandbox(t, ctx)
	work, booked, c := ss.work, ss.booked, ss.cand
	slots := ss.slots(t, ctx, booked.End, 2)
	to := slots[1].Start
	id := booked.Id.String()
	play := func(args ...string) { playSandbox(t, ctx, work, append([]string{"caldav"}, args...)...) }

	play("move", id, "--start", to.Format(time.RFC3339))
	var (
		b   client.Booking
		err error
	)
	waitFor(t, ctx, "the mentor's move to reschedule the booking", func() bool {
		b, err = GetBooking(ctx, c, id)
		return err == nil && b.Start.Equal(to) && Terminal(b)
	})
	if b.Status != "confirmed" || b.End.Sub(b.Start) != booked.End.Sub(booked.Start) {
		t.Errorf("after the move: %s %v–%v", b.Status, b.Start, b.End)
	}
	stepRefs(t, b, "done")
	actions, err := AuditActions(ctx, c, booked.Id)
	if err != nil || !slices.Contains(actions, "rescheduled") {
		t.Errorf("audit after the move: %v %v", actions, err)
	}

	play("delete", id)
	waitFor(t, ctx, "the mentor's delete to cancel the booking", func() bool {
		b, err = GetBooking(ctx, c, id)
		return err == nil && b.Status == "cancelled" && Terminal(client.Booking{Status: "confirmed", Steps: b.Steps})
	})
}

// TestSandboxSessionUnderWay: once the walkthrough's session has started
// (played with `gateway sandbox zoom start`), the changes people make
// elsewhere are refused and put back: a person cancelling the Jira issue
// (the issue returns to In Progress, through To Do, as the workflow
// allows), the mentor dragging the event in their CalDAV calendar (moved
// back at the next poll), the host deleting the meeting (the session gets
// a new one, whose join URL reaches the calendar events and the issue).
// When the meeting ends the booking completes and every step is done:
// nothing left failed by a put-back. A person cancelling the issue after
// that sees it put back to Done, once.
func TestSandboxSessionUnderWay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	ss := bookInSandbox(t, ctx)
	work, booked, c := ss.work, ss.booked, ss.cand
	id := booked.Id.String()
	b, err := Drain(ctx, c, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	refs := stepRefs(t, b[id], "done")
	play := func(args ...string) { playSandbox(t, ctx, work, args...) }
	urls, err := sandbox.ReadURLs(filepath.Join(work, "data", "sandbox", sandbox.URLsFile))
	if err != nil {
		t.Fatal(err)
	}
	jc, err := jira.New(urls["jira"], jira.BasicAuth(sandbox.JiraEmail, sandbox.JiraAPIToken))
	if err != nil {
		t.Fatal(err)
	}
	cal, err := caldav.New(urls["caldav"]+caldavtest.CalendarPath(sandbox.CalDAVUser, caldavtest.DefaultCalendar), sandbox.CalDAVUser,
		sandbox.CalDAVPassword, caldav.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	issueStatus := func() string {
		is, err := jc.GetIssue(ctx, refs["jira"])
		if err != nil {
			return err.Error()
		}
		return is.Status
	}

	play("zoom", "start", refs["zoom"])
	waitFor(t, ctx, "the session to be under way, its issue In Progress", func() bool {
		got, err := GetBooking(ctx, c, id)
		return err == nil && got.Status == "in_progress" && issueStatus() == "In Progress"
	})

	play("jira", "status", refs["jira"])
	waitFor(t, ctx, "the cancelled issue to be put back to In Progress", func() bool {
		got, err := GetBooking(ctx, c, id)
		return err == nil && got.Status == "in_progress" && issueStatus() == "In Progress" && Terminal(client.Booking{Status: "confirmed", Steps: got.Steps})
	})

	play("caldav", "move", id, "--start", booked.Start.Add(3*time.Hour).Format(time.RFC3339))
	waitFor(t, ctx, "the mentor's moved event to be put back", func() bool {
		ev, err := cal.GetEvent(ctx, id)
		return err == nil && ev.Start.Equal(booked.Start)
	})

	// The host deletes the meeting: the session gets a new one, and its
	// join URL reaches the mentor's and the candidate's events and the issue.
	play("zoom", "delete", refs["zoom"])
	var meeting, joinURL string
	waitFor(t, ctx, "a new meeting for the session", func() bool {
		got, err := GetBooking(ctx, c, id)
		if err != nil || got.Status != "in_progress" || !Terminal(client.Booking{Status: "confirmed", Steps: got.Steps}) {
			return false
		}
		for _, st := range got.Steps {
			if st.Name == "zoom" && st.State == "done" && st.ProviderRef != nil && *st.ProviderRef != refs["zoom"] {
				meeting = *st.ProviderRef
				if got.JoinUrl != nil {
					joinURL = *got.JoinUrl
				}
				return strings.Contains(joinURL, meeting)
			}
		}
		return false
	})
	if booked.JoinUrl == nil || *booked.JoinUrl == joinURL {
		t.Fatalf("join URL %q after the new meeting, %v before", joinURL, booked.JoinUrl)
	}
	candCal := sandboxGoogleAs(t, ctx, urls["google"], "candidate@example.com")
	for name, read := range map[string]func() (calendar.Event, error){
		"the mentor's CalDAV event":    func() (calendar.Event, error) { return cal.GetEvent(ctx, id) },
		"the candidate's Google event": func() (calendar.Event, error) { return candCal.GetEvent(ctx, id) },
	} {
		ev, err := read()
		if err != nil || ev.Location != joinURL || !strings.Contains(ev.Description, joinURL) || strings.Contains(ev.Description, *booked.JoinUrl) {
			t.Errorf("%s: %v; location %q, description %q; want the new join URL %s", name, err, ev.Location, ev.Description, joinURL)
		}
	}
	if is, err := jc.GetIssue(ctx, refs["jira"]); err != nil || is.Description == nil ||
		!strings.Contains(is.Description.PlainText(), joinURL) || strings.Contains(is.Description.PlainText(), *booked.JoinUrl) {
		t.Errorf("the Jira issue: %v; want its description to carry the new join URL %s", err, joinURL)
	}

	play("zoom", "end", meeting)
	var done client.Booking
	waitFor(t, ctx, "the session to complete, its issue Done", func() bool {
		done, err = GetBooking(ctx, c, id)
		return err == nil && done.Status == "completed" && issueStatus() == "Done" && Terminal(client.Booking{Status: "confirmed", Steps: done.Steps})
	})
	if !done.Start.Equal(booked.Start) {
		t.Errorf("the session moved to %v", done.Start)
	}
	stepRefs(t, done, "done")

	// A person cancels the issue of the session that took place: it goes
	// back to Done, once (the gateway's own transitions are not echoed).
	play("jira", "status", refs["jira"])
	admin := clientAs(t, ctx, ss.gw, "admin-ada", "admin")
	provider := client.WebhookProviderJira
	var notes []string
	waitFor(t, ctx, "the completed session's issue to be put back to Done, every Jira delivery processed", func() bool {
		got, err := GetBooking(ctx, c, id)
		if err != nil || got.Status != "completed" || issueStatus() != "Done" || !Terminal(client.Booking{Status: "confirmed", Steps: got.Steps}) {
			return false
		}
		l, err := admin.ListWebhookEventsWithResponse(ctx, &client.ListWebhookEventsParams{Provider: &provider})
		if err != nil || l.JSON200 == nil {
			return false
		}
		notes = notes[:0]
		for _, ev := range l.JSON200.Items {
			if ev.Status != client.WebhookEventStatusProcessed || ev.Note == nil {
				return false
			}
			notes = append(notes, *ev.Note)
		}
		return slices.Contains(notes, "booking already completed; issue put back")
	})
	time.Sleep(2 * time.Second) // an echo would cancel it again by now
	if got := issueStatus(); got != "Done" {
		t.Errorf("the issue is %s after the put-back, want Done", got)
	}
	putBack := 0
	for _, n := range notes {
		switch {
		case strings.Contains(n, "put back"):
			putBack++
		case n != "change made by the gateway" && n != "no move to the cancel status" && n != "event not handled":
			t.Errorf("Jira delivery note %q", n)
		}
	}
	if putBack != 2 {
		t.Errorf("%d Jira deliveries put the issue back, want 2 (under way, completed): %q", putBack, notes)
	}

	// The candidate reads the audit trail: each put-back says in words what
	// happened and why, without the gateway's error chains.
	audit, err := c.ListBookingAuditWithResponse(ctx, booked.Id, nil)
	if err != nil || audit.JSON200 == nil {
		t.Fatalf("audit: %v %v", err, audit)
	}
	var reasserted []string
	for _, a := range audit.JSON200.Items {
		reason := ""
		if a.Reason != nil {
			reason = *a.Reason
		}
		if strings.Contains(reason, "webhooks:") || strings.Contains(reason, "booking:") || strings.Contains(reason, "body.") {
			t.Errorf("audit %s: reason %q carries an error chain", a.Action, reason)
		}
		if a.Action == "step_reasserted" {
			reasserted = append(reasserted, reason)
		}
	}
	want := []string{
		"The Jira issue was moved to Cancelled while the booking cannot be cancelled: the session is under way. It was put back.",
		"The mentor moved the calendar event to a time the booking cannot take: the session is under way. It was put back.",
		"The Zoom meeting was deleted while the booking cannot be cancelled: the session is under way. A new meeting takes its place.",
		"The Jira issue was moved to Cancelled after the session took place. It was put back.",
	}
	if !slices.Equal(reasserted, want) {
		t.Errorf("put-backs in the audit trail:\n%s\nwant\n%s", strings.Join(reasserted, "\n"), strings.Join(want, "\n"))
	}
}

// sandboxGoogleAs returns a client of the primary calendar of email in the
// sandbox Google at base, which it consents to as that user (the sandbox
// consent screen approves at once; any redirect URI is registered).
func sandboxGoogleAs(t *testing.T, ctx context.Context, base, email string) *gcal.Client {
	t.Helper()
	conf := oauth2.Config{ClientID: sandbox.GoogleClientID, ClientSecret: sandbox.GoogleSecret, Endpoint: gcaltest.Endpoint(base),
		RedirectURL: "http://127.0.0.1/systemtest-callback", Scopes: []string{gcaltest.ScopeCalendar}}
	browser := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	consent, err := get(ctx, browser, conf.AuthCodeURL("state", oauth2.SetAuthURLParam("login_hint", email)))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(consent.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("google consent as %s answered %d to %q", email, consent.StatusCode, consent.Header.Get("Location"))
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := gcal.New(ctx, conf.TokenSource(ctx, tok), gcal.WithBaseURL(gcaltest.APIBase(base)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSandboxGoogleMentor: a mentor on Google Calendar (the sandbox's
// Google, connected through its OAuth consent) moves and then deletes the
// session's event, played with `gateway sandbox google`; the sandbox Google
// pushes each change, and the gateway reschedules and then cancels the
// booking everywhere.
func TestSandboxGoogleMentor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	work, gw := startEmbedded(t, ctx)
	const mentor = "mentor-gg"
	mc := clientAs(t, ctx, gw, mentor, "mentor")
	zu := "gg@example.com"
	if resp, err := mc.PutMentorScheduleWithResponse(ctx, mentor, client.MentorScheduleInput{Timezone: "UTC", WorkingHours: allDay(), ZoomUser: &zu}); err != nil ||
		resp.StatusCode() != http.StatusOK && resp.StatusCode() != http.StatusCreated {
		t.Fatalf("schedule: %v %v", err, resp)
	}
	if err := ConnectGoogleAs(ctx, gw, mentor, "mentor", sandbox.DefaultGoogleCalendar); err != nil {
		t.Fatal(err)
	}
	c := clientAs(t, ctx, gw, "cand-gg", "candidate")
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour).UTC()
	out, err := Book(ctx, c, Request{Key: uuid.NewString(), Body: client.CreateBookingRequest{
		MentorId: mentor, Start: start, DurationMinutes: 60, Timezone: "UTC", Topic: "google"}})
	if err != nil || out.Booking == nil {
		t.Fatalf("book: %v %d %s", err, out.Status, out.Body)
	}
	id := out.Booking.Id.String()
	if _, err := Drain(ctx, c, []string{id}); err != nil {
		t.Fatal(err)
	}

	to := start.Add(5 * time.Hour)
	playSandbox(t, ctx, work, "google", "move", id, "--start", to.Format(time.RFC3339))
	var b client.Booking
	waitFor(t, ctx, "the mentor's Google move to reschedule the booking", func() bool {
		b, err = GetBooking(ctx, c, id)
		return err == nil && b.Start.Equal(to) && b.Status == "confirmed" && Terminal(b)
	})
	playSandbox(t, ctx, work, "google", "delete", id)
	waitFor(t, ctx, "the mentor's Google delete to cancel the booking", func() bool {
		b, err = GetBooking(ctx, c, id)
		return err == nil && b.Status == "cancelled" && Terminal(client.Booking{Status: "confirmed", Steps: b.Steps})
	})
}

// startEmbedded starts the gateway as a newcomer runs it: the embedded
// default (SQLite, sandbox providers) with its data in work/data, work a
// new folder, where `gateway sandbox` commands find it. It stops with the
// test.
func startEmbedded(t *testing.T, ctx context.Context) (work string, gw *Gateway) {
	t.Helper()
	work = t.TempDir()
	gw, err := NewGateway(Options{Binary: binary, DataDir: filepath.Join(work, "data")})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Stop(context.Background()) })
	return work, gw
}
