package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/apiclient"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// validateSchema checks the JSON data against the named schema of
// openapi.yaml.
func validateSchema(t *testing.T, name string, data []byte) {
	t.Helper()
	spec, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Errorf("%s is not JSON: %v: %s", name, err, data)
		return
	}
	if err := spec.Components.Schemas[name].Value.VisitJSON(v, openapi3.MultiErrors(),
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))); err != nil {
		t.Errorf("%s breaks the contract: %v\n%s", name, err, data)
	}
}

// checkStreamingResponse checks a streaming answer's status and headers
// against the contract, leaving its body to the caller (whose lines or
// events are checked one by one: kin-openapi would read the whole body).
func checkStreamingResponse(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	router, err := contractRouter()
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(strings.NewReader("")),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: true},
	}); err != nil {
		t.Errorf("%s -> %d breaks the contract: %v", req.URL, resp.StatusCode, err)
	}
}

// stream is an open live tail whose events arrive on a channel, each
// entry's data already checked against SystemLog.
type stream struct {
	resp   *http.Response
	events chan apiclient.Event
	cancel context.CancelFunc
}

// openStream opens GET /system/logs/stream?query with the server's token
// and extra headers (name, value pairs), failing unless it is a 200.
func (in *instance) openStream(t *testing.T, query string, header ...string) *stream {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(c, http.MethodGet, in.URL+"/system/logs/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.Token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	checkStreamingResponse(t, req, resp)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	s := &stream{resp: resp, events: make(chan apiclient.Event, 10_000), cancel: cancel}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		_ = apiclient.ReadEvents(resp.Body, func(e apiclient.Event) error {
			switch e.Name {
			case "entry":
				validateSchema(t, "SystemLog", e.Data)
			case "overflow", "shutdown":
				validateSchema(t, "StreamEnd", e.Data)
			case "error":
				validateSchema(t, "ProblemDetails", e.Data)
			}
			s.events <- e
			return nil
		})
	}()
	return s
}

// next returns the next event, failing after 30 s.
func (s *stream) next(t *testing.T) apiclient.Event {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return apiclient.Event{}
}

// entries reads n entry events and returns their entries, checking each
// event's id is its entry's seq.
func (s *stream) entries(t *testing.T, n int) []api.SystemLog {
	t.Helper()
	var out []api.SystemLog
	for len(out) < n {
		e := s.next(t)
		if e.Name != "entry" {
			t.Fatalf("event %q (%s) while waiting for entry %d of %d", e.Name, e.Data, len(out)+1, n)
		}
		var entry api.SystemLog
		if err := json.Unmarshal(e.Data, &entry); err != nil {
			t.Fatal(err)
		}
		if entry.Seq == nil || strconv.FormatInt(*entry.Seq, 10) != e.ID {
			t.Errorf("event id %q carries seq %v", e.ID, entry.Seq)
		}
		out = append(out, entry)
	}
	return out
}

func seqsOf(entries []api.SystemLog) []int64 {
	out := make([]int64, len(entries))
	for i, e := range entries {
		out[i] = *e.Seq
	}
	return out
}

// writeLogs writes one entry per body, in order, through the API.
func (in *instance) writeLogs(t *testing.T, bodies ...api.SystemLogCreate) {
	t.Helper()
	for _, b := range bodies {
		resp, err := in.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, b)
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("write: %v %s", err, resp.Body)
		}
	}
}

func entry(category string, level api.LogLevel, msg string) api.SystemLogCreate {
	return api.SystemLogCreate{Category: &category, Level: &level, Message: msg}
}

// TestStreamFollowsAndResumes: the tail starts where it is told (after,
// Last-Event-ID, or only new entries), delivers each entry once in seq
// order with id = seq and SystemLog data, applies the listing's filters,
// and a reconnect with Last-Event-ID continues exactly after it.
func TestStreamFollowsAndResumes(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	srv.writeLogs(t, entry("old", "INFO", "before 1"), entry("old", "INFO", "before 2"))
	base := waitSealed(t, pool)

	newest := srv.openStream(t, "")
	all := srv.openStream(t, "after=0")
	filtered := srv.openStream(t, fmt.Sprintf("after=%d&category=pay&min_level=ERROR", base))
	fromBase := srv.openStream(t, fmt.Sprintf("after=%d", base))

	srv.writeLogs(t,
		entry("pay", "ERROR", "one"), entry("pay", "INFO", "two"), entry("auth", "CRITICAL", "three"),
		entry("pay", "CRITICAL", "four"), entry("pay", "DEBUG", "five"))

	firstEvent := fromBase.next(t)
	if firstEvent.Retry != 2*time.Second {
		t.Errorf("retry hint %s, want 2s", firstEvent.Retry)
	}
	got := append(decodeEntries(t, firstEvent), fromBase.entries(t, 4)...)
	for i, e := range got {
		if *e.Seq != base+int64(i)+1 {
			t.Fatalf("seqs %v, want %d…%d", seqsOf(got), base+1, base+5)
		}
	}
	if msgs := fmt.Sprint(messages(got)); msgs != "[one two three four five]" {
		t.Errorf("messages %s", msgs)
	}
	if history := all.entries(t, 7); messages(history)[0] != "before 1" || *history[6].Seq != base+5 {
		t.Errorf("after=0 gave %v", messages(history))
	}
	if f := filtered.entries(t, 2); fmt.Sprint(messages(f)) != "[one four]" {
		t.Errorf("category=pay&min_level=ERROR gave %v", messages(f))
	}
	first := newest.entries(t, 1)[0]
	if *first.Seq <= base {
		t.Errorf("a stream without after or Last-Event-ID replayed seq %d (the trail ended at %d)", *first.Seq, base)
	}

	// A reconnect with the last id received continues after it; after wins
	// over Last-Event-ID.
	resumed := srv.openStream(t, "", "Last-Event-ID", strconv.FormatInt(base+3, 10))
	if r := resumed.entries(t, 2); fmt.Sprint(seqsOf(r)) != fmt.Sprint([]int64{base + 4, base + 5}) {
		t.Errorf("Last-Event-ID %d resumed with %v", base+3, seqsOf(r))
	}
	both := srv.openStream(t, fmt.Sprintf("after=%d", base+4), "Last-Event-ID", "1")
	srv.writeLogs(t, entry("pay", "ERROR", "six"))
	if r := resumed.entries(t, 1); *r[0].Seq != base+6 || r[0].Message != "six" {
		t.Errorf("live after the resume: %v", seqsOf(r))
	}
	if r := both.entries(t, 2); fmt.Sprint(seqsOf(r)) != fmt.Sprint([]int64{base + 5, base + 6}) {
		t.Errorf("after and Last-Event-ID: %v, want after to win", seqsOf(r))
	}
	if f := filtered.entries(t, 1); f[0].Message != "six" {
		t.Errorf("filtered live: %v", messages(f))
	}
	resp, body := srv.do(t, http.MethodGet, "/system/logs/stream", "", nil, "Last-Event-ID", "x")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("Last-Event-ID x: %d %s", resp.StatusCode, body)
	}
}

func decodeEntries(t *testing.T, events ...apiclient.Event) []api.SystemLog {
	t.Helper()
	out := make([]api.SystemLog, len(events))
	for i, e := range events {
		if err := json.Unmarshal(e.Data, &out[i]); err != nil || e.Name != "entry" {
			t.Fatalf("event %q %s: %v", e.Name, e.Data, err)
		}
	}
	return out
}

// TestStreamLimitWriteTimeoutAndShutdown: one stream over --max-streams is
// a 503 with Retry-After; a stream outlives --write-timeout; shutdown ends
// a stream with a shutdown event naming where to resume; the access log
// records the stream once, when it ends.
func TestStreamLimitWriteTimeoutAndShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "VALHALLA_SEAL_INTERVAL": "50ms"},
		"--max-streams", "1", "--write-timeout", "1s")
	s := srv.openStream(t, "after=0")
	resp, body := srv.do(t, http.MethodGet, "/system/logs/stream", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a stream over the limit: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Past the write timeout, the stream still delivers.
	<-time.After(1500 * time.Millisecond)
	srv.writeLogs(t, entry("late", "INFO", "after the write timeout"))
	if e := s.entries(t, 1); e[0].Message != "after the write timeout" {
		t.Errorf("got %v", messages(e))
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	end := s.next(t)
	var data api.StreamEnd
	if err := json.Unmarshal(end.Data, &data); end.Name != "shutdown" || err != nil || data.After != 1 {
		t.Errorf("final event %q %s, want shutdown resuming after 1", end.Name, end.Data)
	}
	if _, open := <-s.events; open {
		t.Error("the stream went on after its shutdown event")
	}
	records := 0
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		var rec struct {
			Msg, Route string
			Status     int
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Route == "getSystemLogStream" && rec.Status == 200 {
			records++
		}
	}
	if records != 1 {
		t.Errorf("%d access log records of the stream, want 1", records)
	}
}

// switchingProxy forwards to one server at a time, streaming as it goes.
type switchingProxy struct {
	target atomic.Pointer[url.URL]
}

func (p *switchingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(p.target.Load()) },
		FlushInterval: -1,
		ErrorHandler:  func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	rp.ServeHTTP(w, r)
}

// TestTailResumesOnAnotherServer: `valhalla logs tail` follows through a
// server's shutdown, reconnecting (here to a second server on the same
// database) and resuming after the last entry it printed: every entry once,
// in seq order.
func TestTailResumesOnAnotherServer(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	token := "vhl_tailtest_" + strings.Repeat("a", 22)
	env := map[string]string{"DATABASE_URL": dbURL, "VALHALLA_SEAL_INTERVAL": "50ms", "VALHALLA_BOOTSTRAP_TOKEN": token}
	a := startServer(t, env)
	b := startServer(t, env)
	proxy := &switchingProxy{}
	target, _ := url.Parse(a.URL)
	proxy.target.Store(target)
	front := newLocalServer(t, proxy)

	var out, errOut syncBuffer
	tailCtx, stopTail := context.WithCancel(context.Background())
	tailed := make(chan error, 1)
	cliEnv := map[string]string{"VALHALLA_URL": front, "VALHALLA_TOKEN": token}
	go func() {
		tailed <- run(tailCtx, []string{"logs", "tail", "--json", "--after", "0", "--category", "t"}, func(k string) string { return cliEnv[k] }, &out, &errOut)
	}()
	lines := func() []api.SystemLog {
		var got []api.SystemLog
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var e api.SystemLog
			if json.Unmarshal([]byte(l), &e) == nil {
				got = append(got, e)
			}
		}
		return got
	}
	waitLines := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for len(lines()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("tail printed %d entries, want %d; stderr: %s", len(lines()), n, errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 3 {
		a.writeLogs(t, entry("t", "INFO", fmt.Sprint("a", i)))
	}
	a.writeLogs(t, entry("other", "INFO", "filtered out"))
	waitLines(3)
	target, _ = url.Parse(b.URL)
	proxy.target.Store(target)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.writeLogs(t, entry("t", "INFO", fmt.Sprint("b", i)))
	}
	waitLines(6)
	stopTail()
	if err := <-tailed; err != nil {
		t.Fatalf("tail: %v", err)
	}
	got := lines()
	if msgs := fmt.Sprint(messages(got)); msgs != "[a0 a1 a2 b0 b1 b2]" {
		t.Errorf("tail printed %s, want every entry once in order; stderr: %s", msgs, errOut.String())
	}
	for i := 1; i < len(got); i++ {
		if *got[i].Seq <= *got[i-1].Seq {
			t.Errorf("seqs out of order: %v", seqsOf(got))
		}
	}
	if !strings.Contains(errOut.String(), "resuming after seq") {
		t.Errorf("tail did not say it resumed: %q", errOut.String())
	}
}

// newLocalServer serves h on a loopback port until the test ends and
// returns its URL.
func newLocalServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}
