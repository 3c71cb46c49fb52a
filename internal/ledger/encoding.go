// Package ledger seals the audit trail: one sequencer across all servers
// gives every stored entry its seq in commit order and appends it to an
// RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog) kept in PostgreSQL,
// then signs a C2SP checkpoint of the tree (golang.org/x/mod/sumdb/note,
// Ed25519). It also holds what a verifier needs: the canonical encoding of
// an entry and its leaf hash, and checkpoint parsing. docs/ledger.md
// describes the encoding for verifiers in other languages.
package ledger

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"
)

// EncodingVersion is the first byte of every canonical encoding.
const EncodingVersion = 1

// Entry is a stored entry as the ledger hashes it: every stored field.
type Entry struct {
	ID            uuid.UUID
	Timestamp     time.Time
	Level         string
	Category      string
	Message       string
	CorrelationID string
	UserID        *string
	TraceID       *string
	Actor         string
	// Context is the JSON object as stored; its canonical form is hashed.
	Context []byte
}

// Encode returns the canonical encoding of e (docs/ledger.md): the version
// byte, the 16 bytes of the id, the timestamp as a big-endian int64 of
// microseconds since the Unix epoch (UTC), then level, category, message,
// correlation_id, user_id, trace_id, actor and context (RFC 8785 JSON),
// each as a big-endian uint32 byte length and the UTF-8 bytes, user_id and
// trace_id preceded by 0x00 when absent (and nothing else) or 0x01 when
// present. It returns an error when the context is not valid JSON.
func Encode(e Entry) ([]byte, error) {
	b, _, err := encode(e)
	return b, err
}

// encode is Encode that also reports whether a number of the context kept
// its literal text (canonicalJSONLiteral).
func encode(e Entry) ([]byte, bool, error) {
	ctx, literal, err := canonicalJSONLiteral(e.Context)
	if err != nil {
		return nil, false, fmt.Errorf("encode entry %s: %w", e.ID, err)
	}
	n := 1 + 16 + 8 + 4*8 + 2 + len(e.Level) + len(e.Category) + len(e.Message) +
		len(e.CorrelationID) + len(e.Actor) + len(ctx) + 256
	b := make([]byte, 0, n)
	b = append(b, EncodingVersion)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp.UnixMicro()))
	b = appendString(b, e.Level)
	b = appendString(b, e.Category)
	b = appendString(b, e.Message)
	b = appendString(b, e.CorrelationID)
	b = appendOptional(b, e.UserID)
	b = appendOptional(b, e.TraceID)
	b = appendString(b, e.Actor)
	b = appendString(b, string(ctx))
	return b, literal, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendOptional(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	return appendString(append(b, 1), *s)
}

// LeafHash returns e's RFC 6962 leaf hash, SHA-256(0x00 || Encode(e)),
// or the error Encode returns.
func LeafHash(e Entry) (tlog.Hash, error) {
	b, err := Encode(e)
	if err != nil {
		return tlog.Hash{}, err
	}
	return tlog.RecordHash(b), nil
}

// WriteLeafHash returns the leaf hash e will have once stored, for the
// writer to queue with it in the transaction that stores it: the sequencer
// then appends that hash without reading the entry back, and the tree holds
// the entry as it was acknowledged (docs/ledger.md, "The queue"). e must be
// what the database stores: its timestamp at the microsecond, its context
// the object it stores. ok is false when the stored entry's hash cannot be
// known before it is stored (a context number no double holds keeps its
// literal text in the encoding, and jsonb rewrites the text: 1e400 is
// stored as 1 and 400 zeros) or the context is not JSON; the sequencer then
// hashes the stored entry.
func WriteLeafHash(e Entry) (h tlog.Hash, ok bool) {
	b, literal, err := encode(e)
	if err != nil || literal {
		return tlog.Hash{}, false
	}
	return tlog.RecordHash(b), true
}
