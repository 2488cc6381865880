package jira

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Webhook events the gateway handles (the payload's webhookEvent).
const (
	EventIssueCreated = "jira:issue_created"
	EventIssueUpdated = "jira:issue_updated"
	EventIssueDeleted = "jira:issue_deleted"
)

// Webhook headers
// (https://developer.atlassian.com/cloud/jira/platform/webhooks/).
const (
	// HeaderWebhookIdentifier is unique per delivery and unchanged across
	// Jira's retries: the deduplication key.
	HeaderWebhookIdentifier = "X-Atlassian-Webhook-Identifier"
	// HeaderSignature carries "sha256=<hex HMAC-SHA256 of the raw body>" for
	// admin webhooks registered with a secret.
	HeaderSignature = "X-Hub-Signature"
)

// ErrSignature reports a missing or wrong webhook signature.
var ErrSignature = errors.New("jira: webhook signature mismatch")

// VerifyWebhookSignature checks header (the X-Hub-Signature value) against
// the raw body and secret, in constant time.
func VerifyWebhookSignature(secret string, body []byte, header string) error {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return fmt.Errorf("%w: header is not sha256=<hex>", ErrSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed digest", ErrSignature)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrSignature
	}
	return nil
}

// ChangelogItem is one change in a jira:issue_updated webhook.
type ChangelogItem struct {
	Field      string `json:"field"`
	FieldID    string `json:"fieldId"`
	From       string `json:"from"`
	FromString string `json:"fromString"`
	To         string `json:"to"`
	ToString   string `json:"toString"`
}

// WebhookEvent is the decoded body of an issue webhook.
type WebhookEvent struct {
	// Event is the webhookEvent ("jira:issue_updated").
	Event string
	// Timestamp is milliseconds since the Unix epoch.
	Timestamp int64
	// AccountID is the acting user; the gateway compares it with its own
	// account to ignore echoes of its own changes.
	AccountID string
	Issue     *Issue
	Changelog []ChangelogItem
}

// ParseWebhook decodes an issue webhook body (verify it first). bookingField
// ("" if none) fills Issue.BookingID.
func ParseWebhook(body []byte, bookingField string) (*WebhookEvent, error) {
	var p struct {
		WebhookEvent string `json:"webhookEvent"`
		Timestamp    int64  `json:"timestamp"`
		User         struct {
			AccountID string `json:"accountId"`
		} `json:"user"`
		Issue     *issueJSON `json:"issue"`
		Changelog struct {
			Items []ChangelogItem `json:"items"`
		} `json:"changelog"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("jira: parse webhook: %w", err)
	}
	if p.WebhookEvent == "" {
		return nil, errors.New("jira: parse webhook: no webhookEvent")
	}
	ev := &WebhookEvent{Event: p.WebhookEvent, Timestamp: p.Timestamp, AccountID: p.User.AccountID, Changelog: p.Changelog.Items}
	if p.Issue != nil {
		c := &Client{bookingField: bookingField}
		is, err := c.parseIssue(*p.Issue)
		if err != nil {
			return nil, fmt.Errorf("jira: parse webhook: %w", err)
		}
		ev.Issue = is
	}
	return ev, nil
}
