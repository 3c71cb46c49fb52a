package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/browsertest"
)

// seedViewer writes seven entries: five in category billing (two of them
// for user-7 under correlation id order-42), two in auth.
func seedViewer(t *testing.T, in *instance) {
	t.Helper()
	levels := []api.LogLevel{api.DEBUG, api.INFO, api.WARNING, api.ERROR, api.CRITICAL, api.INFO, api.WARNING}
	var entries []api.SystemLogCreate
	for i, lv := range levels {
		e := api.SystemLogCreate{Message: fmt.Sprintf("entry %d", i), Level: ptr(lv), Category: ptr("billing")}
		if i >= 5 {
			e.Category = ptr("auth")
		}
		if i == 1 || i == 3 {
			e.UserId = ptr("user-7")
			e.CorrelationId = ptr("order-42")
			raw := json.RawMessage(fmt.Sprintf(`{"amount":%d,"card":{"last4":"4242"}}`, i*100))
			e.Context = &raw
		}
		entries = append(entries, e)
	}
	// One at a time, so their timestamps order them.
	for _, e := range entries {
		resp, err := in.Client.CreateSystemLogWithResponse(ctx(t), &api.CreateSystemLogParams{}, e)
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("write: %v %s", err, resp.Body)
		}
	}
}

// listIDs is the ids the API lists for query, newest first.
func listIDs(t *testing.T, in *instance, query string) []string {
	t.Helper()
	_, body := in.do(t, "GET", "/system/logs?"+query, "", nil)
	var page api.SystemLogList
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range page.Items {
		ids = append(ids, e.Id.String())
	}
	return ids
}

const rowIDs = `[...document.querySelectorAll('#entries tbody tr')].map(r => r.dataset.id)`

// waitRows waits until the list shows exactly want (ids, in order).
func waitRows(t *testing.T, b *browsertest.Browser, want []string) {
	t.Helper()
	js, _ := json.Marshal(want)
	browsertest.Get(b, chromedp.Poll[bool](`JSON.stringify(`+rowIDs+`) === `+"`"+string(js)+"`"))
}

func query(t *testing.T, b *browsertest.Browser) url.Values {
	t.Helper()
	loc := browsertest.Get(b, chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestViewerSignInFilterPage signs in with a token (a wrong one first, shown
// as a problem), lists the trail newest first, filters by category, pages
// forward and back by cursor, and signs out. The URL carries the filters
// and never the token.
func TestViewerSignInFilterPage(t *testing.T) {
	t.Parallel()
	in := setup(t)
	seedViewer(t, in)
	b := browsertest.New(t, in.URL, 1280)
	b.AllowFailedLoad(`/system/logs($|\?)`) // the wrong token's 401

	b.Do(
		chromedp.Navigate(b.URL("/ui/")),
		chromedp.SendKeys(chromedp.CSS("#token"), "vhl_wrong\r", chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(".problem .problem-request-id")),
	)
	title := browsertest.Get(b, chromedp.Text(chromedp.CSS("#problem-title")))
	detail := browsertest.Get(b, chromedp.Text(chromedp.CSS(".problem-detail")))
	if title != "401 Unauthorized" || !strings.Contains(detail, "not valid") {
		t.Errorf("wrong token shows %q / %q, want the 401 problem's title and detail", title, detail)
	}
	b.Screenshot("wrong-token")

	b.Do(
		chromedp.Clear(chromedp.CSS("#token"), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS("#token"), in.Token+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#entries tbody tr")),
	)
	waitRows(t, b, listIDs(t, in, ""))
	if loc := browsertest.Get(b, chromedp.Location()); strings.Contains(loc, in.Token) {
		t.Errorf("the token is in the URL %s", loc)
	}
	if got := browsertest.Get(b, chromedp.Evaluate[string](`sessionStorage.getItem('valhalla.token')`)); got != in.Token {
		t.Errorf("sessionStorage holds %q, want the token", got)
	}
	wantLabelledControls(t, b, "the list")
	// The strip shows readiness, with its checks, and the ledger's health.
	strip := browsertest.Get(b, chromedp.Poll[string](`(t => t.includes('Ledger') && t)(document.querySelector('#health').textContent)`))
	if !strings.Contains(strip, "Ready: database ok") || !strings.Contains(strip, "Ledger ok") {
		t.Errorf("the health strip shows %q, want readiness with its checks and the ledger's health", strip)
	}
	level := browsertest.Get(b, chromedp.Text(chromedp.CSS("#entries tbody tr:first-child .level")))
	color := browsertest.Get(b, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#entries tbody tr:first-child .level')).color`))
	infoColor := browsertest.Get(b, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#entries tbody tr:nth-child(2) .level')).color`))
	if level != "WARNING" || color == infoColor {
		t.Errorf("newest row's level %q in %s (next row %s): want WARNING, in its own colour", level, color, infoColor)
	}
	hover := browsertest.Get(b, chromedp.AttributeValue(chromedp.CSS("#entries tbody tr:first-child time"), "title"))
	if !strings.HasSuffix(hover.Value, "Z (UTC)") {
		t.Errorf("timestamp's hover text %q, want the UTC instant", hover.Value)
	}
	// VALHALLA_VIEWER_SCREENSHOT=$PWD/docs/viewer.png refreshes the README's picture.
	if path := os.Getenv("VALHALLA_VIEWER_SCREENSHOT"); path != "" {
		b.ScreenshotTo(path)
	}

	// Filter through the form: category billing.
	b.Do(
		chromedp.SendKeys(chromedp.CSS("#f-category"), "billing"),
		chromedp.Click(chromedp.CSS("#apply")),
	)
	first := listIDs(t, in, "category=billing")
	waitRows(t, b, first)
	if q := query(t, b); q.Get("category") != "billing" {
		t.Errorf("URL query %v, want category=billing", q)
	}

	// A shared URL: category billing, two per page.
	b.Do(chromedp.Navigate(b.URL("/ui/?category=billing&limit=2")))
	page1 := listIDs(t, in, "category=billing&limit=2")
	waitRows(t, b, page1)
	b.Do(chromedp.Click(chromedp.CSS("#older"), chromedp.NodeEnabled))
	cursor := ""
	browsertest.Get(b, chromedp.Poll[bool](`new URLSearchParams(location.search).has('cursor')`))
	cursor = query(t, b).Get("cursor")
	page2 := listIDs(t, in, "category=billing&limit=2&cursor="+url.QueryEscape(cursor))
	waitRows(t, b, page2)
	b.Do(chromedp.Click(chromedp.CSS("#older"), chromedp.NodeEnabled))
	browsertest.Get(b, chromedp.Poll[bool](`new URLSearchParams(location.search).get('cursor') !== `+"`"+cursor+"`"))
	page3 := listIDs(t, in, "category=billing&limit=2&cursor="+url.QueryEscape(query(t, b).Get("cursor")))
	waitRows(t, b, page3)
	if len(page3) != 1 {
		t.Errorf("third page of five has %d entries, want 1", len(page3))
	}
	if disabled := browsertest.Get(b, chromedp.Evaluate[bool](`document.querySelector('#older').disabled`)); !disabled {
		t.Error("Older is enabled on the last page")
	}
	b.Do(chromedp.Click(chromedp.CSS("#newer"), chromedp.NodeEnabled))
	waitRows(t, b, page2)
	b.Do(chromedp.Click(chromedp.CSS("#newer"), chromedp.NodeEnabled))
	waitRows(t, b, page1)
	if q := query(t, b); q.Has("cursor") || q.Get("category") != "billing" || q.Get("limit") != "2" {
		t.Errorf("back on the first page the URL query is %v, want category and limit without cursor", q)
	}
	b.Screenshot("first-page-again")

	// A shared view: the same URL in a tab without the token asks for one.
	b.Do(chromedp.Click(chromedp.CSS("#sign-out"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#token")))
	if got := browsertest.Get(b, chromedp.Evaluate[*string](`sessionStorage.getItem('valhalla.token')`)); got != nil {
		t.Errorf("after sign out sessionStorage holds %q", *got)
	}
}

// TestViewerEntry opens one entry from the list: every field, its context
// pretty-printed, and links to the entries of the same correlation id,
// trace and user. A bad cursor in a shared URL shows the 422 problem with
// its field error and request id, and its type opens the problem's page.
func TestViewerEntry(t *testing.T) {
	t.Parallel()
	in := setup(t)
	seedViewer(t, in)
	b := browsertest.New(t, in.URL, 1280)
	b.AllowFailedLoad(`/system/logs\?.*cursor=bogus`)
	b.Do(
		chromedp.Navigate(b.URL("/ui/?user_id=user-7")),
		chromedp.SendKeys(chromedp.CSS("#token"), in.Token+"\r", chromedp.NodeVisible),
	)
	ids := listIDs(t, in, "user_id=user-7")
	waitRows(t, b, ids)
	b.Do(chromedp.Click(chromedp.CSS("#entries tbody tr:first-child .open-entry")), chromedp.WaitVisible(chromedp.CSS("#entry")))
	id := browsertest.Get(b, chromedp.Text(chromedp.CSS("#entry-id")))
	if id != ids[0] || query(t, b).Get("entry") != id {
		t.Errorf("opened entry %q (URL %v), want %q", id, query(t, b), ids[0])
	}
	context := browsertest.Get(b, chromedp.Text(chromedp.CSS("#entry-context")))
	if !strings.Contains(context, "\n  \"card\": {\n    \"last4\": \"4242\"") {
		t.Errorf("context shown as %q, want it pretty-printed", context)
	}
	fields := browsertest.Get(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#entry dt')].map(d => d.textContent)`))
	for _, f := range []string{"Id", "Time", "Level", "Category", "Message", "Correlation id", "Trace id", "User", "Written by", "Context"} {
		if !strings.Contains(strings.Join(fields, ","), f) {
			t.Errorf("entry shows fields %q, missing %s", fields, f)
		}
	}
	wantLabelledControls(t, b, "an entry")
	b.Screenshot("entry")

	b.Do(chromedp.Click(chromedp.Search(`//a[text()="same correlation id"]`)))
	waitRows(t, b, listIDs(t, in, "correlation_id=order-42"))
	if q := query(t, b); q.Get("correlation_id") != "order-42" || q.Has("entry") {
		t.Errorf("same correlation id leads to %v", q)
	}
	b.Do(chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#entry")))
	b.Do(chromedp.Click(chromedp.Search(`//a[text()="same trace"]`)))
	trace := query(t, b).Get("trace_id")
	waitRows(t, b, listIDs(t, in, "trace_id="+trace))
	b.Do(chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#entry")))
	b.Do(chromedp.Click(chromedp.Search(`//a[text()="same user"]`)))
	waitRows(t, b, listIDs(t, in, "user_id=user-7"))

	b.Do(
		chromedp.Navigate(b.URL("/ui/?cursor=bogus")),
		chromedp.WaitVisible(chromedp.CSS(".problem .problem-errors")),
	)
	errs := browsertest.Get(b, chromedp.Text(chromedp.CSS(".problem-errors")))
	rid := browsertest.Get(b, chromedp.Text(chromedp.CSS(".problem-request-id")))
	if !strings.Contains(errs, "parameter cursor") || rid == "" {
		t.Errorf("bad cursor shows errors %q and request id %q", errs, rid)
	}
	b.Screenshot("problem")
	b.Do(chromedp.Click(chromedp.CSS(".problem-type")), chromedp.WaitVisible(chromedp.CSS("#problem-name")))
	if name := browsertest.Get(b, chromedp.Text(chromedp.CSS("#problem-name"))); name != "validation-failed" {
		t.Errorf("the problem's type opened %q, want validation-failed", name)
	}
}

// TestViewerNarrow checks the list and an entry are readable at 360 px
// (nothing wider than the screen), in a viewer whose time zone is
// Asia/Kolkata: timestamps are shown in it.
func TestViewerNarrow(t *testing.T) {
	t.Parallel()
	in := setup(t)
	seedViewer(t, in)
	b := browsertest.New(t, in.URL, 0)
	b.Do(
		chromedp.EmulateViewport(360, 780),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"})
			return err
		}),
		chromedp.Navigate(b.URL("/ui/")),
		chromedp.SendKeys(chromedp.CSS("#token"), in.Token+"\r", chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#entries tbody tr")),
	)
	shown := browsertest.Get(b, chromedp.Text(chromedp.CSS("#entries tbody tr:first-child time")))
	if !strings.Contains(shown, "GMT+5:30") {
		t.Errorf("timestamp shown as %q, want it in the viewer's zone (GMT+5:30)", shown)
	}
	const fits = `document.documentElement.scrollWidth <= window.innerWidth`
	if !browsertest.Get(b, chromedp.Evaluate[bool](fits)) {
		w := browsertest.Get(b, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		t.Errorf("list is %d px wide at 360", w)
	}
	b.Screenshot("list-360")
	b.Do(chromedp.Click(chromedp.CSS("#entries tbody tr:nth-child(4) .open-entry")), chromedp.WaitVisible(chromedp.CSS("#entry")))
	if !browsertest.Get(b, chromedp.Evaluate[bool](fits)) {
		t.Error("entry is wider than 360 px")
	}
	b.Screenshot("entry-360")
}

// unlabelled lists the page's visible controls that a screen reader cannot
// name (no label, aria-label, aria-labelledby, title or text) or that the
// keyboard cannot reach (a negative tabindex).
const unlabelled = `[...document.querySelectorAll('input, select, textarea, button, a[href], summary')]
  .filter(e => e.type !== 'hidden' && e.getClientRects().length > 0)
  .filter(e => {
    const by = e.getAttribute('aria-labelledby');
    const name = [...(e.labels || [])].map(l => l.textContent).join('') || e.getAttribute('aria-label') ||
      (by && document.getElementById(by)?.textContent) || e.title ||
      (['BUTTON', 'A', 'SUMMARY'].includes(e.tagName) ? e.textContent : '') ||
      (['submit', 'button', 'reset'].includes(e.type) ? e.value : '');
    return !(name || '').trim() || e.tabIndex < 0;
  })
  .map(e => e.outerHTML.slice(0, 120))`

// wantLabelledControls fails the test for every control on the page that
// has no accessible name or is out of the keyboard's reach.
func wantLabelledControls(t *testing.T, b *browsertest.Browser, page string) {
	t.Helper()
	for _, c := range browsertest.Get(b, chromedp.Evaluate[[]string](unlabelled)) {
		t.Errorf("%s: a control without a name or out of the keyboard's reach: %s", page, c)
	}
}
