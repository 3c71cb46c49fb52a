package jsonb_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/jsonb"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestAgreesWithPostgreSQL: Check refuses exactly what PostgreSQL's jsonb
// refuses, and names where.
func TestAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	conn, err := pgx.Connect(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	deep := strings.Repeat("[", jsonb.MaxDepth) + strings.Repeat("]", jsonb.MaxDepth)
	tests := []struct {
		name, json string
		pointer    string // "-": accepted
	}{
		{"plain", `{"a":[1,"x",true,null,{"b":2.5e3}]}`, "-"},
		{"escapes", `{"q":"\" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"}`, "-"},
		{"NUL", `{"a":{"b":"x\u0000"}}`, "/a/b"},
		{"escaped backslash before u0000", `{"a":"\\u0000"}`, "-"},
		{"lone high surrogate", `{"a":["ok","\ud800"]}`, "/a/1"},
		{"lone low surrogate", `{"a":"\udc00x"}`, "/a"},
		{"high then non-low", `{"a":"\ud800\u0041"}`, "/a"},
		{"surrogate in a key", `{"k\ud800":1}`, "/k"},
		{"pointer escapes", `{"a/b~c":"\ud800"}`, "/a~1b~0c"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "/a"},
		{"huge exponent", `{"n":1e200000}`, "/n"},
		{"largest integer part", `{"n":1e131071}`, "-"},
		{"integer part one too long", `{"n":1e131072}`, "/n"},
		{"negative huge", `{"n":-9.99e131071}`, "-"},
		{"fraction digits at the limit", `{"n":1e-16383}`, "-"},
		{"fraction digits over", `{"n":1e-16384}`, "/n"},
		{"zero with a tiny exponent", `{"n":0e-16384}`, "/n"},
		{"zero with a large exponent", `{"n":0e200000}`, "-"},
		{"exponent past INT_MAX/2", `{"n":0e1073741823}`, "/n"},
		{"exponent past int64", `{"n":1e99999999999999999999}`, "/n"},
		{"leading fraction zeros at the limit", `{"n":0.000123e-16377}`, "-"},
		{"leading fraction zeros over", `{"n":0.000123e-16378}`, "/n"},
		{"trailing fraction zeros over", `{"n":1.` + strings.Repeat("0", 16384) + `}`, "/n"},
		{"at the depth bound", deep, "-"},
		{"past the depth bound", "[" + deep + "]", "/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0"},
	}
	for _, tt := range tests {
		if !json.Valid([]byte(tt.json)) && !strings.Contains(tt.name, "UTF-8") {
			t.Fatalf("%s: not JSON", tt.name)
		}
		v := jsonb.Check([]byte(tt.json))
		_, pgErr := conn.Exec(t.Context(), "SELECT $1::text::jsonb", tt.json)
		got := "-"
		if v != nil {
			got = v.Pointer
			if v.Reason == "" {
				t.Errorf("%s: violation without a reason", tt.name)
			}
		}
		if got != tt.pointer {
			t.Errorf("%s: Check = %q (%v), want %q", tt.name, got, v, tt.pointer)
		}
		// PostgreSQL refuses what Check refuses, except nesting, whose
		// bound is Valhalla's own, and invalid UTF-8, which the text
		// parameter cannot even carry.
		if strings.Contains(tt.name, "depth") || strings.Contains(tt.name, "UTF-8") {
			continue
		}
		if (pgErr != nil) != (v != nil) {
			t.Errorf("%s: PostgreSQL says %v, Check says %v", tt.name, pgErr, v)
		}
	}
}

// TestNULEscapes: only an escape that is not itself escaped is a NUL.
func TestNULEscapes(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		`{}`:                      false,
		`{"a":"\u0000"}`:          true,
		`{"\u0000":1}`:            true,
		`{"a":"x\u0000y"}`:        true,
		`{"a":"\\u0000"}`:         false, // a backslash, then the text u0000
		`{"a":"\\\u0000"}`:        true,  // a backslash, then NUL
		`{"a":"\u00000"}`:         true,
		`{"a":"\u0001"}`:          false,
		`{"a":"\\\\u0000"}`:       false,
		`{"a":"ok","b":"\u0000"}`: true,
	}
	for raw, want := range tests {
		if got := jsonb.Check([]byte(raw)) != nil; got != want {
			t.Errorf("Check(%s) refuses: %v, want %v", raw, got, want)
		}
	}
}
