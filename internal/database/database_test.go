package database_test

import (
	"context"
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
