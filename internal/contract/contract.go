// Package contract checks every request against openapi.yaml before any
// handler runs, and turns each violation into a problem located by JSON
// Pointer, parameter or header.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/observe"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// Validator validates requests against the contract. Build it once with New.
type Validator struct {
	router  routers.Router
	options *openapi3filter.Options
	// literalPaths are the contract's paths without parameters: a request
	// for one of them never belongs to a templated path.
	literalPaths map[string]bool
	json         []byte
	// bodyLimits maps an operationId to its maximum request body size;
	// operations not listed get defaultBodyLimit.
	bodyLimits       map[string]int64
	defaultBodyLimit int64
	// scopes maps an operationId to the scopes its x-required-scopes names.
	scopes map[string][]string
	// unsecured maps each secured operation to a copy without security
	// requirements: the caller is authenticated once, before the body is
	// read, and ValidateRequest must not call the hook (and copy the body
	// for it) a second time.
	unsecured map[*openapi3.Operation]*openapi3.Operation
	// budget bounds the request body bytes held at once, server-wide.
	budget *BodyBudget
	// largeBody and enterLarge: see WithLargeBodies.
	largeBody  int64
	enterLarge func(*http.Request) error
}

// Option configures a Validator.
type Option func(*Validator)

// WithBodyBudget has every request body count against budget while its
// request is served (see BodyBudget). Without it bodies are bounded only
// by their operation's limit.
func WithBodyBudget(budget *BodyBudget) Option {
	return func(v *Validator) { v.budget = budget }
}

// WithLargeBodies has enter called before the body of a request that
// declares more than threshold bytes (or no length) is read, once the
// caller is authenticated: it may wait, for a lane such bodies take in turn,
// and whatever it takes is the caller's to give back when the request has
// been served. An error it returns fails the request as it is.
func WithLargeBodies(threshold int64, enter func(*http.Request) error) Option {
	return func(v *Validator) { v.largeBody, v.enterLarge = threshold, enter }
}

// BodyBudget bounds the request body bytes that all requests together hold
// in memory: each request reserves what it has read, as it reads it, and
// gives it back when it has been served. A read that would go over the
// budget fails the request with a 503 and Retry-After instead, so memory
// is bounded by what was read and never by what a client declares. The
// last quarter of the budget is kept for small bodies (up to smallBody
// bytes), so that large batches cannot starve single writes.
type BodyBudget struct {
	limit int64
	used  atomic.Int64
}

// smallBody is the most a request may have read and still draw on the
// quarter of the budget kept for small bodies.
const smallBody = 64 << 10

// NewBodyBudget returns a budget of limit bytes.
func NewBodyBudget(limit int64) *BodyBudget { return &BodyBudget{limit: limit} }

// reserve takes n more bytes for a request that holds held already and
// reports whether it could.
func (b *BodyBudget) reserve(n, held int64) bool {
	if b == nil {
		return true
	}
	limit := b.limit - b.limit/4
	if held+n <= smallBody {
		limit = b.limit
	}
	if b.used.Add(n) > limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// release gives n bytes back.
func (b *BodyBudget) release(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// InUse returns the bytes reserved right now.
func (b *BodyBudget) InUse() int64 { return b.used.Load() }

// budgetRetryAfter is what a request refused for want of body budget is
// told to wait: bodies in flight are served within seconds.
const budgetRetryAfter = 1

// Extensions that carry the scopes: OpenAPI 3.0 keeps the scopes of a
// security requirement for OAuth 2 and OpenID Connect, and Valhalla's tokens
// are plain bearer tokens.
const (
	// schemeScopesExt on a security scheme maps each scope to its description.
	schemeScopesExt = "x-scopes"
	// requiredScopesExt on an operation lists the scopes a caller needs.
	requiredScopesExt = "x-required-scopes"
)

// methods are the HTTP methods the contract may declare, in Allow order.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

// New loads the embedded openapi.yaml and compiles its router.
// defaultBodyLimit applies to every operation not in bodyLimits
// (operationId to bytes). authenticate is called for every operation the
// contract secures, with the scopes its x-required-scopes names in
// AuthenticationInput.Scopes; the error it returns is what the caller gets
// (see Middleware). New returns an error when the contract is invalid, when
// a secured operation names no scope or one its scheme does not declare,
// or when authenticate is nil.
func New(defaultBodyLimit int64, bodyLimits map[string]int64, authenticate openapi3filter.AuthenticationFunc, opts ...Option) (*Validator, error) {
	if authenticate == nil {
		return nil, errors.New("contract: authenticate is nil")
	}
	spec, err := load()
	if err != nil {
		return nil, err
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
	literal := map[string]bool{}
	for path := range spec.Paths.Map() {
		if !strings.Contains(path, "{") {
			literal[path] = true
		}
	}
	scopes, _, err := requiredScopes(spec)
	if err != nil {
		return nil, fmt.Errorf("contract is invalid: %w", err)
	}
	unsecured := map[*openapi3.Operation]*openapi3.Operation{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			open := *op
			open.Security = &openapi3.SecurityRequirements{}
			unsecured[op] = &open
		}
	}
	v := &Validator{
		router:       router,
		literalPaths: literal,
		json:         specJSON,
		scopes:       scopes,
		unsecured:    unsecured,
		options: &openapi3filter.Options{
			MultiError: true,
			AuthenticationFunc: func(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
				in.Scopes = append(slices.Clone(in.Scopes), scopes[in.RequestValidationInput.Route.Operation.OperationID]...)
				return authenticate(ctx, in)
			},
			// Defaults are applied by the handlers; setting them here would
			// also turn an explicit null into the default instead of an error.
			SkipSettingDefaults: true,
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
	}
	for _, o := range opts {
		o(v)
	}
	return v, nil
}

// JSON returns the contract as JSON. Callers must not modify it.
func (v *Validator) JSON() []byte { return v.json }

// Scopes returns every scope the embedded contract declares, sorted. It
// returns an error when the contract is invalid.
func Scopes() ([]string, error) {
	spec, err := load()
	if err != nil {
		return nil, err
	}
	_, all, err := requiredScopes(spec)
	if err != nil {
		return nil, fmt.Errorf("contract is invalid: %w", err)
	}
	return all, nil
}

// load loads and validates the embedded openapi.yaml.
func load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load contract: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("contract is invalid: %w", err)
	}
	return spec, nil
}

// requiredScopes reads the scopes each secured operation needs from its
// x-required-scopes and checks them against the x-scopes its security
// schemes declare: a secured operation must name at least one scope, and
// only declared ones; an open one must name none.
func requiredScopes(spec *openapi3.T) (map[string][]string, []string, error) {
	declared := map[string]bool{}
	if spec.Components != nil {
		for name, ref := range spec.Components.SecuritySchemes {
			raw, _ := ref.Value.Extensions[schemeScopesExt].(map[string]any)
			if len(raw) == 0 {
				return nil, nil, fmt.Errorf("security scheme %s declares no %s", name, schemeScopesExt)
			}
			for scope := range raw {
				declared[scope] = true
			}
		}
	}
	byOp := map[string][]string{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			security := op.Security
			if security == nil {
				security = &spec.Security
			}
			raw, has := op.Extensions[requiredScopesExt]
			list, _ := raw.([]any)
			if len(*security) == 0 {
				if has {
					return nil, nil, fmt.Errorf("%s %s is open yet has %s", method, path, requiredScopesExt)
				}
				continue
			}
			if len(list) == 0 {
				return nil, nil, fmt.Errorf("%s %s is secured but names no scope in %s", method, path, requiredScopesExt)
			}
			for _, s := range list {
				scope, ok := s.(string)
				if !ok || !declared[scope] {
					return nil, nil, fmt.Errorf("%s %s needs scope %v, which no security scheme declares in %s", method, path, s, schemeScopesExt)
				}
				byOp[op.OperationID] = append(byOp[op.OperationID], scope)
			}
		}
	}
	all := make([]string, 0, len(declared))
	for scope := range declared {
		all = append(all, scope)
	}
	slices.Sort(all)
	return byOp, all, nil
}

// Middleware answers requests that break the contract and passes the rest
// to next. For an unknown route it is a 404, for a wrong method a 405 with
// Allow. On a secured operation the caller is authenticated next, before
// the request is read any further: the error the authenticate hook returned
// goes to onError as it is, and only it (an unauthenticated caller learns
// nothing about the request's other faults). Then a body over the
// operation's limit is a 413, a wrong content type a 415, malformed JSON a
// 400, and anything else that violates the contract a 422 listing every
// violation; these reach onError as a *problem.Problem. It notes the
// operation each request matched with observe.SetRoute, so metrics and logs
// name it without matching the route again.
func (v *Validator) Middleware(onError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var held int64 // body bytes reserved from the budget
			defer func() { v.budget.release(held) }()
			if err := v.check(r, &held); err != nil {
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// check validates r, replacing r.Body with the body it read, and adds the
// body bytes it reserved from the budget to *held. It returns nil when r
// keeps the contract.
func (v *Validator) check(r *http.Request, held *int64) error {
	route, pathParams, err := v.router.FindRoute(r)
	// The router lets /system/logs/{id} take GET /system/logs/batch; OpenAPI
	// matches the literal path first, and it has no GET.
	if err != nil || (v.literalPaths[r.URL.Path] && route.Path != r.URL.Path) {
		return v.routeProblem(r)
	}
	op := route.Operation
	observe.SetRoute(r.Context(), op.OperationID, route.Path)
	security := op.Security
	if security == nil {
		security = &route.Spec.Security
	}
	if len(*security) > 0 {
		// Only the headers: the hook runner would read the whole body.
		headersOnly := *r
		headersOnly.Body = http.NoBody
		err := openapi3filter.ValidateSecurityRequirements(r.Context(), &openapi3filter.RequestValidationInput{
			Request: &headersOnly, PathParams: pathParams, Route: route, Options: v.options,
		}, *security)
		if err != nil {
			return authError(err)
		}
	}
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
		if v.enterLarge != nil && (r.ContentLength < 0 || r.ContentLength > v.largeBody) {
			if err := v.enterLarge(r); err != nil {
				return err
			}
		}
		if p := readBody(r, limit, v.budget, held); p != nil {
			return p
		}
	}
	// Security was checked above: validate the rest against the operation
	// without its requirements, so that the hook runs once per request.
	if open, ok := v.unsecured[op]; ok {
		openRoute := *route
		openRoute.Operation = open
		route = &openRoute
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
	for _, e := range flatten(err) {
		var secErr *openapi3filter.SecurityRequirementsError
		if errors.As(e, &secErr) {
			return authError(secErr)
		}
	}
	return Problem(err)
}

// authError returns the authenticate hook's error inside err, from
// ValidateSecurityRequirements (the first requirement's, when there are
// several), or err itself.
func authError(err error) error {
	var secErr *openapi3filter.SecurityRequirementsError
	if errors.As(err, &secErr) && len(secErr.Errors) > 0 {
		return secErr.Errors[0]
	}
	return err
}

// readChunk is how much of a body is read at a time, and so the most a
// request reserves from the budget beyond what it has read.
const readChunk = 32 << 10

// readBody reads r's body, up to limit bytes (chunked or not), and puts it
// back for the validator and the handler. It reads as the bytes arrive,
// reserving each chunk from budget before keeping it (adding it to
// *held), so a declared Content-Length that is never sent costs nothing.
// The body must be one well-formed JSON value: decoders that stop after
// the first value would accept trailing garbage.
func readBody(r *http.Request, limit int64, budget *BodyBudget, held *int64) *problem.Problem {
	defer r.Body.Close()
	var buf bytes.Buffer
	chunk := make([]byte, readChunk)
	for {
		n, err := r.Body.Read(chunk[:min(int64(readChunk), limit+1-int64(buf.Len()))])
		if n > 0 {
			if !budget.reserve(int64(n), *held) {
				return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
					"the server holds as many request bodies as it can; retry later").
					WithHeader("Retry-After", strconv.Itoa(budgetRetryAfter))
			}
			*held += int64(n)
			buf.Write(chunk[:n])
		}
		if int64(buf.Len()) > limit {
			return tooLarge(limit)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p := problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body could not be read")
			p.Cause = err
			return p
		}
	}
	data := buf.Bytes()
	if len(data) > 0 && !json.Valid(data) {
		return problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body is not well-formed JSON")
	}
	// GetBody lets the validator and the handler each read the same bytes
	// rather than keep a copy.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r.Body, _ = r.GetBody()
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

// allowed lists the methods the contract declares for r's path. When a
// literal path and a templated one both match (/system/logs/batch and
// /system/logs/{id}), the path is the literal one, as OpenAPI matches paths.
func (v *Validator) allowed(r *http.Request) []string {
	type match struct{ method, path string }
	var matches []match
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if route, _, err := v.router.FindRoute(probe); err == nil {
			matches = append(matches, match{m, route.Path})
		}
	}
	if len(matches) == 0 {
		return nil
	}
	path := matches[0].path
	for _, m := range matches[1:] {
		if strings.Count(m.path, "{") < strings.Count(path, "{") {
			path = m.path
		}
	}
	var allow []string
	for _, m := range matches {
		if m.path == path {
			allow = append(allow, m.method)
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
