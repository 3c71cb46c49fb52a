package main

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/valhalla-platform/valhalla/internal/browsertest"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// contractOperations lists every operationId in openapi.yaml, sorted.
func contractOperations(t *testing.T) []string {
	t.Helper()
	spec, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			ops = append(ops, op.OperationID)
		}
	}
	slices.Sort(ops)
	return ops
}

// TestDocsPage opens /docs in a real browser: Swagger UI renders every
// operation of the contract, and "Try it out" with the token typed into
// its Authorize box lists the log entries of this server.
func TestDocsPage(t *testing.T) {
	t.Parallel()
	in := setup(t)
	want := contractOperations(t)
	// The conformance transport checks every page's security headers.
	resp, _ := in.do(t, http.MethodGet, "/docs/vendor/swagger-ui.css", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the stylesheet = %d, want 200", resp.StatusCode)
	}
	if again, _ := in.do(t, http.MethodGet, "/docs/vendor/swagger-ui.css", "", nil, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("GET the stylesheet with its ETag = %d, want 304", again.StatusCode)
	}
	b := browsertest.New(t, in.URL, 1280)
	b.Do(
		chromedp.Navigate(b.URL("/docs")),
		chromedp.WaitVisible(chromedp.CSS(".opblock-summary-operation-id")),
	)
	got := browsertest.Get(b, chromedp.Poll[[]string](`(() => {
		const ids = [...document.querySelectorAll('.opblock-summary-operation-id')].map(e => e.textContent.trim());
		return ids.length >= `+strconv.Itoa(len(want))+` ? ids : false;
	})()`))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("/docs lists operations %q, want the contract's %q", got, want)
	}
	b.Screenshot("operations")

	b.Do(
		chromedp.Click(chromedp.CSS("button.authorize"), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(".auth-container input"), in.Token, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(".auth-btn-wrapper button.authorize"), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(".auth-btn-wrapper button.btn-done"), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#operations-logs-listSystemLogs .opblock-summary-control"), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#operations-logs-listSystemLogs .try-out__btn"), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#operations-logs-listSystemLogs button.execute"), chromedp.NodeVisible),
	)
	status := browsertest.Get(b, chromedp.Text(chromedp.CSS("#operations-logs-listSystemLogs .live-responses-table tbody .response-col_status"), chromedp.NodeVisible))
	if status != "200" {
		t.Errorf("try it out on listSystemLogs answered %q, want 200", status)
	}
	b.Screenshot("try-it-out")
}

// TestProblemTypeOpensItsPage resolves the type of a problem the API
// answered with against the request's URI, as RFC 9457 says, and opens it:
// the page names the type, its status and what to do. The index links
// every documented type.
func TestProblemTypeOpensItsPage(t *testing.T) {
	t.Parallel()
	in := setup(t)
	req := in.URL + "/system/logs?limit=0"
	resp, body := in.do(t, http.MethodGet, "/system/logs?limit=0", "", nil)
	p := problemOf(t, body)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", resp.StatusCode)
	}
	base, _ := url.Parse(req)
	ref, err := url.Parse(p.Type)
	if err != nil {
		t.Fatalf("type %q is not a URI reference: %v", p.Type, err)
	}
	page := base.ResolveReference(ref).String()
	if page != in.URL+"/problems/validation-failed" {
		t.Errorf("type resolves to %s, want this server's /problems/validation-failed", page)
	}

	// Through the conformance transport: the page is what the contract says.
	if resp, html := in.do(t, http.MethodGet, ref.Path, "", nil); resp.StatusCode != http.StatusOK ||
		!strings.Contains(string(html), "validation-failed") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("GET %s = %d %q (CSP %q), want its page", ref.Path, resp.StatusCode, html, resp.Header.Get("Content-Security-Policy"))
	}
	if resp, _ := in.do(t, http.MethodGet, "/problems/no-such-type", "", nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("GET an unknown problem type = %d, want 422 naming the allowed names", resp.StatusCode)
	}

	b := browsertest.New(t, in.URL, 0)
	b.Do(chromedp.Navigate(page))
	name := browsertest.Get(b, chromedp.Text(chromedp.CSS("#problem-name"), chromedp.NodeVisible))
	status := browsertest.Get(b, chromedp.Text(chromedp.CSS("#problem-status")))
	action := browsertest.Get(b, chromedp.Text(chromedp.CSS("#problem-action")))
	if name != "validation-failed" || status != "422 Unprocessable Entity" || action == "" {
		t.Errorf("page shows %q, %q, %q; want validation-failed, 422 Unprocessable Entity and what to do", name, status, action)
	}
	b.Screenshot("validation-failed")

	b.Do(chromedp.Navigate(b.URL("/problems")))
	links := browsertest.Get(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.types a')].map(a => a.getAttribute('href'))`))
	var want []string
	for _, d := range problem.Types {
		want = append(want, d.URI())
	}
	if !slices.Equal(links, want) {
		t.Errorf("index links %q, want %q", links, want)
	}
}
