package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/ratelimit"
)

// probes are never limited by address: they are cheap, and a load
// balancer that saw them refused would take the server out of rotation, so
// a stranger's flood could take every server out.
var probes = map[string]bool{"/system-health/live": true, "/system-health/ready": true}

// limitSlot holds what a request took from the limiter, and its lane
// among heavy requests, given back when it has been served.
type limitSlot struct {
	release func()
	heavy   func()
}

type limitSlotKey struct{}

// limitRequests admits each request under its client's limits: one
// without an Authorization header (but the probes) under its address's
// at once; one with
// a token under the token's once authenticate has verified it (under the
// address's when it fails). What a request took is given back when it has
// been served.
func (s *server) limitRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slot := &limitSlot{}
		defer func() {
			if slot.release != nil {
				slot.release()
			}
			if slot.heavy != nil {
				slot.heavy()
			}
		}()
		if r.Header.Get("Authorization") == "" && !probes[r.URL.Path] {
			release, err := s.limiter.Begin(addressKey(r), s.Limits.Address)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			slot.release = release
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), limitSlotKey{}, slot)))
	})
}

// authenticate is the validator's authentication hook: auth's Check, then
// the caller's limits. A token that fails counts against its address, and
// is refused as over the limit once the address is.
func (s *server) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	slot, _ := ctx.Value(limitSlotKey{}).(*limitSlot)
	checkErr := s.Tokens.Check(ctx, in)
	caller, ok := auth.FromContext(ctx)
	if slot == nil || slot.release != nil {
		return checkErr // the address was charged already
	}
	key, policy := addressKey(in.RequestValidationInput.Request), s.Limits.Address
	if ok {
		key, policy = "token:"+caller.Name, s.tokenPolicy(caller)
	}
	release, err := s.limiter.Begin(key, policy)
	if err != nil {
		return err
	}
	slot.release = release
	return checkErr
}

// HeavyBytes is how large a request body or a page of entries is before
// its request is heavy: decoding, validating, storing or encoding it takes
// a core for some milliseconds (a 16 MiB batch about a second). It is a
// single entry's largest body: single writes are never heavy.
const HeavyBytes = MaxBodyBytes

// HeavyLanes is how many heavy requests are served at once: half the
// cores Go runs on, at least one, so that however many clients send 16 MiB
// batches or read pages of the largest entries, the other half is left
// for everyone else's small requests, which would otherwise wait for a
// core behind them.
func HeavyLanes() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// enterHeavy waits for a lane among the heavy requests (see HeavyLanes),
// which the clients take in turn, one lane at a time each, and holds it
// until the request has been served. It is a no-op for a request that
// holds one already, and returns ctx's error if the client goes first.
func (s *server) enterHeavy(ctx context.Context) error {
	slot, _ := ctx.Value(limitSlotKey{}).(*limitSlot)
	if slot == nil || slot.heavy != nil {
		return nil
	}
	client := ""
	if caller, ok := auth.FromContext(ctx); ok {
		client = "token:" + caller.Name
	} else if r, ok := ctx.Value(requestKey{}).(*http.Request); ok {
		client = addressKey(r)
	}
	release, err := s.heavy.Acquire(ctx, client)
	if err != nil {
		return err
	}
	slot.heavy = release
	return nil
}

// tokenPolicy is the server's token policy with caller's overrides.
func (s *server) tokenPolicy(caller auth.Principal) ratelimit.Policy {
	p := s.Limits.Token
	if l := caller.Limits.Requests; l != nil {
		p.Requests = *l
	}
	if l := caller.Limits.Entries; l != nil {
		p.Entries = *l
	}
	if l := caller.Limits.InFlight; l != nil {
		p.InFlight = int(*l)
	}
	if l := caller.Limits.Read; l != nil {
		p.Read = *l
	}
	return p
}

// readAllowed returns a *ratelimit.Refusal while the caller's pages have
// cost more bytes than its read rate has given back since.
func (s *server) readAllowed(ctx context.Context) error {
	caller, ok := auth.FromContext(ctx)
	if !ok {
		return nil
	}
	return s.limiter.ReadAllowed("token:"+caller.Name, s.tokenPolicy(caller))
}

// chargeRead charges a page of about n bytes, read already, to the
// caller's read rate.
func (s *server) chargeRead(ctx context.Context, n int) {
	if caller, ok := auth.FromContext(ctx); ok {
		s.limiter.Read("token:"+caller.Name, s.tokenPolicy(caller), n)
	}
}

// limitEntries takes n entries from caller's entry rate, or returns a
// *ratelimit.Refusal.
func (s *server) limitEntries(caller auth.Principal, n int) error {
	return s.limiter.Entries("token:"+caller.Name, s.tokenPolicy(caller), n)
}

// addressKey is the limiter's key for r's client address (without port).
func addressKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// rateLimitProblem is the 429 for a refusal, with Retry-After and the IETF
// RateLimit-Policy and RateLimit headers.
func rateLimitProblem(refusal *ratelimit.Refusal) *problem.Problem {
	policy, limit := refusal.Header()
	return problem.New(http.StatusTooManyRequests, problem.TypeRateLimited,
		"this client is "+refusal.Error()+" on this server; retry after the given delay").
		WithHeader("Retry-After", strconv.Itoa(refusal.RetryAfterSeconds())).
		WithHeader("RateLimit-Policy", policy).
		WithHeader("RateLimit", limit)
}

// asRefusal reports whether err is a rate limit refusal.
func asRefusal(err error) (*ratelimit.Refusal, bool) {
	var refusal *ratelimit.Refusal
	ok := errors.As(err, &refusal)
	return refusal, ok
}

// HeaderBytes is the size of r's request line and header fields as they
// were sent (give or take whitespace): what MaxHeaderBytes bounds.
func HeaderBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// limitHeaders answers a request whose headers exceed MaxHeaderBytes with
// a 431 problem, before anything else reads them.
func (s *server) limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit := s.Limits.MaxHeaderBytes; limit > 0 && HeaderBytes(r) > limit {
			w.Header().Set("Connection", "close")
			s.writeProblem(w, r, problem.New(http.StatusRequestHeaderFieldsTooLarge, problem.TypeHeadersTooLarge,
				"the request line and headers exceed the limit of "+strconv.Itoa(limit)+" bytes"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
