package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/delivery/deliverytest"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// sinks runs valhalla sinks args on the database at url and returns what
// it printed.
func sinks(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out syncBuffer
	err := run(ctx(t), append(append([]string{"sinks"}, args...), "--database-url", url), func(string) string { return "" }, &out, &out)
	return out.String(), err
}

// TestSinksCommands: create (a generated secret printed once, a refused
// sink stores nothing), list (escaping what a terminal would act on),
// pause, resume, replay and delete.
func TestSinksCommands(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	out, err := sinks(t, url, "create", "--name", "hook", "--url", "https://example.com/hook", "--format", "webhook")
	if err != nil || !regexp.MustCompile(`(?m)^whsec_[A-Za-z0-9+/=]{40,}$`).MatchString(out) {
		t.Fatalf("create webhook: %v\n%s", err, out)
	}
	if _, err := sinks(t, url, "create", "--name", "siem", "--url", "http://splunk:8088/services/collector/event",
		"--format", "splunk-hec", "--secret", "hec-token", "--filter", "category=a\x1b]0;owned\x07,min_level=error"); err != nil {
		t.Fatalf("create splunk-hec: %v", err)
	}
	for _, bad := range [][]string{
		{"create", "--name", "x", "--url", "https://example.com", "--format", "syslog"},
		{"create", "--name", "x", "--url", "https://example.com", "--format", "splunk-hec"},
		{"create", "--name", "x", "--url", "https://example.com", "--format", "webhook", "--filter", "user_id=u"},
		{"create", "--name", "x", "--url", "https://example.com", "--format", "webhook", "--filter", "min_level=LOUD"},
		{"create", "--name", "x", "--url", "https://example.com", "--format", "webhook", "--secret", "hunter2"},
		{"create", "--name", "hook", "--url", "https://example.com", "--format", "webhook"},
		{"create", "--url", "https://example.com", "--format", "webhook"},
		{"pause", "nope"},
		{"delete", "nope"},
		{"replay", "hook"},
		{"replay", "hook", "--from-seq", "0"},
		{"list", "extra"},
	} {
		if out, err := sinks(t, url, bad...); err == nil {
			t.Errorf("sinks %q succeeded:\n%s", bad, out)
		}
	}
	out, err = sinks(t, url, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "hook") || !strings.Contains(lines[2], "siem") {
		t.Fatalf("list: want a header and the two sinks:\n%s", out)
	}
	if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(lines[2], `category=a\u001b]0;owned\u0007,min_level=ERROR`) {
		t.Errorf("list must show the filter with its controls escaped:\n%q", lines[2])
	}
	if strings.Contains(out, "hec-token") || strings.Contains(out, "whsec_") {
		t.Errorf("list shows a secret:\n%s", out)
	}
	for _, step := range []struct {
		args  []string
		state string
	}{
		{[]string{"pause", "hook"}, "paused"},
		{[]string{"resume", "hook"}, "active"},
	} {
		if _, err := sinks(t, url, step.args...); err != nil {
			t.Fatal(err)
		}
		out, _ := sinks(t, url, "list")
		if !regexp.MustCompile(`(?m)^hook .* ` + step.state + ` `).MatchString(out) {
			t.Errorf("after %q, want hook %s:\n%s", step.args, step.state, out)
		}
	}
	if out, err := sinks(t, url, "replay", "siem", "--from-seq", "7"); err != nil || !strings.Contains(out, "from seq 7") {
		t.Errorf("replay: %v %s", err, out)
	}
	if out, _ := sinks(t, url, "list"); !regexp.MustCompile(`(?m)^siem .* 6 +0 `).MatchString(out) {
		t.Errorf("after replay --from-seq 7, want cursor 6:\n%s", out)
	}
	if _, err := sinks(t, url, "delete", "hook"); err != nil {
		t.Fatal(err)
	}
	if out, _ := sinks(t, url, "list"); strings.Contains(out, "hook") {
		t.Errorf("deleted sink still listed:\n%s", out)
	}
}

// sinkSecret is the signing secret of the tests' webhook sinks.
var sinkSecret = "whsec_" + strings.Repeat("c2lu", 9)

// writeBatch posts n entries to the server at base with token.
func writeBatch(t *testing.T, client *http.Client, base, token string, n int) {
	t.Helper()
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"message":"to a sink %d","category":"c%d"}`, i, i%3))
	}
	req, err := http.NewRequestWithContext(ctx(t), "POST", base+"/system/logs/batch", strings.NewReader(`{"entries":[`+strings.Join(entries, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
}

// seqs returns 1..n.
func seqs(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// metricsOf returns the server's /metrics text.
func metricsOf(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSinkCatchesUp: a sink whose receiver is down shows as failing in
// sinks list, /system-health and the metrics; once the receiver is back it
// catches up by itself, every entry once and in order.
func TestSinkCatchesUp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	down := true
	r := deliverytest.NewReceiver(t, sinkSecret, func(int) (time.Duration, int) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return 0, http.StatusServiceUnavailable
		}
		return 0, http.StatusOK
	})
	url := pgtest.NewDatabase(t)
	if _, err := sinks(t, url, "create", "--name", "local", "--url", r.URL, "--format", "webhook", "--secret", sinkSecret); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]string{"DATABASE_URL": url, "VALHALLA_SEAL_INTERVAL": "50ms",
		"VALHALLA_SINK_LINGER": "0s", "VALHALLA_SINK_PROBE_INTERVAL": "500ms", "VALHALLA_SINK_BATCH_SIZE": "7"})
	writeBatch(t, srv.HTTP, srv.URL, srv.Token, 30)
	waitFor(t, 60*time.Second, "/system-health names the failing sink", func() (bool, string) {
		h, err := srv.Client.GetHealthWithResponse(ctx(t), &api.GetHealthParams{})
		if err != nil || h.ApplicationproblemJSON503 == nil {
			return false, fmt.Sprint(err)
		}
		c := check(h.ApplicationproblemJSON503.Checks, "sinks")
		return c != nil && c.Status == "fail" && c.Error != nil && strings.Contains(*c.Error, "local"), fmt.Sprintf("%+v", c)
	})
	if out, _ := sinks(t, url, "list"); !regexp.MustCompile(`(?m)^local .* failing \(\d+\) +0 +30 .*503`).MatchString(out) {
		t.Errorf("list while the receiver is down: want failing, cursor 0, lag 30 and the 503:\n%s", out)
	}
	m := metricsOf(t, srv.HTTP, srv.URL)
	for _, want := range []string{`valhalla_sink_lag_entries{sink="local"} 30`, `valhalla_sink_deliveries_total{outcome="failed",sink="local"}`,
		`valhalla_sink_circuit_state{sink="local"}`, `valhalla_sink_delivering{sink="local"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	r.WaitAll(t, seqs(30))
	waitFor(t, 60*time.Second, "health passes again", func() (bool, string) {
		h, err := srv.Client.GetHealthWithResponse(ctx(t), &api.GetHealthParams{})
		return err == nil && h.StatusCode() == 200, fmt.Sprintf("%v %s", err, h.Body)
	})
	if out, _ := sinks(t, url, "list"); !regexp.MustCompile(`(?m)^local .* active +30 +0 `).MatchString(out) {
		t.Errorf("list after catching up: want active, cursor 30, lag 0:\n%s", out)
	}
}

// delivering reports whether the server at base delivers sink.
func delivering(t *testing.T, client *http.Client, base, sink string) bool {
	t.Helper()
	return strings.Contains(metricsOf(t, client, base), `valhalla_sink_delivering{sink="`+sink+`"} 1`)
}

// TestSinkDelivererKilled: two servers on one database; the one that
// delivers the sink is killed with kill -9 while a batch is in flight
// (the receiver takes it, but its answer never reaches the dead server);
// the other takes over from the saved cursor and sends that batch again
// under the same webhook-id. The receiver ends up with every entry, in
// seq order, once repeats are dropped by webhook-id.
func TestSinkDelivererKilled(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	url := pgtest.NewDatabase(t)
	inFlight, release := make(chan struct{}), make(chan struct{})
	r := deliverytest.NewReceiver(t, sinkSecret, func(n int) (time.Duration, int) {
		if n == 2 { // the third batch: held until its deliverer is dead
			close(inFlight)
			<-release
		}
		return 0, http.StatusOK
	})
	if _, err := sinks(t, url, "create", "--name", "crash", "--url", r.URL, "--format", "webhook", "--secret", sinkSecret); err != nil {
		t.Fatal(err)
	}
	token := auth.Mint()
	env := []string{"DATABASE_URL=" + url, "VALHALLA_BOOTSTRAP_TOKEN=" + token,
		"VALHALLA_LEDGER_KEY_FILE=" + filepath.Join(t.TempDir(), "ledger.key"), "VALHALLA_SEAL_INTERVAL=50ms",
		"VALHALLA_SINK_BATCH_SIZE=25", "VALHALLA_SINK_LINGER=0s", "VALHALLA_SINK_PROBE_INTERVAL=1s"}
	servers := []*process{startServeProcess(t, bin, env), startServeProcess(t, bin, env)}
	plain := &http.Client{Transport: &conformance{t: t, base: http.DefaultTransport}, Timeout: 10 * time.Second}
	writeBatch(t, plain, servers[0].url, token, 200)
	select {
	case <-inFlight:
	case <-time.After(60 * time.Second):
		t.Fatal("the third batch never arrived")
	}
	deliverer := -1
	waitFor(t, 60*time.Second, "one server delivers the sink", func() (bool, string) {
		a, b := delivering(t, plain, servers[0].url, "crash"), delivering(t, plain, servers[1].url, "crash")
		if a && b {
			t.Fatal("both servers deliver the sink")
		}
		deliverer = map[bool]int{true: 0, false: 1}[a]
		return a || b, "neither says it delivers"
	})
	servers[deliverer].kill9(t)
	killed := time.Now()
	close(release)
	other := servers[1-deliverer]
	waitFor(t, 60*time.Second, "the other server takes over", func() (bool, string) {
		return delivering(t, plain, other.url, "crash"), "not yet"
	})
	takeover := time.Since(killed)
	pool, err := database.Open(ctx(t), url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	size := waitSealed(t, pool)
	r.WaitAll(t, seqs(size))
	if _, repeats := r.Got(); repeats < 1 {
		t.Errorf("the batch in flight at the kill was not sent again under its webhook-id (%d repeats)", repeats)
	}
	t.Logf("sink deliverer killed mid-batch: takeover in %s; %d entries received once each, in order, after dropping %d repeated batches",
		takeover.Round(time.Millisecond), size, func() int { _, n := r.Got(); return n }())
}

// TestSinkServeFlagsRefuseNonsense: serve refuses delivery settings that
// cannot work, naming the flag, before it opens anything.
func TestSinkServeFlagsRefuseNonsense(t *testing.T) {
	t.Parallel()
	for _, tc := range [][]string{
		{"--sink-batch-size", "0"}, {"--sink-batch-size", "10001"}, {"--sink-timeout", "0s"},
		{"--sink-probe-interval", "0s"}, {"--sink-linger", "soon"},
	} {
		var out syncBuffer
		err := run(ctx(t), append([]string{"serve"}, tc...), func(string) string { return "" }, &out, &out)
		name := strings.ReplaceAll(strings.TrimPrefix(tc[0], "--"), "-", " ")
		if err == nil || !strings.Contains(err.Error(), name) || strings.Count(err.Error(), name) != 1 {
			t.Errorf("serve %q: %v, want one error naming %s", tc, err, name)
		}
	}
}
