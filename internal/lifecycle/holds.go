package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// Errors about legal holds; test with errors.Is.
var (
	// ErrHoldExists means a hold (active or released) already has the name.
	ErrHoldExists = errors.New("a legal hold with this name exists (names are never reused)")
	// ErrHoldNotFound means no active hold has the name.
	ErrHoldNotFound = errors.New("no active legal hold has this name")
	// ErrInvalidHold means a hold's name, reason or criteria are not valid.
	ErrInvalidHold = errors.New("legal hold is not valid")
)

// Hold is a legal hold: entries matching every set criterion are kept
// through retention while it is active (ReleasedAt nil).
type Hold struct {
	Name, Reason     string
	Category, UserID *string
	// Since is inclusive, Until exclusive.
	Since, Until *time.Time
	CreatedAt    time.Time
	ReleasedAt   *time.Time
}

// Holds manages legal holds.
type Holds struct {
	q *db.Queries
}

// NewHolds returns the holds over pool.
func NewHolds(pool *pgxpool.Pool) *Holds { return &Holds{q: db.New(pool)} }

var holdName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Create creates an active hold. It returns ErrInvalidHold or ErrHoldExists
// (wrapped), or a database error.
func (h *Holds) Create(ctx context.Context, hold Hold) error {
	switch {
	case !holdName.MatchString(hold.Name):
		return fmt.Errorf("%w: name %q: want 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit", ErrInvalidHold, hold.Name)
	case hold.Reason == "" || len(hold.Reason) > 1000:
		return fmt.Errorf("%w: a reason of 1-1000 characters is required", ErrInvalidHold)
	case hold.Category != nil && (*hold.Category == "" || len(*hold.Category) > 64):
		return fmt.Errorf("%w: category must be 1-64 characters", ErrInvalidHold)
	case hold.UserID != nil && (*hold.UserID == "" || len(*hold.UserID) > 128):
		return fmt.Errorf("%w: user id must be 1-128 characters", ErrInvalidHold)
	case hold.Since != nil && hold.Until != nil && !hold.Until.After(*hold.Since):
		return fmt.Errorf("%w: until must be after since", ErrInvalidHold)
	}
	n, err := h.q.CreateHold(ctx, db.CreateHoldParams{
		Name: hold.Name, Reason: hold.Reason, Category: hold.Category, UserID: hold.UserID, Since: hold.Since, Until: hold.Until,
	})
	if err != nil {
		return fmt.Errorf("create hold %q: %w", hold.Name, err)
	}
	if n == 0 {
		return fmt.Errorf("create hold %q: %w", hold.Name, ErrHoldExists)
	}
	return nil
}

// List returns every hold, active and released, oldest first.
func (h *Holds) List(ctx context.Context) ([]Hold, error) {
	rows, err := h.q.ListHolds(ctx)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	out := make([]Hold, len(rows))
	for i, r := range rows {
		out[i] = Hold{
			Name: r.Name, Reason: r.Reason, Category: r.Category, UserID: r.UserID,
			Since: r.Since, Until: r.Until, CreatedAt: r.CreatedAt, ReleasedAt: r.ReleasedAt,
		}
	}
	return out, nil
}

// Release releases the active hold name: its entries follow the retention
// again from the next run. It returns ErrHoldNotFound (wrapped).
func (h *Holds) Release(ctx context.Context, name string) error {
	n, err := h.q.ReleaseHold(ctx, name)
	if err != nil {
		return fmt.Errorf("release hold %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("release hold %q: %w", name, ErrHoldNotFound)
	}
	return nil
}
