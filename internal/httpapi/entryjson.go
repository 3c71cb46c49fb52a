package httpapi

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// appendSystemLog appends l's JSON to dst: the bytes encoding/json writes
// for it (fields in the struct's order, strings escaped as it escapes them,
// HTML characters included, context compacted), without reflection or a
// buffer per entry. The export, the live tail and the sinks write one per
// entry, and encoding/json was a third of an export's CPU
// (docs/performance.md, "The export's encoder"). TestAppendSystemLog holds
// it to encoding/json's output, and fails when api.SystemLog gains a field.
func appendSystemLog(dst []byte, l *api.SystemLog) []byte {
	dst = append(dst, `{"actor":`...)
	dst = appendJSONString(dst, l.Actor)
	dst = append(dst, `,"category":`...)
	dst = appendJSONString(dst, l.Category)
	dst = append(dst, `,"context":`...)
	if l.Context == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendCompactJSON(dst, l.Context)
	}
	dst = append(dst, `,"correlation_id":`...)
	dst = appendJSONString(dst, l.CorrelationId)
	dst = append(dst, `,"id":"`...)
	dst = appendUUID(dst, l.Id)
	dst = append(dst, `","leaf_hash":`...)
	if l.LeafHash == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, *l.LeafHash)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"level":`...)
	dst = appendJSONString(dst, string(l.Level))
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, l.Message)
	dst = append(dst, `,"seq":`...)
	if l.Seq == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, *l.Seq, 10)
	}
	dst = append(dst, `,"timestamp":"`...)
	dst = l.Timestamp.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","trace_id":`...)
	dst = appendOptionalString(dst, l.TraceId)
	dst = append(dst, `,"user_id":`...)
	dst = appendOptionalString(dst, l.UserId)
	return append(dst, '}')
}

func appendOptionalString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, *s)
}

const hexDigits = "0123456789abcdef"

// appendUUID appends id in its canonical 8-4-4-4-12 form.
func appendUUID(dst []byte, id [16]byte) []byte {
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xF])
	}
	return dst
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it: quotes, backslashes and control characters; <, > and &; an
// invalid UTF-8 byte as U+FFFD; U+2028 and U+2029.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompactJSON appends src, valid JSON (PostgreSQL's text of a jsonb
// value), without the whitespace between its tokens, and with <, >, &,
// U+2028 and U+2029 escaped, as encoding/json writes a json.RawMessage.
func appendCompactJSON(dst, src []byte) []byte {
	start := 0
	inString, escaped := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			i += 2
			start = i + 1
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
