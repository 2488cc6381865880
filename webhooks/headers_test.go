package webhooks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
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
