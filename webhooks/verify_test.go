package webhooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotlight/gateway/integrations/jira/jiratest"
	"github.com/spotlight/gateway/integrations/zoom/zoomtest"
	"github.com/spotlight/gateway/webhooks"
)

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// The vectors in testdata were computed with python3 hmac/hashlib, not with this code.
func TestZoomSignatureVectors(t *testing.T) {
	t.Parallel()
	var vecs []struct{ Secret, Timestamp, Body, Signature string }
	readJSON(t, "zoom_signatures.json", &vecs)
	if len(vecs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vecs {
		sec, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		now := time.Unix(sec, 0)
		if idx, err := webhooks.VerifyZoom([]string{v.Secret}, v.Timestamp, []byte(v.Body), v.Signature, now, 0); err != nil || idx != 0 {
			t.Errorf("vector %q: VerifyZoom = %d, %v; want 0, nil", v.Body, idx, err)
		}
		if _, err := webhooks.VerifyZoom([]string{v.Secret + "x"}, v.Timestamp, []byte(v.Body), v.Signature, now, 0); !errors.Is(err, webhooks.ErrSignature) {
			t.Errorf("vector %q with a wrong secret: err = %v, want ErrSignature", v.Body, err)
		}
		// The simulator signs the same way.
		if got := zoomtest.Sign(v.Secret, v.Timestamp, []byte(v.Body)); got != v.Signature {
			t.Errorf("zoomtest.Sign = %s, want %s", got, v.Signature)
		}
	}
}

func TestZoomURLValidationVector(t *testing.T) {
	t.Parallel()
	var v struct{ Secret, PlainToken, EncryptedToken string }
	readJSON(t, "zoom_url_validation.json", &v)
	if got := webhooks.ZoomEncryptedToken(v.Secret, v.PlainToken); got != v.EncryptedToken {
		t.Fatalf("ZoomEncryptedToken = %s, want %s (python3 hmac)", got, v.EncryptedToken)
	}
}

func TestVerifyZoom(t *testing.T) {
	t.Parallel()
	const ts = "1764069600"
	now := time.Unix(1764069600, 0)
	body := []byte(`{"event":"meeting.started"}`)
	good := zoomtest.Sign("current", ts, body)
	tests := []struct {
		name    string
		secrets []string
		ts, sig string
		body    []byte
		now     time.Time
		want    int
		err     error
	}{
		{"valid", []string{"current"}, ts, good, body, now, 0, nil},
		{"rotation: previous secret", []string{"next", "current"}, ts, good, body, now, 1, nil},
		{"empty secret skipped", []string{"", "current"}, ts, good, body, now, 1, nil},
		{"edge of window (old)", []string{"current"}, ts, good, body, now.Add(5 * time.Minute), 0, nil},
		{"edge of window (future)", []string{"current"}, ts, good, body, now.Add(-5 * time.Minute), 0, nil},
		{"stale", []string{"current"}, ts, good, body, now.Add(5*time.Minute + time.Second), -1, webhooks.ErrStaleTimestamp},
		{"future", []string{"current"}, ts, good, body, now.Add(-5*time.Minute - time.Second), -1, webhooks.ErrFutureTimestamp},
		{"wrong secret", []string{"other"}, ts, good, body, now, -1, webhooks.ErrSignature},
		{"forged signature", []string{"current"}, ts, "v0=" + string(make([]byte, 0)) + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", body, now, -1, webhooks.ErrSignature},
		{"body changed", []string{"current"}, ts, good, []byte(`{"event":"meeting.ended"}`), now, -1, webhooks.ErrSignature},
		{"truncated body", []string{"current"}, ts, good, body[:len(body)-3], now, -1, webhooks.ErrSignature},
		{"timestamp changed", []string{"current"}, "1764069601", good, body, now, -1, webhooks.ErrSignature},
		{"missing signature", []string{"current"}, ts, "", body, now, -1, webhooks.ErrMissingHeader},
		{"missing timestamp", []string{"current"}, "", good, body, now, -1, webhooks.ErrMissingHeader},
		{"no v0 prefix", []string{"current"}, ts, good[3:], body, now, -1, webhooks.ErrMalformedSignature},
		{"not hex", []string{"current"}, ts, "v0=zz", body, now, -1, webhooks.ErrMalformedSignature},
		{"short digest", []string{"current"}, ts, good[:20], body, now, -1, webhooks.ErrMalformedSignature},
		{"no secret configured", nil, ts, good, body, now, -1, webhooks.ErrNoSecret},
		{"signed non-numeric timestamp", []string{"current"}, "soon", zoomtest.Sign("current", "soon", body), body, now, -1, webhooks.ErrMalformedTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhooks.VerifyZoom(tt.secrets, tt.ts, tt.body, tt.sig, tt.now, 0)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("VerifyZoom = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestVerifyZoomConcurrent checks signatures under several secrets at once:
// VerifyZoom reuses keyed HMAC states per secret, and a state must never
// carry one delivery's bytes or another secret's key into the next MAC.
func TestVerifyZoomConcurrent(t *testing.T) {
	t.Parallel()
	const ts = "1764069600"
	now := time.Unix(1764069600, 0)
	secrets := []string{"first", "second", "third"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				body := fmt.Appendf(nil, `{"event":"meeting.started","n":%d,"g":%d}`, i, g)
				want := (i + g) % len(secrets)
				sig := zoomtest.Sign(secrets[want], ts, body)
				if got, err := webhooks.VerifyZoom(secrets, ts, body, sig, now, 0); err != nil || got != want {
					t.Errorf("goroutine %d, delivery %d: VerifyZoom = %d, %v; want %d", g, i, got, err, want)
					return
				}
				others := []string{secrets[(want+1)%len(secrets)], secrets[(want+2)%len(secrets)]}
				if _, err := webhooks.VerifyZoom(others, ts, body, sig, now, 0); !errors.Is(err, webhooks.ErrSignature) {
					t.Errorf("goroutine %d, delivery %d: other secrets: %v, want ErrSignature", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkVerifyZoom verifies a ~1 KiB delivery signed with the second of
// two secrets (a rotation).
func BenchmarkVerifyZoom(b *testing.B) {
	const ts = "1764069600"
	now := time.Unix(1764069600, 0)
	body := []byte(`{"event":"meeting.started","payload":{"object":{"topic":"` + strings.Repeat("x", 1000) + `"}}}`)
	sig := zoomtest.Sign("current", ts, body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := webhooks.VerifyZoom([]string{"next", "current"}, ts, body, sig, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyJira(t *testing.T) {
	t.Parallel()
	var vecs []struct{ Secret, Body, Signature string }
	readJSON(t, "jira_signatures.json", &vecs)
	for _, v := range vecs {
		if err := webhooks.VerifyJira(v.Secret, []byte(v.Body), v.Signature); err != nil {
			t.Errorf("vector %q: %v", v.Body, err)
		}
		if got := jiratest.Sign(v.Secret, []byte(v.Body)); got != v.Signature {
			t.Errorf("jiratest.Sign = %s, want %s", got, v.Signature)
		}
	}
	body := []byte(`{"webhookEvent":"jira:issue_updated"}`)
	good := jiratest.Sign("s", body)
	tests := []struct {
		name, secret, header string
		body                 []byte
		err                  error
	}{
		{"valid", "s", good, body, nil},
		{"wrong secret", "t", good, body, webhooks.ErrSignature},
		{"forged", "s", "sha256=" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", body, webhooks.ErrSignature},
		{"body truncated", "s", good, body[:10], webhooks.ErrSignature},
		{"missing", "s", "", body, webhooks.ErrMissingHeader},
		{"sha1", "s", "sha1=abcd", body, webhooks.ErrMalformedSignature},
		{"not hex", "s", "sha256=xyz", body, webhooks.ErrMalformedSignature},
		{"no secret", "", good, body, webhooks.ErrNoSecret},
	}
	for _, tt := range tests {
		if err := webhooks.VerifyJira(tt.secret, tt.body, tt.header); !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: VerifyJira = %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		webhooks.ErrSignature: "bad_signature", webhooks.ErrStaleTimestamp: "stale_timestamp",
		webhooks.ErrFutureTimestamp: "future_timestamp", webhooks.ErrMissingHeader: "missing_header",
		webhooks.ErrUnknownChannel: "unknown_channel", errors.New("x"): "other",
	} {
		if got := webhooks.Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestDecodeZoom(t *testing.T) {
	t.Parallel()
	ev, err := webhooks.DecodeZoom([]byte(`{"event":"meeting.updated","event_ts":1764069600123,"payload":{"account_id":"acc","operator":"a@b.c",
		"object":{"id":85746065,"uuid":"u==","start_time":"2026-12-08T10:00:00Z","duration":45,"timezone":"Europe/Berlin"},
		"old_object":{"id":85746065,"start_time":"2026-12-08T09:00:00Z"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event != "meeting.updated" || ev.Meeting.ID != "85746065" || ev.Meeting.Duration != 45 ||
		!ev.Meeting.StartTime.Equal(time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)) || ev.Old == nil ||
		!ev.Old.StartTime.Equal(time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)) || ev.Operator != "a@b.c" {
		t.Fatalf("decoded %+v", ev)
	}
	ev, err = webhooks.DecodeZoom([]byte(`{"event":"meeting.participant_joined","payload":{"object":{"id":"123",
		"participant":{"user_id":"16778240","user_name":"Ann","email":"ann@example.com","join_time":"2026-12-08T10:01:00Z"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := ev.Participant; ev.Meeting.ID != "123" || p == nil || p.UserID != "16778240" || p.Email != "ann@example.com" ||
		!p.At.Equal(time.Date(2026, 12, 8, 10, 1, 0, 0, time.UTC)) {
		t.Fatalf("decoded %+v %+v", ev, ev.Participant)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `"x"`, `{}`, `{"event":""}`, `{"event":1}`,
		`{"event":"endpoint.url_validation","payload":{}}`,
		`{"event":"meeting.started","payload":{"object":{"id":1.5}}}`,
		`{"event":"meeting.started","payload":{"object":{"id":"1","start_time":"yesterday"}}}`,
		`{"event":"meeting.started","payload":{"object":{"duration":-1}}}`,
	} {
		if _, err := webhooks.DecodeZoom([]byte(bad)); !errors.Is(err, webhooks.ErrUndecodable) {
			t.Errorf("DecodeZoom(%q) err = %v, want ErrUndecodable", bad, err)
		}
	}
}

func TestDecodeJira(t *testing.T) {
	t.Parallel()
	ev, err := webhooks.DecodeJira([]byte(`{"webhookEvent":"jira:issue_updated","timestamp":1,"user":{"accountId":"acc-1"},
		"issue":{"id":"10001","key":"SPOT-1","fields":{"summary":"s","status":{"name":"Cancelled"}}},
		"changelog":{"items":[{"field":"status","fromString":"To Do","toString":"Cancelled"}]}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event != "jira:issue_updated" || ev.AccountID != "acc-1" || ev.Issue == nil || ev.Issue.Key != "SPOT-1" ||
		len(ev.Changelog) != 1 || ev.Changelog[0].ToString != "Cancelled" {
		t.Fatalf("decoded %+v", ev)
	}
	for _, bad := range []string{``, `{`, `{}`, `{"webhookEvent":5}`} {
		if _, err := webhooks.DecodeJira([]byte(bad), ""); !errors.Is(err, webhooks.ErrUndecodable) {
			t.Errorf("DecodeJira(%q) err = %v, want ErrUndecodable", bad, err)
		}
	}
}
