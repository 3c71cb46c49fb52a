// Package logstore is the system log: it stores and reads audit entries in
// PostgreSQL through the sqlc queries in gen/db, and turns database errors
// into the few sentinels the HTTP layer maps to statuses.
package logstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/ratelimit"
)

// Errors the store returns, wrapped with context; test with errors.Is.
var (
	// ErrNotFound means no entry has the requested id.
	ErrNotFound = errors.New("log entry not found")
	// ErrInvalidCursor means a cursor did not come from this server.
	ErrInvalidCursor = errors.New("cursor is not valid")
	// ErrInvalidText means the database refused a value, such as a NUL character.
	ErrInvalidText = errors.New("value cannot be stored")
	// ErrReadTimeout means a read ran past its statement timeout: it
	// should be narrowed.
	ErrReadTimeout = errors.New("the read ran out of time")
	// ErrKeyReused means an idempotency key was used before with another request.
	ErrKeyReused = errors.New("idempotency key was used with another request")
)

// keyTTL is how long an idempotency key is remembered.
const keyTTL = 24 * time.Hour

// Key makes a write idempotent: the same Key (Actor and Name) with the same
// Request within keyTTL returns what the first write stored.
type Key struct {
	// Actor scopes the key to one caller.
	Actor string
	// Name is the client's Idempotency-Key.
	Name string
	// Request identifies the request, e.g. a hash of its operation and body.
	Request []byte
}

// Levels lists the severities from lowest to highest.
var Levels = []string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}

// Entry is a log entry to store; the store assigns its id and timestamp.
type Entry struct {
	Level         string
	Category      string
	Message       string
	CorrelationID string
	UserID        *string
	// Context is a JSON object; nil stores {}.
	Context json.RawMessage
	// TraceID is the W3C trace id (32 hex digits) of the request that
	// writes the entry; nil stores none.
	TraceID *string
	// Actor names the token that writes the entry.
	Actor string
}

// Store reads and writes system_logs.
type Store struct {
	pool *pgxpool.Pool
	q    *db.Queries
	// readDB runs the reads clients drive (Get, List and its count, the
	// feed, seals, the tree size, unsealed entries): pool unless
	// WithReadPool gave them a pool of their own; read is its queries.
	readDB  *pgxpool.Pool
	read    *db.Queries
	grouper *grouper
	// share, when set, divides readDB's connections among the clients
	// that client names (see WithReadShare).
	share  *ratelimit.Share
	client func(context.Context) string
	// batches, when set, holds a slot for each batch write in the
	// database (see WithBatchWriters).
	batches chan struct{}
}

// Option configures a Store.
type Option func(*Store)

// WithBatchWriters lets at most n batch writes (InsertBatch) run in the
// database at once; the others wait their turn before they begin. Batches
// are the heaviest writes: the database's CPU goes to as many COPYs as
// there are connections, and the sequencer, one connection among them,
// got too small a share of it to keep up (docs/ledger.md, "Seal lag under
// batches"). A handful of COPYs keeps the database as busy as sixteen.
func WithBatchWriters(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.batches = make(chan struct{}, n)
		}
	}
}

// WithGroupObserver has observe called with the number of single writes
// each group commit stores (see Insert), for metrics.
func WithGroupObserver(observe func(n int)) Option {
	return func(s *Store) { s.grouper.observe = observe }
}

// WithReadPool runs reads on a pool of their own, so that expensive ones
// (counts, filters that match little) cannot take the connections writes
// and the readiness check need; give it fewer connections than the main
// pool and a tighter statement_timeout. A read that runs past it returns
// ErrReadTimeout.
func WithReadPool(pool *pgxpool.Pool) Option {
	return func(s *Store) { s.readDB = pool }
}

// WithReadShare has every read take a slot of share, for the client that
// client names from the read's context, before it asks for a connection:
// give share as many slots as the read pool has connections, so that one
// client's expensive reads (counts, scans) queue behind each other while
// another client's find a connection.
func WithReadShare(share *ratelimit.Share, client func(context.Context) string) Option {
	return func(s *Store) { s.share, s.client = share, client }
}

// reading waits for a slot of the read share for ctx's client (see
// WithReadShare). The caller must call release once its reads are done,
// and must not wait for another slot before then.
func (s *Store) reading(ctx context.Context) (release func(), err error) {
	if s.share == nil {
		return func() {}, nil
	}
	release, err = s.share.Acquire(ctx, s.client(ctx))
	if err != nil {
		return nil, fmt.Errorf("wait for a read connection: %w", err)
	}
	return release, nil
}

// New returns a store over pool. The schema must be migrated.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	q := db.New(pool)
	s := &Store{pool: pool, q: q, readDB: pool, grouper: &grouper{q: q}}
	for _, o := range opts {
		o(s)
	}
	s.read = db.New(s.readDB)
	return s
}

// row assigns e its id (a UUIDv7) and timestamp (now, at the database's
// microsecond precision).
func row(e Entry, now time.Time) (db.CopyLogsParams, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return db.CopyLogsParams{}, fmt.Errorf("mint id: %w", err)
	}
	ctx := e.Context
	if len(bytes.TrimSpace(ctx)) == 0 {
		ctx = json.RawMessage("{}")
	}
	return db.CopyLogsParams{
		ID:            id,
		Timestamp:     now,
		Level:         e.Level,
		Category:      e.Category,
		Message:       e.Message,
		CorrelationID: e.CorrelationID,
		UserID:        e.UserID,
		Context:       ctx,
		TraceID:       e.TraceID,
		Actor:         e.Actor,
	}, nil
}

// leafHash returns the leaf hash the ledger will seal for r once stored
// (ledger.WriteLeafHash), or nil when only the stored row can tell it.
func leafHash(r db.CopyLogsParams) []byte {
	h, ok := ledger.WriteLeafHash(ledger.Entry{
		ID: r.ID, Timestamp: r.Timestamp, Level: r.Level, Category: r.Category, Message: r.Message,
		CorrelationID: r.CorrelationID, UserID: r.UserID, TraceID: r.TraceID, Actor: r.Actor, Context: r.Context,
	})
	if !ok {
		return nil
	}
	return h[:]
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Insert stores e and returns it as stored, once it is committed.
// Concurrent Inserts are committed together (see grouper), each still
// with its own id and timestamp, taken when Insert is called.
// It returns database.ErrUnavailable or ErrInvalidText (wrapped) on failure.
func (s *Store) Insert(ctx context.Context, e Entry) (db.SystemLog, error) {
	p, err := row(e, now())
	if err != nil {
		return db.SystemLog{}, err
	}
	tx, err := s.grouper.write(ctx, p)
	if err != nil {
		return db.SystemLog{}, err
	}
	p.LedgerTx = &tx
	return db.SystemLog(p), nil
}

// copyEntries stores entries with one COPY, queues them for sealing (the
// caller's transaction makes the two one), and returns them as stored, in
// input order.
func copyEntries(ctx context.Context, q *db.Queries, entries []Entry) ([]db.SystemLog, error) {
	t := now()
	rows := make([]db.CopyLogsParams, len(entries))
	for i, e := range entries {
		p, err := row(e, t)
		if err != nil {
			return nil, err
		}
		rows[i] = p
	}
	ids := make([]uuid.UUID, len(rows))
	stamps := make([]time.Time, len(rows))
	leaves := make([][]byte, len(rows))
	for i, r := range rows {
		ids[i], stamps[i], leaves[i] = r.ID, r.Timestamp, leafHash(r)
	}
	tx, err := q.QueueLogs(ctx, db.QueueLogsParams{Ids: ids, Timestamps: stamps, LeafHashes: leaves})
	if err != nil {
		return nil, fmt.Errorf("queue %d logs for sealing: %w", len(ids), translate(err))
	}
	out := make([]db.SystemLog, len(rows))
	for i := range rows {
		rows[i].LedgerTx = &tx
		out[i] = db.SystemLog(rows[i])
	}
	n, err := q.CopyLogs(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("copy %d logs: %w", len(rows), translate(err))
	}
	if n != int64(len(rows)) {
		return nil, fmt.Errorf("copy logs: stored %d of %d rows", n, len(rows))
	}
	return out, nil
}

// InsertBatch stores every entry or, on any error, none (the COPY and the
// entries' place in the ledger's queue are one transaction), and returns
// them as stored, in input order. With a key, it stores them under key or returns what an earlier
// write under the same key stored, with replayed true. The key is claimed in
// the write's transaction: a concurrent request with the same key waits for
// it and then replays it, and a write that fails leaves the key free. A key
// older than keyTTL is forgotten first. It returns ErrKeyReused when the key
// was used with another request, or database.ErrUnavailable or
// ErrInvalidText (wrapped).
func (s *Store) InsertBatch(ctx context.Context, key *Key, entries []Entry) (stored []db.SystemLog, replayed bool, err error) {
	if s.batches != nil {
		select {
		case s.batches <- struct{}{}:
			defer func() { <-s.batches }()
		case <-ctx.Done():
			return nil, false, fmt.Errorf("wait for a batch writer: %w", ctx.Err())
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("begin write: %w", translate(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	q := s.q.WithTx(tx)
	if key == nil {
		if stored, err = copyEntries(ctx, q, entries); err != nil {
			return nil, false, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, false, fmt.Errorf("commit write: %w", translate(err))
		}
		return stored, false, nil
	}
	t := time.Now()
	if err := q.DeleteExpiredKey(ctx, db.DeleteExpiredKeyParams{Actor: key.Actor, Key: key.Name, Before: t.Add(-keyTTL)}); err != nil {
		return nil, false, fmt.Errorf("expire idempotency key: %w", translate(err))
	}
	claimed, err := q.ClaimKey(ctx, db.ClaimKeyParams{Actor: key.Actor, Key: key.Name, RequestHash: key.Request, CreatedAt: t})
	if err != nil {
		return nil, false, fmt.Errorf("claim idempotency key: %w", translate(err))
	}
	if claimed == 0 {
		stored, err := replay(ctx, q, *key)
		if err != nil {
			return nil, false, err
		}
		return stored, true, nil
	}
	stored, err = copyEntries(ctx, q, entries)
	if err != nil {
		return nil, false, err
	}
	ids := make([]uuid.UUID, len(stored))
	for i, r := range stored {
		ids[i] = r.ID
	}
	if err := q.SetKeyLogs(ctx, db.SetKeyLogsParams{Actor: key.Actor, Key: key.Name, LogIds: ids}); err != nil {
		return nil, false, fmt.Errorf("record idempotency key: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("commit write: %w", translate(err))
	}
	return stored, false, nil
}

// replay returns the entries the write under key stored, in their order.
func replay(ctx context.Context, q *db.Queries, key Key) ([]db.SystemLog, error) {
	prev, err := q.GetKey(ctx, db.GetKeyParams{Actor: key.Actor, Key: key.Name})
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", translate(err))
	}
	if !bytes.Equal(prev.RequestHash, key.Request) {
		return nil, ErrKeyReused
	}
	// The entries were stored after the key was claimed; the margin
	// covers clocks that disagree.
	rows, err := q.GetLogsByIDs(ctx, db.GetLogsByIDsParams{Ids: prev.LogIds, Since: prev.CreatedAt.Add(-time.Hour)})
	if err != nil {
		return nil, fmt.Errorf("replay logs: %w", translate(err))
	}
	byID := make(map[uuid.UUID]db.SystemLog, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	out := make([]db.SystemLog, len(prev.LogIds))
	for i, id := range prev.LogIds {
		r, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("replay logs: entry %s of idempotency key is missing", id)
		}
		out[i] = r
	}
	return out, nil
}

// ExpireKeys forgets every idempotency key older than keyTTL and returns how
// many it forgot, or database.ErrUnavailable (wrapped).
func (s *Store) ExpireKeys(ctx context.Context) (int64, error) {
	n, err := s.q.DeleteExpiredKeys(ctx, time.Now().Add(-keyTTL))
	if err != nil {
		return 0, fmt.Errorf("expire idempotency keys: %w", translate(err))
	}
	return n, nil
}

// Get returns the entry with id, or ErrNotFound or database.ErrUnavailable
// (wrapped). A UUIDv7 id carries its time, so Get reads the partition of
// that time (within ledger.IDSlack) first; only when the entry is not there (an
// id of another version, or an entry written behind the API's back with a
// timestamp of its own) does it probe every partition.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (db.SystemLog, error) {
	release, err := s.reading(ctx)
	if err != nil {
		return db.SystemLog{}, err
	}
	defer release()
	if t, ok := ledger.IDTime(id); ok {
		stored, err := s.read.GetLogNear(ctx, db.GetLogNearParams{ID: id, From: t.Add(-ledger.IDSlack), To: t.Add(ledger.IDSlack)})
		if err == nil {
			return db.SystemLog(stored), nil
		}
		if err = translateRead(err); !errors.Is(err, ErrNotFound) {
			return db.SystemLog{}, fmt.Errorf("get log %s: %w", id, err)
		}
	}
	stored, err := s.read.GetLog(ctx, id)
	if err != nil {
		return db.SystemLog{}, fmt.Errorf("get log %s: %w", id, translateRead(err))
	}
	return stored, nil
}

// Filter selects entries; zero fields do not filter. All set fields must match.
type Filter struct {
	// Levels keeps entries with one of these levels.
	Levels []string
	// MinLevel keeps entries at or above this severity.
	MinLevel      string
	Category      *string
	CorrelationID *string
	UserID        *string
	TraceID       *string
	// Since is inclusive, Until exclusive.
	Since, Until *time.Time
}

// levels returns the levels f admits, or nil when f admits every level (no
// filter, min_level DEBUG, or all five listed).
func (f Filter) levels() []string {
	if len(f.Levels) == 0 && f.MinLevel == "" {
		return nil
	}
	admitted := []string{} // not nil: an empty set matches nothing
	floor := max(slices.Index(Levels, f.MinLevel), 0)
	for _, l := range Levels[floor:] {
		if len(f.Levels) == 0 || slices.Contains(f.Levels, l) {
			admitted = append(admitted, l)
		}
	}
	if len(admitted) == len(Levels) {
		return nil
	}
	return admitted
}

// MaxCount bounds the countUpTo of List.
const MaxCount = 100_000_000

// Page is one page of entries, newest first.
type Page struct {
	Items []db.SystemLog
	// NextCursor is "" on the last page.
	NextCursor string
	// Total counts the entries matching the filter, up to the limit List
	// was given; nil unless asked for.
	Total *int64
	// TotalExact is false when more entries match than Total.
	TotalExact bool
}

// List returns up to limit entries matching f, newest first (ties broken by
// id), starting after cursor ("" for the first page). Pagination is by
// keyset, so a deep page costs what the first does and entries written
// between calls are neither skipped nor repeated. A positive countUpTo
// also counts the matches, up to countUpTo (at most MaxCount).
// It returns ErrInvalidCursor or database.ErrUnavailable (wrapped).
func (s *Store) List(ctx context.Context, f Filter, limit int32, cursor string, countUpTo int64) (Page, error) {
	params := db.ListLogsParams{
		Levels:        f.levels(),
		Category:      f.Category,
		CorrelationID: f.CorrelationID,
		UserID:        f.UserID,
		TraceID:       f.TraceID,
		Since:         f.Since,
		Until:         f.Until,
		RowLimit:      limit + 1, // one more tells whether a next page exists
	}
	if cursor != "" {
		ts, id, err := DecodeCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		params.AfterTs, params.AfterID = &ts, &id
	}
	release, err := s.reading(ctx)
	if err != nil {
		return Page{}, err
	}
	defer release()
	rows, err := s.listBounded(ctx, params, limit)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: rows}
	if len(rows) > int(limit) || (len(rows) > 0 && RowsSize(rows) >= MaxPageBytes) {
		page.Items = rows[:min(len(rows), int(limit))]
		last := page.Items[len(page.Items)-1]
		page.NextCursor = EncodeCursor(last.Timestamp, last.ID)
	}
	if countUpTo > 0 {
		countUpTo = min(countUpTo, MaxCount)
		count := db.CountLogsParams(params) // a conversion, as above
		count.AfterTs, count.AfterID = nil, nil
		total, err := s.countBounded(ctx, count, countUpTo+1) // one more tells whether more match
		if err != nil {
			return Page{}, err
		}
		page.TotalExact = total <= countUpTo
		total = min(total, countUpTo)
		page.Total = &total
	}
	return page, nil
}

// MaxPageBytes bounds a page's entries, as rowSize counts them: a page
// holds fewer than its limit when its entries reach this size, and its
// next cursor continues after the last one. A page always holds one entry
// when one matches.
const MaxPageBytes = 4 << 20

// listChunk is the most rows one query of a page reads: a page of large
// entries is read a chunk at a time, so that the rows read beyond
// MaxPageBytes are few.
const listChunk = 64

// rowOverhead approximates what an entry costs besides its text: the id,
// timestamp, level, trace id and member names.
const rowOverhead = 256

// rowSize approximates the bytes an entry takes, in memory or encoded.
func rowSize(r db.SystemLog) int {
	n := rowOverhead + len(r.Category) + len(r.Message) + len(r.CorrelationID) + len(r.Context) + len(r.Actor)
	if r.UserID != nil {
		n += len(*r.UserID)
	}
	return n
}

// SealedSize is about the bytes entries take as JSON (see RowsSize).
func SealedSize(entries []SealedEntry) int {
	n := 0
	for _, e := range entries {
		n += rowSize(e.SystemLog)
	}
	return n
}

// RowsSize is about the bytes rows take as JSON (see MaxPageBytes).
func RowsSize(rows []db.SystemLog) int {
	n := 0
	for _, r := range rows {
		n += rowSize(r)
	}
	return n
}

// listWindow is the first span of time one list query reads, and
// listWindowGrowth how much each next span grows, until one would pass
// listWindowMax and the last query reads everything older. See listBounded.
const (
	listWindow       = 24 * time.Hour
	listWindowGrowth = 4
	listWindowMax    = 64 * 24 * time.Hour
)

// window is the span of time one list query reads: since inclusive, until
// exclusive, nil for no bound. floor is the filter's own since, which no
// window passes; last says w reaches it (or the oldest entry), so nothing
// older is left to read.
type window struct {
	since, until, floor *time.Time
	span                time.Duration
	last                bool
}

// firstWindow is the newest span of params' range: listWindow back from
// the keyset position, else from the filter's until, else from now, with
// nothing newer left out (an entry stamped ahead of this server's clock
// is in it too).
func firstWindow(params db.ListLogsParams) window {
	anchor := time.Now()
	switch {
	case params.AfterTs != nil && (params.Until == nil || params.AfterTs.Before(*params.Until)):
		anchor = *params.AfterTs
	case params.Until != nil:
		anchor = *params.Until
	}
	return window{until: params.Until, floor: params.Since}.from(anchor, listWindow)
}

// next is the span just older than w, listWindowGrowth times as long.
func (w window) next() window {
	return window{until: w.since, floor: w.floor}.from(*w.since, w.span*listWindowGrowth)
}

// from sets w to start span before end, or at the floor when that is
// later; past listWindowMax, w reaches the floor, however old.
func (w window) from(end time.Time, span time.Duration) window {
	w.span = span
	start := end.Add(-span)
	if span > listWindowMax || (w.floor != nil && !start.After(*w.floor)) {
		w.since, w.last = w.floor, true
		return w
	}
	w.since = &start
	return w
}

// listBounded reads up to limit+1 rows after params' keyset position,
// listChunk at a time, and stops early once the rows read reach
// MaxPageBytes (the last row read may end past it).
//
// It reads one window of time at a time, newest first: a day back from the
// keyset position (or now), then four days before that, then sixteen, and
// so on, until the page is full. The windows are contiguous and each query
// reads its window in keyset order, so the rows are those of one query over
// the whole range. PostgreSQL plans a query over every partition it cannot
// prune, and over a month of daily partitions planning cost ten times the
// execution of a page (60 ms against 6 on 10M rows); bounded by time, a
// page's query is planned over the partition or two its window covers.
func (s *Store) listBounded(ctx context.Context, params db.ListLogsParams, limit int32) ([]db.SystemLog, error) {
	var out []db.SystemLog
	size := 0
	w := firstWindow(params)
	for {
		want := limit + 1 - int32(len(out))
		params.RowLimit = min(want, listChunk)
		params.Since, params.Until = w.since, w.until
		var rows []db.SystemLog
		if params.Levels == nil {
			listed, err := s.read.ListLogs(ctx, params)
			if err != nil {
				return nil, fmt.Errorf("list logs: %w", translateRead(err))
			}
			rows = asLogs(listed)
		} else {
			// A conversion, not a copy field by field: it stops compiling if
			// a filter is added to one query and not the other.
			listed, err := s.read.ListLogsByLevels(ctx, db.ListLogsByLevelsParams(params))
			if err != nil {
				return nil, fmt.Errorf("list logs: %w", translateRead(err))
			}
			rows = asLogs(listed)
		}
		for i, r := range rows {
			out = append(out, r)
			size += rowSize(r)
			if size >= MaxPageBytes {
				clear(rows[i+1:]) // let the rest go
				return out, nil
			}
		}
		switch {
		case int32(len(out)) > limit:
			return out, nil
		case int32(len(rows)) == params.RowLimit: // more may be in this window
			last := rows[len(rows)-1]
			params.AfterTs, params.AfterID = &last.Timestamp, &last.ID
		case w.last:
			return out, nil
		default:
			w = w.next()
		}
	}
}

// countBounded counts the entries params matches, up to limit, a window of
// time at a time as listBounded reads them, so that a count the newest
// windows reach is planned over their partitions only.
func (s *Store) countBounded(ctx context.Context, params db.CountLogsParams, limit int64) (int64, error) {
	w := firstWindow(db.ListLogsParams(params))
	var total int64
	for {
		params.Since, params.Until = w.since, w.until
		params.RowLimit = int32(limit - total)
		n, err := s.read.CountLogs(ctx, params)
		if err != nil {
			return 0, fmt.Errorf("count logs: %w", translateRead(err))
		}
		total += n
		if total >= limit || w.last {
			return total, nil
		}
		w = w.next()
	}
}

// translateRead is translate for a read, which may also run out of time.
func translateRead(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled: statement_timeout
		return errors.Join(ErrReadTimeout, err)
	}
	return translate(err)
}

// asLogs converts the rows of a list query, which reads every column of
// system_logs, to the table's type: a conversion, which stops compiling if
// the columns differ.
func asLogs[Row db.ListLogsRow | db.ListLogsByLevelsRow](rows []Row) []db.SystemLog {
	out := make([]db.SystemLog, len(rows))
	for i, r := range rows {
		out[i] = db.SystemLog(r)
	}
	return out
}

// textErrors are the SQLSTATEs of a value PostgreSQL cannot store.
var textErrors = map[string]error{
	"22021": ErrInvalidText, // character_not_in_repertoire
	"22P05": ErrInvalidText, // untranslatable_character
}

// translate maps database errors to the store's sentinels (ErrNotFound,
// database.ErrUnavailable, ErrInvalidText), keeping the original in the
// chain for logs.
func translate(err error) error {
	return database.Translate(err, ErrNotFound, textErrors)
}
