package sandbox_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/internal/sandbox"
)

// TestCalendarDeleteAndRevokeControls: the delete controls delete a
// sandbox Google calendar (gone from every account's list), unshare one
// from one account (the others keep it), delete a CalDAV calendar over
// CalDAV; the revoke control makes the tokens of one Google account
// useless. What changed is read back independently (calendarList.list,
// calls on the calendar, CalDAV discovery), and mistakes get a problem and
// change nothing.
func TestCalendarDeleteAndRevokeControls(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := startSandbox(t)
	google := env.URLs["google"] + sandbox.GoogleCalendarsPath
	accounts := env.URLs["google"] + sandbox.GoogleAccountsPath
	cdav := env.URLs["caldav"] + sandbox.CalDAVCalendarsPath
	const (
		work   = "work@group.calendar.google.com"
		family = "family@group.calendar.google.com"
		team   = "team@group.calendar.google.com"
	)
	for _, add := range []struct{ url, body string }{
		{google + work + "/add", `{"name":"Work"}`},
		{google + work + "/add", `{"account":"candidate@example.com","access_role":"reader"}`},
		{google + family + "/add", `{"access_role":"reader"}`},
		{google + family + "/add", `{"account":"admin@example.com","access_role":"freeBusyReader"}`},
		{google + team + "/add", `{"account":"admin@example.com"}`},
		{cdav + "personal/add", `{"name":"Personal"}`},
	} {
		if status, out := postControl(t, add.url, http.MethodPost, add.body); status != http.StatusOK {
			t.Fatalf("%s: %d %v", add.url, status, out)
		}
	}
	// Tokens issued before the revoke, as the gateway holds them.
	mentorWork, candidateWork := googleAs(t, env, "mentor@example.com", work), googleAs(t, env, "candidate@example.com", work)
	mentorPrimary := googleAs(t, env, "mentor@example.com", "mentor@example.com")

	// Mistakes first: a problem, and nothing changes.
	for _, tc := range []struct {
		name, url, body string
		want            int
	}{
		{"google delete a primary calendar", google + "mentor@example.com/delete", `{}`, http.StatusConflict},
		{"google delete another account's primary calendar", google + "Admin@Example.com/delete", `{"account":"mentor@example.com"}`, http.StatusConflict},
		{"google delete an unknown calendar", google + "nope@group.calendar.google.com/delete", `{}`, http.StatusNotFound},
		{"google unshare from an unknown account", google + work + "/delete", `{"account":"bob@example.com"}`, http.StatusNotFound},
		{"google unshare from an account without it", google + team + "/delete", `{"account":"candidate@example.com"}`, http.StatusNotFound},
		{"google delete with an unknown field", google + work + "/delete", `{"calendar":"x"}`, http.StatusBadRequest},
		{"google delete not a calendar id", google + "work/delete", `{}`, http.StatusBadRequest},
		{"caldav delete an unknown calendar", cdav + "work/delete", `{}`, http.StatusNotFound},
		{"caldav delete with an account", cdav + "personal/delete", `{"account":"mentor"}`, http.StatusBadRequest},
		{"caldav delete not a name", cdav + "../delete", `{}`, http.StatusBadRequest},
		{"revoke an unknown account", accounts + "bob@example.com/revoke", ``, http.StatusNotFound},
		{"revoke with a body", accounts + "mentor@example.com/revoke", `{"account":"x"}`, http.StatusBadRequest},
		{"google account unknown action", accounts + "mentor@example.com/delete", ``, http.StatusNotFound},
	} {
		if status, out := postControl(t, tc.url, http.MethodPost, tc.body); status != tc.want || out["detail"] == "" {
			t.Errorf("%s: %d %v, want %d with a detail", tc.name, status, out, tc.want)
		}
	}
	if _, err := mentorPrimary.ListCalendars(ctx); err != nil {
		t.Fatalf("the mentor's token before any revoke: %v", err)
	}

	for _, tc := range []struct {
		name, url, body string
		want            map[string]any
	}{
		{"google unshare a shared calendar from one account", google + family + "/delete", `{"account":"Admin@Example.com"}`,
			map[string]any{"calendar_id": family, "account": "admin@example.com", "action": "unshared"}},
		{"google delete as the owning account", google + team + "/delete", `{"account":"admin@example.com"}`,
			map[string]any{"calendar_id": team, "account": "admin@example.com", "action": "deleted"}},
		{"google delete", google + work + "/delete", ``,
			map[string]any{"calendar_id": work, "action": "deleted"}},
		{"caldav delete", cdav + "personal/delete", ``,
			map[string]any{"calendar_path": "/mentor/calendars/personal/", "account": "mentor", "action": "deleted"}},
		{"google revoke", accounts + "Mentor@Example.com/revoke", ``,
			map[string]any{"account": "mentor@example.com", "action": "revoked"}},
	} {
		status, out := postControl(t, tc.url, http.MethodPost, tc.body)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.name, status, out)
		}
		if diff := cmp.Diff(out, tc.want); diff != "" {
			t.Errorf("%s: answer (-got +want):\n%s", tc.name, diff)
		}
	}

	// The calendar lists, read with fresh tokens.
	for email, want := range map[string][]string{
		"mentor@example.com":    {family, "mentor@example.com"},
		"candidate@example.com": {"candidate@example.com"},
		"admin@example.com":     {"admin@example.com"},
	} {
		got, err := googleAs(t, env, email, email).ListCalendars(ctx)
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		if diff := cmp.Diff(ids, want); err != nil || diff != "" {
			t.Errorf("calendar list of %s: %v (-got +want):\n%s", email, err, diff)
		}
	}
	// The deleted calendar answers 404 to an account that still has access
	// to everything else; the revoked account's old tokens answer 401.
	start := time.Now().Add(24 * time.Hour)
	if _, err := candidateWork.FreeBusy(ctx, start, start.Add(time.Hour)); !errors.Is(err, calendar.ErrNotFound) {
		t.Errorf("free/busy of the deleted calendar: %v, want not found", err)
	}
	for name, c := range map[string]*gcal.Client{"work": mentorWork, "primary": mentorPrimary} {
		if _, err := c.ListCalendars(ctx); err == nil || errors.Is(err, calendar.ErrNotFound) {
			t.Errorf("the mentor's %s token after the revoke: %v, want refused", name, err)
		}
	}
	if _, err := googleAs(t, env, "candidate@example.com", "candidate@example.com").ListCalendars(ctx); err != nil {
		t.Errorf("another account after the mentor's revoke: %v", err)
	}
	acc, err := caldav.Discover(ctx, &http.Client{Timeout: 10 * time.Second}, env.URLs["caldav"], sandbox.CalDAVUser, sandbox.CalDAVPassword)
	var names []string
	for _, c := range acc.EventCalendars() {
		names = append(names, c.Path)
	}
	if err != nil || strings.Join(names, " ") != "/mentor/calendars/default/" {
		t.Errorf("CalDAV calendars after the delete: %v %v", names, err)
	}
}
