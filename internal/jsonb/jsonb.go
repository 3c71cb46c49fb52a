// Package jsonb tells, before a write is queued, whether PostgreSQL's jsonb
// will accept a JSON text that Go already accepts: jsonb refuses U+0000,
// lone UTF-16 surrogates in \u escapes, invalid UTF-8, numbers outside the
// numeric type's range and nesting deeper than a bound. Check finds the
// first such value and names it by JSON Pointer, so the client learns
// where it is rather than getting a 500 from the database.
package jsonb

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pointerEscaper escapes a JSON Pointer segment (RFC 6901).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// MaxDepth bounds the nesting of arrays and objects Check accepts.
// PostgreSQL's own bound depends on its stack; this one is far below it.
const MaxDepth = 64

// Limits of PostgreSQL's numeric type (src/backend/utils/adt/numeric.c): a
// value has at most 131072 digits before the decimal point and 16383
// after it.
const (
	maxIntegerDigits  = 131072
	maxFractionDigits = 16383
	maxExponent       = 1<<31/2 - 1 // INT_MAX / 2
)

// Violation is a value jsonb would refuse.
type Violation struct {
	// Pointer locates the value inside the checked text (RFC 6901); ""
	// is the whole text.
	Pointer string
	// Reason says what is wrong, for a client.
	Reason string
}

// Check returns the first value of raw, which must be valid JSON, that
// jsonb refuses, or nil when jsonb accepts every one.
func Check(raw []byte) *Violation {
	c := checker{raw: raw}
	c.skipSpace()
	c.value(0)
	return c.violation
}

type checker struct {
	raw       []byte
	pos       int
	path      []string
	violation *Violation
}

func (c *checker) fail(reason string) {
	if c.violation != nil {
		return
	}
	var b strings.Builder
	for _, s := range c.path {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(s))
	}
	c.violation = &Violation{Pointer: b.String(), Reason: reason}
	c.pos = len(c.raw) // stop
}

func (c *checker) skipSpace() {
	for c.pos < len(c.raw) {
		switch c.raw[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value checks the value at c.pos, depth levels deep, and the space after it.
func (c *checker) value(depth int) {
	if c.pos >= len(c.raw) {
		return
	}
	switch c.raw[c.pos] {
	case '{':
		if depth >= MaxDepth {
			c.fail(fmt.Sprintf("nests deeper than %d levels", MaxDepth))
			return
		}
		c.pos++
		c.skipSpace()
		for c.pos < len(c.raw) && c.raw[c.pos] != '}' {
			key, reason := c.string()
			if reason != "" {
				c.path = append(c.path, key)
				c.fail("key " + reason)
				return
			}
			c.skipSpace()
			c.pos++ // ':'
			c.skipSpace()
			c.path = append(c.path, key)
			c.value(depth + 1)
			c.path = c.path[:len(c.path)-1]
			if c.pos < len(c.raw) && c.raw[c.pos] == ',' {
				c.pos++
				c.skipSpace()
			}
		}
		c.pos++
	case '[':
		if depth >= MaxDepth {
			c.fail(fmt.Sprintf("nests deeper than %d levels", MaxDepth))
			return
		}
		c.pos++
		c.skipSpace()
		for i := 0; c.pos < len(c.raw) && c.raw[c.pos] != ']'; i++ {
			c.path = append(c.path, strconv.Itoa(i))
			c.value(depth + 1)
			c.path = c.path[:len(c.path)-1]
			if c.pos < len(c.raw) && c.raw[c.pos] == ',' {
				c.pos++
				c.skipSpace()
			}
		}
		c.pos++
	case '"':
		if _, reason := c.string(); reason != "" {
			c.fail(reason)
		}
	case 't':
		c.pos += len("true")
	case 'f':
		c.pos += len("false")
	case 'n':
		c.pos += len("null")
	default:
		c.number()
	}
	c.skipSpace()
}

// string reads the string at c.pos and returns it decoded, and why jsonb
// refuses it ("" when it does not). A key jsonb refuses fails here.
func (c *checker) string() (string, string) {
	c.pos++ // opening quote
	var b strings.Builder
	reason := ""
	note := func(r string) {
		if reason == "" {
			reason = r
		}
	}
	for c.pos < len(c.raw) && c.raw[c.pos] != '"' {
		ch := c.raw[c.pos]
		if ch != '\\' {
			r, size := utf8.DecodeRune(c.raw[c.pos:])
			if r == utf8.RuneError && size == 1 {
				note("is not valid UTF-8")
			}
			b.WriteRune(r)
			c.pos += size
			continue
		}
		esc := c.raw[c.pos+1]
		if esc != 'u' {
			b.WriteByte(unescape(esc))
			c.pos += 2
			continue
		}
		u := hex4(c.raw[c.pos+2 : c.pos+6])
		c.pos += 6
		switch {
		case u == 0:
			note("must not contain U+0000 (NUL)")
		case u >= 0xD800 && u < 0xDC00:
			if c.pos+6 <= len(c.raw) && c.raw[c.pos] == '\\' && c.raw[c.pos+1] == 'u' {
				if lo := hex4(c.raw[c.pos+2 : c.pos+6]); lo >= 0xDC00 && lo < 0xE000 {
					b.WriteRune(rune((u-0xD800)<<10 + (lo - 0xDC00) + 0x10000))
					c.pos += 6
					continue
				}
			}
			note("holds a lone UTF-16 surrogate (\\u" + strconv.FormatUint(uint64(u), 16) + ")")
		case u >= 0xDC00 && u < 0xE000:
			note("holds a lone UTF-16 surrogate (\\u" + strconv.FormatUint(uint64(u), 16) + ")")
		default:
			b.WriteRune(rune(u))
		}
	}
	c.pos++ // closing quote
	if reason != "" {
		// A key that fails is reported at the object holding it.
		return b.String(), reason
	}
	return b.String(), ""
}

func unescape(esc byte) byte {
	switch esc {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	}
	return esc // " \ /
}

func hex4(b []byte) uint32 {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return uint32(v)
}

// number reads the number at c.pos and fails when numeric cannot hold it.
func (c *checker) number() {
	start := c.pos
	for c.pos < len(c.raw) && strings.IndexByte("+-0123456789.eE", c.raw[c.pos]) >= 0 {
		c.pos++
	}
	if !numericHolds(string(c.raw[start:c.pos])) {
		c.fail("is a number outside the range PostgreSQL can store (at most 131072 digits before the decimal point and 16383 after it)")
	}
}

// numericHolds reports whether PostgreSQL's numeric can hold the JSON
// number n: its most significant digit at most 131071 places above the
// decimal point, and at most 16383 fraction digits once the exponent is
// applied.
func numericHolds(n string) bool {
	n = strings.TrimPrefix(n, "-")
	mantissa, exp, hasExp := strings.Cut(strings.ToLower(n), "e")
	e := int64(0)
	if hasExp {
		v, err := strconv.ParseInt(exp, 10, 64)
		// numeric_in refuses any exponent from INT_MAX/2 on, even of zero.
		if err != nil || v >= maxExponent || v <= -maxExponent {
			return false
		}
		e = v
	}
	intPart, frac, _ := strings.Cut(mantissa, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" { // zero: only the scale can overflow
		return int64(len(frac))-e <= maxFractionDigits
	}
	// The most significant digit's place: 0 for the units.
	lead := int64(len(intPart)) - 1 - int64(len(intPart+frac)-len(digits)) + e
	if lead >= maxIntegerDigits {
		return false
	}
	scale := int64(len(frac)) - e
	return scale <= maxFractionDigits
}
