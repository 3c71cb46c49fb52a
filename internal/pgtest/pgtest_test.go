package pgtest_test

import (
	"context"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabaseIsFreshAndIsolated(t *testing.T) {
	t.Parallel()
	for i := range 4 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			var tables int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("new database has %d tables, want 0", tables)
			}
			// The same table name in every parallel subtest must not clash.
			if _, err := conn.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewDatabaseIsDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("use", func(t *testing.T) {
		// The connection stays open: the drop must force it out.
		conn, err := pgx.Connect(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	conn, err := pgx.Connect(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test", name)
	}
}

func TestTempDirIsTraversableByPostgres(t *testing.T) {
	t.Parallel()
	dir := pgtest.TempDir(t)
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid && fi.Mode().Perm()&0o001 == 0 {
			t.Errorf("%s (mode %v) is not searchable by others", d, fi.Mode().Perm())
		}
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	ctx := t.Context()
	if err := c.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("valhalla"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

// TestNewDatabaseOnDatabaseURL: with DATABASE_URL, each test's database is
// made on that server, is empty, and is dropped after the test, whether the
// URL is a postgres:// URL or a keyword/value string.
func TestNewDatabaseOnDatabaseURL(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	admin := c.ConnString("postgres")
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"keyword/value": admin,
		"url":           "postgres://postgres@/postgres?host=" + url.QueryEscape(cfg.Host) + "&sslmode=disable",
	}
	exists := func(t *testing.T, name string) bool {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var ok bool
		if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for form, databaseURL := range forms {
		t.Run(form, func(t *testing.T) {
			var name string
			t.Run("use", func(t *testing.T) {
				conn, err := pgx.Connect(t.Context(), pgtest.NewDatabaseAt(t, databaseURL))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				var tables int
				if err := conn.QueryRow(t.Context(),
					"SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')").Scan(&name, &tables); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(name, "test_") || tables != 0 {
					t.Fatalf("connected to %q with %d tables, want a fresh test_ database", name, tables)
				}
				if !exists(t, name) {
					t.Fatalf("database %s is not on the server DATABASE_URL names", name)
				}
			})
			if name != "" && exists(t, name) {
				t.Errorf("database %s still exists after its test", name)
			}
		})
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@db.example:5433/app?sslmode=require", "postgres://u:p@db.example:5433/test_1?sslmode=require"},
		{"postgresql://u@h/app?dbname=other&sslmode=disable", "postgresql://u@h/test_1?sslmode=disable"},
		{"postgres://u@h", "postgres://u@h/test_1"},
		{"host=/tmp user=postgres dbname=app", "host=/tmp user=postgres dbname=app dbname='test_1'"},
	} {
		if got := pgtest.WithDatabase(tc.in, "test_1"); got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
