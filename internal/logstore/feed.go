package logstore

import (
	"context"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/gen/db"
)

// Seal is an entry's place in the ledger.
type Seal struct {
	Seq      int64
	LeafHash []byte
}

// Seals returns the seal of each of rows that is sealed, by id; an
// unsealed one is absent from the map. An entry's seal is found through
// its ledger_tx: the block that sealed its write transaction, unnested once
// for all its entries, in PostgreSQL. It reads on the read pool. It returns ErrReadTimeout or
// ErrUnavailable (wrapped) on failure.
func (s *Store) Seals(ctx context.Context, rows []db.SystemLog) (map[uuid.UUID]Seal, error) {
	var txs []int64
	seen := map[int64]bool{}
	for _, r := range rows {
		if r.LedgerTx != nil && !seen[*r.LedgerTx] {
			seen[*r.LedgerTx] = true
			txs = append(txs, *r.LedgerTx)
		}
	}
	if len(txs) == 0 {
		return nil, nil
	}
	release, err := s.reading(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	sealed, err := s.read.SealsOf(ctx, db.SealsOfParams{Txs: txs, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("read seals: %w", translateRead(err))
	}
	out := make(map[uuid.UUID]Seal, len(sealed))
	for _, r := range sealed {
		out[r.LogID] = Seal{Seq: r.Seq, LeafHash: r.LeafHash}
	}
	return out, nil
}

// FeedScan bounds how many sealed entries one feed page reads, whatever
// its filters match, so a page costs the same however rare the matches.
const FeedScan = 10_000

// feedWindow is the fewest leaves a feed query reads at once.
const feedWindow = 256

// SealedEntry is an entry with its seal.
type SealedEntry struct {
	db.SystemLog
	Seal
}

// MissingEntry is a leaf of the tree whose entry is no longer stored.
type MissingEntry struct {
	Seal
	ID uuid.UUID
}

// FeedPage is one page of the feed.
type FeedPage struct {
	// Items are the matching entries, seq ascending.
	Items []SealedEntry
	// Missing are the leaves in the scanned range whose entry is gone.
	Missing []MissingEntry
	// NextAfter is the last seq the page scanned (after, when it scanned
	// none): pass it as after for the next page.
	NextAfter int64
}

// Feed returns up to limit sealed entries with seq > after that match f,
// seq ascending, reading at most FeedScan leaves: keyset on seq, so a deep
// position costs what the first does. Sealing assigns seqs in commit order
// and makes each pass visible at once, so a reader that follows NextAfter
// sees every entry exactly once. A client decides how often and how much
// it reads, so it reads on the read pool, under its statement timeout. It
// returns ErrReadTimeout or ErrUnavailable (wrapped).
func (s *Store) Feed(ctx context.Context, f Filter, after int64, limit int32) (FeedPage, error) {
	scan := min(int64(FeedScan), math.MaxInt64-after) // after + scan must not overflow
	page, size, err := s.feed(ctx, f, after, scan, limit, true)
	if err != nil {
		return FeedPage{}, err
	}
	if len(page.Items)+len(page.Missing) < int(limit) {
		// The whole window was scanned: skip past it, up to the tree's end.
		page.NextAfter = max(page.NextAfter, min(after+scan, size))
	}
	return page, nil
}

// FeedRange returns the sealed entries with seq in (after, through] that
// match f, seq ascending, with the range's leaves whose entry is gone, and
// NextAfter through. through must be at most a tree size the caller has
// read (a checkpoint's), so that every leaf of the range is sealed, and at
// most FeedScan past after. Unlike Feed's pages, the ranges of a span are
// known before any is read, so an export reads several at once. It returns
// ErrReadTimeout or ErrUnavailable (wrapped).
func (s *Store) FeedRange(ctx context.Context, f Filter, after, through int64) (FeedPage, error) {
	if through <= after {
		return FeedPage{Items: []SealedEntry{}, NextAfter: after}, nil
	}
	scan := min(through-after, int64(FeedScan))
	page, _, err := s.feed(ctx, f, after, scan, int32(scan), false)
	if err != nil {
		return FeedPage{}, err
	}
	page.NextAfter = after + scan
	return page, nil
}

// feed reads up to limit rows of the leaves in (after, after + scan] that
// match f, and with withSize the tree size in the same snapshot.
func (s *Store) feed(ctx context.Context, f Filter, after, scan int64, limit int32, withSize bool) (FeedPage, int64, error) {
	release, err := s.reading(ctx)
	if err != nil {
		return FeedPage{}, 0, err
	}
	defer release()
	var size int64
	var rows []db.FeedRow
	err = pgx.BeginTxFunc(ctx, s.readDB, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The generic plan, made once per connection: a custom one is
		// planned for every page, across every partition the lookup may
		// reach, and took longer than the page's execution (6.6 ms
		// against 4.4 per 1000 entries over 35 partitions). The lookup is
		// pruned to its partition at run time either way. Without JIT:
		// the generic plan's estimate grows with the ledger, and past
		// jit_above_cost (at 10M entries) compiling it took 36 ms of a
		// page that runs in 1.
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL jit = off"); err != nil {
			return err
		}
		q := db.New(tx)
		// The size first: every leaf up to it is visible to the query
		// that follows (passes commit whole, in seq order), so a short
		// page has seen every match up to it.
		if withSize {
			var err error
			if size, err = q.TreeSize(ctx); err != nil {
				return fmt.Errorf("read tree size: %w", err)
			}
		}
		// Windows of the range, each twice the last, until the page is
		// full: the query looks up every leaf of its window before it
		// sorts, so a page whose filters match most leaves reads about
		// limit of them, not the whole scan.
		pos, end := after, after+scan
		window := max(int64(limit), feedWindow)
		for pos < end && len(rows) < int(limit) && (!withSize || pos < size) {
			w := min(window, end-pos)
			got, err := q.Feed(ctx, db.FeedParams{
				After:         pos,
				Scan:          w,
				Levels:        f.levels(),
				Category:      f.Category,
				CorrelationID: f.CorrelationID,
				UserID:        f.UserID,
				TraceID:       f.TraceID,
				Since:         f.Since,
				Until:         f.Until,
				RowLimit:      limit - int32(len(rows)),
			})
			if err != nil {
				return err
			}
			rows = append(rows, got...)
			pos += w
			window = min(2*window, int64(FeedScan))
		}
		return nil
	})
	if err != nil {
		return FeedPage{}, 0, fmt.Errorf("read feed: %w", translateRead(err))
	}
	page := FeedPage{Items: make([]SealedEntry, 0, len(rows)), NextAfter: after}
	for _, r := range rows {
		seal := Seal{Seq: r.Seq, LeafHash: r.LeafHash}
		page.NextAfter = r.Seq
		if r.ID == nil {
			page.Missing = append(page.Missing, MissingEntry{Seal: seal, ID: r.LogID})
			continue
		}
		page.Items = append(page.Items, SealedEntry{Seal: seal, SystemLog: db.SystemLog{
			ID: *r.ID, Timestamp: *r.Timestamp, Level: *r.Level, Category: *r.Category, Message: *r.Message,
			CorrelationID: *r.CorrelationID, UserID: r.UserID, Context: r.Context, TraceID: r.TraceID, Actor: *r.Actor,
		}})
	}
	return page, size, nil
}

// Unsealed returns up to limit entries stored in system_logs that are
// neither sealed nor waiting to be: written behind the API's back. It reads
// the whole table, on the read pool. It returns ErrReadTimeout or
// ErrUnavailable (wrapped).
func (s *Store) Unsealed(ctx context.Context, limit int32) ([]db.SystemLog, error) {
	release, err := s.reading(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.read.UnsealedLogs(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("read unsealed logs: %w", translateRead(err))
	}
	return rows, nil
}
