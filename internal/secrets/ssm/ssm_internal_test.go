package ssm

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/logging"
)

// The SDK's notices reach the gateway's JSON log: warnings at warn, the
// rest at debug.
func TestSDKLoggerWritesJSON(t *testing.T) {
	var buf bytes.Buffer
	l := sdkLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Logf(logging.Warn, "falling back to %s", "IMDSv1")
	l.Logf(logging.Debug, "request %d", 2)
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []struct{ level, msg string }{{"WARN", "aws sdk: falling back to IMDSv1"}, {"DEBUG", "aws sdk: request 2"}} {
		var line map[string]any
		if err := json.Unmarshal(lines[i], &line); err != nil {
			t.Fatalf("line %d is not JSON: %s", i, lines[i])
		}
		if line["level"] != want.level || line["msg"] != want.msg {
			t.Errorf("line %d = %v, want %s %q", i, line, want.level, want.msg)
		}
	}
}
