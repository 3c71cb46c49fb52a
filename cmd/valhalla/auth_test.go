package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// tokens runs `valhalla tokens args...` on srv's database and returns stdout.
func (in *instance) tokens(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(ctx(t), append([]string{"tokens"}, args...), func(k string) string { return in.env[k] }, &out, &errOut)
	if err != nil {
		t.Logf("valhalla tokens %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), err
}

// newToken creates a token on srv's database and returns it.
func (in *instance) newToken(t *testing.T, name, scopes string) string {
	t.Helper()
	out, err := in.tokens(t, "create", "--name", name, "--scopes", scopes)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	if !auth.ValidToken(token) {
		t.Fatalf("tokens create printed %q, want one token", out)
	}
	return token
}

// as sends a request with token ("" for none) through the conforming client.
func (in *instance) as(t *testing.T, token, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, in.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := in.Anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestAuthentication: the log operations need a valid token holding the
// operation's scope (401 with a Bearer challenge, or 403 naming the missing
// scope); the health and contract operations stay open.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	reader := srv.newToken(t, "reader", "logs:read")
	writer := srv.newToken(t, "writer", "logs:write")
	id := write(t, srv, api.SystemLogCreate{Message: "m"}, "").Id.String()
	wrongSecret := reader[:strings.LastIndex(reader, "_")+1] + strings.Repeat("A", 26)

	ops := []struct{ method, path, body, scope string }{
		{"POST", "/system/logs", `{"message":"m"}`, "logs:write"},
		{"POST", "/system/logs/batch", `{"entries":[{"message":"m"}]}`, "logs:write"},
		{"GET", "/system/logs", "", "logs:read"},
		{"GET", "/system/logs/" + id, "", "logs:read"},
	}
	for _, op := range ops {
		for _, token := range []string{"", "not-a-token", auth.Mint(), wrongSecret} {
			resp, body := srv.as(t, token, op.method, op.path, op.body)
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != 401 || problemOf(t, body).Type != problem.TypeUnauthorized || !strings.HasPrefix(challenge, "Bearer ") {
				t.Errorf("%s %s with token %q: %d %q %s, want 401 with a Bearer challenge", op.method, op.path, token, resp.StatusCode, challenge, body)
			}
			if token != "" && !strings.Contains(challenge, `error="invalid_token"`) {
				t.Errorf("%s %s with a bad token: challenge %q", op.method, op.path, challenge)
			}
		}
		wrong := reader
		if op.scope == "logs:read" {
			wrong = writer
		}
		resp, body := srv.as(t, wrong, op.method, op.path, op.body)
		if p := problemOf(t, body); resp.StatusCode != 403 || p.Type != problem.TypeForbidden || !strings.Contains(p.Detail, op.scope) {
			t.Errorf("%s %s without %s: %d %s, want 403 naming the scope", op.method, op.path, op.scope, resp.StatusCode, body)
		}
		right := writer
		if op.scope == "logs:read" {
			right = reader
		}
		if resp, body := srv.as(t, right, op.method, op.path, op.body); resp.StatusCode >= 300 {
			t.Errorf("%s %s with %s: %d %s", op.method, op.path, op.scope, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/system-health", "/system-health/live", "/system-health/ready", "/system-health/metrics", "/openapi.yaml", "/openapi.json"} {
		if resp, body := srv.as(t, "", "GET", path, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without a token: %d %s, want it open", path, resp.StatusCode, body)
		}
	}
}

// TestUnauthenticatedCallersLearnNothing: a request without a token gets
// only the 401, however broken the rest of it is.
func TestUnauthenticatedCallersLearnNothing(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/system/logs", `{"level":"LOUD","actor":"x"}`},
		{"POST", "/system/logs", `{not json`},
		{"POST", "/system/logs/batch", `{"entries":[]}`},
		{"GET", "/system/logs?limit=0&cursor=zz", ""},
		{"GET", "/system/logs/not-a-uuid", ""},
	} {
		resp, body := srv.as(t, "", req.method, req.path, req.body)
		if p := problemOf(t, body); resp.StatusCode != 401 || p.Errors != nil {
			t.Errorf("%s %s: %d %s, want a bare 401", req.method, req.path, resp.StatusCode, body)
		}
	}
}

// TestActorIsTheToken: every entry records the name of the token that wrote
// it, and a client cannot set it.
func TestActorIsTheToken(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	writer := srv.newToken(t, "ingest-service", "logs:write")
	resp, body := srv.as(t, writer, "POST", "/system/logs", `{"message":"m"}`)
	var one api.SystemLog
	if err := json.Unmarshal(body, &one); err != nil || resp.StatusCode != 201 || one.Actor != "ingest-service" {
		t.Fatalf("write: %d %s", resp.StatusCode, body)
	}
	resp, body = srv.as(t, writer, "POST", "/system/logs/batch", `{"entries":[{"message":"a"},{"message":"b"}]}`)
	var batch api.SystemLogBatch
	if err := json.Unmarshal(body, &batch); err != nil || resp.StatusCode != 201 ||
		batch.Items[0].Actor != "ingest-service" || batch.Items[1].Actor != "ingest-service" {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	got, err := srv.Client.GetSystemLogWithResponse(ctx(t), one.Id, &api.GetSystemLogParams{})
	if err != nil || got.JSON200 == nil || got.JSON200.Actor != "ingest-service" {
		t.Errorf("read back: %v %s", err, got.Body)
	}
	for _, forged := range []struct{ path, body, pointer string }{
		{"/system/logs", `{"message":"m","actor":"bootstrap"}`, "/actor"},
		{"/system/logs/batch", `{"entries":[{"message":"m","actor":"bootstrap"}]}`, "/entries/0/actor"},
	} {
		resp, body := srv.as(t, writer, "POST", forged.path, forged.body)
		if resp.StatusCode != 422 || !slicesContain(where(problemOf(t, body)), forged.pointer) {
			t.Errorf("POST %s forging actor: %d %s, want 422 at %s", forged.path, resp.StatusCode, body, forged.pointer)
		}
	}
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// where lists the locations of a problem's violations.
func where(p api.ProblemDetails) []string {
	var out []string
	if p.Errors == nil {
		return nil
	}
	for _, e := range *p.Errors {
		switch {
		case e.Pointer != nil:
			out = append(out, *e.Pointer)
		case e.Parameter != nil:
			out = append(out, *e.Parameter)
		case e.Header != nil:
			out = append(out, *e.Header)
		}
	}
	return out
}

// TestTokensCommandsWhileServing: tokens create, list and revoke work on the
// embedded default while serve runs on it, without restarting its
// PostgreSQL; a revoked token is refused within auth.RevocationDelay of
// tokens revoke returning, as its help promises; only the hash is stored.
func TestTokensCommandsWhileServing(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(pgtest.TempDir(t), "data")
	srv := startServer(t, map[string]string{"VALHALLA_DATA_DIR": dataDir})
	pidFile := filepath.Join(dataDir, "pgdata", "postmaster.pid")
	pidBefore, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}

	token := srv.newToken(t, "ops", "logs:read,logs:write")
	if resp, body := srv.as(t, token, "POST", "/system/logs", `{"message":"m"}`); resp.StatusCode != 201 {
		t.Fatalf("write with the new token: %d %s", resp.StatusCode, body)
	}
	if _, err := srv.tokens(t, "create", "--name", "ops", "--scopes", "logs:read"); err == nil {
		t.Error("a second token named ops was created")
	}
	if _, err := srv.tokens(t, "create", "--name", "x", "--scopes", "logs:delete"); err == nil || !strings.Contains(err.Error(), "logs:read") {
		t.Errorf("unknown scope: %v, want an error listing the scopes", err)
	}
	list, err := srv.tokens(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	secret := token[strings.LastIndex(token, "_")+1:]
	if !regexp.MustCompile(`(?m)^bootstrap\s+vhl_\w+_…\s+logs:read,logs:write\s+\S+\s+-\s+default$`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^ops\s+`).MatchString(list) || strings.Contains(list, secret) {
		t.Errorf("tokens list:\n%s", list)
	}

	revoking := time.Now()
	if _, err := srv.tokens(t, "revoke", "ops"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	t.Logf("revoked token refused %v after tokens revoke returned, which took %v (promise: %v)",
		srv.refusedWithin(t, token, revoked), revoked.Sub(revoking), auth.RevocationDelay)
	if _, err := srv.tokens(t, "revoke", "ops"); err == nil {
		t.Error("revoking twice succeeded")
	}
	if list, _ := srv.tokens(t, "list"); !regexp.MustCompile(`(?m)^ops\s.*\dZ\s+default$`).MatchString(list) {
		t.Errorf("tokens list does not show ops revoked:\n%s", list)
	}
	if pidAfter, err := os.ReadFile(pidFile); err != nil || !bytes.Equal(pidAfter, pidBefore) {
		t.Errorf("the tokens commands restarted serve's PostgreSQL (%v)", err)
	}

	// The secret is stored only as its SHA-256.
	defer func() {
		// With serve stopped, the commands start the local cluster themselves
		// and stop it again.
		if err := srv.stop(); err != nil {
			t.Fatal(err)
		}
		if list, err := srv.tokens(t, "list"); err != nil || !strings.Contains(list, "ops") {
			t.Errorf("tokens list without serve: %v\n%s", err, list)
		}
		if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
			t.Errorf("tokens list left PostgreSQL running (%v)", err)
		}
	}()
	var rows string
	conn, err := pgx.Connect(ctx(t), "host="+socketDir(t, pidBefore)+" user=postgres dbname=valhalla")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx(t))
	if err := conn.QueryRow(ctx(t), "SELECT string_agg(row_to_json(t)::text, ' ') FROM api_tokens t").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rows, secret) || strings.Contains(rows, srv.Token[strings.LastIndex(srv.Token, "_")+1:]) {
		t.Errorf("a secret is stored in clear: %s", rows)
	}
}

// refusedWithin polls the server with token, revoked when the revocation
// returned at revoked, until it answers 401, and returns how long after
// revoked the first refused request was sent. It fails the test when a
// request sent more than auth.RevocationDelay after revoked is served (the
// promise of tokens revoke), or when a later request is served again.
func (in *instance) refusedWithin(t *testing.T, token string, revoked time.Time) time.Duration {
	t.Helper()
	for {
		sent := time.Now()
		resp, body := in.as(t, token, "GET", "/system/logs", "")
		if resp.StatusCode == http.StatusUnauthorized {
			for range 5 {
				if resp, body := in.as(t, token, "GET", "/system/logs", ""); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("the revoked token was served again: %d %s", resp.StatusCode, body)
				}
			}
			return sent.Sub(revoked)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoked token: %d %s, want 200 or 401", resp.StatusCode, body)
		}
		if late := sent.Sub(revoked); late > auth.RevocationDelay {
			t.Fatalf("revoked token served on a request sent %v after tokens revoke returned, past the promised %v", late, auth.RevocationDelay)
		}
		time.Sleep(2 * time.Millisecond) // a poll, bounded by the promise above
	}
}

// socketDir is the unix socket dir in a postmaster.pid.
func socketDir(t *testing.T, pidFile []byte) string {
	t.Helper()
	lines := strings.Split(string(pidFile), "\n")
	if len(lines) < 5 {
		t.Fatalf("postmaster.pid: %q", pidFile)
	}
	return lines[4]
}

// TestFirstStartCreatesAToken: with no token and no bootstrap token, the
// first start mints an all-scopes token and prints it once, outside the
// JSON log; later starts print none. A bootstrap token is ignored once
// tokens exist, and one that is not shaped like a token stops serve.
func TestFirstStartCreatesAToken(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "VALHALLA_BOOTSTRAP_TOKEN": ""}
	first := startServer(t, env)
	tokenRE := regexp.MustCompile(`vhl_[A-Za-z0-9]+_[A-Za-z0-9]+`)
	printed := tokenRE.FindAllString(first.Output.String(), -1)
	if len(printed) != 1 {
		t.Fatalf("first start printed %d tokens:\n%s", len(printed), first.Output)
	}
	for _, line := range strings.Split(first.Output.String(), "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, printed[0]) {
			t.Errorf("the token is in a log record: %s", line)
		}
	}
	resp, body := first.as(t, printed[0], "POST", "/system/logs", `{"message":"m"}`)
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"actor":"admin"`) {
		t.Fatalf("write with the printed token: %d %s", resp.StatusCode, body)
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	env["VALHALLA_BOOTSTRAP_TOKEN"] = auth.Mint()
	second := startServer(t, env)
	if got := tokenRE.FindAllString(second.Output.String(), -1); len(got) != 0 {
		t.Errorf("second start printed %q", got)
	}
	if resp, _ := second.as(t, env["VALHALLA_BOOTSTRAP_TOKEN"], "GET", "/system/logs", ""); resp.StatusCode != 401 {
		t.Errorf("a bootstrap token given after tokens exist was accepted: %d", resp.StatusCode)
	}

	err := run(ctx(t), []string{"serve", "--addr", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"DATABASE_URL": env["DATABASE_URL"], "VALHALLA_BOOTSTRAP_TOKEN": "hunter2"}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "VALHALLA_BOOTSTRAP_TOKEN") {
		t.Errorf("malformed bootstrap token: %v, want an error naming it", err)
	}
}
