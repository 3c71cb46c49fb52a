package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	valhalla "github.com/valhalla-platform/valhalla"
)

// loadContract returns the embedded openapi.yaml, parsed afresh so a test
// may change it.
func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestRuleFollowsTheContract: change what the contract says about the
// correlation id and the generated rule changes with it.
func TestRuleFollowsTheContract(t *testing.T) {
	t.Parallel()
	spec := loadContract(t)
	spec.Components.Parameters["XRequestID"].Value.Name = "X-Correlation-ID"
	s := spec.Components.Headers["XRequestID"].Value.Schema.Value
	s.MinLength = 4
	s.MaxLength = openapi3.Uint64Ptr(8)
	s.Pattern = "^[a-z`]+$"
	src, err := generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`const Header = "X-Correlation-ID"`, "MinLen = 4", "MaxLen = 8", "const Pattern = \"^[a-z`]+$\"",
	} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("generated source lacks %s:\n%s", want, src)
		}
	}
}

// TestContractMustStateTheRule: a contract that leaves out part of the
// rule generates nothing.
func TestContractMustStateTheRule(t *testing.T) {
	t.Parallel()
	for name, breakIt := range map[string]func(*openapi3.T){
		"no parameter":       func(s *openapi3.T) { delete(s.Components.Parameters, "XRequestID") },
		"parameter in query": func(s *openapi3.T) { s.Components.Parameters["XRequestID"].Value.In = "query" },
		"no header":          func(s *openapi3.T) { delete(s.Components.Headers, "XRequestID") },
		"unbounded":          func(s *openapi3.T) { s.Components.Headers["XRequestID"].Value.Schema.Value.MaxLength = nil },
		"empty allowed":      func(s *openapi3.T) { s.Components.Headers["XRequestID"].Value.Schema.Value.MinLength = 0 },
		"no pattern":         func(s *openapi3.T) { s.Components.Headers["XRequestID"].Value.Schema.Value.Pattern = "" },
		"bad pattern":        func(s *openapi3.T) { s.Components.Headers["XRequestID"].Value.Schema.Value.Pattern = "^[a-" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := loadContract(t)
			breakIt(spec)
			if src, err := generate(spec); err == nil {
				t.Errorf("generated from a contract with %s:\n%s", name, src)
			}
		})
	}
}

// TestGeneratedIsCurrent: gen/correlation is what openapi.yaml generates
// now (make check-generated checks the same in CI).
func TestGeneratedIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := generate(loadContract(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "..", "gen", "correlation", "correlation.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("gen/correlation is stale; run make generate. It holds:\n%s\nopenapi.yaml generates:\n%s", got, want)
	}
	if !strings.HasPrefix(string(got), "// Code generated") {
		t.Error("the generated file does not say it is generated")
	}
}
