// Package gcaltest is an in-process simulator of the Google Calendar API v3
// and of the Google OAuth 2.0 endpoints the gateway uses. It is a real HTTP
// server (an http.Handler), strict like Google about authentication, request
// shape, status codes and error bodies, so the gcal client can be tested over
// HTTP and the gateway's sandbox mode can serve it.
//
// It follows these public documents:
//   - Calendar API reference: https://developers.google.com/calendar/api/v3/reference
//     (events insert/get/patch/update/delete/list/watch, freebusy.query,
//     calendarList.list, channels.stop)
//   - Incremental sync: https://developers.google.com/calendar/api/guides/sync
//     and https://developers.google.com/calendar/api/v3/reference/events/list
//     (nextSyncToken only on the last page, deleted events as status
//     "cancelled" on incremental sync, 410 fullSyncRequired; a syncToken
//     refuses iCalUID, orderBy, privateExtendedProperty, q,
//     sharedExtendedProperty, timeMin, timeMax, updatedMin and
//     showDeleted=false; timeMax must be after timeMin)
//   - Errors: https://developers.google.com/calendar/api/guides/errors
//     (the {"error":{"errors":[...],"code":…,"message":…}} body; 401 authError,
//     403 rateLimitExceeded / userRateLimitExceeded / quotaExceeded, 409
//     duplicate, 410 deleted, 412 conditionNotMet)
//   - Push notifications: https://developers.google.com/calendar/api/guides/push
//     (X-Goog-Channel-ID, X-Goog-Channel-Token, X-Goog-Channel-Expiration,
//     X-Goog-Resource-ID, X-Goog-Resource-URI, X-Goog-Resource-State,
//     X-Goog-Message-Number)
//   - OAuth 2.0 for web server apps: https://developers.google.com/identity/protocols/oauth2/web-server
//     (authorization endpoint, token endpoint with PKCE, refresh, invalid_grant,
//     revoke endpoint; access_type=offline yields a refresh token on the first
//     exchange only, later consents of the user to the client get one again
//     only with prompt=consent)
//
// Paths served, relative to the server root (the real hosts in brackets):
//
//	/calendar/v3/...        Calendar API   [www.googleapis.com]; use option.WithEndpoint(url+"/calendar/v3/")
//	/o/oauth2/auth          authorization  [accounts.google.com] (also /o/oauth2/v2/auth)
//	/token                  token          [oauth2.googleapis.com]
//	/revoke                 revocation     [oauth2.googleapis.com]
//	/v1/userinfo            userinfo       [openidconnect.googleapis.com] (also /oauth2/v3/userinfo)
//
// Known simplifications: one organizer per calendar (its owner); recurring
// events are expanded (RRULE, EXDATE) only by freebusy.query, events.list
// never expands them (singleEvents is accepted and ignored); the freebusy range
// limit (Options.MaxFreeBusyRange, 90 days by default) and its error reason
// "timeRangeTooLong" are taken from observed behaviour, not from the reference;
// on a calendar shared with an account as freeBusyReader (AddCalendar) the
// event reads answer 403 requiredAccessLevel, where Google returns events
// reduced to their free/busy information.
package gcaltest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Defaults used when Options leave a field empty.
const (
	DefaultClientID     = "gcaltest-client.apps.googleusercontent.com"
	DefaultClientSecret = "gcaltest-client-secret"
	DefaultUser         = "mentor@example.com"
)

// Scopes understood by the simulator.
const (
	ScopeCalendar         = "https://www.googleapis.com/auth/calendar"
	ScopeCalendarReadonly = "https://www.googleapis.com/auth/calendar.readonly"
	ScopeEvents           = "https://www.googleapis.com/auth/calendar.events"
	ScopeEventsReadonly   = "https://www.googleapis.com/auth/calendar.events.readonly"
	ScopeFreeBusy         = "https://www.googleapis.com/auth/calendar.freebusy"
	ScopeEventsFreeBusy   = "https://www.googleapis.com/auth/calendar.events.freebusy"
	ScopeCalendarList     = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"
	ScopeUserinfoEmail    = "https://www.googleapis.com/auth/userinfo.email"
)

// Client is an OAuth client registered with the simulator.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are the registered redirect URIs; empty accepts any.
	RedirectURIs []string
}

// Calendar is a calendar of a user.
type Calendar struct {
	// ID of the calendar; the primary calendar's id is the user's email.
	ID       string
	Summary  string
	TimeZone string
}

// User is a Google account known to the simulator.
type User struct {
	Email string
	// Calendars besides the primary one (which always exists, id = Email).
	Calendars []Calendar
	// TimeZone of the primary calendar; default "UTC".
	TimeZone string
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Clients are the registered OAuth clients; default one client with
	// DefaultClientID and DefaultClientSecret.
	Clients []Client
	// Users are the accounts; default one user DefaultUser. The authorization
	// endpoint consents as the user named by login_hint, else the first one.
	Users []User
	// AutoCreateUsers makes the authorization endpoint create an account
	// (with only a primary calendar) for an unknown login_hint email, as the
	// sandbox needs for many mentors.
	AutoCreateUsers bool
	// AccessTokenTTL is the lifetime of access tokens; default 1h.
	AccessTokenTTL time.Duration
	// RotateRefreshTokens makes every refresh return a new refresh token and
	// invalidate the old one. Google's default (false) returns no refresh
	// token on refresh.
	RotateRefreshTokens bool
	// MaxFreeBusyRange is the longest timeMax-timeMin freebusy.query accepts;
	// default 90 days.
	MaxFreeBusyRange time.Duration
	// DefaultChannelTTL is the channel lifetime when events.watch asks for
	// none; default 7 days. MaxChannelTTL caps a requested lifetime; default 30 days.
	DefaultChannelTTL, MaxChannelTTL time.Duration
	// AllowHTTPPush accepts http:// channel addresses (Google requires https).
	AllowHTTPPush bool
	// AutoPush sends push notifications by itself: "sync" when events.watch
	// creates a channel, and "exists" after every change, in background
	// goroutines. Like Google, which sends the sync message as soon as the
	// channel exists, the simulator delivers it (and waits for the
	// receiver's answer) before it answers the events.watch request: a
	// receiver that stores the channel only once the watch call returned
	// does not know it yet. Deliveries reports how each was answered.
	AutoPush bool
	// PushClient sends push notifications; default a client with a 10s timeout.
	PushClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Stats are counters of requests the server has seen.
type Stats struct {
	// TokenRequests counts every request to the token endpoint.
	TokenRequests int
	// CodeExchanges counts successful authorization_code grants.
	CodeExchanges int
	// Refreshes counts successful refresh_token grants.
	Refreshes int
	// Revocations counts successful revocations.
	Revocations int
	// Calls counts Calendar API requests by operation ("events.insert", ...),
	// including rejected ones.
	Calls map[string]int
	// SendUpdates counts event write requests (insert, patch, update,
	// delete) by their valid sendUpdates parameter ("" when absent).
	SendUpdates map[string]int
}

// Server is the simulator. Create it with New; it is safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux
	now  func() time.Time

	mu          sync.Mutex
	clients     map[string]Client
	users       map[string]*user
	userOrder   []string
	calendars   map[string]*calendarState
	codes       map[string]*authCode
	access      map[string]*accessToken
	refresh     map[string]*grant
	channels    map[string]*channel
	faults      []*Fault
	deliveries  []Delivery
	denyConsent bool
	stats       Stats
	serial      int64
}

type user struct {
	email     string
	calendars []string          // primary first
	roles     map[string]string // access role on the calendars of others shared with the user
}

// Access roles of a calendar list entry (the calendarList resource's
// accessRole, https://developers.google.com/calendar/api/v3/reference/calendarList):
// freeBusyReader reads free/busy information only, reader reads events,
// writer also writes them, owner also manages sharing.
const (
	RoleFreeBusyReader = "freeBusyReader"
	RoleReader         = "reader"
	RoleWriter         = "writer"
	RoleOwner          = "owner"
)

// New returns a simulator configured by opts.
func New(opts Options) *Server {
	if len(opts.Clients) == 0 {
		opts.Clients = []Client{{ID: DefaultClientID, Secret: DefaultClientSecret}}
	}
	if len(opts.Users) == 0 {
		opts.Users = []User{{Email: DefaultUser}}
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.MaxFreeBusyRange <= 0 {
		opts.MaxFreeBusyRange = 90 * 24 * time.Hour
	}
	if opts.DefaultChannelTTL <= 0 {
		opts.DefaultChannelTTL = 7 * 24 * time.Hour
	}
	if opts.MaxChannelTTL <= 0 {
		opts.MaxChannelTTL = 30 * 24 * time.Hour
	}
	if opts.PushClient == nil {
		opts.PushClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		now:       opts.Now,
		clients:   map[string]Client{},
		users:     map[string]*user{},
		calendars: map[string]*calendarState{},
		codes:     map[string]*authCode{},
		access:    map[string]*accessToken{},
		refresh:   map[string]*grant{},
		channels:  map[string]*channel{},
		stats:     Stats{Calls: map[string]int{}, SendUpdates: map[string]int{}},
		serial:    1_700_000_000_000_000,
	}
	for _, c := range opts.Clients {
		s.clients[c.ID] = c
	}
	for _, u := range opts.Users {
		s.addUser(u)
	}
	s.routes()
	return s
}

// addUser registers an account and its calendars. Call with s.mu held or
// before the server is shared.
func (s *Server) addUser(u User) {
	email := strings.ToLower(u.Email)
	tz := u.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	us := &user{email: email, roles: map[string]string{}}
	s.calendars[email] = newCalendarState(Calendar{ID: email, Summary: email, TimeZone: tz}, email, true)
	us.calendars = append(us.calendars, email)
	for _, c := range u.Calendars {
		if c.TimeZone == "" {
			c.TimeZone = tz
		}
		s.calendars[c.ID] = newCalendarState(c, email, false)
		us.calendars = append(us.calendars, c.ID)
	}
	s.users[email] = us
	s.userOrder = append(s.userOrder, email)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Endpoint returns the OAuth endpoint of a simulator served at baseURL
// (for example an httptest.Server's URL).
func Endpoint(baseURL string) oauth2.Endpoint {
	baseURL = strings.TrimRight(baseURL, "/")
	return oauth2.Endpoint{
		AuthURL:   baseURL + "/o/oauth2/auth",
		TokenURL:  baseURL + "/token",
		AuthStyle: oauth2.AuthStyleInParams,
	}
}

// APIBase returns the Calendar API base URL of a simulator served at
// baseURL, suitable for option.WithEndpoint.
func APIBase(baseURL string) string { return strings.TrimRight(baseURL, "/") + "/calendar/v3/" }

// RevokeURL returns the revocation endpoint of a simulator served at baseURL.
func RevokeURL(baseURL string) string { return strings.TrimRight(baseURL, "/") + "/revoke" }

// UserinfoURL returns the userinfo endpoint of a simulator served at baseURL.
func UserinfoURL(baseURL string) string { return strings.TrimRight(baseURL, "/") + "/v1/userinfo" }

func (s *Server) routes() {
	m := http.NewServeMux()
	const api = "/calendar/v3/"
	m.HandleFunc("GET "+api+"users/me/calendarList", s.api("calendarList.list", readCalendarList, s.calendarListList))
	m.HandleFunc("POST "+api+"freeBusy", s.api("freebusy.query", readFreeBusy, s.freeBusyQuery))
	m.HandleFunc("POST "+api+"calendars/{calendarId}/events", s.api("events.insert", writeEvents, s.eventsInsert))
	m.HandleFunc("GET "+api+"calendars/{calendarId}/events", s.api("events.list", readEvents, s.eventsList))
	m.HandleFunc("POST "+api+"calendars/{calendarId}/events/watch", s.api("events.watch", readEvents, s.eventsWatch))
	m.HandleFunc("GET "+api+"calendars/{calendarId}/events/{eventId}", s.api("events.get", readEvents, s.eventsGet))
	m.HandleFunc("PATCH "+api+"calendars/{calendarId}/events/{eventId}", s.api("events.patch", writeEvents, s.eventsPatch))
	m.HandleFunc("PUT "+api+"calendars/{calendarId}/events/{eventId}", s.api("events.update", writeEvents, s.eventsUpdate))
	m.HandleFunc("DELETE "+api+"calendars/{calendarId}/events/{eventId}", s.api("events.delete", writeEvents, s.eventsDelete))
	m.HandleFunc("POST "+api+"channels/stop", s.api("channels.stop", anyCalendar, s.channelsStop))
	m.HandleFunc(api, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found", errItem{Domain: "global", Reason: "notFound", Message: "Not Found"})
	})
	m.HandleFunc("GET /o/oauth2/auth", s.authorize)
	m.HandleFunc("GET /o/oauth2/v2/auth", s.authorize)
	m.HandleFunc("POST /token", s.token)
	m.HandleFunc("POST /revoke", s.revoke)
	m.HandleFunc("GET /v1/userinfo", s.userinfo)
	m.HandleFunc("GET /oauth2/v3/userinfo", s.userinfo)
	s.mux = m
}

// Scope sets an operation accepts (any one scope of the set suffices).
var (
	readCalendarList = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeCalendarList, "https://www.googleapis.com/auth/calendar.calendarlist"}
	readFreeBusy     = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeEvents, ScopeEventsReadonly, ScopeFreeBusy, ScopeEventsFreeBusy}
	readEvents       = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeEvents, ScopeEventsReadonly}
	writeEvents      = []string{ScopeCalendar, ScopeEvents}
	anyCalendar      = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeEvents, ScopeEventsReadonly, ScopeFreeBusy, ScopeEventsFreeBusy, ScopeCalendarList}
)

// call is one authenticated Calendar API request.
type call struct {
	op   string
	user *user
	r    *http.Request
	body []byte // the request body, at most maxBody bytes
}

// api wraps a Calendar API handler with fault injection, bearer checks and
// scope checks. The handler runs with s.mu held.
func (s *Server) api(op string, scopes []string, h func(c *call) response) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Calls[op]++
		f := s.takeFault(op)
		s.mu.Unlock()
		if f != nil && f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if f != nil && f.Status != 0 {
			writeFault(w, f)
			return
		}
		if alt := r.URL.Query().Get("alt"); alt != "" && alt != "json" {
			writeError(w, http.StatusBadRequest, "Invalid value for alt", errItem{Domain: "global", Reason: "invalidParameter", Message: "Invalid value for alt", LocationType: "parameter", Location: "alt"})
			return
		}
		// Read the body before taking the lock: a slow client must not stall others.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			writeError(w, http.StatusBadRequest, "Parse Error", errItem{Domain: "global", Reason: "parseError"})
			return
		}
		s.mu.Lock()
		u, tok, resp := s.authenticate(r)
		if resp == nil && !hasAnyScope(tok.scopes, scopes) {
			resp = &response{status: http.StatusForbidden, err: &apiError{
				Code: http.StatusForbidden, Message: "Request had insufficient authentication scopes.", Status: "PERMISSION_DENIED",
				Errors: []errItem{{Message: "Insufficient Permission", Domain: "global", Reason: "insufficientPermissions"}},
			}}
		}
		if resp == nil {
			res := h(&call{op: op, user: u, r: r, body: body})
			resp = &res
		}
		s.mu.Unlock()
		if resp.after != nil {
			resp.after()
		}
		if f != nil && f.LoseResponse {
			loseResponse(w)
			return
		}
		resp.write(w)
	}
}

// response is what an API handler produces.
type response struct {
	status int
	body   any
	err    *apiError
	header http.Header
	// after runs once the handler returned and s.mu is released, before
	// the response is written.
	after func()
}

func ok(body any) response { return response{status: http.StatusOK, body: body} }

func (r *response) write(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.err != nil {
		writeAPIError(w, r.err)
		return
	}
	if r.status == http.StatusNoContent || r.body == nil {
		w.WriteHeader(r.status)
		return
	}
	writeJSON(w, r.status, r.body)
}

type errItem struct {
	Message      string `json:"message,omitempty"`
	Domain       string `json:"domain,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Location     string `json:"location,omitempty"`
	LocationType string `json:"locationType,omitempty"`
}

type apiError struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	Errors  []errItem `json:"errors"`
	Status  string    `json:"status,omitempty"`
}

func errResp(status int, message string, item errItem) response {
	if item.Message == "" {
		item.Message = message
	}
	return response{status: status, err: &apiError{Code: status, Message: message, Errors: []errItem{item}, Status: statusName(status)}}
}

func badRequest(reason, message, location string) response {
	it := errItem{Domain: "global", Reason: reason, Message: message}
	if location != "" {
		it.Location, it.LocationType = location, "parameter"
	}
	return errResp(http.StatusBadRequest, message, it)
}

func notFound() response {
	return errResp(http.StatusNotFound, "Not Found", errItem{Domain: "global", Reason: "notFound"})
}

func statusName(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ALREADY_EXISTS"
	case 410:
		return "" // Calendar's 410 bodies carry no status
	case 412:
		return "FAILED_PRECONDITION"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 500:
		return "INTERNAL"
	case 503:
		return "UNAVAILABLE"
	}
	return ""
}

func writeError(w http.ResponseWriter, status int, message string, item errItem) {
	r := errResp(status, message, item)
	r.write(w)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.Code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
	}
	writeJSON(w, e.Code, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// randomID returns n random base32hex characters (a-v, 0-9).
func randomID(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%32]
	}
	return string(b)
}

// randomToken returns an opaque random token with a prefix.
func randomToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%x", prefix, b)
}

// nextSerial returns a new, increasing number (for etags and sync tokens).
// Call with s.mu held.
func (s *Server) nextSerial() int64 {
	s.serial++
	return s.serial
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Calls = maps.Clone(s.stats.Calls)
	st.SendUpdates = maps.Clone(s.stats.SendUpdates)
	return st
}
