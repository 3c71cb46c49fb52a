package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// idleCap keeps at most maxIdle keep-alive connections idle: when one more
// goes idle, the one idle the longest is closed, so clients that hold
// connections without using them cannot crowd out those that do (its
// track method is the http.Server.ConnState hook).
type idleCap struct {
	maxIdle int
	mu      sync.Mutex
	idle    map[net.Conn]time.Time // since when
}

func newIdleCap(maxIdle int) *idleCap {
	return &idleCap{maxIdle: maxIdle, idle: map[net.Conn]time.Time{}}
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
		var oldest net.Conn
		var since time.Time
		for idle, t := range c.idle {
			if oldest == nil || t.Before(since) {
				oldest, since = idle, t
			}
		}
		delete(c.idle, oldest)
		oldest.Close()
	}
	c.idle[conn] = time.Now()
}

// idleCount returns how many connections are idle.
func (c *idleCap) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}
