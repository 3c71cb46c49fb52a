package ratelimit

import (
	"context"
	"sync"
)

// Share divides a few slots (the connections reads may use) among clients
// so that one client cannot take them all: a client holds at most perClient
// slots at once, and a slot given back goes to the waiting clients in turn,
// not to whichever asked first, so a client that sends one request at a
// time is not queued behind another's hundred. Within a client, requests
// are served in the order they came. It is the per-tenant query
// parallelism and fair queue of Loki's query scheduler, in one process.
type Share struct {
	mu        sync.Mutex
	free      int
	perClient int
	clients   map[string]*sharer
	// turn lists the clients with waiters and room to hold one more slot,
	// in the order they are served.
	turn []*sharer
}

type sharer struct {
	key     string
	held    int
	waiting []chan struct{}
	inTurn  bool
}

// NewShare returns a share of slots, of which one client holds at most
// perClient (at least 1, at most slots).
func NewShare(slots, perClient int) *Share {
	return &Share{free: slots, perClient: max(1, min(perClient, slots)), clients: map[string]*sharer{}}
}

// Acquire waits for a slot for client, or returns ctx's error. The caller
// must call release once done with the slot.
func (s *Share) Acquire(ctx context.Context, client string) (release func(), err error) {
	s.mu.Lock()
	c := s.clients[client]
	if c == nil {
		c = &sharer{key: client}
		s.clients[client] = c
	}
	if s.free > 0 && c.held < s.perClient && len(c.waiting) == 0 {
		s.free--
		c.held++
		s.mu.Unlock()
		return s.releaser(c), nil
	}
	ready := make(chan struct{})
	c.waiting = append(c.waiting, ready)
	if c.held < s.perClient && !c.inTurn {
		c.inTurn = true
		s.turn = append(s.turn, c)
	}
	s.mu.Unlock()

	select {
	case <-ready:
		return s.releaser(c), nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ready: // handed a slot as ctx ended: give it on
			s.put(c)
		default:
			for i, w := range c.waiting {
				if w == ready {
					c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
					break
				}
			}
			s.forget(c)
		}
		return nil, ctx.Err()
	}
}

// releaser returns the release function of a slot c holds.
func (s *Share) releaser(c *sharer) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.put(c)
		})
	}
}

// put gives back a slot c held: to the next client in turn, if any waits,
// else to the free slots. s.mu must be held.
func (s *Share) put(c *sharer) {
	c.held--
	if c.held < s.perClient && len(c.waiting) > 0 && !c.inTurn {
		c.inTurn = true
		s.turn = append(s.turn, c)
	}
	s.forget(c)
	if len(s.turn) == 0 {
		s.free++
		return
	}
	next := s.turn[0]
	s.turn = s.turn[1:]
	next.inTurn = false
	ready := next.waiting[0]
	next.waiting = next.waiting[1:]
	next.held++
	close(ready)
	if len(next.waiting) > 0 && next.held < s.perClient {
		next.inTurn = true
		s.turn = append(s.turn, next)
	}
}

// forget drops c from the clients and the turn when it holds and awaits
// nothing. s.mu must be held.
func (s *Share) forget(c *sharer) {
	if len(c.waiting) > 0 {
		return
	}
	if c.inTurn {
		c.inTurn = false
		s.turn = removeSharer(s.turn, c)
	}
	if c.held == 0 {
		delete(s.clients, c.key)
	}
}

func removeSharer(turn []*sharer, c *sharer) []*sharer {
	for i, t := range turn {
		if t == c {
			return append(turn[:i], turn[i+1:]...)
		}
	}
	return turn
}
