// Package problem renders RFC 9457 problem details
// (application/problem+json). Every error response Valhalla sends goes
// through Write, so every one has the same shape and carries the request's
// correlation id and, next to it, its trace id.
package problem

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/requestid"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// TypeBase is the path of every problem type's page: a problem's type is
// TypeBase plus the type's name, a relative URI that resolves against the
// request's URI (RFC 9457 section 3.1.1) to a page this server serves.
const TypeBase = "/problems/"

// typePrefix is TypeBase; the constants below spell it once each.
const typePrefix = TypeBase

// Problem types, one per way a request can fail. Each has an entry in
// Types, which documents it and from which its page is generated.
const (
	TypeMalformed        = typePrefix + "malformed-request"
	TypeValidation       = typePrefix + "validation-failed"
	TypeNotFound         = typePrefix + "not-found"
	TypeUnauthorized     = typePrefix + "unauthorized"
	TypeForbidden        = typePrefix + "forbidden"
	TypeMethodNotAllowed = typePrefix + "method-not-allowed"
	TypeUnsupportedMedia = typePrefix + "unsupported-media-type"
	TypeTooLarge         = typePrefix + "payload-too-large"
	TypeRateLimited      = typePrefix + "rate-limited"
	TypeHeadersTooLarge  = typePrefix + "headers-too-large"
	TypeReadTimeout      = typePrefix + "read-timeout"
	TypeUnavailable      = typePrefix + "service-unavailable"
	TypeInternal         = typePrefix + "internal-error"
)

// Problem is an error that knows how it is shown to a client. Its fields are
// safe to send; Cause is not sent, only logged.
type Problem struct {
	Status int
	Type   string
	Title  string
	Detail string
	// Errors lists every violation, for invalid input.
	Errors []api.FieldError
	// Header holds extra response headers, such as Allow or Retry-After.
	Header http.Header
	// Cause is the underlying error, for logs only.
	Cause error
}

// New returns a problem of the given status and type, titled after the status.
func New(status int, typ, detail string) *Problem {
	return &Problem{Status: status, Type: typ, Title: http.StatusText(status), Detail: detail}
}

// Error implements error with the client-safe detail.
func (p *Problem) Error() string {
	return strconv.Itoa(p.Status) + " " + p.Title + ": " + p.Detail
}

// Unwrap returns the cause.
func (p *Problem) Unwrap() error { return p.Cause }

// WithHeader returns p with header key set to value.
func (p *Problem) WithHeader(key, value string) *Problem {
	if p.Header == nil {
		p.Header = http.Header{}
	}
	p.Header.Set(key, value)
	return p
}

// Body returns the problem+json body of p for request r.
func (p *Problem) Body(r *http.Request) api.ProblemDetails {
	body := api.ProblemDetails{
		Type:          p.Type,
		Title:         p.Title,
		Status:        p.Status,
		Detail:        p.Detail,
		Instance:      r.URL.Path,
		CorrelationId: requestid.FromContext(r.Context()),
		TraceId:       TraceID(r.Context()),
	}
	if len(p.Errors) > 0 {
		body.Errors = &p.Errors
	}
	return body
}

// TraceID returns the trace id of ctx's span for a problem's trace_id
// member, or nil when ctx has no trace.
func TraceID(ctx context.Context) *string {
	if id := tracing.TraceID(ctx); id != "" {
		return &id
	}
	return nil
}

// Write sends p as application/problem+json. It never fails the caller: a
// client that hung up is not an error worth reporting.
func Write(w http.ResponseWriter, r *http.Request, p *Problem) {
	h := w.Header()
	for k, vs := range p.Header {
		h[k] = vs
	}
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p.Body(r))
}

// Pointer returns a FieldError located by JSON Pointer into the body.
func Pointer(pointer, detail string) api.FieldError {
	return api.FieldError{Pointer: &pointer, Detail: detail}
}

// Parameter returns a FieldError located by query or path parameter name.
func Parameter(name, detail string) api.FieldError {
	return api.FieldError{Parameter: &name, Detail: detail}
}

// Header returns a FieldError located by request header name.
func Header(name, detail string) api.FieldError {
	return api.FieldError{Header: &name, Detail: detail}
}

// Invalid returns a 422 problem listing errs.
func Invalid(detail string, errs ...api.FieldError) *Problem {
	p := New(http.StatusUnprocessableEntity, TypeValidation, detail)
	p.Errors = errs
	return p
}
