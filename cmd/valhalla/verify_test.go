package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/ledger"
)

// verifyRun runs valhalla verify against srv and returns its output and
// whether it succeeded (exit 0).
func verifyRun(t *testing.T, srv *instance, key, state string, extra ...string) (string, bool) {
	t.Helper()
	var out syncBuffer
	args := append([]string{"verify", "--server", srv.URL, "--token", srv.Token, "--key", key}, extra...)
	if state != "" {
		args = append(args, "--state", state)
	}
	err := run(ctx(t), args, func(string) string { return "" }, &out, &out)
	return out.String(), err == nil
}

// writeSealed writes n entries and waits until they are sealed; it
// returns them in seq order.
func writeSealed(t *testing.T, srv *instance, pool *pgxpool.Pool, n int) []api.SystemLog {
	t.Helper()
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"message":"drill %d","context":{"i":%d,"k":["v",1.5]}}`, i, i))
	}
	resp, body := srv.do(t, "POST", "/system/logs/batch", "application/json", strings.NewReader(`{"entries":[`+strings.Join(entries, ",")+`]}`))
	if resp.StatusCode != 201 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	waitSealed(t, pool)
	feed, err := srv.Client.GetSystemLogFeedWithResponse(ctx(t), &api.GetSystemLogFeedParams{Limit: ptr(int32(1000))})
	if err != nil || feed.JSON200 == nil {
		t.Fatal(err)
	}
	return feed.JSON200.Items
}

// TestVerifyTamperDrills: on a sealed trail valhalla verify passes; after
// each tampering with PostgreSQL behind the API's back it exits 1 and
// names what was done, with the seq and id of the entry.
func TestVerifyTamperDrills(t *testing.T) {
	t.Parallel()
	otherSigner, err := ledger.GenerateKey("valhalla-ledger-intruder")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ledger.ParseKey(otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	for _, drill := range []struct {
		name string
		// tamper changes the database; it returns the finding's pattern.
		tamper func(t *testing.T, pool *pgxpool.Pool, entries []api.SystemLog) string
	}{
		{"update a message", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			sqlExec(t, pool, "UPDATE system_logs SET message = 'nothing happened' WHERE id = $1", es[3].Id)
			return fmt.Sprintf(`FINDING altered: seq %d id %s`, *es[3].Seq, es[3].Id)
		}},
		{"update a context", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			sqlExec(t, pool, `UPDATE system_logs SET context = '{"i": 99}' WHERE id = $1`, es[5].Id)
			return fmt.Sprintf(`FINDING altered: seq %d id %s`, *es[5].Seq, es[5].Id)
		}},
		{"delete an entry", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			sqlExec(t, pool, "DELETE FROM system_logs WHERE id = $1", es[2].Id)
			return fmt.Sprintf(`FINDING missing: seq %d id %s`, *es[2].Seq, es[2].Id)
		}},
		{"insert an entry by SQL", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			id := "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f"
			sqlExec(t, pool, `INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, actor)
				VALUES ($1, now() - interval '1 hour', 'INFO', 'auth', 'backdated', 'x', 'admin')`, id)
			return `FINDING not in tree: seq - id ` + id
		}},
		{"edit a stored checkpoint", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			sqlExec(t, pool, `UPDATE ledger_checkpoints SET note = regexp_replace(note, '^(.*\n)([0-9]+)\n', '\1' || (tree_size + 1) || E'\n')
				WHERE tree_size = (SELECT max(tree_size) FROM ledger_checkpoints)`)
			return `FINDING checkpoint signature invalid`
		}},
		{"sign with another key", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			var size int64
			var root []byte
			var note string
			if err := pool.QueryRow(ctx(t), "SELECT tree_size, root, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1").Scan(&size, &root, &note); err != nil {
				t.Fatal(err)
			}
			cp, err := ledger.ParseCheckpoint(note)
			if err != nil {
				t.Fatal(err)
			}
			forged, err := other.Sign(ledger.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root})
			if err != nil {
				t.Fatal(err)
			}
			sqlExec(t, pool, "UPDATE ledger_checkpoints SET note = $1 WHERE tree_size = $2", string(forged), size)
			return `FINDING checkpoint signature invalid`
		}},
		{"truncate the newest entries with their tree and checkpoints", func(t *testing.T, pool *pgxpool.Pool, es []api.SystemLog) string {
			// Keep the seqs below the block that holds the third newest.
			var cut int64
			if err := pool.QueryRow(ctx(t), "SELECT max(first_seq) FROM ledger_blocks WHERE first_seq <= $1", *es[len(es)-3].Seq).Scan(&cut); err != nil {
				t.Fatal(err)
			}
			sqlExec(t, pool, "DELETE FROM system_logs WHERE id IN (SELECT log_id FROM ledger_leaves WHERE seq >= $1)", cut)
			sqlExec(t, pool, "DELETE FROM ledger_blocks WHERE first_seq >= $1", cut)
			sqlExec(t, pool, "DELETE FROM ledger_checkpoints WHERE tree_size >= $1", cut)
			// The sequencer signs the truncated tree once it grows again.
			return `FINDING inconsistent with saved state: seq \d+ id -: the trail shrank`
		}},
	} {
		t.Run(drill.name, func(t *testing.T) {
			t.Parallel()
			srv, pool := ledgerSetup(t)
			key := serverKey(t, srv)
			state := filepath.Join(t.TempDir(), "state")
			entries := writeSealed(t, srv, pool, 8)
			if out, ok := verifyRun(t, srv, key, state); !ok || !strings.Contains(out, "verified 8 entries") {
				t.Fatalf("verify of an intact trail failed:\n%s", out)
			}
			want := drill.tamper(t, pool, entries)
			out, ok := verifyRun(t, srv, key, state)
			if ok {
				t.Fatalf("verify passed after the tampering:\n%s", out)
			}
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("verify did not name the tampering (want %q):\n%s", want, out)
			}
		})
	}
}

// TestVerifyRangeByProofs: --from-seq/--to-seq checks the range by
// inclusion proofs, and names an entry of the range altered.
func TestVerifyRangeByProofs(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	key := serverKey(t, srv)
	es := writeSealed(t, srv, pool, 10)
	if out, ok := verifyRun(t, srv, key, "", "--from-seq", "3", "--to-seq", "6"); !ok || !strings.Contains(out, "verified 4 entries") {
		t.Fatalf("range verify failed:\n%s", out)
	}
	sqlExec(t, pool, "UPDATE system_logs SET level = 'DEBUG' WHERE id = $1", es[4].Id)
	out, ok := verifyRun(t, srv, key, "", "--from-seq", "3", "--to-seq", "6")
	if ok || !strings.Contains(out, fmt.Sprintf("FINDING altered: seq %d id %s", *es[4].Seq, es[4].Id)) {
		t.Errorf("range verify did not name the altered entry:\n%s", out)
	}
	if out, ok := verifyRun(t, srv, key, "", "--from-seq", "7", "--to-seq", "10"); !ok {
		t.Errorf("range verify outside the altered entry failed:\n%s", out)
	}
}

func sqlExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(ctx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
