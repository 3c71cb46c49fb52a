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
