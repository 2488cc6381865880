package ssm_test

import (
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/secrets/ssm"
)

// BenchmarkGet measures a read through the SDK against the loopback
// simulator, with and without the in-process cache.
func BenchmarkGet(b *testing.B) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"uncached", -1}, {"cached", time.Minute}} {
		b.Run(tc.name, func(b *testing.B) {
			_, srv := newSim(b)
			s := newStore(b, srv, ssm.Config{CacheTTL: tc.ttl})
			p := "/spotlight/bench/providers/zoom"
			if _, err := s.Put(b.Context(), p, []byte("secret"), 0); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Get(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
