package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// The durability tests drive concurrent writes, break the server
// mid-stream, and check that nothing acknowledged is lost and that retrying
// with the same Idempotency-Key never duplicates. Each write i is one entry
// or, for every fourth, a batch of three, with correlation ids d<i> (or
// d<i>.0 to d<i>.2), so the stored rows can be counted per write. Half the
// single writes carry no key, so they go through the group commit; those
// that get no answer cannot be retried, and are stored once or not at all.

// writers is how many clients write at once.
const writers = 8

// op is write number i: its key, path, body and how many entries it stores.
type op struct {
	i       int
	key     string // "" for none
	path    string
	body    string
	entries int
}

func opFor(i int) op {
	if i%4 == 3 {
		var entries []string
		for j := range 3 {
			entries = append(entries, fmt.Sprintf(`{"message":"write %d.%d","category":"durability","correlation_id":"d%d.%d"}`, i, j, i, j))
		}
		return op{i, "dur-" + strconv.Itoa(i), "/system/logs/batch", `{"entries":[` + strings.Join(entries, ",") + `]}`, 3}
	}
	key := "dur-" + strconv.Itoa(i)
	if i%4 == 1 || i%4 == 2 {
		key = ""
	}
	return op{i, key, "/system/logs", fmt.Sprintf(`{"message":"write %d","category":"durability","correlation_id":"d%d"}`, i, i), 1}
}

// load is a stream of writes and what became of each.
type load struct {
	t      *testing.T
	token  string
	client *http.Client

	next atomic.Int64
	acks atomic.Int64

	mu sync.Mutex
	// acked maps each acknowledged write to the ids its 201 gave.
	acked map[int][]string
	// pending are writes without a 201: no answer (the server died) or a 503.
	pending map[int]int
}

func newLoad(t *testing.T, token string) *load {
	return &load{
		t: t, token: token,
		client:  &http.Client{Transport: &conformance{t: t, base: http.DefaultTransport}, Timeout: 20 * time.Second},
		acked:   map[int][]string{},
		pending: map[int]int{},
	}
}

// send sends o once to url. It returns the status (0 when no answer came)
// and, for a 201, the stored ids.
func (l *load) send(url string, o op) (int, []string, http.Header) {
	req, err := http.NewRequest("POST", url+o.path, strings.NewReader(o.body))
	if err != nil {
		l.t.Error(err)
		return 0, nil, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	if o.key != "" {
		req.Header.Set("Idempotency-Key", o.key)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, nil, resp.Header
	}
	var ids []string
	if o.entries == 1 {
		var one api.SystemLog
		err = json.Unmarshal(body, &one)
		ids = []string{one.Id.String()}
	} else {
		var batch api.SystemLogBatch
		err = json.Unmarshal(body, &batch)
		for _, item := range batch.Items {
			ids = append(ids, item.Id.String())
		}
	}
	if err != nil || len(ids) != o.entries {
		l.t.Errorf("write %d: 201 with %s", o.i, body)
	}
	return resp.StatusCode, ids, resp.Header
}

// stream runs the writers against url until stop is closed; with
// untilDown, a writer also stops at the first request that gets no answer.
// Each new write takes the next number. It returns when all writers have.
func (l *load) stream(url string, stop <-chan struct{}, untilDown bool) {
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := opFor(int(l.next.Add(1)))
				status, ids, header := l.send(url, o)
				l.mu.Lock()
				if status == http.StatusCreated {
					l.acked[o.i] = ids
					l.acks.Add(1)
				} else {
					l.pending[o.i] = status
				}
				l.mu.Unlock()
				switch {
				case status == 0 && untilDown:
					return
				case status == http.StatusServiceUnavailable && header.Get("Retry-After") == "":
					l.t.Errorf("write %d: 503 without Retry-After", o.i)
				case status != 0 && status != http.StatusCreated && status != http.StatusServiceUnavailable:
					l.t.Errorf("write %d: status %d, want 201 or 503", o.i, status)
				}
				if status == http.StatusServiceUnavailable {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// waitAcks blocks until n more writes than before have been acknowledged.
func (l *load) waitAcks(t *testing.T, n int64) {
	t.Helper()
	want := l.acks.Load() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.acks.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes acknowledged in 60s", l.acks.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// figures are what a durability run counts.
type figures struct {
	attempted, acknowledged, found, pending, committedUnacked, duplicates int
	// found counts acknowledged writes whose every id is stored; pending,
	// writes without a 201; committedUnacked, pending writes whose retry
	// replayed entries stored before it.

	// The writes without a key: acknowledged, without a 201, and of those
	// the ones stored all the same.
	keylessAcked, keylessPending, keylessCommitted int
}

// keyless writes the line of figures about the writes without a key.
func (f figures) keyless() string {
	return fmt.Sprintf("without a key (group commit): %d acknowledged, all found; %d without a 201, not retried, %d of them stored once and the rest not at all",
		f.keylessAcked, f.keylessPending, f.keylessCommitted)
}

// settle retries every pending write with its key against url (each must
// now succeed, as a replay or as a first write), retries every acknowledged
// one too (each must replay the same ids), and checks the stored rows:
// every acknowledged id is there, and each write stored its entries once.
func (l *load) settle(t *testing.T, url string, since time.Time) figures {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := figures{attempted: len(l.acked) + len(l.pending), acknowledged: len(l.acked), pending: len(l.pending)}
	for i := range l.acked {
		if opFor(i).key == "" {
			f.keylessAcked++
		}
	}
	for i := range l.pending {
		if opFor(i).key == "" {
			f.keylessPending++
			continue // a retry would be another write
		}
		status, ids, _ := l.send(url, opFor(i))
		if status != http.StatusCreated {
			t.Errorf("retry of write %d: status %d, want 201", i, status)
			continue
		}
		l.acked[i] = ids
	}
	for i, want := range l.acked {
		if _, ok := l.pending[i]; ok || opFor(i).key == "" {
			continue
		}
		status, ids, _ := l.send(url, opFor(i))
		if status != http.StatusCreated || strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Errorf("retry of acknowledged write %d: %d %v, want a replay of %v", i, status, ids, want)
		}
	}

	stored := map[string]time.Time{} // id -> timestamp
	perWrite := map[string]int{}
	var cursor *string
	for {
		params := &api.ListSystemLogsParams{Category: ptr("durability"), Limit: ptr(int32(500)), Cursor: cursor}
		c, err := api.NewClientWithResponses(url, api.WithHTTPClient(l.client), api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+l.token)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		page, err := c.ListSystemLogsWithResponse(context.Background(), params)
		if err != nil || page.JSON200 == nil {
			t.Fatalf("list: %v %d", err, page.StatusCode())
		}
		for _, e := range page.JSON200.Items {
			stored[e.Id.String()] = e.Timestamp
			write, _, _ := strings.Cut(e.CorrelationId, ".")
			perWrite[write]++
		}
		if page.JSON200.NextCursor == nil {
			break
		}
		cursor = page.JSON200.NextCursor
	}
	for i, ids := range l.acked {
		all := true
		for _, id := range ids {
			if _, ok := stored[id]; !ok {
				all = false
				t.Errorf("write %d: acknowledged id %s is not stored", i, id)
			}
		}
		if all {
			if _, wasPending := l.pending[i]; !wasPending {
				f.found++
			}
		}
		if n := perWrite["d"+strconv.Itoa(i)]; n != opFor(i).entries {
			f.duplicates += max(n-opFor(i).entries, 0)
			t.Errorf("write %d stored %d entries, want %d", i, n, opFor(i).entries)
		}
	}
	for i := range l.pending {
		if opFor(i).key != "" {
			continue
		}
		switch n := perWrite["d"+strconv.Itoa(i)]; {
		case n == 1:
			f.keylessCommitted++
		case n > 1:
			f.duplicates += n - 1
			t.Errorf("unanswered write %d without a key stored %d times", i, n)
		}
	}
	if len(perWrite) != len(l.acked)+f.keylessCommitted {
		t.Errorf("%d writes have stored entries, want %d", len(perWrite), len(l.acked)+f.keylessCommitted)
	}
	for i := range l.pending {
		// A pending write whose retry replayed entries stored before the
		// retries began was committed but never acknowledged.
		if ids := l.acked[i]; len(ids) > 0 && stored[ids[0]].Before(since) {
			f.committedUnacked++
		}
	}
	return f
}

// process is `valhalla serve` running as a child process, so that it can be
// killed with SIGKILL.
type process struct {
	cmd *exec.Cmd
	out *syncBuffer
	url string
	// exited is closed once the process has exited and been reaped.
	exited chan struct{}
}

// built is the valhalla binary the tests running now share: the first
// of them builds it, the last to finish removes it, so that parallel
// tests link it once.
var built struct {
	mu    sync.Mutex
	users int
	dir   string
	err   error
}

// buildBinary builds the valhalla binary into a temp dir, or returns the
// one tests running now already share, and releases it at cleanup.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.users == 0 {
		built.dir, built.err = os.MkdirTemp("", "vhl-bin-")
		if built.err == nil {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(built.dir, "valhalla"), ".").CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build: %w\n%s", err, out)
				_ = os.RemoveAll(built.dir)
			}
		}
	}
	if built.err != nil {
		err := built.err
		if built.users == 0 {
			built.err = nil // the next test tries again
		}
		t.Fatal(err)
	}
	built.users++
	dir := built.dir
	t.Cleanup(func() {
		built.mu.Lock()
		defer built.mu.Unlock()
		if built.users--; built.users == 0 {
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("remove the binary: %v", err)
			}
		}
	})
	return filepath.Join(dir, "valhalla")
}

// startProcess runs the valhalla binary bin as `serve` on dataDir (the
// embedded default) with token as its bootstrap token and waits until it
// listens.
func startProcess(t *testing.T, bin, dataDir, token string) *process {
	t.Helper()
	return startServeProcess(t, bin, []string{"DATABASE_URL=", "VALHALLA_BOOTSTRAP_TOKEN=" + token}, "--data-dir", dataDir)
}

// startServeProcess runs the valhalla binary bin as `serve` with env added
// to the test's environment and args added to serve's, and waits until it
// listens.
func startServeProcess(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	addr, err := waitListening(p.out, done, 90*time.Second)
	if err != nil {
		t.Fatalf("valhalla serve: %v\n%s", err, p.out)
	}
	p.url = "http://" + addr
	return p
}

// kill9 kills the server with SIGKILL and waits until it is gone.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// killPostgres kills the PostgreSQL server running on dataDir, the
// postmaster and every process it forked, with SIGKILL, as a crash would,
// and waits until they are dead. (Each child leads its own process group,
// so killing the postmaster's group is not enough.)
func killPostgres(t *testing.T, dataDir string) {
	t.Helper()
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{postmaster}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(pid); ok && ppid == postmaster {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for {
			_, state, ok := procStat(pid)
			if !ok || state == 'Z' {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("PostgreSQL process %d survived SIGKILL", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// procStat returns the parent pid and state of process pid from /proc.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ..."; comm may itself contain ')'.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return ppid, fields[0][0], err == nil
}

// TestDurabilityAcrossKill9: writes stream in while the server is killed
// with SIGKILL twice, once alone (its PostgreSQL keeps running and the
// restart takes it over) and once with its PostgreSQL (the restart recovers
// from the write-ahead log). Every acknowledged write is stored, and
// retries with the same keys store nothing twice.
func TestDurabilityAcrossKill9(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dataDir := filepath.Join(pgtest.TempDir(t), "data")
	token := auth.Mint()
	l := newLoad(t, token)

	for crash, withPostgres := range []bool{false, true} {
		srv := startProcess(t, bin, dataDir, token)
		done := make(chan struct{})
		go func() { l.stream(srv.url, nil, true); close(done) }()
		l.waitAcks(t, 150)
		srv.kill9(t)
		if withPostgres {
			killPostgres(t, dataDir)
		}
		<-done
		t.Logf("crash %d (PostgreSQL killed too: %v): %d writes acknowledged so far", crash+1, withPostgres, l.acks.Load())
	}

	srv := startProcess(t, bin, dataDir, token)
	if pgLog, err := os.ReadFile(filepath.Join(dataDir, "postgres.log")); err != nil ||
		!strings.Contains(string(pgLog), "automatic recovery in progress") {
		t.Errorf("PostgreSQL did not recover from a crash at the last start (%v)", err)
	}
	f := l.settle(t, srv.url, time.Now())
	t.Logf("durability across kill -9: writes attempted %d, acknowledged %d, acknowledged and found after the crashes %d; "+
		"unacknowledged %d, retried with their keys: %d had been committed (replayed), the rest written once; duplicates %d",
		f.attempted, f.acknowledged, f.found, f.pending-f.keylessPending, f.committedUnacked, f.duplicates)
	t.Logf("durability across kill -9, writes %s", f.keyless())
	if f.found != f.acknowledged || f.duplicates != 0 {
		t.Errorf("found %d of %d acknowledged writes, %d duplicates", f.found, f.acknowledged, f.duplicates)
	}
}

// TestDurabilityAcrossDatabaseRestart: writes stream in while PostgreSQL is
// stopped and started again. Writes during the outage get 503 with
// Retry-After, acknowledged ones are all stored, writing recovers without a
// restart, and retrying the refused ones with their keys stores each once.
func TestDurabilityAcrossDatabaseRestart(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	if err := cluster.CreateDatabase(ctx(t), "durability"); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]string{"DATABASE_URL": cluster.ConnString("durability")})
	l := newLoad(t, srv.Token)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.stream(srv.URL, stop, false); close(done) }()

	l.waitAcks(t, 150)
	if err := cluster.StopServer(ctx(t)); err != nil {
		t.Fatal(err)
	}
	refusedDuring := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for _, status := range l.pending {
			if status == http.StatusServiceUnavailable {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for refusedDuring() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := cluster.StartServer(ctx(t)); err != nil {
		t.Fatal(err)
	}
	l.waitAcks(t, 150)
	close(stop)
	<-done

	f := l.settle(t, srv.URL, time.Now())
	t.Logf("durability across a PostgreSQL restart: writes attempted %d, acknowledged %d, found %d; "+
		"refused with 503 %d, retried with their keys: %d had been committed (replayed), the rest written once; duplicates %d",
		f.attempted, f.acknowledged, f.found, f.pending-f.keylessPending, f.committedUnacked, f.duplicates)
	t.Logf("durability across a PostgreSQL restart, writes %s", f.keyless())
	if f.pending == 0 {
		t.Error("no write was refused while PostgreSQL was down")
	}
	if f.found != f.acknowledged || f.duplicates != 0 {
		t.Errorf("found %d of %d acknowledged writes, %d duplicates", f.found, f.acknowledged, f.duplicates)
	}
}
