package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// canonicalJSON returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON text in: no insignificant whitespace, object members sorted by
// the UTF-16 code units of their names, strings with only the escapes JCS
// prescribes, and numbers as ECMAScript prints an IEEE 754 double. A number
// that no finite double can hold (such as 1e400, which jsonb accepts) keeps
// its literal text instead, and of duplicate member names the last wins,
// as in jsonb: docs/ledger.md says so. It returns an error when in is not
// one JSON value.
func canonicalJSON(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical JSON: more than one value")
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(in)))
	writeValue(buf, v)
	return buf.Bytes(), nil
}

// writeValue writes v, as decoded with UseNumber, canonically.
func writeValue(buf *bytes.Buffer, v any) {
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
			writeString(buf, name)
			buf.WriteByte(':')
			writeValue(buf, t[name])
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeValue(buf, e)
		}
		buf.WriteByte(']')
	case string:
		writeString(buf, t)
	case json.Number:
		buf.WriteString(formatNumber(t))
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
}

// compareUTF16 orders a and b by their UTF-16 code units, as RFC 8785
// §3.2.3 sorts member names. It differs from UTF-8 byte order only where
// a character beyond U+FFFF (a surrogate pair) meets one in U+E000–U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := utf16Units(ra), utf16Units(rb)
			if c := slices.Compare(ua[:], ub[:]); c != 0 {
				return c
			}
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16Units returns r's UTF-16 code units, the second 0 for one unit.
func utf16Units(r rune) [2]uint16 {
	if r < 0x10000 {
		return [2]uint16{uint16(r), 0}
	}
	r1, r2 := utf16.EncodeRune(r)
	return [2]uint16{uint16(r1), uint16(r2)}
}

// writeString writes s as a JSON string the way RFC 8785 §3.2.2.2 does:
// '"' and '\' escaped, the control characters U+0000–U+001F as \b \t \n \f
// \r or \u00xx (lowercase hex), everything else as is, in UTF-8.
func writeString(buf *bytes.Buffer, s string) {
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
				fmt.Fprintf(buf, `\u%04x`, r)
			} else {
				var b [utf8.UTFMax]byte
				buf.Write(b[:utf8.EncodeRune(b[:], r)])
			}
		}
	}
	buf.WriteByte('"')
}

// formatNumber prints n as ECMAScript's Number.prototype.toString prints
// the nearest double (RFC 8785 §3.2.2.3), or n's own text when no finite
// double holds it.
func formatNumber(n json.Number) string {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return string(n)
	}
	return formatDouble(f)
}

// formatDouble is ECMAScript's Number::toString for a finite f.
func formatDouble(f float64) string {
	if f == 0 {
		return "0" // -0 too
	}
	if f < 0 {
		return "-" + formatDouble(-f)
	}
	// The shortest digits that round-trip, as d.ddde±x.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		return digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return "0." + strings.Repeat("0", -n) + digits
	}
	sign := "+"
	if n-1 < 0 {
		sign = "-"
	}
	exponent := strconv.Itoa(abs(n - 1))
	if k == 1 {
		return digits + "e" + sign + exponent
	}
	return digits[:1] + "." + digits[1:] + "e" + sign + exponent
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
