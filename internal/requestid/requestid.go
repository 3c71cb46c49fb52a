// Package requestid gives every request a correlation id: the caller's
// X-Request-ID when it is sane, a fresh UUIDv7 otherwise. The id travels on
// the request context and is echoed on every response.
package requestid

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Header is the HTTP header that carries the correlation id.
const Header = "X-Request-ID"

// MaxLen is the longest incoming id that is kept.
const MaxLen = 128

type contextKey struct{}

// Valid reports whether id is 1–MaxLen characters of [A-Za-z0-9._:-], the
// only ids kept from callers: safe in headers, log lines and URLs.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// New mints a fresh id: a time-ordered UUIDv7.
func New() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does; a v4
		// from the same source would fail too, so keep the process honest.
		panic("requestid: no randomness: " + err.Error())
	}
	return id.String()
}

// Sanitize returns incoming when it is Valid, and a fresh id otherwise.
func Sanitize(incoming string) string {
	if Valid(incoming) {
		return incoming
	}
	return New()
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the request's id, or "" outside a request.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(contextKey{}).(string)
	return id
}

// Middleware keeps or mints the request's id, puts it on the request context
// and sets it on the response header before anything else can answer, so
// errors, 404s and panics carry it too. It must run first.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := Sanitize(r.Header.Get(Header))
		r.Header.Set(Header, id)
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}
