// Package browsertest drives a real headless Chromium for tests of the pages
// Valhalla serves. Every page a test opens is watched: a console error, an
// uncaught exception or a request to any host but the server's fails the
// test (such a request is also failed in the browser, so a page that would
// call out is caught offline). Each test leaves a screenshot in the artifact
// directory.
//
// The browser is CHROME_BIN, or /usr/bin/chromium (Debian's package; `make
// chromium` installs it). The artifact directory is VALHALLA_ARTIFACTS, or a
// temporary directory the test logs.
package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultChrome is the browser used when CHROME_BIN is unset.
const DefaultChrome = "/usr/bin/chromium"

// Timeout bounds every step: a condition a test waits on that does not
// come true by then fails the test. It is generous because the machine
// running the tests may be busy running many at once.
const Timeout = 60 * time.Second

// Browser is one headless Chromium tab confined to one server's origin.
type Browser struct {
	t      testing.TB
	ctx    context.Context
	origin *url.URL

	mu       sync.Mutex
	failures []string
	// allowed are URL patterns whose failed loads (a 4xx the test provokes)
	// the console may report without failing the test.
	allowed []*regexp.Regexp
	shots   int
}

// ChromePath is the browser binary: CHROME_BIN, or DefaultChrome.
func ChromePath() string {
	if p := os.Getenv("CHROME_BIN"); p != "" {
		return p
	}
	return DefaultChrome
}

// ArtifactDir is where screenshots go: VALHALLA_ARTIFACTS, or a temporary
// directory created (and logged) once per test binary.
var ArtifactDir = sync.OnceValue(func() string {
	if d := os.Getenv("VALHALLA_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	d, err := os.MkdirTemp("", "valhalla-artifacts-")
	if err != nil {
		return os.TempDir()
	}
	return d
})

// New starts a browser for t whose pages may reach only serverURL's host.
// It is stopped at cleanup, after a screenshot of the last page and a check
// of everything the pages reported. width is the window's width in CSS
// pixels (0 for 1280).
func New(t testing.TB, serverURL string, width int) *Browser {
	t.Helper()
	origin, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("browsertest: server URL: %v", err)
	}
	bin := ChromePath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("browsertest: no browser at %s (install it with `make chromium` or set CHROME_BIN): %v", bin, err)
	}
	if width == 0 {
		width = 1280
	}
	profile := t.TempDir() // removed after the browser has exited
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI; Chromium's sandbox refuses root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, ctx: ctx, origin: origin, allowed: []*regexp.Regexp{healthProbes}}
	err = chromedp.Listen(ctx, b.observe)
	if err == nil {
		_, err = chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}})
	}
	if err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("browsertest: start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		b.Screenshot("final")
		b.check()
		cancelCtx()
		cancelAlloc()
	})
	return b
}

// observe records what the page reports and lets through only requests to
// the server's origin.
func (b *Browser) observe(ev any) {
	switch ev := ev.(type) {
	case *fetch.EventRequestPaused:
		u, err := url.Parse(ev.Request.URL)
		sameHost := err == nil && u.Scheme == b.origin.Scheme && u.Host == b.origin.Host
		if !sameHost && !strings.HasPrefix(ev.Request.URL, "data:") {
			b.fail("request to another host: %s %s", ev.Request.Method, ev.Request.URL)
		}
		// Listen's func must not send commands itself.
		go func() {
			if sameHost || strings.HasPrefix(ev.Request.URL, "data:") {
				_, _ = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.FailRequest, fetch.FailRequestParams{
				RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		}()
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += ": " + d.Exception.Description
		}
		b.fail("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.fail("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level != cdplog.EntryLevelError {
			return
		}
		if e.Source == cdplog.EntrySourceNetwork && b.isAllowed(e.URL) {
			return
		}
		b.fail("console error (%s) %s: %s", e.Source, e.URL, e.Text)
	}
}

// healthProbes are the health endpoints the viewer's health strip reads. A
// 503 from them is what the strip exists to show (a check failing, the
// ledger lagging on a busy machine), not a fault of the page, so every
// Browser lets the console report it; what the strip shows is the test's
// to check.
var healthProbes = regexp.MustCompile(`/system-health(/ready|/live)?$`)

// AllowFailedLoad lets the console report a failed load (such as a 401
// the test provokes) of a URL matching pattern without failing the test.
func (b *Browser) AllowFailedLoad(pattern string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, regexp.MustCompile(pattern))
}

func (b *Browser) isAllowed(u string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, re := range b.allowed {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

func (b *Browser) fail(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = append(b.failures, fmt.Sprintf(format, args...))
}

// check fails the test for everything the pages reported so far.
func (b *Browser) check() {
	b.t.Helper()
	b.mu.Lock()
	failures := b.failures
	b.failures = nil
	b.mu.Unlock()
	for _, f := range failures {
		b.t.Errorf("browser: %s", f)
	}
}

// Do runs steps in the tab in order, each bounded by Timeout, and fails the
// test now if one fails or if a page reported an error.
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for _, s := range steps {
		Get(b, s)
	}
}

// Get runs a in b's tab, bounded by Timeout, and returns its value; it
// fails the test now if a fails or if a page reported an error.
func Get[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.Screenshot("failed")
		b.check()
		b.t.Fatalf("browser: %v", err)
	}
	b.check()
	return v
}

// URL is path on the server, for Navigate.
func (b *Browser) URL(path string) string {
	return b.origin.Scheme + "://" + b.origin.Host + path
}

// Screenshot saves the whole page as <test>-<n>-<name>.png in ArtifactDir
// and returns its path ("" when it could not be taken, which is logged).
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("browser: screenshot %s: %v", name, err)
		return ""
	}
	return b.save(name, png)
}

// ScreenshotTo saves the visible viewport as a PNG at path.
func (b *Browser) ScreenshotTo(path string) {
	b.t.Helper()
	png := Get(b, chromedp.CaptureScreenshot())
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browser: save screenshot: %v", err)
	}
}

func (b *Browser) save(name string, png []byte) string {
	b.t.Helper()
	b.mu.Lock()
	b.shots++
	n := b.shots
	b.mu.Unlock()
	safe := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(b.t.Name(), "_")
	path := filepath.Join(ArtifactDir(), fmt.Sprintf("%s-%02d-%s.png", safe, n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("browser: save screenshot: %v", err)
		return ""
	}
	b.t.Logf("browser: screenshot %s", path)
	return path
}
