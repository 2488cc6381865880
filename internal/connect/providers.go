package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/spotlight/gateway/integrations/jira"
	"github.com/spotlight/gateway/integrations/zoom"
	"github.com/spotlight/gateway/internal/secrets"
)

// providerFields lists, per provider, the credential fields admins may set
// and the ones that must all be set for the provider to be usable.
var providerFields = map[string]struct{ allowed, required []string }{
	"zoom":   {[]string{"account_id", "client_id", "client_secret", "webhook_secret", "webhook_secret_next"}, []string{"account_id", "client_id", "client_secret"}},
	"jira":   {[]string{"site_url", "email", "api_token", "webhook_secret"}, []string{"email", "api_token"}},
	"google": {[]string{"client_id", "client_secret"}, []string{"client_secret"}},
	"sentry": {[]string{"dsn"}, []string{"dsn"}},
}

// ProviderFields returns the field names a provider accepts; ok is false
// for an unknown provider.
func ProviderFields(provider string) (allowed []string, ok bool) {
	f, ok := providerFields[provider]
	return slices.Clone(f.allowed), ok
}

// FieldsError lists credential fields the provider does not know, whose
// value is malformed, or that it requires and the set lacks. Its message
// names fields, never values.
type FieldsError struct {
	Provider string
	// Unknown are fields the provider does not accept.
	Unknown []string
	// Invalid are known fields with an unusable value.
	Invalid []string
	// Missing are required fields the set lacks.
	Missing []string
}

// Error names the fields, never their values.
func (e *FieldsError) Error() string {
	return fmt.Sprintf("connect: %s credentials: unknown fields %v, invalid fields %v, missing fields %v", e.Provider, e.Unknown, e.Invalid, e.Missing)
}

// ProviderStatus says which credential fields are stored, never their values.
type ProviderStatus struct {
	Provider string
	// Set reports whether every required field is stored.
	Set       bool
	Fields    []string
	UpdatedAt *time.Time
}

// PutProviderCredentials stores a provider's credentials, replacing the
// previous set. The set must be whole: unknown or empty fields, and a
// required field it lacks, give a *FieldsError and store nothing (a set of
// only {"webhook_secret"} would otherwise replace the working account).
func (s *Service) PutProviderCredentials(ctx context.Context, provider string, fields map[string]string) error {
	spec, ok := providerFields[provider]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	fe := &FieldsError{Provider: provider}
	for k, v := range fields {
		switch {
		case !slices.Contains(spec.allowed, k):
			fe.Unknown = append(fe.Unknown, k)
		case v == "":
			fe.Invalid = append(fe.Invalid, k)
		case k == "site_url" || k == "dsn":
			if u, err := url.Parse(v); err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				fe.Invalid = append(fe.Invalid, k)
			}
		}
	}
	for _, r := range spec.required {
		if _, ok := fields[r]; !ok {
			fe.Missing = append(fe.Missing, r)
		}
	}
	if len(fe.Unknown) > 0 || len(fe.Invalid) > 0 || len(fe.Missing) > 0 {
		sort.Strings(fe.Unknown)
		sort.Strings(fe.Invalid)
		sort.Strings(fe.Missing)
		return fe
	}
	p, err := s.providerPath(provider)
	if err != nil {
		return err
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	if _, err := s.sec.Put(ctx, p, b, secrets.AnyVersion); err != nil {
		return fmt.Errorf("connect: store %s credentials: %w", provider, err)
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	s.log.InfoContext(ctx, "provider credentials stored", "provider", provider, "fields", names)
	return nil
}

// ProviderCredentialsStatus reports which fields of a provider are stored and when.
func (s *Service) ProviderCredentialsStatus(ctx context.Context, provider string) (ProviderStatus, error) {
	spec, ok := providerFields[provider]
	if !ok {
		return ProviderStatus{}, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	st := ProviderStatus{Provider: provider, Fields: []string{}}
	p, err := s.providerPath(provider)
	if err != nil {
		return ProviderStatus{}, err
	}
	sec, err := s.sec.Get(ctx, p)
	if errors.Is(err, secrets.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return ProviderStatus{}, fmt.Errorf("connect: read %s credentials: %w", provider, err)
	}
	var m map[string]string
	if err := json.Unmarshal(sec.Value, &m); err != nil {
		return ProviderStatus{}, fmt.Errorf("connect: stored %s credentials are not a JSON object", provider)
	}
	for k, v := range m {
		if v != "" {
			st.Fields = append(st.Fields, k)
		}
	}
	sort.Strings(st.Fields)
	st.Set = true
	for _, r := range spec.required {
		if m[r] == "" {
			st.Set = false
		}
	}
	t := sec.UpdatedAt.UTC()
	st.UpdatedAt = &t
	return st, nil
}

// ProviderSecret returns the stored credential fields of a provider (for
// example zoom webhook_secret, jira webhook_secret); an error wrapping
// secrets.ErrNotFound when none are stored.
func (s *Service) ProviderSecret(ctx context.Context, provider string) (map[string]string, error) {
	p, err := s.providerPath(provider)
	if err != nil {
		return nil, err
	}
	sec, err := s.sec.Get(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("connect: %s credentials: %w", provider, err)
	}
	var m map[string]string
	if err := json.Unmarshal(sec.Value, &m); err != nil {
		return nil, fmt.Errorf("connect: stored %s credentials are not a JSON object", provider)
	}
	return m, nil
}

// ZoomCredentials returns a zoom.CredentialsFunc reading account_id,
// client_id and client_secret from the secret store on every token fetch,
// so rotated credentials are picked up.
func (s *Service) ZoomCredentials() zoom.CredentialsFunc {
	return func(ctx context.Context) (zoom.Credentials, error) {
		m, err := s.ProviderSecret(ctx, "zoom")
		if err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return zoom.Credentials{}, err
		}
		c := zoom.Credentials{AccountID: m["account_id"], ClientID: m["client_id"], ClientSecret: m["client_secret"]}
		if c.AccountID == "" || c.ClientID == "" || c.ClientSecret == "" {
			return zoom.Credentials{}, fmt.Errorf("%w: zoom account_id, client_id and client_secret (PUT /v1/admin/providers/zoom/credentials)", ErrNotConfigured)
		}
		return c, nil
	}
}

// jiraCredentials reads the Jira service account (email, api_token).
func (s *Service) jiraCredentials(ctx context.Context) (jira.BasicCredentials, error) {
	m, err := s.ProviderSecret(ctx, "jira")
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return jira.BasicCredentials{}, err
	}
	if m["email"] == "" || m["api_token"] == "" {
		return jira.BasicCredentials{}, fmt.Errorf("%w: jira email and api_token (PUT /v1/admin/providers/jira/credentials)", ErrNotConfigured)
	}
	return jira.BasicCredentials{Email: m["email"], APIToken: m["api_token"]}, nil
}

// JiraAuth returns the jira.Auth that reads the service account from the
// secret store on every request.
func (s *Service) JiraAuth() jira.Auth { return jira.BasicAuthFrom(s.jiraCredentials) }
