package jira_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/outbound"
)

// sleeps records the waits the transport and EnsureIssue ask for, without
// waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

type env struct {
	sim    *jiratest.Server
	url    string
	client *jira.Client
	sleeps *sleeps
}

const maxAttempts = 3

func newEnv(t testing.TB, simOpts jiratest.Options, auth jira.Auth, opts ...jira.Option) *env {
	t.Helper()
	sim := jiratest.New(simOpts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	sl := &sleeps{}
	if auth == nil {
		auth = jira.BasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken)
	}
	opts = append([]jira.Option{
		jira.WithOutboundConfig(outbound.Config{MaxAttempts: maxAttempts, BaseDelay: time.Millisecond, Sleep: sl.sleep}),
		jira.WithBookingField(jiratest.DefaultBookingField),
	}, opts...)
	c, err := jira.New(ts.URL, auth, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, url: ts.URL, client: c, sleeps: sl}
}

func input(summary string) jira.IssueInput {
	return jira.IssueInput{
		ProjectKey: "SPOT", IssueType: "Task", Summary: summary,
		Description: jira.Document([]string{"Candidate: Ada Lovelace\nMentor: Charles Babbage", "Tuesday 10:00 UTC, 45 min"},
			&jira.Link{Text: "Open booking", URL: "https://app.spotlight.test/bookings/b-1"}),
		Labels: []string{"mentoring"},
	}
}

// outboundErr extracts the *outbound.Error of err or fails the test.
func outboundErr(t *testing.T, err error) *outbound.Error {
	t.Helper()
	var oe *outbound.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T) is not an *outbound.Error", err, err)
	}
	return oe
}

func TestIssueRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	ctx := t.Context()
	in := input("Mentoring session: Ada / Charles")
	in.BookingID = "b-1"
	ref, err := e.client.CreateIssue(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetIssue(ctx, ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	want := struct {
		Key, Project, Type, Summary, Status, Category, Booking, Text string
		Labels                                                       []string
	}{ref.Key, "SPOT", "Task", in.Summary, "To Do", "new", "b-1",
		"Candidate: Ada Lovelace\nMentor: Charles Babbage\nTuesday 10:00 UTC, 45 min\nOpen booking",
		[]string{"mentoring", "spotlight-booking-b-1"}}
	have := want
	have.Key, have.Project, have.Type, have.Summary = got.Key, got.ProjectKey, got.IssueType, got.Summary
	have.Status, have.Category, have.Booking, have.Text, have.Labels = got.Status, got.StatusCategory, got.BookingID, got.Description.PlainText(), got.Labels
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("issue (-want +got):\n%s", diff)
	}
	// The link survives as an ADF link mark.
	last := got.Description.Content[len(got.Description.Content)-1].Content[0]
	if len(last.Marks) != 1 || last.Marks[0].Attrs["href"] != "https://app.spotlight.test/bookings/b-1" {
		t.Errorf("link paragraph = %+v", last)
	}
	if got.Created.IsZero() || got.ID != ref.ID {
		t.Errorf("created %v id %q, ref %+v", got.Created, got.ID, ref)
	}

	summary := "Rescheduled: Ada / Charles"
	if err := e.client.UpdateFields(ctx, ref.Key, jira.IssueUpdate{
		Summary: &summary, Labels: []string{"spotlight-booking-b-1", "rescheduled"},
		Description: jira.Document([]string{"Now Wednesday"}, nil),
	}); err != nil {
		t.Fatal(err)
	}
	got, err = e.client.GetIssue(ctx, ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary != summary || got.Description.PlainText() != "Now Wednesday" || !slices.Equal(got.Labels, []string{"spotlight-booking-b-1", "rescheduled"}) {
		t.Errorf("after update: %q %q %v", got.Summary, got.Description.PlainText(), got.Labels)
	}

	for _, status := range []string{"In Progress", "in progress", "Done"} {
		if err := e.client.TransitionTo(ctx, ref.Key, status); err != nil {
			t.Fatalf("TransitionTo(%q): %v", status, err)
		}
	}
	if is, _ := e.sim.Issue(ref.Key); is.Status != "Done" {
		t.Errorf("status = %q, want Done", is.Status)
	}
	// The repeated "in progress" was a no-op: two transitions were posted.
	if n := e.sim.Requests("POST /rest/api/3/issue/{key}/transitions"); n != 2 {
		t.Errorf("transition POSTs = %d, want 2", n)
	}

	cm, err := e.client.AddComment(ctx, ref.Key, jira.Document([]string{"Meeting link sent."}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if is, _ := e.sim.Issue(ref.Key); len(is.Comments) != 1 || is.Comments[0].ID != cm.ID || cm.Body.PlainText() != "Meeting link sent." {
		t.Errorf("comments = %+v, returned %+v", is.Comments, cm)
	}

	found, err := e.client.SearchJQL(ctx, `project = SPOT AND labels = "spotlight-booking-b-1"`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Key != ref.Key || found[0].Status != "Done" || found[0].BookingID != "b-1" {
		t.Errorf("search = %+v", found)
	}

	if err := e.client.DeleteIssue(ctx, ref.Key); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetIssue(ctx, ref.Key)
	if !errors.Is(err, jira.ErrNotFound) {
		t.Fatalf("get deleted: %v, want ErrNotFound", err)
	}
	if oe := outboundErr(t, err); oe.Status != 404 || oe.Transient() || oe.Message != "Issue does not exist or you do not have permission to see it." {
		t.Errorf("404 error = %+v", oe)
	}
	if e.sim.IssueCount() != 0 {
		t.Errorf("IssueCount = %d after delete", e.sim.IssueCount())
	}
}

func TestTransitionTo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		status  string
		wantErr error
		after   string
	}{
		{"Done", jira.ErrNoTransition, "To Do"}, // needs In Progress first
		{"Nonexistent", jira.ErrNoTransition, "To Do"},
		{"To Do", nil, "To Do"}, // already there
		{"Cancelled", nil, "Cancelled"},
		{"To Do", nil, "To Do"}, // Reopen
	}
	for _, tt := range tests {
		err := e.client.TransitionTo(t.Context(), ref.Key, tt.status)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("TransitionTo(%q) = %v, want %v", tt.status, err, tt.wantErr)
		}
		if is, _ := e.sim.Issue(ref.Key); is.Status != tt.after {
			t.Errorf("after %q: status %q, want %q", tt.status, is.Status, tt.after)
		}
	}
	if err := e.client.TransitionTo(t.Context(), "SPOT-999", "Done"); !errors.Is(err, jira.ErrNotFound) {
		t.Errorf("missing issue: %v", err)
	}
}

func TestTransitionResponseLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue/" + ref.Key + "/transitions", DropResponse: true, Times: 1})
	if err := e.client.TransitionTo(t.Context(), ref.Key, "In Progress"); err != nil {
		t.Fatalf("TransitionTo after lost response: %v", err)
	}
	if is, _ := e.sim.Issue(ref.Key); is.Status != "In Progress" {
		t.Errorf("status %q", is.Status)
	}
	if n := e.sim.Requests("POST /rest/api/3/issue/{key}/transitions"); n != 1 {
		t.Errorf("transition POSTs = %d, want 1 (not repeated)", n)
	}
}

func TestRateLimitWaitedOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.AddFault(jiratest.Fault{Method: "GET", Path: "/rest/api/3/issue/", Status: 429, RetryAfter: 2 * time.Second, Times: 2})
	if _, err := e.client.GetIssue(t.Context(), ref.Key); err != nil {
		t.Fatalf("GetIssue through two 429s: %v", err)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second, 2 * time.Second}, e.sleeps.all()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if n := e.sim.Requests("GET /rest/api/3/issue/{key}"); n != 3 {
		t.Errorf("GETs = %d, want 3", n)
	}
}

func TestServerErrorsRetriedThenTransient(t *testing.T) {
	t.Parallel()
	for _, status := range []int{502, 503, 504} {
		e := newEnv(t, jiratest.Options{}, nil)
		ref, err := e.client.CreateIssue(t.Context(), input("x"))
		if err != nil {
			t.Fatal(err)
		}
		e.sim.AddFault(jiratest.Fault{Method: "PUT", Status: status})
		s := "new"
		err = e.client.UpdateFields(t.Context(), ref.Key, jira.IssueUpdate{Summary: &s})
		oe := outboundErr(t, err)
		if oe.Status != status || !oe.Transient() || !outbound.IsTransient(err) {
			t.Errorf("%d: error %+v, want transient with status", status, oe)
		}
		if n := e.sim.Requests("PUT /rest/api/3/issue/{key}"); n != maxAttempts {
			t.Errorf("%d: PUTs = %d, want %d", status, n, maxAttempts)
		}
	}
}

func TestClientErrorsPermanentNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		call  func(ctx context.Context) error
		route string
		msg   string
	}{
		{"create with bad label", func(ctx context.Context) error {
			in := input("y")
			in.Labels = []string{"has space"}
			_, err := e.client.CreateIssue(ctx, in)
			return err
		}, "POST /rest/api/3/issue", "labels: The label 'has space' contains spaces which is invalid."},
		{"update unknown field", func(ctx context.Context) error {
			return e.client.UpdateFields(ctx, ref.Key, jira.IssueUpdate{Fields: map[string]any{"customfield_1": "x"}})
		}, "PUT /rest/api/3/issue/{key}", "customfield_1: Field 'customfield_1' cannot be set. It is not on the appropriate screen, or unknown."},
		{"unparsable JQL", func(ctx context.Context) error {
			_, err := e.client.SearchJQL(ctx, "labels = ", nil)
			return err
		}, "POST /rest/api/3/search/jql", "Error in the JQL Query: Expecting either a value, list or function but got the end of the query. (line 1, character 9)"},
	}
	for _, tt := range tests {
		before := e.sim.Requests(tt.route)
		err := tt.call(t.Context())
		oe := outboundErr(t, err)
		if oe.Status != 400 || oe.Transient() || oe.Message != tt.msg {
			t.Errorf("%s: %+v, want permanent 400 %q", tt.name, oe, tt.msg)
		}
		if n := e.sim.Requests(tt.route) - before; n != 1 {
			t.Errorf("%s: %d requests, want 1", tt.name, n)
		}
	}
	if len(e.sleeps.all()) != 0 {
		t.Errorf("waited %v on permanent errors", e.sleeps.all())
	}
}

func TestEnsureIssue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fault       *jiratest.Fault
		createPOSTs int
		waits       []time.Duration
	}{
		{"no fault", nil, 1, nil},
		{"applied but response lost", &jiratest.Fault{DropResponse: true, Times: 1}, 1, nil},
		{"500 before applying", &jiratest.Fault{Status: 500, Times: 1}, 2, nil},
		{"503 twice", &jiratest.Fault{Status: 503, Times: 2}, 3, nil},
		{"429 waited out", &jiratest.Fault{Status: 429, RetryAfter: time.Second, Times: 1}, 2, []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jiratest.Options{}, nil)
			if tt.fault != nil {
				f := *tt.fault
				f.Method, f.Path = "POST", "/rest/api/3/issue"
				e.sim.AddFault(f)
			}
			ref, created, err := e.client.EnsureIssue(t.Context(), "b-42", input("Session b-42"))
			if err != nil {
				t.Fatal(err)
			}
			if !created || ref.Key == "" {
				t.Errorf("EnsureIssue = %+v, created %v", ref, created)
			}
			if n := e.sim.IssueCount(); n != 1 {
				t.Errorf("IssueCount = %d, want exactly 1", n)
			}
			if n := e.sim.Requests("POST /rest/api/3/issue"); n != tt.createPOSTs {
				t.Errorf("create POSTs = %d, want %d", n, tt.createPOSTs)
			}
			if diff := cmp.Diff(tt.waits, e.sleeps.all()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			// Again: found, not created.
			again, created, err := e.client.EnsureIssue(t.Context(), "b-42", input("Session b-42"))
			if err != nil || created || again.Key != ref.Key {
				t.Errorf("second EnsureIssue = %+v, %v, %v; want %s found", again, created, err, ref.Key)
			}
			is, _ := e.sim.Issue(ref.Key)
			if is.CustomFields[jiratest.DefaultBookingField] != "b-42" || !slices.Contains(is.Labels, "spotlight-booking-b-42") {
				t.Errorf("issue = %+v", is)
			}
			if e.sim.IssueCount() != 1 {
				t.Errorf("IssueCount = %d after second EnsureIssue", e.sim.IssueCount())
			}
		})
	}
	t.Run("permanent error not retried", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, jiratest.Options{}, nil)
		in := input("x")
		in.IssueType = "Epic"
		_, _, err := e.client.EnsureIssue(t.Context(), "b-1", in)
		if oe := outboundErr(t, err); oe.Status != 400 || oe.Message != "issuetype: Specify a valid issue type" {
			t.Errorf("error %+v", oe)
		}
		if n := e.sim.Requests("POST /rest/api/3/issue"); n != 1 {
			t.Errorf("create POSTs = %d, want 1", n)
		}
	})
	t.Run("other bookings do not match", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, jiratest.Options{}, nil)
		for _, id := range []string{"b-1", "b-10", "b-1"} {
			if _, _, err := e.client.EnsureIssue(t.Context(), id, input("x")); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.sim.IssueCount(); n != 2 {
			t.Errorf("IssueCount = %d, want 2", n)
		}
	})
}

func TestBadCredentials(t *testing.T) {
	t.Parallel()
	const secret = "wrong-token-value"
	e := newEnv(t, jiratest.Options{}, jira.BasicAuth(jiratest.DefaultEmail, secret))
	_, err := e.client.GetIssue(t.Context(), "SPOT-1")
	oe := outboundErr(t, err)
	if oe.Status != 401 || oe.Transient() || oe.Message != "Client must be authenticated to access this resource." {
		t.Errorf("error %+v", oe)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q leaks the token", err)
	}
	if n := e.sim.Requests("GET /rest/api/3/issue/{key}"); n != 1 {
		t.Errorf("GETs = %d, want 1 (401 is not retried)", n)
	}

	// A failing credential source is reported without calling Jira.
	storeDown := errors.New("secret store unavailable")
	e2 := newEnv(t, jiratest.Options{}, jira.BasicAuthFrom(func(context.Context) (jira.BasicCredentials, error) {
		return jira.BasicCredentials{}, storeDown
	}))
	_, err = e2.client.GetIssue(t.Context(), "SPOT-1")
	if !errors.Is(err, jira.ErrCredentials) || !errors.Is(err, storeDown) {
		t.Errorf("error %v, want ErrCredentials wrapping the store error", err)
	}
	if n := e2.sim.Requests("GET /rest/api/3/issue/{key}"); n != 0 {
		t.Errorf("GETs = %d, want 0", n)
	}
}

func TestOAuth2Bearer(t *testing.T) {
	t.Parallel()
	var fetched int
	var mu sync.Mutex
	lazy := jira.OAuth2From(func(context.Context) (*oauth2.Token, error) {
		mu.Lock()
		fetched++
		mu.Unlock()
		return &oauth2.Token{AccessToken: jiratest.DefaultBearerToken}, nil
	})
	for name, auth := range map[string]jira.Auth{
		"token source": jira.OAuth2(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: jiratest.DefaultBearerToken})),
		"lazy":         lazy,
	} {
		sim := jiratest.New(jiratest.Options{CloudID: "cloud-1"})
		ts := httptest.NewServer(sim)
		t.Cleanup(ts.Close)
		c, err := jira.New("https://spotlight.atlassian.net", auth, jira.WithBaseURL(ts.URL+"/ex/jira/cloud-1"))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := c.CreateIssue(t.Context(), input("via OAuth"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if is, err := c.GetIssue(t.Context(), ref.Key); err != nil || is.Summary != "via OAuth" {
			t.Errorf("%s: get %+v %v", name, is, err)
		}
		if got := c.BrowseURL(ref.Key); got != "https://spotlight.atlassian.net/browse/"+ref.Key {
			t.Errorf("BrowseURL = %q", got)
		}
	}
	if fetched != 2 {
		t.Errorf("lazy token fetched %d times, want once per request (2)", fetched)
	}
	// An unknown bearer is a permanent 401.
	sim := jiratest.New(jiratest.Options{})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c, _ := jira.New(ts.URL, jira.OAuth2(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "revoked"})))
	_, err := c.GetIssue(t.Context(), "SPOT-1")
	if oe := outboundErr(t, err); oe.Status != 401 || oe.Transient() {
		t.Errorf("revoked token: %+v", oe)
	}
}

func TestSearchPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	in := input("x")
	in.Labels = []string{"batch"}
	var keys []string
	for range 5 {
		ref, err := e.client.CreateIssue(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ref.Key)
	}
	got := func(opts *jira.SearchOptions) []string {
		issues, err := e.client.SearchJQL(t.Context(), "labels = batch ORDER BY key ASC", opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, is := range issues {
			out = append(out, is.Key)
		}
		return out
	}
	if diff := cmp.Diff(keys, got(&jira.SearchOptions{PageSize: 2})); diff != "" {
		t.Errorf("all pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(keys[:3], got(&jira.SearchOptions{PageSize: 2, Limit: 3})); diff != "" {
		t.Errorf("limit 3 (-want +got):\n%s", diff)
	}
}

func TestWebhookSignatureVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/webhook_signature.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Secret, Body, Signature string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, secret, body, header string
		ok                         bool
	}{
		{"vector", v.Secret, v.Body, v.Signature, true},
		{"tampered body", v.Secret, strings.Replace(v.Body, "In Progress", "Done", 1), v.Signature, false},
		{"wrong secret", "other", v.Body, v.Signature, false},
		{"missing header", v.Secret, v.Body, "", false},
		{"sha1 scheme", v.Secret, v.Body, "sha1=" + strings.TrimPrefix(v.Signature, "sha256="), false},
		{"truncated", v.Secret, v.Body, v.Signature[:len(v.Signature)-2], false},
	}
	for _, tt := range tests {
		err := jira.VerifyWebhookSignature(tt.secret, []byte(tt.body), tt.header)
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, jira.ErrSignature)) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// The simulator signs exactly like the independent vector.
	if got := jiratest.Sign(v.Secret, []byte(v.Body)); got != v.Signature {
		t.Errorf("jiratest.Sign = %s, want %s", got, v.Signature)
	}
	ev, err := jira.ParseWebhook([]byte(v.Body), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []jira.ChangelogItem{{Field: "status", FieldID: "status", From: "10000", FromString: "To Do", To: "10001", ToString: "In Progress"}}
	if diff := cmp.Diff(want, ev.Changelog); diff != "" || ev.Event != jira.EventIssueUpdated || ev.Issue.Key != "SPOT-1" {
		t.Errorf("parsed %+v (-want +got):\n%s", ev, diff)
	}
}

// TestWebhookOfOwnTransition checks that a transition made through the
// client comes back as a signed issue_updated webhook whose actor is the
// client's own account, which is how the gateway recognises its own echo.
func TestWebhookOfOwnTransition(t *testing.T) {
	t.Parallel()
	const secret = "hook-secret"
	type got struct {
		header http.Header
		body   []byte
	}
	ch := make(chan got, 4)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), b}
	}))
	t.Cleanup(hs.Close)
	e := newEnv(t, jiratest.Options{WebhookURL: hs.URL, WebhookSecret: secret}, nil)
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-ch // issue_created
	if err := e.client.TransitionTo(t.Context(), ref.Key, "In Progress"); err != nil {
		t.Fatal(err)
	}
	d := <-ch
	if err := jira.VerifyWebhookSignature(secret, d.body, d.header.Get(jira.HeaderSignature)); err != nil {
		t.Fatal(err)
	}
	if d.header.Get(jira.HeaderWebhookIdentifier) == "" {
		t.Error("no webhook identifier")
	}
	ev, err := jira.ParseWebhook(d.body, jiratest.DefaultBookingField)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event != jira.EventIssueUpdated || ev.AccountID != jiratest.DefaultAccountID || ev.Issue.Key != ref.Key || ev.Issue.Status != "In Progress" {
		t.Errorf("event %+v", ev)
	}
	if len(ev.Changelog) != 1 || ev.Changelog[0].Field != "status" || ev.Changelog[0].ToString != "In Progress" {
		t.Errorf("changelog %+v", ev.Changelog)
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	auth := jira.BasicAuth("a@b.test", "t")
	for _, tt := range []struct {
		site string
		auth jira.Auth
		opts []jira.Option
	}{
		{"example.atlassian.net", auth, nil},
		{"https://user:pw@example.atlassian.net", auth, nil},
		{"https://example.atlassian.net", nil, nil},
		{"https://example.atlassian.net", auth, []jira.Option{jira.WithBookingField("Booking ID")}},
		{"https://example.atlassian.net", auth, []jira.Option{jira.WithBaseURL("/relative")}},
	} {
		if _, err := jira.New(tt.site, tt.auth, tt.opts...); err == nil {
			t.Errorf("New(%q, %v) accepted", tt.site, tt.auth)
		}
	}
	if s := auth.String(); strings.Contains(s, "t)") || !strings.Contains(s, "REDACTED") {
		t.Errorf("Auth.String() = %q", s)
	}
}

func BenchmarkCreateIssue(b *testing.B) {
	e := newEnv(b, jiratest.Options{}, nil)
	in := input("benchmark")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.client.CreateIssue(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBreakerOpensAndRecovers runs the outbound circuit breaker against the
// simulator: consecutive 503s open it, calls then fail fast without reaching
// Jira, and after the cooldown one probe closes it again.
func TestBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sl := &sleeps{}
	e := newEnv(t, jiratest.Options{}, nil, jira.WithOutboundConfig(outbound.Config{
		MaxAttempts: 1, BreakerFailures: 2, BreakerCooldown: time.Minute, Sleep: sl.sleep, Now: clock,
	}))
	ref, err := e.client.CreateIssue(t.Context(), input("x"))
	if err != nil {
		t.Fatal(err)
	}
	remove := e.sim.AddFault(jiratest.Fault{Method: "GET", Status: 503})
	for range 2 {
		if _, err := e.client.GetIssue(t.Context(), ref.Key); outboundErr(t, err).Status != 503 {
			t.Fatalf("want 503, got %v", err)
		}
	}
	before := e.sim.Requests("GET /rest/api/3/issue/{key}")
	_, err = e.client.GetIssue(t.Context(), ref.Key)
	if !errors.Is(err, outbound.ErrCircuitOpen) || !outbound.IsTransient(err) {
		t.Fatalf("open breaker: %v", err)
	}
	if n := e.sim.Requests("GET /rest/api/3/issue/{key}"); n != before {
		t.Errorf("open breaker let %d requests through", n-before)
	}
	remove()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := e.client.GetIssue(t.Context(), ref.Key); err != nil {
		t.Fatalf("half-open probe: %v", err)
	}
	if _, err := e.client.GetIssue(t.Context(), ref.Key); err != nil {
		t.Fatalf("closed again: %v", err)
	}
}

// TestEnsureIssueAttemptTimeout: the first create hangs past the per-attempt
// timeout (the simulator drops it unapplied when the client gives up), so
// EnsureIssue searches, finds nothing and creates once more.
func TestEnsureIssueAttemptTimeout(t *testing.T) {
	t.Parallel()
	sl := &sleeps{}
	e := newEnv(t, jiratest.Options{}, nil, jira.WithOutboundConfig(outbound.Config{
		MaxAttempts: 1, Timeout: 100 * time.Millisecond, Sleep: sl.sleep,
	}))
	e.sim.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue", Latency: time.Minute, Times: 1})
	ref, created, err := e.client.EnsureIssue(t.Context(), "b-7", input("x"))
	if err != nil || !created {
		t.Fatalf("EnsureIssue = %+v %v %v", ref, created, err)
	}
	if n := e.sim.IssueCount(); n != 1 {
		t.Errorf("IssueCount = %d, want 1", n)
	}
	if n := e.sim.Requests("POST /rest/api/3/issue"); n != 2 {
		t.Errorf("create POSTs = %d, want 2", n)
	}
}

// TestEnsureIssueAppliedLate: Jira creates the issue only after the client
// gave up on the create. EnsureIssue keeps searching for it for the settle
// time instead of creating a second; so does a call told that an earlier
// one, whose caller gave up, may still land (IssueInput.Uncertain).
func TestEnsureIssueAppliedLate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// abandon: a first call gives up after 100ms (its caller's
		// context), and the second call says so.
		abandon bool
	}{{"request timed out", false}, {"earlier call abandoned", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jiratest.Options{}, nil, jira.WithOutboundConfig(outbound.Config{MaxAttempts: 1, Timeout: 200 * time.Millisecond}),
				jira.WithCreateSettle(time.Second))
			e.sim.AddFault(jiratest.Fault{Method: "POST", Path: "/rest/api/3/issue", ApplyAfter: 500 * time.Millisecond, Times: 1})
			began := time.Now()
			in := input("late")
			if tt.abandon {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				_, _, err := e.client.EnsureIssue(ctx, "b-late", in)
				cancel()
				if err == nil {
					t.Fatal("abandoned EnsureIssue succeeded")
				}
				in.Uncertain = true
			}
			ref, _, err := e.client.EnsureIssue(t.Context(), "b-late", in)
			if err != nil {
				t.Fatalf("EnsureIssue: %v", err)
			}
			time.Sleep(time.Until(began.Add(700 * time.Millisecond)))
			if n := e.sim.IssueCount(); n != 1 {
				t.Errorf("IssueCount = %d, want 1", n)
			}
			if n := e.sim.Requests("POST /rest/api/3/issue"); n != 1 {
				t.Errorf("create POSTs = %d, want 1", n)
			}
			if _, err := e.client.GetIssue(t.Context(), ref.Key); err != nil {
				t.Errorf("the issue returned: %v", err)
			}
		})
	}
}

func BenchmarkEnsureIssue(b *testing.B) {
	e := newEnv(b, jiratest.Options{}, nil)
	in := input("benchmark")
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		// A new booking each time: one search, one create.
		if _, _, err := e.client.EnsureIssue(ctx, "bench-"+strconv.Itoa(i), in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetIssue(b *testing.B) {
	e := newEnv(b, jiratest.Options{}, nil)
	ref, err := e.client.CreateIssue(b.Context(), input("benchmark"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.client.GetIssue(b.Context(), ref.Key); err != nil {
			b.Fatal(err)
		}
	}
}

// Myself names the account the client acts as; wrong credentials are a 401.
func TestMyself(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jiratest.Options{}, nil)
	id, err := e.client.Myself(t.Context())
	if err != nil || id != jiratest.DefaultAccountID {
		t.Fatalf("Myself = %q, %v, want %q", id, err, jiratest.DefaultAccountID)
	}
	bad := newEnv(t, jiratest.Options{}, jira.BasicAuth(jiratest.DefaultEmail, "wrong-token"))
	if _, err := bad.client.Myself(t.Context()); err == nil || outboundErr(t, err).Status != http.StatusUnauthorized {
		t.Fatalf("Myself with a wrong token = %v, want a 401", err)
	}
}
