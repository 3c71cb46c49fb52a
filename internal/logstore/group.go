package logstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
)

// Group commit. Every single write is a transaction, and PostgreSQL's cost
// per transaction (a round trip, planning, executor start-up, a commit
// record and the wait for its WAL flush) far exceeds what one more row
// costs. So Insert queues its row and returns once the row is committed,
// and a writer goroutine writes whatever is queued, up to maxGroup rows at
// once, with one statement. Nothing waits to fill a group: a write on an
// idle server goes out at once, alone, and groups form only while earlier
// writes are in flight, so they grow with the load.
const (
	// maxWriters bounds the statements in flight for single writes. One
	// makes the largest groups, and so the fewest commits per entry; at
	// maxGroup rows a statement, one writer's throughput is maxGroup rows
	// per commit latency. Measured against more writers with make bench
	// (docs/performance.md).
	maxWriters = 1
	// maxGroup bounds the rows written by one statement.
	maxGroup = 256
	// groupTimeout bounds how long a group may take; its writers then get
	// an error, as with a database that does not answer.
	groupTimeout = 30 * time.Second
)

// errEmptyID sends a group holding an empty user or trace id row by row.
var errEmptyID = errors.New("an empty user_id or trace_id cannot go in a group")

// pendingWrite is a row waiting for its group's commit.
type pendingWrite struct {
	ctx  context.Context
	row  db.CopyLogsParams
	leaf []byte     // the row's leaf hash, or nil (leafHash)
	tx   int64      // once stored, its queue row (ledger_tx)
	done chan error // receives the row's outcome, once
}

// grouper queues single writes and writes them in groups.
type grouper struct {
	q *db.Queries
	// observe, when set, is told the size of every group written.
	observe func(n int)

	mu      sync.Mutex
	queue   []*pendingWrite
	writers int // goroutines writing groups
}

// write queues row and returns once it is committed, or with the error
// that kept it out (database.ErrUnavailable or ErrInvalidText, wrapped), or ctx's
// error when ctx ends first; the row may then still be committed, as a
// statement interrupted on its way may be. Stored, it returns the row's
// ledger_tx.
func (g *grouper) write(ctx context.Context, row db.CopyLogsParams) (int64, error) {
	// The leaf hash is computed here, in the writer's goroutine, not in
	// the one writing the group.
	p := &pendingWrite{ctx: ctx, row: row, leaf: leafHash(row), done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	start := g.writers < maxWriters
	if start {
		g.writers++
	}
	g.mu.Unlock()
	if start {
		go g.drain()
	}
	select {
	case err := <-p.done:
		return p.tx, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// drain writes queued rows, a group at a time, until none is left.
func (g *grouper) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.writers--
			g.queue = nil // let a burst's backing array go
			g.mu.Unlock()
			return
		}
		group := make([]*pendingWrite, n)
		copy(group, g.queue)
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(group)
	}
}

// commit writes group with one statement and tells every writer the
// outcome. When the statement fails for a reason other than an outage, it
// splits the group in halves and writes each the same way, so that a row
// the database refuses fails alone and costs its group a few more
// statements (two per halving, about 2·log₂ of the group), not one per row.
func (g *grouper) commit(group []*pendingWrite) {
	// The group outlives any one request: a writer that gives up must not
	// cancel the others' rows. The first request's context still carries
	// its trace to the statement.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(group[0].ctx), groupTimeout)
	defer cancel()
	g.commitSplitting(ctx, group, g.insert(ctx, group))
}

// commitSplitting tells group's writers err, the outcome of writing group
// in one statement, or, when err is a refusal of some row, writes each
// half of group again.
func (g *grouper) commitSplitting(ctx context.Context, group []*pendingWrite, err error) {
	if err == nil && g.observe != nil {
		g.observe(len(group))
	}
	if err == nil || len(group) == 1 || errors.Is(err, database.ErrUnavailable) || ctx.Err() != nil {
		for _, p := range group {
			p.done <- err
		}
		return
	}
	half := len(group) / 2
	for _, part := range [][]*pendingWrite{group[:half], group[half:]} {
		g.commitSplitting(ctx, part, g.insert(ctx, part))
	}
}

// insert writes the rows of group with one statement.
func (g *grouper) insert(ctx context.Context, group []*pendingWrite) error {
	n := len(group)
	p := db.InsertQueuedLogsParams{
		Ids:            make([]uuid.UUID, n),
		Timestamps:     make([]time.Time, n),
		Levels:         make([]string, n),
		Categories:     make([]string, n),
		Messages:       make([]string, n),
		CorrelationIds: make([]string, n),
		UserIds:        make([]string, n),
		Contexts:       make([]json.RawMessage, n),
		TraceIds:       make([]string, n),
		Actors:         make([]string, n),
		LeafHashes:     make([][]byte, n),
	}
	for i, w := range group {
		r := w.row
		p.LeafHashes[i] = w.leaf
		p.Ids[i], p.Timestamps[i], p.Levels[i], p.Categories[i] = r.ID, r.Timestamp, r.Level, r.Category
		p.Messages[i], p.CorrelationIds[i], p.Contexts[i], p.Actors[i] = r.Message, r.CorrelationID, r.Context, r.Actor
		// "" stands for none in the statement; the database refuses an
		// empty user or trace id, so such a row goes in alone, to fail.
		if r.UserID != nil {
			if *r.UserID == "" {
				return errEmptyID
			}
			p.UserIds[i] = *r.UserID
		}
		if r.TraceID != nil {
			if *r.TraceID == "" {
				return errEmptyID
			}
			p.TraceIds[i] = *r.TraceID
		}
	}
	r, err := g.q.InsertQueuedLogs(ctx, p)
	if err != nil {
		return fmt.Errorf("insert %d logs: %w", n, translate(err))
	}
	if r.Stored != int64(n) {
		return fmt.Errorf("insert logs: stored %d of %d rows", r.Stored, n)
	}
	for _, w := range group {
		w.tx = r.Tx
	}
	return nil
}
