// Package ratelimit bounds what one client (a token, or an address for
// unauthenticated requests) may ask of one server: requests per second and
// log entries per second (token buckets, golang.org/x/time/rate) and
// requests in flight. The limits are per server: behind a load balancer
// that spreads a client over n servers, it gets n times as much.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Policy is what one client may do; a zero field does not limit.
type Policy struct {
	// Requests is the sustained requests per second; a client may burst
	// to one second's worth.
	Requests float64
	// Entries is the sustained log entries written per second; a client
	// may burst to one second's worth or MinEntryBurst, whichever is more,
	// so that one full batch always fits.
	Entries float64
	// InFlight is how many requests a client may have in flight at once.
	InFlight int
	// Read is the sustained bytes of pages read per second; a client may
	// burst to one second's worth or MinReadBurst, whichever is more. A
	// page is charged once it has been read (see Read), so the client's
	// next page waits for what the last one cost.
	Read float64
}

// MinEntryBurst is the smallest entry burst: the largest batch.
const MinEntryBurst = 1000

// MinReadBurst is the smallest read burst: two of the largest pages.
const MinReadBurst = 8 << 20

// maxClients bounds the clients remembered; past it, those idle for
// idleAfter are forgotten (their buckets were full again anyway).
const (
	maxClients = 10_000
	idleAfter  = time.Minute
)

// Refusal is the error of a request over its client's limit: which
// policy refused it, and when to retry.
type Refusal struct {
	// Policy is "requests", "entries", "in-flight" or "read-bytes".
	Policy string
	// Quota is the policy's limit: per second, or at once for in-flight.
	Quota float64
	// RetryAfter is when a retry may succeed.
	RetryAfter time.Duration
}

func (r *Refusal) Error() string {
	if r.Policy == "read-bytes" {
		return fmt.Sprintf("over the limit of %s bytes of pages read per second", strconv.FormatFloat(r.Quota, 'f', -1, 64))
	}
	unit := "per second"
	if r.Policy == "in-flight" {
		unit = "at once"
	}
	return fmt.Sprintf("over the limit of %s %s %s", strconv.FormatFloat(r.Quota, 'f', -1, 64), r.Policy, unit)
}

// RetryAfterSeconds is RetryAfter in whole seconds, at least 1, for the
// Retry-After header.
func (r *Refusal) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(r.RetryAfter.Seconds())))
}

// Header returns the IETF RateLimit-Policy and RateLimit header values
// (draft-ietf-httpapi-ratelimit-headers) for the refusal: the quota q
// per window w seconds (a rate under one per second is one per so many
// seconds), none remaining, and the seconds until there is some.
func (r *Refusal) Header() (policy, limit string) {
	q := math.Max(1, math.Ceil(r.Quota))
	if r.Policy == "in-flight" {
		return fmt.Sprintf("%q;q=%.0f", r.Policy, q), fmt.Sprintf("%q;r=0", r.Policy)
	}
	w := math.Max(1, math.Round(q/r.Quota))
	unit := ""
	if r.Policy == "read-bytes" {
		unit = `;qu="content-bytes"`
	}
	return fmt.Sprintf("%q;q=%.0f;w=%.0f%s", r.Policy, q, w, unit), fmt.Sprintf("%q;r=0;t=%d", r.Policy, r.RetryAfterSeconds())
}

// Limiter tracks every client's buckets and requests in flight. The zero
// value is not usable; use New.
type Limiter struct {
	mu      sync.Mutex
	clients map[string]*client
	now     func() time.Time
}

type client struct {
	policy   Policy
	requests *rate.Limiter
	entries  *rate.Limiter
	read     *rate.Limiter
	inFlight int
	lastSeen time.Time
}

// New returns a limiter with no client yet.
func New() *Limiter {
	return &Limiter{clients: map[string]*client{}, now: time.Now}
}

// get returns key's client under p, making it (or adapting it to a
// changed p) as needed. l.mu must be held.
func (l *Limiter) get(key string, p Policy, now time.Time) *client {
	c, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= maxClients {
			l.prune(now)
		}
		c = &client{}
		l.clients[key] = c
	}
	if !ok || c.policy != p {
		c.policy = p
		c.requests = bucket(p.Requests, 1)
		c.entries = bucket(p.Entries, MinEntryBurst)
		c.read = bucket(p.Read, MinReadBurst)
	}
	c.lastSeen = now
	return c
}

// bucket is a token bucket of perSecond, bursting to a second's worth or
// least, or nil for no limit.
func bucket(perSecond float64, least int) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(least, int(math.Ceil(perSecond))))
}

// prune forgets clients idle for idleAfter with nothing in flight, or all
// idle ones when that is not enough. l.mu must be held.
func (l *Limiter) prune(now time.Time) {
	for key, c := range l.clients {
		if c.inFlight == 0 && now.Sub(c.lastSeen) > idleAfter {
			delete(l.clients, key)
		}
	}
	if len(l.clients) < maxClients {
		return
	}
	for key, c := range l.clients {
		if c.inFlight == 0 {
			delete(l.clients, key)
		}
	}
}

// Begin admits one request of key under p, or returns a *Refusal. The
// caller must call release once the request has been served.
func (l *Limiter) Begin(key string, p Policy) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.get(key, p, now)
	if p.InFlight > 0 && c.inFlight >= p.InFlight {
		return nil, &Refusal{Policy: "in-flight", Quota: float64(p.InFlight), RetryAfter: time.Second}
	}
	if err := take(c.requests, "requests", p.Requests, 1, now); err != nil {
		return nil, err
	}
	c.inFlight++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			c.inFlight--
		})
	}, nil
}

// Entries takes n entries from key's bucket under p, or returns a
// *Refusal and takes none.
func (l *Limiter) Entries(key string, p Policy, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return take(l.get(key, p, now).entries, "entries", p.Entries, n, now)
}

// ReadAllowed returns a *Refusal when key's pages under p have cost more
// than its read rate has given back: the bucket is in debt.
func (l *Limiter) ReadAllowed(key string, p Policy) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.get(key, p, now).read
	if b == nil {
		return nil
	}
	if debt := -b.TokensAt(now); debt > 0 {
		wait := time.Duration(debt / p.Read * float64(time.Second))
		return &Refusal{Policy: "read-bytes", Quota: p.Read, RetryAfter: wait}
	}
	return nil
}

// Read charges n bytes read to key's bucket under p, into debt if need
// be (a page is served once it has been read; ReadAllowed refuses the next
// one until the debt is paid back).
func (l *Limiter) Read(key string, p Policy, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.get(key, p, now).read
	if b == nil || n <= 0 {
		return
	}
	b.ReserveN(now, min(n, b.Burst())) // never waited for: a debt
}

// take takes n from b, or returns a *Refusal saying when n will be there.
func take(b *rate.Limiter, policy string, quota float64, n int, now time.Time) error {
	if b == nil {
		return nil
	}
	if b.AllowN(now, n) {
		return nil
	}
	wait := time.Second
	if r := b.ReserveN(now, n); r.OK() {
		wait = r.DelayFrom(now)
		r.CancelAt(now)
	}
	return &Refusal{Policy: policy, Quota: quota, RetryAfter: wait}
}
