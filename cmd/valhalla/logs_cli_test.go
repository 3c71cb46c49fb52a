package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// cli runs `valhalla logs ...` against srv and returns stdout and the error.
func (in *instance) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"VALHALLA_URL": in.URL, "VALHALLA_TOKEN": in.Token}
	err := run(ctx(t), append([]string{"logs"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

func TestCLIWriteGetList(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	out, err := srv.cli(t, "write", "--json", "--level", "error", "--category", "cli", "--user", "u-1",
		"--context", `{"k":"v"}`, "--request-id", "cli-req-1", "disk full")
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	var written api.SystemLog
	if err := json.Unmarshal([]byte(out), &written); err != nil {
		t.Fatalf("write --json printed %q: %v", out, err)
	}
	if written.Level != "ERROR" || written.Category != "cli" || written.Message != "disk full" ||
		written.CorrelationId != "cli-req-1" || *written.UserId != "u-1" {
		t.Errorf("written %+v", written)
	}

	out, err = srv.cli(t, "get", written.Id.String())
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIMESTAMP") ||
		!strings.Contains(lines[1], written.Id.String()) || !strings.Contains(lines[1], "disk full") {
		t.Errorf("get table:\n%s", out)
	}

	for i := range 5 {
		if _, err := srv.cli(t, "write", "--category", "paged-cli", fmt.Sprint("line\nnumber ", i)); err != nil {
			t.Fatal(err)
		}
	}
	out, err = srv.cli(t, "list", "--category", "paged-cli", "--limit", "2", "--all", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l api.SystemLog
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		got = append(got, l.Message)
	}
	if want := "line\nnumber 4,line\nnumber 3,line\nnumber 2,line\nnumber 1,line\nnumber 0"; strings.Join(got, ",") != want {
		t.Errorf("list --all across pages: %q", got)
	}
	out, err = srv.cli(t, "list", "--category", "paged-cli", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(strings.TrimSpace(out), "\n"); rows != 2 {
		t.Errorf("list without --all printed %d rows, want one page of 2:\n%s", rows, out)
	}
	if !strings.Contains(out, "line number 4") {
		t.Errorf("table does not flatten newlines:\n%s", out)
	}
	out, err = srv.cli(t, "list", "--level", "error", "--level", "critical", "--category", "cli", "--json")
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("list by level: %v\n%s", err, out)
	}
}

// TestCLIProblemIsOneLineError: a problem answer becomes a one-line error
// with the status, where the violation is, and the request id.
func TestCLIProblemIsOneLineError(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	_, err := srv.cli(t, "write", "--level", "LOUD", "--request-id", "cli-bad-1", "m")
	if err == nil {
		t.Fatal("invalid write succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "422") || !strings.Contains(msg, "/level") ||
		!strings.Contains(msg, "request id cli-bad-1") {
		t.Errorf("error %q", msg)
	}
	_, err = srv.cli(t, "get", "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f")
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "request id ") {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := srv.cli(t, "get", "not-an-id"); err == nil {
		t.Error("get with a bad id succeeded")
	}
	if _, err := srv.cli(t, "list", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Errorf("bad --since: %v", err)
	}
}

// TestCLISendsToken: the token goes out as a bearer token (the server
// ignores it until authentication exists; the conformance transport sees it).
func TestCLISendsToken(t *testing.T) {
	t.Parallel()
	var seen string
	cf := clientFlags{server: "http://127.0.0.1:1", token: "vhl_secret", requestID: "rid-1"}
	client, err := cf.client()
	if err != nil {
		t.Fatal(err)
	}
	req, err := api.NewGetLivenessRequest(cf.server, &api.GetLivenessParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range client.ClientInterface.(*api.Client).RequestEditors {
		if err := edit(ctx(t), req); err != nil {
			t.Fatal(err)
		}
	}
	seen = req.Header.Get("Authorization")
	if seen != "Bearer vhl_secret" || req.Header.Get("X-Request-ID") != "rid-1" {
		t.Errorf("Authorization %q, X-Request-ID %q", seen, req.Header.Get("X-Request-ID"))
	}
}

// TestCLIListByTraceID: logs list --trace-id keeps the entries written
// under that trace, as the API's trace_id filter does.
func TestCLIListByTraceID(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, traceparent := range []string{"00-" + traceID + "-00f067aa0ba902b7-01", "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"} {
		if resp, body := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":"traced","category":"by-trace"}`),
			"traceparent", traceparent); resp.StatusCode != 201 {
			t.Fatalf("write: %d %s", resp.StatusCode, body)
		}
	}
	out, err := srv.cli(t, "list", "--category", "by-trace", "--trace-id", traceID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var l api.SystemLog
	if err := json.Unmarshal([]byte(out), &l); err != nil || strings.Count(out, "\n") != 1 || l.TraceId == nil || *l.TraceId != traceID {
		t.Errorf("list --trace-id printed %q (%v), want the one entry of trace %s", out, err, traceID)
	}
}

// TestCLIShowsNoTokenAndNoTerminalControls: -h never prints the token from
// the environment, and the table escapes every character a terminal would
// act on.
func TestCLIShowsNoTokenAndNoTerminalControls(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	getenv := func(k string) string {
		if k == "VALHALLA_TOKEN" {
			return "vhl_secretsecret_abcdefghijklmnopqrstuvwxyz"
		}
		return ""
	}
	_ = run(t.Context(), []string{"logs", "write", "-h"}, getenv, &out, &out)
	if strings.Contains(out.String(), "secretsecret") {
		t.Errorf("logs write -h prints the token:\n%s", out.String())
	}
	for _, hostile := range []string{"\x1b[2J", "\u009b2J", "\u009d0;title\u0007", "\u202egnp.exe", "a\u2066b\u2069", "x\u0085y", "\u200fz"} {
		got := oneLine(hostile, 0)
		for _, r := range got {
			if unsafeForTerminal(r) {
				t.Errorf("oneLine(%q) = %q still holds %U", hostile, got, r)
			}
		}
		if !strings.Contains(got, `\u`) {
			t.Errorf("oneLine(%q) = %q shows no escape", hostile, got)
		}
	}
	if got := oneLine("café 👩‍💻", 0); got != "café 👩‍💻" {
		t.Errorf("plain text changed: %q", got)
	}
}
