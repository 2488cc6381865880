package webhooks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spotlight/gateway/webhooks"
)

// FuzzVerifyZoom checks that VerifyZoom never panics and accepts exactly
// the signatures an independent HMAC computation produces, with a timestamp
// inside the window.
func FuzzVerifyZoom(f *testing.F) {
	f.Add("s3cret", "1764069600", []byte(`{"event":"meeting.started"}`), "v0=00", int64(0))
	f.Add("s3cret", "1764069600", []byte(`{}`), "v0=d23615604e3fc0593b5b92d95ba8bf452d68f4316dcc5ba4b6a597f5b802b8b0", int64(30))
	f.Add("", "", []byte(nil), "", int64(-400))
	f.Add("k", "-1", []byte("\x00\xff"), "v0=", int64(301))
	f.Fuzz(func(t *testing.T, secret, ts string, body []byte, sig string, skew int64) {
		sec, tsErr := strconv.ParseInt(ts, 10, 64)
		now := time.Unix(1764069600, 0)
		if tsErr == nil {
			now = time.Unix(sec, 0).Add(time.Duration(skew%1000) * time.Second)
		}
		check := func(sig string) {
			idx, err := webhooks.VerifyZoom([]string{secret}, ts, body, sig, now, 0)
			if err != nil {
				if idx != -1 {
					t.Fatalf("error %v with index %d", err, idx)
				}
				return
			}
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte("v0:" + ts + ":"))
			m.Write(body)
			if sig != "v0="+hex.EncodeToString(m.Sum(nil)) && !bytes.EqualFold([]byte(sig), []byte("v0="+hex.EncodeToString(m.Sum(nil)))) {
				t.Fatalf("accepted signature %q that is not the HMAC", sig)
			}
			if tsErr != nil || len(ts) > 20 || now.Sub(time.Unix(sec, 0)).Abs() > webhooks.ZoomWindow {
				t.Fatalf("accepted timestamp %q at %v", ts, now)
			}
		}
		check(sig)
		// The real signature of the input must verify when the clock is inside the window.
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("v0:" + ts + ":"))
		m.Write(body)
		good := "v0=" + hex.EncodeToString(m.Sum(nil))
		idx, err := webhooks.VerifyZoom([]string{secret}, ts, body, good, now, 0)
		switch {
		case secret == "" || ts == "":
			if err == nil {
				t.Fatal("accepted without a secret or timestamp")
			}
		case tsErr != nil || len(ts) > 20:
			if !errors.Is(err, webhooks.ErrMalformedTimestamp) {
				t.Fatalf("non-numeric timestamp %q: err %v", ts, err)
			}
		case (skew%1000)*int64(time.Second) > int64(webhooks.ZoomWindow) || -(skew%1000)*int64(time.Second) > int64(webhooks.ZoomWindow):
			if err == nil {
				t.Fatalf("accepted skew %ds", skew%1000)
			}
		default:
			if err != nil || idx != 0 {
				t.Fatalf("real signature refused: %d %v", idx, err)
			}
		}
	})
}

// FuzzVerifyJira checks that VerifyJira never panics and accepts only the HMAC of the body.
func FuzzVerifyJira(f *testing.F) {
	f.Add("jira-secret", []byte(`{"webhookEvent":"jira:issue_updated"}`), "sha256=00")
	f.Add("x", []byte(""), "sha256=")
	f.Add("", []byte("{}"), "")
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string) {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		want := hex.EncodeToString(m.Sum(nil))
		if err := webhooks.VerifyJira(secret, body, header); err == nil {
			hexSig, _ := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
			got, _ := hex.DecodeString(hexSig)
			if secret == "" || !bytes.Equal(got, m.Sum(nil)) {
				t.Fatalf("accepted %q", header)
			}
		}
		if secret != "" {
			if err := webhooks.VerifyJira(secret, body, "sha256="+want); err != nil {
				t.Fatalf("real signature refused: %v", err)
			}
		}
	})
}

// FuzzDecodeZoom checks that DecodeZoom never panics and either decodes an
// event with a name or reports ErrUndecodable.
func FuzzDecodeZoom(f *testing.F) {
	f.Add([]byte(`{"event":"meeting.started","payload":{"object":{"id":"85746065","start_time":"2026-12-08T10:00:00Z"}}}`))
	f.Add([]byte(`{"event":"meeting.updated","payload":{"object":{"id":1,"duration":30},"old_object":{"id":1}}}`))
	f.Add([]byte(`{"event":"meeting.participant_left","payload":{"object":{"id":"1","participant":{"user_id":"2","leave_time":"2026-12-08T10:00:00Z"}}}}`))
	f.Add([]byte(`{"event":"endpoint.url_validation","payload":{"plainToken":"abc"}}`))
	f.Add([]byte(`{"event":`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := webhooks.DecodeZoom(body)
		if err != nil {
			if !errors.Is(err, webhooks.ErrUndecodable) || ev != nil {
				t.Fatalf("err %v (ev %v)", err, ev)
			}
			return
		}
		if ev.Event == "" {
			t.Fatal("decoded an event without a name")
		}
		if ev.Event == webhooks.ZoomURLValidation && ev.PlainToken == "" {
			t.Fatal("url_validation without plainToken")
		}
	})
}

// FuzzDecodeJira checks that DecodeJira never panics and either decodes an
// event with a name or reports ErrUndecodable.
func FuzzDecodeJira(f *testing.F) {
	f.Add([]byte(`{"webhookEvent":"jira:issue_updated","user":{"accountId":"a"},"issue":{"id":"1","key":"SPOT-1","fields":{}},"changelog":{"items":[{"field":"status","toString":"Cancelled"}]}}`))
	f.Add([]byte(`{"webhookEvent":"jira:issue_deleted","issue":{"key":"SPOT-2","fields":{"created":"bad"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := webhooks.DecodeJira(body, "customfield_10050")
		if err != nil {
			if !errors.Is(err, webhooks.ErrUndecodable) {
				t.Fatalf("err %v", err)
			}
			return
		}
		if ev.Event == "" {
			t.Fatal("decoded an event without a name")
		}
	})
}
