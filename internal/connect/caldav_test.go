package connect_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/caldav/caldavtest"
	"github.com/spotlight/gateway/integrations/caldav/caldavtest/radicale"
	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/internal/store/storetest"
)

const calDAVPassword = "abcd-efgh-ijkl-mnop"

func calDAVServer(t *testing.T) (*caldavtest.Server, string) {
	t.Helper()
	s := caldavtest.New(caldavtest.Options{Users: map[string]string{"mentor": calDAVPassword}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func TestCalDAVConnect(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		cd, base := calDAVServer(t)
		cd.CreateCalendar("mentor", "work", "Work")
		h := newHarness(t, db, gcaltest.Options{})
		svc, sec := h.replica(t, nil)
		ctx := t.Context()
		p, _ := secrets.UserPath("spotlight", "test", "alice", "caldav")

		_, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: "wrong-password"})
		if !errors.Is(err, connect.ErrCalDAVUnauthorized) || !strings.Contains(err.Error(), "app-specific password") || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("credentials stored although discovery failed: %v", err)
		}
		if _, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword, CalendarPath: "/mentor/calendars/nope/"}); !errors.Is(err, connect.ErrUnknownCalendar) {
			t.Fatalf("unknown calendar path: %v", err)
		}

		in, cals, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword})
		if err != nil {
			t.Fatal(err)
		}
		if in.Status != connect.StatusConnected || in.CalendarID != caldavtest.CalendarPath("mentor", "default") || in.ServerURL != base {
			t.Fatalf("connection = %+v", in)
		}
		if len(cals) != 2 {
			t.Fatalf("calendars = %+v", cals)
		}
		if _, err := sec.Get(ctx, p); err != nil {
			t.Fatalf("credentials not stored: %v", err)
		}
		cal, info, err := svc.Calendar(ctx, "alice")
		if err != nil || info.Provider != connect.ProviderCalDAV {
			t.Fatalf("Calendar = %+v, %v", info, err)
		}
		start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
		if _, err := cal.CreateEvent(ctx, calendar.Event{BookingID: "bk-1", Summary: "Session", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
			t.Fatalf("CreateEvent: %v", err)
		}

		if busy, err := svc.BusyCalendars(ctx, "alice"); err != nil || len(busy) != 1 {
			t.Fatalf("BusyCalendars = %d, %v", len(busy), err)
		}
		if _, _, err := svc.Calendar(ctx, "nobody"); !errors.Is(err, connect.ErrNotConnected) {
			t.Fatalf("Calendar(nobody) = %v", err)
		}
		if busy, err := svc.BusyCalendars(ctx, "nobody"); err != nil || len(busy) != 0 {
			t.Fatalf("BusyCalendars(nobody) = %d, %v", len(busy), err)
		}

		in, _, err = svc.ChooseCalDAVCalendar(ctx, "alice", caldavtest.CalendarPath("mentor", "work"))
		if err != nil || in.CalendarID != caldavtest.CalendarPath("mentor", "work") || in.CalendarName != "Work" {
			t.Fatalf("choose = %+v, %v", in, err)
		}
		if _, _, err := svc.ChooseCalDAVCalendar(ctx, "alice", "/elsewhere/"); !errors.Is(err, connect.ErrUnknownCalendar) {
			t.Fatalf("choose unknown: %v", err)
		}
		if err := svc.DisconnectCalDAV(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := sec.Get(ctx, p); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("credentials after disconnect: %v", err)
		}
		if err := svc.DisconnectCalDAV(ctx, "alice"); err != nil {
			t.Fatalf("second disconnect: %v", err)
		}
	})
}

func TestCalDAVConnectRadicale(t *testing.T) {
	t.Parallel()
	base, user, pass := radicale.Start(t)
	radicale.MakeCalendar(t, base, user, pass, "sessions")
	h := newHarness(t, storetest.SQLite(t), gcaltest.Options{})
	svc, _ := h.replica(t, nil)
	ctx := t.Context()
	if _, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: user, Password: pass + "x"}); !errors.Is(err, connect.ErrCalDAVUnauthorized) {
		t.Fatalf("wrong password against Radicale: %v", err)
	}
	in, cals, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	if len(cals) != 1 || !strings.HasSuffix(in.CalendarID, "/sessions/") || in.CalendarName != "sessions" {
		t.Fatalf("Radicale connection = %+v, calendars %+v", in, cals)
	}
	cal, _, err := svc.Calendar(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	if _, err := cal.CreateEvent(ctx, calendar.Event{BookingID: "bk-r", Summary: "Session", Start: start, End: start.Add(time.Hour), TimeZone: "UTC"}); err != nil {
		t.Fatalf("CreateEvent on Radicale: %v", err)
	}
}

// resolverFunc maps names for the guard without DNS.
type resolverFunc map[string]string

func (r resolverFunc) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return net.DefaultResolver.LookupNetIP(context.Background(), "ip", host) // localhost from /etc/hosts
}

func TestCalDAVSSRFRefused(t *testing.T) {
	t.Parallel()
	_, private := calDAVServer(t)
	privateURL := mustParse(t, private)
	// "Public" servers (loopback too, so allowed by host:port) that
	// redirect discovery to the private server and to the metadata address.
	redirect := func(to string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, to, http.StatusMovedPermanently)
		}))
		t.Cleanup(s.Close)
		return s
	}
	toPrivate := redirect(private + "/.well-known/caldav")
	toMetadata := redirect("http://169.254.169.254/latest/")
	h := newHarness(t, storetest.SQLite(t), gcaltest.Options{})
	svc, sec := h.replica(t, func(c *connect.Config) {
		c.CalDAV = connect.CalDAVConfig{
			AllowHosts: []string{toPrivate.Listener.Addr().String(), toMetadata.Listener.Addr().String()},
			Resolver:   resolverFunc{"calendar.evil.example": "127.0.0.1", "meta.evil.example": "169.254.169.254"},
		}
	})
	tests := []struct{ name, url string }{
		{"loopback", private},
		{"private 10.0.0.1", "https://10.0.0.1/"},
		{"metadata", "http://169.254.169.254/"},
		{"metadata v6", "https://[fd00:ec2::254]/"},
		{"localhost", "https://localhost:" + privateURL.Port() + "/"},
		{"name resolving to loopback", "https://calendar.evil.example:" + privateURL.Port() + "/"},
		{"name resolving to metadata", "https://meta.evil.example/"},
		{"redirect to private", toPrivate.URL},
		{"redirect to metadata", toMetadata.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := svc.ConnectCalDAV(t.Context(), "alice", connect.CalDAVInput{ServerURL: tt.url, Username: "mentor", Password: calDAVPassword})
			if !errors.Is(err, connect.ErrServerNotAllowed) {
				t.Fatalf("ConnectCalDAV(%s) = %v, want ErrServerNotAllowed", tt.url, err)
			}
			if strings.Contains(err.Error(), calDAVPassword) {
				t.Fatal("the error echoes the password")
			}
		})
	}
	t.Cleanup(func() {
		p, _ := secrets.UserPath("spotlight", "test", "alice", "caldav")
		if _, err := sec.Get(context.Background(), p); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("credentials stored for a refused server: %v", err)
		}
	})
}

func TestProviderCredentials(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.Store) {
		zs := zoomtest.New(zoomtest.Options{AccountID: "acct", ClientID: "zid", ClientSecret: "zsecret"})
		zsrv := httptest.NewServer(zs)
		t.Cleanup(zsrv.Close)
		h := newHarness(t, db, gcaltest.Options{})
		svc, _ := h.replica(t, func(c *connect.Config) { c.Zoom = connect.ZoomConfig{APIURL: zsrv.URL, OAuthURL: zsrv.URL} })
		ctx := t.Context()

		st, err := svc.ProviderCredentialsStatus(ctx, "zoom")
		if err != nil || st.Set || len(st.Fields) != 0 || st.UpdatedAt != nil {
			t.Fatalf("status before = %+v, %v", st, err)
		}
		if _, err := svc.ZoomClient().Tokens().Token(ctx); !errors.Is(err, connect.ErrNotConfigured) {
			t.Fatalf("zoom token without credentials: %v", err)
		}
		var fe *connect.FieldsError
		err = svc.PutProviderCredentials(ctx, "zoom", map[string]string{"account_id": "acct", "password": "x"})
		if !errors.As(err, &fe) || len(fe.Unknown) != 1 || fe.Unknown[0] != "password" {
			t.Fatalf("unknown field: %v", err)
		}
		if err := svc.PutProviderCredentials(ctx, "nope", map[string]string{"a": "b"}); !errors.Is(err, connect.ErrUnknownProvider) {
			t.Fatalf("unknown provider: %v", err)
		}
		if err := svc.PutProviderCredentials(ctx, "zoom", map[string]string{"account_id": "acct", "client_id": "zid", "client_secret": "zsecret", "webhook_secret": "wh"}); err != nil {
			t.Fatal(err)
		}
		st, err = svc.ProviderCredentialsStatus(ctx, "zoom")
		if err != nil || !st.Set || strings.Join(st.Fields, ",") != "account_id,client_id,client_secret,webhook_secret" || st.UpdatedAt == nil {
			t.Fatalf("status after = %+v, %v", st, err)
		}
		tok, err := svc.ZoomClient().Tokens().Token(ctx)
		if err != nil || tok == "" || zs.TokensIssued() != 1 {
			t.Fatalf("zoom token = %v (issued %d)", err, zs.TokensIssued())
		}
		m, err := svc.ProviderSecret(ctx, "zoom")
		if err != nil || m["webhook_secret"] != "wh" {
			t.Fatalf("ProviderSecret = %v", err)
		}
		if svc.JiraClient() != nil {
			t.Fatal("a Jira client without a configured site")
		}
	})
}

// TestCalDAVAllDayInTheUsersZone: an all-day event in a mentor's CalDAV
// calendar blocks the mentor's day in the zone Config.Zone names (their
// schedule's), not UTC's; without a zone it is read in UTC.
func TestCalDAVAllDayInTheUsersZone(t *testing.T) {
	t.Parallel()
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	cd, base := calDAVServer(t)
	path := cd.CreateCalendar("mentor", "work", "Work")
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:day-off\r\nDTSTAMP:20261201T000000Z\r\n" +
		"DTSTART;VALUE=DATE:20271221\r\nDTEND;VALUE=DATE:20271222\r\nSUMMARY:Day off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	if err := caldavtest.Send(t.Context(), http.MethodPut, base+path+"day-off.ics", "mentor", calDAVPassword, ics); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		zone *time.Location
		want time.Time
	}{
		{"the mentor's zone", la, time.Date(2027, 12, 21, 0, 0, 0, 0, la)},
		{"no zone: UTC", nil, time.Date(2027, 12, 21, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, storetest.SQLite(t), gcaltest.Options{})
			svc, _ := h.replica(t, func(c *connect.Config) {
				c.Zone = func(context.Context, string) *time.Location { return tt.zone }
			})
			ctx := t.Context()
			if _, _, err := svc.ConnectCalDAV(ctx, "alice", connect.CalDAVInput{ServerURL: base, Username: "mentor", Password: calDAVPassword, CalendarPath: path}); err != nil {
				t.Fatal(err)
			}
			cals, err := svc.BusyCalendars(ctx, "alice")
			if err != nil || len(cals) != 1 {
				t.Fatalf("BusyCalendars = %d, %v", len(cals), err)
			}
			busy, err := cals[0].FreeBusy(ctx, time.Date(2027, 12, 20, 0, 0, 0, 0, time.UTC), time.Date(2027, 12, 24, 0, 0, 0, 0, time.UTC))
			if err != nil || len(busy) != 1 {
				t.Fatalf("FreeBusy = %v, %v", busy, err)
			}
			if !busy[0].Start.Equal(tt.want) || !busy[0].End.Equal(tt.want.AddDate(0, 0, 1)) {
				t.Errorf("busy %s – %s, want the day from %s", busy[0].Start, busy[0].End, tt.want)
			}
		})
	}
}
