package ledger

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the code")

// vectors is testdata/vectors.json: entries, the hex of their canonical
// encodings and leaf hashes, and the root of the tree of the first n
// entries for every n, for verifiers in other languages.
type vectors struct {
	Comment string   `json:"comment"`
	Entries []vector `json:"entries"`
	// Roots[n-1] is the hex root hash of the tree of the first n leaves.
	Roots []string `json:"roots"`
}

type vector struct {
	ID            uuid.UUID       `json:"id"`
	Timestamp     time.Time       `json:"timestamp"`
	Level         string          `json:"level"`
	Category      string          `json:"category"`
	Message       string          `json:"message"`
	CorrelationID string          `json:"correlation_id"`
	UserID        *string         `json:"user_id"`
	TraceID       *string         `json:"trace_id"`
	Actor         string          `json:"actor"`
	Context       json.RawMessage `json:"context"`
	Encoding      string          `json:"encoding"`
	LeafHash      string          `json:"leaf_hash"`
}

func (v vector) entry() Entry {
	return Entry{ID: v.ID, Timestamp: v.Timestamp, Level: v.Level, Category: v.Category, Message: v.Message,
		CorrelationID: v.CorrelationID, UserID: v.UserID, TraceID: v.TraceID, Actor: v.Actor, Context: v.Context}
}

// TestVectors: every entry of testdata/vectors.json encodes and hashes to
// what the file says, and every prefix of them to the root it says, both
// through tlog's stored hashes and through an independent RFC 6962 fold.
func TestVectors(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs.Entries) < 8 || len(vs.Roots) != len(vs.Entries) {
		t.Fatalf("%d entries and %d roots in the vectors", len(vs.Entries), len(vs.Roots))
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range vs.Entries {
		v := &vs.Entries[i]
		enc, err := Encode(v.entry())
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		leaf, err := LeafHash(v.entry())
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			v.Encoding, v.LeafHash = hex.EncodeToString(enc), hex.EncodeToString(leaf[:])
		}
		if got := hex.EncodeToString(enc); got != v.Encoding {
			t.Errorf("entry %d encodes to\n %s\nwant\n %s", i, got, v.Encoding)
		}
		if got := hex.EncodeToString(leaf[:]); got != v.LeafHash {
			t.Errorf("entry %d leaf hash %s, want %s", i, got, v.LeafHash)
		}
		hs, err := tlog.StoredHashes(int64(i), enc, reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		root, err := tlog.TreeHash(int64(i+1), reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := mth(t, vs.Entries[:i+1]); got != root {
			t.Errorf("tree of %d: tlog root %x, RFC 6962 MTH %x", i+1, root, got)
		}
		if *update {
			vs.Roots[i] = hex.EncodeToString(root[:])
		}
		if got := hex.EncodeToString(root[:]); got != vs.Roots[i] {
			t.Errorf("tree of %d: root %s, want %s", i+1, got, vs.Roots[i])
		}
	}
	if *update {
		out, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile("testdata/vectors.json", append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mth is RFC 6962's Merkle Tree Hash written out from §2.1, recursively.
func mth(t *testing.T, vs []vector) tlog.Hash {
	t.Helper()
	if len(vs) == 1 {
		h, err := LeafHash(vs[0].entry())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	k := 1
	for k*2 < len(vs) {
		k *= 2
	}
	return tlog.NodeHash(mth(t, vs[:k]), mth(t, vs[k:]))
}
