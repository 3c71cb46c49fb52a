package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/valhalla-platform/valhalla/internal/delivery"
	"github.com/valhalla-platform/valhalla/internal/duty"
)

// sinkSecret signs the benchmark sink's webhooks.
const sinkSecret = "whsec_YmVuY2htYXJrIHNpbmsgc2VjcmV0IDAxMjM0NQ=="

// receiver is the sink run's destination: a real HTTP server that verifies
// each webhook's signature with the Standard Webhooks library, as a
// consumer would, and counts the entries.
type receiver struct {
	wh *standardwebhooks.Webhook

	mu      sync.Mutex
	entries int64
	first   time.Time
	last    time.Time // of the latest delivery
	bad     int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err == nil {
		err = r.wh.Verify(body, req.Header)
	}
	var p delivery.WebhookPayload
	if err == nil {
		err = json.Unmarshal(body, &p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.first.IsZero() {
		r.first = time.Now()
	}
	r.entries += int64(len(p.Data.Entries))
	r.last = time.Now()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() (entries int64, first time.Time, bad int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries, r.first, r.bad
}

// sinkThroughput points a webhook sink (valhalla sinks create) of the
// server on dbURL at a local receiver while the whole sealed dataset waits
// to be delivered, and counts the entries received over twice the run's
// duration from the first delivery, or up to the last delivery when the
// backlog is delivered sooner: the rate at which a sink catches up with a
// backlog. The sink is deleted afterwards.
func sinkThroughput(ctx context.Context, env *benchEnv, dbURL string) (throughput, error) {
	wh, err := standardwebhooks.NewWebhook(sinkSecret)
	if err != nil {
		return throughput{}, err
	}
	r := &receiver{wh: wh}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return throughput{}, err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	sinks := func(args ...string) error {
		cmd := exec.CommandContext(ctx, env.cfg.Server, append([]string{"sinks"}, append(args, "--database-url", dbURL)...)...)
		cmd.Env = os.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("valhalla sinks %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	_ = sinks("delete", "bench") // left by an interrupted run
	if err := sinks("create", "--name", "bench", "--format", "webhook", "--url", "http://"+ln.Addr().String(), "--secret", sinkSecret); err != nil {
		return throughput{}, err
	}
	defer sinks("delete", "bench")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, first, _ := r.count(); !first.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			return throughput{}, fmt.Errorf("sink: no delivery within a minute of creating it")
		}
		if !duty.Wait(ctx, 20*time.Millisecond) {
			return throughput{}, ctx.Err()
		}
	}
	window := 2 * env.cfg.Duration
	before, _, _ := r.count()
	start := time.Now()
	duty.Wait(ctx, window)
	after, _, bad := r.count()
	if bad > 0 {
		return throughput{}, fmt.Errorf("sink: %d deliveries failed verification", bad)
	}
	// A sink that delivers the whole backlog before the window ends is
	// timed to its last delivery, not to the window's end.
	r.mu.Lock()
	elapsed := min(window, r.last.Sub(start))
	r.mu.Unlock()
	if elapsed <= 0 {
		elapsed = window
	}
	return throughput{Entries: after - before, Elapsed: elapsed}, nil
}
