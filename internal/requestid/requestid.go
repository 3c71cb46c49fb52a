// Package requestid gives every request a correlation id: the caller's
// X-Request-ID when it keeps the contract's rule, a fresh UUIDv7 otherwise.
// The id travels on the request context and is echoed on every response.
//
// The header's name and the rule come from openapi.yaml (the XRequestID
// parameter and response header) through gen/correlation, which `make
// generate` writes: the middleware keeps exactly the ids the contract
// says it echoes.
package requestid

import (
	"context"
	"net/http"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/correlation"
)

// Header is the HTTP header that carries the correlation id.
const Header = correlation.Header

// MinLen and MaxLen bound, in characters, an incoming id that is kept.
const (
	MinLen = correlation.MinLen
	MaxLen = correlation.MaxLen
)

// keeps reports whether an id's characters keep the contract's pattern.
var keeps = matcher(correlation.Pattern)

// matcher returns a function reporting whether a string matches pattern.
// A pattern of the usual shape, ^[class]+$ or ^[class]*$, is checked rune by
// rune against its class (a table lookup for ASCII), far faster than the
// regular expression; any other goes through the regular expression. It panics
// when pattern does not compile (the generator compiled it first).
func matcher(pattern string) func(string) bool {
	re := regexp.MustCompile(pattern)
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return re.MatchString
	}
	parsed = parsed.Simplify()
	if parsed.Op != syntax.OpConcat || len(parsed.Sub) != 3 ||
		parsed.Sub[0].Op != syntax.OpBeginText || parsed.Sub[2].Op != syntax.OpEndText {
		return re.MatchString
	}
	repeat := parsed.Sub[1]
	if (repeat.Op != syntax.OpPlus && repeat.Op != syntax.OpStar) || repeat.Sub[0].Op != syntax.OpCharClass {
		return re.MatchString
	}
	ranges, emptyOK := repeat.Sub[0].Rune, repeat.Op == syntax.OpStar // pairs lo, hi
	var ascii [utf8.RuneSelf]bool                                     // the class, looked up for ASCII
	for c := range ascii {
		ascii[c] = inRanges(ranges, rune(c))
	}
	return func(s string) bool {
		if s == "" {
			return emptyOK
		}
		for i := 0; i < len(s); {
			if c := s[i]; c < utf8.RuneSelf {
				if !ascii[c] {
					return false
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if !inRanges(ranges, r) {
				return false
			}
			i += size
		}
		return true
	}
}

// inRanges reports whether r is in one of ranges, pairs of lowest and
// highest rune.
func inRanges(ranges []rune, r rune) bool {
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] <= r && r <= ranges[i+1] {
			return true
		}
	}
	return false
}

type contextKey struct{}

// Valid reports whether id keeps the contract's rule (MinLen–MaxLen
// characters matching its pattern), the only ids kept from callers.
func Valid(id string) bool {
	if len(id) > utf8.UTFMax*MaxLen { // too many characters, without counting them
		return false
	}
	n := utf8.RuneCountInString(id)
	return MinLen <= n && n <= MaxLen && keeps(id)
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
