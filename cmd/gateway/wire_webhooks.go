package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/spotlight/gateway/integrations/calendar"
	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/booking"
	"github.com/spotlight/gateway/internal/config"
	"github.com/spotlight/gateway/internal/connect"
	"github.com/spotlight/gateway/internal/httpapi"
	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/store"
	"github.com/spotlight/gateway/webhooks"
)

// Sandbox webhook secrets, written into the secret store in sandbox mode
// (only when no secret is stored yet) so the simulators can sign deliveries.
const (
	sandboxZoomWebhookSecret = "sandbox-zoom-webhook-secret"
	sandboxJiraWebhookSecret = "sandbox-jira-webhook-secret"
)

// wireWebhooks wires the webhooks area: the intake routes (raw-body
// handlers over the generated ones), the processing worker, the periodic
// channel renewal and CalDAV polling, and the admin webhook-event API.
//
// Webhook secrets come from the secret store: provider "zoom" fields
// webhook_secret and webhook_secret_next (or webhook_secret_previous) —
// both accepted during a rotation — and provider "jira" field
// webhook_secret, required in production (start fails without it). The
// booking actions go through the booking service wired by wireBooking;
// Google channels and users' calendars through the connect service.
func wireWebhooks(w *wiring) error {
	cfg := w.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if w.sandbox != nil {
		if err := seedWebhookSecret(ctx, w, "zoom", sandboxZoomWebhookSecret); err != nil {
			return err
		}
		if err := seedWebhookSecret(ctx, w, "jira", sandboxJiraWebhookSecret); err != nil {
			return err
		}
	}
	load := func(ctx context.Context) (webhooks.Secrets, error) { return loadWebhookSecrets(ctx, w) }
	prod := cfg.Env == config.EnvProduction
	if prod {
		sec, err := load(ctx)
		if err != nil {
			return err
		}
		if err := requireWebhookSecrets(cfg, sec); err != nil {
			return err
		}
	}

	wc := webhooks.Config{
		DB:                   w.db,
		Jobs:                 func() webhooks.JobInserter { return jobInserter(w) },
		Secrets:              webhooks.CachedSecrets(load, 30*time.Second, nil),
		RequireJiraSignature: prod,
		JiraAccountID:        jiraOwnAccount(w),
		JiraCancelStatus:     cfg.Jira.CancelStatus,
		JiraBookingField:     cfg.Jira.BookingField,
		MaxBody:              cfg.Webhooks.MaxBody,
		HandoffGrace:         cfg.Webhooks.HandoffGrace,
		EarlyStart:           cfg.Zoom.EarlyStart,
		PollInterval:         cfg.CalDAV.PollInterval,
		PushSyncInterval:     cfg.Google.SyncInterval,
		Logger:               w.logger,
		Registerer:           w.registry,
	}
	if svc := w.deps.Bookings.Service; svc != nil {
		wc.Bookings = bookingActions{svc: svc, db: w.db, attendance: &webhooks.AttendanceLog{DB: w.db}, connect: w.connect}
	}
	if w.connect != nil {
		wc.Channels = connectChannels{w.connect}
		wc.Calendars = connectCalendars{w.connect}
		if zc := w.connect.ZoomClient(); zc != nil {
			wc.Meetings = zoomMeetings{zc}
		}
	}
	if cfg.Sentry.DSN != "" {
		wc.Report = func(ctx context.Context, err error) { sentry.CurrentHub().Clone().CaptureException(err) }
	}
	svc, err := webhooks.New(wc)
	if err != nil {
		return err
	}
	addWorker(w, svc.ProcessWorker())
	addWorker(w, svc.RenewWorker())
	addWorker(w, svc.PollWorker())
	addWorker(w, svc.PushSyncWorker())
	w.periodic = append(w.periodic, svc.PeriodicJobs()...)
	w.deps.Mount = append(w.deps.Mount, svc.Mount)
	w.deps.ErrorMappers = append(w.deps.ErrorMappers, httpapi.WebhookErrors)
	w.deps.Webhooks = httpapi.WebhookDeps{Events: httpapi.WebhookService(svc)}
	w.onStop = append(w.onStop, func(context.Context) { svc.Close() })
	return nil
}

// jobInserter returns w.jobs once it exists (it is built after wiring).
func jobInserter(w *wiring) webhooks.JobInserter {
	if w.jobs == nil {
		return nil
	}
	return w.jobs
}

// requireWebhookSecrets is production's start check: without a provider's
// webhook secret every delivery of that provider would be refused (401).
// The error names each missing secret and where to put it.
func requireWebhookSecrets(cfg config.Config, sec webhooks.Secrets) error {
	var missing []error
	for _, m := range []struct {
		provider, name string
		ok             bool
	}{{"zoom", "Zoom", len(sec.Zoom) > 0}, {"jira", "Jira", sec.Jira != ""}} {
		if m.ok {
			continue
		}
		path, err := secrets.ProviderPath(cfg.Secrets.Prefix, cfg.Env, m.provider)
		if err != nil {
			return err
		}
		missing = append(missing, fmt.Errorf("the %s webhook secret is required in production: put field webhook_secret in the SecureString parameter %s (a JSON object of the provider's credentials) before starting", m.name, path))
	}
	if len(missing) > 0 {
		return fmt.Errorf("webhooks: %w", errors.Join(missing...))
	}
	return nil
}

// loadWebhookSecrets reads the providers' webhook secrets from the secret
// store.
func loadWebhookSecrets(ctx context.Context, w *wiring) (webhooks.Secrets, error) {
	z, err := providerFields(ctx, w.cfg, w.secrets, "zoom")
	if err != nil {
		return webhooks.Secrets{}, err
	}
	j, err := providerFields(ctx, w.cfg, w.secrets, "jira")
	if err != nil {
		return webhooks.Secrets{}, err
	}
	var sec webhooks.Secrets
	for _, k := range []string{"webhook_secret", "webhook_secret_next", "webhook_secret_previous"} {
		if v := z[k]; v != "" {
			sec.Zoom = append(sec.Zoom, v)
		}
	}
	sec.Jira = j["webhook_secret"]
	return sec, nil
}

// seedWebhookSecret stores a provider's webhook_secret when none is set,
// keeping the provider's other fields.
func seedWebhookSecret(ctx context.Context, w *wiring, provider, value string) error {
	path, err := secrets.ProviderPath(w.cfg.Secrets.Prefix, w.cfg.Env, provider)
	if err != nil {
		return err
	}
	err = secrets.Update(ctx, w.secrets, path, func(old []byte, exists bool) ([]byte, error) {
		m := map[string]string{}
		if exists {
			if err := json.Unmarshal(old, &m); err != nil {
				return nil, fmt.Errorf("webhooks: stored %s credentials are not a JSON object", provider)
			}
		}
		if m["webhook_secret"] == "" {
			m["webhook_secret"] = value
		}
		return json.Marshal(m)
	})
	if err != nil {
		return fmt.Errorf("webhooks: seed sandbox %s webhook secret: %w", provider, err)
	}
	return nil
}

// jiraOwnAccount returns the gateway's own Jira account id (cached after
// the first success): the sandbox simulator's default account, or
// GET /rest/api/3/myself through the Jira client, on the site and with the
// service account every other Jira call uses. Without Jira credentials
// there is no own account ("").
func jiraOwnAccount(w *wiring) func(ctx context.Context) (string, error) {
	var (
		mu     sync.Mutex
		cached string
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if cached != "" {
			return cached, nil
		}
		if w.sandbox != nil {
			cached = jiratest.DefaultAccountID
			return cached, nil
		}
		if w.connect == nil || w.connect.JiraClient() == nil {
			return "", nil
		}
		id, err := w.connect.JiraClient().Myself(ctx)
		if errors.Is(err, connect.ErrNotConfigured) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("webhooks: %w", err)
		}
		cached = id
		return cached, nil
	}
}

// bookingActions adapts *booking.Service to webhooks.Bookings (and
// webhooks.MeetingLookup).
type bookingActions struct {
	svc        *booking.Service
	db         *store.Store
	attendance *webhooks.AttendanceLog
	// connect names the calendar a Source is (nil: no connections, so
	// no events placed in any).
	connect *connect.Service
}

var _ webhooks.MeetingLookup = bookingActions{}

func toWebhookBooking(b booking.Booking, err error) (webhooks.Booking, error) {
	if errors.Is(err, booking.ErrNotFound) {
		return webhooks.Booking{}, webhooks.ErrBookingNotFound
	}
	if err != nil {
		return webhooks.Booking{}, err
	}
	wb := webhooks.Booking{ID: b.ID, Status: string(b.Status), MentorID: b.MentorID, CandidateID: b.CandidateID, Start: b.Start, End: b.End}
	for _, st := range b.Steps {
		if st.Name == booking.StepJira {
			wb.Issue = st.Ref
		}
	}
	return wb, nil
}

// refusal marks the booking service's permanent refusals as webhooks.ErrRefused,
// with why in the booking's words (booking.Explain) for the audit trail.
func refusal(err error) error {
	var (
		ce *booking.ConflictError
		ve *booking.ValidationError
	)
	if errors.As(err, &ce) || errors.As(err, &ve) || errors.Is(err, booking.ErrOverlap) || errors.Is(err, booking.ErrNotFound) ||
		errors.Is(err, booking.ErrRescheduleRefused) {
		return &webhooks.RefusedError{Reason: booking.Explain(err), Err: err}
	}
	return err
}

func (a bookingActions) FindByMeeting(ctx context.Context, id string) (webhooks.Booking, error) {
	return toWebhookBooking(a.svc.FindByMeeting(ctx, id))
}

// FindByMeetings finds the bookings of many Zoom meetings at once
// (booking.Service.FindByMeetings); webhook processing calls it once per job
// instead of FindByMeeting per delivery.
func (a bookingActions) FindByMeetings(ctx context.Context, ids []string) (map[string]webhooks.Booking, error) {
	found, err := a.svc.FindByMeetings(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("webhooks: find bookings of meetings: %w", err)
	}
	out := make(map[string]webhooks.Booking, len(found))
	for ref, b := range found {
		out[ref], _ = toWebhookBooking(b, nil)
	}
	return out, nil
}

func (a bookingActions) FindByEvent(ctx context.Context, id string) (webhooks.Booking, error) {
	return toWebhookBooking(a.svc.FindByEvent(ctx, id))
}

func (a bookingActions) FindByIssue(ctx context.Context, key string) (webhooks.Booking, error) {
	return toWebhookBooking(a.svc.FindByIssue(ctx, key))
}

func (a bookingActions) Get(ctx context.Context, id string) (webhooks.Booking, error) {
	return toWebhookBooking(a.svc.Lookup(ctx, id))
}

func (a bookingActions) Cancel(ctx context.Context, id, actor, reason string) error {
	return inFlight(refusal(a.svc.CancelAs(ctx, id, actor, reason)))
}

func (a bookingActions) Reschedule(ctx context.Context, id string, start, end time.Time, changed webhooks.Artefact, actor, reason string) error {
	step, err := stepOf(changed)
	if err != nil {
		return err
	}
	return inFlight(refusal(a.svc.RescheduleAs(ctx, id, start, end, step, actor, reason)))
}

// inFlight marks booking.ErrChangeInFlight as webhooks.ErrBookingBusy: the
// delivery is processed again once the booking's own change has settled.
func inFlight(err error) error {
	if errors.Is(err, booking.ErrChangeInFlight) {
		return fmt.Errorf("%w: %w", webhooks.ErrBookingBusy, err)
	}
	return err
}

func (a bookingActions) Restore(ctx context.Context, id string, what webhooks.Artefact, actor, reason string) error {
	step, err := stepOf(what)
	if err != nil {
		return err
	}
	return a.svc.Reassert(ctx, id, step, actor, reason)
}

// stepOf is the booking step that holds an artefact.
func stepOf(what webhooks.Artefact) (booking.StepName, error) {
	switch what {
	case webhooks.ArtefactMeeting:
		return booking.StepZoom, nil
	case webhooks.ArtefactMentorEvent:
		return booking.StepMentorCalendar, nil
	case webhooks.ArtefactCandidateEvent:
		return booking.StepCandidateCalendar, nil
	case webhooks.ArtefactIssue:
		return booking.StepJira, nil
	}
	return "", fmt.Errorf("webhooks: unknown artefact %q", what)
}

func (a bookingActions) SetStatus(ctx context.Context, id, status, actor, reason string) error {
	return refusal(a.svc.SetStatus(ctx, id, booking.Status(status), actor, reason))
}

func (a bookingActions) RecordAttendance(ctx context.Context, id string, at webhooks.Attendance) error {
	return a.attendance.Record(ctx, id, at)
}

// MentorEvents lists the session events the booking saga wrote to src's
// calendar (booking.Service.MentorEventsAt at the calendar's place, as the
// saga records it). A calendar that is not the one of its user's connection
// to its provider (any more) has none: its place cannot be told.
func (a bookingActions) MentorEvents(ctx context.Context, src webhooks.Source) ([]webhooks.PlacedEvent, error) {
	if a.connect == nil {
		return nil, nil
	}
	place, err := calendarPlace(ctx, a.connect, src)
	if err != nil || place == "" {
		return nil, err
	}
	evs, err := a.svc.MentorEventsAt(ctx, src.UserID, place)
	if err != nil {
		return nil, err
	}
	out := make([]webhooks.PlacedEvent, len(evs))
	for i, ev := range evs {
		out[i] = webhooks.PlacedEvent{BookingID: ev.BookingID, EventID: ev.EventID}
	}
	return out, nil
}

// calendarPlace returns the place (connect.Info.Place, which the booking
// saga records for the events it writes) of src's calendar while it is the
// calendar of its user's connection to src's provider; "" otherwise.
func calendarPlace(ctx context.Context, c *connect.Service, src webhooks.Source) (string, error) {
	infos, err := c.List(ctx, src.UserID)
	if err != nil {
		return "", err
	}
	for _, in := range infos {
		if in.Provider == src.Provider && in.CalendarID == src.CalendarID {
			return in.Place(), nil
		}
	}
	return "", nil
}

// zoomMeetings adapts the Zoom client to webhooks.Meetings.
type zoomMeetings struct{ c *zoom.Client }

func (z zoomMeetings) MeetingTime(ctx context.Context, meetingID string) (time.Time, time.Duration, error) {
	id, err := strconv.ParseInt(meetingID, 10, 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("zoom meeting id %q: %w", meetingID, err)
	}
	m, err := z.c.GetMeeting(ctx, id)
	if errors.Is(err, zoom.ErrMeetingNotFound) {
		return time.Time{}, 0, webhooks.ErrMeetingGone
	}
	if err != nil {
		return time.Time{}, 0, err
	}
	return m.StartTime, m.Duration, nil
}

// connectChannels adapts the connect service's Google channels.
type connectChannels struct{ c *connect.Service }

func toWebhookChannel(ch connect.Channel, err error) (webhooks.Channel, error) {
	if errors.Is(err, connect.ErrUnknownChannel) {
		return webhooks.Channel{}, webhooks.ErrUnknownChannel
	}
	if errors.Is(err, connect.ErrOrphanedChannel) {
		return webhooks.Channel{}, webhooks.ErrOrphanedChannel
	}
	if err != nil {
		return webhooks.Channel{}, err
	}
	return webhooks.Channel{ID: ch.ID, ResourceID: ch.ResourceID, CalendarID: ch.CalendarID, UserID: ch.UserSub, Expiration: ch.Expiration, ReplacedBy: ch.ReplacedBy}, nil
}

func (c connectChannels) VerifyChannel(ctx context.Context, id, token, resourceID string) (webhooks.Channel, error) {
	return toWebhookChannel(c.c.VerifyChannelToken(ctx, id, token, resourceID))
}

func (c connectChannels) LookupChannel(ctx context.Context, id string) (webhooks.Channel, error) {
	return toWebhookChannel(c.c.LookupChannel(ctx, id))
}

func (c connectChannels) RenewExpiring(ctx context.Context, before time.Time) ([]webhooks.Channel, error) {
	renewed, err := c.c.RenewChannels(ctx, before)
	out := make([]webhooks.Channel, 0, len(renewed))
	for _, ch := range renewed {
		wc, _ := toWebhookChannel(ch, nil)
		out = append(out, wc)
	}
	return out, err
}

// connectCalendars adapts the connect service's calendar connections.
type connectCalendars struct{ c *connect.Service }

// Open opens src's calendar while it is still the calendar of the user's
// connection. Once the user has chosen another one it is unavailable: the
// sync cursor of src's calendar must never be read against another
// calendar's listing (its events would look deleted or new).
func (c connectCalendars) Open(ctx context.Context, src webhooks.Source) (calendar.Calendar, error) {
	cal, in, err := c.c.CalendarFor(ctx, src.UserID, src.Provider)
	if errors.Is(err, connect.ErrNotConnected) || errors.Is(err, connect.ErrNeedsReauth) {
		// Disconnected, revoked or deleted (connect.ErrCalendarGone).
		return nil, fmt.Errorf("%w: %w", webhooks.ErrCalendarUnavailable, err)
	}
	if err == nil && src.CalendarID != "" && in.CalendarID != src.CalendarID {
		return nil, fmt.Errorf("%w: %s's %s connection now uses another calendar", webhooks.ErrCalendarUnavailable, src.UserID, src.Provider)
	}
	return cal, err
}

func (c connectCalendars) Polled(ctx context.Context) ([]webhooks.Source, error) {
	return c.connected(ctx, connect.ProviderCalDAV, webhooks.SourceCalDAV)
}

func (c connectCalendars) Pushed(ctx context.Context) ([]webhooks.Source, error) {
	return c.connected(ctx, connect.ProviderGoogle, webhooks.SourceGoogle)
}

// connected lists the calendars of provider's connections as sources.
func (c connectCalendars) connected(ctx context.Context, provider string, source string) ([]webhooks.Source, error) {
	infos, err := c.c.Connected(ctx, provider)
	if err != nil {
		return nil, err
	}
	out := make([]webhooks.Source, 0, len(infos))
	for _, in := range infos {
		out = append(out, webhooks.Source{Provider: source, UserID: in.UserSub, CalendarID: in.CalendarID})
	}
	return out, nil
}
