package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// TestRequestIDKeptOrMinted: a sane incoming X-Request-ID is echoed on every
// kind of response; anything else is replaced by a fresh UUIDv7.
func TestRequestIDKeptOrMinted(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	paths := []struct{ method, path, contentType, body string }{
		{"GET", "/system-health/live", "", ""},
		{"GET", "/system/logs", "", ""},
		{"POST", "/system/logs", "application/json", `{"message":"m"}`},
		{"POST", "/system/logs", "application/json", `{"message":`}, // 400
		{"GET", "/no/such/route", "", ""},                           // 404
		{"PATCH", "/system/logs", "", ""},                           // 405
	}
	ids := []struct {
		name, incoming string
		kept           bool
	}{
		{"absent", "", false},
		{"uuid", "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f", true},
		{"every allowed character", "Az09._:-", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"129 characters", strings.Repeat("a", 129), false},
		{"space", "a b", false},
		{"slash", "a/b", false},
		{"non-ASCII", "réquest", false},
		{"quote and angle brackets", `"><script>`, false},
	}
	for _, p := range paths {
		for _, tt := range ids {
			var header []string
			if tt.incoming != "" {
				header = []string{requestid.Header, tt.incoming}
			}
			resp, _ := srv.do(t, p.method, p.path, p.contentType, strings.NewReader(p.body), header...)
			got := resp.Header.Get(requestid.Header)
			if tt.kept {
				if got != tt.incoming {
					t.Errorf("%s %s, %s: X-Request-ID %q, want it kept", p.method, p.path, tt.name, got)
				}
				continue
			}
			id, err := uuid.Parse(got)
			if err != nil || id.Version() != 7 {
				t.Errorf("%s %s, %s: X-Request-ID %q, want a minted UUIDv7", p.method, p.path, tt.name, got)
			}
		}
	}
}

// TestMintedIDsAreUnique: two requests without an id get different ones.
func TestMintedIDsAreUnique(t *testing.T) {
	t.Parallel()
	srv := setup(t)
	seen := map[string]bool{}
	for range 20 {
		resp, _ := srv.do(t, http.MethodGet, "/system-health/live", "", nil)
		id := resp.Header.Get(requestid.Header)
		if seen[id] {
			t.Fatalf("id %s minted twice", id)
		}
		seen[id] = true
	}
}
