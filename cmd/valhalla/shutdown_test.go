package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// TestGracefulShutdown: once serve is told to stop, readiness fails at
// once while requests are still served for the drain delay; a request in
// flight finishes; one that never finishes is cut off at the shutdown
// timeout; then serve returns.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)},
		"--drain-delay", "1s", "--shutdown-timeout", "2s")

	// Two writes in flight: their bodies arrive slowly.
	body := `{"message":"in flight"}`
	start := func() net.Conn {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /system/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", srv.Token, len(body), body[:10])
		return conn
	}
	finishing := start()
	hanging := start()
	// Both are being read by the server: in flight with the metrics
	// request that counts them.
	waitFor(t, 30*time.Second, "both writes in flight", func() (bool, string) {
		m, err := srv.Client.GetMetricsWithResponse(ctx(t), &api.GetMetricsParams{})
		if err != nil || m.JSON200 == nil {
			return false, fmt.Sprint(err)
		}
		return m.JSON200.RequestsInFlight == 3, fmt.Sprint(m.JSON200.RequestsInFlight, " in flight")
	})

	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- srv.stop() }()
	deadline := time.Now().Add(900 * time.Millisecond)
	for {
		ready, err := srv.Client.GetReadinessWithResponse(ctx(t), &api.GetReadinessParams{})
		if err == nil && ready.ApplicationproblemJSON503 != nil {
			if c := check(ready.ApplicationproblemJSON503.Checks, "shutdown"); c == nil || c.Status != "fail" {
				t.Errorf("shutdown check %+v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness still %v %v during the drain delay", err, ready.StatusCode())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if live, err := srv.Client.GetLivenessWithResponse(ctx(t), &api.GetLivenessParams{}); err != nil || live.StatusCode() != 200 {
		t.Errorf("liveness during the drain delay: %v", err)
	}

	// Past the drain delay, the listener is closed: now shutting down.
	waitFor(t, 30*time.Second, "the listener to close after the drain delay", func() (bool, string) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err == nil {
			conn.Close()
		}
		return err != nil, fmt.Sprint("dial: ", err)
	})
	if d := time.Since(began); d < time.Second {
		t.Errorf("the listener closed %v after the stop, before the 1s drain delay", d)
	}
	if _, err := io.WriteString(finishing, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(finishing), nil)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Errorf("the in-flight write did not finish: %v %+v", err, resp)
	}

	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after the shutdown timeout")
	}
	if took := time.Since(began); took < 2*time.Second || took > 10*time.Second {
		t.Errorf("shutdown took %s, want the drain delay plus the 2s timeout", took)
	}
	if got, _ := io.ReadAll(hanging); strings.Contains(string(got), " 201 ") {
		t.Errorf("a write whose body never ended was stored: %q", got)
	}
	out := srv.Output.String()
	if !strings.Contains(out, "in-flight requests did not finish in time") || !strings.Contains(out, `"msg":"stopped"`) {
		t.Errorf("shutdown log:\n%s", out)
	}
}
