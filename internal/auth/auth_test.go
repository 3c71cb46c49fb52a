package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) *auth.Store {
	t.Helper()
	s, _ := setupPool(t)
	return s
}

func setupPool(t testing.TB) (*auth.Store, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return auth.NewStore(pool), pool
}

func TestMintedTokensAreWellFormedAndUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		tok := auth.Mint()
		if !strings.HasPrefix(tok, auth.Prefix) || !auth.ValidToken(tok) || seen[tok] {
			t.Fatalf("Mint() = %q", tok)
		}
		seen[tok] = true
	}
	for _, bad := range []string{"", "vhl_", "vhl_abc_def", "xyz_abcdefgh_" + strings.Repeat("a", 26),
		"vhl_abcdefgh_" + strings.Repeat("a", 21), "vhl_abcdefgh_" + strings.Repeat("a", 25) + "!", "vhl_abc-defgh_" + strings.Repeat("a", 26)} {
		if auth.ValidToken(bad) {
			t.Errorf("ValidToken(%q) = true", bad)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	tok, err := s.Create(ctx, "svc-1", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, "Bearer "+tok)
	if err != nil || p.Name != "svc-1" || strings.Join(p.Scopes, ",") != "logs:read" {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if _, err := s.Authenticate(ctx, "bearer  "+tok+" "); err != nil {
		t.Errorf("the scheme is case-insensitive and spaces are trimmed: %v", err)
	}
	cut := strings.LastIndex(tok, "_") + 1
	for header, want := range map[string]error{
		"":                   auth.ErrMissingToken,
		"Basic dXNlcjpwYXNz": auth.ErrInvalidToken,
		"Bearer " + tok[:cut] + flip(tok[cut]) + tok[cut+1:]: auth.ErrInvalidToken,
		"Bearer " + auth.Mint():                              auth.ErrInvalidToken,
		"Bearer garbage":                                     auth.ErrInvalidToken,
	} {
		if _, err := s.Authenticate(ctx, header); !errors.Is(err, want) {
			t.Errorf("Authenticate(%q) = %v, want %v", header, err, want)
		}
	}
	if err := s.Revoke(ctx, "svc-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "Bearer "+tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("revoked token: %v", err)
	}
	if err := s.Revoke(ctx, "svc-1"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := s.Create(ctx, "svc-1", []string{"logs:read"}); !errors.Is(err, auth.ErrNameTaken) {
		t.Errorf("reusing a revoked token's name: %v", err)
	}
	if _, err := s.Create(ctx, "bad name", nil); !errors.Is(err, auth.ErrInvalidName) {
		t.Errorf("bad name: %v", err)
	}
}

func TestCreateFirstOnlyWhenNoTokenExists(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	first := auth.Mint()
	if created, err := s.CreateFirst(ctx, "bootstrap", first, []string{"logs:read", "logs:write"}); !created || err != nil {
		t.Fatalf("CreateFirst on an empty table = %v, %v", created, err)
	}
	if created, err := s.CreateFirst(ctx, "other", auth.Mint(), nil); created || err != nil {
		t.Errorf("CreateFirst with a token present = %v, %v", created, err)
	}
	if _, err := s.CreateFirst(ctx, "x", "not-a-token", nil); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("CreateFirst with a malformed token: %v", err)
	}
	if p, err := s.Authenticate(ctx, "Bearer "+first); err != nil || p.Name != "bootstrap" {
		t.Errorf("bootstrap token: %+v %v", p, err)
	}
}

// TestCheck: the hook authenticates once per request, records the caller,
// and refuses a caller without every scope the operation needs.
func TestCheck(t *testing.T) {
	t.Parallel()
	s := setup(t)
	tok, err := s.Create(context.Background(), "reader", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	scheme := &openapi3.SecurityScheme{Type: "http", Scheme: "bearer"}
	var results []error
	var caller auth.Principal
	h := auth.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		for _, scopes := range [][]string{{"logs:read"}, {"logs:read", "logs:write"}} {
			results = append(results, s.Check(r.Context(), &openapi3filter.AuthenticationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r},
				SecuritySchemeName:     "bearerAuth", SecurityScheme: scheme, Scopes: scopes,
			}))
		}
		caller, _ = auth.FromContext(r.Context())
	}))
	r := httptest.NewRequest("GET", "/system/logs", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(httptest.NewRecorder(), r)
	var scopeErr *auth.ScopeError
	if results[0] != nil || !errors.As(results[1], &scopeErr) || strings.Join(scopeErr.Missing, ",") != "logs:write" || scopeErr.Token != "reader" {
		t.Errorf("Check = %v", results)
	}
	if caller.Name != "reader" {
		t.Errorf("caller %+v", caller)
	}
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Error("a caller outside any request")
	}
}

// flip returns a letter other than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
