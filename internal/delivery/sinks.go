// Package delivery pushes the sealed trail to sinks (docs/delivery.md):
// webhooks signed per Standard Webhooks and Splunk's HTTP Event Collector.
// Each sink has a cursor, the last seq its destination acknowledged; one
// server at a time (the holder of the sink's advisory lock) delivers it,
// in seq order and in batches, at least once and never skipping an entry.
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// The formats a sink delivers in.
const (
	FormatWebhook   = "webhook"
	FormatSplunkHEC = "splunk-hec"
)

// Formats lists the formats, as sinks create takes them.
var Formats = []string{FormatWebhook, FormatSplunkHEC}

var (
	// ErrNotFound means there is no sink of that name.
	ErrNotFound = errors.New("no such sink")
	// ErrExists means a sink of that name exists already.
	ErrExists = errors.New("a sink of that name exists")
	// ErrInvalid means a sink's settings are not acceptable.
	ErrInvalid = errors.New("invalid sink")
)

// Spec is what creating a sink takes.
type Spec struct {
	Name   string
	URL    string
	Format string
	// Secret signs webhooks (whsec_ and base64, generated when empty) or
	// is the Splunk HEC token (required).
	Secret string
	// Filter keeps only the entries it matches: Category and MinLevel.
	Filter logstore.Filter
}

// Sink is a stored sink and where its delivery stands.
type Sink struct {
	db.Sink
	// LagEntries is how many sealed entries follow the cursor; LagSeconds
	// how long ago the first of them was sealed.
	LagEntries int64
	LagSeconds float64
}

// Filter returns the entries the sink delivers.
func (s Sink) Filter() logstore.Filter { return filterOf(s.Sink) }

func filterOf(s db.Sink) logstore.Filter {
	f := logstore.Filter{Category: s.FilterCategory}
	if s.FilterMinLevel != nil {
		f.MinLevel = *s.FilterMinLevel
	}
	return f
}

// Store keeps the sinks in PostgreSQL.
type Store struct {
	q *db.Queries
}

// NewStore returns the sinks stored in pool's database.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{q: db.New(pool)} }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Create stores a new sink that delivers from the trail's first entry. It
// returns the secret in use (generated for a webhook without one), or
// ErrInvalid or ErrExists (wrapped).
func (s *Store) Create(ctx context.Context, spec Spec) (string, error) {
	if err := validate(&spec); err != nil {
		return "", err
	}
	var minLevel *string
	if spec.Filter.MinLevel != "" {
		minLevel = &spec.Filter.MinLevel
	}
	_, err := s.q.CreateSink(ctx, db.CreateSinkParams{
		Name: spec.Name, Url: spec.URL, Format: spec.Format, Secret: spec.Secret,
		FilterCategory: spec.Filter.Category, FilterMinLevel: minLevel,
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return "", fmt.Errorf("create sink %q: %w", spec.Name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create sink: %w", err)
	}
	return spec.Secret, nil
}

// validate checks spec and fills in a webhook's missing secret.
func validate(spec *Spec) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(spec.Name) {
		return invalid("name %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", spec.Name)
	}
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalid("url %q: want an http or https URL without credentials or fragment", spec.URL)
	}
	if !slices.Contains(Formats, spec.Format) {
		return invalid("format %q: want %s", spec.Format, strings.Join(Formats, " or "))
	}
	f := spec.Filter
	if len(f.Levels) > 0 || f.CorrelationID != nil || f.UserID != nil || f.TraceID != nil || f.Since != nil || f.Until != nil {
		return invalid("a sink filters by category and min_level only")
	}
	if f.MinLevel != "" && !slices.Contains(logstore.Levels, f.MinLevel) {
		return invalid("min_level %q: want one of %s", f.MinLevel, strings.Join(logstore.Levels, ", "))
	}
	if f.Category != nil && *f.Category == "" {
		return invalid("category is empty")
	}
	switch {
	case spec.Format == FormatWebhook && spec.Secret == "":
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		spec.Secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	case spec.Format == FormatWebhook:
		raw, ok := strings.CutPrefix(spec.Secret, "whsec_")
		key, err := base64.StdEncoding.DecodeString(raw)
		if !ok || err != nil || len(key) < 24 || len(key) > 64 {
			return invalid("webhook secret: want whsec_ and 24 to 64 bytes in base64 (omit it to have one generated)")
		}
		if _, err := standardwebhooks.NewWebhook(spec.Secret); err != nil {
			return invalid("webhook secret: %v", err)
		}
	case spec.Secret == "":
		return invalid("a splunk-hec sink needs its HEC token as --secret")
	case strings.ContainsFunc(spec.Secret, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return invalid("the HEC token has spaces or control characters")
	}
	return nil
}

// List returns every sink by name with its lag. It returns the database's
// error (wrapped).
func (s *Store) List(ctx context.Context) ([]Sink, error) {
	rows, err := s.q.ListSinks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sinks: %w", err)
	}
	out := make([]Sink, len(rows))
	for i, r := range rows {
		out[i] = Sink{
			Sink: db.Sink{
				ID: r.ID, Name: r.Name, Url: r.Url, Format: r.Format, Secret: r.Secret,
				FilterCategory: r.FilterCategory, FilterMinLevel: r.FilterMinLevel, Paused: r.Paused,
				Cursor: r.Cursor, Generation: r.Generation, PendingTo: r.PendingTo, Failures: r.Failures,
				LastError: r.LastError, LastErrorAt: r.LastErrorAt, LastDeliveredAt: r.LastDeliveredAt, CreatedAt: r.CreatedAt,
			},
			LagEntries: max(r.TreeSize-r.Cursor, 0),
			LagSeconds: r.LagSeconds,
		}
	}
	return out, nil
}

// SetPaused pauses (or resumes) delivery to the named sink; its deliverer
// stops within a poll. It returns ErrNotFound (wrapped).
func (s *Store) SetPaused(ctx context.Context, name string, paused bool) error {
	n, err := s.q.SetSinkPaused(ctx, db.SetSinkPausedParams{Name: name, Paused: paused})
	return affected(n, err, name)
}

// Delete removes the named sink. It returns ErrNotFound (wrapped).
func (s *Store) Delete(ctx context.Context, name string) error {
	n, err := s.q.DeleteSink(ctx, name)
	return affected(n, err, name)
}

// Replay makes the named sink deliver again from seq fromSeq (at least 1),
// in new batches (new webhook-ids). It returns ErrInvalid or ErrNotFound
// (wrapped).
func (s *Store) Replay(ctx context.Context, name string, fromSeq int64) error {
	if fromSeq < 1 {
		return fmt.Errorf("%w: --from-seq must be at least 1", ErrInvalid)
	}
	n, err := s.q.ReplaySink(ctx, db.ReplaySinkParams{Name: name, Cursor: fromSeq - 1})
	return affected(n, err, name)
}

func affected(n int64, err error, name string) error {
	if err != nil {
		return fmt.Errorf("sink %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("sink %q: %w", name, ErrNotFound)
	}
	return nil
}

// ErrFailing means a sink's destination keeps refusing or failing.
var ErrFailing = errors.New("sinks are failing")

// HealthCheck returns a check that fails while an active sink has failed
// at least failures times in a row, naming the sinks (not their URLs or
// errors, which sinks list shows).
func (s *Store) HealthCheck(failures int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		list, err := s.List(ctx)
		if err != nil {
			return err
		}
		var failing []string
		for _, k := range list {
			if !k.Paused && int(k.Failures) >= failures {
				since := ""
				if k.LastDeliveredAt != nil {
					since = ", last delivery " + k.LastDeliveredAt.UTC().Format(time.RFC3339)
				}
				failing = append(failing, fmt.Sprintf("%s (%d failed attempts in a row, %d entries behind%s)", k.Name, k.Failures, k.LagEntries, since))
			}
		}
		if len(failing) > 0 {
			return failingError{strings.Join(failing, "; ")}
		}
		return nil
	}
}

// failingError is ErrFailing with a summary safe to show to anyone.
type failingError struct{ summary string }

func (e failingError) Error() string { return ErrFailing.Error() + ": " + e.summary }

// Safe is the summary a health check may show.
func (e failingError) Safe() string { return "failing sinks: " + e.summary }

func (e failingError) Unwrap() error { return ErrFailing }

// isNoRows reports whether err is pgx's no-rows error.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
