package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/apiclient"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// The seed's fifteen cases and where they are checked:
//
//	errors:      problem format on validation errors  TestErrorStatuses, TestErrorsCarryCorrelationAndInstance
//	             HTTP errors carry correlation_id      TestErrorsCarryCorrelationAndInstance (and every error, in conformance)
//	             instance field                        TestErrorsCarryCorrelationAndInstance (and every error, in conformance)
//	correlation: X-Request-ID on responses            TestRequestIDKeptOrMinted (and every response, in conformance)
//	             incoming id preserved                 TestRequestIDKeptOrMinted
//	             minted ids are valid UUIDs            TestRequestIDKeptOrMinted, TestMintedIDsAreUnique
//	logs:        write and read                        TestWriteAndRead
//	             level and category filters            TestListFilters
//	             correlation id tracking               TestCorrelationTracking
//	             all fields present                    TestWriteAndRead, TestWriteDefaults
//	health:      liveness returns ok                   TestLiveness
//	             readiness checks the database         TestReadinessChecksDatabase, TestDatabaseOutage
//	             metrics return uptime                 TestMetricsCount
//	             overall health endpoint               TestOverallHealth
func TestMain(m *testing.M) { pgtest.Main(m) }

// instance is one running server, started through run() as `valhalla serve`.
type instance struct {
	URL string
	// Token is the server's bootstrap token, which holds every scope.
	Token string
	// Client and HTTP send Token unless a request sets Authorization itself.
	Client *api.ClientWithResponses
	// HTTP sends raw requests; every response is checked against the contract.
	HTTP *http.Client
	// Anon is HTTP without a token.
	Anon   *http.Client
	Output *syncBuffer
	stop   func() error
	// env is the server's environment, for commands on the same database.
	env map[string]string
}

// setup starts a server on a fresh database of the shared test cluster.
func setup(t *testing.T) *instance {
	t.Helper()
	return startServer(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)})
}

// startServer runs `valhalla serve` on a free port with env as its whole
// environment, waits until it listens, and stops it at cleanup (failing the
// test if run returns an error). Unless env sets VALHALLA_BOOTSTRAP_TOKEN,
// a fresh one is minted (set it to "" for none); a test that restarts on the
// same database must set it, since the bootstrap token applies only while no
// token exists.
func startServer(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	env = maps.Clone(env)
	if _, set := env["VALHALLA_BOOTSTRAP_TOKEN"]; !set {
		env["VALHALLA_BOOTSTRAP_TOKEN"] = auth.Mint()
	}
	if _, set := env["VALHALLA_DB_READ_TIMEOUT"]; !set {
		// The default (2s) is a bound for production reads; on a busy
		// 2-core machine a test's large page can take longer, and a
		// read-timeout 503 there would be noise, not the behaviour under
		// test (internal/logstore tests the timeout itself).
		env["VALHALLA_DB_READ_TIMEOUT"] = "60s"
	}
	if _, set := env["VALHALLA_LEDGER_KEY_FILE"]; !set && env["VALHALLA_DATA_DIR"] == "" {
		// Not ./.valhalla/ledger.key in the package directory.
		env["VALHALLA_LEDGER_KEY_FILE"] = filepath.Join(t.TempDir(), "ledger.key")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	getenv := func(k string) string { return env[k] }
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), getenv, out, out)
	}()
	addr, err := waitListening(out, done, 90*time.Second)
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v\noutput:\n%s", err, out)
	}
	var once sync.Once
	var stopErr error
	inst := &instance{URL: "http://" + addr, Token: env["VALHALLA_BOOTSTRAP_TOKEN"], Output: out, env: env}
	inst.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("server did not stop within 60s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := inst.stop(); err != nil {
			t.Errorf("server stopped with error: %v\noutput:\n%s", err, out)
		}
	})
	inst.connect(t, http.DefaultTransport)
	return inst
}

// connect gives in its clients, which send through base and check every
// response against the contract.
func (in *instance) connect(t *testing.T, base http.RoundTripper) {
	t.Helper()
	in.Anon = &http.Client{Transport: &conformance{t: t, base: base}, Timeout: 30 * time.Second}
	in.HTTP = &http.Client{Transport: bearer{token: in.Token, base: in.Anon.Transport}, Timeout: 30 * time.Second}
	var err error
	in.Client, err = apiclient.New(in.URL, api.WithHTTPClient(in.HTTP))
	if err != nil {
		t.Fatal(err)
	}
}

// bearer sends token on every request that has no Authorization header.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, set := req.Header["Authorization"]; !set {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(req)
}

// waitListening polls the server's log for its "listening" record.
func waitListening(out *syncBuffer, done <-chan error, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				return rec.Addr, nil
			}
		}
		select {
		case err := <-done:
			return "", fmt.Errorf("run returned early: %v", err)
		case <-deadline:
			return "", errors.New("timed out")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The problem type pages are text/html, a string in the contract;
// kin-openapi has no decoder for it.
func init() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder) }

// loadContract is openapi.yaml, loaded once for response validation.
var loadContract = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, err
	}
	spec.Servers = nil
	return spec, nil
})

var contractRouter = sync.OnceValues(func() (routers.Router, error) {
	spec, err := loadContract()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(spec)
})

// conformance is an http.RoundTripper that checks every response against
// openapi.yaml: its status is declared for the operation, its headers and
// body match the declared schemas, it carries a sane X-Request-ID, and an
// error is problem+json whose correlation_id equals that header and which
// carries a trace_id.
type conformance struct {
	t    testing.TB
	base http.RoundTripper
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := checkResponse(req, resp, body); err != nil {
		c.t.Errorf("%s %s -> %d breaks the contract: %v\nbody: %s", req.Method, req.URL, resp.StatusCode, err, body)
	}
	return resp, nil
}

// traceIDPattern matches a W3C trace id.
var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func checkResponse(req *http.Request, resp *http.Response, body []byte) error {
	spec, err := loadContract()
	if err != nil {
		return err
	}
	router, err := contractRouter()
	if err != nil {
		return err
	}
	id := resp.Header.Get(requestid.Header)
	if !requestid.Valid(id) {
		return fmt.Errorf("X-Request-ID %q is missing or not sane", id)
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			return fmt.Errorf("error with Content-Type %q, want application/problem+json", ct)
		}
		var p api.ProblemDetails
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("problem body: %w", err)
		}
		if p.CorrelationId != id || p.Status != resp.StatusCode || p.Instance != req.URL.Path {
			return fmt.Errorf("problem correlation_id/status/instance = %q/%d/%q, want %q/%d/%q",
				p.CorrelationId, p.Status, p.Instance, id, resp.StatusCode, req.URL.Path)
		}
		if p.TraceId == nil || !traceIDPattern.MatchString(*p.TraceId) {
			return fmt.Errorf("problem trace_id %v, want the request's trace id", p.TraceId)
		}
		// The type resolves to a page of problem.Types, which documents
		// the status it comes with.
		if doc, ok := problem.Lookup(p.Type); !ok || doc.Status != p.Status {
			return fmt.Errorf("problem type %q (status %d) is not a documented problem type of that status", p.Type, p.Status)
		}
	}
	route, pathParams, err := router.FindRoute(req)
	if err != nil && isPage(req.URL.Path) && resp.StatusCode < 400 {
		return checkPageHeaders(resp)
	}
	if err != nil {
		// No operation: only 404 or 405, with a ProblemDetails body.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("no operation matches, yet status %d", resp.StatusCode)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return spec.Components.Schemas["ProblemDetails"].Value.VisitJSON(v, openapi3.MultiErrors())
	}
	return openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: pathParams, Route: route,
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.WithStringFormatValidator("uuid",
					openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
			},
		},
	})
}

// isPage reports whether path is under one of the pages for people, which
// the contract does not list.
func isPage(path string) bool {
	return strings.HasPrefix(path, "/docs/") || strings.HasPrefix(path, "/ui/")
}

// checkPageHeaders checks the security headers every page and asset
// carries, and the ETag it is cached by.
func checkPageHeaders(resp *http.Response) error {
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors ") ||
		strings.Contains(csp, "unsafe-inline") {
		return fmt.Errorf("page Content-Security-Policy %q, want default-src 'self', frame-ancestors and no unsafe-inline", csp)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		return fmt.Errorf("page X-Content-Type-Options %q, want nosniff", got)
	}
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
		return fmt.Errorf("page Referrer-Policy %q, want no-referrer", got)
	}
	if resp.Header.Get("ETag") == "" {
		return errors.New("page has no ETag")
	}
	return nil
}

// ctx returns a context bounded by the test's deadline.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// withRequestID sets the X-Request-ID header on a generated client's request.
func withRequestID(id string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set(requestid.Header, id)
		return nil
	}
}

// problemOf decodes a problem body, failing the test when it is not one.
func problemOf(t *testing.T, body []byte) api.ProblemDetails {
	t.Helper()
	var p api.ProblemDetails
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem body: %v: %s", err, body)
	}
	return p
}

// do sends a raw request through the conforming client.
func (in *instance) do(t *testing.T, method, path, contentType string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, in.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := in.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
