package webhooks_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// newJira starts a Jira simulator with the gateway's account and a human
// operator; webhookURL (when set) receives its automatic webhooks.
func newJira(t *testing.T, webhookURL string, opts ...jira.Option) (*jiratest.Server, *jira.Client) {
	t.Helper()
	sim := jiratest.New(jiratest.Options{
		Accounts: []jiratest.Account{
			{AccountID: ownJira, Email: "gateway@spotlight.test", APIToken: "gw-token"},
			{AccountID: "human-ops", Email: "ops@spotlight.test", APIToken: "ops-token"},
		},
		WebhookURL: webhookURL, WebhookSecret: jiraSecret,
	})
	ts := httptest.NewServer(sim)
	t.Cleanup(func() {
		_ = sim.Wait(t.Context())
		ts.Close()
	})
	c, err := jira.New(ts.URL, jira.BasicAuth("gateway@spotlight.test", "gw-token"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func cancelChange() []jiratest.ChangelogItem {
	return []jiratest.ChangelogItem{{Field: "status", FieldType: "jira", FromString: "To Do", ToString: "Cancelled", From: "10000", To: "10003"}}
}

func TestJiraCancelByOperatorOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		sim, jc := newJira(t, "")
		ref, err := jc.CreateIssue(t.Context(), jira.IssueInput{ProjectKey: "SPOT", IssueType: "Task", Summary: "Session", BookingID: "b-jira"})
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: "b-jira", Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", ref.Key)
		hook := h.url + "/webhooks/jira"
		d, err := sim.SendWebhook(t.Context(), hook, jiraSecret, jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: ref.Key,
			AccountID: "human-ops", Changelog: cancelChange()})
		if err != nil {
			t.Fatal(err)
		}
		// Jira retries with the same identifier: four more, at once.
		var wg sync.WaitGroup
		for range 4 {
			dd := *d
			wg.Go(func() {
				if err := sim.Resend(t.Context(), &dd); err != nil {
					t.Errorf("resend: %v", err)
				}
			})
		}
		wg.Wait()
		for _, del := range sim.Deliveries() {
			if del.Status != http.StatusAccepted {
				t.Errorf("delivery answered %d", del.Status)
			}
		}
		ds := h.waitAllDone(t, webhooks.ProviderJira, 1)
		if ds[0].ExternalID != d.Identifier || ds[0].BookingID != "b-jira" {
			t.Fatalf("stored %+v", ds[0])
		}
		calls := h.bookings.Calls()
		if len(calls) != 1 || calls[0].Op != "cancel" || calls[0].Actor != "webhook:jira" {
			t.Fatalf("calls %+v", calls)
		}
		if n := h.jobCount(t); n != 1 {
			t.Fatalf("%d jobs", n)
		}
		// Other updates are processed without action.
		if _, err := sim.SendWebhook(t.Context(), hook, jiraSecret, jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: ref.Key,
			AccountID: "human-ops", Changelog: []jiratest.ChangelogItem{{Field: "summary", FromString: "a", ToString: "b"}}}); err != nil {
			t.Fatal(err)
		}
		ds = h.waitAllDone(t, webhooks.ProviderJira, 2)
		if ds[0].Note != "no move to the cancel status" || len(h.bookings.Calls()) != 1 {
			t.Fatalf("summary change: %+v", ds[0])
		}
	})
}

// TestJiraCancelRefused: an operator cancels the issue of a session that
// cannot be cancelled any more: under way (the cancel is refused) or over
// (completed). The booking stays, the issue is put back (Restore), and the
// delivery is processed with a note saying so. The issue of a cancelled
// booking is where it belongs: nothing is done.
func TestJiraCancelRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status string
		ops    []string // the calls processing makes
		note   string
		reason string // the put-back's, for the booking's audit trail
	}{
		{webhooks.BookingInProgress, []string{"cancel", "restore issue"}, "booking refused the cancel; issue put back",
			"The Jira issue was moved to Cancelled while the booking cannot be cancelled: the session is under way. It was put back."},
		{webhooks.BookingCompleted, []string{"restore issue"}, "booking already completed; issue put back",
			"The Jira issue was moved to Cancelled after the session took place. It was put back."},
		{webhooks.BookingCancelled, nil, "booking already cancelled", ""},
	}
	h := newHarness(t, storetest.SQLite(t))
	sim, jc := newJira(t, "")
	h.bookings.refuse(false, true)
	for i, tt := range tests {
		id := "b-" + tt.status
		ref, err := jc.CreateIssue(t.Context(), jira.IssueInput{ProjectKey: "SPOT", IssueType: "Task", Summary: "Session", BookingID: id})
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: id, Status: tt.status, Start: time.Now().Add(-time.Hour), End: time.Now().Add(time.Minute)}, "", "", ref.Key)
		calls := len(h.bookings.Calls())
		if _, err := sim.SendWebhook(t.Context(), h.url+"/webhooks/jira", jiraSecret, jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: ref.Key,
			AccountID: "human-ops", Changelog: cancelChange()}); err != nil {
			t.Fatal(err)
		}
		ds := h.waitAllDone(t, webhooks.ProviderJira, i+1)
		if ds[0].Status != webhooks.StatusProcessed || ds[0].BookingID != id || !strings.HasPrefix(ds[0].Note, tt.note) {
			t.Errorf("%s: delivery %+v, want processed with note %q", tt.status, ds[0], tt.note)
		}
		var ops []string
		for _, c := range h.bookings.Calls()[calls:] {
			ops = append(ops, c.Op)
			if c.ID != id || c.Actor != "webhook:jira" || strings.HasPrefix(c.Op, "restore") && c.Reason != tt.reason {
				t.Errorf("%s: call %+v, want the reason %q", tt.status, c, tt.reason)
			}
		}
		if !slices.Equal(ops, tt.ops) {
			t.Errorf("%s: calls %v, want %v", tt.status, ops, tt.ops)
		}
	}
}

// TestJiraOwnChangeNotEchoed: the gateway's own transitions come back as
// automatic webhooks carrying its account id; they must not be echoed into
// a cancel.
func TestJiraOwnChangeNotEchoed(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		sim, jc := newJira(t, h.url+"/webhooks/jira")
		ref, err := jc.CreateIssue(t.Context(), jira.IssueInput{ProjectKey: "SPOT", IssueType: "Task", Summary: "Session", BookingID: "b-own"})
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: "b-own", Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", ref.Key)
		if err := jc.TransitionTo(t.Context(), ref.Key, "Cancelled"); err != nil {
			t.Fatal(err)
		}
		if err := sim.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ds := h.waitAllDone(t, webhooks.ProviderJira, 2) // issue_created, issue_updated
		var updated *webhooks.Delivery
		for i := range ds {
			if ds[i].EventType == jira.EventIssueUpdated {
				updated = &ds[i]
			}
		}
		if updated == nil || updated.Note != "change made by the gateway" {
			t.Fatalf("deliveries %+v", ds)
		}
		if calls := h.bookings.Calls(); len(calls) != 0 {
			t.Fatalf("own change echoed: %+v", calls)
		}
	})
}

func TestJiraRejections(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		required := true
		h := newHarness(t, db, func(c *webhooks.Config) { c.RequireJiraSignature = required })
		body := []byte(`{"webhookEvent":"jira:issue_updated","timestamp":1,"user":{"accountId":"human-ops"},"issue":{"id":"1","key":"SPOT-9","fields":{}},"changelog":{"items":[]}}`)
		with := func(sig string) map[string]string {
			m := map[string]string{"X-Atlassian-Webhook-Identifier": "3207d0a4-8b7d-4c5e-9a4e-1f1b4a1c2d3e"}
			if sig != "" {
				m["X-Hub-Signature"] = sig
			}
			return m
		}
		tests := []struct {
			name   string
			body   []byte
			hdr    map[string]string
			status int
			reason string
		}{
			{"unsigned", body, with(""), 401, "missing_header"},
			{"wrong secret", body, with(jiratest.Sign("other", body)), 401, "bad_signature"},
			{"forged", body, with("sha256=" + "00000000000000000000000000000000000000000000000000000000000000aa"), 401, "bad_signature"},
			{"truncated body", body[:40], with(jiratest.Sign(jiraSecret, body)), 401, "bad_signature"},
			{"sha1 header", body, with("sha1=abc"), 401, "malformed_signature"},
		}
		for _, tt := range tests {
			before := h.rejected(webhooks.ProviderJira, tt.reason)
			code, hdr, b := h.post(t, "/webhooks/jira", tt.body, tt.hdr)
			if code != tt.status {
				t.Errorf("%s: status %d want %d: %s", tt.name, code, tt.status, b)
				continue
			}
			if p := problem(t, hdr, b); p.Type != "https://spotlight.dev/problems/invalid-signature" {
				t.Errorf("%s: %+v", tt.name, p)
			}
			if h.rejected(webhooks.ProviderJira, tt.reason) != before+1 {
				t.Errorf("%s: reason %s not counted", tt.name, tt.reason)
			}
		}
		bad := []byte(`{"webhookEvent":`)
		if code, _, b := h.post(t, "/webhooks/jira", bad, map[string]string{"X-Hub-Signature": jiratest.Sign(jiraSecret, bad), "X-Atlassian-Webhook-Identifier": "poison-1"}); code != 400 {
			t.Fatalf("invalid JSON: %d %s", code, b)
		}
		ds := h.deliveries(t, webhooks.ProviderJira)
		if len(ds) != 1 || ds[0].Status != webhooks.StatusPoison {
			t.Fatalf("deliveries %+v", ds)
		}
		// No secret configured while signatures are required: refused.
		h.secrets.set(webhooks.Secrets{Zoom: []string{zoomSecret}})
		if code, _, _ := h.post(t, "/webhooks/jira", body, with("")); code != 401 {
			t.Fatalf("required signature without secret: %d", code)
		}
		if n := h.jobCount(t); n != 0 || len(h.bookings.Calls()) != 0 {
			t.Fatalf("rejected deliveries processed: %d jobs", n)
		}
		// A valid delivery is accepted with its id.
		h.secrets.set(webhooks.Secrets{Jira: jiraSecret})
		code, _, b := h.post(t, "/webhooks/jira", body, with(jiratest.Sign(jiraSecret, body)))
		var ack webhooks.Ack
		if err := json.Unmarshal(b, &ack); code != 202 || err != nil || ack.Status != "accepted" || ack.ID == "" {
			t.Fatalf("valid: %d %s", code, b)
		}
		code, _, b = h.post(t, "/webhooks/jira", body, with(jiratest.Sign(jiraSecret, body)))
		var dup webhooks.Ack
		if err := json.Unmarshal(b, &dup); code != 202 || err != nil || dup.Status != "duplicate" || dup.ID != ack.ID {
			t.Fatalf("duplicate: %d %s (first %s)", code, b, ack.ID)
		}
	})
}

func TestJiraUnsignedWhenNoSecret(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db)
		h.secrets.set(webhooks.Secrets{})
		body := []byte(`{"webhookEvent":"jira:issue_created","issue":{"id":"1","key":"SPOT-1","fields":{}}}`)
		if code, _, b := h.post(t, "/webhooks/jira", body, nil); code != 202 {
			t.Fatalf("unsigned in development: %d %s", code, b)
		}
		ds := h.waitAllDone(t, webhooks.ProviderJira, 1)
		if ds[0].Note != "event not handled" || ds[0].ExternalID[:7] != "sha256:" {
			t.Fatalf("%+v", ds[0])
		}
	})
}

// TestJiraCloneOfBookingIssue: with a booking field, a clone of the
// booking's issue carries the booking id along; moving the clone to the
// cancel status leaves the booking alone (the note says why), while moving
// the booking's own issue cancels it.
func TestJiraCloneOfBookingIssue(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		h := newHarness(t, db, func(c *webhooks.Config) { c.JiraBookingField = jiratest.DefaultBookingField })
		sim, jc := newJira(t, "", jira.WithBookingField(jiratest.DefaultBookingField))
		in := jira.IssueInput{ProjectKey: "SPOT", IssueType: "Task", Summary: "Session", BookingID: "b-orig"}
		orig, err := jc.CreateIssue(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		clone, err := jc.CreateIssue(t.Context(), in) // what Jira's "Clone" makes: the fields, a new key
		if err != nil {
			t.Fatal(err)
		}
		h.bookings.add(webhooks.Booking{ID: "b-orig", Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", orig.Key)
		hook := h.url + "/webhooks/jira"
		send := func(key string) {
			t.Helper()
			if _, err := sim.SendWebhook(t.Context(), hook, jiraSecret, jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: key,
				AccountID: "human-ops", Changelog: cancelChange()}); err != nil {
				t.Fatal(err)
			}
		}
		send(clone.Key)
		ds := h.waitAllDone(t, webhooks.ProviderJira, 1)
		if calls := h.bookings.Calls(); len(calls) != 0 || !strings.Contains(ds[0].Note, "is not the booking's issue") {
			t.Fatalf("the clone moved to Cancelled: calls %+v, note %q; want nothing done, and why", calls, ds[0].Note)
		}
		send(orig.Key)
		h.waitAllDone(t, webhooks.ProviderJira, 2)
		if calls := h.bookings.Calls(); len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-orig" {
			t.Fatalf("the booking's issue moved to Cancelled: calls %+v, want the booking cancelled", calls)
		}
	})
}

// TestJiraCancelOnlyAtTheConfiguredStatus: only a move to the configured
// cancel status cancels the booking. A person moving the issue to another
// status (In Progress, or Cancelled where the site's cancel status is
// another one) leaves the booking alone, and says so.
func TestJiraCancelOnlyAtTheConfiguredStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t), func(c *webhooks.Config) { c.JiraCancelStatus = "Won't Do" })
	sim, jc := newJira(t, "")
	ref, err := jc.CreateIssue(t.Context(), jira.IssueInput{ProjectKey: "SPOT", IssueType: "Task", Summary: "Session", BookingID: "b-status"})
	if err != nil {
		t.Fatal(err)
	}
	h.bookings.add(webhooks.Booking{ID: "b-status", Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}, "", "", ref.Key)
	for i, to := range []string{"In Progress", "Cancelled", "Won't Do"} {
		change := []jiratest.ChangelogItem{{Field: "status", FieldType: "jira", FromString: "To Do", ToString: to, From: "10000", To: fmt.Sprint(10001 + i)}}
		if _, err := sim.SendWebhook(t.Context(), h.url+"/webhooks/jira", jiraSecret, jiratest.Event{Type: jiratest.EventIssueUpdated, IssueKey: ref.Key,
			AccountID: "human-ops", Changelog: change}); err != nil {
			t.Fatal(err)
		}
		ds := h.waitAllDone(t, webhooks.ProviderJira, i+1)
		calls := h.bookings.Calls()
		if to != "Won't Do" {
			if len(calls) != 0 || ds[0].Note != "no move to the cancel status" {
				t.Fatalf("moved to %s: calls %+v, note %q; want nothing done", to, calls, ds[0].Note)
			}
			continue
		}
		if len(calls) != 1 || calls[0].Op != "cancel" || calls[0].ID != "b-status" || !strings.Contains(calls[0].Reason, "Won't Do") {
			t.Fatalf("moved to the cancel status: calls %+v, want the booking cancelled", calls)
		}
	}
}
