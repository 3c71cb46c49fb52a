package contract_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// check runs one request through the validator and returns the problem it
// raised, or nil when the request reached the handler.
func check(t *testing.T, v *contract.Validator, method, target, contentType, body string) *problem.Problem {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	var got *problem.Problem
	passed := false
	v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) {
		if !errors.As(err, &got) {
			t.Fatalf("not a problem: %v", err)
		}
	})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true })).
		ServeHTTP(httptest.NewRecorder(), r)
	if passed == (got != nil) {
		t.Fatalf("passed=%v with problem %v", passed, got)
	}
	return got
}

// allowAll is an authentication hook that lets every caller in.
func allowAll(context.Context, *openapi3filter.AuthenticationInput) error { return nil }

func where(p *problem.Problem) []string {
	var out []string
	for _, e := range p.Errors {
		switch {
		case e.Pointer != nil:
			out = append(out, *e.Pointer)
		case e.Parameter != nil:
			out = append(out, "?"+*e.Parameter)
		case e.Header != nil:
			out = append(out, "header:"+*e.Header)
		}
	}
	slices.Sort(out)
	return out
}

func TestValidationProblems(t *testing.T) {
	t.Parallel()
	v, err := contract.New(1<<10, map[string]int64{"createSystemLogBatch": 1 << 12}, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, target, contentType, body string
		status                                  int // 0: passes
		where                                   []string
	}{
		{"valid write", "POST", "/system/logs", "application/json", `{"message":"m"}`, 0, nil},
		{"valid write with charset", "POST", "/system/logs", "application/json; charset=utf-8", `{"message":"m"}`, 0, nil},
		{"every violation at once", "POST", "/system/logs", "application/json",
			`{"message":"","level":"x","category":"","context":1,"user_id":7,"correlation_id":"","extra":true}`, 422,
			[]string{"/category", "/context", "/correlation_id", "/extra", "/level", "/message", "/user_id"}},
		{"JSON Pointer escapes ~ and /", "POST", "/system/logs", "application/json", `{"message":"m","a/b~c":1}`, 422, []string{"/a~1b~0c"}},
		{"nested batch pointer", "POST", "/system/logs/batch", "application/json",
			`{"entries":[{"message":"ok"},{"message":"ok","level":"NOPE"},{}]}`, 422, []string{"/entries/1/level", "/entries/2/message"}},
		{"malformed", "POST", "/system/logs", "application/json", `{"message":"m"`, 400, nil},
		{"trailing garbage", "POST", "/system/logs", "application/json", `{"message":"m"} x`, 400, nil},
		{"single write over its limit", "POST", "/system/logs", "application/json", `{"message":"` + strings.Repeat("m", 2000) + `"}`, 413, nil},
		{"batch allowed its larger limit", "POST", "/system/logs/batch", "application/json", `{"entries":[{"message":"` + strings.Repeat("m", 2000) + `"}]}`, 0, nil},
		{"415", "POST", "/system/logs", "application/xml", `<m/>`, 415, []string{"header:Content-Type"}},
		{"parameters", "GET", "/system/logs?limit=x&min_level=LOUD&until=never", "", "", 422, []string{"?limit", "?min_level", "?until"}},
		{"repeated level", "GET", "/system/logs?level=INFO&level=ERROR", "", "", 0, nil},
		{"uuid format", "GET", "/system/logs/zzzzzzzz-6a6e-7d1c-9f5e-3b1a2c4d5e6f", "", "", 422, []string{"?id"}},
		{"unknown path", "GET", "/system/logz", "", "", 404, nil},
		{"wrong method", "PUT", "/system-health/ready", "", "", 405, nil},
		{"literal path wins over a template", "GET", "/system/logs/batch", "", "", 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := check(t, v, tt.method, tt.target, tt.contentType, tt.body)
			if tt.status == 0 {
				if p != nil {
					t.Fatalf("rejected: %v %+v", p, p.Errors)
				}
				return
			}
			if p == nil || p.Status != tt.status {
				t.Fatalf("problem %v, want status %d", p, tt.status)
			}
			if got := where(p); strings.Join(got, " ") != strings.Join(tt.where, " ") {
				t.Errorf("located at %v, want %v", got, tt.where)
			}
			for _, e := range p.Errors {
				if e.Detail == "" || strings.Contains(e.Detail, "Schema:") || strings.Contains(e.Detail, "^(") {
					t.Errorf("detail %q is empty or leaks the schema", e.Detail)
				}
			}
		})
	}
}

func TestServesContractAsJSON(t *testing.T) {
	t.Parallel()
	v, err := contract.New(1<<20, nil, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Servers []any `json:"servers"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(v.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) == 0 {
		t.Error("served contract lost its servers")
	}
	if got := doc.Paths["/system/logs/batch"]["post"].OperationID; got != "createSystemLogBatch" {
		t.Errorf("operationId %q, want it as written in openapi.yaml", got)
	}
}

// TestDetailSaysWhy: the detail names the rule broken, even through the
// allOf that carries the level's default.
func TestDetailSaysWhy(t *testing.T) {
	t.Parallel()
	v, err := contract.New(1<<20, nil, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	p := check(t, v, "POST", "/system/logs", "application/json", `{"message":"m","level":"LOUD"}`)
	if p == nil || len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Detail, "allowed values") {
		t.Fatalf("problem %+v", p)
	}
}

// TestAuthenticationComesFirst: on a secured operation the hook runs before
// the body is read, gets the scopes x-required-scopes names, and its error
// alone reaches the caller, whatever else is wrong with the request; open
// operations never call it.
func TestAuthenticationComesFirst(t *testing.T) {
	t.Parallel()
	denied := errors.New("denied")
	var calls []string
	v, err := contract.New(1<<10, nil, func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		calls = append(calls, in.RequestValidationInput.Route.Operation.OperationID+" "+in.SecuritySchemeName+" "+strings.Join(in.Scopes, ","))
		return denied
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func(method, target, contentType, body string) error {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var got error
		v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) { got = err })(
			http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), r)
		return got
	}
	for _, tc := range []struct{ method, target, contentType, body, call string }{
		{"POST", "/system/logs", "text/plain", strings.Repeat("x", 1<<11), "createSystemLog bearerAuth logs:write"},
		{"POST", "/system/logs/batch", "application/json", `{"entries":[]}`, "createSystemLogBatch bearerAuth logs:write"},
		{"GET", "/system/logs?limit=0&level=LOUD", "", "", "listSystemLogs bearerAuth logs:read"},
		{"GET", "/system/logs/not-a-uuid", "", "", "getSystemLog bearerAuth logs:read"},
	} {
		calls = nil
		if err := run(tc.method, tc.target, tc.contentType, tc.body); err != denied {
			t.Errorf("%s %s: error %v, want only the hook's", tc.method, tc.target, err)
		}
		if len(calls) != 1 || calls[0] != tc.call {
			t.Errorf("%s %s: hook calls %q, want [%q]", tc.method, tc.target, calls, tc.call)
		}
	}
	calls = nil
	for _, target := range []string{"/system-health/live", "/system-health/ready", "/openapi.yaml"} {
		if err := run("GET", target, "", ""); err != nil {
			t.Errorf("GET %s: %v, want open", target, err)
		}
	}
	if len(calls) != 0 {
		t.Errorf("open operations called the hook: %q", calls)
	}
	if got, err := contract.Scopes(); strings.Join(got, " ") != "logs:read logs:write" || err != nil {
		t.Errorf("Scopes() = %q, %v", got, err)
	}
}

// TestAuthenticatesOnce: a request that passes is authenticated once, not
// again inside the validator.
func TestAuthenticatesOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	v, err := contract.New(1<<20, nil, func(context.Context, *openapi3filter.AuthenticationInput) error {
		calls++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, target, body string }{
		{"POST", "/system/logs", `{"message":"m"}`},
		{"POST", "/system/logs/batch", `{"entries":[{"message":"m"}]}`},
		{"GET", "/system/logs?limit=1", ""},
	} {
		calls = 0
		if p := check(t, v, tc.method, tc.target, "application/json", tc.body); p != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, p)
		}
		if calls != 1 {
			t.Errorf("%s %s: authenticated %d times, want once", tc.method, tc.target, calls)
		}
	}
}

// trickle is a body that declares more than it sends: it hands out what it
// has, then blocks until released.
type trickle struct {
	data    []byte
	release chan struct{}
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.data) == 0 {
		<-t.release
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, t.data)
	t.data = t.data[n:]
	return n, nil
}

func (t *trickle) Close() error { return nil }

// TestBodyBudget: bodies hold the budget for what they have read, not for
// what they declare, until they are served; a request that would go over
// it is a 503 with Retry-After, and the budget is whole again afterwards.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	budget := contract.NewBodyBudget(1 << 20)
	v, err := contract.New(16<<20, nil, allowAll, contract.WithBodyBudget(budget))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(r *http.Request, inHandler func()) error {
		var got error
		v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) { got = err })(
			http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				if inHandler != nil {
					inHandler()
				}
			})).ServeHTTP(httptest.NewRecorder(), r)
		return got
	}
	// A body that declares 16 MiB and sends 100 bytes holds 100 bytes.
	slow := &trickle{data: []byte(`{"message":"` + strings.Repeat("m", 88)), release: make(chan struct{})}
	r := httptest.NewRequest("POST", "/system/logs", nil)
	r.Body, r.ContentLength = slow, 16<<20
	r.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() { done <- serve(r, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for budget.InUse() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("budget in use %d, want the 100 bytes read", budget.InUse())
		}
		time.Sleep(time.Millisecond)
	}
	close(slow.release)
	if err := <-done; err == nil {
		t.Fatal("a body cut short passed")
	}
	if budget.InUse() != 0 {
		t.Fatalf("budget in use %d after the request, want 0", budget.InUse())
	}

	// While a 600 KiB body is being served, a second one is refused, and a
	// small one still gets in.
	big := `{"entries":[` + strings.Repeat(`{"message":"`+strings.Repeat("m", 9000)+`"},`, 66) + `{"message":"m"}]}`
	post := func() *http.Request {
		r := httptest.NewRequest("POST", "/system/logs/batch", strings.NewReader(big))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	small := func() *http.Request {
		r := httptest.NewRequest("POST", "/system/logs", strings.NewReader(`{"message":"m"}`))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	var second, third error
	if err := serve(post(), func() { second, third = serve(post(), nil), serve(small(), nil) }); err != nil {
		t.Fatalf("first body: %v", err)
	}
	var p *problem.Problem
	if !errors.As(second, &p) || p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" {
		t.Fatalf("second body while the first held the budget: %v, want 503 with Retry-After", second)
	}
	if third != nil {
		t.Fatalf("a small body while a large one held the budget: %v, want it served from the quarter kept for small ones", third)
	}
	if budget.InUse() != 0 {
		t.Fatalf("budget in use %d after both, want 0", budget.InUse())
	}
	if err := serve(post(), nil); err != nil {
		t.Fatalf("a body after the budget came back: %v", err)
	}
}
