package problem

import (
	"net/http"
	"strings"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// Doc documents one problem type. Its page at TypeBase+Name is generated
// from it; the contract's /problems/{name} lists the same names.
type Doc struct {
	// Name is the type's last path segment, e.g. validation-failed.
	Name string
	// Status is the HTTP status the type is answered with.
	Status int
	// Meaning says what happened, for the person reading the page.
	Meaning string
	// Action says what the client should do about it.
	Action string
	// Headers names response headers that come with the type and why.
	Headers []string
	// Detail and Errors are the example body's detail and field errors.
	Detail string
	Errors []api.FieldError
}

// URI is the type's value in a problem's type member.
func (d Doc) URI() string { return TypeBase + d.Name }

// Title is the type's title member: the status's reason phrase.
func (d Doc) Title() string { return http.StatusText(d.Status) }

// Example is a body of this type as the server sends it, for the page.
func (d Doc) Example() api.ProblemDetails {
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	body := api.ProblemDetails{
		Type:          d.URI(),
		Title:         d.Title(),
		Status:        d.Status,
		Detail:        d.Detail,
		Instance:      "/system/logs",
		CorrelationId: "checkout-7f3a",
		TraceId:       &trace,
	}
	if len(d.Errors) > 0 {
		errs := d.Errors
		body.Errors = &errs
	}
	return body
}

// Types documents every problem type Valhalla answers with, in status order.
// A type constant without an entry here fails this package's tests.
var Types = []Doc{
	{
		Name:    "malformed-request",
		Status:  http.StatusBadRequest,
		Meaning: "The request could not be read: its body is not well-formed JSON, or a parameter could not be parsed at all.",
		Action:  "Fix the request's syntax before sending it again; the same request fails the same way. Nothing was changed.",
		Detail:  "request body is not well-formed JSON",
	},
	{
		Name:    "unauthorized",
		Status:  http.StatusUnauthorized,
		Meaning: "The operation needs a bearer token, and the request carried none, or one that is malformed, unknown or revoked.",
		Action:  "Send Authorization: Bearer <token> with a valid token. If it was revoked, ask an operator for a new one (valhalla tokens create).",
		Headers: []string{`WWW-Authenticate: the bearer challenge (RFC 6750); error="invalid_token" when a token was sent but not accepted.`},
		Detail:  "the bearer token is not valid: it is malformed, unknown or revoked",
	},
	{
		Name:    "forbidden",
		Status:  http.StatusForbidden,
		Meaning: "The token is valid but lacks the scope the operation needs (logs:read to read, logs:write to write). The detail names the scope.",
		Action:  "Use a token that holds the scope named in the detail and in WWW-Authenticate; retrying with the same token fails again.",
		Headers: []string{`WWW-Authenticate: error="insufficient_scope" and the scope the operation needs.`},
		Detail:  `the token "ingest" lacks the scope logs:read that this operation needs`,
	},
	{
		Name:    "not-found",
		Status:  http.StatusNotFound,
		Meaning: "Nothing is at this URL: no log entry has the requested id, or no operation exists at the path.",
		Action:  "Check the id or the path (the contract at /openapi.yaml lists every operation). Retrying will not make it appear.",
		Detail:  "no log entry has this id",
	},
	{
		Name:    "method-not-allowed",
		Status:  http.StatusMethodNotAllowed,
		Meaning: "The path exists but does not take this HTTP method.",
		Action:  "Use one of the methods the Allow header lists.",
		Headers: []string{"Allow: the methods the path takes."},
		Detail:  "method DELETE is not allowed on /system/logs; allowed: GET, POST",
	},
	{
		Name:    "payload-too-large",
		Status:  http.StatusRequestEntityTooLarge,
		Meaning: "The request body is larger than the operation accepts: 1 MiB for one entry, 16 MiB for a batch. Nothing was stored.",
		Action:  "Send less: split a batch into smaller ones, or shorten the entry's message and context.",
		Detail:  "request body exceeds the limit of 1048576 bytes",
	},
	{
		Name:    "unsupported-media-type",
		Status:  http.StatusUnsupportedMediaType,
		Meaning: "The request body's Content-Type is missing or is not one the operation accepts.",
		Action:  "Send the body with a Content-Type the Accept header of the response lists (application/json).",
		Headers: []string{"Accept: the media types the operation takes."},
		Detail:  `Content-Type "text/plain" is not supported; use application/json`,
		Errors:  []api.FieldError{Header("Content-Type", `Content-Type "text/plain" is not supported; use application/json`)},
	},
	{
		Name:    "validation-failed",
		Status:  http.StatusUnprocessableEntity,
		Meaning: "The request is well-formed but breaks the contract. errors lists every violation, each located by a JSON Pointer into the body, a parameter name or a header name. Nothing was changed.",
		Action:  "Correct each listed field and send the request again; unchanged, it fails the same way.",
		Detail:  "the request has 2 invalid fields",
		Errors: []api.FieldError{
			Pointer("/level", "value is not one of the allowed values [DEBUG INFO WARNING ERROR CRITICAL]"),
			Parameter("limit", "number must be at most 500"),
		},
	},
	{
		Name:    "internal-error",
		Status:  http.StatusInternalServerError,
		Meaning: "Something unexpected failed on the server. The cause is logged with the request's correlation id; it is never shown to clients.",
		Action:  "Quote the correlation_id (and trace_id) when reporting it. A write sent with an Idempotency-Key can be retried safely.",
		Detail:  "an unexpected error occurred; quote the correlation_id when reporting it",
	},
	{
		Name:    "service-unavailable",
		Status:  http.StatusServiceUnavailable,
		Meaning: "The server cannot serve the request now: its database is unreachable, it already holds as many request bodies or live streams as it can, it is shutting down, or (from the health probes) a check failed.",
		Action:  "Retry after the seconds in Retry-After, with backoff. Retry a write with the same Idempotency-Key, so it is stored once.",
		Headers: []string{"Retry-After: seconds to wait before retrying."},
		Detail:  "the database is unavailable; retry later",
	},
	{
		Name:    "rate-limited",
		Status:  http.StatusTooManyRequests,
		Meaning: "The caller (its token or, without a valid token, its address) went over a rate or concurrency limit of this server: requests per second, entries per second or requests in flight.",
		Action:  "Wait the seconds in Retry-After before the next request, and keep under the quota the RateLimit-Policy header names. Limits are per server; an operator can raise a token's with valhalla tokens create --rate.",
		Headers: []string{"Retry-After: seconds to wait.", "RateLimit-Policy: the quota and its window.", "RateLimit: what is left of it."},
		Detail:  "this client is over its limit of requests per second on this server; retry after the given delay",
	},
	{
		Name:    "headers-too-large",
		Status:  http.StatusRequestHeaderFieldsTooLarge,
		Meaning: "The request line and header fields are larger than the server accepts (--max-header-bytes).",
		Action:  "Send fewer or shorter headers (cookies and long tokens are the usual cause); the connection is closed after this answer.",
		Detail:  "the request line and headers exceed the limit of 65536 bytes",
	},
	{
		Name:    "read-timeout",
		Status:  http.StatusServiceUnavailable,
		Meaning: "A read (a listing, a count, a feed page) ran longer than the server allows reads (--db-read-timeout) and was cancelled, so that it cannot hold the database from other clients.",
		Action:  "Narrow the read: a since/until window, a category, correlation_id, user_id or trace_id filter, a smaller total_limit or no include_total; or retry later.",
		Headers: []string{"Retry-After: seconds to wait before retrying."},
		Detail:  "the read ran out of time on the server; narrow it (a since/until window, a category, correlation_id, user_id or trace_id filter, a smaller total_limit or no include_total) or retry later",
	},
}

// Lookup returns the documentation of the problem type uri (a value of a
// problem's type member), and whether it is one of Types.
func Lookup(uri string) (Doc, bool) {
	name, ok := strings.CutPrefix(uri, TypeBase)
	if !ok {
		return Doc{}, false
	}
	for _, d := range Types {
		if d.Name == name {
			return d, true
		}
	}
	return Doc{}, false
}
