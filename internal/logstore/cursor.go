package logstore

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// cursorVersion is the first byte of every cursor, so the format can change.
const cursorVersion = 1

// cursorLen is version + int64 microseconds + 16-byte id.
const cursorLen = 1 + 8 + 16

// EncodeCursor returns the opaque cursor for the keyset position just after
// the entry (ts, id) in newest-first order.
func EncodeCursor(ts time.Time, id uuid.UUID) string {
	var b [cursorLen]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(ts.UnixMicro()))
	copy(b[9:], id[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor parses a cursor made by EncodeCursor. It returns an error
// wrapping ErrInvalidCursor for anything else.
func DecodeCursor(cursor string) (time.Time, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return time.Time{}, uuid.UUID{}, fmt.Errorf("decode cursor: %w", ErrInvalidCursor)
	}
	ts := time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()
	id, err := uuid.FromBytes(b[9:])
	if err != nil {
		return time.Time{}, uuid.UUID{}, fmt.Errorf("decode cursor: %w", ErrInvalidCursor)
	}
	return ts, id, nil
}
