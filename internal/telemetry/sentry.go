// Package telemetry sets up the gateway's logs and error reporting: JSON
// slog lines and Sentry, whose events and breadcrumbs are scrubbed of
// credentials before they leave the process.
package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"regexp"
	"strings"

	"github.com/getsentry/sentry-go"
)

// sensitiveKey matches header, cookie, query, context and extra keys whose
// values must never reach Sentry.
var sensitiveKey = regexp.MustCompile(`(?i)(authorization|cookie|token|secret|password|passwd|signature|api[-_]?key|credential|private|session|x-zm-|x-hub-|x-goog-channel-token|code_verifier|\bcode\b)`)

// sensitiveValue matches secrets that may hide inside free text: bearer
// tokens, JWTs, basic credentials, key=value pairs with a sensitive key.
var sensitiveValue = regexp.MustCompile(`(?i)(bearer\s+[a-z0-9._~+/=-]+|basic\s+[a-z0-9+/=]{8,}|eyJ[a-zA-Z0-9_-]{8,}\.[a-zA-Z0-9_-]{8,}\.[a-zA-Z0-9_-]*|((?:access|refresh|id)_token|client_secret|password|app_password|api_token|secret)(["']?\s*[:=]\s*["']?)[^\s"'&,}]+)`)

const redacted = "[redacted]"

// ScrubString removes secrets from free text (messages, breadcrumbs).
func ScrubString(s string) string {
	return sensitiveValue.ReplaceAllStringFunc(s, func(m string) string {
		if sub := sensitiveValue.FindStringSubmatch(m); len(sub) > 3 && sub[2] != "" {
			return sub[2] + sub[3] + redacted
		}
		return redacted
	})
}

// ScrubEvent removes secrets from a Sentry event before it is sent: request
// headers, cookies, bodies and query values with sensitive names, user data
// beyond the id, and token-like strings in messages, exceptions, extras and
// breadcrumbs. It is the BeforeSend hook of every Sentry client the gateway makes.
func ScrubEvent(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
	if ev == nil {
		return nil
	}
	if r := ev.Request; r != nil {
		r.Cookies = ""
		r.Data = "" // bodies may carry credentials (app_password, tokens)
		for k := range r.Headers {
			if sensitiveKey.MatchString(k) {
				r.Headers[k] = redacted
			}
		}
		r.QueryString = scrubQuery(r.QueryString)
		r.URL = ScrubString(r.URL)
		for k := range r.Env {
			if sensitiveKey.MatchString(k) {
				r.Env[k] = redacted
			}
		}
	}
	ev.User = sentry.User{ID: ev.User.ID}
	ev.Message = ScrubString(ev.Message)
	for i := range ev.Exception {
		ev.Exception[i].Value = ScrubString(ev.Exception[i].Value)
	}
	for k, v := range ev.Tags {
		if sensitiveKey.MatchString(k) {
			ev.Tags[k] = redacted
		} else {
			ev.Tags[k] = ScrubString(v)
		}
	}
	for name, ctx := range ev.Contexts {
		for k, v := range ctx {
			ctx[k] = scrubAny(k, v)
		}
		ev.Contexts[name] = ctx
	}
	for _, b := range ev.Breadcrumbs {
		b.Message = ScrubString(b.Message)
		for k, v := range b.Data {
			b.Data[k] = scrubAny(k, v)
		}
	}
	return ev
}

func scrubAny(key string, v any) any {
	if sensitiveKey.MatchString(key) {
		return redacted
	}
	switch t := v.(type) {
	case string:
		return ScrubString(t)
	case map[string]any:
		for k, vv := range t {
			t[k] = scrubAny(k, vv)
		}
		return t
	case map[string]string:
		for k, vv := range t {
			t[k] = scrubAny(k, vv).(string)
		}
		return t
	default:
		return v
	}
}

// scrubQuery redacts the values of sensitive query parameters, keeping the
// rest of the query as it was.
func scrubQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && (sensitiveKey.MatchString(k) || k == "state") {
			parts[i] = k + "=" + redacted
		}
	}
	return strings.Join(parts, "&")
}

// BreadcrumbScrubber is the BeforeBreadcrumb hook: it drops secrets from
// breadcrumbs recorded by any package.
func BreadcrumbScrubber(b *sentry.Breadcrumb, _ *sentry.BreadcrumbHint) *sentry.Breadcrumb {
	b.Message = ScrubString(b.Message)
	for k, v := range b.Data {
		b.Data[k] = scrubAny(k, v)
	}
	return b
}

// SentryOptions configures InitSentry.
type SentryOptions struct {
	DSN         string
	Environment string
	Release     string
	// Transport replaces the HTTP transport (tests capture events with it).
	Transport sentry.Transport
}

// InitSentry installs the process-wide Sentry client when DSN is set, with
// ScrubEvent and BreadcrumbScrubber as hooks. It returns a flush function
// for shutdown; with no DSN, Sentry stays disabled and flush does nothing.
func InitSentry(o SentryOptions) (flush func(time.Duration), err error) {
	if o.DSN == "" {
		return func(time.Duration) {}, nil
	}
	err = sentry.Init(sentry.ClientOptions{
		Dsn:              o.DSN,
		Environment:      o.Environment,
		Release:          o.Release,
		AttachStacktrace: true,
		SendDefaultPII:   false,
		BeforeSend:       ScrubEvent,
		BeforeBreadcrumb: BreadcrumbScrubber,
		Transport:        o.Transport,
	})
	if err != nil {
		// Sentry's errors quote the DSN, whose key is a credential.
		var dsnErr *sentry.DsnParseError
		if errors.As(err, &dsnErr) {
			return nil, errors.New("telemetry: sentry: not a valid DSN (value not shown)")
		}
		return nil, fmt.Errorf("telemetry: sentry: %w", err)
	}
	return func(d time.Duration) { sentry.Flush(d) }, nil
}

// NewLogger returns a JSON slog logger writing to w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
