package requestid_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// responseHeaderSchema is the schema openapi.yaml gives the X-Request-ID
// response header: every id the server echoes must keep it.
func responseHeaderSchema(t testing.TB) *openapi3.Schema {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	return spec.Components.Headers["XRequestID"].Value.Schema.Value
}

// TestRuleIsTheContracts: the header's name is the XRequestID parameter's,
// and an id is kept exactly when kin-openapi finds it keeps the schema of
// the XRequestID response header, so the middleware never echoes an id the
// contract forbids nor replaces one it allows.
func TestRuleIsTheContracts(t *testing.T) {
	t.Parallel()
	spec, err := openapi3.NewLoader().LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if name := spec.Components.Parameters["XRequestID"].Value.Name; name != requestid.Header {
		t.Errorf("the contract names the header %q, the middleware reads %q", name, requestid.Header)
	}
	schema := responseHeaderSchema(t)
	tests := []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"Az09._:-", true},
		{strings.Repeat("x", requestid.MaxLen), true},
		{strings.Repeat("x", requestid.MaxLen+1), false},
		{strings.Repeat("é", requestid.MaxLen), false},
		{"has space", false},
		{"new\nline", false},
		{"crlf\r\nSet-Cookie: a=b", false},
		{"tab\t", false},
		{"slash/", false},
		{"émoji", false},
		{"null\x00", false},
		{`{"json":1}`, false},
		{requestid.New(), true},
	}
	for _, tt := range tests {
		if got := requestid.Valid(tt.id); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
		}
		if contract := schema.VisitJSON(tt.id) == nil; contract != requestid.Valid(tt.id) {
			t.Errorf("Valid(%q) = %v, the contract's schema says %v", tt.id, requestid.Valid(tt.id), contract)
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

// FuzzSanitize: whatever arrives, the id kept is one the contract's
// response header schema allows, and an allowed id is kept as it came.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", strings.Repeat("z", 200), "\r\n", "ünï"} {
		f.Add(s)
	}
	schema := responseHeaderSchema(f)
	f.Fuzz(func(t *testing.T, in string) {
		out := requestid.Sanitize(in)
		if err := schema.VisitJSON(out); err != nil || !requestid.Valid(out) {
			t.Fatalf("Sanitize(%q) = %q, not valid: %v", in, out, err)
		}
		if allowed := schema.VisitJSON(in) == nil; allowed != requestid.Valid(in) || (allowed && out != in) {
			t.Fatalf("Sanitize(%q) = %q; the contract allows the input: %v", in, out, allowed)
		}
	})
}
