package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spotlight/gateway/client"
	"github.com/spotlight/gateway/integrations/caldav"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/zoom"
)

// Report compares the bookings with what exists at the providers.
type Report struct {
	Confirmed, Failed, Other int
	// Meetings, Issues and Events count the live provider objects seen.
	Meetings, Issues, Events int
	// Problems lists every orphan (an object whose booking is not
	// confirmed, or unknown), duplicate (two objects for one booking) and
	// missing object (a confirmed booking without its object), one line each.
	Problems []string
}

// Scope says where Audit looks.
type Scope struct {
	// ZoomHosts are the Zoom users whose meetings are listed.
	ZoomHosts []string
	// CalendarUsers are the CalDAV users whose default calendar is listed
	// (a confirmed booking of theirs whose mentor_calendar step is not
	// skipped must have its event).
	CalendarUsers []string
	// Jira checks the Jira project (every booking has a jira step).
	Jira bool
	// GoogleCandidates are the candidates whose Google calendar
	// (GoogleEmail) is checked for candidate_calendar events.
	GoogleCandidates []string
}

// Audit lists every meeting, issue and event in scope through the
// providers' own APIs (the simulators' wire interfaces, independently of
// the gateway) and checks them against the bookings: a confirmed booking
// has exactly one of each (the one its step names), a failed booking has
// none, and nothing exists for a booking that is not in the list.
func Audit(ctx context.Context, up *Upstreams, bookings []client.Booking, sc Scope) (Report, error) {
	var r Report
	byID := map[string]client.Booking{}
	for _, b := range bookings {
		byID[b.Id.String()] = b
		switch b.Status {
		case "confirmed":
			r.Confirmed++
		case "failed":
			r.Failed++
		default:
			r.Other++
			r.Problems = append(r.Problems, fmt.Sprintf("booking %s: status %s, want confirmed or failed", b.Id, b.Status))
		}
	}
	stepRef := func(b client.Booking, name string) (state, ref string) {
		for _, s := range b.Steps {
			if string(s.Name) == name {
				if s.ProviderRef != nil {
					ref = *s.ProviderRef
				}
				return string(s.State), ref
			}
		}
		return "", ""
	}
	// check compares the objects found per booking for one step.
	check := func(kind, step string, found map[string][]string, mustExist func(client.Booking) bool) {
		for bid, refs := range found {
			b, ok := byID[bid]
			switch {
			case !ok:
				r.Problems = append(r.Problems, fmt.Sprintf("orphan %s %v: booking %s unknown", kind, refs, bid))
			case b.Status != "confirmed":
				r.Problems = append(r.Problems, fmt.Sprintf("orphan %s %v: booking %s is %s", kind, refs, bid, b.Status))
			case len(refs) > 1:
				r.Problems = append(r.Problems, fmt.Sprintf("duplicate %s %v for booking %s", kind, refs, bid))
			default:
				if st, ref := stepRef(b, step); st != "done" || (ref != "" && ref != refs[0]) {
					r.Problems = append(r.Problems, fmt.Sprintf("%s %s of booking %s: step %s is %s with ref %q", kind, refs[0], bid, step, st, ref))
				}
			}
		}
		for _, b := range bookings {
			if b.Status == "confirmed" && mustExist(b) && len(found[b.Id.String()]) == 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("missing %s for confirmed booking %s", kind, b.Id))
			}
		}
	}

	// Zoom: every upcoming meeting of the hosts, by booking marker.
	zc := zoom.New(func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: ZoomAccountID, ClientID: ZoomClientID, ClientSecret: ZoomClientSecret}, nil
	}, zoom.WithBaseURL(up.ZoomURL), zoom.WithOAuthURL(up.ZoomURL), zoom.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
	meetings := map[string][]string{}
	for _, h := range sc.ZoomHosts {
		list, err := zc.ListUpcomingMeetings(ctx, h)
		if err != nil {
			return r, fmt.Errorf("systemtest: audit: list meetings of %s: %w", h, err)
		}
		if n := up.Zoom.MeetingCount(h); n != len(list) {
			r.Problems = append(r.Problems, fmt.Sprintf("zoom host %s holds %d meetings but lists %d upcoming", h, n, len(list)))
		}
		for _, m := range list {
			r.Meetings++
			bid := m.BookingID
			if bid == "" {
				bid = "(no marker)"
			}
			meetings[bid] = append(meetings[bid], fmt.Sprint(m.ID))
		}
	}
	check("zoom meeting", "zoom", meetings, func(client.Booking) bool { return true })

	if sc.Jira {
		issues := map[string][]string{}
		for _, is := range up.Jira.Issues() {
			r.Issues++
			bid := "(no label)"
			for _, l := range is.Labels {
				if id, ok := strings.CutPrefix(l, jira.BookingLabelPrefix); ok {
					bid = id
				}
			}
			issues[bid] = append(issues[bid], is.Key)
		}
		check("jira issue", "jira", issues, func(b client.Booking) bool {
			st, _ := stepRef(b, "jira")
			return st != "skipped"
		})
	}

	if len(sc.CalendarUsers) > 0 {
		events := map[string][]string{}
		users := map[string]bool{}
		for _, u := range sc.CalendarUsers {
			users[u] = true
			cal, err := caldav.New(up.CalDAVURL+caldavtest.CalendarPath(u, caldavtest.DefaultCalendar), u, CalDAVPassword,
				caldav.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
			if err != nil {
				return r, err
			}
			cs, err := cal.Changes(ctx, "")
			if err != nil {
				return r, fmt.Errorf("systemtest: audit: list events of %s: %w", u, err)
			}
			for _, ch := range cs.Changes {
				if ch.Deleted {
					continue
				}
				r.Events++
				bid := ch.BookingID
				if bid == "" {
					bid = "(no booking)"
				}
				events[bid] = append(events[bid], ch.ID)
			}
		}
		check("mentor calendar event", "mentor_calendar", events, func(b client.Booking) bool {
			st, _ := stepRef(b, "mentor_calendar")
			return users[b.MentorId] && st != "skipped"
		})
	}
	if len(sc.GoogleCandidates) > 0 {
		events := map[string][]string{}
		want := map[string]int{}
		users := map[string]bool{}
		for _, c := range sc.GoogleCandidates {
			users[c] = true
		}
		// Every booking's deterministic event id, looked up in its
		// candidate's calendar; the calendar's event count catches the rest.
		for _, b := range bookings {
			if !users[b.CandidateId] {
				continue
			}
			id := b.Id.String()
			ev, err := up.Google.Event(GoogleEmail(b.CandidateId), calendar.EventID(id))
			if err == nil && ev.Status != "cancelled" {
				events[id] = append(events[id], ev.Id)
				want[b.CandidateId]++
			}
		}
		for _, c := range sc.GoogleCandidates {
			n := up.Google.EventCount(GoogleEmail(c))
			r.Events += n
			if n != want[c] {
				r.Problems = append(r.Problems, fmt.Sprintf("google calendar of %s holds %d events, %d of them bookings' (orphans)", c, n, want[c]))
			}
		}
		check("candidate calendar event", "candidate_calendar", events, func(b client.Booking) bool {
			st, _ := stepRef(b, "candidate_calendar")
			return users[b.CandidateId] && st != "skipped"
		})
	}
	sort.Strings(r.Problems)
	return r, nil
}
