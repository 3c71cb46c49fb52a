package database

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// jsonbCodec is pgx's JSONBCodec taught to scan a jsonb column into a
// json.RawMessage by copying PostgreSQL's text of it. pgx sees a
// json.RawMessage as a value to unmarshal into and runs encoding/json over
// every context it reads, which validated what PostgreSQL had validated
// already: a fifth of an export's CPU (docs/performance.md, "The export's
// encoder").
// Everything else (writing, other targets) is the wrapped codec's.
type jsonbCodec struct{ pgtype.Codec }

// registerJSONB makes m scan jsonb into json.RawMessage without decoding.
func registerJSONB(m *pgtype.Map) {
	t, ok := m.TypeForOID(pgtype.JSONBOID)
	if !ok {
		return
	}
	m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: jsonbCodec{t.Codec}})
}

// PlanScan implements pgtype.Codec.
func (c jsonbCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*json.RawMessage); ok {
		return scanRawJSONB{binary: format == pgtype.BinaryFormatCode}
	}
	return c.Codec.PlanScan(m, oid, format, target)
}

// scanRawJSONB copies a jsonb value's text into a *json.RawMessage: NULL
// as nil, a JSON null as "null", as encoding/json would have.
type scanRawJSONB struct{ binary bool }

func (s scanRawJSONB) Scan(src []byte, dst any) error {
	p := dst.(*json.RawMessage)
	if src == nil {
		*p = nil
		return nil
	}
	if s.binary {
		// The binary format is a version byte, then the text.
		if len(src) == 0 || src[0] != 1 {
			return fmt.Errorf("unknown jsonb format version %v", src[:min(len(src), 1)])
		}
		src = src[1:]
	}
	*p = append(json.RawMessage(nil), src...)
	return nil
}
