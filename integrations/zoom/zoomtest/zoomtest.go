// Package zoomtest is an in-process simulator of the parts of the Zoom API
// the gateway uses: Server-to-Server OAuth, the Meetings REST API v2 and
// signed webhook delivery. It is an honest HTTP server, not a mock: it is
// strict about credentials, bearer tokens and request shape, answers with
// Zoom's JSON shapes, status codes, error bodies and rate-limit headers, and
// can inject faults (latency, 5xx, hangs, responses lost after the change
// was applied) so clients can be tested against the failures they will meet.
//
// It follows these Zoom documentation pages:
//
//   - Server-to-Server OAuth: https://developers.zoom.us/docs/internal-apps/s2s-oauth/
//     (POST /oauth/token?grant_type=account_credentials&account_id=…, Basic
//     client_id:client_secret, one-hour bearer tokens, no refresh token);
//   - Meetings API: https://developers.zoom.us/docs/api/meetings/ (create
//     POST /v2/users/{userId}/meetings, get/update/delete /v2/meetings/{id},
//     list GET /v2/users/{userId}/meetings with next_page_token pagination,
//     whose entries carry the agenda cut to 250 characters: "The length of
//     agenda gets truncated to 250 characters when you list all meetings for
//     a user", in the agenda field of List meetings,
//     https://developers.zoom.us/docs/api/meetings/#tag/meetings/GET/users/{userId}/meetings);
//   - Error codes: https://developers.zoom.us/docs/api/errors (body
//     {"code":…,"message":…}, 300 validation, 124 invalid access token,
//     3001 meeting does not exist, 1001 user does not exist);
//   - Rate limits: https://developers.zoom.us/docs/api/rate-limits/ (429 with
//     X-RateLimit-Category, X-RateLimit-Type, X-RateLimit-Limit,
//     X-RateLimit-Remaining and Retry-After);
//   - Webhooks: https://developers.zoom.us/docs/api/webhooks/ (x-zm-signature
//     v0=HMAC-SHA256(secret, "v0:"+timestamp+":"+body), endpoint.url_validation).
//
// Besides the API, the host's own actions in Zoom's app (MoveMeeting,
// DeleteMeeting) change a meeting without a token, as they do at Zoom, and
// MeetingEvent/SendMeetingEvent build and send the webhooks that follow.
// With Options.WebhookURL the simulator also delivers meeting.updated and
// meeting.deleted for the changes made through the API, as Zoom does.
//
// The package does not import testing: the gateway's sandbox mode serves it
// in-process. Wrap the *Server with httptest.NewServer or any listener; the
// same base URL serves both the OAuth and the API endpoints.
package zoomtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // validate IANA time zones wherever the simulator runs
)

// Defaults used when Options leave them zero.
const (
	DefaultTokenTTL  = time.Hour
	DefaultJoinHost  = "https://zoom.us"
	maxRequestBody   = 1 << 20
	maxTopicLength   = 200
	maxAgendaLength  = 2000
	listAgendaLength = 250 // List meetings cuts each agenda to this many characters
	defaultPageSize  = 30
	maxPageSize      = 300
	webhookUserAgent = "Zoom Marketplace/1.0a"
)

// User is a Zoom user of the simulated account.
type User struct {
	ID    string
	Email string
}

// Options configures a Server.
type Options struct {
	// AccountID, ClientID and ClientSecret are the only Server-to-Server
	// OAuth credentials the token endpoint accepts. All three are required.
	AccountID, ClientID, ClientSecret string
	// Users restricts the users meetings can be created for (by ID or
	// email). Empty accepts any user id, creating users on first use.
	Users []User
	// TokenTTL is the lifetime of issued access tokens. Default one hour
	// (expires_in 3599, like Zoom).
	TokenTTL time.Duration
	// RateLimitQPS limits /v2 requests per second for the whole account
	// (Zoom's "Light" category); 0 disables it.
	RateLimitQPS int
	// DailyMeetingLimit limits meeting create/update requests per user and
	// UTC day (Zoom: 100); 0 disables it.
	DailyMeetingLimit int
	// JoinHost is the host of join_url and start_url. Default https://zoom.us.
	JoinHost string
	// Now is the clock (token expiry, rate-limit windows, created_at,
	// webhook timestamps, "upcoming"). Default time.Now.
	Now func() time.Time
	// Rand is the random source for meeting ids, uuids, passwords and
	// tokens. Default: seeded from crypto/rand. Use a fixed seed
	// (rand.NewPCG(1, 2)) for reproducible ids.
	Rand mrand.Source
	// HTTPClient sends webhooks. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// WebhookURL and WebhookSecret, when the URL is set, make the simulator
	// deliver meeting.updated and meeting.deleted for the changes made
	// through the API, as Zoom does for an app subscribed to them (the
	// operator is the meeting's host), asynchronously like Zoom; Wait waits
	// for them. Delivery failures are not retried.
	WebhookURL, WebhookSecret string
}

// Server is the simulator. It is an http.Handler; all methods are safe for
// concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu           sync.Mutex
	rnd          *mrand.Rand
	tokens       map[string]time.Time // access token → expiry
	tokensIssued int
	users        map[string]string // id or email → canonical id
	meetings     map[int64]*meeting
	previous     map[int64]meeting // state before the last update (meeting.updated old_object)
	requests     map[string]int
	qpsWindow    int64
	qpsCount     int
	daily        map[string]int // userID + "/" + day → creates/updates
	faults       []*Fault
	latency      time.Duration
	failRate     float64
	failStatus   int

	closeOnce sync.Once
	closed    chan struct{}
	webhooks  sync.WaitGroup // automatic deliveries in flight
}

// New returns a simulator configured by opts.
func New(opts Options) *Server {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.JoinHost == "" {
		opts.JoinHost = DefaultJoinHost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		opts.Rand = mrand.NewChaCha8(seed)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		opts:     opts,
		rnd:      mrand.New(opts.Rand),
		tokens:   map[string]time.Time{},
		users:    map[string]string{},
		meetings: map[int64]*meeting{},
		previous: map[int64]meeting{},
		requests: map[string]int{},
		daily:    map[string]int{},
		closed:   make(chan struct{}),
	}
	for _, u := range opts.Users {
		s.users[u.ID] = u.ID
		if u.Email != "" {
			s.users[strings.ToLower(u.Email)] = u.ID
		}
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /oauth/token", s.handleToken)
	s.mux.HandleFunc("POST /v2/users/{userId}/meetings", s.api(s.handleCreate))
	s.mux.HandleFunc("GET /v2/users/{userId}/meetings", s.api(s.handleList))
	s.mux.HandleFunc("GET /v2/meetings/{meetingId}", s.api(s.handleGet))
	s.mux.HandleFunc("PATCH /v2/meetings/{meetingId}", s.api(s.handleUpdate))
	s.mux.HandleFunc("DELETE /v2/meetings/{meetingId}", s.api(s.handleDelete))
	s.mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 404, "Not Found")
	})
}

// ServeHTTP serves the OAuth and API endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Close releases requests held by a hang fault. The Server stays usable.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// zoomError is Zoom's error body.
type zoomError struct {
	Code    int          `json:"code"`
	Message string       `json:"message"`
	Errors  []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, zoomError{Code: code, Message: msg})
}

func (s *Server) randString(n int) string {
	b := make([]byte, n)
	s.mu.Lock()
	for i := 0; i < n; i += 8 {
		var u [8]byte
		binary.LittleEndian.PutUint64(u[:], s.rnd.Uint64())
		copy(b[i:], u[:])
	}
	s.mu.Unlock()
	return base64.RawURLEncoding.EncodeToString(b)
}

// ---- OAuth ----

type oauthError struct {
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.opts.ClientID || secret != s.opts.ClientSecret || s.opts.ClientID == "" {
		writeJSON(w, http.StatusUnauthorized, oauthError{Reason: "Invalid client_id or client_secret", Error: "invalid_client"})
		return
	}
	// Zoom reads the parameters from the query string; accept a form body too.
	_ = r.ParseForm()
	switch gt := r.Form.Get("grant_type"); gt {
	case "account_credentials":
	case "":
		writeJSON(w, http.StatusBadRequest, oauthError{Reason: "Missing grant type", Error: "invalid_request"})
		return
	default:
		writeJSON(w, http.StatusBadRequest, oauthError{Reason: "Unsupported grant type", Error: "unsupported_grant_type"})
		return
	}
	if acc := r.Form.Get("account_id"); acc == "" || acc != s.opts.AccountID {
		writeJSON(w, http.StatusBadRequest, oauthError{Reason: "Invalid account_id", Error: "invalid_request"})
		return
	}
	tok := s.randString(48)
	now := s.opts.Now()
	s.mu.Lock()
	s.tokens[tok] = now.Add(s.opts.TokenTTL)
	s.tokensIssued++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   int(s.opts.TokenTTL.Seconds()) - 1,
		"scope":        "meeting:read:meeting:admin meeting:write:meeting:admin meeting:update:meeting:admin meeting:delete:meeting:admin meeting:read:list_meetings:admin",
		"api_url":      "https://api.zoom.us",
	})
}

// RevokeTokens invalidates every access token issued so far, as when the
// app's credentials are rotated; the next API call answers code 124.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// ---- counters ----

func (s *Server) count(r *http.Request) {
	s.mu.Lock()
	s.requests[r.Pattern]++
	s.mu.Unlock()
}

// TokensIssued returns how many access tokens the token endpoint issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// MeetingCount returns how many meetings exist for the user (id or email).
func (s *Server) MeetingCount(userID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.canonicalUser(userID)
	n := 0
	for _, m := range s.meetings {
		if m.HostID == id {
			n++
		}
	}
	return n
}

// Requests returns how many requests matched a route, named by its pattern:
// "POST /oauth/token", "POST /v2/users/{userId}/meetings",
// "GET /v2/users/{userId}/meetings", "GET /v2/meetings/{meetingId}",
// "PATCH /v2/meetings/{meetingId}", "DELETE /v2/meetings/{meetingId}".
// Requests rejected by a fault, auth or rate limit are counted too.
func (s *Server) Requests(pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[pattern]
}

// RequestCounts returns a copy of all request counters by route pattern.
func (s *Server) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		m[k] = v
	}
	return m
}

func (s *Server) canonicalUser(id string) string {
	if c, ok := s.users[id]; ok {
		return c
	}
	if c, ok := s.users[strings.ToLower(id)]; ok {
		return c
	}
	return id
}

// ---- API middleware: auth, rate limits, faults ----

type apiHandler func(w http.ResponseWriter, r *http.Request)

func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		if !s.authorize(w, r) {
			return
		}
		if !s.rateLimit(w, r) {
			return
		}
		s.serveWithFaults(w, r, h)
	}
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		writeError(w, http.StatusUnauthorized, 124, "Invalid access token.")
		return false
	}
	s.mu.Lock()
	exp, found := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !found:
		writeError(w, http.StatusUnauthorized, 124, "Invalid access token.")
		return false
	case !s.opts.Now().Before(exp):
		writeError(w, http.StatusUnauthorized, 124, "Access token is expired.")
		return false
	}
	return true
}

func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) bool {
	limit := s.opts.RateLimitQPS
	if limit <= 0 {
		return true
	}
	now := s.opts.Now()
	sec := now.Unix()
	s.mu.Lock()
	if s.qpsWindow != sec {
		s.qpsWindow, s.qpsCount = sec, 0
	}
	s.qpsCount++
	remaining := limit - s.qpsCount
	s.mu.Unlock()
	w.Header().Set("X-RateLimit-Category", "Light")
	w.Header().Set("X-RateLimit-Type", "QPS")
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
	if remaining < 0 {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, 429, "You have reached the maximum per-second rate limit for this API. Try again later.")
		return false
	}
	return true
}

// dailyLimit applies Zoom's per-user daily create/update limit; it is
// called by the create and update handlers once the user is known.
func (s *Server) dailyLimit(w http.ResponseWriter, userID string) bool {
	limit := s.opts.DailyMeetingLimit
	if limit <= 0 {
		return true
	}
	now := s.opts.Now().UTC()
	key := userID + "/" + now.Format(time.DateOnly)
	s.mu.Lock()
	s.daily[key]++
	n := s.daily[key]
	s.mu.Unlock()
	if n <= limit {
		return true
	}
	reset := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	w.Header().Set("X-RateLimit-Category", "Light")
	w.Header().Set("X-RateLimit-Type", "Daily-limit")
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("Retry-After", reset.Format(time.RFC3339))
	writeError(w, http.StatusTooManyRequests, 429, fmt.Sprintf(
		"You have exceeded the daily rate limit (%d) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00.", limit))
	return false
}

// ---- bodies ----

// decodeBody reads a JSON object; on failure it answers Zoom's 300.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil || len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
		writeError(w, http.StatusBadRequest, 300, "Request Body should be a valid JSON object.")
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok && te.Field != "" {
			writeValidation(w, fieldError{Field: te.Field, Message: "Invalid field."})
			return false
		}
		writeError(w, http.StatusBadRequest, 300, "Request Body should be a valid JSON object.")
		return false
	}
	return true
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

func writeValidation(w http.ResponseWriter, errs ...fieldError) {
	writeJSON(w, http.StatusBadRequest, zoomError{Code: 300, Message: "Validation Failed.", Errors: errs})
}

// sortedMeetings returns the user's meetings ordered by start time, then id.
func (s *Server) sortedMeetings(userID string) []meeting {
	var out []meeting
	for _, m := range s.meetings {
		if m.HostID == userID {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].start.Equal(out[j].start) {
			return out[i].start.Before(out[j].start)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// recorder is used by faults that apply a request but answer differently.
func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
