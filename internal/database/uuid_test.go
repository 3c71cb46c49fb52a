package database

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestUUIDArraysMoveAsBytes: a []uuid.UUID is written as a uuid[] of 16
// bytes an element, and read back the same, through the codec registered
// for uuid (pgx's own reads each through its text, which was most of the
// sequencer's CPU in writing a block's ids).
func TestUUIDArraysMoveAsBytes(t *testing.T) {
	m := pgtype.NewMap()
	RegisterTypes(m)
	ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	buf, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	var back []uuid.UUID
	if err := m.Scan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, buf, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0] != ids[0] || back[1] != ids[1] {
		t.Fatalf("read back %v, want %v", back, ids)
	}
	arr, ok := m.TypeForOID(pgtype.UUIDArrayOID)
	if !ok {
		t.Fatal("no uuid[] type")
	}
	codec, ok := arr.Codec.(*pgtype.ArrayCodec)
	if !ok {
		t.Fatalf("uuid[] codec %T", arr.Codec)
	}
	if _, ok := codec.ElementType.Codec.(uuidCodec); !ok {
		t.Errorf("uuid[]'s elements use %T, want the binary uuidCodec", codec.ElementType.Codec)
	}
}
