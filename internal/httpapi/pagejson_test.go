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

// TestAppendPagesWriteEveryField fails when the contract gives a page a
// field (or renames one) that appendSystemLogList or appendSystemLogFeed
// does not write.
func TestAppendPagesWriteEveryField(t *testing.T) {
	for typ, want := range map[reflect.Type][]string{
		reflect.TypeFor[api.SystemLogList](): {"items", "next_cursor", "total,omitempty", "total_relation,omitempty"},
		reflect.TypeFor[api.SystemLogFeed](): {"items", "missing", "next_after"},
	} {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Tag.Get("json"))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s's fields are %q; its encoder writes %q: teach it the change", typ, got, want)
		}
	}
}

// TestAppendPages holds the listing's and the feed's pages to the bytes
// the generated responses' json.Encoder writes, for empty, nil and full
// pages, with and without the optional fields.
func TestAppendPages(t *testing.T) {
	seq := int64(42)
	hash := bytes.Repeat([]byte{0xfb}, 32)
	user := "u<1>"
	entry := func(msg, ctx string) api.SystemLog {
		return api.SystemLog{Actor: "a&b", Category: "auth", Context: json.RawMessage(ctx), CorrelationId: "c",
			Id: uuid.Must(uuid.NewV7()), Level: "INFO", Message: msg, Seq: &seq, LeafHash: &hash,
			Timestamp: time.Date(2026, 12, 3, 15, 4, 5, 123456000, time.UTC), UserId: &user}
	}
	full := []api.SystemLog{entry("one", `{"a": [1, 2]}`), entry("two \"<x>\"", `{"s": "\u2028 &"}`), entry("three", "null")}
	cursor, total := "AQAG", int64(1234)
	eq, gte := api.Eq, api.Gte
	encode := func(v any) []byte {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, items := range [][]api.SystemLog{nil, {}, full} {
		for _, l := range []api.SystemLogList{
			{Items: items},
			{Items: items, NextCursor: &cursor},
			{Items: items, Total: &total, TotalRelation: &eq},
			{Items: items, NextCursor: &cursor, Total: &total, TotalRelation: &gte},
		} {
			if got, want := appendSystemLogList(nil, &l), encode(l); !bytes.Equal(got, want) {
				t.Errorf("appendSystemLogList wrote\n%s\nencoding/json writes\n%s", got, want)
			}
		}
		for _, missing := range [][]api.MissingEntry{nil, {}, {{Id: uuid.Must(uuid.NewV7()), LeafHash: hash, Seq: 7}}} {
			f := api.SystemLogFeed{Items: items, Missing: missing, NextAfter: 99}
			got, err := appendSystemLogFeed(nil, &f)
			if err != nil {
				t.Fatal(err)
			}
			if want := encode(f); !bytes.Equal(got, want) {
				t.Errorf("appendSystemLogFeed wrote\n%s\nencoding/json writes\n%s", got, want)
			}
		}
	}
}
