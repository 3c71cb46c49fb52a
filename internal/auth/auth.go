// Package auth authenticates callers by bearer token and authorizes them by
// scope. Tokens read vhl_<public id>_<secret>: the public id finds the token,
// only the SHA-256 of the secret is stored, and it is compared in constant
// time. The contract validator calls Store.Check for every operation the
// contract secures, with the scopes the contract names for it; Check
// records the caller on the request context for the handlers (the actor of
// every stored entry).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/observe"
)

// Prefix starts every token, so a leaked one is easy to recognise and scan for.
const Prefix = "vhl_"

// Errors the package returns, wrapped with context; test with errors.Is
// (or errors.As for *ScopeError). An outage is database.ErrUnavailable.
var (
	// ErrMissingToken means the request carries no bearer token.
	ErrMissingToken = errors.New("no bearer token")
	// ErrInvalidToken means the bearer token is malformed, unknown or revoked.
	ErrInvalidToken = errors.New("bearer token is not valid")
	// ErrNameTaken means a token (perhaps revoked) already has the name.
	ErrNameTaken = errors.New("a token with this name exists")
	// ErrInvalidName means a token name breaks the naming rule.
	ErrInvalidName = errors.New("token names are 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit")
	// ErrInvalidLimits means a token's limit is not a positive number.
	ErrInvalidLimits = errors.New("a token's limits must be positive")
	// ErrNotFound means no unrevoked token has the name.
	ErrNotFound = errors.New("no active token has this name")
)

// ScopeError means a valid token lacks scopes the operation needs.
type ScopeError struct {
	// Token is the name of the token.
	Token string
	// Missing lists the scopes the token lacks.
	Missing []string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("token %q lacks scope %s", e.Token, strings.Join(e.Missing, ", "))
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9]{8,32}$`)
	secretRE = regexp.MustCompile(`^[A-Za-z0-9]{22,128}$`)
)

// Mint returns a new random token: vhl_, a 12-character public id, _, and a
// 26-character secret (130 random bits).
func Mint() string {
	return Prefix + strings.ToLower(rand.Text()[:12]) + "_" + rand.Text()
}

// parse splits a token into its public id and secret. It returns
// ErrInvalidToken when token does not have the shape of one.
func parse(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, Prefix)
	if ok {
		id, secret, ok = strings.Cut(rest, "_")
	}
	if !ok || !idRE.MatchString(id) || !secretRE.MatchString(secret) {
		return "", "", ErrInvalidToken
	}
	return id, secret, nil
}

// ValidToken reports whether token has the shape of a token:
// vhl_<8-32 letters or digits>_<22-128 letters or digits>.
func ValidToken(token string) bool {
	_, _, err := parse(token)
	return err == nil
}

func hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// unknownToken stands for a public id no active token has: its hash is of
// a random secret that is never stored.
var unknownToken = cachedToken{secretHash: hash(rand.Text()), unknown: true}

// Token is a stored token, without its secret.
type Token struct {
	Name      string
	PublicID  string
	Scopes    []string
	Limits    Limits
	CreatedAt time.Time
	// RevokedAt is nil while the token is active.
	RevokedAt *time.Time
}

// Principal is an authenticated caller.
type Principal struct {
	// Name is the token's name, stored as the actor of what it writes.
	Name   string
	Scopes []string
	// Limits overrides the server's default limits for this token.
	Limits Limits
}

// Limits are a token's overrides of the server's rate and concurrency
// limits; a nil field keeps the server's default.
type Limits struct {
	// Requests is the requests per second the token may make.
	Requests *float64
	// Entries is the log entries per second the token may write.
	Entries *float64
	// InFlight is how many requests the token may have in flight.
	InFlight *int32
	// Read is the bytes of listing and feed pages per second the token
	// may read.
	Read *float64
}

// Store keeps the tokens in the api_tokens table.
type Store struct {
	pool  *pgxpool.Pool
	q     *db.Queries
	cache cache
	// watchRetry is the pause before Watch reconnects.
	watchRetry time.Duration
}

// NewStore returns a store over pool. The schema must be migrated.
// Authenticate reads the database on every call until Watch runs.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: db.New(pool), watchRetry: watchRetry}
}

// Create stores a new token with name and scopes and returns it; this is
// the only time the token is known. It returns ErrInvalidName, ErrNameTaken
// or database.ErrUnavailable (wrapped).
func (s *Store) Create(ctx context.Context, name string, scopes []string) (string, error) {
	return s.CreateLimited(ctx, name, scopes, Limits{})
}

// CreateLimited is Create for a token with its own limits. It also
// returns ErrInvalidLimits when one is not positive.
func (s *Store) CreateLimited(ctx context.Context, name string, scopes []string, limits Limits) (string, error) {
	if !nameRE.MatchString(name) {
		return "", ErrInvalidName
	}
	if (limits.Requests != nil && !(*limits.Requests > 0)) || (limits.Entries != nil && !(*limits.Entries > 0)) ||
		(limits.InFlight != nil && *limits.InFlight <= 0) || (limits.Read != nil && !(*limits.Read > 0)) {
		return "", ErrInvalidLimits
	}
	token := Mint()
	id, secret, _ := parse(token)
	_, err := s.q.CreateToken(ctx, db.CreateTokenParams{Name: name, PublicID: id, SecretHash: hash(secret), Scopes: scopes,
		RateLimit: limits.Requests, EntryRateLimit: limits.Entries, MaxInFlight: limits.InFlight, ReadRateLimit: limits.Read})
	if err != nil {
		return "", fmt.Errorf("create token %s: %w", name, translate(err))
	}
	return token, nil
}

// CreateFirst stores token under name with scopes when no token exists at
// all, revoked ones included, and reports whether it did. It returns
// ErrInvalidName, ErrInvalidToken (token has not the shape of one) or
// database.ErrUnavailable (wrapped).
func (s *Store) CreateFirst(ctx context.Context, name, token string, scopes []string) (bool, error) {
	if !nameRE.MatchString(name) {
		return false, ErrInvalidName
	}
	id, secret, err := parse(token)
	if err != nil {
		return false, err
	}
	n, err := s.q.CreateFirstToken(ctx, db.CreateFirstTokenParams{Name: name, PublicID: id, SecretHash: hash(secret), Scopes: scopes})
	if err != nil {
		return false, fmt.Errorf("create first token: %w", translate(err))
	}
	return n == 1, nil
}

// List returns every token, revoked ones included, oldest first. It returns
// database.ErrUnavailable (wrapped) when the database is down.
func (s *Store) List(ctx context.Context) ([]Token, error) {
	rows, err := s.q.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", translate(err))
	}
	out := make([]Token, len(rows))
	for i, r := range rows {
		out[i] = Token{Name: r.Name, PublicID: r.PublicID, Scopes: r.Scopes, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt,
			Limits: Limits{Requests: r.RateLimit, Entries: r.EntryRateLimit, InFlight: r.MaxInFlight, Read: r.ReadRateLimit}}
	}
	return out, nil
}

// Revoke revokes the named token. Every server refuses it within
// RevocationDelay of Revoke returning (see Watch), most within
// milliseconds. It returns ErrNotFound or database.ErrUnavailable
// (wrapped).
func (s *Store) Revoke(ctx context.Context, name string) error {
	n, err := s.q.RevokeToken(ctx, name)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, translate(err))
	}
	if n == 0 {
		return fmt.Errorf("revoke token %s: %w", name, ErrNotFound)
	}
	return nil
}

// Authenticate returns the caller that the Authorization header value
// authorization ("Bearer <token>") names, from memory when Watch runs and
// has seen the token in the last RevocationDelay, else from the database.
// It returns ErrMissingToken, ErrInvalidToken or database.ErrUnavailable
// (wrapped): a server that cannot reach the database accepts no token.
func (s *Store) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	if authorization == "" {
		return Principal{}, ErrMissingToken
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, fmt.Errorf("authorization scheme is not Bearer: %w", ErrInvalidToken)
	}
	id, secret, err := parse(strings.TrimSpace(token))
	if err != nil {
		return Principal{}, err
	}
	now := time.Now()
	known, ok := s.cache.get(id, now)
	switch {
	case ok:
	case s.cache.isUnknown(id, now):
		known = unknownToken
	default:
		l := s.cache.begin()
		row, err := s.q.GetActiveToken(ctx, id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			s.cache.putUnknown(l, id)
			known = unknownToken
		case err != nil:
			return Principal{}, fmt.Errorf("look up token: %w", translate(err))
		default:
			known = cachedToken{secretHash: row.SecretHash, principal: Principal{Name: row.Name, Scopes: row.Scopes,
				Limits: Limits{Requests: row.RateLimit, Entries: row.EntryRateLimit, InFlight: row.MaxInFlight, Read: row.ReadRateLimit}}}
			s.cache.put(l, id, known)
		}
	}
	// An unknown id is compared against a hash no secret has, so that it
	// takes as long to refuse as a known id with a wrong secret.
	if subtle.ConstantTimeCompare(hash(secret), known.secretHash) != 1 || known.unknown {
		return Principal{}, ErrInvalidToken
	}
	return known.principal, nil
}

// Check is the contract validator's authentication hook
// (openapi3filter.AuthenticationFunc). It authenticates the request once,
// records the caller on the context prepared by Middleware, and returns a
// *ScopeError when the caller lacks one of in.Scopes.
func (s *Store) Check(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme == nil || in.SecurityScheme.Type != "http" || !strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
		return fmt.Errorf("security scheme %q is not supported", in.SecuritySchemeName)
	}
	sl, ok := ctx.Value(slotKey{}).(*slot)
	if !ok {
		return errors.New("auth.Middleware is not installed")
	}
	if sl.principal == nil {
		p, err := s.Authenticate(ctx, in.RequestValidationInput.Request.Header.Get("Authorization"))
		if err != nil {
			return err
		}
		sl.principal = &p
		observe.SetTokenName(ctx, p.Name) // the access log names the token, never shows it
	}
	var missing []string
	for _, scope := range in.Scopes {
		if !slices.Contains(sl.principal.Scopes, scope) {
			missing = append(missing, scope)
		}
	}
	if len(missing) > 0 {
		return &ScopeError{Token: sl.principal.Name, Missing: missing}
	}
	return nil
}

// slot holds the caller of one request, once Check has authenticated it.
type slot struct{ principal *Principal }

type slotKey struct{}

// Middleware prepares the request context for Check, which cannot change
// the context itself. It must run before the contract validator.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), slotKey{}, &slot{})))
	})
}

// FromContext returns the caller that Check authenticated for this request;
// ok is false on an operation the contract leaves open.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	sl, _ := ctx.Value(slotKey{}).(*slot)
	if sl == nil || sl.principal == nil {
		return Principal{}, false
	}
	return *sl.principal, true
}

// tokenErrors maps the SQLSTATE (and constraint) of a refused write to the
// package's sentinels.
var tokenErrors = map[string]error{
	"23505/api_tokens_pkey": ErrNameTaken, // unique_violation of the name
}

// translate maps database errors to the package's sentinels
// (ErrInvalidToken for no row, database.ErrUnavailable, ErrNameTaken),
// keeping the original in the chain for logs.
func translate(err error) error {
	return database.Translate(err, ErrInvalidToken, tokenErrors)
}
