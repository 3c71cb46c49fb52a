package auth_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/auth"
)

// watch runs s.Watch until the test ends and waits until the cache is
// live: a token it has verified once costs no more database round trips.
func watch(t testing.TB, s *auth.Store, pool *pgxpool.Pool, token string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the cache to serve the token", func() bool { return servedFromMemory(t, s, pool, token) })
}

// servedFromMemory reports whether authenticating token twice more
// acquired no database connection.
func servedFromMemory(t testing.TB, s *auth.Store, pool *pgxpool.Pool, token string) bool {
	t.Helper()
	if _, err := s.Authenticate(context.Background(), "Bearer "+token); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	before := pool.Stat().AcquireCount()
	for range 2 {
		if _, err := s.Authenticate(context.Background(), "Bearer "+token); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	return pool.Stat().AcquireCount() == before
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// refusedFrom polls Authenticate until it refuses token, revoked when the
// caller's revocation returned at revoked, and returns how long after
// revoked the first refused call began. It fails the test when a call that
// began more than auth.RevocationDelay after revoked accepts the token (the
// promise), or when a later call accepts it again.
func refusedFrom(t *testing.T, s *auth.Store, token string, revoked time.Time) time.Duration {
	t.Helper()
	var took time.Duration
	for {
		began := time.Now()
		_, err := s.Authenticate(context.Background(), "Bearer "+token)
		if errors.Is(err, auth.ErrInvalidToken) {
			took = began.Sub(revoked)
			break
		}
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if began.Sub(revoked) > auth.RevocationDelay {
			t.Fatalf("token accepted %v after its revocation, past the promised %v", began.Sub(revoked), auth.RevocationDelay)
		}
		time.Sleep(time.Millisecond)
	}
	for range 50 {
		if _, err := s.Authenticate(context.Background(), "Bearer "+token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("a revoked token was accepted again: %v", err)
		}
	}
	return took
}

// TestWatchedCacheForgetsRevokedTokens: with Watch running, a verified
// token is served from memory, and a revocation made elsewhere (another
// store, as `valhalla tokens revoke` is, or plain SQL) is refused at once.
func TestWatchedCacheForgetsRevokedTokens(t *testing.T) {
	t.Parallel()
	s, pool := setupPool(t)
	other := auth.NewStore(pool) // a second server, or the tokens command
	ctx := context.Background()
	tok, err := other.Create(ctx, "svc", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	sqlRevoked, err := other.Create(ctx, "svc-sql", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s, pool, tok)
	if !servedFromMemory(t, s, pool, sqlRevoked) {
		t.Error("a second verified token was not remembered")
	}

	if err := other.Revoke(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoke by another store refused after %v", refusedFrom(t, s, tok, time.Now()))

	if _, err := pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE name = 'svc-sql'`); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoke by SQL refused after %v", refusedFrom(t, s, sqlRevoked, time.Now()))

	// A change of scopes is seen too.
	reader, err := other.Create(ctx, "reader", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	// Creating it notifies too, so it is remembered once that arrives.
	eventually(t, "the reader token to be remembered", func() bool { return servedFromMemory(t, s, pool, reader) })
	if _, err := pool.Exec(ctx, `UPDATE api_tokens SET scopes = '{logs:read,logs:write}' WHERE name = 'reader'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new scopes", func() bool {
		p, err := s.Authenticate(ctx, "Bearer "+reader)
		return err == nil && strings.Join(p.Scopes, ",") == "logs:read,logs:write"
	})
}

// TestWatchSurvivesLosingItsConnection: when the listening connection is
// killed, a revocation made meanwhile is still refused, and the cache
// serves from memory again once Watch has reconnected.
func TestWatchSurvivesLosingItsConnection(t *testing.T) {
	t.Parallel()
	s, pool := setupPool(t)
	s.SetWatchRetry(50 * time.Millisecond)
	ctx := context.Background()
	tok, err := s.Create(ctx, "svc", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := s.Create(ctx, "keep", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s, pool, tok)
	if !servedFromMemory(t, s, pool, keep) {
		t.Fatal("keep was not remembered")
	}

	var killed int
	err = pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN valhalla_api_tokens'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listening backends (%v), want 1", killed, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE name = 'svc'`); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoke with the listener down refused after %v", refusedFrom(t, s, tok, time.Now()))
	eventually(t, "the cache to serve again after reconnecting", func() bool { return servedFromMemory(t, s, pool, keep) })
}

// TestRevocationUnheardIsRefusedWithinTheDelay: a revocation whose
// notification never arrives (the trigger is off, as for a notification
// lost with a connection that failed silently) is still refused within
// auth.RevocationDelay, because no remembered token outlives it.
func TestRevocationUnheardIsRefusedWithinTheDelay(t *testing.T) {
	t.Parallel()
	s, pool := setupPool(t)
	ctx := context.Background()
	tok, err := s.Create(ctx, "svc", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s, pool, tok)
	if _, err := pool.Exec(ctx, `ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_changed`); err != nil {
		t.Fatal(err)
	}
	if !servedFromMemory(t, s, pool, tok) {
		t.Fatal("the token was not remembered")
	}
	if _, err := pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE name = 'svc'`); err != nil {
		t.Fatal(err)
	}
	took := refusedFrom(t, s, tok, time.Now())
	t.Logf("revoke without a notification refused after %v (promise: %v)", took, auth.RevocationDelay)
}

// TestUnknownIDsAreRemembered: with Watch running, a token id no token has
// is refused from memory after its first lookup, and forgotten as soon as
// a token is created anywhere (here by plain SQL), so that a token created
// with that id is accepted.
func TestUnknownIDsAreRemembered(t *testing.T) {
	t.Parallel()
	s, pool := setupPool(t)
	ctx := context.Background()
	known, err := s.Create(ctx, "known", []string{"logs:read"})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s, pool, known)
	stranger := auth.Mint()
	refused := func() bool {
		_, err := s.Authenticate(ctx, "Bearer "+stranger)
		if err != nil && !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Authenticate: %v", err)
		}
		return err != nil
	}
	if !refused() {
		t.Fatal("an unknown token was accepted")
	}
	before := pool.Stat().AcquireCount()
	for range 100 {
		if !refused() {
			t.Fatal("an unknown token was accepted")
		}
	}
	if n := pool.Stat().AcquireCount() - before; n != 0 {
		t.Errorf("refusing a remembered unknown id 100 times took %d database round trips, want 0", n)
	}
	id, secret, _ := strings.Cut(strings.TrimPrefix(stranger, auth.Prefix), "_")
	if _, err := pool.Exec(ctx, `INSERT INTO api_tokens (name, public_id, secret_hash, scopes)
		VALUES ('late', $1, sha256($2::text::bytea), '{logs:read}')`, id, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the created token to be accepted", func() bool { return !refused() })
}

// BenchmarkRefuse compares refusing a known id with a wrong secret and an
// unknown id, both remembered: the two should cost the same.
func BenchmarkRefuse(b *testing.B) {
	s, pool := setupPool(b)
	ctx := context.Background()
	known, err := s.Create(ctx, "known", []string{"logs:read"})
	if err != nil {
		b.Fatal(err)
	}
	watch(b, s, pool, known)
	wrong := known[:strings.LastIndex(known, "_")+1] + strings.Repeat("x", 26)
	unknown := auth.Mint()
	for name, token := range map[string]string{"known id, wrong secret": wrong, "unknown id": unknown} {
		_, _ = s.Authenticate(ctx, "Bearer "+token)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Authenticate(ctx, "Bearer "+token); !errors.Is(err, auth.ErrInvalidToken) {
					b.Fatal(err)
				}
			}
		})
	}
}
