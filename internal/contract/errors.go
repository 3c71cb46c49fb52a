package contract

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// Problem maps an error from openapi3filter.ValidateRequest to a problem: 400
// when the body is not well-formed, otherwise 422 listing every violation,
// each located by JSON Pointer (body), parameter or header.
func Problem(err error) *problem.Problem {
	var errs []api.FieldError
	malformed := false
	for _, e := range flatten(err) {
		var reqErr *openapi3filter.RequestError
		if !errors.As(e, &reqErr) {
			errs = append(errs, api.FieldError{Detail: "request does not match the contract"})
			continue
		}
		switch {
		case reqErr.Parameter != nil:
			errs = append(errs, parameterErrors(reqErr)...)
		case reqErr.RequestBody != nil:
			var parseErr *openapi3filter.ParseError
			if errors.As(reqErr.Err, &parseErr) {
				malformed = true
				continue
			}
			errs = append(errs, bodyErrors(reqErr)...)
		default:
			errs = append(errs, api.FieldError{Detail: reqErr.Error()})
		}
	}
	if malformed {
		p := problem.New(http.StatusBadRequest, problem.TypeMalformed, "request body is not well-formed JSON")
		p.Cause = err
		return p
	}
	p := problem.Invalid(summary(len(errs)), errs...)
	p.Cause = err
	return p
}

func summary(n int) string {
	if n == 1 {
		return "the request has 1 invalid field"
	}
	return "the request has " + strconv.Itoa(n) + " invalid fields"
}

// flatten unpacks nested openapi3.MultiErrors into their leaves.
func flatten(err error) []error {
	if multi, ok := err.(openapi3.MultiError); ok {
		var out []error
		for _, e := range multi {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// parameterErrors locates each violation inside a parameter by its name.
func parameterErrors(reqErr *openapi3filter.RequestError) []api.FieldError {
	locate := problem.Parameter
	if reqErr.Parameter.In == openapi3.ParameterInHeader {
		locate = problem.Header
	}
	name := reqErr.Parameter.Name
	if reqErr.Err == nil {
		return []api.FieldError{locate(name, reqErr.Reason)}
	}
	var out []api.FieldError
	for _, e := range flatten(reqErr.Err) {
		out = append(out, locate(name, detailOf(e)))
	}
	return out
}

// bodyErrors locates each violation inside the body by JSON Pointer.
func bodyErrors(reqErr *openapi3filter.RequestError) []api.FieldError {
	if errors.Is(reqErr.Err, openapi3filter.ErrInvalidRequired) {
		return []api.FieldError{problem.Pointer("", "a request body is required")}
	}
	if reqErr.Err == nil {
		return []api.FieldError{problem.Pointer("", reqErr.Reason)}
	}
	var out []api.FieldError
	for _, e := range flatten(reqErr.Err) {
		var schemaErr *openapi3.SchemaError
		if errors.As(e, &schemaErr) {
			out = append(out, problem.Pointer(pointer(schemaPath(schemaErr)), reason(schemaErr)))
			continue
		}
		out = append(out, problem.Pointer("", detailOf(e)))
	}
	return out
}

// schemaPath is the path to the value a schema error is about. For an
// unknown property kin-openapi points at the object; point at the property.
func schemaPath(err *openapi3.SchemaError) []string {
	path := err.JSONPointer()
	quoted, ok := strings.CutPrefix(err.Reason, "property ")
	if !ok {
		return path
	}
	quoted, ok = strings.CutSuffix(quoted, " is unsupported")
	if !ok {
		return path
	}
	name, uerr := strconv.Unquote(quoted)
	if uerr != nil {
		return path
	}
	return append(path, name)
}

// reason is a schema error's reason without the regular expression that
// kin-openapi appends to format errors.
func reason(err *openapi3.SchemaError) string {
	// A property declared as allOf [$ref] (to carry a default beside the
	// ref) fails as a whole; its first inner violation says why.
	var inner *openapi3.SchemaError
	if err.SchemaField == "allOf" && errors.As(err.Origin, &inner) {
		return reason(inner)
	}
	if strings.HasPrefix(err.Reason, "string doesn't match the format") {
		if i := strings.Index(err.Reason, " ("); i > 0 {
			return err.Reason[:i]
		}
	}
	return err.Reason
}

// detailOf is the client-facing reason of one violation.
func detailOf(err error) string {
	var schemaErr *openapi3.SchemaError
	if errors.As(err, &schemaErr) {
		return reason(schemaErr)
	}
	var parseErr *openapi3filter.ParseError
	if errors.As(err, &parseErr) {
		if parseErr.Reason != "" {
			return parseErr.Reason
		}
		return "value cannot be parsed"
	}
	return err.Error()
}

// pointerEscaper escapes a JSON Pointer segment (RFC 6901); it is safe for
// concurrent use, and building it once keeps its tables out of every request.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointer builds an RFC 6901 JSON Pointer from path segments.
func pointer(segments []string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(s))
	}
	return b.String()
}
