// Command hangup is the abandoned-request drill: it starts a throwaway
// `valhalla serve` (its own PostgreSQL cluster in a temporary directory),
// runs mixed load in which clients hang up at random moments (queued in the
// group commit, mid-list, mid-export, mid-stream) and then all at once, and
// reads the server's log. It exits 1 if the server logged any ERROR line or
// a superfluous WriteHeader: a client that hung up is not a server error.
//
//	make hangup                       # bin/valhalla, 10 s, 16 workers
//	go run ./hangup -bin ../bin/valhalla -d 10s -workers 48 -hangup-every 1
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/valhalla", "the valhalla binary")
	dur := flag.Duration("d", 10*time.Second, "how long the load runs")
	workers := flag.Int("workers", 16, "concurrent clients")
	every := flag.Int("hangup-every", 10, "one request in N hangs up after 0–300 ms (streams always do)")
	flag.Parse()
	if err := run(*bin, *dur, *workers, *every); err != nil {
		fmt.Fprintln(os.Stderr, "hangup:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, workers, every int) error {
	dir, err := os.MkdirTemp("", "hangup")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as its own OS user, which must reach the data dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	var log syncBuffer
	cmd := exec.Command(bin, "serve", "-addr", addr, "-data-dir", dir)
	cmd.Env = append(os.Environ(), "VALHALLA_BOOTSTRAP_TOKEN=", "DATABASE_URL=")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	token, err := waitForToken(&log, "http://"+addr)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, log.String())
	}
	mark := log.Len()
	sent, abandoned := load("http://"+addr, token, dur, workers, every)
	// The server logs a request when its handler returns: wait until only
	// the asking request is in flight.
	if err := waitIdle("http://"+addr, token); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(log.String()[mark:]), "\n")
	statuses := map[string]int{}
	var bad []string
	for _, l := range lines {
		var e struct {
			Level, Msg, Route string
			Status            int
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			if strings.Contains(l, "superfluous") {
				bad = append(bad, l)
			}
			continue
		}
		if e.Level == "ERROR" || strings.Contains(l, "superfluous") {
			bad = append(bad, l)
		}
		if e.Msg == "request" {
			statuses[fmt.Sprintf("%s %d %s", e.Route, e.Status, e.Level)]++
		}
	}
	fmt.Printf("sent %d requests in %s with %d workers; %d abandoned by the client\n", sent, dur, workers, abandoned)
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %6d  %s\n", statuses[k], k)
	}
	fmt.Printf("ERROR or superfluous WriteHeader lines: %d\n", len(bad))
	if len(bad) > 0 {
		return fmt.Errorf("the server logged errors for abandoned requests:\n%s", strings.Join(bad, "\n"))
	}
	return nil
}

// load sends mixed requests until dur has passed, then stops every client at once.
func load(base, token string, dur time.Duration, workers, every int) (sent, abandoned int64) {
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	batch := `{"entries":[` + strings.Repeat(`{"message":"batch entry","context":{"k":"v"}},`, 199) + `{"message":"last"}]}`
	kinds := []struct{ method, path, body string }{
		{"POST", "/system/logs", `{"message":"hangup drill","level":"INFO"}`},
		{"POST", "/system/logs/batch", batch},
		{"GET", "/system/logs?limit=500", ""},
		{"GET", "/system/logs/feed?limit=1000", ""},
		{"GET", "/system/logs/export?format=ndjson", ""},
		{"GET", "/system/logs/stream", ""},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var nSent, nAbandoned atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := kinds[rand.IntN(len(kinds))]
				rctx, cancel := context.WithCancel(ctx)
				if rand.IntN(every) == 0 || strings.HasSuffix(k.path, "/stream") {
					rctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(300_000))*time.Microsecond)
				}
				req, _ := http.NewRequestWithContext(rctx, k.method, base+k.path, strings.NewReader(k.body))
				req.Header.Set("Authorization", "Bearer "+token)
				if k.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				nSent.Add(1)
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					nAbandoned.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return nSent.Load(), nAbandoned.Load()
}

var tokenRE = regexp.MustCompile(`vhl_[A-Za-z0-9_]+`)

// waitForToken waits for the server to print its first token and answer readiness.
func waitForToken(log *syncBuffer, base string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if tok := tokenRE.FindString(log.String()); tok != "" {
			if resp, err := http.Get(base + "/system-health/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return tok, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("the server did not print a token and become ready within 2 minutes")
}

// waitIdle polls the server's metrics until one request (the poll itself) is in flight.
func waitIdle(base, token string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", base+"/system-health/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var m struct {
				InFlight int `json:"requests_in_flight"`
			}
			err = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 && m.InFlight <= 1 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("requests still in flight a minute after the load stopped")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer is a bytes.Buffer the server's output goroutines and the reader share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}
