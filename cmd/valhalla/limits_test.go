package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/internal/pgtest"
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
// answered 431 and the request never reaches a handler.
func TestOversizedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)},
		"--max-header-bytes", "2048")
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// net/http allows 4 KiB of slack over MaxHeaderBytes.
	req := "GET /system-health/live HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
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
