package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spotlight/gateway/integrations/jira"
)

// Verification errors. Every verifier returns one of them (possibly
// wrapped); Reason turns them into the metric label.
var (
	// ErrMissingHeader: a required signature, timestamp or channel header is absent.
	ErrMissingHeader = errors.New("webhooks: missing header")
	// ErrMalformedSignature: the signature header is not in the provider's format.
	ErrMalformedSignature = errors.New("webhooks: malformed signature")
	// ErrSignature: the signature does not match the body under any configured secret.
	ErrSignature = errors.New("webhooks: signature mismatch")
	// ErrStaleTimestamp: the signed timestamp is older than the allowed window.
	ErrStaleTimestamp = errors.New("webhooks: stale timestamp")
	// ErrFutureTimestamp: the signed timestamp is further ahead than the allowed window.
	ErrFutureTimestamp = errors.New("webhooks: timestamp in the future")
	// ErrMalformedTimestamp: the timestamp header is not Unix seconds.
	ErrMalformedTimestamp = errors.New("webhooks: malformed timestamp")
	// ErrNoSecret: no secret is configured for the provider, so nothing can be verified.
	ErrNoSecret = errors.New("webhooks: no secret configured")
	// ErrUnknownChannel: a Google push names a channel the gateway does not hold.
	ErrUnknownChannel = errors.New("webhooks: unknown channel")
	// ErrOrphanedChannel: a Google push, with the right token, came on a
	// channel the gateway opened but whose opening never completed (the
	// replica that called events.watch stopped); Channels stopped it.
	ErrOrphanedChannel = errors.New("webhooks: orphaned channel stopped")
)

// Reason returns the metric label of a verification error ("" for nil).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMissingHeader):
		return "missing_header"
	case errors.Is(err, ErrMalformedSignature):
		return "malformed_signature"
	case errors.Is(err, ErrSignature):
		return "bad_signature"
	case errors.Is(err, ErrStaleTimestamp):
		return "stale_timestamp"
	case errors.Is(err, ErrFutureTimestamp):
		return "future_timestamp"
	case errors.Is(err, ErrMalformedTimestamp):
		return "malformed_timestamp"
	case errors.Is(err, ErrNoSecret):
		return "no_secret"
	case errors.Is(err, ErrUnknownChannel):
		return "unknown_channel"
	default:
		return "other"
	}
}

// ZoomWindow is how far x-zm-request-timestamp may be from now, either way.
const ZoomWindow = 5 * time.Minute

// maxSigHeader bounds signature headers before any decoding.
const maxSigHeader = 256

// VerifyZoom checks Zoom's x-zm-signature header (sig) for body sent at ts
// (x-zm-request-timestamp, Unix seconds): sig must be "v0=" followed by
// hex(HMAC-SHA256(secret, "v0:"+ts+":"+body)) for one of secrets (two during
// a rotation), compared in constant time, and ts must be within window of
// now. It returns the index of the secret that matched.
//
// The signature is checked before the timestamp, so an unsigned request
// learns nothing about the clock; every secret is tried even after a match
// so the time taken does not reveal which one matched.
func VerifyZoom(secrets []string, ts string, body []byte, sig string, now time.Time, window time.Duration) (int, error) {
	if sig == "" || ts == "" {
		return -1, fmt.Errorf("%w: x-zm-signature and x-zm-request-timestamp are required", ErrMissingHeader)
	}
	if len(secrets) == 0 {
		return -1, ErrNoSecret
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok || len(sig) > maxSigHeader {
		return -1, ErrMalformedSignature
	}
	var got, want [sha256.Size]byte
	if len(hexSig) != 2*sha256.Size {
		return -1, ErrMalformedSignature
	}
	if _, err := hex.Decode(got[:], []byte(hexSig)); err != nil {
		return -1, ErrMalformedSignature
	}
	match := -1
	for i, secret := range secrets {
		if secret == "" {
			continue
		}
		zoomMACs.sum(want[:0], secret, ts, body)
		if hmac.Equal(got[:], want[:]) && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return -1, ErrSignature
	}
	if len(ts) > 20 {
		return -1, ErrMalformedTimestamp
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return -1, ErrMalformedTimestamp
	}
	if window <= 0 {
		window = ZoomWindow
	}
	d := now.Sub(time.Unix(sec, 0))
	switch {
	case d > window:
		return -1, ErrStaleTimestamp
	case d < -window:
		return -1, ErrFutureTimestamp
	}
	return match, nil
}

// ZoomMAC returns HMAC-SHA256(secret, "v0:"+ts+":"+body), the digest behind
// x-zm-signature.
func ZoomMAC(secret, ts string, body []byte) []byte {
	return zoomMACs.sum(nil, secret, ts, body)
}

// zoomMACs computes Zoom's signatures (ZoomMAC, VerifyZoom).
var zoomMACs macPool

// macPool reuses keyed HMAC-SHA256 states, per secret: Reset brings a used
// one back to its secret's precomputed inner and outer pads, so a delivery's
// MAC neither allocates a new state nor hashes the pads again (measured:
// BenchmarkVerifyZoom). Secrets change rarely (a rotation adds one), so the
// pools are never pruned.
type macPool struct{ pools sync.Map } // secret → *sync.Pool of *macState

// macState is a pooled HMAC state with buffers for what goes through its
// interface methods: a caller's buffer passed to Write or Sum would escape
// to the heap, once per delivery.
type macState struct {
	mac    hash.Hash
	prefix [24]byte
	sum    [sha256.Size]byte
}

// sum appends HMAC-SHA256(secret, "v0:"+ts+":"+body) to dst.
func (p *macPool) sum(dst []byte, secret, ts string, body []byte) []byte {
	v, ok := p.pools.Load(secret)
	if !ok {
		v, _ = p.pools.LoadOrStore(secret, &sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, []byte(secret))} }})
	}
	pool := v.(*sync.Pool)
	m := pool.Get().(*macState)
	m.mac.Reset()
	m.mac.Write(append(append(append(m.prefix[:0], "v0:"...), ts...), ':'))
	m.mac.Write(body)
	dst = append(dst, m.mac.Sum(m.sum[:0])...)
	pool.Put(m)
	return dst
}

// ZoomEncryptedToken answers endpoint.url_validation:
// hex(HMAC-SHA256(secret, plainToken)).
func ZoomEncryptedToken(secret, plainToken string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(plainToken))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyJira checks Jira's X-Hub-Signature header ("sha256=<hex HMAC-SHA256
// of the raw body>") in constant time against secret.
func VerifyJira(secret string, body []byte, header string) error {
	if header == "" {
		return fmt.Errorf("%w: X-Hub-Signature is required", ErrMissingHeader)
	}
	if secret == "" {
		return ErrNoSecret
	}
	if len(header) > maxSigHeader {
		return ErrMalformedSignature
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return ErrMalformedSignature
	}
	if d, err := hex.DecodeString(hexSig); err != nil || len(d) != sha256.Size {
		return ErrMalformedSignature
	}
	if err := jira.VerifyWebhookSignature(secret, body, header); err != nil {
		return ErrSignature
	}
	return nil
}
