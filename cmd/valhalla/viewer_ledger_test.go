package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/browsertest"
	"github.com/valhalla-platform/valhalla/internal/ledger"
)

// signIn opens path of the viewer and signs in with the server's token.
func signIn(b *browsertest.Browser, in *instance, path string) {
	b.Do(
		chromedp.Navigate(b.URL(path)),
		chromedp.SendKeys(chromedp.CSS("#token"), in.Token+"\r", chromedp.NodeVisible),
	)
}

// proofKind waits until the proof's status is no longer pending and
// returns its failure kind ("" when verified) and its text.
func proofKind(t *testing.T, b *browsertest.Browser) (kind, text string) {
	t.Helper()
	browsertest.Get(b, chromedp.Poll[bool](`(s => s !== null && (s.classList.contains('proof-ok') || s.classList.contains('proof-fail')))(document.querySelector('#proof-status'))`))
	kind = browsertest.Get(b, chromedp.Evaluate[string](`document.querySelector('#proof-status').dataset.kind ?? ''`))
	text = browsertest.Get(b, chromedp.Text(chromedp.CSS("#proof-status")))
	if ok := browsertest.Get(b, chromedp.Evaluate[bool](`document.querySelector('#proof-status').classList.contains('proof-ok')`)); ok && kind != "" {
		t.Errorf("proof shown as verified with failure kind %q", kind)
	}
	return kind, text
}

// TestViewerProof: with the verifier key pasted once, an entry's proof and
// the signed checkpoint verify in the browser; after its message is changed
// with SQL the page reports a leaf mismatch, and another key of the ledger's
// name is reported as the wrong key.
func TestViewerProof(t *testing.T) {
	t.Parallel()
	in, pool := ledgerSetup(t)
	seedViewer(t, in)
	size := waitSealed(t, pool)
	id := listIDs(t, in, "user_id=user-7")[0]
	b := browsertest.New(t, in.URL, 1280)

	signIn(b, in, "/ui/?entry="+id)
	b.Do(chromedp.SendKeys(chromedp.CSS("#ledger-key"), serverKey(t, in)+"\r", chromedp.NodeVisible))
	kind, text := proofKind(t, b)
	if kind != "" || !strings.Contains(text, fmt.Sprintf("Sealed in checkpoint %d", size)) || !strings.Contains(text, "verified") {
		t.Fatalf("proof shows %q (kind %q), want sealed in checkpoint %d, verified", text, kind, size)
	}
	if got := browsertest.Get(b, chromedp.Evaluate[string](`localStorage.getItem('valhalla.ledgerKey')`)); got != serverKey(t, in) {
		t.Errorf("localStorage keeps the key as %q", got)
	}
	b.Screenshot("verified")

	// The key is kept: a reload verifies without asking again.
	b.Do(chromedp.Reload())
	if kind, text := proofKind(t, b); kind != "" {
		t.Errorf("after a reload the proof shows %q (%s)", text, kind)
	}

	sqlExec(t, pool, "UPDATE system_logs SET message = 'nothing happened' WHERE id = $1", id)
	b.Do(chromedp.Reload())
	kind, text = proofKind(t, b)
	if kind != "leaf mismatch" || !strings.Contains(text, "changed after it was sealed") {
		t.Errorf("tampered entry shows %q (kind %q), want a leaf mismatch", text, kind)
	}
	b.Screenshot("tampered")

	intruder, err := ledger.GenerateKey(strings.SplitN(serverKey(t, in), "+", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	other, err := ledger.ParseKey(intruder)
	if err != nil {
		t.Fatal(err)
	}
	b.Do(
		chromedp.Click(chromedp.CSS("#change-key"), chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS("#ledger-key"), other.Verifier, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#save-key")),
	)
	browsertest.Get(b, chromedp.Poll[bool](`document.querySelector('#proof-status')?.dataset.kind === 'wrong key'`))
	b.Screenshot("wrong-key")
}

// writeEntry writes one entry through the API and returns its id.
func writeEntry(t *testing.T, in *instance, category, message string) string {
	t.Helper()
	resp, err := in.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{},
		api.SystemLogCreate{Message: message, Category: ptr(category)})
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("write: %v", err)
	}
	return resp.JSON201.Id.String()
}

// liveReady is true once Live knows the seq it follows after.
const liveReady = `document.querySelector('#live-status')?.dataset.after !== undefined`

// TestViewerLive follows the trail with the list's filters: an entry written
// through the API appears within 2 s, one outside the filter does not;
// paused, the entries that arrive are counted and held; resumed, they show.
func TestViewerLive(t *testing.T) {
	t.Parallel()
	in, _ := ledgerSetup(t)
	seedViewer(t, in)
	b := browsertest.New(t, in.URL, 1280)
	signIn(b, in, "/ui/?category=billing")
	waitRows(t, b, listIDs(t, in, "category=billing"))
	b.Do(chromedp.Click(chromedp.CSS("#live-toggle")))
	browsertest.Get(b, chromedp.Poll[bool](liveReady))
	if pressed := browsertest.Get(b, chromedp.AttributeValue(chromedp.CSS("#live-toggle"), "aria-pressed")); pressed.Value != "true" {
		t.Errorf("the live toggle's aria-pressed is %q", pressed.Value)
	}

	write := func(category, message string) string { return writeEntry(t, in, category, message) }
	other := write("auth", "not for this view")
	start := time.Now()
	live := write("billing", "arrived live")
	browsertest.Get(b, chromedp.Poll[bool](`document.querySelector('#entries tbody tr:first-child')?.dataset.id === `+"`"+live+"`",
		chromedp.WithPollingTimeout(2*time.Second)))
	t.Logf("an entry written through the API appeared in the page after %v", time.Since(start).Round(time.Millisecond))
	if has := browsertest.Get(b, chromedp.Evaluate[bool](`!!document.querySelector('#entries tr[data-id="`+other+`"]')`)); has {
		t.Error("an entry of another category appeared in a view filtered to billing")
	}
	b.Screenshot("live")

	b.Do(chromedp.Click(chromedp.CSS("#live-pause")))
	held := []string{write("billing", "held 1"), write("billing", "held 2")}
	browsertest.Get(b, chromedp.Poll[bool](`document.querySelector('#live-pending')?.textContent.includes('2 new entries while paused')`))
	for _, id := range held {
		if has := browsertest.Get(b, chromedp.Evaluate[bool](`!!document.querySelector('#entries tr[data-id="`+id+`"]')`)); has {
			t.Errorf("entry %s shown while paused", id)
		}
	}
	b.Screenshot("paused")
	b.Do(chromedp.Click(chromedp.CSS("#live-pause")))
	browsertest.Get(b, chromedp.Poll[bool](`JSON.stringify(`+rowIDs+`.slice(0, 3)) === `+"`"+fmt.Sprintf(`["%s","%s","%s"]`, held[1], held[0], live)+"`"))
	if has := browsertest.Get(b, chromedp.Evaluate[bool](`!!document.querySelector('#live-pending')`)); has {
		t.Error("the paused count is still shown after resuming")
	}
}

// waitDownload polls dir for a finished download whose name ends in ext
// and returns its content.
func waitDownload(t *testing.T, dir, ext string) []byte {
	t.Helper()
	deadline := time.Now().Add(browsertest.Timeout)
	for {
		matches, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		if len(matches) == 1 {
			if b, err := os.ReadFile(matches[0]); err == nil && len(b) > 0 {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s download in %s after %v (%v)", ext, dir, browsertest.Timeout, matches)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestViewerExport downloads the list's filter as NDJSON (the entries in
// seq order, then the trailer with the signed checkpoint) and as CSV.
func TestViewerExport(t *testing.T) {
	t.Parallel()
	in, pool := ledgerSetup(t)
	seedViewer(t, in)
	waitSealed(t, pool)
	dir := t.TempDir()
	b := browsertest.New(t, in.URL, 1280)
	b.Do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}))
	signIn(b, in, "/ui/?category=billing")
	want := listIDs(t, in, "category=billing") // newest first
	waitRows(t, b, want)

	b.Do(chromedp.Click(chromedp.CSS("#export")))
	nd := waitDownload(t, dir, ".ndjson")
	lines := bytes.Split(bytes.TrimSpace(nd), []byte("\n"))
	if len(lines) != len(want)+1 {
		t.Fatalf("NDJSON export has %d lines, want %d entries and a trailer:\n%s", len(lines), len(want), nd)
	}
	for i, line := range lines[:len(want)] {
		var e api.SystemLog
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		if e.Id.String() != want[len(want)-1-i] || e.Category != "billing" {
			t.Errorf("line %d is %s in %s, want %s (oldest first)", i, e.Id, e.Category, want[len(want)-1-i])
		}
	}
	var trailer api.ExportTrailer
	if err := json.Unmarshal(lines[len(want)], &trailer); err != nil || trailer.Trailer.Count != int64(len(want)) {
		t.Errorf("last line %s, want a trailer counting %d (%v)", lines[len(want)], len(want), err)
	}
	status := browsertest.Get(b, chromedp.Text(chromedp.CSS("#export-status")))
	if !strings.Contains(status, fmt.Sprintf("%d entries, sealed in checkpoint", len(want))) {
		t.Errorf("export status %q", status)
	}

	b.Do(chromedp.SetValue(chromedp.CSS("#export-format"), "csv"), chromedp.Click(chromedp.CSS("#export")))
	rows, err := csv.NewReader(bytes.NewReader(waitDownload(t, dir, ".csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want)+1 || rows[0][0] != "seq" || rows[0][1] != "id" {
		t.Fatalf("CSV export %q, want a header and %d rows", rows, len(want))
	}
	for i, r := range rows[1:] {
		if r[1] != want[len(want)-1-i] || r[4] != "billing" {
			t.Errorf("CSV row %d is %q, want entry %s", i+1, r, want[len(want)-1-i])
		}
	}
	b.Screenshot("exported")
}

// TestViewerWidths: at 360 and 1920 px the list (following live, with the
// export bar) and a verified entry fit the window, and a screenshot of each
// goes to the artifact directory.
func TestViewerWidths(t *testing.T) {
	t.Parallel()
	in, pool := ledgerSetup(t)
	seedViewer(t, in)
	waitSealed(t, pool)
	id := listIDs(t, in, "user_id=user-7")[0]
	for _, width := range []int64{360, 1920} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			b := browsertest.New(t, in.URL, int(width))
			const fits = `document.scrollingElement.scrollWidth <= window.innerWidth`
			b.Do(chromedp.EmulateViewport(width, 900))
			signIn(b, in, "/ui/")
			b.Do(chromedp.WaitVisible(chromedp.CSS("#entries tbody tr")), chromedp.Click(chromedp.CSS("#live-toggle")))
			browsertest.Get(b, chromedp.Poll[bool](liveReady))
			if !browsertest.Get(b, chromedp.Evaluate[bool](fits)) {
				t.Errorf("list is %d px wide at %d", browsertest.Get(b, chromedp.Evaluate[int](`document.scrollingElement.scrollWidth`)), width)
			}
			b.Screenshot(fmt.Sprintf("list-%d", width))
			b.Do(
				chromedp.Navigate(b.URL("/ui/?entry="+id)),
				chromedp.SendKeys(chromedp.CSS("#ledger-key"), serverKey(t, in)+"\r", chromedp.NodeVisible),
			)
			if kind, text := proofKind(t, b); kind != "" {
				t.Errorf("proof at %d px: %q", width, text)
			}
			if !browsertest.Get(b, chromedp.Evaluate[bool](fits)) {
				t.Errorf("entry is %d px wide at %d", browsertest.Get(b, chromedp.Evaluate[int](`document.scrollingElement.scrollWidth`)), width)
			}
			b.Screenshot(fmt.Sprintf("entry-%d", width))
		})
	}
}

// dropProxy forwards TCP connections to a server; drop cuts every open
// one and, while down, it hangs up on new ones: a dropped connection.
type dropProxy struct {
	URL    string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	target string
}

func newDropProxy(t *testing.T, serverURL string) *dropProxy {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{URL: "http://" + ln.Addr().String(), target: u.Host}
	t.Cleanup(func() {
		_ = ln.Close()
		p.drop(false)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dropProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
	_, _ = io.Copy(c, s)
	_ = c.Close()
}

// drop closes every open connection and sets whether new ones are refused.
func (p *dropProxy) drop(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestViewerLiveResumes: when the connection drops, Live says it is
// reconnecting and, once back, shows every entry written meanwhile, once.
func TestViewerLiveResumes(t *testing.T) {
	t.Parallel()
	in, _ := ledgerSetup(t)
	seedViewer(t, in)
	proxy := newDropProxy(t, in.URL)
	b := browsertest.New(t, proxy.URL, 1280)
	b.AllowFailedLoad(`/system/logs/stream`)
	b.Do(
		chromedp.Navigate(b.URL("/ui/")),
		chromedp.SendKeys(chromedp.CSS("#token"), in.Token+"\r", chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#entries tbody tr")),
		chromedp.Click(chromedp.CSS("#live-toggle")),
	)
	browsertest.Get(b, chromedp.Poll[bool](liveReady))
	write := func(message string) string { return writeEntry(t, in, "general", message) }
	first := write("before the drop")
	browsertest.Get(b, chromedp.Poll[bool](`document.querySelector('#entries tbody tr:first-child')?.dataset.id === `+"`"+first+"`"))

	proxy.drop(true)
	during := []string{write("during the drop 1"), write("during the drop 2")}
	browsertest.Get(b, chromedp.Poll[bool](`document.querySelector('#live-status')?.textContent.startsWith('Reconnecting')`))
	b.Screenshot("reconnecting")
	proxy.drop(false)
	want := fmt.Sprintf(`["%s","%s","%s"]`, during[1], during[0], first)
	browsertest.Get(b, chromedp.Poll[bool](`JSON.stringify(`+rowIDs+`.slice(0, 3)) === `+"`"+want+"`"))
	ids := browsertest.Get(b, chromedp.Evaluate[[]string](rowIDs))
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("entry %s shown twice after reconnecting", id)
		}
		seen[id] = true
	}
}
