package sandbox_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/internal/sandbox"
)

// googleAs is a gcal client of the sandbox Google acting as account email
// in calendar id, for an independent read of what the controls did.
func googleAs(t *testing.T, env *sandbox.Env, email, id string) *gcal.Client {
	t.Helper()
	tok, err := env.Google.IssueToken(sandbox.GoogleClientID, email, gcaltest.ScopeCalendar)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gcal.New(t.Context(), oauth2.StaticTokenSource(tok), gcal.WithBaseURL(gcaltest.APIBase(env.URLs["google"])), gcal.WithCalendar(id))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caldavAt is a CalDAV client of the sandbox CalDAV user in calendar path p.
func caldavAt(t *testing.T, env *sandbox.Env, p string) *caldav.Client {
	t.Helper()
	c, err := caldav.New(env.URLs["caldav"]+p, sandbox.CalDAVUser, sandbox.CalDAVPassword, caldav.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCalendarAccountControls: the add controls give a sandbox Google
// account another calendar with the access role asked for (a new one, or
// one that exists shared as it is), and the sandbox
// CalDAV user a new calendar over CalDAV; the busy controls put a busy
// event in one. What changed is read back independently (calendarList,
// freebusy.query, CalDAV discovery and calendar-query), mistakes get a
// problem and change nothing, and the new calendars survive a restart
// from the state folder.
func TestCalendarAccountControls(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "sandbox")
	env, err := sandbox.Start(ctx, sandbox.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	google := env.URLs["google"] + sandbox.GoogleCalendarsPath
	cdav := env.URLs["caldav"] + sandbox.CalDAVCalendarsPath
	start := time.Now().Add(72 * time.Hour).Truncate(time.Hour).UTC()
	at := `"start_time":"` + start.Format(time.RFC3339) + `"`

	// The happy paths, in order: later rows use the calendars earlier ones add.
	for _, tc := range []struct {
		name, url, body string
		want            map[string]any
	}{
		{"google own calendar", google + "work@group.calendar.google.com/add", `{"name":"Work"}`,
			map[string]any{"calendar_id": "work@group.calendar.google.com", "account": "mentor@example.com", "name": "Work", "access_role": "owner"}},
		{"google shared read-only", google + "family@group.calendar.google.com/add", `{"account":"Mentor@Example.com","access_role":"reader"}`,
			map[string]any{"calendar_id": "family@group.calendar.google.com", "account": "mentor@example.com", "name": "family@group.calendar.google.com", "access_role": "reader"}},
		{"google shared free/busy with the candidate", google + "colleague%23x@group.calendar.google.com/add",
			`{"account":"candidate@example.com","name":"Colleague","access_role":"freeBusyReader"}`,
			map[string]any{"calendar_id": "colleague#x@group.calendar.google.com", "account": "candidate@example.com", "name": "Colleague", "access_role": "freeBusyReader"}},
		{"google share an existing calendar", google + "work@group.calendar.google.com/add", `{"account":"candidate@example.com","access_role":"reader"}`,
			map[string]any{"calendar_id": "work@group.calendar.google.com", "account": "candidate@example.com", "name": "Work", "access_role": "reader"}},
		{"google busy, defaults", google + "work@group.calendar.google.com/busy", `{` + at + `}`,
			map[string]any{"calendar_id": "work@group.calendar.google.com", "summary": "Busy",
				"start": start.Format(time.RFC3339), "end": start.Add(time.Hour).Format(time.RFC3339)}},
		{"google busy in a shared calendar", google + "family@group.calendar.google.com/busy", `{` + at + `,"duration_minutes":30,"summary":"Dentist"}`,
			map[string]any{"calendar_id": "family@group.calendar.google.com", "summary": "Dentist",
				"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339)}},
		{"google busy in a primary calendar", google + "candidate@example.com/busy", `{` + at + `}`,
			map[string]any{"calendar_id": "candidate@example.com", "summary": "Busy",
				"start": start.Format(time.RFC3339), "end": start.Add(time.Hour).Format(time.RFC3339)}},
		{"caldav calendar", cdav + "personal/add", `{"name":"Personal"}`,
			map[string]any{"calendar_path": "/mentor/calendars/personal/", "account": "mentor", "name": "Personal"}},
		{"caldav busy", cdav + "personal/busy", `{` + at + `,"duration_minutes":90,"summary":"Gym, then lunch"}`,
			map[string]any{"calendar_path": "/mentor/calendars/personal/", "summary": "Gym, then lunch",
				"start": start.Format(time.RFC3339), "end": start.Add(90 * time.Minute).Format(time.RFC3339)}},
		{"caldav busy in the default calendar", cdav + "default/busy", `{` + at + `}`,
			map[string]any{"calendar_path": "/mentor/calendars/default/", "summary": "Busy",
				"start": start.Format(time.RFC3339), "end": start.Add(time.Hour).Format(time.RFC3339)}},
	} {
		status, out := postControl(t, tc.url, http.MethodPost, tc.body)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.name, status, out)
		}
		if id, _ := out["event_id"].(string); id != "" {
			delete(out, "event_id")
		} else if _, busy := tc.want["summary"]; busy {
			t.Errorf("%s: no event_id in %v", tc.name, out)
		}
		if diff := cmp.Diff(out, tc.want); diff != "" {
			t.Errorf("%s: answer (-got +want):\n%s", tc.name, diff)
		}
	}

	// Mistakes: a problem, and nothing changes.
	for _, tc := range []struct {
		name, url, body string
		want            int
	}{
		{"google unknown action", google + "work@group.calendar.google.com/share", `{}`, http.StatusNotFound},
		{"google no calendar", google + "/add", `{}`, http.StatusNotFound},
		{"google not a calendar id", google + "work/add", `{}`, http.StatusBadRequest},
		{"google id in use", google + "work@group.calendar.google.com/add", `{}`, http.StatusConflict},
		{"google id of an account", google + "admin@example.com/add", `{"account":"candidate@example.com","access_role":"reader"}`, http.StatusConflict},
		{"google existing calendar as owner", google + "work@group.calendar.google.com/add", `{"account":"admin@example.com"}`, http.StatusConflict},
		{"google existing calendar renamed", google + "work@group.calendar.google.com/add", `{"account":"admin@example.com","access_role":"reader","name":"Job"}`, http.StatusConflict},
		{"google unknown account", google + "x@group.calendar.google.com/add", `{"account":"nobody@example.com"}`, http.StatusNotFound},
		{"google unknown role", google + "x@group.calendar.google.com/add", `{"access_role":"none"}`, http.StatusBadRequest},
		{"google unknown field", google + "x@group.calendar.google.com/add", `{"summary":"X"}`, http.StatusBadRequest},
		{"google busy without a time", google + "work@group.calendar.google.com/busy", `{}`, http.StatusBadRequest},
		{"google busy too long", google + "work@group.calendar.google.com/busy", `{` + at + `,"duration_minutes":1441}`, http.StatusBadRequest},
		{"google busy negative", google + "work@group.calendar.google.com/busy", `{` + at + `,"duration_minutes":-1}`, http.StatusBadRequest},
		{"google busy in an unknown calendar", google + "x@group.calendar.google.com/busy", `{` + at + `}`, http.StatusNotFound},
		{"caldav not a name", cdav + "a%20b/add", `{}`, http.StatusBadRequest},
		{"caldav dot name", cdav + "../add", `{}`, http.StatusBadRequest},
		{"caldav calendar exists", cdav + "personal/add", `{}`, http.StatusConflict},
		{"caldav default exists", cdav + "default/add", `{}`, http.StatusConflict},
		{"caldav with a role", cdav + "work/add", `{"access_role":"owner"}`, http.StatusBadRequest},
		{"caldav busy in an unknown calendar", cdav + "work/busy", `{` + at + `}`, http.StatusNotFound},
		{"caldav busy without a time", cdav + "personal/busy", `{"summary":"x"}`, http.StatusBadRequest},
		{"get", cdav + "personal/busy", "", http.StatusMethodNotAllowed},
	} {
		method := http.MethodPost
		if tc.name == "get" {
			method = http.MethodGet
		}
		if status, out := postControl(t, tc.url, method, tc.body); status != tc.want || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.want)
		}
	}

	check := func(when string) {
		t.Helper()
		// Google: the calendar lists, as calendarList.list has them.
		for email, want := range map[string][]gcal.CalendarInfo{
			"mentor@example.com": {
				{ID: "mentor@example.com", Summary: "mentor@example.com", TimeZone: "UTC", Primary: true, AccessRole: "owner"},
				{ID: "family@group.calendar.google.com", Summary: "family@group.calendar.google.com", TimeZone: "UTC", AccessRole: "reader"},
				{ID: "work@group.calendar.google.com", Summary: "Work", TimeZone: "UTC", AccessRole: "owner"},
			},
			"candidate@example.com": {
				{ID: "candidate@example.com", Summary: "candidate@example.com", TimeZone: "UTC", Primary: true, AccessRole: "owner"},
				{ID: "colleague#x@group.calendar.google.com", Summary: "Colleague", TimeZone: "UTC", AccessRole: "freeBusyReader"},
				{ID: "work@group.calendar.google.com", Summary: "Work", TimeZone: "UTC", AccessRole: "reader"},
			},
			"admin@example.com": {
				{ID: "admin@example.com", Summary: "admin@example.com", TimeZone: "UTC", Primary: true, AccessRole: "owner"},
			},
		} {
			got, err := googleAs(t, env, email, email).ListCalendars(ctx)
			slices.SortStableFunc(got[1:], func(a, b gcal.CalendarInfo) int { return strings.Compare(a.ID, b.ID) })
			if diff := cmp.Diff(got, want); err != nil || diff != "" {
				t.Errorf("%s: calendar list of %s: %v (-got +want):\n%s", when, email, err, diff)
			}
		}
		// Busy time, as freebusy.query and calendar-query see it.
		for name, fb := range map[string]interface {
			FreeBusy(context.Context, time.Time, time.Time) ([]calendar.Busy, error)
		}{
			"google work":      googleAs(t, env, "mentor@example.com", "work@group.calendar.google.com"),
			"google family":    googleAs(t, env, "mentor@example.com", "family@group.calendar.google.com"),
			"google candidate": googleAs(t, env, "candidate@example.com", "candidate@example.com"),
			"caldav personal":  caldavAt(t, env, caldavtest.CalendarPath(sandbox.CalDAVUser, "personal")),
			"caldav default":   caldavAt(t, env, caldavtest.CalendarPath(sandbox.CalDAVUser, caldavtest.DefaultCalendar)),
		} {
			want := map[string]time.Duration{"google family": 30 * time.Minute, "caldav personal": 90 * time.Minute}[name]
			if want == 0 {
				want = time.Hour
			}
			busy, err := fb.FreeBusy(ctx, start.Add(-24*time.Hour), start.Add(24*time.Hour))
			if err != nil || len(busy) != 1 || !busy[0].Start.Equal(start) || !busy[0].End.Equal(start.Add(want)) {
				t.Errorf("%s: busy time in %s: %+v %v; want %v for %v", when, name, busy, err, start, want)
			}
		}
		acc, err := caldav.Discover(ctx, &http.Client{Timeout: 10 * time.Second}, env.URLs["caldav"], sandbox.CalDAVUser, sandbox.CalDAVPassword)
		var names []string
		for _, c := range acc.EventCalendars() {
			names = append(names, c.Path+" "+c.Name)
		}
		if diff := cmp.Diff(names, []string{"/mentor/calendars/default/ Default", "/mentor/calendars/personal/ Personal"}); err != nil || diff != "" {
			t.Errorf("%s: CalDAV calendars: %v (-got +want):\n%s", when, err, diff)
		}
	}
	check("before the restart")

	if err := env.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	env, err = sandbox.Start(ctx, sandbox.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	check("after the restart")
}

// TestGoogleBusyPushes: a busy event put in a watched Google calendar makes
// the sandbox Google notify the channel, as Google does for any change.
func TestGoogleBusyPushes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := startSandbox(t)
	got := make(chan string, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Goog-Resource-State")
	}))
	t.Cleanup(receiver.Close)
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no push notification within 10s")
			return ""
		}
	}
	const work = "work@group.calendar.google.com"
	if status, out := postControl(t, env.URLs["google"]+sandbox.GoogleCalendarsPath+work+"/add", http.MethodPost, ""); status != http.StatusOK {
		t.Fatalf("add: %d %v", status, out)
	}
	if _, err := googleAs(t, env, "mentor@example.com", work).Watch(ctx, work, receiver.URL, time.Hour); err != nil {
		t.Fatal(err)
	}
	if state := next(); state != gcaltest.StateSync {
		t.Fatalf("first notification %q, want sync", state)
	}
	if status, out := postControl(t, env.URLs["google"]+sandbox.GoogleCalendarsPath+work+"/busy", http.MethodPost,
		`{"start_time":"2030-01-07T10:00:00Z"}`); status != http.StatusOK {
		t.Fatalf("busy: %d %v", status, out)
	}
	if state := next(); state != gcaltest.StateExists {
		t.Errorf("notification after the busy event %q, want exists", state)
	}
}
