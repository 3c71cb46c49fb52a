package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// duty is a job that one server of a database does at a time, and how a
// user sees which server holds it: the gauge every server exports (1 on
// the holder, 0 on the others) and the session advisory lock the holder's
// connection has on the database (pg_locks).
type duty struct {
	name  string
	gauge string
	lock  int64
}

// duties are the jobs one server at a time does; the three-server test
// checks each: exactly one holder at any time, and another server takes
// the duty over when its holder is killed.
var duties = []duty{
	{name: "ledger sequencer", gauge: "valhalla_ledger_sequencer", lock: ledger.SequencerLock},
	{name: "partition maintainer", gauge: "valhalla_lifecycle_maintainer", lock: lifecycle.MaintainerLock},
	{name: "retention runner", gauge: "valhalla_lifecycle_retention_runner", lock: lifecycle.RetentionLock},
}

// balancer is a round-robin load balancer as an http.RoundTripper: each
// request goes to the next backend that is up, whatever host its URL
// names. A backend that refuses a connection is taken out, and the request
// goes to the next one (it was never sent); any other failure is the
// client's to see, as behind a real balancer.
type balancer struct {
	base     http.RoundTripper
	backends []*url.URL

	mu   sync.Mutex
	next int
	down []bool
}

func newBalancer(t *testing.T, urls ...string) *balancer {
	t.Helper()
	b := &balancer{base: http.DefaultTransport, down: make([]bool, len(urls))}
	for _, u := range urls {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		b.backends = append(b.backends, parsed)
	}
	return b
}

// pick returns the next backend that is up, or -1.
func (b *balancer) pick() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		i := b.next
		b.next = (b.next + 1) % len(b.backends)
		if !b.down[i] {
			return i
		}
	}
	return -1
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		i := b.pick()
		if i < 0 {
			return nil, errors.New("balancer: no backend is up")
		}
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = b.backends[i].Scheme, b.backends[i].Host, ""
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := b.base.RoundTrip(r)
		var op *net.OpError
		if err != nil && errors.As(err, &op) && op.Op == "dial" && (req.Body == nil || req.GetBody != nil) {
			b.mu.Lock()
			b.down[i] = true
			b.mu.Unlock()
			continue
		}
		return resp, err
	}
}

// lbURL is the balancer's address; it sends each request to a backend.
const lbURL = "http://valhalla.lb.invalid"

// cluster is three `valhalla serve` processes on one database, the
// instances that talk to each, and one that talks to the balancer in
// front of them.
type cluster struct {
	procs   []*process
	servers []*instance
	lb      *instance
	pool    *pgxpool.Pool
	keyFile string
	// alive is false for a server that was killed.
	alive []bool
}

// startCluster builds the binary and starts n servers on a fresh database,
// sealing every 100 ms and keeping entries ten years, with one bootstrap
// token and one ledger key. The first server takes every duty (duties)
// before the others start.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	built := time.Now()
	bin := buildBinary(t)
	t.Logf("binary built in %v", time.Since(built).Round(time.Millisecond))
	dbURL := pgtest.NewDatabase(t)
	token := auth.Mint()
	c := &cluster{keyFile: filepath.Join(t.TempDir(), "ledger.key")}
	env := map[string]string{"DATABASE_URL": dbURL, "VALHALLA_BOOTSTRAP_TOKEN": token,
		"VALHALLA_LEDGER_KEY_FILE": c.keyFile, "VALHALLA_SEAL_INTERVAL": "100ms", "VALHALLA_DB_READ_TIMEOUT": "60s",
		"VALHALLA_RETENTION": "3650d"}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	pool, err := database.Open(ctx(t), dbURL, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c.pool = pool
	var urls []string
	for i := range n {
		p := startServeProcess(t, bin, envList)
		in := &instance{URL: p.url, Token: token, Output: p.out, env: env}
		in.connect(t, http.DefaultTransport)
		c.procs, c.servers, c.alive = append(c.procs, p), append(c.servers, in), append(c.alive, true)
		urls = append(urls, p.url)
		if i == 0 {
			c.waitDuties(t, 30*time.Second)
		}
	}
	c.lb = &instance{URL: lbURL, Token: token, env: env}
	c.lb.connect(t, newBalancer(t, urls...))
	return c
}

// gauge reads the value of the unlabelled metric name from the server's
// /metrics; ok is false when the server does not answer or has no such
// metric.
func gauge(in *instance, name string) (v float64, ok bool) {
	resp, err := in.Anon.Get(in.URL + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, found := strings.CutPrefix(line, name+" "); found {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// lockHolders counts the sessions holding the advisory lock key on the
// database.
func lockHolders(t *testing.T, pool *pgxpool.Pool, key int64) (int, error) {
	var n int
	err := pool.QueryRow(ctx(t), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read pg_locks: %w", err)
	}
	return n, nil
}

// holders returns the live servers whose gauge for d says they hold it.
func (c *cluster) holders(d duty) []int {
	var out []int
	for i, in := range c.servers {
		if !c.alive[i] {
			continue
		}
		if v, ok := gauge(in, d.gauge); ok && v == 1 {
			out = append(out, i)
		}
	}
	return out
}

// waitDuties polls until each duty has exactly one holder among the live
// servers, by its gauge, and one session holding its lock, and returns
// the holder of each.
func (c *cluster) waitDuties(t *testing.T, within time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		held := map[string]int{}
		var last []string
		for _, d := range duties {
			h := c.holders(d)
			locks, err := lockHolders(t, c.pool, d.lock)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) > 1 {
				t.Fatalf("%s: servers %v all say they hold it", d.name, h)
			}
			if len(h) == 1 && locks == 1 {
				held[d.name] = h[0]
			}
			last = append(last, fmt.Sprintf("%s: servers %v by %s, %d sessions hold its lock", d.name, h, d.gauge, locks))
		}
		if len(held) == len(duties) {
			return held
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every duty has one holder after %v: %s", within, strings.Join(last, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sampleDuties checks, every 20 ms until stop is closed, that no duty has
// two holders among the live servers or two sessions holding its lock,
// and returns how many samples it took.
func (c *cluster) sampleDuties(t *testing.T, stop <-chan struct{}) int {
	samples := 0
	for {
		for _, d := range duties {
			if h := c.holders(d); len(h) > 1 {
				t.Errorf("%s: servers %v all say they hold it at once", d.name, h)
			}
			if n, err := lockHolders(t, c.pool, d.lock); err != nil || n > 1 {
				t.Errorf("%s: %d sessions hold its lock (%v)", d.name, n, err)
			}
		}
		samples++
		select {
		case <-stop:
			return samples
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestSeveralServersOneDatabase: three `valhalla serve` processes on one
// database behind a round-robin balancer, as a deployment runs. Writes
// through each are readable through every other; an idempotent retry that
// lands on another server is written once and answered with the first
// response; a token revoked through one server is refused by all three
// within auth.RevocationDelay; each duty (duties) has exactly one holder at
// any time. The sequencer is killed with kill -9 while eight writers write
// through the balancer: another server takes over its duties and seals
// everything, every acknowledged write is stored and in the feed once with
// no gap in seq, retries of the unanswered ones land on the survivors and
// write nothing twice, and valhalla verify passes.
func TestSeveralServersOneDatabase(t *testing.T) {
	t.Parallel()
	started := time.Now()
	c := startCluster(t, 3)
	t.Logf("three servers up in %v", time.Since(started).Round(time.Millisecond))

	t.Run("writes through each are read through every other", func(t *testing.T) {
		var ids []api.SystemLog
		for i, in := range c.servers {
			ids = append(ids, write(t, in, api.SystemLogCreate{Message: fmt.Sprintf("from server %d", i), Category: ptr("multi")}, ""))
		}
		for j, in := range c.servers {
			for i, e := range ids {
				got, err := in.Client.GetSystemLogWithResponse(ctx(t), e.Id, &api.GetSystemLogParams{})
				if err != nil || got.JSON200 == nil || got.JSON200.Message != e.Message {
					t.Errorf("server %d reading the entry written through server %d: %v %s", j, i, err, got.Body)
				}
			}
			if page := list(t, in, api.ListSystemLogsParams{Category: ptr("multi")}); len(page.Items) != len(ids) {
				t.Errorf("server %d lists %d entries of category multi, want %d", j, len(page.Items), len(ids))
			}
		}
	})

	t.Run("an idempotent retry on another server is written once", func(t *testing.T) {
		body := `{"message":"once across servers","category":"multi-idem"}`
		first, firstBody := c.servers[0].idempotent(t, c.lb.Token, "multi-1", "/system/logs", body)
		for i, in := range c.servers[1:] {
			resp, got := in.idempotent(t, c.lb.Token, "multi-1", "/system/logs", body)
			if resp.StatusCode != 201 || first.StatusCode != 201 || unsealed(t, got) != unsealed(t, firstBody) ||
				resp.Header.Get("Location") != first.Header.Get("Location") {
				t.Errorf("retry on server %d: %d %s, want the first response %d %s", i+1, resp.StatusCode, got, first.StatusCode, firstBody)
			}
		}
		// Racing requests with one key, spread across the servers.
		var wg sync.WaitGroup
		ids := make([]string, 9)
		for i := range ids {
			wg.Go(func() {
				resp, got := c.lb.idempotent(t, c.lb.Token, "multi-race", "/system/logs/batch",
					`{"entries":[{"message":"race","category":"multi-idem"},{"message":"race 2","category":"multi-idem"}]}`)
				var batch api.SystemLogBatch
				if resp.StatusCode != 201 || json.Unmarshal(got, &batch) != nil || len(batch.Items) != 2 {
					t.Errorf("racing batch %d: %d %s", i, resp.StatusCode, got)
					return
				}
				ids[i] = batch.Items[0].Id.String() + "," + batch.Items[1].Id.String()
			})
		}
		wg.Wait()
		for i := range ids {
			if ids[i] != ids[0] {
				t.Errorf("racing batch %d got %s, batch 0 %s", i, ids[i], ids[0])
			}
		}
		if got := list(t, c.lb, api.ListSystemLogsParams{Category: ptr("multi-idem")}).Items; len(got) != 3 {
			t.Errorf("%d entries stored of category multi-idem, want 3 (one write, one batch of two)", len(got))
		}
	})

	t.Run("a token revoked through one server is refused by all", func(t *testing.T) {
		token := c.lb.newToken(t, "multi-revoked", "logs:read")
		for i, in := range c.servers {
			// Each server has the token in its cache before the revocation.
			if resp, body := in.as(t, token, "GET", "/system/logs", ""); resp.StatusCode != 200 {
				t.Fatalf("server %d with the new token: %d %s", i, resp.StatusCode, body)
			}
		}
		if _, err := c.lb.tokens(t, "revoke", "multi-revoked"); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		var took []string
		for i, in := range c.servers {
			took = append(took, fmt.Sprintf("server %d %v", i, in.refusedWithin(t, token, revoked).Round(time.Millisecond)))
		}
		t.Logf("revoked token refused after tokens revoke returned: %s (promise: %v)", strings.Join(took, ", "), auth.RevocationDelay)
	})

	var before, after int
	t.Run("kill -9 of the sequencer mid-load", func(t *testing.T) {
		held := c.waitDuties(t, 30*time.Second)
		sequencer := held["ledger sequencer"]
		for _, d := range duties {
			if held[d.name] != sequencer {
				t.Fatalf("the %s is server %d, the sequencer server %d: the first server up should hold every duty", d.name, held[d.name], sequencer)
			}
			// pg_stat_activity names the server holding the lock.
			var app string
			err := c.pool.QueryRow(ctx(t), `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
				WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND l.classid = ($1::bigint >> 32)::oid
				AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1`, d.lock).Scan(&app)
			if pid := c.procs[sequencer].cmd.Process.Pid; err != nil || !strings.HasPrefix(app, "valhalla ") ||
				!strings.HasSuffix(app, fmt.Sprintf(" pid %d", pid)) {
				t.Errorf("the session holding the %s lock is named %q (%v), want valhalla … pid %d", d.name, app, err, pid)
			}
		}

		l := newLoad(t, c.lb.Token)
		l.client = &http.Client{Transport: c.lb.Anon.Transport, Timeout: 20 * time.Second}
		stopWriting := make(chan struct{})
		written := make(chan struct{})
		go func() { l.stream(lbURL, stopWriting, false); close(written) }()

		stopSampling := make(chan struct{})
		sampled := make(chan int)
		go func() { sampled <- c.sampleDuties(t, stopSampling) }()
		l.waitAcks(t, 300)
		// Sampling pauses across the kill: a server scraped just before it
		// and its successor scraped just after would look like two holders.
		close(stopSampling)
		before = <-sampled

		c.procs[sequencer].kill9(t)
		c.alive[sequencer] = false
		killed := time.Now()
		heldAfter := c.waitDuties(t, 15*time.Second)
		takeover := time.Since(killed)
		for _, d := range duties {
			if heldAfter[d.name] == sequencer {
				t.Fatalf("%s is still held by the killed server", d.name)
			}
		}
		stopSampling = make(chan struct{})
		go func() { sampled <- c.sampleDuties(t, stopSampling) }()
		l.waitAcks(t, 300)
		close(stopWriting)
		<-written
		close(stopSampling)
		after = <-sampled

		// Every unanswered write with a key is retried through the
		// balancer, so on a survivor: each lands once.
		f := l.settle(t, lbURL, time.Now())
		if f.found != f.acknowledged || f.duplicates != 0 {
			t.Errorf("found %d of %d acknowledged writes, %d duplicates", f.found, f.acknowledged, f.duplicates)
		}

		// The survivors drain what waited to be sealed.
		deadline := time.Now().Add(30 * time.Second)
		for i, in := range c.servers {
			for c.alive[i] {
				if v, ok := gauge(in, "valhalla_ledger_unsealed_entries"); ok && v == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server %d still reports unsealed entries 30s after the load", i)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		size := waitSealed(t, c.pool)
		var fw follower
		fw.poll(t, c.lb.Client, api.GetSystemLogFeedParams{Limit: ptr(int32(500))})
		for i, s := range fw.seqs {
			if s != int64(i+1) {
				t.Fatalf("entry %d of the feed has seq %d: a gap or a repeat across the kill", i+1, s)
			}
		}
		if int64(len(fw.seqs)) != size {
			t.Errorf("the feed has %d entries, the tree %d", len(fw.seqs), size)
		}
		checkFollowed(t, c.pool, &fw, "")
		inFeed := map[string]bool{}
		for _, id := range fw.ids {
			inFeed[id] = true
		}
		for i, ids := range l.acked {
			for _, id := range ids {
				if !inFeed[id] {
					t.Errorf("acknowledged write %d: entry %s is not in the feed", i, id)
				}
			}
		}
		t.Logf("kill -9 of the server holding every duty (server %d) under %d writers through the balancer: taken over in %v (now %v); "+
			"writes attempted %d, acknowledged %d, all found and in the feed; unanswered %d (%d with a key, retried on the survivors, "+
			"%d of them had been committed); duplicates %d; tree %d entries, seq 1..%d with no gap; %d+%d samples with one holder per duty",
			sequencer, writers, takeover.Round(time.Millisecond), heldAfter, f.attempted, f.acknowledged, f.pending, f.pending-f.keylessPending,
			f.committedUnacked, f.duplicates, size, size, before, after)
	})

	// valhalla verify reads the ledger through a survivor.
	survivor := c.servers[0]
	for i, in := range c.servers {
		if c.alive[i] {
			survivor = in
		}
	}
	key, err := ledger.LoadOrCreateKey(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	if err := run(ctx(t), []string{"verify", "--server", survivor.URL, "--token", c.lb.Token, "--key", key.Verifier},
		func(string) string { return "" }, &out, &out); err != nil {
		t.Errorf("valhalla verify after the kill: %v\n%s", err, out.String())
	}
	t.Logf("three servers, one database: %s; %v in all", strings.TrimSpace(out.String()), time.Since(started).Round(time.Millisecond))
}
