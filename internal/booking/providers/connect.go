package providers

import (
	"context"
	"errors"
	"fmt"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/connect"
)

// ConnectSource is what Connect needs of the connect area's service
// (*connect.Service implements it).
type ConnectSource interface {
	Calendar(ctx context.Context, sub string) (calendar.Calendar, connect.Info, error)
	CalendarFor(ctx context.Context, sub, provider string) (calendar.Calendar, connect.Info, error)
	CalendarAt(ctx context.Context, sub, place string) (calendar.Calendar, error)
	BusyCalendars(ctx context.Context, sub string) ([]calendar.Calendar, error)
}

// Connect adapts the users' connections (internal/connect) to
// booking.Calendars. A connection that needs re-authorisation counts as not
// connected: the booking's event step is skipped rather than failed.
type Connect struct {
	Source ConnectSource
}

var (
	_ booking.Calendars       = Connect{}
	_ booking.PlacedCalendars = Connect{}
)

func notConnected(err error) bool {
	return errors.Is(err, connect.ErrNotConnected) || errors.Is(err, connect.ErrNeedsReauth)
}

// CalendarFor returns the calendar the user's booking events go to.
func (c Connect) CalendarFor(ctx context.Context, user string) (calendar.Calendar, error) {
	cal, _, err := c.Source.Calendar(ctx, user)
	if notConnected(err) {
		return nil, fmt.Errorf("%w: %v", booking.ErrNotConnected, err)
	}
	if err != nil {
		return nil, err
	}
	return Classifying(cal), nil
}

// PlacedCalendarFor returns the calendar the user's booking events go to
// and its place (connect.Info.Place).
func (c Connect) PlacedCalendarFor(ctx context.Context, user string) (calendar.Calendar, string, error) {
	cal, in, err := c.Source.Calendar(ctx, user)
	if notConnected(err) {
		return nil, "", fmt.Errorf("%w: %v", booking.ErrNotConnected, err)
	}
	if err != nil {
		return nil, "", err
	}
	return Classifying(cal), in.Place(), nil
}

// CalendarAt opens the user's calendar at place with the user's current
// credentials (connect.Service.CalendarAt).
func (c Connect) CalendarAt(ctx context.Context, user, place string) (calendar.Calendar, error) {
	cal, err := c.Source.CalendarAt(ctx, user, place)
	if notConnected(err) {
		return nil, fmt.Errorf("%w: %v", booking.ErrNotConnected, err)
	}
	if err != nil {
		return nil, err
	}
	return Classifying(cal), nil
}

// BusyCalendars returns the calendars whose busy time counts for the user
// (connect.Service.BusyCalendars): every calendar the user chose for busy
// time in a connected account, not only the one booking events go to, and
// those of an account whose chosen calendar is gone.
func (c Connect) BusyCalendars(ctx context.Context, user string) ([]calendar.Calendar, error) {
	cals, err := c.Source.BusyCalendars(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]calendar.Calendar, len(cals))
	for i, cal := range cals {
		out[i] = Classifying(cal)
	}
	return out, nil
}
