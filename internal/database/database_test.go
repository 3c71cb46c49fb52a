package database_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestUUIDRoundTrip moves ids through every path the store uses (a
// parameter, a nullable parameter, a scanned column, COPY) and through the
// simple protocol, which still goes as text.
func TestUUIDRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	id := uuid.Must(uuid.NewV7())

	var got uuid.UUID
	var text string
	if err := pool.QueryRow(ctx, "SELECT $1::uuid, $1::uuid::text", id).Scan(&got, &text); err != nil {
		t.Fatal(err)
	}
	if got != id || text != id.String() {
		t.Errorf("parameter %s came back as %s (text %s)", id, got, text)
	}

	var isNull bool
	if err := pool.QueryRow(ctx, "SELECT $1::uuid IS NULL", (*uuid.UUID)(nil)).Scan(&isNull); err != nil || !isNull {
		t.Errorf("nil *uuid.UUID: null=%v, err=%v", isNull, err)
	}
	var nullable *uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT $1::uuid", &id).Scan(&nullable); err != nil || nullable == nil || *nullable != id {
		t.Errorf("*uuid.UUID: got %v, err=%v", nullable, err)
	}
	if err := pool.QueryRow(ctx, "SELECT NULL::uuid").Scan(&got); err == nil {
		t.Error("scanning NULL into uuid.UUID succeeded")
	}

	if _, err := pool.Exec(ctx, "CREATE TABLE ids (id uuid NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"ids"}, []string{"id"}, pgx.CopyFromRows([][]any{{id}})); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT id::text FROM ids").Scan(&text); err != nil || text != id.String() {
		t.Errorf("COPY stored %q, err=%v", text, err)
	}

	if err := pool.QueryRow(ctx, "SELECT $1::uuid", pgx.QueryExecModeSimpleProtocol, id).Scan(&got); err != nil || got != id {
		t.Errorf("simple protocol: got %s, err=%v", got, err)
	}
}

// TestJSONBScansAsStockPgxDoes reads jsonb values into json.RawMessage
// through the store's pool and through a connection with pgx's own codec,
// in binary and in text (the simple protocol), and wants the same bytes.
func TestJSONBScansAsStockPgxDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool, err := database.Open(ctx, url, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	stock, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stock.Close(ctx) })
	for _, value := range []string{
		`'{"ip": "10.0.0.1", "attempt": 1, "nested": {"a": [1, 2.5, null, true]}}'::jsonb`,
		`'"x<y> & \u2028 é🦄"'::jsonb`, `'null'::jsonb`, `'[]'::jsonb`, `'{}'::jsonb`, `NULL::jsonb`,
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			var got, want json.RawMessage
			if err := pool.QueryRow(ctx, "SELECT "+value, mode).Scan(&got); err != nil {
				t.Fatalf("%s (%v): %v", value, mode, err)
			}
			if err := stock.QueryRow(ctx, "SELECT "+value, mode).Scan(&want); err != nil {
				t.Fatalf("%s (%v) with pgx's codec: %v", value, mode, err)
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("%s (%v) scanned as %q; pgx's codec scans %q", value, mode, got, want)
			}
		}
	}
	// Writing is pgx's own: a RawMessage goes in as JSON.
	var text string
	if err := pool.QueryRow(ctx, "SELECT $1::jsonb::text", json.RawMessage(`{"b":1,"a":[2]}`)).Scan(&text); err != nil || text != `{"a": [2], "b": 1}` {
		t.Errorf("json.RawMessage parameter stored as %q, err=%v", text, err)
	}
}

// TestPoolSize checks the default pool size and that the URL can change it.
func TestPoolSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	for _, tc := range []struct {
		url  string
		want int32
	}{
		{url, database.DefaultMaxConns},
		{url + " pool_max_conns=3", 3},
	} {
		pool, err := database.Open(ctx, tc.url, 10*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := pool.Config().MaxConns; got != tc.want {
			t.Errorf("%s: MaxConns %d, want %d", tc.url, got, tc.want)
		}
		pool.Close()
	}
}
