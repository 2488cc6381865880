// Package ssm is the AWS Systems Manager Parameter Store backend of
// secrets.Store. Secrets are SecureString parameters (encrypted with the
// configured KMS key, or SSM's default key), read with WithDecryption, listed
// with GetParametersByPath (recursive, every page), written with PutParameter
// and removed with DeleteParameter. Calls go through the real
// aws-sdk-go-v2 client, with credentials from the default chain and an
// overridable endpoint (GATEWAY_SSM_ENDPOINT) so tests and the sandbox can
// use the ssmtest simulator.
//
// # Compare-and-set on a service without one
//
// PutParameter has no "only if the current version is N" condition:
// Overwrite=false is an atomic create, Overwrite=true an unconditional
// append of a new version. This package builds a real compare-and-set on top
// of SSM's per-parameter version counter, which SSM increments by exactly
// one per accepted PutParameter:
//
//   - Every value it writes carries a small header naming the SSM version the
//     writer read before writing (its base): "gwsecret1;<base>;<t|b>;<data>".
//   - A version V is valid if its base is V-1, i.e. no other write landed
//     between the read and the write. A valid write is by construction
//     derived from the latest state, so no update is lost.
//   - Put reads the latest version X, compares the caller's expected
//     version with the logical version (the newest valid version at or
//     below X), and writes with base X. If SSM answers with version X+1 the
//     write won; any other number means another writer got in between: the
//     write is void (readers skip it) and Put returns
//     secrets.ErrVersionConflict. A create uses Overwrite=false, which is
//     atomic by itself.
//   - Readers take the latest version if it is valid, else they walk the
//     history (GetParameterHistory) back to the newest valid version. A
//     value without the header (written by another tool) counts as valid.
//
// The guarantee: a Put that reports success was applied on top of exactly
// the version the caller expected, and a Put that reports a conflict has no
// visible effect, even if it was delayed arbitrarily (no timing assumption,
// no lock). The limits: SSM keeps 100 versions per parameter, so the newest
// valid version is lost if 100 void writes pile up after it without a valid
// one in between; writers in this package serialise their own writes to a
// path and secrets.Update backs off, so this takes on the order of 100
// processes racing on one secret at once. A Put whose response is lost
// (network error) is not retried and its outcome is unknown to the caller;
// it is still atomic. Versions restart after a Delete (see secrets.Store).
// Values in SSM carry the header, so other tools reading them see it; a
// value SSM would refuse as it is (one with "{{") is kept in base64.
//
// Throttling (ThrottlingException and friends) is retried with exponential
// backoff and full jitter through an injectable sleep; reads are also
// retried after server faults and transport errors. A short in-process
// cache (Config.CacheTTL) serves repeated Gets, except those whose context
// is marked by secrets.Fresh, and is invalidated by every write through
// this Store (success or conflict). Values are never logged.
//
// IAM: ssm:GetParameter, ssm:GetParameterHistory, ssm:GetParametersByPath,
// ssm:PutParameter and ssm:DeleteParameter on the parameter hierarchy, and
// kms:Encrypt/kms:Decrypt on Config.KMSKeyID (or the default SSM key).
package ssm

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/spotlight/gateway/internal/secrets"
)

// Tier is an SSM parameter tier.
type Tier string

// Parameter tiers. Standard holds values up to 4 KB, Advanced up to 8 KB.
const (
	TierStandard           Tier = "Standard"
	TierAdvanced           Tier = "Advanced"
	TierIntelligentTiering Tier = "Intelligent-Tiering"
)

// Value size limits per tier, in bytes of the stored (header-framed) value.
const (
	StandardMaxValue = 4096
	AdvancedMaxValue = 8192
)

// ErrThrottled is wrapped in the error returned when SSM still throttles
// after Config.MaxAttempts attempts.
var ErrThrottled = errors.New("ssm: throttled")

// Config configures the SSM backend. Zero values take the documented defaults.
type Config struct {
	// Region overrides the region of the default chain (AWS_REGION etc.).
	Region string
	// Endpoint overrides the SSM endpoint URL (GATEWAY_SSM_ENDPOINT), e.g.
	// the ssmtest simulator. Empty uses the normal AWS endpoint resolution.
	Endpoint string
	// KMSKeyID encrypts SecureStrings; empty uses the account's default
	// SSM key (alias/aws/ssm).
	KMSKeyID string
	// Tier for new versions: Standard (default), Advanced or
	// Intelligent-Tiering. Values over 4 KB need Advanced or
	// Intelligent-Tiering; on Standard they fail with secrets.ErrValueTooLarge.
	Tier Tier
	// CacheTTL is how long Get may serve a value from memory (never to a
	// context marked by secrets.Fresh). Default 5s; negative disables the
	// cache.
	CacheTTL time.Duration
	// Timeout bounds each attempt of an SSM call. Default 10s.
	Timeout time.Duration
	// MaxAttempts bounds attempts per SSM call when throttled. Default 6.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff (full jitter). Defaults 100ms, 5s.
	BaseDelay, MaxDelay time.Duration
	// Sleep waits between retries; injectable for tests. Default: a timer
	// that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for the cache. Default time.Now.
	Now func() time.Time
	// HTTPClient for the SDK; nil uses the SDK default (or the one in the
	// aws.Config passed to NewWithAWSConfig).
	HTTPClient *http.Client
	// Logger receives retry notices (operation, path, attempt; never values).
	// Nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	switch c.Tier {
	case "":
		c.Tier = TierStandard
	case TierStandard, TierAdvanced, TierIntelligentTiering:
	default:
		return fmt.Errorf("ssm: config: Tier %q must be Standard, Advanced or Intelligent-Tiering", c.Tier)
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = 5 * time.Second
	}
	if c.Timeout < 0 {
		return fmt.Errorf("ssm: config: Timeout %s must not be negative", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("ssm: config: MaxAttempts %d must not be negative", c.MaxAttempts)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 6
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = 100 * time.Millisecond
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 5 * time.Second
	}
	if c.MaxDelay < c.BaseDelay {
		return fmt.Errorf("ssm: config: MaxDelay %s is below BaseDelay %s", c.MaxDelay, c.BaseDelay)
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("ssm: config: Endpoint %q must be an http:// or https:// URL", c.Endpoint)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Store is the SSM-backed secrets.Store.
type Store struct {
	client *awsssm.Client
	cfg    Config

	cacheMu sync.Mutex
	cache   map[string]cached
	gen     uint64 // bumped by every write, so a read that raced one is not cached

	locksMu sync.Mutex
	locks   map[string]*pathLock
}

type cached struct {
	s       secrets.Secret
	expires time.Time
}

type pathLock struct {
	ch   chan struct{} // holds one token while a write is in progress
	refs int
}

var _ secrets.Store = (*Store)(nil)

// New builds a Store with AWS credentials and region from the default chain
// (environment, shared config, SSO, web identity, container and instance
// roles). Config.Region and Config.Endpoint override what the chain finds.
func New(ctx context.Context, cfg Config) (*Store, error) {
	// The SDK's own notices (credential fallbacks, say) go to the gateway's
	// JSON log, not as plain text to stderr. Its client log mode is off, so
	// it logs no requests or responses.
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger(logger))}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("ssm: load AWS config: %w", err)
	}
	return NewWithAWSConfig(awsCfg, cfg)
}

// sdkLogger passes the AWS SDK's log lines to logger: warnings at warn,
// anything else at debug.
func sdkLogger(logger *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		level := slog.LevelDebug
		if c == logging.Warn {
			level = slog.LevelWarn
		}
		logger.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
	})
}

// NewWithAWSConfig builds a Store from an explicit aws.Config (tests pass
// static credentials for the simulator).
func NewWithAWSConfig(awsCfg aws.Config, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		return nil, errors.New("ssm: config: no AWS region (set AWS_REGION or Config.Region)")
	}
	client := awsssm.NewFromConfig(awsCfg, func(o *awsssm.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		// Retries are done here, with an injectable sleep and knowledge of
		// which calls are safe to repeat.
		o.Retryer = aws.NopRetryer{}
	})
	return &Store{client: client, cfg: cfg, cache: map[string]cached{}, locks: map[string]*pathLock{}}, nil
}

// Get implements secrets.Store.
func (s *Store) Get(ctx context.Context, path string) (secrets.Secret, error) {
	if err := secrets.ValidPath(path); err != nil {
		return secrets.Secret{}, err
	}
	sec, gen, ok := s.cached(path)
	if ok && !secrets.IsFresh(ctx) {
		return sec, nil
	}
	st, err := s.read(ctx, path)
	if err != nil {
		return secrets.Secret{}, fmt.Errorf("ssm: get %s: %w", path, err)
	}
	if !st.exists {
		return secrets.Secret{}, fmt.Errorf("ssm: get %s: %w", path, secrets.ErrNotFound)
	}
	s.remember(st.secret, gen)
	return cloneSecret(st.secret), nil
}

// Put implements secrets.Store.
func (s *Store) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	if err := secrets.ValidPath(path); err != nil {
		return 0, err
	}
	if expectedVersion < secrets.AnyVersion {
		return 0, fmt.Errorf("ssm: put %s: expected version %d is invalid", path, expectedVersion)
	}
	unlock, err := s.lock(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("ssm: put %s: %w", path, err)
	}
	defer unlock()
	defer s.forget(path)
	// An unconditional Put simply repeats the conditional one until it wins.
	for attempt := 0; ; attempt++ {
		v, err := s.putOnce(ctx, path, value, expectedVersion)
		if err == nil {
			return v, nil
		}
		if expectedVersion != secrets.AnyVersion || !errors.Is(err, secrets.ErrVersionConflict) || attempt >= secrets.MaxUpdateAttempts {
			return 0, fmt.Errorf("ssm: put %s: %w", path, err)
		}
	}
}

func (s *Store) putOnce(ctx context.Context, path string, value []byte, expected int64) (int64, error) {
	st, err := s.read(ctx, path)
	if err != nil {
		return 0, err
	}
	logical := int64(0)
	if st.exists {
		logical = st.secret.Version
	}
	if expected != secrets.AnyVersion && expected != logical {
		return 0, fmt.Errorf("%w: expected version %d, current %d", secrets.ErrVersionConflict, expected, logical)
	}
	framed := frame(st.latest, value)
	if limit := s.limit(); len(framed) > limit {
		return 0, fmt.Errorf("%w: %d bytes stored (value %d + header) exceed the %d-byte limit of the %s tier (use Advanced for up to 8 KB)",
			secrets.ErrValueTooLarge, len(framed), len(value), limit, s.cfg.Tier)
	}
	in := &awsssm.PutParameterInput{
		Name:      aws.String(path),
		Value:     aws.String(framed),
		Type:      types.ParameterTypeSecureString,
		Overwrite: aws.Bool(st.latest > 0),
		Tier:      types.ParameterTier(s.cfg.Tier),
	}
	if s.cfg.KMSKeyID != "" {
		in.KeyId = aws.String(s.cfg.KMSKeyID)
	}
	var out *awsssm.PutParameterOutput
	err = s.call(ctx, "PutParameter", path, false, func(ctx context.Context) error {
		var err error
		out, err = s.client.PutParameter(ctx, in)
		return err
	})
	switch {
	case isCode(err, "ParameterAlreadyExists"):
		return 0, fmt.Errorf("%w: created concurrently", secrets.ErrVersionConflict)
	case isCode(err, "ValidationException") && strings.Contains(errMessage(err), "maximum parameter value"):
		return 0, fmt.Errorf("%w: %w", secrets.ErrValueTooLarge, err)
	case err != nil:
		return 0, err
	}
	if out.Version != st.latest+1 {
		// Another write landed between our read and our write; ours is
		// void (its base is not its predecessor) and readers skip it.
		return 0, fmt.Errorf("%w: concurrent write (read version %d, wrote %d)", secrets.ErrVersionConflict, st.latest, out.Version)
	}
	return out.Version, nil
}

func (s *Store) limit() int {
	if s.cfg.Tier == TierStandard {
		return StandardMaxValue
	}
	return AdvancedMaxValue
}

// Delete implements secrets.Store.
func (s *Store) Delete(ctx context.Context, path string) error {
	if err := secrets.ValidPath(path); err != nil {
		return err
	}
	defer s.forget(path)
	err := s.call(ctx, "DeleteParameter", path, false, func(ctx context.Context) error {
		_, err := s.client.DeleteParameter(ctx, &awsssm.DeleteParameterInput{Name: aws.String(path)})
		return err
	})
	if isCode(err, "ParameterNotFound") {
		return fmt.Errorf("ssm: delete %s: %w", path, secrets.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("ssm: delete %s: %w", path, err)
	}
	return nil
}

// List implements secrets.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]secrets.Secret, error) {
	p, err := secrets.ListPrefix(prefix)
	if err != nil {
		return nil, err
	}
	var out []secrets.Secret
	var token *string
	for {
		in := &awsssm.GetParametersByPathInput{
			Path:           aws.String(p),
			Recursive:      aws.Bool(true),
			WithDecryption: aws.Bool(true), // the header that decides validity is inside the value
			MaxResults:     aws.Int32(10),
			NextToken:      token,
		}
		var page *awsssm.GetParametersByPathOutput
		err := s.call(ctx, "GetParametersByPath", p, true, func(ctx context.Context) error {
			var err error
			page, err = s.client.GetParametersByPath(ctx, in)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("ssm: list %s: %w", prefix, err)
		}
		for _, prm := range page.Parameters {
			name := aws.ToString(prm.Name)
			st, err := s.resolve(ctx, name, prm.Version, aws.ToString(prm.Value), aws.ToTime(prm.LastModifiedDate))
			if err != nil {
				return nil, fmt.Errorf("ssm: list %s: %w", prefix, err)
			}
			if st.exists {
				st.secret.Value = nil
				out = append(out, st.secret)
			}
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		token = page.NextToken
	}
	slices.SortFunc(out, func(a, b secrets.Secret) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// state is what a read found: the latest SSM version (0 if the parameter
// does not exist) and the newest valid version, if any.
type state struct {
	latest int64
	exists bool
	secret secrets.Secret
}

func (s *Store) read(ctx context.Context, path string) (state, error) {
	var out *awsssm.GetParameterOutput
	err := s.call(ctx, "GetParameter", path, true, func(ctx context.Context) error {
		var err error
		out, err = s.client.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(path), WithDecryption: aws.Bool(true)})
		return err
	})
	if isCode(err, "ParameterNotFound") {
		return state{}, nil
	}
	if err != nil {
		return state{}, err
	}
	p := out.Parameter
	return s.resolve(ctx, path, p.Version, aws.ToString(p.Value), aws.ToTime(p.LastModifiedDate))
}

// resolve turns the latest version of a parameter into a state, walking the
// history when the latest version is a void write.
func (s *Store) resolve(ctx context.Context, path string, latest int64, raw string, mod time.Time) (state, error) {
	st := state{latest: latest}
	if value, ok, err := unframe(raw, latest); err != nil {
		return st, err
	} else if ok {
		st.exists = true
		st.secret = secrets.Secret{Path: path, Value: value, Version: latest, UpdatedAt: mod}
		return st, nil
	}
	hist, err := s.history(ctx, path)
	if err != nil {
		return st, err
	}
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		if h.Version > latest {
			continue // written after our read; not part of this snapshot
		}
		value, ok, err := unframe(aws.ToString(h.Value), h.Version)
		if err != nil {
			return st, err
		}
		if ok {
			st.exists = true
			st.secret = secrets.Secret{Path: path, Value: value, Version: h.Version, UpdatedAt: aws.ToTime(h.LastModifiedDate)}
			return st, nil
		}
	}
	return st, nil // only void writes: logically absent
}

func (s *Store) history(ctx context.Context, path string) ([]types.ParameterHistory, error) {
	var all []types.ParameterHistory
	var token *string
	for {
		var page *awsssm.GetParameterHistoryOutput
		err := s.call(ctx, "GetParameterHistory", path, true, func(ctx context.Context) error {
			var err error
			page, err = s.client.GetParameterHistory(ctx, &awsssm.GetParameterHistoryInput{
				Name: aws.String(path), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(50), NextToken: token,
			})
			return err
		})
		if isCode(err, "ParameterNotFound") {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, page.Parameters...)
		if aws.ToString(page.NextToken) == "" {
			break
		}
		token = page.NextToken
	}
	slices.SortFunc(all, func(a, b types.ParameterHistory) int { return int(a.Version - b.Version) })
	return all, nil
}

const magic = "gwsecret1;"

// frame encodes value with the base version the writer read. A value that
// is not UTF-8, is empty, or holds "{{" is stored in base64: SSM refuses a
// value with text wrapped in double braces ("Parameter value can't nest
// another parameter"), which a password or token may well contain.
func frame(base int64, value []byte) string {
	enc, data := "t", string(value)
	if !utf8.Valid(value) || len(value) == 0 || strings.Contains(data, "{{") {
		enc, data = "b", base64.StdEncoding.EncodeToString(value)
	}
	return magic + strconv.FormatInt(base, 10) + ";" + enc + ";" + data
}

// unframe decodes a stored value of SSM version v. ok is false for a void
// write (one whose base is not v-1). Values without the header are taken as
// written by another tool: valid, verbatim.
func unframe(raw string, v int64) (value []byte, ok bool, err error) {
	rest, framed := strings.CutPrefix(raw, magic)
	if !framed {
		return []byte(raw), true, nil
	}
	baseStr, rest, ok1 := strings.Cut(rest, ";")
	enc, data, ok2 := strings.Cut(rest, ";")
	base, err := strconv.ParseInt(baseStr, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return nil, false, fmt.Errorf("version %d: malformed header", v)
	}
	if base != v-1 {
		return nil, false, nil
	}
	switch enc {
	case "t":
		return []byte(data), true, nil
	case "b":
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, false, fmt.Errorf("version %d: malformed base64 value", v)
		}
		return b, true, nil
	}
	return nil, false, fmt.Errorf("version %d: unknown encoding %q", v, enc)
}

// call runs fn, retrying throttling (any call) and server faults or
// transport errors (idempotent calls only) with backoff.
func (s *Store) call(ctx context.Context, op, path string, idempotent bool, fn func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err = fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		throttled := isThrottle(err)
		if !throttled && !(idempotent && isTransient(err)) || ctx.Err() != nil {
			return err
		}
		if attempt >= s.cfg.MaxAttempts {
			if throttled {
				return fmt.Errorf("%w after %d attempts: %w", ErrThrottled, attempt, err)
			}
			return err
		}
		d := min(s.cfg.MaxDelay, s.cfg.BaseDelay<<(attempt-1))
		d = rand.N(d) + 1
		s.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "ssm: retrying",
			slog.String("operation", op), slog.String("path", path), slog.Int("attempt", attempt),
			slog.Bool("throttled", throttled), slog.Duration("delay", d))
		if serr := s.cfg.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while retrying: %w)", serr, err)
		}
	}
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return err != nil && errors.As(err, &ae) && ae.ErrorCode() == code
}

func errMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
		"TooManyRequestsException", "TooManyUpdates", "RequestThrottled", "RequestThrottledException":
		return true
	}
	return false
}

// isTransient reports a server fault or a failure without a response
// (including an attempt's own timeout; call stops when the caller's ctx ends).
func isTransient(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorFault() == smithy.FaultServer || ae.ErrorCode() == "InternalServerError"
	}
	// No response at all: a transport failure.
	return true
}

// lock serialises this Store's writes to one path, so its own goroutines do
// not produce void writes against each other. Waiting honours ctx.
func (s *Store) lock(ctx context.Context, path string) (func(), error) {
	s.locksMu.Lock()
	l, ok := s.locks[path]
	if !ok {
		l = &pathLock{ch: make(chan struct{}, 1)}
		s.locks[path] = l
	}
	l.refs++
	s.locksMu.Unlock()
	release := func() {
		s.locksMu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(s.locks, path)
		}
		s.locksMu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// cached returns a fresh cache entry, or the write generation to pass to
// remember after reading from SSM.
func (s *Store) cached(path string) (secrets.Secret, uint64, bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cfg.CacheTTL < 0 {
		return secrets.Secret{}, s.gen, false
	}
	c, ok := s.cache[path]
	if !ok || !s.cfg.Now().Before(c.expires) {
		delete(s.cache, path)
		return secrets.Secret{}, s.gen, false
	}
	return cloneSecret(c.s), s.gen, true
}

// remember caches sec unless a write went through this Store since gen.
func (s *Store) remember(sec secrets.Secret, gen uint64) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cfg.CacheTTL < 0 || gen != s.gen {
		return
	}
	s.cache[sec.Path] = cached{s: cloneSecret(sec), expires: s.cfg.Now().Add(s.cfg.CacheTTL)}
}

func (s *Store) forget(path string) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.gen++
	delete(s.cache, path)
}

func cloneSecret(s secrets.Secret) secrets.Secret {
	if s.Value != nil {
		s.Value = append([]byte(nil), s.Value...)
	}
	return s
}
