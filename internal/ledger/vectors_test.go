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
	// Proofs are the inclusion proofs of every leaf in every tree size.
	Proofs []proofVector `json:"proofs"`
	// Checkpoint is a signed checkpoint of the tree of all the entries.
	Checkpoint checkpointVector `json:"checkpoint"`
}

// proofVector is the RFC 6962 inclusion proof (audit path, bottom up, hex)
// of leaf Index (0-based) in the tree of TreeSize leaves.
type proofVector struct {
	TreeSize int64    `json:"tree_size"`
	Index    int64    `json:"index"`
	Proof    []string `json:"proof"`
}

// checkpointVector is a signed note of the checkpoint of the whole tree and
// the verifier key (name+hash+key) that opens it.
type checkpointVector struct {
	VerifierKey string `json:"verifier_key"`
	Note        string `json:"note"`
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
	checkProofs(t, &vs, reader)
	checkCheckpoint(t, &vs)
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

// checkProofs: the vectors' inclusion proofs are tlog's, for every leaf of
// every tree size, and each checks against that size's root.
func checkProofs(t *testing.T, vs *vectors, reader tlog.HashReader) {
	t.Helper()
	var proofs []proofVector
	for n := int64(1); n <= int64(len(vs.Entries)); n++ {
		root, err := tlog.TreeHash(n, reader)
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < n; i++ {
			p, err := tlog.ProveRecord(n, i, reader)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := LeafHash(vs.Entries[i].entry())
			if err := tlog.CheckRecord(p, n, root, i, leaf); err != nil {
				t.Fatalf("proof of %d in %d: %v", i, n, err)
			}
			pv := proofVector{TreeSize: n, Index: i, Proof: []string{}}
			for _, h := range p {
				pv.Proof = append(pv.Proof, hex.EncodeToString(h[:]))
			}
			proofs = append(proofs, pv)
		}
	}
	if *update {
		vs.Proofs = proofs
	}
	want, _ := json.Marshal(proofs)
	got, _ := json.Marshal(vs.Proofs)
	if string(got) != string(want) {
		t.Errorf("the vectors' proofs differ from tlog's")
	}
}

// checkCheckpoint: the vectors' signed checkpoint opens with its verifier
// key and signs the root of the whole tree (-update signs it with a new key).
func checkCheckpoint(t *testing.T, vs *vectors) {
	t.Helper()
	n := len(vs.Entries)
	if *update {
		skey, err := GenerateKey("valhalla-ledger-vectors")
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParseKey(skey)
		if err != nil {
			t.Fatal(err)
		}
		root, _ := hex.DecodeString(vs.Roots[n-1])
		msg, err := k.Sign(Checkpoint{Origin: k.Name(), Size: int64(n), Root: tlog.Hash(root)})
		if err != nil {
			t.Fatal(err)
		}
		vs.Checkpoint = checkpointVector{VerifierKey: k.Verifier, Note: string(msg)}
	}
	c, err := OpenCheckpoint([]byte(vs.Checkpoint.Note), vs.Checkpoint.VerifierKey)
	if err != nil {
		t.Fatalf("the vectors' checkpoint: %v", err)
	}
	if c.Size != int64(n) || hex.EncodeToString(c.Root[:]) != vs.Roots[n-1] {
		t.Errorf("the vectors' checkpoint signs size %d root %x, want %d %s", c.Size, c.Root, n, vs.Roots[n-1])
	}
}
