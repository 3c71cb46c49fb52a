package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// systemLogFields are api.SystemLog's JSON names in its field order, as
// appendSystemLog writes them.
var systemLogFields = []string{"actor", "category", "context", "correlation_id", "id", "leaf_hash", "level",
	"message", "seq", "timestamp", "trace_id", "user_id"}

// TestAppendSystemLogWritesEveryField fails when the contract gives
// SystemLog a field (or renames one) that appendSystemLog does not write.
func TestAppendSystemLogWritesEveryField(t *testing.T) {
	typ := reflect.TypeFor[api.SystemLog]()
	var got []string
	for f := range typ.Fields() {
		got = append(got, f.Tag.Get("json"))
	}
	if !reflect.DeepEqual(got, systemLogFields) {
		t.Fatalf("api.SystemLog's fields are %q; appendSystemLog writes %q: teach it the change", got, systemLogFields)
	}
}

// TestAppendSystemLog holds appendSystemLog to encoding/json's bytes for
// entries with every kind of string the escaping treats apart.
func TestAppendSystemLog(t *testing.T) {
	for _, tc := range []struct {
		name, message, context string
	}{
		{"plain", "token refreshed", `{"ip": "10.0.0.1", "attempt": 1}`},
		{"quotes and backslashes", `say "hi" \ bye`, `{"q": "a \"b\" \\ c", "p": "\\"}`},
		{"control characters", "a\nb\tc\rd\be\ff\x00g\x1fh\x7f", `{"s": "a\nb\u0001\t"}`},
		{"html characters", "<script>&amp;</script>", `{"<k>": "a & b > c"}`},
		{"line and paragraph separators", "a\u2028b\u2029c", "{\"s\": \"a\u2028b\u2029\"}"},
		{"invalid utf-8", "a\xffb\xc3(c\xe2\x82", `{"k": []}`},
		{"multibyte", "zürich 東京 🦄 \u202e", "{\"n\": \"é🦄\", \"m\": [1, 2.5e10, -3, true, false, null, {}]}"},
		{"whitespace in context", " ", "{\n\t\"a\" :  [ 1 ,\r\n 2 ] , \"b\": \"x y\" }"},
		{"nested and empty", "", `[{"a": {"b": [[], {}]}}, "", " "]`},
		{"no context", "m", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := int64(9_007_199_254_740_993)
			hash := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 11)[:32]
			user, trace := "user\"<1>", "4bf92f3577b34da6a3ce929d0e0e4736"
			l := api.SystemLog{
				Actor: "bench&co", Category: "auth\u2028", CorrelationId: "req-\x01", Id: uuid.Must(uuid.NewV7()),
				Level: api.LogLevel("WARN"), Message: tc.message, Seq: &seq, LeafHash: &hash,
				Timestamp: time.Date(2026, 12, 2, 15, 4, 5, 123456000, time.FixedZone("", 3600)),
				TraceId:   &trace, UserId: &user,
			}
			if tc.context != "" {
				l.Context = json.RawMessage(tc.context)
			}
			checkAppendSystemLog(t, &l)
			// Unsealed, with the optional fields absent.
			l.Seq, l.LeafHash, l.TraceId, l.UserId = nil, nil, nil, nil
			l.Timestamp = l.Timestamp.UTC().Truncate(time.Second)
			checkAppendSystemLog(t, &l)
		})
	}
}

// FuzzAppendSystemLog holds appendSystemLog to encoding/json's bytes for
// any message and any valid JSON context.
func FuzzAppendSystemLog(f *testing.F) {
	f.Add("token refreshed", `{"ip": "10.0.0.1"}`)
	f.Add("a\u2028<b>\xff", `{"a": "\u003c\\\"", "b": [1, {"c": null}]}`)
	f.Fuzz(func(t *testing.T, message, context string) {
		if !json.Valid([]byte(context)) {
			t.Skip()
		}
		l := api.SystemLog{Message: message, Category: message, Context: json.RawMessage(context),
			Timestamp: time.Unix(1700000000, 123000).UTC()}
		checkAppendSystemLog(t, &l)
	})
}

func checkAppendSystemLog(t *testing.T, l *api.SystemLog) {
	t.Helper()
	want, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	got := appendSystemLog([]byte("prefix"), l)
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendSystemLog overwrote what dst held: %q", got)
	}
	if got = got[len("prefix"):]; !bytes.Equal(got, want) {
		t.Fatalf("appendSystemLog wrote\n%s\nencoding/json writes\n%s", got, want)
	}
}

func BenchmarkAppendSystemLog(b *testing.B) {
	seq, hash, user := int64(123456), make([]byte, 32), "svc-payments"
	l := api.SystemLog{Actor: "bench", Category: "payments", Context: json.RawMessage(`{"ip": "10.77.187.18", "attempt": 1}`),
		CorrelationId: "req-1a0e6ce0935828eb", Id: uuid.Must(uuid.NewV7()), LeafHash: &hash, Level: "INFO",
		Message: "token refreshed #0", Seq: &seq, Timestamp: time.Now().Truncate(time.Microsecond), UserId: &user}
	b.Run("appendSystemLog", func(b *testing.B) {
		var line []byte
		for b.Loop() {
			line = appendSystemLog(line[:0], &l)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&l)
		}
	})
}
