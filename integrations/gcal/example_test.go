package gcal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"golang.org/x/oauth2"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/gcal"
	"github.com/spotlight/gateway/integrations/gcal/gcaltest"
)

// Example wires the simulator and the client: the OAuth code flow with PKCE
// (the simulator consents at once as its test user), a token source, and a
// booking event.
func Example() {
	ctx := context.Background()
	srv := httptest.NewServer(gcaltest.New(gcaltest.Options{}))
	defer srv.Close()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, srv.Client()) // token endpoint client

	cfg := gcal.OAuthConfig(gcaltest.DefaultClientID, gcaltest.DefaultClientSecret,
		"https://gateway.example/v1/oauth/google/callback", gcaltest.Endpoint(srv.URL))
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("signed-state", oauth2.AccessTypeOffline,
		oauth2.SetAuthURLParam("prompt", "consent"), oauth2.S256ChallengeOption(verifier))

	// The browser step: the simulator redirects to redirect_uri?code=…&state=….
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		panic(err)
	}

	client, err := gcal.New(ctx, cfg.TokenSource(ctx, tok), gcal.WithBaseURL(gcaltest.APIBase(srv.URL)))
	if err != nil {
		panic(err)
	}
	email, _ := gcal.AccountEmail(ctx, oauth2.NewClient(ctx, cfg.TokenSource(ctx, tok)), gcaltest.UserinfoURL(srv.URL))
	start := time.Date(2027, 5, 3, 9, 0, 0, 0, time.UTC)
	ev, err := client.CreateEvent(ctx, calendar.Event{
		BookingID: "bk_42", Summary: "Mentoring session", URL: "https://zoom.example/j/1",
		Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Berlin",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(email, ev.ID == calendar.EventID("bk_42"), ev.Start, ev.TimeZone)
	// Output: mentor@example.com true 2027-05-03 09:00:00 +0000 UTC Europe/Berlin
}
