package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// idempotent sends a write with an Idempotency-Key as token.
func (in *instance) idempotent(t *testing.T, token, key, path, body string) (*http.Response, []byte) {
	t.Helper()
	return in.do(t, "POST", path, "application/json", strings.NewReader(body),
		"Authorization", "Bearer "+token, "Idempotency-Key", key)
}

// TestIdempotentWrites: a retry with the same key and body returns the
// first response without writing again (also when the body is encoded
// differently); another body with the key is a 422 naming the header; keys
// belong to one token.
func TestIdempotentWrites(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	other := srv.newToken(t, "other", "logs:write")

	resp1, body1 := srv.idempotent(t, srv.Token, "key-1", "/system/logs", `{"message":"once","category":"idem"}`)
	resp2, body2 := srv.idempotent(t, srv.Token, "key-1", "/system/logs", `{ "category": "idem",  "message": "once" }`)
	if resp1.StatusCode != 201 || resp2.StatusCode != 201 || unsealed(t, body1) != unsealed(t, body2) ||
		resp1.Header.Get("Location") != resp2.Header.Get("Location") {
		t.Fatalf("retry: %d %s / %d %s, want the same 201", resp1.StatusCode, body1, resp2.StatusCode, body2)
	}
	resp, body := srv.idempotent(t, srv.Token, "key-1", "/system/logs", `{"message":"another","category":"idem"}`)
	if p := problemOf(t, body); resp.StatusCode != 422 || !strings.Contains(strings.Join(where(p), ","), "Idempotency-Key") {
		t.Errorf("same key, other body: %d %s, want 422 at the Idempotency-Key header", resp.StatusCode, body)
	}
	resp, body = srv.idempotent(t, srv.Token, "key-1", "/system/logs/batch", `{"entries":[{"message":"once","category":"idem"}]}`)
	if resp.StatusCode != 422 {
		t.Errorf("same key on the other operation: %d %s, want 422", resp.StatusCode, body)
	}
	resp, body = srv.idempotent(t, other, "key-1", "/system/logs", `{"message":"once","category":"idem"}`)
	if resp.StatusCode != 201 || string(body) == string(body1) {
		t.Errorf("another token's key-1: %d %s, want a new entry", resp.StatusCode, body)
	}

	batch := `{"entries":[{"message":"b1","category":"idem"},{"message":"b2","category":"idem"}]}`
	respB1, bodyB1 := srv.idempotent(t, srv.Token, "key-2", "/system/logs/batch", batch)
	respB2, bodyB2 := srv.idempotent(t, srv.Token, "key-2", "/system/logs/batch", batch)
	if respB1.StatusCode != 201 || respB2.StatusCode != 201 || unsealed(t, bodyB1) != unsealed(t, bodyB2) {
		t.Errorf("batch retry: %d %s / %d %s", respB1.StatusCode, bodyB1, respB2.StatusCode, bodyB2)
	}
	if got := list(t, srv, api.ListSystemLogsParams{Category: ptr("idem"), Limit: ptr(int32(100))}).Items; len(got) != 4 {
		t.Errorf("%d entries stored, want 4 (once, other's once, b1, b2)", len(got))
	}
}

// unsealed is a write's response body without the entries' seq and
// leaf_hash: a replay is the first response, but shows the seal its
// entries got since (null in the first, until sealed).
func unsealed(t *testing.T, body []byte) string {
	t.Helper()
	seal := regexp.MustCompile(`"(seq|leaf_hash)":("[^"]*"|[0-9]+|null)`)
	return seal.ReplaceAllString(string(body), `"$1":null`)
}

// TestConcurrentDuplicatesWriteOnce: requests racing with one key store one
// entry, and all of them get its id.
func TestConcurrentDuplicatesWriteOnce(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	const n = 10
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, body := srv.idempotent(t, srv.Token, "race", "/system/logs", `{"message":"race","category":"race"}`)
			var got api.SystemLog
			if resp.StatusCode != 201 || json.Unmarshal(body, &got) != nil {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, body)
				return
			}
			ids[i] = got.Id.String()
		})
	}
	wg.Wait()
	for i := range n {
		if ids[i] != ids[0] {
			t.Errorf("request %d got %s, request 0 %s", i, ids[i], ids[0])
		}
	}
	if got := list(t, srv, api.ListSystemLogsParams{Category: ptr("race")}).Items; len(got) != 1 {
		t.Errorf("%d entries from %d racing requests with one key, want 1", len(got), n)
	}
}
