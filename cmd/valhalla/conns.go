package main

import (
	"net"
	"net/http"
	"sync"
)

// idleCap closes keep-alive connections that go idle while maxIdle others
// already are, so idle clients cannot hold connections the server needs
// (its http.Server.ConnState hook).
type idleCap struct {
	maxIdle int
	mu      sync.Mutex
	idle    map[net.Conn]struct{}
}

func newIdleCap(maxIdle int) *idleCap {
	return &idleCap{maxIdle: maxIdle, idle: map[net.Conn]struct{}{}}
}

// track is the http.Server.ConnState hook.
func (c *idleCap) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state != http.StateIdle {
		delete(c.idle, conn)
		return
	}
	if c.maxIdle > 0 && len(c.idle) >= c.maxIdle {
		conn.Close()
		return
	}
	c.idle[conn] = struct{}{}
}

// idleCount returns how many connections are idle.
func (c *idleCap) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}
