package main

import (
	"errors"

	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/booking/providers"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/webhooks"
)

// wireBooking wires the booking area: the booking service (schedules,
// availability, the saga), its job worker, handlers and error mapping. The
// Zoom and Jira clients and the users' calendars come from the connect area
// (w.connect, wired first), so sandbox and live credentials are read the
// same way.
func wireBooking(w *wiring) error {
	if w.connect == nil {
		return errors.New("booking: the connect area must be wired first")
	}
	var issues booking.Issues
	if jc := w.connect.JiraClient(); jc != nil {
		js := w.connect.JiraSettings()
		issues = providers.Jira{Client: jc, ProjectKey: js.ProjectKey, IssueType: js.IssueType, CancelStatus: js.CancelStatus}
	} else {
		w.logger.Warn("no Jira site configured (GATEWAY_JIRA_SITE_URL); bookings get no Jira issue")
	}
	svc, err := booking.New(booking.Config{
		Store:       w.db,
		Jobs:        func() *store.Jobs { return w.jobs },
		Meetings:    providers.Zoom{Client: w.connect.ZoomClient(), Settings: zoom.MeetingSettings{WaitingRoom: true}},
		Issues:      issues,
		Calendars:   providers.Connect{Source: w.connect},
		PublicURL:   w.cfg.PublicURL,
		SyncTimeout: w.cfg.Booking.SyncTimeout,
		RetryWindow: w.cfg.Booking.RetryWindow,
		Logger:      w.logger,
	})
	if err != nil {
		return err
	}
	addWorker(w, svc.Worker())
	addWorker(w, svc.SweepWorker())
	w.periodic = append(w.periodic, booking.PeriodicSweep())
	w.deps.Bookings = httpapi.BookingDeps{Service: svc, Attendance: &webhooks.AttendanceLog{DB: w.db}}
	w.deps.ErrorMappers = append(w.deps.ErrorMappers, httpapi.BookingErrors)
	w.onStop = append(w.onStop, svc.Close)
	return nil
}
