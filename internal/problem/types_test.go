package problem_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// typeConstants reads the values of the Type* constants declared in this
// package's problem.go, so a new one cannot go undocumented.
func typeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "problem.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Type") || name.Name == "TypeBase" {
					continue
				}
				bin, ok := vs.Values[i].(*ast.BinaryExpr)
				if !ok {
					t.Fatalf("%s is not typePrefix + a name", name.Name)
				}
				lit := bin.Y.(*ast.BasicLit)
				v, _ := strconv.Unquote(lit.Value)
				consts[name.Name] = problem.TypeBase + v
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("found no Type constants in problem.go")
	}
	return consts
}

func TestEveryTypeIsDocumented(t *testing.T) {
	t.Parallel()
	for name, uri := range typeConstants(t) {
		doc, ok := problem.Lookup(uri)
		if !ok {
			t.Errorf("%s (%s) has no entry in problem.Types, so no page", name, uri)
			continue
		}
		if doc.Meaning == "" || doc.Action == "" || doc.Detail == "" || http.StatusText(doc.Status) == "" || doc.Status < 400 {
			t.Errorf("%s: meaning, action, detail and an error status must all be set: %+v", uri, doc)
		}
	}
	seen := map[string]bool{}
	for _, d := range problem.Types {
		if seen[d.Name] {
			t.Errorf("%s is documented twice", d.Name)
		}
		seen[d.Name] = true
		if !strings.HasPrefix(d.URI(), "/problems/") || d.Example().Type != d.URI() || d.Example().Status != d.Status {
			t.Errorf("%s: URI %q and example %+v disagree", d.Name, d.URI(), d.Example())
		}
	}
	if _, ok := problem.Lookup("urn:valhalla:problem:not-found"); ok {
		t.Error("the old URN form still resolves")
	}
}

// TestContractListsEveryType checks that the contract's /problems/{name}
// enum is exactly the documented types, and that their examples are valid
// ProblemDetails.
func TestContractListsEveryType(t *testing.T) {
	t.Parallel()
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	op := spec.Paths.Find("/problems/{name}").Get
	var enum []string
	for _, p := range op.Parameters {
		if p.Value.Name == "name" {
			for _, v := range p.Value.Schema.Value.Enum {
				enum = append(enum, v.(string))
			}
		}
	}
	var names []string
	for _, d := range problem.Types {
		names = append(names, d.Name)
	}
	slices.Sort(enum)
	slices.Sort(names)
	if !slices.Equal(enum, names) {
		t.Errorf("contract's /problems/{name} enum %q, want problem.Types' names %q", enum, names)
	}
	schema := spec.Components.Schemas["ProblemDetails"].Value
	for _, d := range problem.Types {
		ex := d.Example()
		v := map[string]any{"type": ex.Type, "title": ex.Title, "status": float64(ex.Status), "detail": ex.Detail,
			"instance": ex.Instance, "correlation_id": ex.CorrelationId, "trace_id": *ex.TraceId}
		if err := schema.VisitJSON(v); err != nil {
			t.Errorf("%s: example is not a ProblemDetails: %v", d.Name, err)
		}
	}
}
