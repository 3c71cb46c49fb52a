package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"
)

// canonicalJSONByDecoding is the canonical form as the ledger computed it
// before canonicalJSON parsed as it wrote: encoding/json decodes the value
// (numbers kept as text), and the value is written canonically. Every leaf
// hash sealed until then was computed with it; FuzzCanonicalJSON holds the
// two to the same bytes.
func canonicalJSONByDecoding(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one value")
	}
	var buf bytes.Buffer
	writeDecoded(&buf, v)
	return buf.Bytes(), nil
}

func writeDecoded(buf *bytes.Buffer, v any) {
	switch t := v.(type) {
	case map[string]any:
		names := make([]string, 0, len(t))
		for name := range t {
			names = append(names, name)
		}
		slices.SortFunc(names, compareUTF16)
		buf.WriteByte('{')
		for i, name := range names {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeDecodedString(buf, name)
			buf.WriteByte(':')
			writeDecoded(buf, t[name])
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeDecoded(buf, e)
		}
		buf.WriteByte(']')
	case string:
		writeDecodedString(buf, t)
	case json.Number:
		buf.WriteString(formatNumber(string(t)))
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
}

func writeDecodedString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\f':
			buf.WriteString(`\f`)
		case '\r':
			buf.WriteString(`\r`)
		default:
			if r < 0x20 {
				buf.WriteString(`\u00`)
				buf.WriteByte("0123456789abcdef"[r>>4])
				buf.WriteByte("0123456789abcdef"[r&0xF])
			} else {
				var b [utf8.UTFMax]byte
				buf.Write(b[:utf8.EncodeRune(b[:], r)])
			}
		}
	}
	buf.WriteByte('"')
}

// canonicalSeeds are inputs where the two ways of reading JSON could part:
// escapes, surrogates paired and not, invalid UTF-8, duplicate and
// reordered names, numbers of every shape, whitespace, nesting, and text
// that is not JSON at all.
var canonicalSeeds = []string{
	`{"ip": "10.0.0.1", "attempt": 1}`,
	`{"b": {"d": [1, 2.50, -0, 1e400, 1E-7, 123456789012345678901234, 0.1e1]}, "a": null, "c": [true, false, {}, []]}`,
	`{"a":1,"a":2,"b":{"x":1,"x":{"y":2}},"a":3}`,
	`"\ud83d\ude00 \ud800 \udc00x \ud800\u0041 \ud800\ud800 \u00e9 \/ \b\f\n\r\t \u0000 \u001F \u007f \u2028"`,
	"\"bad \xff utf8 \xc3( \xe2\x82 ok \xe2\x82\xac\"",
	"{\"\xff\": 1, \"\ufffd\": 2}",
	`{"€":1,"😀":2,"דּ":3,"\r":4,"1":5,"":6}`,
	" \t\n\r[ 1 , [ [ ] ] , { \"k\" : \"v\" } ] \n",
	`-0.0`, `0`, `-1.5e+300`, `1e-400`, `"x"`, `true`, `null`,
	`{"a":}`, `{"a":1} {}`, ``, `[1,]`, `{"a" 1}`, `01`, `1.`, `-`, `"\x"`, `"\u12"`, "\"a\x01b\"", `[`, `{"a":1`, `nul`,
	`{"a":"\'"}`, `1e`, `.5`, `+1`, `[1 2]`,
}

// FuzzCanonicalJSON holds canonicalJSON to the decoding version: the same
// bytes for every JSON text, and an error for every text that is not one.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want, wantErr := canonicalJSONByDecoding([]byte(in))
		got, err := canonicalJSON([]byte(in))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("canonicalJSON(%q): error %v; decoding: error %v", in, err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("canonicalJSON(%q)\n got %s\nwant %s", in, got, want)
		}
	})
}

func BenchmarkCanonicalJSON(b *testing.B) {
	in := []byte(`{"ip": "203.0.113.7", "device": {"os": "linux", "version": 12.5}, "tags": ["a", "b"]}`)
	b.Run("parsing", func(b *testing.B) {
		for b.Loop() {
			_, _ = canonicalJSON(in)
		}
	})
	b.Run("decoding", func(b *testing.B) {
		for b.Loop() {
			_, _ = canonicalJSONByDecoding(in)
		}
	})
}
