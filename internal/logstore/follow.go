package logstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// Matches reports whether e passes every filter of f, as the listing's and
// the feed's queries apply them, for filtering entries already in memory
// (the live tail fans one read of the feed out to many filtered streams).
func (f Filter) Matches(e db.SystemLog) bool {
	if levels := f.levels(); levels != nil && !slices.Contains(levels, e.Level) {
		return false
	}
	switch {
	case f.Category != nil && e.Category != *f.Category,
		f.CorrelationID != nil && e.CorrelationID != *f.CorrelationID,
		f.UserID != nil && (e.UserID == nil || *e.UserID != *f.UserID),
		f.TraceID != nil && (e.TraceID == nil || *e.TraceID != *f.TraceID),
		f.Since != nil && e.Timestamp.Before(*f.Since),
		f.Until != nil && !e.Timestamp.Before(*f.Until):
		return false
	}
	return true
}

// TreeSize returns the number of sealed entries, which is the last seq.
// It reads on the read pool and returns ErrReadTimeout or ErrUnavailable
// (wrapped) on failure.
func (s *Store) TreeSize(ctx context.Context) (int64, error) {
	release, err := s.reading(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	n, err := s.read.TreeSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("read tree size: %w", translateRead(err))
	}
	return n, nil
}

// IsEmpty reports whether f filters nothing out.
func (f Filter) IsEmpty() bool {
	return len(f.Levels) == 0 && f.MinLevel == "" && f.Category == nil && f.CorrelationID == nil &&
		f.UserID == nil && f.TraceID == nil && f.Since == nil && f.Until == nil
}
