package ledger

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkLeafHash is the sequencer's CPU per entry for its leaf: the
// canonical encoding (RFC 8785 of a small context included) and SHA-256.
func BenchmarkLeafHash(b *testing.B) {
	user := "user-42"
	e := Entry{ID: uuid.Must(uuid.NewV7()), Timestamp: time.Now(), Level: "INFO", Category: "auth",
		Message: "user signed in from a new device", CorrelationID: "checkout-7f3a", UserID: &user, Actor: "billing-service",
		Context: []byte(`{"ip": "203.0.113.7", "device": {"os": "linux", "version": 12.5}, "tags": ["a", "b"]}`)}
	for b.Loop() {
		if _, err := LeafHash(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend is the sequencer's CPU per entry for the tree: the
// stored hashes of one more leaf, from the remembered right edge.
func BenchmarkAppend(b *testing.B) {
	h := &hashStore{cache: map[int64]tlog.Hash{}}
	leaf := tlog.RecordHash([]byte("x"))
	n := int64(0)
	for b.Loop() {
		stored, err := tlog.StoredHashesForRecordHash(n, leaf, h)
		if err != nil {
			b.Fatal(err)
		}
		h.add(n, stored)
		n++
		if n%2000 == 0 {
			h.keepFrontier(n)
		}
	}
}
