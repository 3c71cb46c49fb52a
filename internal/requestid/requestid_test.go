package requestid_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/internal/requestid"
)

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"Az09._:-", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"has space", false},
		{"new\nline", false},
		{"crlf\r\nSet-Cookie: a=b", false},
		{"tab\t", false},
		{"slash/", false},
		{"émoji", false},
		{"null\x00", false},
		{`{"json":1}`, false},
	}
	for _, tt := range tests {
		if got := requestid.Valid(tt.id); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	var seen string
	h := requestid.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = requestid.FromContext(r.Context())
		if r.Header.Get(requestid.Header) != seen {
			t.Errorf("request header %q, context %q", r.Header.Get(requestid.Header), seen)
		}
		w.WriteHeader(http.StatusTeapot)
	}))

	for _, incoming := range []string{"keep-me:1", "bad id", ""} {
		r := httptest.NewRequest("GET", "/", nil)
		if incoming != "" {
			r.Header.Set(requestid.Header, incoming)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get(requestid.Header)
		if got != seen {
			t.Errorf("incoming %q: response header %q, handler saw %q", incoming, got, seen)
		}
		if incoming == "keep-me:1" {
			if got != incoming {
				t.Errorf("sane id %q replaced by %q", incoming, got)
			}
			continue
		}
		if id, err := uuid.Parse(got); err != nil || id.Version() != 7 {
			t.Errorf("incoming %q: minted %q, want a UUIDv7", incoming, got)
		}
	}
}

func TestFromContextOutsideRequest(t *testing.T) {
	t.Parallel()
	if id := requestid.FromContext(t.Context()); id != "" {
		t.Errorf("FromContext outside a request = %q", id)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", strings.Repeat("z", 200), "\r\n", "ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := requestid.Sanitize(in)
		if !requestid.Valid(out) {
			t.Fatalf("Sanitize(%q) = %q, not valid", in, out)
		}
		if requestid.Valid(in) && out != in {
			t.Fatalf("Sanitize(%q) replaced a valid id with %q", in, out)
		}
	})
}
