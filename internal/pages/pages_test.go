package pages

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHeadersAndCaching(t *testing.T) {
	t.Parallel()
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := p.Dir("/docs/", "docs", "docsPage")
	resp := get(t, h, "/docs/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs/ = %d %q, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-cache",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if again := get(t, h, "/docs/index.html", "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag = %d, want 304", again.StatusCode)
	}
	if other := get(t, h, "/docs/docs.js"); other.Header.Get("ETag") == etag || other.Header.Get("ETag") == "" {
		t.Errorf("docs.js ETag %q, want its own", other.Header.Get("ETag"))
	}

	plain := get(t, h, "/docs/vendor/swagger-ui-bundle.js")
	zipped := get(t, h, "/docs/vendor/swagger-ui-bundle.js", "Accept-Encoding", "gzip, br")
	if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Fatalf("gzip response: encoding %q, ETag %q (plain %q); want gzip with its own ETag",
			zipped.Header.Get("Content-Encoding"), zipped.Header.Get("ETag"), plain.Header.Get("ETag"))
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	original, _ := io.ReadAll(plain.Body)
	if string(unzipped) != string(original) || len(original) < 100000 {
		t.Errorf("gzip body decodes to %d bytes, want the bundle's %d", len(unzipped), len(original))
	}
	if got := get(t, h, "/docs/nothing.js"); got.StatusCode != http.StatusNotFound {
		t.Errorf("missing file = %d, want 404", got.StatusCode)
	}
}

func TestFrameAncestors(t *testing.T) {
	t.Parallel()
	list, err := ParseFrameAncestors("https://portal.example.com, http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{FrameAncestors: list})
	if err != nil {
		t.Fatal(err)
	}
	resp := get(t, p.Dir("/ui/", "ui", "viewerPage"), "/ui/favicon.svg")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors https://portal.example.com http://localhost:3000") {
		t.Errorf("CSP %q, want the named frame ancestors", csp)
	}
	if xfo := resp.Header.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("X-Frame-Options %q with frame ancestors named, want none", xfo)
	}
	for _, bad := range []string{"portal.example.com", "https://a.example/path", "javascript:alert(1)", "https://a.example;script-src *", "'self'"} {
		if _, err := ParseFrameAncestors(bad); err == nil {
			t.Errorf("ParseFrameAncestors(%q) accepted it", bad)
		}
	}
}
