package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

type busyConnection struct {
	Provider string `json:"provider"`
	Calendar *struct {
		ID string `json:"id"`
	} `json:"calendar"`
	BusyCalendars []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"busy_calendars"`
}

func (c busyConnection) busy() []string {
	out := []string{}
	for _, r := range c.BusyCalendars {
		out = append(out, r.ID+" "+r.Name)
	}
	return out
}

// connectGoogleAs runs the Google connection flow for the token's user.
func connectGoogleAs(t *testing.T, ce *connEnv, token string) busyConnection {
	t.Helper()
	resp, body := ce.do(t, "POST", "/v1/connections/google", token, "")
	start := decode[struct {
		AuthorizationURL string    `json:"authorization_url"`
		ExpiresAt        time.Time `json:"expires_at"`
	}](t, resp, body, 200)
	cb, _ := browse(t, start.AuthorizationURL)
	resp, body = ce.do(t, "GET", cb, "", "", "Accept", "application/json")
	return decode[busyConnection](t, resp, body, 200)
}

// busyOfList returns the busy calendars of the token user's connection to provider.
func busyOfList(t *testing.T, ce *connEnv, token, provider string) []string {
	t.Helper()
	resp, body := ce.do(t, "GET", "/v1/connections", token, "")
	for _, c := range decode[struct{ Items []busyConnection }](t, resp, body, 200).Items {
		if c.Provider == provider {
			return c.busy()
		}
	}
	t.Fatalf("no %s connection: %s", provider, body)
	return nil
}

func TestBusyCalendarsEndpoints(t *testing.T) {
	t.Parallel()
	const (
		primary = "mentor@example.com"
		work    = "work@group.calendar.google.com"
		partner = "partner@example.org"
	)
	ce := newConnEnv(t, nil, nil)
	if err := ce.google.AddCalendar(primary, gcaltest.Calendar{ID: partner, Summary: "Partner"}, gcaltest.RoleReader); err != nil {
		t.Fatal(err)
	}
	alice := ce.token(t, "alice", "mentor")
	bob := ce.token(t, "bob", "mentor")

	conn := connectGoogleAs(t, ce, alice)
	if d := cmp.Diff(conn.busy(), []string{primary + " " + primary}); d != "" {
		t.Fatalf("new connection's busy calendars (-got +want):\n%s", d)
	}

	// busy_calendars alone: the chosen calendar stays and comes first; a
	// read-only calendar is fine.
	resp, body := ce.do(t, "PUT", "/v1/connections/google", alice, `{"busy_calendars":["`+work+`","`+partner+`"]}`)
	conn = decode[busyConnection](t, resp, body, 200)
	want := []string{primary + " " + primary, work + " Work", partner + " Partner"}
	if d := cmp.Diff(conn.busy(), want); d != "" || conn.Calendar == nil || conn.Calendar.ID != primary {
		t.Fatalf("PUT busy_calendars = %s (-got +want):\n%s", body, d)
	}
	if d := cmp.Diff(busyOfList(t, ce, alice, "google"), want); d != "" {
		t.Errorf("listed busy calendars (-got +want):\n%s", d)
	}

	// Refused requests change nothing.
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf(`"c%d@group.calendar.google.com"`, i)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
		message    string // of the first field error, when set
	}{
		{"unknown calendar", `{"busy_calendars":["nope@example.com"]}`, 422, "body.busy_calendars.0", ""},
		{"unknown calendar with a valid calendar_id", `{"calendar_id":"` + work + `","busy_calendars":["` + work + `","nope@example.com"]}`, 422, "body.busy_calendars.1", ""},
		{"unknown calendar_id", `{"calendar_id":"nope@example.com","busy_calendars":["` + work + `"]}`, 422, "body.calendar_id", ""},
		{"read-only calendar for events", `{"calendar_id":"` + partner + `"}`, 422, "body.calendar_id", "is not a calendar of the connected account that accepts events"},
		{"no field", `{}`, 400, "body", "must have at least 1 of the fields busy_calendars, calendar_id"},
		{"duplicates", `{"busy_calendars":["` + work + `","` + work + `"]}`, 400, "", ""},
		{"too many", `{"busy_calendars":[` + strings.Join(tooMany, ",") + `]}`, 400, "", ""},
		{"empty id", `{"busy_calendars":[""]}`, 400, "", ""},
		{"not a list", `{"busy_calendars":"` + work + `"}`, 400, "", ""},
	} {
		resp, body := ce.do(t, "PUT", "/v1/connections/google", alice, tc.body)
		p := decodeProblem(t, resp, body, tc.status)
		if tc.status == 422 && !strings.HasSuffix(p.Type, "/unprocessable") {
			t.Errorf("%s: problem type %q", tc.name, p.Type)
		}
		if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
			t.Errorf("%s: errors %+v, want one on %s", tc.name, p.Errors, tc.field)
		}
		if tc.message != "" && (len(p.Errors) == 0 || p.Errors[0].Message != tc.message) {
			t.Errorf("%s: errors %+v, want the message %q", tc.name, p.Errors, tc.message)
		}
		if d := cmp.Diff(busyOfList(t, ce, alice, "google"), want); d != "" {
			t.Fatalf("%s changed the busy calendars (-got +want):\n%s", tc.name, d)
		}
	}

	// Choosing an extra for events: listed once, first.
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"`+work+`"}`)
	if d := cmp.Diff(decode[busyConnection](t, resp, body, 200).busy(), []string{work + " Work", partner + " Partner"}); d != "" {
		t.Errorf("after choosing %s (-got +want):\n%s", work, d)
	}

	// Another user changes only their own connection: bob has none yet,
	// then his own.
	resp, body = ce.do(t, "PUT", "/v1/connections/google", bob, `{"busy_calendars":[]}`)
	decodeProblem(t, resp, body, 404)
	connectGoogleAs(t, ce, bob)
	resp, body = ce.do(t, "PUT", "/v1/connections/google", bob, `{"busy_calendars":["`+partner+`"]}`)
	decode[busyConnection](t, resp, body, 200)
	if d := cmp.Diff(busyOfList(t, ce, alice, "google"), []string{work + " Work", partner + " Partner"}); d != "" {
		t.Errorf("bob's update changed alice's connection (-got +want):\n%s", d)
	}
	if d := cmp.Diff(busyOfList(t, ce, bob, "google"), []string{primary + " " + primary, partner + " Partner"}); d != "" {
		t.Errorf("bob's busy calendars (-got +want):\n%s", d)
	}

	// An empty list: the chosen calendar only.
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"busy_calendars":[]}`)
	if d := cmp.Diff(decode[busyConnection](t, resp, body, 200).busy(), []string{work + " Work"}); d != "" {
		t.Errorf("reset (-got +want):\n%s", d)
	}

	// CalDAV: on connect (nothing saved when unknown) and on update.
	workPath := ce.caldav.CreateCalendar("mentor", "work", "Work")
	homePath := "/mentor/calendars/default/"
	connectBody := func(busy string) string {
		return `{"server_url":"` + ce.caldavURL + `","username":"mentor","app_password":"` + appPassword + `","calendar_path":"` + homePath + `","busy_calendars":` + busy + `}`
	}
	resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice, connectBody(`["/mentor/calendars/nope/"]`))
	if p := decodeProblem(t, resp, body, 422); len(p.Errors) == 0 || p.Errors[0].Field != "body.busy_calendars.0" || strings.Contains(string(body), appPassword) {
		t.Fatalf("unknown busy calendar on connect: %s", body)
	}
	resp, body = ce.do(t, "GET", "/v1/connections", alice, "")
	if strings.Contains(string(body), `"caldav"`) {
		t.Fatalf("a refused CalDAV connection was saved: %s", body)
	}
	resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice, connectBody(`["`+workPath+`"]`))
	if d := cmp.Diff(decode[busyConnection](t, resp, body, 201).busy(), []string{homePath + " Default", workPath + " Work"}); d != "" {
		t.Errorf("CalDAV connect (-got +want):\n%s", d)
	}
	resp, body = ce.do(t, "PUT", "/v1/connections/caldav", alice, `{"busy_calendars":["/mentor/calendars/elsewhere/"]}`)
	decodeProblem(t, resp, body, 422)
	resp, body = ce.do(t, "PUT", "/v1/connections/caldav", alice, `{"busy_calendars":[]}`)
	if d := cmp.Diff(decode[busyConnection](t, resp, body, 200).busy(), []string{homePath + " Default"}); d != "" {
		t.Errorf("CalDAV reset (-got +want):\n%s", d)
	}
	resp, body = ce.do(t, "PUT", "/v1/connections/caldav", alice, `{"busy_calendars":["`+ce.caldavURL+workPath+`"]}`)
	if d := cmp.Diff(decode[busyConnection](t, resp, body, 200).busy(), []string{homePath + " Default", workPath + " Work"}); d != "" {
		t.Errorf("CalDAV busy calendar by URL (-got +want):\n%s", d)
	}
}

// TestConnectionCalendars: GET /v1/connections/{provider}/calendars lists
// the calendars of the caller's account as the provider has them now, the
// chosen one first, with which accept events (what calendar_id may name)
// and which count as busy time; read-only Google calendars are listed too,
// so a settings page can offer them for busy_calendars. Without a
// connection it is a 404, for another provider a 400.
func TestConnectionCalendars(t *testing.T) {
	t.Parallel()
	const (
		primary = "mentor@example.com"
		work    = "work@group.calendar.google.com"
		partner = "partner@example.org"
		team    = "team@group.calendar.google.com"
	)
	type calendar struct {
		ID            string `json:"id"`
		Name          string `json:"name"`
		AcceptsEvents bool   `json:"accepts_events"`
		Chosen        bool   `json:"chosen"`
		Busy          bool   `json:"busy"`
		AccessRole    string `json:"access_role"`
	}
	list := func(t *testing.T, ce *connEnv, token, provider string) []calendar {
		t.Helper()
		resp, body := ce.do(t, "GET", "/v1/connections/"+provider+"/calendars", token, "")
		return decode[struct{ Items []calendar }](t, resp, body, 200).Items
	}
	ce := newConnEnv(t, nil, nil)
	for c, role := range map[gcaltest.Calendar]string{{ID: partner, Summary: "Partner"}: gcaltest.RoleReader, {ID: team, Summary: "Team"}: gcaltest.RoleFreeBusyReader} {
		if err := ce.google.AddCalendar(primary, c, role); err != nil {
			t.Fatal(err)
		}
	}
	alice := ce.token(t, "alice", "mentor")
	bob := ce.token(t, "bob", "candidate")

	resp, body := ce.do(t, "GET", "/v1/connections/google/calendars", alice, "")
	decodeProblem(t, resp, body, 404)
	resp, body = ce.do(t, "GET", "/v1/connections/zoom/calendars", alice, "")
	decodeProblem(t, resp, body, 400)

	connectGoogleAs(t, ce, alice)
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"`+work+`","busy_calendars":["`+partner+`"]}`)
	decode[busyConnection](t, resp, body, 200)
	got := list(t, ce, alice, "google")
	want := []calendar{
		{ID: work, Name: "Work", AcceptsEvents: true, Chosen: true, Busy: true, AccessRole: "owner"},
		{ID: primary, Name: primary, AcceptsEvents: true, AccessRole: "owner"},
		{ID: partner, Name: "Partner", Busy: true, AccessRole: "reader"},
		{ID: team, Name: "Team", AccessRole: "freeBusyReader"},
	}
	if len(got) == 0 || got[0].ID != work {
		t.Fatalf("google calendars %+v: want the chosen one first", got)
	}
	byID := func(a, b calendar) bool { return a.ID < b.ID }
	if d := cmp.Diff(got, want, cmpopts.SortSlices(byID)); d != "" {
		t.Errorf("google calendars (-got +want):\n%s", d)
	}
	// Each user sees their own account only.
	resp, body = ce.do(t, "GET", "/v1/connections/google/calendars", bob, "")
	decodeProblem(t, resp, body, 404)

	// "primary" is Google's alias of the account's primary calendar.
	resp, body = ce.do(t, "PUT", "/v1/connections/google", alice, `{"calendar_id":"primary","busy_calendars":["primary","`+work+`"]}`)
	if c := decode[busyConnection](t, resp, body, 200); c.Calendar == nil || c.Calendar.ID != primary ||
		cmp.Diff(c.busy(), []string{primary + " " + primary, work + " Work"}) != "" {
		t.Errorf("PUT with the primary alias: %s", body)
	}

	// Google revoked the grant: reconnect (422), and the connection says so.
	// The cached access token looks valid: Google's 401 to it is retried
	// with a refresh, which finds the grant revoked.
	ce.google.RevokeUser(primary)
	resp, body = ce.do(t, "GET", "/v1/connections/google/calendars", alice, "")
	decodeProblem(t, resp, body, 422)
	resp, body = ce.do(t, "GET", "/v1/connections", alice, "")
	if !strings.Contains(string(body), `"needs_reauth"`) {
		t.Errorf("after the revocation: %s", body)
	}

	// CalDAV: every calendar of events accepts them; no access role.
	workPath := ce.caldav.CreateCalendar("mentor", "work", "Work")
	const homePath = "/mentor/calendars/default/"
	resp, body = ce.do(t, "POST", "/v1/connections/caldav", alice,
		`{"server_url":"`+ce.caldavURL+`","username":"mentor","app_password":"`+appPassword+`","calendar_path":"`+workPath+`"}`)
	decode[busyConnection](t, resp, body, 201)
	got = list(t, ce, alice, "caldav")
	want = []calendar{
		{ID: workPath, Name: "Work", AcceptsEvents: true, Chosen: true, Busy: true},
		{ID: homePath, Name: "Default", AcceptsEvents: true},
	}
	if d := cmp.Diff(got, want); d != "" {
		t.Errorf("caldav calendars (-got +want):\n%s", d)
	}
	if strings.Contains(string(body), appPassword) {
		t.Errorf("the app password is in an answer: %s", body)
	}
}
