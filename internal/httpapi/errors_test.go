package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logging"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/metrics"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/ratelimit"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// serve runs h behind the correlation middleware, as NewServer does, and
// returns the response, its decoded problem and the log.
func serve(t *testing.T, h func(s *server) http.Handler) (*httptest.ResponseRecorder, api.ProblemDetails, string) {
	t.Helper()
	var logs bytes.Buffer
	s := &server{Deps: Deps{
		Logger:  logging.New(&logs, logging.FormatJSON, slog.LevelInfo),
		Metrics: metrics.New(metrics.BuildInfo{}),
	}}
	r := httptest.NewRequest("GET", "/system/logs", nil)
	r.Header.Set(requestid.Header, "req-under-test")
	w := httptest.NewRecorder()
	requestid.Middleware(h(s)).ServeHTTP(w, r)
	var p api.ProblemDetails
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("not a problem: %v: %s", err, w.Body)
	}
	if w.Header().Get("Content-Type") != problem.ContentType || p.CorrelationId != "req-under-test" ||
		w.Header().Get(requestid.Header) != "req-under-test" {
		t.Errorf("problem %+v with headers %v", p, w.Header())
	}
	return w, p, logs.String()
}

// TestPanicIs500WithoutStack: the client gets a generic problem with the
// request id; the stack and the panic value go to the log only.
func TestPanicIs500WithoutStack(t *testing.T) {
	t.Parallel()
	w, p, logs := serve(t, func(s *server) http.Handler {
		return s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("secret internal state /srv/app/main.go")
		}))
	})
	if w.Code != 500 || p.Status != 500 || p.Type != problem.TypeInternal {
		t.Fatalf("status %d, problem %+v", w.Code, p)
	}
	if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "goroutine") {
		t.Errorf("panic leaked to the client: %s", w.Body)
	}
	if !strings.Contains(logs, "secret internal state") || !strings.Contains(logs, "req-under-test") || !strings.Contains(logs, "goroutine") {
		t.Errorf("panic not logged with request id and stack: %s", logs)
	}
}

// TestLogLinesCannotBeForged: client-controlled text in a log record (here
// the path of a request whose handler panics) is escaped by the JSON
// handler, so it can neither end the record nor start a forged one.
func TestLogLinesCannotBeForged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &server{Deps: Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}}
	forged := "\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\r\n"
	r := httptest.NewRequest("GET", "/x", nil)
	r.URL.Path = "/x" + forged
	r.Header.Set(requestid.Header, "req\nforged")
	requestid.Middleware(s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom" + forged)
	}))).ServeHTTP(httptest.NewRecorder(), r)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("one record became %d lines:\n%s", len(lines), logs.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "panic serving request" {
		t.Fatalf("record %v (%v)", rec, err)
	}
	if rec["path"] != "/x"+forged || requestid.Valid(forged) || rec["request_id"] == "req\nforged" {
		t.Errorf("record %v: the path must round-trip, the bad request id must be replaced", rec)
	}
}

// TestErrorTable: each store error becomes its status; anything else is a
// generic 500 that is logged with the request id and never sent.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		typ    string
	}{
		{fmt.Errorf("get: %w", logstore.ErrNotFound), 404, problem.TypeNotFound},
		{fmt.Errorf("list: %w", logstore.ErrInvalidCursor), 422, problem.TypeValidation},
		{errors.Join(database.ErrUnavailable, errors.New("dial unix /tmp/.s.PGSQL.5432")), 503, problem.TypeUnavailable},
		{errors.New(`ERROR: relation "system_logs" does not exist (SQLSTATE 42P01)`), 500, problem.TypeInternal},
		{auth.ErrMissingToken, 401, problem.TypeUnauthorized},
		{fmt.Errorf("look up token: %w", auth.ErrInvalidToken), 401, problem.TypeUnauthorized},
		{&auth.ScopeError{Token: "reader", Missing: []string{"logs:write"}}, 403, problem.TypeForbidden},
		{fmt.Errorf("look up token: %w", errors.Join(database.ErrUnavailable, errors.New("dial unix /tmp/.s.PGSQL.5432"))), 503, problem.TypeUnavailable},
		{fmt.Errorf("count logs: %w", errors.Join(logstore.ErrReadTimeout, errors.New("canceling statement due to statement timeout (SQLSTATE 57014)"))), 503, problem.TypeReadTimeout},
		{&ratelimit.Refusal{Policy: "requests", Quota: 5, RetryAfter: 300 * time.Millisecond}, 429, problem.TypeRateLimited},
	}
	for _, tt := range tests {
		w, p, logs := serve(t, func(s *server) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, tt.err) })
		})
		if w.Code != tt.status || p.Type != tt.typ {
			t.Errorf("%v: status %d type %s, want %d %s", tt.err, w.Code, p.Type, tt.status, tt.typ)
		}
		if strings.Contains(w.Body.String(), "SQLSTATE") || strings.Contains(w.Body.String(), "/tmp") {
			t.Errorf("%v: internals leaked: %s", tt.err, w.Body)
		}
		if tt.status >= 500 && (!strings.Contains(logs, "req-under-test") || !strings.Contains(logs, "error")) {
			t.Errorf("%v: 5xx not logged with request id: %s", tt.err, logs)
		}
		if tt.status == 503 && w.Header().Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		if challenge := w.Header().Get("WWW-Authenticate"); (tt.status == 401 || tt.status == 403) && !strings.HasPrefix(challenge, "Bearer ") {
			t.Errorf("%d with WWW-Authenticate %q", tt.status, challenge)
		}
		if tt.status == 403 && (!strings.Contains(p.Detail, "logs:write") || !strings.Contains(p.Detail, "reader")) {
			t.Errorf("403 detail %q does not name the token and the missing scope", p.Detail)
		}
	}
}
