package ledger

import (
	"bytes"
	"errors"
	"fmt"
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
// as in jsonb: docs/ledger.md says so. Strings are read as encoding/json
// reads them (an invalid surrogate or byte becomes U+FFFD). It returns an
// error when in is not one JSON value.
//
// It parses in as it writes, without building the value: every leaf hash
// runs it, in the sequencer and in valhalla verify, and decoding into maps
// was most of a leaf's cost. FuzzCanonicalJSON holds it to the decoding
// version it replaced.
func canonicalJSON(in []byte) ([]byte, error) {
	out, _, err := canonicalJSONLiteral(in)
	return out, err
}

// canonicalJSONLiteral is canonicalJSON that also reports whether a number
// kept its literal text. Only such a number's canonical form depends on how
// it was written (1e400 and jsonb's 1 followed by 400 zeros differ).
func canonicalJSONLiteral(in []byte) (out []byte, literal bool, err error) {
	c := canonicalizer{in: in, out: make([]byte, 0, len(in))}
	c.skipSpace()
	if err := c.value(0); err != nil {
		return nil, false, fmt.Errorf("canonical JSON: %w", err)
	}
	if c.skipSpace(); c.pos != len(in) {
		return nil, false, errors.New("canonical JSON: more than one value")
	}
	return c.out, c.literalNumber, nil
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// canonicalizer reads in from pos and appends the canonical form to out.
type canonicalizer struct {
	in            []byte
	pos           int
	out           []byte
	members       []member // the members of the objects being read, innermost last
	scratch       []byte
	literalNumber bool // a number kept its literal text
}

// member is an object member written to out[start:end] as "name":value.
type member struct {
	name       string
	start, end int
}

var errSyntax = errors.New("invalid JSON")

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value reads one value and appends its canonical form.
func (c *canonicalizer) value(depth int) error {
	if c.pos >= len(c.in) {
		return errSyntax
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth + 1)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		s, err := c.str()
		if err != nil {
			return err
		}
		c.out = appendCanonicalString(c.out, s)
		return nil
	case b == '-' || ('0' <= b && b <= '9'):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return errSyntax
}

func (c *canonicalizer) literal(word string) error {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(word)) {
		return errSyntax
	}
	c.pos += len(word)
	c.out = append(c.out, word...)
	return nil
}

// object reads an object: each member is written to out as it is read,
// then the members are put in order (the last of duplicate names kept).
func (c *canonicalizer) object(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	c.pos++ // {
	objStart, first := len(c.out), len(c.members)
	defer func() { c.members = c.members[:first] }()
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, "{}"...)
		return nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return errSyntax
		}
		name, err := c.str()
		if err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return errSyntax
		}
		c.pos++
		c.skipSpace()
		start := len(c.out)
		c.out = append(appendCanonicalString(c.out, name), ':')
		if err := c.value(depth); err != nil {
			return err
		}
		c.members = append(c.members, member{name: name, start: start, end: len(c.out)})
		more, err := c.next('}')
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	ms := c.members[first:]
	slices.SortStableFunc(ms, func(a, b member) int { return compareUTF16(a.name, b.name) })
	c.scratch = append(c.scratch[:0], c.out[objStart:]...)
	c.out = append(c.out[:objStart], '{')
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].name == m.name {
			continue // a later member of the same name wins
		}
		if len(c.out) > objStart+1 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.scratch[m.start-objStart:m.end-objStart]...)
	}
	c.out = append(c.out, '}')
	return nil
}

func (c *canonicalizer) array(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	c.pos++ // [
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			c.out = append(c.out, ',')
		}
		c.skipSpace()
		if err := c.value(depth); err != nil {
			return err
		}
		more, err := c.next(']')
		if err != nil {
			return err
		}
		if !more {
			c.out = append(c.out, ']')
			return nil
		}
	}
}

// next reads what follows a member or an element: a comma (more follow)
// or close, which ends the object or array.
func (c *canonicalizer) next(close byte) (more bool, err error) {
	c.skipSpace()
	switch {
	case c.pos >= len(c.in):
		return false, errSyntax
	case c.in[c.pos] == ',':
		c.pos++
		return true, nil
	case c.in[c.pos] == close:
		c.pos++
		return false, nil
	}
	return false, errSyntax
}

// number reads a number (RFC 8259's grammar) and appends formatNumber's.
func (c *canonicalizer) number() error {
	in, i := c.in, c.pos
	digits := func() int {
		j := i
		for i < len(in) && '0' <= in[i] && in[i] <= '9' {
			i++
		}
		return i - j
	}
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case digits() == 0:
		return errSyntax
	}
	if i < len(in) && in[i] == '.' {
		i++
		if digits() == 0 {
			return errSyntax
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return errSyntax
		}
	}
	n, literal := formatNumberLiteral(string(in[c.pos:i]))
	c.literalNumber = c.literalNumber || literal
	c.out = append(c.out, n...)
	c.pos = i
	return nil
}

// str reads a string and returns its value as encoding/json decodes it:
// escapes resolved, a \u surrogate that does not pair and a byte that is
// not UTF-8 both as U+FFFD.
func (c *canonicalizer) str() (string, error) {
	in := c.in
	i := c.pos + 1 // past the quote
	// The common case: nothing to resolve.
	j := i
	for j < len(in) {
		b := in[j]
		if b == '"' {
			c.pos = j + 1
			return string(in[i:j]), nil
		}
		if b == '\\' || b < 0x20 || b >= utf8.RuneSelf {
			break
		}
		j++
	}
	buf := append([]byte(nil), in[i:j]...)
	for j < len(in) {
		b := in[j]
		switch {
		case b == '"':
			c.pos = j + 1
			return string(buf), nil
		case b < 0x20:
			return "", errSyntax
		case b == '\\':
			if j+1 >= len(in) {
				return "", errSyntax
			}
			switch e := in[j+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(in[j+2:])
				if r < 0 {
					return "", errSyntax
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4u(in[j:]); r2 >= 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							buf = utf8.AppendRune(buf, d)
							j += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return "", errSyntax
			}
			j += 2
		case b < utf8.RuneSelf:
			buf = append(buf, b)
			j++
		default:
			r, size := utf8.DecodeRune(in[j:])
			buf = utf8.AppendRune(buf, r)
			j += size
		}
	}
	return "", errSyntax
}

// hex4 is the value of the four hex digits at the start of b, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// hex4u is hex4 of a \u escape at the start of b, or -1.
func hex4u(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	return hex4(b[2:])
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

// appendCanonicalString appends s as a JSON string the way RFC 8785
// §3.2.2.2 writes it: '"' and '\\' escaped, the control characters
// U+0000–U+001F as \b \t \n \f \r or \u00xx (lowercase hex), everything
// else as is, in UTF-8.
func appendCanonicalString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"':
			dst = append(dst, `\"`...)
		case '\\':
			dst = append(dst, `\\`...)
		case '\b':
			dst = append(dst, `\b`...)
		case '\t':
			dst = append(dst, `\t`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\f':
			dst = append(dst, `\f`...)
		case '\r':
			dst = append(dst, `\r`...)
		default:
			dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[b>>4], "0123456789abcdef"[b&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// formatNumber prints n as ECMAScript's Number.prototype.toString prints
// the nearest double (RFC 8785 §3.2.2.3), or n's own text when no finite
// double holds it.
func formatNumber(n string) string {
	s, _ := formatNumberLiteral(n)
	return s
}

// formatNumberLiteral is formatNumber that also reports whether n kept its
// literal text (no finite double holds it).
func formatNumberLiteral(n string) (string, bool) {
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return n, true
	}
	return formatDouble(f), false
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
