package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"

	"github.com/valhalla-platform/valhalla/internal/problem"
)

//go:embed templates
var templates embed.FS

// page is a page rendered once, at New.
type page struct {
	body []byte
	etag string
}

// problemView is what problem.html shows of one type.
type problemView struct {
	problem.Doc
	ExampleJSON string
}

// renderProblems renders the index and one page per problem.Types entry.
func renderProblems() (page, map[string]page, error) {
	tmpl, err := template.ParseFS(templates, "templates/*.html")
	if err != nil {
		return page{}, nil, fmt.Errorf("pages: parse templates: %w", err)
	}
	render := func(name string, data any) (page, error) {
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
			return page{}, fmt.Errorf("pages: render %s: %w", name, err)
		}
		sum := sha256.Sum256(buf.Bytes())
		return page{body: buf.Bytes(), etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}, nil
	}
	index, err := render("problems.html", problem.Types)
	if err != nil {
		return page{}, nil, err
	}
	byName := map[string]page{}
	for _, d := range problem.Types {
		example, err := json.MarshalIndent(d.Example(), "", "  ")
		if err != nil {
			return page{}, nil, fmt.Errorf("pages: example of %s: %w", d.Name, err)
		}
		p, err := render("problem.html", problemView{Doc: d, ExampleJSON: string(example)})
		if err != nil {
			return page{}, nil, err
		}
		byName[d.Name] = p
	}
	return index, byName, nil
}

// Page is a rendered HTML page with the headers every page carries. It is
// the strict server's response for the problem type pages.
type Page struct {
	p    *Pages
	page page
}

// ProblemType returns the page of the problem type name, and whether there
// is one.
func (p *Pages) ProblemType(name string) (Page, bool) {
	pg, ok := p.problems[name]
	return Page{p: p, page: pg}, ok
}

// ProblemTypes returns the page listing every problem type.
func (p *Pages) ProblemTypes() Page { return Page{p: p, page: p.problemIndex} }

// Write sends the page with its security headers and ETag.
func (pg Page) Write(w http.ResponseWriter) error {
	h := w.Header()
	pg.p.SetHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", pg.page.etag)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(pg.page.body)
	return err
}
