package contract_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// FuzzProblem feeds arbitrary bodies and query strings through the
// validator and checks the problem each violation maps to: a status the
// contract declares for invalid input, every violation located exactly once
// (a valid JSON Pointer, a parameter or a header) with a detail, a count in
// the summary that matches, and a body that encodes as JSON.
func FuzzProblem(f *testing.F) {
	for _, seed := range []struct{ body, query string }{
		{`{"entries":[{"message":"m"}]}`, "limit=10"},
		{`{"entries":[{"message":""},{"level":"NOPE","message":"x","extra":1}]}`, "limit=0&min_level=LOUD"},
		{`{"entries":[]}`, "level=INFO&level=ERROR&since=yesterday"},
		{`{"entries":[{"message":"m","context":[]}],"x":{}}`, "cursor=%00&include_total=maybe"},
		{`{"entries":[{"message":"a~b/c","context":{"a/b~":1}}]}`, "category=" + strings.Repeat("c", 65)},
		{`{"entries":`, "until=2026-13-01T00:00:00Z"},
		{`[1,2,3]`, "limit=1e3"},
		{`{"entries":[{"message":"m"}]} trailing`, "user_id="},
		{`"\u0000"`, "%zz"},
		{``, ""},
	} {
		f.Add(seed.body, seed.query)
	}
	v, err := contract.New(1<<12, nil, allowAll)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/system/logs/batch", strings.NewReader(body)),
			httptest.NewRequest(http.MethodGet, "/system/logs", nil),
		} {
			r.Header.Set("Content-Type", "application/json")
			r.URL.RawQuery = query
			var got *problem.Problem
			v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) {
				if !errors.As(err, &got) {
					t.Fatalf("not a problem: %v", err)
				}
			})(
				http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).
				ServeHTTP(httptest.NewRecorder(), r)
			if got != nil {
				checkProblem(t, r, got)
			}
		}
	})
}

func checkProblem(t *testing.T, r *http.Request, p *problem.Problem) {
	t.Helper()
	switch p.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	case http.StatusUnprocessableEntity:
		if len(p.Errors) == 0 {
			t.Fatalf("422 without violations: %+v", p)
		}
		if want := strconv.Itoa(len(p.Errors)) + " invalid field"; !strings.Contains(p.Detail, want) {
			t.Errorf("detail %q does not count %d violations", p.Detail, len(p.Errors))
		}
	default:
		t.Fatalf("status %d for invalid input: %+v", p.Status, p)
	}
	if p.Title != http.StatusText(p.Status) || p.Type == "" || p.Detail == "" {
		t.Errorf("incomplete problem %+v", p)
	}
	for _, e := range p.Errors {
		located := 0
		for _, loc := range []*string{e.Pointer, e.Parameter, e.Header} {
			if loc != nil {
				located++
			}
		}
		if located != 1 || e.Detail == "" {
			t.Errorf("violation %+v: want exactly one locator and a detail", e)
		}
		if e.Pointer != nil && !validPointer(*e.Pointer) {
			t.Errorf("invalid JSON Pointer %q", *e.Pointer)
		}
		if e.Parameter != nil {
			if _, err := url.ParseQuery(*e.Parameter + "=x"); err != nil || *e.Parameter == "" {
				t.Errorf("parameter %q is not a parameter name", *e.Parameter)
			}
		}
	}
	b, err := json.Marshal(p.Body(r))
	if err != nil || !utf8.Valid(b) {
		t.Errorf("problem does not encode: %v", err)
	}
}

// validPointer reports whether s is an RFC 6901 JSON Pointer.
func validPointer(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '~' && (i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1')) {
			return false
		}
	}
	return true
}
