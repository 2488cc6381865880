package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotlight/gateway/internal/sandbox"
)

// TestSandboxCalendarCommands: `gateway sandbox google|caldav calendar`
// (with --delete too), `… busy` and `gateway sandbox google revoke`, run from the folder of a sandbox (its data/sandbox/urls.json),
// send the control their arguments and flags make and print its JSON
// answer; the sandbox's refusal comes back as the error.
func TestSandboxCalendarCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{StateDir: filepath.Join(dir, "sandbox")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(context.Background()) })
	env := envOf(map[string]string{"GATEWAY_DATA_DIR": dir})
	start := time.Date(2030, 1, 7, 10, 0, 0, 0, time.FixedZone("", 3600))

	for _, tc := range []struct {
		args []string
		want map[string]any // the answer printed, event_id left out
		err  string         // or the error
	}{
		{args: []string{"google", "calendar", "work@group.calendar.google.com", "--name", "Work"},
			want: map[string]any{"calendar_id": "work@group.calendar.google.com", "account": "mentor@example.com", "name": "Work", "access_role": "owner"}},
		{args: []string{"google", "calendar", "family@group.calendar.google.com", "--as", "candidate@example.com", "--role", "freeBusyReader"},
			want: map[string]any{"calendar_id": "family@group.calendar.google.com", "account": "candidate@example.com",
				"name": "family@group.calendar.google.com", "access_role": "freeBusyReader"}},
		{args: []string{"google", "calendar", "work@group.calendar.google.com", "--as", "admin@example.com", "--role", "reader"},
			want: map[string]any{"calendar_id": "work@group.calendar.google.com", "account": "admin@example.com", "name": "Work", "access_role": "reader"}},
		{args: []string{"google", "calendar", "work@group.calendar.google.com"}, err: `the calendar list of "mentor@example.com" has it already`},
		{args: []string{"google", "calendar", "work@group.calendar.google.com", "--as", "candidate@example.com"}, err: "another account's, which an access role writer, reader or freeBusyReader shares"},
		{args: []string{"google", "calendar", "work@group.calendar.google.com", "--as", "admin@example.com", "--role", "writer"}, err: `The calendar list of "admin@example.com" has "work@group.calendar.google.com" already`},
		{args: []string{"google", "calendar", "admin@example.com", "--role", "reader"}, err: "primary calendar of a sandbox account"},
		{args: []string{"google", "calendar", "x@group.calendar.google.com", "--as", "bob@example.com"}, err: `no account "bob@example.com"`},
		{args: []string{"google", "busy", "work@group.calendar.google.com", "--start", start.Format(time.RFC3339)},
			want: map[string]any{"calendar_id": "work@group.calendar.google.com", "summary": "Busy",
				"start": "2030-01-07T10:00:00+01:00", "end": "2030-01-07T11:00:00+01:00"}},
		{args: []string{"google", "busy", "family@group.calendar.google.com", "--start", start.Format(time.RFC3339), "--duration", "30", "--name", "Family dinner"},
			want: map[string]any{"calendar_id": "family@group.calendar.google.com", "summary": "Family dinner",
				"start": "2030-01-07T10:00:00+01:00", "end": "2030-01-07T10:30:00+01:00"}},
		{args: []string{"google", "busy", "nope@group.calendar.google.com", "--start", start.Format(time.RFC3339)}, err: `no calendar "nope@group.calendar.google.com"`},
		{args: []string{"caldav", "calendar", "personal", "--name", "Personal"},
			want: map[string]any{"calendar_path": "/mentor/calendars/personal/", "account": "mentor", "name": "Personal"}},
		{args: []string{"caldav", "calendar", "personal"}, err: `already has a calendar "personal"`},
		{args: []string{"caldav", "busy", "personal", "--start", start.Format(time.RFC3339), "--duration", "45"},
			want: map[string]any{"calendar_path": "/mentor/calendars/personal/", "summary": "Busy",
				"start": "2030-01-07T10:00:00+01:00", "end": "2030-01-07T10:45:00+01:00"}},
		{args: []string{"caldav", "busy", "/mentor/calendars/personal/", "--start", start.Add(2 * time.Hour).Format(time.RFC3339)},
			want: map[string]any{"calendar_path": "/mentor/calendars/personal/", "summary": "Busy",
				"start": "2030-01-07T12:00:00+01:00", "end": "2030-01-07T13:00:00+01:00"}},
		{args: []string{"caldav", "busy", "work", "--start", start.Format(time.RFC3339)}, err: `has no calendar "work"`},
		// Deleting and unsharing calendars, revoking an account's grants.
		{args: []string{"google", "calendar", "old@group.calendar.google.com", "--name", "Old"},
			want: map[string]any{"calendar_id": "old@group.calendar.google.com", "account": "mentor@example.com", "name": "Old", "access_role": "owner"}},
		{args: []string{"google", "calendar", "old@group.calendar.google.com", "--delete", "--as", "admin@example.com"},
			err: `The calendar list of "admin@example.com" has no "old@group.calendar.google.com"`},
		{args: []string{"google", "calendar", "work@group.calendar.google.com", "--delete", "--as", "admin@example.com"},
			want: map[string]any{"calendar_id": "work@group.calendar.google.com", "account": "admin@example.com", "action": "unshared"}},
		{args: []string{"google", "calendar", "old@group.calendar.google.com", "--delete"},
			want: map[string]any{"calendar_id": "old@group.calendar.google.com", "action": "deleted"}},
		{args: []string{"google", "calendar", "old@group.calendar.google.com", "--delete"}, err: `no calendar "old@group.calendar.google.com"`},
		{args: []string{"caldav", "calendar", "/mentor/calendars/personal/", "--delete"},
			want: map[string]any{"calendar_path": "/mentor/calendars/personal/", "account": "mentor", "action": "deleted"}},
		{args: []string{"caldav", "calendar", "personal", "--delete"}, err: `has no calendar "personal"`},
		{args: []string{"google", "revoke", "--as", "candidate@example.com"}, want: map[string]any{"account": "candidate@example.com", "action": "revoked"}},
		{args: []string{"google", "revoke"}, want: map[string]any{"account": "mentor@example.com", "action": "revoked"}},
		{args: []string{"google", "revoke", "--as", "bob@example.com"}, err: `no account "bob@example.com"`},
	} {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"sandbox"}, tc.args...), env, &out, io.Discard)
		if tc.err != "" {
			if err == nil || exitCode(err) == 2 || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v (exit %d), want an error saying %q", tc.args, err, exitCode(err), tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Errorf("%v printed %q: %v", tc.args, out.String(), err)
			continue
		}
		if id, ok := got["event_id"].(string); ok && id != "" {
			delete(got, "event_id")
		}
		if diff := cmp.Diff(got, tc.want); diff != "" {
			t.Errorf("%v printed (-got +want):\n%s", tc.args, diff)
		}
	}
	for cal, want := range map[string]int{"work@group.calendar.google.com": 1, "family@group.calendar.google.com": 1, "mentor@example.com": 0} {
		if n := sb.Google.EventCount(cal); n != want {
			t.Errorf("%s holds %d events, want %d", cal, n, want)
		}
	}
}
