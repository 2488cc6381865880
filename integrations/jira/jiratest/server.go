// Package jiratest is an in-memory simulator of the Jira Cloud platform REST
// API v3, strict about authentication and request shape like the real
// service, for tests and for the gateway's embedded sandbox mode.
//
// It follows these Atlassian documents:
//
//   - Issues: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/
//     (POST /rest/api/3/issue → 201 {id,key,self}; GET/PUT/DELETE
//     /rest/api/3/issue/{issueIdOrKey}; PUT and DELETE answer 204;
//     GET/POST /rest/api/3/issue/{issueIdOrKey}/transitions, POST answers 204
//     and an unknown transition id is a 400). The summary is a single line
//     of at most 255 characters: one with a line break is answered 400
//     {"errors":{"summary":"The summary is invalid because it contains
//     newline characters."}}, on create and edit, as Jira Cloud answers
//     (reported in https://github.com/DefectDojo/django-DefectDojo/pull/4954
//     from an atlassian.net site, and https://github.com/elastic/kibana/issues/104932).
//   - Issue comments: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-comments/
//     (POST /rest/api/3/issue/{issueIdOrKey}/comment with an ADF body → 201).
//   - Issue search: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/
//     (POST /rest/api/3/search/jql, the enhanced search that replaced
//     /rest/api/3/search: body {jql, fields, maxResults, nextPageToken},
//     answer {issues, nextPageToken, isLast}; unbounded JQL is refused and
//     without "fields" only issue ids are returned).
//   - Atlassian Document Format: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
//     (rich-text fields such as description and comment bodies must be
//     {"type":"doc","version":1,"content":[…]}; a plain string is answered
//     400 {"errors":{"description":"Operation value must be an Atlassian
//     Document (see the Atlassian Document Format)"}}).
//   - Status codes and error bodies: https://developer.atlassian.com/cloud/jira/platform/rest/v3/intro/#status-codes
//     ({"errorMessages":[…],"errors":{field:message}}).
//   - Rate limiting: https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
//     (429 with Retry-After seconds and X-RateLimit-Reset; some 503s also carry
//     Retry-After).
//   - Authentication: Basic auth with an account email and API token
//     (https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/)
//     and OAuth 2.0 (3LO) bearer tokens
//     (https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/),
//     whose requests go to https://api.atlassian.com/ex/jira/{cloudId}/rest/…;
//     the simulator serves that prefix too when Options.CloudID is set.
//   - Webhooks: https://developer.atlassian.com/cloud/jira/platform/webhooks/
//     (webhookEvent jira:issue_created|updated|deleted, changelog.items[] with
//     field/fromString/toString, X-Atlassian-Webhook-Identifier unchanged
//     across retries, X-Atlassian-Webhook-Retry counting them, and for admin
//     webhooks with a secret X-Hub-Signature: sha256=<hex HMAC-SHA256 of the
//     raw body>).
//
// What it deliberately leaves out: screens and field configurations (every
// configured field is settable), permissions beyond a read-only account,
// JQL functions, comparison operators and most JQL fields (the supported
// subset is documented in jql.go), and eventual consistency of search (here
// a created issue is searchable at once; real Jira may lag, see
// reconcileIssues).
//
// A Server is an http.Handler; wrap it with httptest.NewServer or serve it on
// a listener. It is safe for concurrent use.
package jiratest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Credentials the simulator accepts when Options.Accounts is empty.
const (
	// DefaultEmail and DefaultAPIToken are the Basic credentials of the
	// default account.
	DefaultEmail    = "sim@spotlight.test"
	DefaultAPIToken = "sim-jira-api-token"
	// DefaultBearerToken is the OAuth 2.0 access token of the default
	// account.
	DefaultBearerToken = "sim-jira-oauth-access-token"
	// DefaultAccountID is the default account's accountId, the "user" of
	// the webhooks its changes cause.
	DefaultAccountID = "5b10ac8d82e05b22cc7d4ef5"
	// DefaultBookingField is the custom field (single-line text, "Booking
	// ID") configured when Options.CustomFields is nil.
	DefaultBookingField = "customfield_10050"
	// DefaultProjectKey is the project configured when Options.Projects is
	// empty.
	DefaultProjectKey = "SPOT"
)

// Account is a Jira user (or OAuth app acting for one) the simulator
// authenticates.
type Account struct {
	// AccountID identifies the user in responses and webhook payloads
	// ("user.accountId"); derived from the email when empty.
	AccountID   string
	DisplayName string
	// Email and APIToken are accepted as HTTP Basic credentials when both
	// are set.
	Email, APIToken string
	// BearerTokens are OAuth 2.0 access tokens accepted for this account.
	BearerTokens []string
	// ReadOnly accounts may browse and search but every write answers 403.
	ReadOnly bool
}

// Project is a Jira project.
type Project struct{ ID, Key, Name string }

// IssueType is an issue type available in every project.
type IssueType struct{ ID, Name string }

// Status is a workflow status. Category is the status category key: "new",
// "indeterminate" or "done".
type Status struct{ ID, Name, Category string }

// Transition moves an issue from one of From (any status when From is
// empty: a global transition) to To. IDs are strings of digits, as in Jira.
type Transition struct {
	ID, Name string
	From     []string // status names
	To       string   // status name
}

// Workflow is the one workflow every issue follows.
type Workflow struct {
	Initial     string // status name new issues start in
	Statuses    []Status
	Transitions []Transition
}

// DefaultWorkflow returns the workflow used when Options.Workflow is empty:
// To Do → In Progress → Done, with Stop Progress, Reopen and a global
// Cancel transition.
func DefaultWorkflow() Workflow {
	return Workflow{
		Initial: "To Do",
		Statuses: []Status{
			{ID: "10000", Name: "To Do", Category: "new"},
			{ID: "10001", Name: "In Progress", Category: "indeterminate"},
			{ID: "10002", Name: "Done", Category: "done"},
			{ID: "10003", Name: "Cancelled", Category: "done"},
		},
		Transitions: []Transition{
			{ID: "11", Name: "Stop Progress", From: []string{"In Progress"}, To: "To Do"},
			{ID: "21", Name: "Start Progress", From: []string{"To Do"}, To: "In Progress"},
			{ID: "31", Name: "Done", From: []string{"In Progress"}, To: "Done"},
			{ID: "41", Name: "Cancel", To: "Cancelled"},
			{ID: "51", Name: "Reopen", From: []string{"Done", "Cancelled"}, To: "To Do"},
		},
	}
}

// Options configure a Server. The zero value gives one account
// (DefaultEmail/DefaultAPIToken, bearer DefaultBearerToken), project SPOT,
// issue types Task and Bug, the custom field DefaultBookingField and
// DefaultWorkflow.
type Options struct {
	Accounts   []Account
	Projects   []Project
	IssueTypes []IssueType
	// CustomFields are the ids ("customfield_10050") of single-line text
	// custom fields that may be set; nil means {DefaultBookingField}.
	CustomFields []string
	Workflow     Workflow
	// CloudID, when set, also serves the API under /ex/jira/{CloudID}/, the
	// path OAuth 2.0 (3LO) apps use on api.atlassian.com.
	CloudID string
	// BaseURL is used for "self" links; empty means derived from each
	// request's Host.
	BaseURL string
	// RatePerSecond and Burst enable a per-account token bucket; requests
	// over it answer 429 with Retry-After. 0 disables it.
	RatePerSecond float64
	Burst         int
	// WebhookURL, when set, receives jira:issue_created/updated/deleted for
	// every change made through the API, signed with WebhookSecret when set.
	// Deliveries are asynchronous, as in Jira; see Deliveries and Wait.
	WebhookURL, WebhookSecret string
	// HTTPClient sends webhooks; default a client with a 10 s timeout.
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger // nil discards
}

// Fault changes how matching requests are answered. Faults are checked in
// the order they were added; the first match applies.
type Fault struct {
	Method string // "" matches any method
	Path   string // prefix of the URL path ("/rest/api/3/issue"); "" matches any
	// Latency is added before the request is handled (cut short when the
	// client gives up).
	Latency time.Duration
	// Status, when non-zero, answers the request with this status and a Jira
	// error body without applying it. RetryAfter adds Retry-After (whole
	// seconds, at least 1) and, for 429, X-RateLimit-Reset.
	Status     int
	RetryAfter time.Duration
	// DropResponse applies the request, then closes the connection without
	// answering: the "applied but response lost" failure.
	DropResponse bool
	// Times limits the fault to the next Times matching requests; 0 means
	// until removed.
	Times int
	// ApplyAfter holds the request this long, even when the client gives
	// up meanwhile, and then applies it (answering the client if it still
	// waits): a Jira still working on a request its client abandoned,
	// whose effect shows only after the client's timeout.
	ApplyAfter time.Duration
}

// Server simulates one Jira Cloud site. Create it with New.
type Server struct {
	opts     Options
	now      func() time.Time
	log      *slog.Logger
	mux      *http.ServeMux
	hc       *http.Client
	statuses map[string]Status // by name
	limiters map[string]*rate.Limiter

	mu         sync.Mutex
	issues     map[string]*issue // by key
	byID       map[string]*issue
	order      []*issue          // existing issues by creation
	deleted    map[string]*issue // tombstones for webhooks, by key
	nextID     int
	nextNum    map[string]int // per project key
	nextCmt    int
	nextChange int
	requests   map[string]int
	faults     []*faultState
	deliveries []Delivery
	lastBase   string

	wg sync.WaitGroup // asynchronous webhook deliveries
}

type faultState struct {
	Fault
	left int // remaining uses when Times > 0
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	if len(opts.Accounts) == 0 {
		opts.Accounts = []Account{{
			AccountID: DefaultAccountID, DisplayName: "Spotlight Simulator",
			Email: DefaultEmail, APIToken: DefaultAPIToken,
			BearerTokens: []string{DefaultBearerToken},
		}}
	}
	for i := range opts.Accounts {
		a := &opts.Accounts[i]
		if a.AccountID == "" {
			a.AccountID = "sim-" + strings.NewReplacer("@", "-", ".", "-").Replace(a.Email)
		}
		if a.DisplayName == "" {
			a.DisplayName = a.Email
		}
	}
	if len(opts.Projects) == 0 {
		opts.Projects = []Project{{ID: "10000", Key: DefaultProjectKey, Name: "Spotlight"}}
	}
	if len(opts.IssueTypes) == 0 {
		opts.IssueTypes = []IssueType{{ID: "10001", Name: "Task"}, {ID: "10002", Name: "Bug"}}
	}
	if opts.CustomFields == nil {
		opts.CustomFields = []string{DefaultBookingField}
	}
	if len(opts.Workflow.Statuses) == 0 {
		opts.Workflow = DefaultWorkflow()
	}
	if opts.Workflow.Initial == "" {
		opts.Workflow.Initial = opts.Workflow.Statuses[0].Name
	}
	s := &Server{
		opts:     opts,
		now:      opts.Now,
		log:      opts.Logger,
		hc:       opts.HTTPClient,
		statuses: map[string]Status{},
		limiters: map[string]*rate.Limiter{},
		issues:   map[string]*issue{},
		byID:     map[string]*issue{},
		deleted:  map[string]*issue{},
		nextID:   10000,
		nextNum:  map[string]int{},
		nextCmt:  10000,
		requests: map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 10 * time.Second}
	}
	for _, st := range opts.Workflow.Statuses {
		s.statuses[strings.ToLower(st.Name)] = st
	}
	if opts.RatePerSecond > 0 {
		burst := max(opts.Burst, 1)
		for _, a := range opts.Accounts {
			s.limiters[a.AccountID] = rate.NewLimiter(rate.Limit(opts.RatePerSecond), burst)
		}
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.handle("POST /rest/api/3/issue", true, s.createIssue)
	s.handle("GET /rest/api/3/issue/{key}", false, s.getIssue)
	s.handle("PUT /rest/api/3/issue/{key}", true, s.editIssue)
	s.handle("DELETE /rest/api/3/issue/{key}", true, s.deleteIssue)
	s.handle("GET /rest/api/3/issue/{key}/transitions", false, s.getTransitions)
	s.handle("POST /rest/api/3/issue/{key}/transitions", true, s.doTransition)
	s.handle("GET /rest/api/3/issue/{key}/comment", false, s.getComments)
	s.handle("POST /rest/api/3/issue/{key}/comment", true, s.addComment)
	s.handle("POST /rest/api/3/search/jql", false, s.searchPost)
	s.handle("GET /rest/api/3/search/jql", false, s.searchGet)
	s.handle("GET /rest/api/3/myself", false, s.myself)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count("unmatched")
		writeError(w, http.StatusNotFound, nil, "No resource found for "+r.Method+" "+r.URL.Path)
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.CloudID != "" {
		prefix := "/ex/jira/" + s.opts.CloudID
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok && strings.HasPrefix(rest, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = rest
			r2.URL.RawPath = ""
			r = r2
		}
	}
	s.mux.ServeHTTP(w, r)
}

type ctxKey struct{}

// handle registers h behind request counting, faults, authentication,
// permission and rate checks.
func (s *Server) handle(pattern string, write bool, h func(w http.ResponseWriter, r *http.Request, a *Account)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.count(pattern)
		s.noteBase(r)
		// Read the body first: only then does net/http watch the connection
		// and cancel r.Context() when the client hangs up during Latency.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, nil, "Could not read request body.")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f := s.matchFault(r)
		if f != nil && f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f != nil && f.ApplyAfter > 0 {
			t := time.NewTimer(f.ApplyAfter)
			<-t.C
			r = r.WithContext(context.WithoutCancel(r.Context()))
		}
		if f != nil && f.Status != 0 {
			if f.RetryAfter > 0 {
				secs := int((f.RetryAfter + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				if f.Status == http.StatusTooManyRequests {
					w.Header().Set("X-RateLimit-Reset", s.now().UTC().Add(time.Duration(secs)*time.Second).Format("2006-01-02T15:04Z"))
					w.Header().Set("RateLimit-Reason", "jira-burst-based")
				}
			}
			writeError(w, f.Status, nil, faultMessage(f.Status))
			return
		}
		a := s.authenticate(r)
		if a == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="protected-by-api-token", OAuth realm="https://api.atlassian.com"`)
			writeError(w, http.StatusUnauthorized, nil, "Client must be authenticated to access this resource.")
			return
		}
		if lim := s.limiters[a.AccountID]; lim != nil {
			res := lim.ReserveN(s.now(), 1)
			if d := res.DelayFrom(s.now()); d > 0 {
				res.CancelAt(s.now())
				secs := int((d + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				w.Header().Set("X-RateLimit-Reset", s.now().UTC().Add(time.Duration(secs)*time.Second).Format("2006-01-02T15:04Z"))
				w.Header().Set("RateLimit-Reason", "jira-burst-based")
				writeError(w, http.StatusTooManyRequests, nil, "Rate limit exceeded.")
				return
			}
		}
		if write && a.ReadOnly {
			writeError(w, http.StatusForbidden, nil, "You do not have permission to perform this operation.")
			return
		}
		if f != nil && f.DropResponse {
			rec := &discardWriter{h: http.Header{}}
			h(rec, r, a)
			s.log.Debug("jiratest: dropping response", "path", r.URL.Path, "status", rec.status)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
			panic(http.ErrAbortHandler) // HTTP/2: reset the stream instead
		}
		h(w, r, a)
	})
}

func faultMessage(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "Rate limit exceeded."
	case http.StatusServiceUnavailable:
		return "Service temporarily unavailable."
	default:
		return http.StatusText(status)
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

func (s *Server) count(key string) {
	s.mu.Lock()
	s.requests[key]++
	s.mu.Unlock()
}

func (s *Server) noteBase(r *http.Request) {
	if s.opts.BaseURL != "" {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s.mu.Lock()
	s.lastBase = scheme + "://" + r.Host
	s.mu.Unlock()
}

func (s *Server) matchFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.Path != "" && !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		out := f.Fault
		if f.Times > 0 {
			f.left--
			if f.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

func (s *Server) authenticate(r *http.Request) *Account {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return nil
	}
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil
		}
		email, token, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil
		}
		for i := range s.opts.Accounts {
			a := &s.opts.Accounts[i]
			if a.Email == "" || a.APIToken == "" {
				continue
			}
			// Email addresses are matched case-insensitively, tokens exactly.
			if strings.EqualFold(a.Email, email) && subtle.ConstantTimeCompare([]byte(a.APIToken), []byte(token)) == 1 {
				return a
			}
		}
	case "bearer":
		tok := strings.TrimSpace(cred)
		for i := range s.opts.Accounts {
			a := &s.opts.Accounts[i]
			for _, t := range a.BearerTokens {
				if t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
					return a
				}
			}
		}
	}
	return nil
}

// AddFault installs f and returns a function that removes it.
func (s *Server) AddFault(f Fault) (remove func()) {
	fs := &faultState{Fault: f, left: f.Times}
	s.mu.Lock()
	s.faults = append(s.faults, fs)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, g := range s.faults {
			if g == fs {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
				return
			}
		}
	}
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Requests reports how many requests matched route, a pattern such as
// "POST /rest/api/3/issue" or "GET /rest/api/3/issue/{key}/transitions"
// ("unmatched" counts requests no route matched). Faulted and
// unauthenticated requests count too.
func (s *Server) Requests(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[route]
}

// RequestCounts returns a copy of all request counters by route.
func (s *Server) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.requests)
}

// IssueCount reports how many issues exist (deleted ones excluded).
func (s *Server) IssueCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.issues)
}

// writeError writes Jira's error body {"errorMessages":[…],"errors":{…}}.
func writeError(w http.ResponseWriter, status int, fields map[string]string, messages ...string) {
	if fields == nil {
		fields = map[string]string{}
	}
	if messages == nil {
		messages = []string{}
	}
	writeJSON(w, status, map[string]any{"errorMessages": messages, "errors": fields})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Wait blocks until every asynchronous webhook delivery started so far has
// finished, or ctx ends.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jiratest: wait for webhooks: %w", ctx.Err())
	}
}
