package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spotlight/gateway/integrations/outbound"
)

// timeLayout is the timestamp layout of Jira REST responses.
const timeLayout = "2006-01-02T15:04:05.000-0700"

// BookingLabelPrefix starts the label that ties an issue to its booking.
const BookingLabelPrefix = "spotlight-booking-"

// BookingLabel returns the label for bookingID. Jira labels cannot contain
// whitespace, so any is replaced by '-'.
func BookingLabel(bookingID string) string {
	return BookingLabelPrefix + strings.Join(strings.Fields(bookingID), "-")
}

// IssueInput describes an issue to create.
type IssueInput struct {
	ProjectKey string // required, e.g. "SPOT"
	IssueType  string // required issue type name, e.g. "Task"
	Summary    string // required, at most 255 characters
	// Description is an ADF document; build it with Document.
	Description *Node
	Labels      []string
	// BookingID, when set, adds BookingLabel(BookingID) to the labels and,
	// with WithBookingField, writes the id into that custom field.
	BookingID string
	// Fields are further fields by id ("customfield_10060": "…"), sent as
	// given.
	Fields map[string]any
	// Uncertain, for EnsureIssue, says an earlier create for the booking
	// may still take effect (its caller gave up waiting for the answer):
	// EnsureIssue searches for that issue for the settle time before
	// creating one.
	Uncertain bool
}

// IssueRef identifies an issue.
type IssueRef struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Self string `json:"self"`
}

// Issue is an issue as read from Jira.
type Issue struct {
	ID, Key, Self string
	ProjectKey    string
	IssueType     string
	Summary       string
	Description   *Node
	Labels        []string
	Status        string
	// StatusCategory is "new", "indeterminate" or "done".
	StatusCategory string
	// BookingID is the value of the WithBookingField field, if configured.
	BookingID        string
	Created, Updated time.Time
	// Fields holds every returned field, raw.
	Fields map[string]json.RawMessage
}

// issueFields are the fields the client asks for when reading issues.
var issueFields = []string{"summary", "description", "labels", "status", "issuetype", "project", "created", "updated"}

func (c *Client) wantFields() []string {
	if c.bookingField == "" {
		return issueFields
	}
	return append(slices.Clone(issueFields), c.bookingField)
}

type issueJSON struct {
	ID     string          `json:"id"`
	Key    string          `json:"key"`
	Self   string          `json:"self"`
	Fields json.RawMessage `json:"fields"`
}

func (c *Client) parseIssue(j issueJSON) (*Issue, error) {
	is := &Issue{ID: j.ID, Key: j.Key, Self: j.Self}
	var f struct {
		Summary     string   `json:"summary"`
		Description *Node    `json:"description"`
		Labels      []string `json:"labels"`
		Status      struct {
			Name     string `json:"name"`
			Category struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"status"`
		IssueType struct {
			Name string `json:"name"`
		} `json:"issuetype"`
		Project struct {
			Key string `json:"key"`
		} `json:"project"`
		Created string `json:"created"`
		Updated string `json:"updated"`
	}
	if len(j.Fields) > 0 {
		if err := json.Unmarshal(j.Fields, &is.Fields); err != nil {
			return nil, fmt.Errorf("decode issue %s fields: %w", j.Key, err)
		}
		if err := json.Unmarshal(j.Fields, &f); err != nil {
			return nil, fmt.Errorf("decode issue %s fields: %w", j.Key, err)
		}
	}
	is.ProjectKey, is.IssueType, is.Summary = f.Project.Key, f.IssueType.Name, f.Summary
	is.Description, is.Labels = f.Description, f.Labels
	is.Status, is.StatusCategory = f.Status.Name, f.Status.Category.Key
	if f.Created != "" {
		is.Created, _ = time.Parse(timeLayout, f.Created)
	}
	if f.Updated != "" {
		is.Updated, _ = time.Parse(timeLayout, f.Updated)
	}
	if c.bookingField != "" {
		if v, ok := is.Fields[c.bookingField]; ok {
			_ = json.Unmarshal(v, &is.BookingID)
		}
	}
	return is, nil
}

func (c *Client) createFields(in IssueInput) (map[string]any, error) {
	if in.ProjectKey == "" || in.IssueType == "" || strings.TrimSpace(in.Summary) == "" {
		return nil, errors.New("project key, issue type and summary are required")
	}
	fields := map[string]any{}
	for k, v := range in.Fields {
		fields[k] = v
	}
	fields["project"] = map[string]string{"key": in.ProjectKey}
	fields["issuetype"] = map[string]string{"name": in.IssueType}
	fields["summary"] = in.Summary
	if in.Description != nil {
		fields["description"] = in.Description
	}
	labels := slices.Clone(in.Labels)
	if in.BookingID != "" {
		if l := BookingLabel(in.BookingID); !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
		if c.bookingField != "" {
			fields[c.bookingField] = in.BookingID
		}
	}
	if len(labels) > 0 {
		fields["labels"] = labels
	}
	return fields, nil
}

// CreateIssue creates an issue. It is not retried by the transport (a POST);
// use EnsureIssue for a create that is safe to repeat.
func (c *Client) CreateIssue(ctx context.Context, in IssueInput) (*IssueRef, error) {
	fields, err := c.createFields(in)
	if err != nil {
		return nil, fmt.Errorf("jira: create issue: %w", err)
	}
	var ref IssueRef
	if err := c.do(ctx, "create_issue", http.MethodPost, "/rest/api/3/issue", nil, map[string]any{"fields": fields}, &ref); err != nil {
		return nil, fmt.Errorf("jira: create issue: %w", err)
	}
	return &ref, nil
}

// Myself returns the account id of the account the client acts as
// (GET /rest/api/3/myself): a change made by this account is the client's
// own.
func (c *Client) Myself(ctx context.Context) (string, error) {
	var me struct {
		AccountID string `json:"accountId"`
	}
	if err := c.do(ctx, "myself", http.MethodGet, "/rest/api/3/myself", nil, nil, &me); err != nil {
		return "", fmt.Errorf("jira: myself: %w", err)
	}
	if me.AccountID == "" {
		return "", errors.New("jira: myself: no accountId in the answer")
	}
	return me.AccountID, nil
}

// GetIssue reads an issue by key or id.
func (c *Client) GetIssue(ctx context.Context, keyOrID string) (*Issue, error) {
	var j issueJSON
	q := url.Values{"fields": {strings.Join(c.wantFields(), ",")}}
	if err := c.do(ctx, "get_issue", http.MethodGet, "/rest/api/3/issue/"+url.PathEscape(keyOrID), q, nil, &j); err != nil {
		return nil, fmt.Errorf("jira: get issue %s: %w", keyOrID, err)
	}
	is, err := c.parseIssue(j)
	if err != nil {
		return nil, fmt.Errorf("jira: get issue %s: %w", keyOrID, err)
	}
	return is, nil
}

// IssueUpdate lists the fields to change; nil/zero members are left alone.
type IssueUpdate struct {
	Summary     *string
	Description *Node
	// Labels, when non-nil, replace the labels.
	Labels []string
	// Fields are further fields by id; a nil value clears the field.
	Fields map[string]any
}

// UpdateFields edits an issue (PUT, idempotent, so retried by the
// transport). Notifications follow the project's settings.
func (c *Client) UpdateFields(ctx context.Context, keyOrID string, u IssueUpdate) error {
	fields := map[string]any{}
	for k, v := range u.Fields {
		fields[k] = v
	}
	if u.Summary != nil {
		fields["summary"] = *u.Summary
	}
	if u.Description != nil {
		fields["description"] = u.Description
	}
	if u.Labels != nil {
		fields["labels"] = u.Labels
	}
	if len(fields) == 0 {
		return nil
	}
	if err := c.do(ctx, "update_issue", http.MethodPut, "/rest/api/3/issue/"+url.PathEscape(keyOrID), nil, map[string]any{"fields": fields}, nil); err != nil {
		return fmt.Errorf("jira: update issue %s: %w", keyOrID, err)
	}
	return nil
}

// DeleteIssue deletes an issue. A delete whose response was lost and that
// the transport repeated answers ErrNotFound: callers deleting for cleanup
// may treat ErrNotFound as success.
func (c *Client) DeleteIssue(ctx context.Context, keyOrID string) error {
	if err := c.do(ctx, "delete_issue", http.MethodDelete, "/rest/api/3/issue/"+url.PathEscape(keyOrID), nil, nil, nil); err != nil {
		return fmt.Errorf("jira: delete issue %s: %w", keyOrID, err)
	}
	return nil
}

// Transition is a workflow transition available for an issue.
type Transition struct {
	ID       string
	Name     string
	ToStatus string
}

// Transitions lists the transitions available from the issue's current
// status.
func (c *Client) Transitions(ctx context.Context, keyOrID string) ([]Transition, error) {
	var resp struct {
		Transitions []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			To   struct {
				Name string `json:"name"`
			} `json:"to"`
		} `json:"transitions"`
	}
	if err := c.do(ctx, "get_transitions", http.MethodGet, "/rest/api/3/issue/"+url.PathEscape(keyOrID)+"/transitions", nil, nil, &resp); err != nil {
		return nil, fmt.Errorf("jira: transitions of %s: %w", keyOrID, err)
	}
	out := make([]Transition, 0, len(resp.Transitions))
	for _, t := range resp.Transitions {
		out = append(out, Transition{ID: t.ID, Name: t.Name, ToStatus: t.To.Name})
	}
	return out, nil
}

// TransitionTo moves the issue to the status named status (case-insensitive),
// resolving the transition id through GET …/transitions. An issue already in
// that status is left alone, so TransitionTo can be repeated safely; after an
// ambiguous failure of the transition itself it re-reads the status and
// reports success if the move did happen. ErrNoTransition when the workflow
// offers no way there from the current status.
func (c *Client) TransitionTo(ctx context.Context, keyOrID, status string) error {
	current, err := c.status(ctx, keyOrID)
	if err != nil {
		return fmt.Errorf("jira: transition %s: %w", keyOrID, err)
	}
	if strings.EqualFold(current, status) {
		return nil
	}
	ts, err := c.Transitions(ctx, keyOrID)
	if err != nil {
		return err
	}
	var pick *Transition
	var names []string
	for i, t := range ts {
		names = append(names, t.ToStatus)
		if pick == nil && strings.EqualFold(t.ToStatus, status) {
			pick = &ts[i]
		}
	}
	if pick == nil {
		return fmt.Errorf("jira: transition %s from %q to %q (reachable: %s): %w", keyOrID, current, status, strings.Join(names, ", "), ErrNoTransition)
	}
	body := map[string]any{"transition": map[string]string{"id": pick.ID}}
	err = c.do(ctx, "transition_issue", http.MethodPost, "/rest/api/3/issue/"+url.PathEscape(keyOrID)+"/transitions", nil, body, nil)
	if err != nil && ambiguous(err) && ctx.Err() == nil {
		if now, serr := c.status(ctx, keyOrID); serr == nil && strings.EqualFold(now, status) {
			c.log.DebugContext(ctx, "jira transition applied although its response was lost", "provider", Provider, "issue", keyOrID)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("jira: transition %s to %q: %w", keyOrID, status, err)
	}
	return nil
}

func (c *Client) status(ctx context.Context, keyOrID string) (string, error) {
	var j struct {
		Fields struct {
			Status struct {
				Name string `json:"name"`
			} `json:"status"`
		} `json:"fields"`
	}
	if err := c.do(ctx, "get_issue", http.MethodGet, "/rest/api/3/issue/"+url.PathEscape(keyOrID), url.Values{"fields": {"status"}}, nil, &j); err != nil {
		return "", err
	}
	return j.Fields.Status.Name, nil
}

// ambiguous reports whether a failed write may nevertheless have been
// applied: a transport error after the request may have left, or a 5xx.
// 429 and other 4xx are answered before anything is applied.
// unanswered reports whether an ambiguous failure came without Jira's own
// answer (a timeout, a lost connection, a gateway's 502 or 504): the
// request may still be at work, and its issue show only later.
func unanswered(err error) bool {
	var oe *outbound.Error
	return errors.As(err, &oe) && (oe.Status == 0 || oe.Status == http.StatusBadGateway || oe.Status == http.StatusGatewayTimeout)
}

func ambiguous(err error) bool {
	var oe *outbound.Error
	if !errors.As(err, &oe) {
		return false
	}
	if errors.Is(oe, outbound.ErrCircuitOpen) {
		return false
	}
	return oe.Status == 0 || oe.Status >= 500
}

// Comment is an issue comment.
type Comment struct {
	ID      string
	Self    string
	Body    *Node
	Created time.Time
}

// AddComment adds a comment with an ADF body (build one with Document). Like
// every POST it is not retried by the transport.
func (c *Client) AddComment(ctx context.Context, keyOrID string, body *Node) (*Comment, error) {
	if body == nil {
		return nil, errors.New("jira: add comment: empty body")
	}
	var resp struct {
		ID      string `json:"id"`
		Self    string `json:"self"`
		Body    *Node  `json:"body"`
		Created string `json:"created"`
	}
	if err := c.do(ctx, "add_comment", http.MethodPost, "/rest/api/3/issue/"+url.PathEscape(keyOrID)+"/comment", nil, map[string]any{"body": body}, &resp); err != nil {
		return nil, fmt.Errorf("jira: add comment to %s: %w", keyOrID, err)
	}
	cm := &Comment{ID: resp.ID, Self: resp.Self, Body: resp.Body}
	cm.Created, _ = time.Parse(timeLayout, resp.Created)
	return cm, nil
}

// SearchOptions tune SearchJQL.
type SearchOptions struct {
	// Fields to return; default the fields Issue is decoded from.
	Fields []string
	// PageSize is maxResults per request; default 50.
	PageSize int
	// Limit caps the number of issues returned over all pages; default 1000.
	Limit int
}

// SearchJQL runs jql through the enhanced search (POST /rest/api/3/search/jql)
// and follows nextPageToken until the last page or Limit. The query must be
// bounded (contain a restriction). Search is a read, so its POST is marked
// retry-safe for the transport.
func (c *Client) SearchJQL(ctx context.Context, jql string, opts *SearchOptions) ([]Issue, error) {
	var o SearchOptions
	if opts != nil {
		o = *opts
	}
	if len(o.Fields) == 0 {
		o.Fields = c.wantFields()
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.Limit <= 0 {
		o.Limit = 1000
	}
	ctx = outbound.WithRetrySafe(ctx)
	var out []Issue
	token := ""
	for len(out) < o.Limit {
		req := map[string]any{"jql": jql, "fields": o.Fields, "maxResults": min(o.PageSize, o.Limit-len(out))}
		if token != "" {
			req["nextPageToken"] = token
		}
		var resp struct {
			Issues        []issueJSON `json:"issues"`
			NextPageToken string      `json:"nextPageToken"`
			IsLast        bool        `json:"isLast"`
		}
		if err := c.do(ctx, "search_issues", http.MethodPost, "/rest/api/3/search/jql", nil, req, &resp); err != nil {
			return nil, fmt.Errorf("jira: search: %w", err)
		}
		for _, j := range resp.Issues {
			is, err := c.parseIssue(j)
			if err != nil {
				return nil, fmt.Errorf("jira: search: %w", err)
			}
			out = append(out, *is)
		}
		if resp.IsLast || resp.NextPageToken == "" || len(resp.Issues) == 0 {
			break
		}
		token = resp.NextPageToken
	}
	return out, nil
}

// QuoteJQL quotes s as a JQL string literal.
func QuoteJQL(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
