package jira_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
)

// Wiring the simulator and the client, as the sandbox mode does.
func ExampleClient_EnsureIssue() {
	sim := httptest.NewServer(jiratest.New(jiratest.Options{}))
	defer sim.Close()
	c, err := jira.New(sim.URL, jira.BasicAuth(jiratest.DefaultEmail, jiratest.DefaultAPIToken),
		jira.WithBookingField(jiratest.DefaultBookingField))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	ref, created, err := c.EnsureIssue(ctx, "b-1", jira.IssueInput{
		ProjectKey: jiratest.DefaultProjectKey, IssueType: "Task", Summary: "Mentoring session: Ada / Charles",
		Description: jira.Document([]string{"Tuesday 10:00 UTC"}, &jira.Link{Text: "Booking", URL: "https://app.spotlight.test/b/b-1"}),
	})
	if err != nil {
		panic(err)
	}
	if err := c.TransitionTo(ctx, ref.Key, "In Progress"); err != nil {
		panic(err)
	}
	is, _ := c.GetIssue(ctx, ref.Key)
	fmt.Println(ref.Key, created, is.Status, is.Labels, is.BookingID)
	// Output: SPOT-1 true In Progress [spotlight-booking-b-1] b-1
}
