package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/internal/pgtest"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// TestSlowHeadersAreCutOff: a client that trickles its headers (slowloris)
// is disconnected once the read header timeout has passed.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)},
		"--read-header-timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /system-health/live HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// One header byte every 50ms: the headers never end while the server
	// keeps the connection open.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := io.WriteString(conn, "X"); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatalf("the server kept a trickling client for %s", time.Since(start))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("cut off after %s, want about 300ms", elapsed)
	}
	if strings.Contains(string(got), " 200 ") {
		t.Errorf("a request whose headers never ended was served: %q", got)
	}
}

// TestOversizedHeadersAreRefused: headers over --max-header-bytes are
// answered with a 431 problem carrying the request id, and the request
// never reaches a handler; a block far over it is still refused by
// net/http itself.
func TestOversizedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)},
		"--max-header-bytes", "2048")
	send := func(padding int) (*http.Response, []byte) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /system-health/live HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("a", padding) + "\r\n\r\n"
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := send(3000)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" ||
		resp.Header.Get("X-Request-ID") == "" {
		t.Errorf("headers over the limit: %d %v %s, want a 431 problem with X-Request-ID", resp.StatusCode, resp.Header, body)
	}
	if p := problemOf(t, body); p.CorrelationId != resp.Header.Get("X-Request-ID") || p.Status != 431 {
		t.Errorf("problem %+v", p)
	}
	if resp, _ := send(16 << 10); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers far over the limit: status %d, want 431", resp.StatusCode)
	}
	// Through the conformance transport: the 431 is what the contract declares.
	resp, _ = srv.do(t, "GET", "/system-health/live", "", nil, "X-Padding", strings.Repeat("a", 3000))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// TestLimitFlagsAreValidated: a malformed limit is one clear error at start.
func TestLimitFlagsAreValidated(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--read-header-timeout", "soon"},
		{"--write-timeout", "-1s"},
		{"--max-header-bytes", "12"},
	} {
		err := run(ctx(t), append([]string{"serve"}, args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(strings.TrimPrefix(args[0], "--"), "-", " ")) {
			t.Errorf("serve %v: error %v, want one naming the flag", args, err)
		}
	}
}

// TestRateLimits: a token created with its own rate is refused past it
// with a 429 problem carrying Retry-After and the RateLimit headers (the
// conformance transport checks them against the contract), while another
// token is not; tokens list shows the override; a client without a token
// is limited by its address.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)}, "--address-rate", "0.1")
	var out, errOut strings.Builder
	getenv := func(k string) string { return srv.env[k] }
	if err := run(t.Context(), []string{"tokens", "create", "--name", "slow", "--scopes", "logs:read,logs:write",
		"--rate", "0.1", "--entry-rate", "1000"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("tokens create: %v\n%s", err, errOut.String())
	}
	slow := strings.TrimSpace(out.String())
	limited := 0
	// At 0.1 per second (a burst of one), the second of three requests
	// is refused unless ten seconds pass between them.
	for range 3 {
		resp, body := srv.do(t, "GET", "/system/logs?limit=1", "", nil, "Authorization", "Bearer "+slow)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			p := problemOf(t, body)
			if p.Type != problem.TypeRateLimited || resp.Header.Get("Retry-After") == "" ||
				resp.Header.Get("RateLimit-Policy") != `"requests";q=1;w=10` {
				t.Errorf("429 %+v with headers %v", p, resp.Header)
			}
		}
	}
	if limited == 0 {
		t.Error("3 requests on a token limited to 0.1/s were all served")
	}
	// A batch over the entry rate (one second's worth, at least 1000) waits too.
	batch := `{"entries":[` + strings.TrimSuffix(strings.Repeat(`{"message":"m"},`, 1000), ",") + `]}`
	codes := map[int]int{}
	for range 3 {
		resp, _ := srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(batch))
		codes[resp.StatusCode]++
	}
	if codes[http.StatusCreated] != 3 {
		t.Errorf("the bootstrap token's batches: %v, want all stored (its limits are the defaults)", codes)
	}
	out.Reset()
	if err := run(t.Context(), []string{"tokens", "list"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "rate=0.1,entry-rate=1000") {
		t.Errorf("tokens list does not show the override:\n%s", out.String())
	}
	for range 20 { // the probes are never limited by address
		resp, err := srv.Anon.Get(srv.URL + "/system-health/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("readiness: %d, want 200 however often it is asked", resp.StatusCode)
		}
	}
	anonLimited := 0
	for range 3 {
		resp, err := srv.Anon.Get(srv.URL + "/openapi.yaml")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			anonLimited++
		}
	}
	if anonLimited == 0 {
		t.Error("3 requests without a token from an address limited to 0.1/s were all served")
	}
}

// TestMetricsOnTheirOwnAddress: with --metrics-addr, /metrics is served
// there and answered 404 on the API address, which keeps every other path.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)}, "--metrics-addr", "127.0.0.1:0")
	var addr string
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving metrics" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no metrics address logged:\n%s", srv.Output)
	}
	get := func(url string) int {
		resp, err := srv.Anon.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for url, want := range map[string]int{
		srv.URL + "/metrics":              404,
		srv.URL + "/system-health/live":   200,
		"http://" + addr + "/metrics":     200,
		"http://" + addr + "/system/logs": 404,
	} {
		if got := get(url); got != want {
			t.Errorf("GET %s: %d, want %d", url, got, want)
		}
	}
}

// TestReadRate: a token's pages are charged by their bytes once read; past
// its read rate the next page is a 429 saying when to come back (its
// writes still go through), and the CLI, through apiclient, waits that
// long and carries on.
func TestReadRate(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)})
	var out, errOut strings.Builder
	getenv := func(k string) string { return srv.env[k] }
	// 2 MiB/s, bursting to 8 MiB: two pages of the largest entries; each
	// page past them is two seconds of debt.
	if err := run(t.Context(), []string{"tokens", "create", "--name", "reader", "--scopes", "logs:read,logs:write",
		"--read-rate", "2097152"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("tokens create: %v\n%s", err, errOut.String())
	}
	reader := strings.TrimSpace(out.String())
	pad := strings.Repeat("p", 60<<10)
	batch := `{"entries":[` + strings.TrimSuffix(strings.Repeat(`{"message":"big","category":"big","context":{"pad":"`+pad+`"}},`, 64), ",") + `]}`
	for range 4 {
		if resp, body := srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(batch)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("write large entries: %d %.300s", resp.StatusCode, body)
		}
	}
	auth := []string{"Authorization", "Bearer " + reader}
	first := "/system/logs?category=big&limit=500"
	path := first
	var refused *http.Response
	for deadline := time.Now().Add(30 * time.Second); refused == nil; {
		if time.Now().After(deadline) {
			t.Fatal("pages of about 4 MiB on a token limited to 2 MiB/s were served for 30 s")
		}
		resp, body := srv.do(t, "GET", path, "", nil, auth...)
		switch resp.StatusCode {
		case http.StatusOK:
			path = first // past the last page, from the first again
			if c := nextCursor(t, body); c != "" {
				path = first + "&cursor=" + c
			}
		case http.StatusTooManyRequests:
			refused = resp
			if p := problemOf(t, body); p.Type != problem.TypeRateLimited || !strings.Contains(p.Detail, "bytes of pages read per second") {
				t.Errorf("429 %+v", p)
			}
		default:
			t.Fatalf("a page: %d %.300s", resp.StatusCode, body)
		}
	}
	if got := refused.Header.Get("RateLimit-Policy"); got != `"read-bytes";q=2097152;w=1;qu="content-bytes"` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Error("a 429 without Retry-After")
	}
	if resp, body := srv.do(t, "POST", "/system/logs", "application/json", strings.NewReader(`{"message":"still writing"}`), auth...); resp.StatusCode != http.StatusCreated {
		t.Errorf("a write of a token over its read rate: %d %.300s", resp.StatusCode, body)
	}
	// Once the debt is paid a page is served again, and puts the token a
	// page (about two seconds at 2 MiB/s) into debt.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := srv.do(t, "GET", "/system/logs?category=big&limit=500", "", nil, auth...)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("waiting for the read rate: %d %.300s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond) // the poll's interval
	}
	// The CLI's first page is refused; it waits the Retry-After and reads.
	out.Reset()
	errOut.Reset()
	start := time.Now()
	err := run(t.Context(), []string{"logs", "list", "--server", srv.URL, "--token", reader, "--category", "big", "--limit", "500", "--json"},
		getenv, &out, &errOut)
	if err != nil {
		t.Fatalf("logs list over the read rate: %v\n%s", err, errOut.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines == 0 {
		t.Errorf("logs list printed nothing")
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("logs list answered in %s with its token a page in debt: it did not wait for its read rate", waited)
	}
}

// nextCursor is a listing page's next_cursor, "" on the last page.
func nextCursor(t *testing.T, body []byte) string {
	t.Helper()
	var page struct {
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("a page that is not one (%v): %.300s", err, body)
	}
	if page.NextCursor == nil {
		return ""
	}
	return *page.NextCursor
}
