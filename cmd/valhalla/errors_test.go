package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// TestErrorStatuses walks every error path a client can reach and checks the
// status, the problem type and where the violation is located. (The
// conformance transport checks each is problem+json with the request id.)
func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	big := `{"message":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		problemType                           string
		// where lists the expected locations, e.g. "pointer /level".
		where []string
	}{
		{"malformed JSON", "POST", "/system/logs", "application/json", `{"message":`, 400, "malformed-request", nil},
		{"JSON of the wrong type", "POST", "/system/logs", "application/json", `[1,2]`, 422, "validation-failed", []string{"pointer "}},
		{"missing message, bad level, unknown property", "POST", "/system/logs", "application/json",
			`{"level":"LOUD","surprise":1}`, 422, "validation-failed",
			[]string{"pointer /level", "pointer /message", "pointer /surprise"}},
		{"empty and overlong strings", "POST", "/system/logs", "application/json",
			`{"message":"","category":"` + strings.Repeat("c", 65) + `","user_id":"` + strings.Repeat("u", 129) + `"}`,
			422, "validation-failed", []string{"pointer /category", "pointer /message", "pointer /user_id"}},
		{"context not an object", "POST", "/system/logs", "application/json", `{"message":"m","context":"x"}`, 422, "validation-failed", []string{"pointer /context"}},
		{"NUL character", "POST", "/system/logs", "application/json", `{"message":"a\u0000b"}`, 422, "validation-failed", []string{"pointer /message"}},
		{"NUL in context", "POST", "/system/logs", "application/json", `{"message":"m","context":{"k":"\u0000"}}`, 422, "validation-failed", []string{"pointer /context/k"}},
		{"lone surrogate in context", "POST", "/system/logs", "application/json", `{"message":"m","context":{"k":["\ud800"]}}`, 422, "validation-failed", []string{"pointer /context/k/0"}},
		{"number jsonb cannot hold", "POST", "/system/logs", "application/json", `{"message":"m","context":{"n":1e200000}}`, 422, "validation-failed", []string{"pointer /context/n"}},
		{"context over its limit", "POST", "/system/logs", "application/json", `{"message":"m","context":{"k":"` + strings.Repeat("x", 64<<10) + `"}}`, 422, "validation-failed", []string{"pointer /context"}},
		{"batch entry jsonb refuses", "POST", "/system/logs/batch", "application/json", `{"entries":[{"message":"m"},{"message":"m","context":{"n":-1e-20000}}]}`, 422, "validation-failed", []string{"pointer /entries/1/context/n"}},
		{"no body", "POST", "/system/logs", "application/json", ``, 422, "validation-failed", []string{"pointer "}},
		{"wrong content type", "POST", "/system/logs", "text/plain", `{"message":"m"}`, 415, "unsupported-media-type", []string{"header Content-Type"}},
		{"missing content type", "POST", "/system/logs", "", `{"message":"m"}`, 415, "unsupported-media-type", []string{"header Content-Type"}},
		{"body over 1 MiB", "POST", "/system/logs", "application/json", big, 413, "payload-too-large", nil},
		{"batch entry invalid", "POST", "/system/logs/batch", "application/json",
			`{"entries":[{"message":"a"},{"message":"b"},{"message":"c"},{"message":"d","level":"LOUD"}]}`,
			422, "validation-failed", []string{"pointer /entries/3/level"}},
		{"batch empty", "POST", "/system/logs/batch", "application/json", `{"entries":[]}`, 422, "validation-failed", []string{"pointer /entries"}},
		{"batch over 1000", "POST", "/system/logs/batch", "application/json",
			`{"entries":[` + strings.TrimSuffix(strings.Repeat(`{"message":"m"},`, 1001), ",") + `]}`,
			422, "validation-failed", []string{"pointer /entries"}},
		{"unknown route", "GET", "/nowhere", "", ``, 404, "not-found", nil},
		{"unknown id", "GET", "/system/logs/0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f", "", ``, 404, "not-found", nil},
		{"id not a uuid", "GET", "/system/logs/42", "", ``, 422, "validation-failed", []string{"parameter id"}},
		{"bad query parameters", "GET", "/system/logs?limit=0&level=LOUD&since=yesterday&include_total=maybe", "", ``,
			422, "validation-failed", []string{"parameter include_total", "parameter level", "parameter limit", "parameter since"}},
		{"limit too large", "GET", "/system/logs?limit=501", "", ``, 422, "validation-failed", []string{"parameter limit"}},
		{"cursor that does not decode", "GET", "/system/logs?cursor=not-a-cursor", "", ``, 422, "validation-failed", []string{"parameter cursor"}},
		{"NUL in the category filter", "GET", "/system/logs?category=%00x", "", ``, 422, "validation-failed", []string{"parameter category"}},
		{"NUL in every text filter", "GET", "/system/logs?correlation_id=a%00&user_id=%00&trace_id=%00", "", ``, 422, "validation-failed",
			[]string{"parameter correlation_id", "parameter trace_id", "parameter trace_id", "parameter user_id"}},
		{"NUL in the id", "GET", "/system/logs/%00", "", ``, 422, "validation-failed", []string{"parameter id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := srv.do(t, tt.method, tt.path, tt.contentType, strings.NewReader(tt.body))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			p := problemOf(t, body)
			if p.Type != "/problems/"+tt.problemType {
				t.Errorf("type %q, want ...%s", p.Type, tt.problemType)
			}
			if p.Title == "" || p.Detail == "" {
				t.Errorf("title %q and detail %q must be set", p.Title, p.Detail)
			}
			if got := locations(p); strings.Join(got, "; ") != strings.Join(tt.where, "; ") {
				t.Errorf("errors located at %q, want %q", got, tt.where)
			}
		})
	}
}

// locations lists where each field error points, sorted.
func locations(p api.ProblemDetails) []string {
	if p.Errors == nil {
		return nil
	}
	var out []string
	for _, e := range *p.Errors {
		switch {
		case e.Pointer != nil:
			out = append(out, "pointer "+*e.Pointer)
		case e.Parameter != nil:
			out = append(out, "parameter "+*e.Parameter)
		case e.Header != nil:
			out = append(out, "header "+*e.Header)
		default:
			out = append(out, "nowhere")
		}
		if e.Detail == "" {
			out = append(out, "(no detail)")
		}
	}
	slices.Sort(out)
	return out
}

// TestWrongMethodIs405WithAllow checks that a known path with an undeclared
// method says which methods it has.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	for path, allow := range map[string]string{
		"/system/logs":       "GET, POST",
		"/system/logs/batch": "POST", // the literal path, not /system/logs/{id}
		"/system/logs/0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f": "GET",
		"/system-health/live":                               "GET",
	} {
		resp, body := srv.do(t, http.MethodDelete, path, "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE %s: status %d: %s", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Allow"); got != allow {
			t.Errorf("DELETE %s: Allow %q, want %q", path, got, allow)
		}
	}
}

// TestChunkedBodyOverLimitIs413 checks the limit holds without a Content-Length.
func TestChunkedBodyOverLimitIs413(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"message":"`))
		chunk := bytes.Repeat([]byte("y"), 64<<10)
		for range 20 { // 1.25 MiB
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Write([]byte(`"}`))
		pw.Close()
	}()
	resp, body := srv.do(t, "POST", "/system/logs", "application/json", pr)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", resp.StatusCode, body)
	}
	// Nothing was stored.
	list, err := srv.Client.ListSystemLogsWithResponse(ctx(t), &api.ListSystemLogsParams{})
	if err != nil || list.JSON200 == nil {
		t.Fatalf("list: %v %v", err, list)
	}
	if n := len(list.JSON200.Items); n != 0 {
		t.Errorf("%d entries stored after a rejected write", n)
	}
}

// TestBatchUnderItsLimitIsAccepted: a batch may exceed the single-entry limit.
func TestBatchUnderItsLimitIsAccepted(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	entries := make([]api.SystemLogCreate, 300)
	for i := range entries {
		entries[i] = api.SystemLogCreate{Message: strings.Repeat("z", 5000)} // ~1.5 MB in all
	}
	body, _ := json.Marshal(api.SystemLogBatchCreate{Entries: entries})
	resp, raw := srv.do(t, "POST", "/system/logs/batch", "application/json", bytes.NewReader(body))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %.300s", resp.StatusCode, raw)
	}
}

// TestErrorsCarryCorrelationAndInstance covers the seed's error cases:
// problem format on validation and HTTP errors, correlation_id and instance.
func TestErrorsCarryCorrelationAndInstance(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	resp, err := srv.Client.GetSystemLogWithResponse(ctx(t), mustUUID(t, "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f"),
		&api.GetSystemLogParams{}, withRequestID("trace-me.42"))
	if err != nil {
		t.Fatal(err)
	}
	p := resp.ApplicationproblemJSON404
	if resp.StatusCode() != 404 || p == nil {
		t.Fatalf("status %d, body %s", resp.StatusCode(), resp.Body)
	}
	if p.CorrelationId != "trace-me.42" || resp.HTTPResponse.Header.Get(requestid.Header) != "trace-me.42" {
		t.Errorf("correlation_id %q, header %q: want the caller's id", p.CorrelationId, resp.HTTPResponse.Header.Get(requestid.Header))
	}
	if p.Instance != "/system/logs/0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f" {
		t.Errorf("instance %q", p.Instance)
	}

	create, err := srv.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{},
		api.SystemLogCreate{Message: "", Level: ptr(api.LogLevel("NOPE"))})
	if err != nil {
		t.Fatal(err)
	}
	v := create.ApplicationproblemJSON422
	if v == nil || v.Status != 422 || v.Instance != "/system/logs" || v.Errors == nil || len(*v.Errors) != 2 {
		t.Fatalf("validation problem: %s", create.Body)
	}
}

// TestExplicitNullIsRejected: null is not a value for a string property,
// even one with a default (Schemathesis found it stored as the default).
func TestExplicitNullIsRejected(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	for _, field := range []string{"category", "level", "context", "user_id", "correlation_id"} {
		resp, body := srv.do(t, "POST", "/system/logs", "application/json",
			strings.NewReader(`{"message":"m","`+field+`":null}`))
		if resp.StatusCode != 422 {
			t.Errorf("%s: null answered %d: %s", field, resp.StatusCode, body)
			continue
		}
		if got := locations(problemOf(t, body)); strings.Join(got, ",") != "pointer /"+field {
			t.Errorf("%s: located at %v", field, got)
		}
	}
}
