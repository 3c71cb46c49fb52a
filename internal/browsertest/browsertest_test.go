package browsertest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// site serves a clean page and one that misbehaves in every watched way.
func site() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/clean", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>clean</title><link rel="icon" href="/pixel.svg"><h1 id="ok">fine</h1><img src="/pixel.svg" alt="">`))
	})
	mux.HandleFunc("/pixel.svg", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>`))
	})
	mux.HandleFunc("/bad", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>bad</title><img src="http://203.0.113.9/track.png" alt=""><script src="/bad.js"></script>`))
	})
	mux.HandleFunc("/bad.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write([]byte(`console.error("boom"); throw new Error("uncaught here");`))
	})
	// A page that reads a failing health probe, then another failing URL.
	mux.HandleFunc("/probe", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>probe</title><link rel="icon" href="/pixel.svg"><script src="/probe.js"></script>`))
	})
	mux.HandleFunc("/probe.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write([]byte(`(async () => { await fetch("/system-health"); await fetch("/broken"); })();`))
	})
	mux.HandleFunc("/system-health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	return httptest.NewServer(mux)
}

// TestFailingHealthProbeIsNotAFault: a 503 from /system-health is what the
// viewer's health strip shows, so it fails no test; a 503 from anything
// else the page loads still does.
func TestFailingHealthProbeIsNotAFault(t *testing.T) {
	srv := site()
	t.Cleanup(srv.Close)
	b := New(t, srv.URL, 0)
	if err := chromedp.Do(b.ctx, chromedp.Navigate(b.URL("/probe"))); err != nil {
		t.Fatal(err)
	}
	if got := waitFailures(t, b, []string{"/broken"}); containsAll(got, []string{"/system-health"}) {
		t.Errorf("the failing health probe was reported: %q", got)
	}
	forgive(b)
}

// TestMisbehaviourIsCaught checks the watch itself: an off-host request is
// recorded (and failed in the browser), and so are console.error and an
// uncaught exception.
func TestMisbehaviourIsCaught(t *testing.T) {
	srv := site()
	t.Cleanup(srv.Close)
	b := New(t, srv.URL, 0)
	if err := chromedp.Do(b.ctx, chromedp.Navigate(b.URL("/bad"))); err != nil {
		t.Fatal(err)
	}
	want := []string{"request to another host: GET http://203.0.113.9/track.png", "console.error: \"boom\"", "uncaught here"}
	waitFailures(t, b, want)
	// Seen; what arrives later (its favicon's 404) is not this test's point.
	forgive(b)
}

// waitFailures polls until b has recorded failures containing each of
// want, failing past Timeout, and returns them.
func waitFailures(t *testing.T, b *Browser, want []string) []string {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		b.mu.Lock()
		got := append([]string(nil), b.failures...)
		b.mu.Unlock()
		if containsAll(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("failures %q, want ones containing %q", got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by deadline
	}
}

// forgive clears b's failures and ignores any later, so that the test's
// end does not fail on what it provoked.
func forgive(b *Browser) {
	b.AllowFailedLoad(".*")
	b.mu.Lock()
	b.failures = nil
	b.mu.Unlock()
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
