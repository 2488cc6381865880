package httpapi

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strings"

	sentryecho "github.com/getsentry/sentry-go/echo"
	"github.com/labstack/echo/v4"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/spotlight/gateway/api"
	"github.com/spotlight/gateway/internal/auth"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
)

// ConnectionDeps is what the connection, OAuth callback and provider-credential endpoints need; cmd/gateway fills it in.
type ConnectionDeps struct {
	// Service runs the connection flows; nil answers 501.
	Service *connect.Service
	// ConnectedURL, when set, is the post-connect page of the web app: the
	// Google callback sends browsers there (302) with ?result=connected, or
	// ?result=error&reason=… (see callbackReason), instead of answering
	// with a page of its own. Clients asking for JSON get JSON either way.
	ConnectedURL string
}

// The calendar connections of the caller (Google OAuth, CalDAV) and the
// Google OAuth callback. Every operation acts on the caller's own
// connections: there is no way to name another user's.

// connectionCaller returns the caller, who must be a person (candidate,
// mentor or admin): connections belong to people, not machine clients.
func (s *Server) connectionCaller(ctx context.Context) (auth.Principal, error) {
	if s.deps.Connections.Service == nil {
		return auth.Principal{}, ErrNotImplemented
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{}, auth.ErrNoToken
	}
	if p.IsService() || !(p.Has(auth.RoleCandidate) || p.Has(auth.RoleMentor) || p.Has(auth.RoleAdmin)) {
		return auth.Principal{}, NewError(http.StatusForbidden, "Connections belong to people: the candidate, mentor or admin role is required.")
	}
	return p, nil
}

// calendarError is connectError for a request that names the calendar
// booking events go to in field (body.calendar_id, body.calendar_path): an
// unknown one is a field error there.
func calendarError(err error, field string) error {
	e := connectError(err)
	if pe, ok := e.(*Error); ok && errors.Is(err, connect.ErrUnknownCalendar) && !errors.Is(err, connect.ErrUnknownBusyCalendar) {
		pe.Fields = []FieldError{{Field: field, Message: "is not a calendar of the connected account that accepts events"}}
	}
	return e
}

// connectError maps the connect package's errors to problems. Details are
// fixed texts: nothing from the request (passwords) or the provider is echoed.
func connectError(err error) error {
	var fe *connect.FieldsError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		e := NewError(http.StatusUnprocessableEntity, "The credentials are not a whole set for this provider: unknown fields, empty or malformed values, or required fields missing (the stored set is replaced, so send every field). Nothing was stored.")
		for _, f := range fe.Unknown {
			e.Fields = append(e.Fields, FieldError{Field: "body." + f, Message: "is not a credential field of " + fe.Provider})
		}
		for _, f := range fe.Invalid {
			e.Fields = append(e.Fields, FieldError{Field: "body." + f, Message: "is empty or malformed"})
		}
		for _, f := range fe.Missing {
			e.Fields = append(e.Fields, FieldError{Field: "body." + f, Message: "is required for " + fe.Provider + " (the stored set is replaced)"})
		}
		e.Err = err
		return e
	case errors.Is(err, connect.ErrStateNeedsUser):
		return &Error{Status: 400, Slug: "bad-request", Title: "Bad request", Err: err,
			Detail: "Google connections are completed by the web app with the user's token (POST /v1/connections/google/callback); start connecting again there."}
	case errors.Is(err, connect.ErrInvalidState):
		return &Error{Status: 400, Slug: "bad-request", Title: "Bad request", Err: err,
			Detail: "The OAuth state is invalid, expired or was already used; start connecting again."}
	case errors.Is(err, connect.ErrAccessDenied):
		return &Error{Status: 400, Slug: "bad-request", Title: "Bad request", Err: err, Detail: "Access to Google Calendar was not granted."}
	case errors.Is(err, connect.ErrMissingCode):
		return &Error{Status: 400, Slug: "bad-request", Title: "Bad request", Err: err, Detail: "The callback carries no authorization code."}
	case errors.Is(err, connect.ErrTokenExchange):
		return &Error{Status: 502, Slug: "bad-gateway", Title: "Bad gateway", Err: err,
			Detail: "Google did not exchange the authorization code; start connecting again."}
	case errors.Is(err, connect.ErrNeedsReauth):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "The provider revoked the gateway's access (status needs_reauth); connect again."}
	case errors.Is(err, connect.ErrNotConnected):
		return &Error{Status: 404, Slug: "not-found", Title: "Not found", Err: err, Detail: "You have no such connection."}
	case errors.Is(err, connect.ErrUnknownBusyCalendar):
		field := "body.busy_calendars"
		if ue := (*connect.UnknownBusyCalendarError)(nil); errors.As(err, &ue) {
			field = fmt.Sprintf("%s.%d", field, ue.Index)
		}
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "A calendar in busy_calendars is not one of the connected account's calendars (GET /v1/connections/{provider}/calendars lists them). Nothing was changed.",
			Fields: []FieldError{{Field: field, Message: "names a calendar the connected account does not have"}}}
	case errors.Is(err, connect.ErrTooManyBusyCalendars):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: fmt.Sprintf("At most %d calendars count for busy time. Nothing was changed.", connect.MaxBusyCalendars),
			Fields: []FieldError{{Field: "body.busy_calendars", Message: "lists too many calendars"}}}
	case errors.Is(err, connect.ErrUnknownCalendar):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "That calendar is not one of the connected account's calendars that accept events (GET /v1/connections/{provider}/calendars lists them). Nothing was changed."}
	case errors.Is(err, connect.ErrNoEventCalendar):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "The account has no calendar that accepts events."}
	case errors.Is(err, connect.ErrCalDAVUnauthorized):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "The CalDAV server rejected the username or password. iCloud needs an app-specific password " +
				"(appleid.apple.com → Sign-In and Security → App-Specific Passwords), not your Apple ID password.",
			Fields: []FieldError{{Field: "body.app_password", Message: "was rejected by the server"}}}
	case errors.Is(err, connect.ErrServerNotAllowed):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "The CalDAV server URL resolves to an address the gateway does not connect to (loopback, private, link-local or cloud metadata).",
			Fields: []FieldError{{Field: "body.server_url", Message: "is not allowed"}}}
	case errors.Is(err, connect.ErrInvalidServerURL):
		msg := "must be an absolute https URL without credentials, query or fragment"
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "The CalDAV server URL " + msg + ".", Fields: []FieldError{{Field: "body.server_url", Message: msg}}}
	case errors.Is(err, connect.ErrDiscovery):
		return &Error{Status: 422, Slug: "unprocessable", Title: "Unprocessable content", Err: err,
			Detail: "No CalDAV account was found at that server URL.", Fields: []FieldError{{Field: "body.server_url", Message: "does not answer CalDAV discovery"}}}
	case errors.Is(err, connect.ErrProviderUnavailable):
		return &Error{Status: 502, Slug: "bad-gateway", Title: "Bad gateway", Err: err, Detail: "The provider failed or could not be reached; try again later."}
	case errors.Is(err, connect.ErrNotConfigured):
		return &Error{Status: 503, Slug: "unavailable", Title: "Service unavailable", Err: err,
			Detail: "The provider is not configured on this gateway yet (an admin must set its credentials)."}
	case errors.Is(err, secrets.ErrInvalidPath):
		return &Error{Status: 400, Slug: "bad-request", Title: "Bad request", Err: err, Detail: "Your user id cannot be used to store credentials."}
	}
	return err
}

// apiConnection renders a connection; it has no secret to leave out.
func apiConnection(in connect.Info, cals []connect.CalendarRef) api.Connection {
	c := api.Connection{
		Provider:    api.ConnectionProvider(in.Provider),
		Status:      api.ConnectionStatus(in.Status),
		ConnectedAt: in.ConnectedAt,
	}
	if _, err := mail.ParseAddress(in.AccountEmail); err == nil && strings.Contains(in.AccountEmail, "@") {
		email := openapi_types.Email(in.AccountEmail)
		c.AccountEmail = &email
	}
	if in.Provider == connect.ProviderCalDAV && in.ServerURL != "" {
		u := in.ServerURL
		c.ServerUrl = &u
	}
	if in.CalendarID != "" {
		c.Calendar = &api.CalendarRef{Id: in.CalendarID, Name: in.CalendarName}
	}
	if busy := in.Busy(); len(busy) > 0 && (in.Provider == connect.ProviderGoogle || in.Provider == connect.ProviderCalDAV) {
		list := make([]api.CalendarRef, 0, len(busy))
		for _, r := range busy {
			list = append(list, api.CalendarRef{Id: r.ID, Name: r.Name})
		}
		c.BusyCalendars = &list
	}
	if cals != nil {
		list := make([]api.CalendarRef, 0, len(cals))
		for _, r := range cals {
			list = append(list, api.CalendarRef{Id: r.ID, Name: r.Name})
		}
		c.Calendars = &list
	}
	if in.LastError != "" {
		le := in.LastError
		c.LastError = &le
	}
	return c
}

// ListConnections lists the caller's connections. Never a secret.
func (s *Server) ListConnections(ctx context.Context, request api.ListConnectionsRequestObject) (api.ListConnectionsResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.deps.Connections.Service.List(ctx, p.Subject)
	if err != nil {
		return nil, connectError(err)
	}
	out := api.ListConnections200JSONResponse{Items: []api.Connection{}}
	for _, in := range list {
		out.Items = append(out.Items, apiConnection(in, nil))
	}
	return out, nil
}

// ListConnectionCalendars lists the calendars of the caller's Google or
// CalDAV account, as the provider has them now.
func (s *Server) ListConnectionCalendars(ctx context.Context, request api.ListConnectionCalendarsRequestObject) (api.ListConnectionCalendarsResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	cals, err := s.deps.Connections.Service.AccountCalendars(ctx, p.Subject, string(request.Provider))
	if err != nil {
		return nil, connectError(err)
	}
	out := api.ListConnectionCalendars200JSONResponse{Items: make([]api.ConnectionCalendar, 0, len(cals))}
	for _, c := range cals {
		item := api.ConnectionCalendar{Id: c.ID, Name: c.Name, AcceptsEvents: c.AcceptsEvents, Chosen: c.Chosen, Busy: c.Busy}
		// Only the roles the API names: Google may add others.
		if role := api.ConnectionCalendarAccessRole(c.AccessRole); role.Valid() {
			item.AccessRole = &role
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

// StartGoogleConnection returns the Google authorization URL for the caller.
func (s *Server) StartGoogleConnection(ctx context.Context, request api.StartGoogleConnectionRequestObject) (api.StartGoogleConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	u, exp, err := s.deps.Connections.Service.StartGoogle(ctx, p.Subject)
	if err != nil {
		return nil, connectError(err)
	}
	return api.StartGoogleConnection200JSONResponse{AuthorizationUrl: u, ExpiresAt: exp.UTC()}, nil
}

// calendarChoice is what an update request asks for; a nil list leaves the
// busy calendars unchanged, an empty one resets them.
func calendarChoice(calendar *string, busy *[]string) connect.CalendarChoice {
	ch := connect.CalendarChoice{Calendar: deref(calendar)}
	if busy != nil {
		ch.Busy = append([]string{}, *busy...)
	}
	return ch
}

// UpdateGoogleConnection chooses the calendars of the caller's Google
// connection: the one booking events go to and those whose busy time counts.
func (s *Server) UpdateGoogleConnection(ctx context.Context, request api.UpdateGoogleConnectionRequestObject) (api.UpdateGoogleConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	in, cals, err := s.deps.Connections.Service.UpdateGoogleCalendars(ctx, p.Subject, calendarChoice(request.Body.CalendarId, request.Body.BusyCalendars))
	if err != nil {
		return nil, calendarError(err, "body.calendar_id")
	}
	return api.UpdateGoogleConnection200JSONResponse(apiConnection(in, cals)), nil
}

// DeleteGoogleConnection disconnects the caller's Google Calendar.
func (s *Server) DeleteGoogleConnection(ctx context.Context, request api.DeleteGoogleConnectionRequestObject) (api.DeleteGoogleConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Connections.Service.DisconnectGoogle(ctx, p.Subject); err != nil {
		return nil, connectError(err)
	}
	return api.DeleteGoogleConnection204Response{}, nil
}

// CreateCalDAVConnection connects a CalDAV account after discovery proved the credentials.
func (s *Server) CreateCalDAVConnection(ctx context.Context, request api.CreateCalDAVConnectionRequestObject) (api.CreateCalDAVConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	b := request.Body
	in := connect.CalDAVInput{Username: b.Username, Password: b.AppPassword}
	if b.ServerUrl != nil {
		in.ServerURL = *b.ServerUrl
	}
	if in.Password == "" {
		return nil, &Error{Status: 400, Slug: "validation-error", Title: "Invalid request", Detail: "The request is invalid: body.app_password is required.",
			Fields: []FieldError{{Field: "body.app_password", Message: "is required"}}}
	}
	if b.CalendarPath != nil {
		in.CalendarPath = *b.CalendarPath
	}
	in.BusyCalendars = calendarChoice(nil, b.BusyCalendars).Busy
	conn, cals, err := s.deps.Connections.Service.ConnectCalDAV(ctx, p.Subject, in)
	if err != nil {
		return nil, calendarError(err, "body.calendar_path")
	}
	return api.CreateCalDAVConnection201JSONResponse(apiConnection(conn, cals)), nil
}

// UpdateCalDAVConnection chooses the calendars of the caller's CalDAV
// connection: the one booking events go to and those whose busy time counts.
func (s *Server) UpdateCalDAVConnection(ctx context.Context, request api.UpdateCalDAVConnectionRequestObject) (api.UpdateCalDAVConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	in, cals, err := s.deps.Connections.Service.UpdateCalDAVCalendars(ctx, p.Subject, calendarChoice(request.Body.CalendarPath, request.Body.BusyCalendars))
	if err != nil {
		return nil, calendarError(err, "body.calendar_path")
	}
	return api.UpdateCalDAVConnection200JSONResponse(apiConnection(in, cals)), nil
}

// DeleteCalDAVConnection deletes the caller's CalDAV connection and credentials.
func (s *Server) DeleteCalDAVConnection(ctx context.Context, request api.DeleteCalDAVConnectionRequestObject) (api.DeleteCalDAVConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Connections.Service.DisconnectCalDAV(ctx, p.Subject); err != nil {
		return nil, connectError(err)
	}
	return api.DeleteCalDAVConnection204Response{}, nil
}

// CompleteGoogleConnection completes the caller's Google connection with
// what Google gave the web app's redirect page: only the user who started
// the connection can complete it.
func (s *Server) CompleteGoogleConnection(ctx context.Context, request api.CompleteGoogleConnectionRequestObject) (api.CompleteGoogleConnectionResponseObject, error) {
	p, err := s.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	b := request.Body
	in, cals, err := s.deps.Connections.Service.CompleteGoogleAs(ctx, p.Subject, b.State, deref(b.Code), deref(b.Error))
	if err != nil {
		return nil, connectError(err)
	}
	return api.CompleteGoogleConnection200JSONResponse(apiConnection(in, cals)), nil
}

// GoogleOAuthCallback completes the Google connection (JSON answer). The
// route is normally served by GoogleCallbackRoute instead, which also
// answers HTML to browsers and keeps the query out of error reports.
func (s *Server) GoogleOAuthCallback(ctx context.Context, request api.GoogleOAuthCallbackRequestObject) (api.GoogleOAuthCallbackResponseObject, error) {
	if s.deps.Connections.Service == nil {
		return nil, ErrNotImplemented
	}
	pr := request.Params
	in, cals, err := s.deps.Connections.Service.CompleteGoogle(ctx, deref(pr.State), deref(pr.Code), deref(pr.Error))
	if err != nil {
		return nil, connectError(err)
	}
	return api.GoogleOAuthCallback200JSONResponse(apiConnection(in, cals)), nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Google Calendar connected</title></head>
<body><h1>Google Calendar connected</h1>
<p>{{if .Email}}Connected as {{.Email}}.{{end}} Booking events go to the calendar “{{.Calendar}}”.</p>
<p>You can close this window.</p></body></html>
`))

// GoogleCallbackRoute returns a Deps.Mount function serving GET
// /v1/oauth/google/callback in place of the generated route. It answers
// JSON when asked with Accept: application/json and an HTML page otherwise,
// and removes the query (code and state) from the request before anything
// can log or report it.
func GoogleCallbackRoute(cd ConnectionDeps, logger *slog.Logger) func(e *echo.Echo) {
	return func(e *echo.Echo) {
		e.GET("/v1/oauth/google/callback", func(c echo.Context) error {
			if cd.Service == nil {
				return ErrNotImplemented
			}
			r := c.Request()
			q := r.URL.Query()
			clean := r.Clone(r.Context())
			clean.URL.RawQuery = ""
			clean.RequestURI = clean.URL.Path
			c.SetRequest(clean)
			in, cals, err := cd.Service.CompleteGoogle(clean.Context(), q.Get("state"), q.Get("code"), q.Get("error"))
			wantsJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
			if err != nil {
				redirect := cd.ConnectedURL != "" && !wantsJSON
				// A redirect hides what would have been a 5xx (the
				// gateway's or Google's failure) from the error handler:
				// logged as an error and reported as it would report it.
				serverSide := redirect && toError(connectError(err), nil).Status >= 500
				if logger != nil {
					level := slog.LevelInfo
					if serverSide {
						level = slog.LevelError
					}
					logger.Log(clean.Context(), level, "google callback refused", "request_id", requestID(c), "error", err.Error())
				}
				if serverSide {
					if hub := sentryecho.GetHubFromContext(c); hub != nil {
						capture(c, hub, err)
					}
				}
				if redirect {
					return redirectAfterConnect(c, cd.ConnectedURL, "error", callbackReason(err))
				}
				return connectError(err)
			}
			conn := apiConnection(in, cals)
			if wantsJSON {
				return c.JSON(http.StatusOK, conn)
			}
			if cd.ConnectedURL != "" {
				return redirectAfterConnect(c, cd.ConnectedURL, "connected", "")
			}
			c.Response().Header().Set("Cache-Control", "no-store")
			c.Response().Header().Set(echo.HeaderContentType, "text/html; charset=utf-8")
			c.Response().WriteHeader(http.StatusOK)
			return callbackPage.Execute(c.Response(), map[string]string{"Email": in.AccountEmail, "Calendar": in.CalendarName})
		})
	}
}

// callbackReason names why a Google callback failed, for the post-connect
// page: access_denied (the user declined), invalid_state (forged, replayed
// or expired: start again), missing_code, token_exchange (Google failed the
// exchange) or error.
func callbackReason(err error) string {
	switch {
	case errors.Is(err, connect.ErrAccessDenied):
		return "access_denied"
	case errors.Is(err, connect.ErrInvalidState):
		return "invalid_state"
	case errors.Is(err, connect.ErrMissingCode):
		return "missing_code"
	case errors.Is(err, connect.ErrTokenExchange):
		return "token_exchange"
	default:
		return "error"
	}
}

// redirectAfterConnect answers 302 to page (its own query kept) with
// result and, when not empty, reason added.
func redirectAfterConnect(c echo.Context, page, result, reason string) error {
	u, err := url.Parse(page)
	if err != nil {
		return fmt.Errorf("httpapi: post-connect page %q: %w", page, err)
	}
	q := u.Query()
	q.Set("result", result)
	if reason != "" {
		q.Set("reason", reason)
	}
	u.RawQuery = q.Encode()
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, u.String())
}
