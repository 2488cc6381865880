package jiratest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Webhook event names (the payload's "webhookEvent").
const (
	EventIssueCreated = "jira:issue_created"
	EventIssueUpdated = "jira:issue_updated"
	EventIssueDeleted = "jira:issue_deleted"
)

// ChangelogItem is one entry of a webhook's changelog.items.
type ChangelogItem struct {
	Field      string `json:"field"`
	FieldType  string `json:"fieldtype"`
	FieldID    string `json:"fieldId,omitempty"`
	From       string `json:"from"`
	FromString string `json:"fromString"`
	To         string `json:"to"`
	ToString   string `json:"toString"`
}

// Event describes a webhook to send.
type Event struct {
	// Identifier becomes X-Atlassian-Webhook-Identifier; generated when
	// empty.
	Identifier string
	// Type is EventIssueCreated, EventIssueUpdated or EventIssueDeleted.
	Type string
	// IssueKey names the issue whose current state (or, once deleted, last
	// state) is sent as "issue".
	IssueKey string
	// Changelog is sent as changelog.items (issue_updated).
	Changelog []ChangelogItem
	// AccountID is the acting user ("user"); default the first account.
	AccountID string
	// Timestamp defaults to the server clock.
	Timestamp time.Time

	body []byte // rendered payload, set once the event is built
}

// Delivery records one webhook sent (and possibly resent) by the Server.
type Delivery struct {
	URL        string
	Identifier string // X-Atlassian-Webhook-Identifier, unchanged by Resend
	Event      string
	IssueKey   string
	Body       []byte // the raw body, byte-identical across retries
	Signature  string // X-Hub-Signature value, "" when unsigned
	Retries    int    // X-Atlassian-Webhook-Retry of the last attempt
	Status     int    // HTTP status of the last attempt, 0 on transport error
	Err        string // transport error of the last attempt

	secret string
}

// Sign returns the X-Hub-Signature value Jira sends for body and secret:
// "sha256=" + hex(HMAC-SHA256(secret, body)).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func newIdentifier() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// eventLocked builds an event (with its payload rendered from i now); s.mu held.
func (s *Server) eventLocked(i *issue, typ, actor string, items []ChangelogItem) *Event {
	ev := &Event{Type: typ, IssueKey: i.key, Changelog: items, AccountID: actor, Timestamp: s.now()}
	ev.body = s.payloadLocked(ev, i)
	return ev
}

func (s *Server) payloadLocked(ev *Event, i *issue) []byte {
	p := map[string]any{
		"timestamp":    ev.Timestamp.UnixMilli(),
		"webhookEvent": ev.Type,
		"user":         s.userJSON(ev.AccountID),
		"issue":        s.issueJSON(i, s.baseURLLocked(), []string{"*all"}),
	}
	switch ev.Type {
	case EventIssueCreated:
		p["issue_event_type_name"] = "issue_created"
	case EventIssueUpdated:
		p["issue_event_type_name"] = "issue_generic"
		items := ev.Changelog
		if items == nil {
			items = []ChangelogItem{}
		}
		s.nextChange++
		p["changelog"] = map[string]any{"id": strconv.Itoa(10000 + s.nextChange), "items": items}
	}
	b, _ := json.Marshal(p)
	return b
}

func (s *Server) baseURLLocked() string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	return s.lastBase
}

// emit delivers ev asynchronously to Options.WebhookURL, when configured.
func (s *Server) emit(ev *Event) {
	if s.opts.WebhookURL == "" || ev == nil {
		return
	}
	ev.Identifier = newIdentifier()
	d := &Delivery{URL: s.opts.WebhookURL, Identifier: ev.Identifier, Event: ev.Type, IssueKey: ev.IssueKey, Body: ev.body, secret: s.opts.WebhookSecret}
	if d.secret != "" {
		d.Signature = Sign(d.secret, d.Body)
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.deliver(ctx, d)
		s.record(*d)
	})
}

func (s *Server) record(d Delivery) {
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
}

// Deliveries returns the webhook attempts made so far (automatic ones and
// those from SendWebhook/Resend), oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// SendWebhook renders ev for its issue and POSTs it to url, signed with
// secret when secret is not empty. It returns the delivery (keep it for
// Resend) and an error for a transport failure or a non-2xx answer.
func (s *Server) SendWebhook(ctx context.Context, url, secret string, ev Event) (*Delivery, error) {
	if ev.Type == "" {
		return nil, fmt.Errorf("jiratest: send webhook: event type required")
	}
	if ev.Identifier == "" {
		ev.Identifier = newIdentifier()
	}
	if ev.AccountID == "" {
		ev.AccountID = s.opts.Accounts[0].AccountID
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = s.now()
	}
	s.mu.Lock()
	i := s.lookup(ev.IssueKey)
	if i == nil {
		i = s.deleted[ev.IssueKey]
	}
	if i == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("jiratest: send webhook: no issue %q", ev.IssueKey)
	}
	body := s.payloadLocked(&ev, i)
	s.mu.Unlock()
	d := &Delivery{URL: url, Identifier: ev.Identifier, Event: ev.Type, IssueKey: ev.IssueKey, Body: body, secret: secret}
	if secret != "" {
		d.Signature = Sign(secret, body)
	}
	err := s.deliver(ctx, d)
	s.record(*d)
	return d, err
}

// Resend delivers d again as Jira retries: same body, same
// X-Atlassian-Webhook-Identifier and signature, X-Atlassian-Webhook-Retry
// incremented.
func (s *Server) Resend(ctx context.Context, d *Delivery) error {
	d.Retries++
	err := s.deliver(ctx, d)
	s.record(*d)
	return err
}

func (s *Server) deliver(ctx context.Context, d *Delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return fmt.Errorf("jiratest: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Atlassian Webhook HTTP Client")
	req.Header.Set("X-Atlassian-Webhook-Identifier", d.Identifier)
	req.Header.Set("X-Atlassian-Webhook-Flow", "Primary")
	if d.Retries > 0 {
		req.Header.Set("X-Atlassian-Webhook-Retry", strconv.Itoa(d.Retries))
	}
	if d.Signature != "" {
		req.Header.Set("X-Hub-Signature", d.Signature)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		d.Status, d.Err = 0, err.Error()
		return fmt.Errorf("jiratest: deliver webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	d.Status, d.Err = resp.StatusCode, ""
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("jiratest: deliver webhook: status %d", resp.StatusCode)
	}
	return nil
}
