// Package contract checks every request against openapi.yaml before any
// handler runs, and turns each violation into a problem located by JSON
// Pointer, parameter or header.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// Validator validates requests against the contract. Build it once with New.
type Validator struct {
	router  routers.Router
	options *openapi3filter.Options
	json    []byte
	// bodyLimits maps an operationId to its maximum request body size;
	// operations not listed get defaultBodyLimit.
	bodyLimits       map[string]int64
	defaultBodyLimit int64
}

// methods are the HTTP methods the contract may declare, in Allow order.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

// New loads the embedded openapi.yaml and compiles its router.
// defaultBodyLimit applies to every operation not in bodyLimits
// (operationId to bytes). It returns an error when the contract is invalid.
func New(defaultBodyLimit int64, bodyLimits map[string]int64) (*Validator, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load contract: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("contract is invalid: %w", err)
	}
	specJSON, err := spec.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode contract as JSON: %w", err)
	}
	// Match paths whatever host the server is reached on.
	spec.Servers = nil
	router, err := legacy.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("build contract router: %w", err)
	}
	return &Validator{
		router: router,
		json:   specJSON,
		options: &openapi3filter.Options{
			MultiError: true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				// A map built once: WithStringFormatValidator would make
				// a new one for every value validated.
				openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
					"uuid": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562),
				}),
			},
		},
		bodyLimits:       bodyLimits,
		defaultBodyLimit: defaultBodyLimit,
	}, nil
}

// JSON returns the contract as JSON. Callers must not modify it.
func (v *Validator) JSON() []byte { return v.json }

// Middleware answers requests that break the contract with a problem and
// passes the rest to next: unknown route 404, wrong method 405 with Allow,
// body over the operation's limit 413, wrong content type 415, malformed
// JSON 400, anything else that violates the contract 422 listing every
// violation. onProblem renders the problem.
func (v *Validator) Middleware(onProblem func(http.ResponseWriter, *http.Request, *problem.Problem)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := v.check(r); p != nil {
				onProblem(w, r, p)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// check validates r, replacing r.Body with a size-limited reader. It returns
// nil when r keeps the contract.
func (v *Validator) check(r *http.Request) *problem.Problem {
	route, pathParams, err := v.router.FindRoute(r)
	if err != nil {
		return v.routeProblem(r)
	}
	op := route.Operation
	if op.RequestBody != nil {
		limit := v.defaultBodyLimit
		if l, ok := v.bodyLimits[op.OperationID]; ok {
			limit = l
		}
		if r.ContentLength > limit {
			return tooLarge(limit)
		}
		if p := checkContentType(r, op.RequestBody.Value); p != nil {
			return p
		}
		if p := readBody(r, limit); p != nil {
			return p
		}
	}
	err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: pathParams,
		Route:      route,
		Options:    v.options,
	})
	if err == nil {
		return nil
	}
	return Problem(err)
}

// readBody reads r's body, up to limit bytes (chunked or not), and puts it
// back for the validator and the handler. The body must be one well-formed
// JSON value: decoders that stop after the first value would accept
// trailing garbage.
func readBody(r *http.Request, limit int64) *problem.Problem {
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation when the length is declared
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	r.Body.Close()
	data := buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(tooBig.Limit)
	case err != nil:
		p := problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body could not be read")
		p.Cause = err
		return p
	case len(data) > 0 && !json.Valid(data):
		return problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body is not well-formed JSON")
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	return nil
}

func tooLarge(limit int64) *problem.Problem {
	return problem.New(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
		fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
}

// routeProblem explains why no operation matched r: 405 with Allow when the
// path has other methods (the router reports some of those as not found),
// 404 otherwise.
func (v *Validator) routeProblem(r *http.Request) *problem.Problem {
	if allowed := v.allowed(r); len(allowed) > 0 {
		allow := strings.Join(allowed, ", ")
		return problem.New(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)).
			WithHeader("Allow", allow)
	}
	return problem.New(http.StatusNotFound, problem.TypeNotFound,
		fmt.Sprintf("no operation at %s", r.URL.Path))
}

// allowed lists the methods the contract declares for r's path.
func (v *Validator) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, _, err := v.router.FindRoute(probe); err == nil {
			allow = append(allow, m)
		}
	}
	return allow
}

// checkContentType answers 415 unless r's media type is one body declares.
func checkContentType(r *http.Request, body *openapi3.RequestBody) *problem.Problem {
	got := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(got)
	if err == nil && body.Content.Get(mt) != nil {
		return nil
	}
	declared := make([]string, 0, len(body.Content))
	for mt := range body.Content {
		declared = append(declared, mt)
	}
	slices.Sort(declared)
	detail := fmt.Sprintf("Content-Type %q is not supported; use %s", got, strings.Join(declared, " or "))
	if got == "" {
		detail = "Content-Type is missing; use " + strings.Join(declared, " or ")
	}
	p := problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia, detail)
	p.Errors = []api.FieldError{problem.Header("Content-Type", detail)}
	return p.WithHeader("Accept", strings.Join(declared, ", "))
}
