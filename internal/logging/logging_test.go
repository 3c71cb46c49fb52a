package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// TestContextIDsOnEveryRecord: a record logged with a request's context
// carries its request and trace ids, whoever logs it; one without carries none.
func TestContextIDsOnEveryRecord(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := New(&out, FormatJSON, slog.LevelInfo).With("component", "test")
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(requestid.NewContext(context.Background(), "req-1"),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))

	logger.InfoContext(ctx, "inside a request")
	logger.Info("outside any request")
	logger.DebugContext(ctx, "below the level")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records, want 2:\n%s", len(lines), out.String())
	}
	var inside, outside map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &inside); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &outside); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "inside a request", "component": "test", "request_id": "req-1",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
	for k, v := range want {
		if inside[k] != v {
			t.Errorf("%s = %v, want %v", k, inside[k], v)
		}
	}
	for _, k := range []string{"request_id", "trace_id", "span_id"} {
		if _, ok := outside[k]; ok {
			t.Errorf("record outside a request has %s", k)
		}
	}
}

// TestFormats: json and text as asked; auto is JSON when the output is not a terminal.
func TestFormats(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		format Format
		json   bool
	}{{FormatJSON, true}, {FormatText, false}, {FormatAuto, true}} {
		var out bytes.Buffer
		New(&out, tt.format, slog.LevelInfo).InfoContext(requestid.NewContext(context.Background(), "r"), "hello")
		if got := json.Valid(out.Bytes()); got != tt.json {
			t.Errorf("%s: JSON %v, want %v: %s", tt.format, got, tt.json, out.String())
		}
		if !strings.Contains(out.String(), "request_id") {
			t.Errorf("%s: no request_id: %s", tt.format, out.String())
		}
	}
	for _, s := range []string{"auto", "json", "text"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat accepted yaml")
	}
}
