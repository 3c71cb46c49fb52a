// Package pages serves what Valhalla shows people rather than programs: the
// API reference at /docs/ (Swagger UI over the embedded contract), the
// log viewer at /ui/, and a page per problem type (rendered from
// problem.Types) that a problem's type resolves to. Their files are embedded (built by scripts/assets.sh
// and committed), served with an ETag that is a hash of their content, and
// every page and asset carries the same security headers: a
// Content-Security-Policy without inline script, nosniff and no referrer.
package pages

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/valhalla-platform/valhalla/internal/observe"
)

//go:embed assets
var assets embed.FS

// Options configure the pages.
type Options struct {
	// FrameAncestors are the origins (scheme://host[:port]) allowed to
	// embed the pages in a frame, such as an admin portal. None by default.
	FrameAncestors []string
	// NotFound answers a path under a page's prefix that names no file.
	NotFound http.Handler
}

// Pages serves the embedded pages. Build it with New.
type Pages struct {
	files    map[string]*file // by path under assets, e.g. "docs/index.html"
	csp      string
	notFound http.Handler
	// problemIndex and problems are the problem type pages, by name.
	problemIndex page
	problems     map[string]page
}

// file is one embedded asset and what its responses carry.
type file struct {
	body        []byte
	etag        string
	contentType string
	// gzipped is body compressed, made on first request by a client that
	// accepts it; compressible says whether it is worth doing.
	compressible bool
	gzipOnce     sync.Once
	gzipped      []byte
}

// New indexes the embedded files. It returns an error when an origin in
// opts.FrameAncestors is not a bare http(s) origin.
func New(opts Options) (*Pages, error) {
	ancestors := "'none'"
	if len(opts.FrameAncestors) > 0 {
		for _, o := range opts.FrameAncestors {
			if err := checkOrigin(o); err != nil {
				return nil, err
			}
		}
		ancestors = strings.Join(opts.FrameAncestors, " ")
	}
	p := &Pages{
		files: map[string]*file{},
		// Swagger UI's stylesheet draws its icons from data: URIs.
		csp: "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; " +
			"form-action 'self'; frame-ancestors " + ancestors,
		notFound: opts.NotFound,
	}
	var err error
	if p.problemIndex, p.problems, err = renderProblems(); err != nil {
		return nil, err
	}
	if p.notFound == nil {
		p.notFound = http.NotFoundHandler()
	}
	err = fs.WalkDir(assets, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case "", ".txt":
			ct = "text/plain; charset=utf-8"
		}
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		p.files[strings.TrimPrefix(name, "assets/")] = &file{
			body:         body,
			etag:         `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
			contentType:  ct,
			compressible: len(body) > 1024 && !strings.HasPrefix(ct, "image/png"),
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pages: index embedded files: %w", err)
	}
	return p, nil
}

// ParseFrameAncestors splits a list of origins separated by commas or
// spaces, as --ui-frame-ancestors takes it. It returns an error naming the
// first entry that is not a bare http(s) origin.
func ParseFrameAncestors(list string) ([]string, error) {
	var out []string
	for _, o := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		if err := checkOrigin(o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// checkOrigin accepts a bare origin such as https://portal.example.com:8443.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		strings.ContainsAny(o, " ;,'\"") {
		return fmt.Errorf("frame ancestor %q: want an origin such as https://portal.example.com", o)
	}
	return nil
}

// SetHeaders sets the security headers every page and asset carries.
func (p *Pages) SetHeaders(h http.Header) {
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if p.csp == "" || strings.HasSuffix(p.csp, "frame-ancestors 'none'") {
		h.Set("X-Frame-Options", "DENY") // for browsers without CSP level 2
	}
}

// Dir serves the embedded directory dir at prefix (which ends in "/"),
// index.html for the prefix itself. route names the page in metrics and
// logs.
func (p *Pages) Dir(prefix, dir, route string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.SetRoute(r.Context(), route, prefix)
		p.SetHeaders(w.Header())
		name := strings.TrimPrefix(r.URL.Path, prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := p.files[path.Join(dir, path.Clean("/" + name)[1:])]
		if !ok || strings.HasSuffix(name, "/") {
			p.notFound.ServeHTTP(w, r)
			return
		}
		p.serve(w, r, f)
	})
}

// serve answers with f, or 304 when the client holds its ETag. A client
// revalidates every time (no-cache): names carry no hash, so a stale copy
// would outlive an upgrade.
func (p *Pages) serve(w http.ResponseWriter, r *http.Request, f *file) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	body, etag := f.body, f.etag
	if f.compressible {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gzip(), strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (f *file) gzip() []byte {
	f.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(f.body) // a bytes.Buffer takes every write
		_ = zw.Close()
		f.gzipped = buf.Bytes()
	})
	return f.gzipped
}

// acceptsGzip reports whether r's Accept-Encoding admits gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") &&
			strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
