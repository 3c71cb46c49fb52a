package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// TestAbandonedRequestsAreNotServerErrors: a client that hangs up while its
// write waits in the group commit, while its list waits for the database,
// or while the list's body is being sent, is recorded as 499 at info level
// in the access log and the metrics, with no ERROR record and no second
// WriteHeader (http.Server's error log is in the same output). A single
// write abandoned in the queue is still committed, as before.
//
// The abandoned requests get no complete response, so there is nothing to
// check against the contract; they go through a plain transport.
func TestAbandonedRequestsAreNotServerErrors(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	// A small receive buffer, set before connecting (which turns off its
	// autotuning): otherwise the 4 MiB page fits in the client's socket
	// buffers (tcp_rmem grows to 32 MiB here) and is sent whole before the
	// client hangs up, a 200 rather than the abandonment the test is after.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	transport := &http.Transport{DialContext: dialer.DialContext}
	t.Cleanup(transport.CloseIdleConnections)
	raw := &http.Client{Transport: transport}
	conn, err := pgx.Connect(ctx(t), srv.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx(t)))
	watcher, err := pgx.Connect(ctx(t), srv.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.WithoutCancel(ctx(t)))

	// send starts a request that the test will abandon, and returns the
	// cancel that hangs up and the channel its outcome arrives on.
	send := func(method, path, body, id string) (context.CancelFunc, <-chan error) {
		t.Helper()
		reqCtx, cancel := context.WithCancel(ctx(t))
		req, err := http.NewRequestWithContext(reqCtx, method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		req.Header.Set(requestid.Header, id)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		done := make(chan error, 1)
		go func() {
			resp, err := raw.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("answered %s before the client hung up", resp.Status)
			}
			done <- err
		}()
		return cancel, done
	}
	// blocked hangs up the request once its own statement (query LIKE one
	// of like) waits for the test's lock: not the sequencer's seal pass or
	// the partition maintainer, which may wait for it too, before the
	// request's statement has arrived.
	blocked := func(cancel context.CancelFunc, done <-chan error, like ...string) {
		t.Helper()
		waitFor(t, 30*time.Second, "the request's statement waiting for the lock", func() (bool, string) {
			var n int
			var waiting []string
			err := watcher.QueryRow(ctx(t), `SELECT count(*) FILTER (WHERE query ILIKE ANY ($1)),
				coalesce(array_agg(left(query, 60)), '{}') FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`, like).Scan(&n, &waiting)
			return err == nil && n > 0, fmt.Sprintf("%d of ours waiting (%v); all waiting for a lock: %q", n, err, waiting)
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("the abandoned request: %v", err)
		}
	}

	// Queued in the group commit: the table is locked, the write waits.
	tx, err := conn.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx(t), `LOCK TABLE system_logs IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	cancel, done := send("POST", "/system/logs", `{"message":"abandoned in the queue"}`, "abandoned-write")
	blocked(cancel, done, "-- name: Insert%", "copy%system_logs%")
	wantAbandoned(t, srv, "abandoned-write")
	if err := tx.Rollback(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the abandoned write to be committed", func() (bool, string) {
		got := list(t, srv, api.ListSystemLogsParams{CorrelationId: ptr("abandoned-write")})
		return len(got.Items) == 1, fmt.Sprint(len(got.Items), " entries")
	})

	// Mid-list: the query waits for the lock when the client hangs up.
	tx, err = conn.Begin(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx(t), `LOCK TABLE system_logs IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	cancel, done = send("GET", "/system/logs", "", "abandoned-list")
	blocked(cancel, done, "-- name: ListLogs%")
	wantAbandoned(t, srv, "abandoned-list")
	if err := tx.Rollback(ctx(t)); err != nil {
		t.Fatal(err)
	}

	// Mid-response: a page (4 MiB, the most a page holds) larger than the
	// socket buffers; the client reads the status line and hangs up.
	if _, err := conn.Exec(ctx(t), `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, context, actor)
		SELECT gen_random_uuid(), now(), 'INFO', 'bulky', 'bulky', 'bulky', jsonb_build_object('pad', repeat('x', 60000)), 'test'
		FROM generate_series(1, 300)`); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx(t), "GET", srv.URL+"/system/logs?category=bulky&limit=300", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	req.Header.Set(requestid.Header, "abandoned-response")
	resp, err := raw.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bulky list: %v %v", err, resp)
	}
	resp.Body.Close() // unread: the connection is closed
	wantAbandoned(t, srv, "abandoned-response")

	metrics := srv.expect(t, 200, "GET", "/metrics", "", nil)
	for _, op := range []string{"createSystemLog", "listSystemLogs"} {
		re := regexp.MustCompile(`(?m)^valhalla_http_requests_total\{code="499",operation="` + op + `"\} ([0-9]+)$`)
		if m := re.FindSubmatch(metrics); m == nil || (op == "listSystemLogs" && string(m[1]) != "2") || (op == "createSystemLog" && string(m[1]) != "1") {
			t.Errorf("metrics: no valhalla_http_requests_total{code=\"499\",operation=%q} with the abandoned count:\n%s", op, grepLines(string(metrics), "requests_total"))
		}
	}
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" {
			t.Errorf("ERROR record: %s", line)
		}
		if strings.Contains(line, "superfluous") {
			t.Errorf("a second WriteHeader: %s", line)
		}
	}
}

// wantAbandoned waits for the access log record of the request with id and
// fails unless it says 499 at info level.
func wantAbandoned(t *testing.T, srv *instance, id string) {
	t.Helper()
	var rec map[string]any
	waitFor(t, 30*time.Second, "the access log record of "+id, func() (bool, string) {
		for _, line := range strings.Split(srv.Output.String(), "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "request" && r["request_id"] == id {
				rec = r
				return true, ""
			}
		}
		return false, "none"
	})
	if rec["status"] != float64(499) || rec["level"] != "INFO" {
		t.Errorf("access log of %s: status %v at %v, want 499 at INFO: %v", id, rec["status"], rec["level"], rec)
	}
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// timeout with what cond last reported.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last saw: %s", timeout, what, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
