package webhooks_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotlight/gateway/internal/store/storetest"
	"github.com/spotlight/gateway/webhooks"
)

// zoomBodyOfSize is a signed-able meeting.started body of exactly n bytes.
func zoomBodyOfSize(t *testing.T, n int) []byte {
	t.Helper()
	head := `{"event":"meeting.started","event_ts":1764069600123,"payload":{"account_id":"acc","object":{"id":"77","uuid":"u"},"pad":"`
	tail := `"}}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("body of %d bytes is too small", n)
	}
	return []byte(head + strings.Repeat("a", pad) + tail)
}

// TestZoomBodyLimit: the default limit is 256 KiB. A signed delivery of
// exactly 256 KiB is accepted; one byte more is a 413 problem, counted as
// too_large, with nothing stored, whether its length is declared or it
// comes chunked.
func TestZoomBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	at := zoomBodyOfSize(t, webhooks.DefaultMaxBody)
	if webhooks.DefaultMaxBody != 256<<10 {
		t.Fatalf("DefaultMaxBody = %d, want 256 KiB", webhooks.DefaultMaxBody)
	}
	if code, _, b := h.post(t, "/webhooks/zoom", at, signedZoom(zoomSecret, time.Now(), at)); code != http.StatusNoContent {
		t.Fatalf("delivery of exactly 256 KiB: %d %s", code, b)
	}
	over := zoomBodyOfSize(t, webhooks.DefaultMaxBody+1)
	for _, chunked := range []bool{false, true} {
		before := h.rejected(webhooks.ProviderZoom, "too_large")
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+"/webhooks/zoom", bytes.NewReader(over))
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(bytes.NewReader(over)) // no length the client could send
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range signedZoom(zoomSecret, time.Now(), over) {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("delivery of 256 KiB + 1 byte (chunked %v): %d %s", chunked, resp.StatusCode, b)
		}
		if p := problem(t, resp.Header, b); p.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("problem %+v", p)
		}
		if h.rejected(webhooks.ProviderZoom, "too_large") != before+1 {
			t.Fatalf("413 (chunked %v) not counted as too_large", chunked)
		}
	}
	// Only the first was stored (and processed: no booking has meeting 77).
	h.waitAllDone(t, webhooks.ProviderZoom, 1)
}

// countingReader yields n bytes of JSON-ish filler, counting what was read.
type countingReader struct {
	n, read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.n.Load() - r.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	for i := range p {
		p[i] = 'a'
	}
	r.read.Add(int64(len(p)))
	return len(p), nil
}

// TestOversizedBodyNotRead: a delivery larger than the limit is refused
// with 413 without the gateway reading on to its end, whether it declares
// its length (refused before any of the body is read: the sender has sent
// none of it) or streams it chunked (refused once the limit is passed,
// while the sender still has megabytes to send).
func TestOversizedBodyNotRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, storetest.SQLite(t))
	ts := fmt.Sprint(time.Now().Unix())

	t.Run("declared length", func(t *testing.T) {
		u, _ := url.Parse(h.url)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// 100 MiB announced, none of it sent: the answer must not wait for it.
		fmt.Fprintf(conn, "POST /webhooks/zoom HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"x-zm-request-timestamp: %s\r\nx-zm-signature: v0=%s\r\n\r\n", u.Host, 100<<20, ts, strings.Repeat("ab", 32))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer before the body was sent: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d %s", resp.StatusCode, b)
		}
		problem(t, resp.Header, b)
	})

	t.Run("chunked", func(t *testing.T) {
		const total = 64 << 20
		body := &countingReader{}
		body.n.Store(total)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+"/webhooks/zoom", io.MultiReader(bytes.NewReader([]byte(`{"event":"meeting.started","pad":"`)), body))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // chunked: the gateway cannot know the size up front
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-zm-request-timestamp", ts)
		req.Header.Set("x-zm-signature", "v0="+strings.Repeat("ab", 32))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d %s", resp.StatusCode, b)
		}
		problem(t, resp.Header, b)
		// What the sender got rid of: the limit, and what the sockets'
		// buffers took on the way (a few MiB at most), not the whole body.
		if sent := body.read.Load(); sent >= total/4 {
			t.Fatalf("the sender sent %d of %d bytes before the 413: the gateway read on past the limit", sent, total)
		}
	})
	if n := len(h.deliveries(t, webhooks.ProviderZoom)); n != 0 {
		t.Fatalf("%d deliveries stored", n)
	}
}
