package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/apiclient"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// sequencing reports whether the server at url says it is the sequencer.
func sequencing(t *testing.T, client *http.Client, url string) bool {
	t.Helper()
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), "\nvalhalla_ledger_sequencer 1\n")
}

// TestSequencerFailover: two servers on one database, writes to both;
// exactly one seals. It is killed with kill -9 mid-load; the other takes
// over within 5 s; a follower of the feed sees every entry once with no
// gap across the failover, and valhalla verify passes.
func TestSequencerFailover(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	url := pgtest.NewDatabase(t)
	token := auth.Mint()
	env := []string{"DATABASE_URL=" + url, "VALHALLA_BOOTSTRAP_TOKEN=" + token,
		"VALHALLA_LEDGER_KEY_FILE=" + filepath.Join(t.TempDir(), "ledger.key"), "VALHALLA_SEAL_INTERVAL=100ms"}
	servers := []*process{startServeProcess(t, bin, env), startServeProcess(t, bin, env)}
	plain := &http.Client{Timeout: 10 * time.Second}

	leader := -1
	deadline := time.Now().Add(30 * time.Second)
	for leader < 0 {
		a, b := sequencing(t, plain, servers[0].url), sequencing(t, plain, servers[1].url)
		switch {
		case a && b:
			t.Fatal("both servers are sequencers")
		case a:
			leader = 0
		case b:
			leader = 1
		}
		if time.Now().After(deadline) {
			t.Fatal("no server became the sequencer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	standby := servers[1-leader]

	l := newLoad(t, token)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { l.stream(servers[leader].url, nil, true) })
		wg.Go(func() { l.stream(standby.url, stop, false) })
		wg.Wait()
		close(done)
	}()
	client, err := apiclient.New(standby.url, api.WithHTTPClient(&http.Client{Transport: bearer{token: token, base: &conformance{t: t, base: http.DefaultTransport}}, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	var f follower
	var polling atomic.Bool
	polling.Store(true)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for polling.Load() {
			f.poll(t, client, api.GetSystemLogFeedParams{Limit: ptr(int32(200))})
			time.Sleep(20 * time.Millisecond)
		}
	}()

	l.waitAcks(t, 300)
	servers[leader].kill9(t)
	killed := time.Now()
	for !sequencing(t, plain, standby.url) {
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("the standby did not take over within 5s of the kill")
		}
		time.Sleep(10 * time.Millisecond)
	}
	takeover := time.Since(killed)
	l.waitAcks(t, 300)
	close(stop)
	<-done
	polling.Store(false)
	<-followed

	pool, err := database.Open(ctx(t), url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	size := waitSealed(t, pool)
	f.poll(t, client, api.GetSystemLogFeedParams{Limit: ptr(int32(200))})
	for i, s := range f.seqs {
		if s != int64(i+1) {
			t.Fatalf("entry %d followed has seq %d: a gap or a repeat across the failover", i+1, s)
		}
	}
	if int64(len(f.seqs)) != size {
		t.Errorf("followed %d entries, the tree has %d", len(f.seqs), size)
	}
	checkFollowed(t, pool, &f, "")

	key, err := ledger.LoadOrCreateKey(strings.TrimPrefix(env[2], "VALHALLA_LEDGER_KEY_FILE="))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	err = run(ctx(t), []string{"verify", "--server", standby.url, "--token", token, "--key", key.Verifier}, func(string) string { return "" }, &out, &out)
	if err != nil {
		t.Errorf("verify after the failover: %v\n%s", err, out.String())
	}
	t.Logf("sequencer failover: takeover %s after kill -9; %d entries sealed, followed once each with no gap; %s",
		takeover.Round(time.Millisecond), size, strings.TrimSpace(out.String()))
}
