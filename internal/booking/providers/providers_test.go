package providers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/booking/providers"
)

func newJira(t *testing.T, wf jiratest.Workflow) (*jiratest.Server, providers.Jira) {
	t.Helper()
	sim := jiratest.New(jiratest.Options{Workflow: wf})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c, err := jira.New(ts.URL, jira.BasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken))
	if err != nil {
		t.Fatal(err)
	}
	return sim, providers.Jira{Client: c, ProjectKey: jiratest.DefaultProjectKey, IssueType: "Task"}
}

// TestJiraStatusThroughTheWorkflow: the issue follows the booking's status
// even where the workflow has no direct transition (Done only from In
// Progress; In Progress from Cancelled or Done only through Reopen to To
// Do), passing through at most two other statuses, never through Cancelled
// or Done; with no way there at all the failure is permanent.
func TestJiraStatusThroughTheWorkflow(t *testing.T) {
	t.Parallel()
	sim, j := newJira(t, jiratest.Workflow{})
	start := time.Now().Add(24 * time.Hour)
	spec := booking.IssueSpec{BookingID: "b-1", Topic: "t", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}
	key, err := j.EnsureIssue(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from   string // set as a person would, "" to leave it
		status booking.Status
		want   string
	}{
		{"", booking.StatusCompleted, "Done"},                  // To Do → In Progress → Done
		{"Cancelled", booking.StatusInProgress, "In Progress"}, // Cancelled → To Do → In Progress
		{"Done", booking.StatusInProgress, "In Progress"},      // Done → To Do → In Progress
		{"Cancelled", booking.StatusCompleted, "Done"},         // Cancelled → To Do → In Progress → Done
		{"In Progress", booking.StatusCancelled, "Cancelled"},  // global Cancel
		{"Done", booking.StatusConfirmed, "Done"},              // a confirmed booking asks for no status
	} {
		if tc.from != "" {
			if _, err := sim.SetStatus(key, tc.from); err != nil {
				t.Fatal(err)
			}
		}
		spec.Status = tc.status
		if err := j.UpdateIssue(t.Context(), key, spec); err != nil {
			t.Errorf("%s → %s: %v", tc.from, tc.status, err)
			continue
		}
		if is, _ := sim.Issue(key); is.Status != tc.want {
			t.Errorf("%s → %s: issue in %q, want %q", tc.from, tc.status, is.Status, tc.want)
		}
	}

	// A workflow where Done cannot be left: no way to In Progress.
	wf := jiratest.DefaultWorkflow()
	wf.Transitions = wf.Transitions[:len(wf.Transitions)-1] // no Reopen
	sim, j = newJira(t, wf)
	key, err = j.EnsureIssue(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SetStatus(key, "Done"); err != nil {
		t.Fatal(err)
	}
	spec.Status = booking.StatusInProgress
	if err := j.UpdateIssue(t.Context(), key, spec); !booking.IsPermanent(err) || !errors.Is(err, jira.ErrNoTransition) {
		t.Errorf("no way back from Done: %v, want a permanent ErrNoTransition", err)
	}
}

// TestClassify: 4xx refusals are permanent; a transient failure that says
// how long to wait (Retry-After, an open circuit's cooldown) carries that
// wait to the saga; other transient failures stay plain.
func TestClassify(t *testing.T) {
	t.Parallel()
	wrap := func(e *outbound.Error) error { return fmt.Errorf("zoom: create meeting: %w", e) }
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		wait      time.Duration
	}{
		{"bad request", wrap(&outbound.Error{Provider: "zoom", Status: 400, Class: outbound.Permanent}), true, 0},
		{"rate limited", wrap(&outbound.Error{Provider: "zoom", Status: 429, Class: outbound.Transient, RetryAfter: 30 * time.Second}), false, 30 * time.Second},
		{"rate limited without Retry-After", wrap(&outbound.Error{Provider: "zoom", Status: 429, Class: outbound.Transient}), false, 0},
		{"unavailable", wrap(&outbound.Error{Provider: "zoom", Status: 503, Class: outbound.Transient}), false, 0},
		{"circuit open", wrap(&outbound.Error{Provider: "zoom", Class: outbound.Transient, Err: outbound.ErrCircuitOpen, RetryAfter: 12 * time.Second}), false, 12 * time.Second},
		{"canceled", context.Canceled, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := providers.Classify(tc.err)
			var re *booking.RetryAfterError
			wait := time.Duration(0)
			if errors.As(got, &re) {
				wait = re.After
			}
			if booking.IsPermanent(got) != tc.permanent || wait != tc.wait || !errors.Is(got, tc.err) {
				t.Errorf("Classify(%v) = %v: permanent %v, wait %v; want %v, %v", tc.err, got, booking.IsPermanent(got), wait, tc.permanent, tc.wait)
			}
		})
	}
}

// TestJiraSummaryOfALongTopic: a topic of 200 characters (the API's limit)
// outside ASCII fits Jira's 255-character summary whole, instead of being
// cut at byte 255 and ending in a broken character.
func TestJiraSummaryOfALongTopic(t *testing.T) {
	t.Parallel()
	sim, j := newJira(t, jiratest.Workflow{})
	start := time.Now().Add(24 * time.Hour)
	topic := strings.Repeat("Собеседование ", 14) + "итог"
	topic = string([]rune(topic)[:200])
	spec := booking.IssueSpec{BookingID: "b-1", Topic: topic, Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}
	key, err := j.EnsureIssue(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if is, _ := sim.Issue(key); is.Summary != "Mentoring: "+topic {
		t.Errorf("summary %q, want %q", is.Summary, "Mentoring: "+topic)
	}
}

// TestJiraSummaryOfATopicWithLineBreaks: Jira refuses a summary with a line
// break; a topic typed over several lines becomes a one-line summary, on
// create and on update, instead of a booking whose Jira step fails for good.
func TestJiraSummaryOfATopicWithLineBreaks(t *testing.T) {
	t.Parallel()
	sim, j := newJira(t, jiratest.Workflow{})
	start := time.Now().Add(24 * time.Hour)
	spec := booking.IssueSpec{BookingID: "b-1", Topic: "System design\r\nmock interview", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}
	key, err := j.EnsureIssue(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if is, _ := sim.Issue(key); is.Summary != "Mentoring: System design mock interview" {
		t.Errorf("summary after create %q", is.Summary)
	}
	spec.Topic = "Career\nplanning\n"
	if err := j.UpdateIssue(t.Context(), key, spec); err != nil {
		t.Fatal(err)
	}
	if is, _ := sim.Issue(key); is.Summary != "Mentoring: Career planning" {
		t.Errorf("summary after update %q", is.Summary)
	}
}
