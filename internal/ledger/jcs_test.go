package ledger

import (
	"math"
	"strings"
	"testing"
)

// TestCanonicalJSON checks the examples of RFC 8785 and the cases jsonb
// produces: member order by UTF-16 code units, the escapes, numbers as
// ECMAScript prints them.
func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		// RFC 8785 §3.2.2 example, less its lone surrogate.
		{`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785 §3.2.3: sorting by UTF-16 code units.
		{`{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{`{}`, `{}`},
		{` { "b" : [ ] , "a" : { "d" : 1 , "c" : -0 } } `, `{"a":{"c":0,"d":1},"b":[]}`},
		{`{"t":"\b\f\t\u0001\u001f\u007f\u2028"}`, "{\"t\":\"\\b\\f\\t\\u0001\\u001f\u007f\u2028\"}"},
		// jsonb keeps numeric text such as 1.0 and 1e400; JCS prints the
		// double, or the text when no double holds it.
		{`{"a":1.0,"b":100,"c":1e400,"d":123456789012345678901234}`, `{"a":1,"b":100,"c":1e400,"d":1.2345678901234569e+23}`},
	} {
		got, err := canonicalJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("canonicalJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("canonicalJSON(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// jsonb keeps the last of duplicate names; so does the encoding.
	if got, err := canonicalJSON([]byte(`{"a":1,"a":2}`)); err != nil || string(got) != `{"a":2}` {
		t.Errorf("duplicate names: %s %v, want the last", got, err)
	}
	for _, bad := range []string{`{"a":1} {}`, `{"a":}`, ``} {
		if got, err := canonicalJSON([]byte(bad)); err == nil {
			t.Errorf("canonicalJSON(%q) = %s, want an error", bad, got)
		}
	}
}

// TestFormatDouble checks ECMAScript number formatting on the values of
// RFC 8785 Appendix B.
func TestFormatDouble(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		if got := formatDouble(math.Float64frombits(tc.bits)); got != tc.want {
			t.Errorf("formatDouble(%#x) = %s, want %s", tc.bits, got, tc.want)
		}
	}
	if !strings.HasPrefix(formatDouble(1e21), "1e+21") {
		t.Error("1e21 not in exponent form")
	}
}
