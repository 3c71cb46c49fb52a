package contract_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/internal/contract"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// validBodies are bodies that keep the contract, for the operations that
// take one, so that a request's only fault is the parameter under test.
var validBodies = map[string]string{
	"createSystemLog":      `{"message":"m"}`,
	"createSystemLogBatch": `{"entries":[{"message":"m"}]}`,
}

// nul is a value holding U+0000, which PostgreSQL cannot store.
const nul = "a\x00b"

// TestNULInAnyStringParameterIsNamed: for every string parameter and
// header of every operation in the contract (read from the contract, so a
// parameter added later is covered), a value holding U+0000 is a 422 whose
// only violation names that parameter or header, as every other violation
// does. (Over the wire net/http already refuses a NUL in a header with a
// plain 400; the validator is the contract's word on the rest.)
func TestNULInAnyStringParameterIsNamed(t *testing.T) {
	t.Parallel()
	spec, err := openapi3.NewLoader().LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	v, err := contract.New(1<<20, nil, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name     string // operationId and parameter
		req      *http.Request
		location string // as where reports it
	}
	var tests []tc
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			for _, ref := range op.Parameters {
				p := ref.Value
				if !takesStrings(p.Schema.Value) {
					continue
				}
				target, query, header := path, url.Values{}, http.Header{}
				// Every other required parameter gets a valid value, so the
				// NUL is the request's only fault.
				for _, other := range op.Parameters {
					o := other.Value
					if o == p || !o.Required {
						continue
					}
					switch o.In {
					case openapi3.ParameterInPath:
						target = strings.ReplaceAll(target, "{"+o.Name+"}", validValue(o.Schema.Value))
					case openapi3.ParameterInQuery:
						query.Set(o.Name, validValue(o.Schema.Value))
					}
				}
				var location string
				switch p.In {
				case openapi3.ParameterInPath:
					target = strings.ReplaceAll(target, "{"+p.Name+"}", url.PathEscape(nul))
					location = "?" + p.Name
				case openapi3.ParameterInQuery:
					query.Set(p.Name, nul)
					location = "?" + p.Name
				case openapi3.ParameterInHeader:
					header.Set(p.Name, nul)
					location = "header:" + p.Name
				default:
					t.Fatalf("%s %s: parameter %s in %s is not covered", method, path, p.Name, p.In)
				}
				body := validBodies[op.OperationID]
				if op.RequestBody != nil && body == "" {
					t.Fatalf("%s takes a body: add a valid one to validBodies", op.OperationID)
				}
				r := httptest.NewRequest(method, target, strings.NewReader(body))
				r.URL.RawQuery = query.Encode()
				for k, vs := range header {
					r.Header[k] = vs
				}
				if body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				tests = append(tests, tc{op.OperationID + " " + p.Name, r, location})
			}
		}
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.location)
	}
	// The walk found the parameters a reader knows of (a walk that finds
	// nothing would pass vacuously).
	for _, want := range []string{"?category", "?correlation_id", "?user_id", "?trace_id", "?cursor", "?since", "?level", "?id", "header:X-Request-ID", "header:Idempotency-Key"} {
		if !slices.Contains(covered, want) {
			t.Errorf("no case for %s; cases: %v", want, covered)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := serve(t, v, tt.req)
			if p == nil || p.Status != http.StatusUnprocessableEntity {
				t.Fatalf("problem %v, want a 422", p)
			}
			got := where(p)
			if len(got) == 0 || len(got) != len(p.Errors) || slices.ContainsFunc(got, func(l string) bool { return l != tt.location }) {
				t.Fatalf("violations %+v located at %v, want each at %s", p.Errors, got, tt.location)
			}
			for _, e := range p.Errors {
				if e.Detail == "" || strings.ContainsRune(e.Detail, 0) {
					t.Errorf("detail %q is empty or echoes the NUL", e.Detail)
				}
			}
		})
	}
}

// validValue is a value the schema accepts: its first enum value, its
// minimum for a number, or a UUID.
func validValue(s *openapi3.Schema) string {
	switch {
	case len(s.Enum) > 0:
		return fmt.Sprint(s.Enum[0])
	case s.Type.Is("integer") || s.Type.Is("number"):
		if s.Min != nil {
			return fmt.Sprint(*s.Min)
		}
		return "1"
	default:
		return "0192f0c5-6a6e-7d1c-9f5e-3b1a2c4d5e6f"
	}
}

// takesStrings reports whether a parameter's value is a string or a list
// of strings.
func takesStrings(s *openapi3.Schema) bool {
	if s.Type.Is(openapi3.TypeArray) {
		return s.Items != nil && takesStrings(s.Items.Value)
	}
	return s.Type.Is(openapi3.TypeString)
}

// serve runs r through v and returns the problem it raised, or nil when r
// reached the handler.
func serve(t *testing.T, v *contract.Validator, r *http.Request) *problem.Problem {
	t.Helper()
	var got *problem.Problem
	v.Middleware(func(_ http.ResponseWriter, _ *http.Request, err error) {
		p, ok := err.(*problem.Problem)
		if !ok {
			t.Fatalf("not a problem: %v", err)
		}
		got = p
	})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), r)
	return got
}
