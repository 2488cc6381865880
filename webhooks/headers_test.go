package webhooks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// headersJSON round-trips through encoding/json for every kind of value.
func TestHeadersJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    map[string]string
		want string // "" = only check the round trip
	}{
		{"empty", map[string]string{}, "{}"},
		{"safe order", map[string]string{"X-Zm-Request-Timestamp": "1700000000", "Content-Type": "application/json"},
			`{"Content-Type":"application/json","X-Zm-Request-Timestamp":"1700000000"}`},
		{"escapes", map[string]string{"User-Agent": "a\"b\\c\x01\x1f\td\u2028é😀"}, ""},
		{"invalid utf-8 falls back", map[string]string{"User-Agent": "bad\xffbyte"}, ""},
		{"unknown key falls back", map[string]string{"X-Other": "v", "Content-Type": "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := headersJSON(tt.h)
			if tt.want != "" && got != tt.want {
				t.Errorf("headersJSON = %s, want %s", got, tt.want)
			}
			var back map[string]string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			want := tt.h
			if tt.name == "invalid utf-8 falls back" {
				want = map[string]string{"User-Agent": "bad\uFFFDbyte"} // as encoding/json stores it
			}
			if !maps.Equal(back, want) {
				t.Errorf("round trip %q, want %q", back, want)
			}
		})
	}
}

// zoomKey zero-pads the event time to 13 digits before the body hash, and
// falls back to the body hash alone outside that range.
func TestZoomKey(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"meeting.started"}`)
	sum := sha256.Sum256(body)
	hash := "sha256:" + hex.EncodeToString(sum[:])
	if got := bodyKey(body); got != hash {
		t.Fatalf("bodyKey = %q, want %q", got, hash)
	}
	tests := []struct {
		ts   int64
		want string
	}{
		{1, "0000000000001/" + hash},
		{1764069600123, "1764069600123/" + hash},
		{9_999_999_999_999, "9999999999999/" + hash},
		{0, hash},
		{-5, hash},
		{10_000_000_000_000, hash},
	}
	for _, tt := range tests {
		if got := zoomKey(tt.ts, body); got != tt.want {
			t.Errorf("zoomKey(%d) = %q, want %q", tt.ts, got, tt.want)
		}
	}
}

// requestHeadersJSON stores exactly what headerSubset then headersJSON
// stored: the same keys in the same order, values cut to 512 bytes (even
// inside a rune), the same escaping, and encoding/json's output when a
// value is not valid UTF-8.
func TestRequestHeadersJSON(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 511) + "é" + "tail" // the cut falls inside é
	tests := []struct {
		name string
		h    http.Header
		want string // "" = only compare with the two-step encoding
	}{
		{"none", http.Header{}, "{}"},
		{"zoom", http.Header{
			"Content-Type": {"application/json; charset=utf-8"}, "User-Agent": {"Zoom Marketplace/1.0a"},
			"X-Zm-Request-Timestamp": {"1764806400"}, "X-Zm-Signature": {"v0=abc"}, "X-Zm-Trackingid": {"v=2.0;clid=aw1;rid=1"},
			"Authorization": {"Bearer secret"}, "Accept-Encoding": {"gzip"},
		}, `{"Content-Type":"application/json; charset=utf-8","User-Agent":"Zoom Marketplace/1.0a","X-Zm-Request-Timestamp":"1764806400","X-Zm-Trackingid":"v=2.0;clid=aw1;rid=1"}`},
		{"every safe header", func() http.Header {
			h := http.Header{}
			for i, k := range safeHeaders {
				h.Set(k, fmt.Sprintf("v%d", i))
			}
			return h
		}(), ""},
		{"first value only", http.Header{"User-Agent": {"one", "two"}}, `{"User-Agent":"one"}`},
		{"empty value skipped", http.Header{"User-Agent": {""}, "Content-Type": {"x"}}, `{"Content-Type":"x"}`},
		{"non-canonical key ignored", http.Header{"user-agent": {"x"}}, "{}"},
		{"escapes", http.Header{"User-Agent": {"a\"b\\c\x01\x1f\td\u2028é😀<>&"}}, ""},
		{"cut to 512 bytes", http.Header{"User-Agent": {strings.Repeat("x", 600)}}, ""},
		{"cut inside a rune", http.Header{"User-Agent": {long}, "Content-Type": {"a"}}, ""},
		{"invalid utf-8", http.Header{"User-Agent": {"bad\xffbyte<&>"}, "Content-Type": {"a"}, "X-Request-Id": {"r"}}, ""},
		{"longer than the stack buffer", func() http.Header {
			h := http.Header{}
			for _, k := range safeHeaders {
				h.Set(k, strings.Repeat("\x01", 300))
			}
			return h
		}(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, old := requestHeadersJSON(tt.h), headersJSON(headerSubset(tt.h))
			if got != old {
				t.Errorf("requestHeadersJSON = %s\nheadersJSON(headerSubset) = %s", got, old)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("requestHeadersJSON = %s, want %s", got, tt.want)
			}
		})
	}
}

// Random headers (values of random bytes, valid UTF-8 or not) are stored
// as the two-step encoding stored them.
func TestRequestHeadersJSONRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "\x00", "\x1f", "\x7f", "<", "&", "é", "\u2028", "😀", "\xff", "\xe2\x82"}
	valid := 0
	for i := range 2000 {
		// Half of the cases only valid UTF-8 (but for the 512-byte cut).
		letters := alphabet[:len(alphabet)-2*(i%2)]
		h := http.Header{}
		for _, k := range safeHeaders {
			if r.IntN(3) == 0 {
				continue
			}
			var v strings.Builder
			n := r.IntN(100)
			if r.IntN(10) == 0 {
				n = 400 + r.IntN(300) // around the 512-byte cut
			}
			for range n {
				v.WriteString(letters[r.IntN(len(letters))])
			}
			h[k] = []string{v.String()}
		}
		if got, want := requestHeadersJSON(h), headersJSON(headerSubset(h)); got != want {
			t.Fatalf("case %d: requestHeadersJSON = %q\nwant %q", i, got, want)
		}
		if json.Valid([]byte(headersJSON(headerSubset(h)))) && !strings.Contains(headersJSON(headerSubset(h)), `\u003c`) {
			valid++ // encoded without encoding/json (which escapes <)
		}
	}
	if valid < 500 {
		t.Fatalf("only %d cases took the one-pass encoding", valid)
	}
}
