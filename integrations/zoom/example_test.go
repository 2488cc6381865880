package zoom_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/spotlight/gateway/integrations/outbound"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
)

// Example wires the client to the simulator: the simulator accepts exactly
// the Server-to-Server OAuth credentials it was built with, and one base URL
// serves both the OAuth and the API endpoints.
func Example() {
	sim := zoomtest.New(zoomtest.Options{AccountID: "acct", ClientID: "cid", ClientSecret: "csecret"})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	creds := func(context.Context) (zoom.Credentials, error) {
		return zoom.Credentials{AccountID: "acct", ClientID: "cid", ClientSecret: "csecret"}, nil
	}
	c := zoom.New(creds,
		zoom.WithHTTPClient(outbound.NewClient(outbound.Config{Provider: zoom.Provider})),
		zoom.WithBaseURL(srv.URL), zoom.WithOAuthURL(srv.URL))

	ctx := context.Background()
	req := zoom.MeetingRequest{Topic: "Mentoring", StartTime: time.Now().Add(24 * time.Hour), Duration: time.Hour, Timezone: "Europe/Berlin"}
	m, err := c.CreateMeeting(ctx, "mentor@example.com", "booking-42", req)
	if err != nil {
		fmt.Println(err)
		return
	}
	again, _ := c.CreateMeeting(ctx, "mentor@example.com", "booking-42", req) // same booking: same meeting
	fmt.Println(m.BookingID, again.ID == m.ID, sim.MeetingCount("mentor@example.com"))
	// Output: booking-42 true 1
}
