package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// TestHostileStringsAreInert: text built to break SQL, headers, HTML or log
// lines is stored and returned exactly as written, filters match it
// exactly, no response gains a header from it, and every server log line is
// still one JSON record.
func TestHostileStringsAreInert(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	hostile := []string{
		`x'; DROP TABLE system_logs; --`,
		"a\r\nSet-Cookie: pwned=1\r\n\r\n<script>alert(1)</script>",
		"\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\n",
		`%00%0d%0a\u0000 ${jndi:ldap://x} {{7*7}}`,
		"ünïcødé ✓ 𝔘 \u202e",
	}
	for i, s := range hostile {
		s = strings.ReplaceAll(s, "\x00", "")
		body, _ := json.Marshal(map[string]any{
			"message": s, "category": strings.ReplaceAll(s, "\n", " ")[:min(len(s), 60)], "user_id": s,
			"correlation_id": s, "context": map[string]any{s: s},
		})
		resp, raw := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(string(body)),
			"Idempotency-Key", `k'";--`+string(rune('a'+i)))
		if resp.StatusCode != 201 {
			t.Fatalf("write %q: %d %s", s, resp.StatusCode, raw)
		}
		if resp.Header.Get("Set-Cookie") != "" || len(resp.Header.Values("Location")) != 1 {
			t.Errorf("write %q: headers %v", s, resp.Header)
		}
		var got api.SystemLog
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Message != s || got.CorrelationId != s || *got.UserId != s {
			t.Errorf("stored %+v, want %q everywhere", got, s)
		}
		assertJSONEqual(t, got.Context, mustJSON(t, map[string]any{s: s}))

		q := url.Values{"category": {got.Category}, "user_id": {s}, "correlation_id": {s}}
		resp, raw = srv.do(t, "GET", "/system/logs?"+q.Encode(), "", nil)
		var page api.SystemLogList
		if err := json.Unmarshal(raw, &page); err != nil || resp.StatusCode != 200 || len(page.Items) != 1 || page.Items[0].Id != got.Id {
			t.Errorf("filter by %q: %d %s", s, resp.StatusCode, raw)
		}
	}
	// The table survived, and the log is still one JSON record per line.
	if got := list(t, srv, api.ListSystemLogsParams{}); len(got.Items) != len(hostile) {
		t.Errorf("%d entries, want %d", len(got.Items), len(hostile))
	}
	for _, line := range strings.Split(strings.TrimSpace(srv.Output.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == "forged" {
			t.Errorf("log line %q is not one genuine JSON record", line)
		}
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
