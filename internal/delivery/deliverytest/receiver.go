// Package deliverytest is a webhook destination for tests: a real HTTP
// server that verifies every delivery with the Standard Webhooks library
// (not the code that signs) and keeps what it received.
package deliverytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/delivery"
)

// Receiver is a webhook destination that verifies every request with the
// Standard Webhooks library and keeps the first copy of each webhook-id.
type Receiver struct {
	wh *standardwebhooks.Webhook
	// answer decides, for the nth request (from 0), the delay and the
	// status; after a delay the request is recorded even when the client
	// has given up, as a slow destination would.
	answer func(n int) (time.Duration, int)

	mu       sync.Mutex
	requests int
	ids      map[string]int // webhook-id: copies received
	seqs     []int64        // seqs of the first copy of each batch, in arrival order
	bad      []string
	// URL is where the receiver listens.
	URL string
}

// Requests returns how many requests arrived.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// NewReceiver starts a receiver of webhooks signed with secret until t
// ends; answer (nil: 204 at once) decides each answer, and may block.
func NewReceiver(t testing.TB, secret string, answer func(n int) (time.Duration, int)) *Receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{wh: wh, answer: answer, ids: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	n := r.requests
	r.requests++
	r.mu.Unlock()
	delay, status := time.Duration(0), http.StatusNoContent
	if r.answer != nil {
		delay, status = r.answer(n)
	}
	if delay > 0 {
		time.Sleep(delay) // the destination is slow; the deliverer may give up meanwhile
	}
	if status < 200 || status > 299 {
		w.WriteHeader(status)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad = append(r.bad, "read body: "+err.Error())
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.bad = append(r.bad, "signature: "+err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p delivery.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil || p.Type != delivery.WebhookType {
		r.bad = append(r.bad, fmt.Sprintf("payload %q: %v", body, err))
		return
	}
	id := req.Header.Get("webhook-id")
	r.ids[id]++
	if r.ids[id] == 1 {
		for _, raw := range p.Data.Entries {
			var e api.SystemLog
			if err := json.Unmarshal(raw, &e); err != nil || e.Seq == nil {
				r.bad = append(r.bad, fmt.Sprintf("entry %s: %v", raw, err))
				continue
			}
			r.seqs = append(r.seqs, *e.Seq)
		}
	}
	w.WriteHeader(status)
}

// Got returns the seqs received once duplicates are dropped by webhook-id,
// and how many batches came more than once.
func (r *Receiver) Got() ([]int64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	repeats := 0
	for _, n := range r.ids {
		if n > 1 {
			repeats++
		}
	}
	return slices.Clone(r.seqs), repeats
}

// WaitAll waits until r holds want (after dropping repeated webhook-ids),
// failing at once on a gap, a repeat or disorder.
func (r *Receiver) WaitAll(t testing.TB, want []int64) {
	t.Helper()
	r.WaitAllWithin(t, want, 60*time.Second)
}

// WaitAllWithin is WaitAll with the bound within.
func (r *Receiver) WaitAllWithin(t testing.TB, want []int64, within time.Duration) {
	t.Helper()
	Poll(t, within, "every entry received", func() (bool, string) {
		got, _ := r.Got()
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("received %v, want a prefix of %v (a gap, a repeat under a new id, or disorder)", got, want)
		}
		r.mu.Lock()
		bad := slices.Clone(r.bad)
		r.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("bad requests: %q", bad)
		}
		return len(got) == len(want), fmt.Sprintf("%d of %d received", len(got), len(want))
	})
}

// Poll checks cond every 10 ms, failing t after within with what it last
// said.
func Poll(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, within, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
