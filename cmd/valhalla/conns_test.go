package main

import (
	"net"
	"net/http"
	"testing"
	"time"
)

var zeroTime time.Time

// TestIdleCapClosesTheLongestIdle: past maxIdle idle connections, the one
// idle the longest is closed, and one that went back to work is not
// counted.
func TestIdleCapClosesTheLongestIdle(t *testing.T) {
	t.Parallel()
	c := newIdleCap(2)
	var conns []net.Conn
	for range 4 {
		server, client := net.Pipe()
		t.Cleanup(func() { server.Close(); client.Close() })
		conns = append(conns, server)
	}
	closed := func(conn net.Conn) bool { return conn.SetDeadline(zeroTime) != nil }
	c.track(conns[0], http.StateIdle)
	c.track(conns[1], http.StateIdle)
	c.track(conns[0], http.StateActive) // back at work
	c.track(conns[2], http.StateIdle)
	if closed(conns[0]) || closed(conns[1]) || closed(conns[2]) || c.idleCount() != 2 {
		t.Fatalf("closed a connection under the cap (idle %d)", c.idleCount())
	}
	c.track(conns[3], http.StateIdle)
	if !closed(conns[1]) || closed(conns[2]) || closed(conns[3]) || c.idleCount() != 2 {
		t.Errorf("over the cap: want the longest idle (1) closed, idle %d", c.idleCount())
	}
}
