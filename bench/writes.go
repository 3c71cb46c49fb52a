package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"
	"go.opentelemetry.io/otel/trace"

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

// batchSize is the number of entries in each batch request and COPY.
const batchSize = 1000

// writeBody is the entry every write sends: every field set, so the server
// stores exactly what the database floor stores.
const writeBody = `{"level":"WARNING","category":"auth","message":"new device signed in",` +
	`"correlation_id":"checkout-7f3a","user_id":"user-42","context":{"ip":"203.0.113.7","attempt":2}}`

// writeResults are the write runs and their floors.
type writeResults struct {
	// Write is the full stack; HandWritten the reference server without
	// the contract; DBFloor the INSERT through a pool opened as the
	// server's is, DBCeiling through one connection per worker; StoreFloor
	// the server's own store (group commit included) called in-process,
	// without HTTP or the contract.
	Write, HandWritten, DBFloor, DBCeiling, StoreFloor, HTTPFloor stats
	// WriteNoLimits is the full stack with its rate and in-flight limits
	// off (see limitsOff), for the cost of the limits.
	WriteNoLimits stats
	// CopyFloor and Batch count COPYs and batch requests of batchSize rows.
	CopyFloor, Batch stats
	// PeakRSS is the server's VmHWM after the single-write run, and
	// PeakRSSBatch after the batch run too.
	PeakRSS, PeakRSSBatch int64
}

// writeBench runs the write benchmarks against one freshly created database.
type writeBench struct {
	cfg     config
	env     *benchEnv
	pool    *pgxpool.Pool // opened as the server opens its own
	ceiling *pgxpool.Pool // one connection per worker
	url     string
	entry   db.InsertLogParams
}

// runWrites measures single writes (full stack, database floor, HTTP floor)
// and then batches (full stack, COPY floor). Each comparison interleaves
// its contenders, and every measured slice starts on an empty table after
// a checkpoint, so none inherits another's bloat or dirty pages.
func runWrites(ctx context.Context, cfg config, env *benchEnv) (writeResults, error) {
	var res writeResults
	const dbName = "bench_write"
	if err := env.recreateDatabase(ctx, dbName); err != nil {
		return res, err
	}
	url := env.cluster.ConnString(dbName)
	// The floor opens its pool exactly as the server does; the ceiling
	// gives every worker its own connection.
	pool, err := database.Open(ctx, url, 30*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	ceiling, err := database.Open(ctx, fmt.Sprintf("%s pool_max_conns=%d", url, cfg.Concurrency), 30*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer ceiling.Close()
	if _, err := database.Migrate(ctx, pool); err != nil {
		return res, err
	}
	var entry struct {
		Level, Category, Message string
		CorrelationID            string          `json:"correlation_id"`
		UserID                   string          `json:"user_id"`
		Context                  json.RawMessage `json:"context"`
	}
	if err := json.Unmarshal([]byte(writeBody), &entry); err != nil {
		return res, fmt.Errorf("decode write body: %w", err)
	}
	w := &writeBench{cfg: cfg, env: env, pool: pool, ceiling: ceiling, url: url, entry: db.InsertLogParams{
		Level: entry.Level, Category: entry.Category, Message: entry.Message,
		CorrelationID: entry.CorrelationID, UserID: &entry.UserID, Context: entry.Context,
		Actor: "bench",
	}}

	srv, err := env.startServer(ctx, url, "server-write.log")
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	full := func(path, body string) func(load) stats {
		target := post(srv.Addr, path, body)
		return func(l load) stats { return l.http(ctx, target, http.StatusCreated) }
	}
	if cfg.runs("write") {
		floor, err := w.startSelf(ctx, httpFloorCommand, "http-floor.log")
		if err != nil {
			return res, err
		}
		defer floor.Stop()
		hand, err := w.startSelf(ctx, handWrittenCommand, "hand-written.log", "--database-url", url)
		if err != nil {
			return res, err
		}
		defer hand.Stop()
		unlimited, err := env.startServer(ctx, url, "server-write-no-limits.log", limitsOff...)
		if err != nil {
			return res, err
		}
		defer unlimited.Stop()
		other := func(p *process) func(load) stats {
			target := post(p.Addr, "/system/logs", writeBody)
			return func(l load) stats { return l.http(ctx, target, http.StatusCreated) }
		}
		err = interleave(ctx, cfg, env.meter, env.progress, w.reset,
			contender{"single write: full stack", cfg.Concurrency, srv.PID(),
				full("/system/logs", writeBody), &res.Write},
			contender{"single write: full stack, limits off", cfg.Concurrency, unlimited.PID(),
				unlimitedWrite(ctx, unlimited), &res.WriteNoLimits},
			contender{"single write: hand-written server", cfg.Concurrency, hand.PID(),
				other(hand), &res.HandWritten},
			contender{"single write: database floor", cfg.Concurrency, 0,
				w.insertFloor(ctx, w.pool), &res.DBFloor},
			contender{"single write: database ceiling", cfg.Concurrency, 0,
				w.insertFloor(ctx, w.ceiling), &res.DBCeiling},
			contender{"single write: store floor", cfg.Concurrency, 0,
				w.storeFloor(ctx), &res.StoreFloor},
			contender{"single write: HTTP floor", cfg.Concurrency, floor.PID(),
				other(floor), &res.HTTPFloor},
		)
		if err != nil {
			return res, err
		}
		for _, p := range []*process{floor, hand, unlimited} {
			if err := p.Stop(); err != nil {
				return res, err
			}
		}
		if res.PeakRSS, err = srv.PeakRSS(); err != nil {
			return res, err
		}
	}
	if cfg.runs("batch") {
		err := interleave(ctx, cfg, env.meter, env.progress, w.reset,
			contender{"batch write: full stack", cfg.Concurrency, srv.PID(),
				full("/system/logs/batch", batchBody()), &res.Batch},
			contender{"batch write: COPY floor", cfg.Concurrency, 0,
				w.copyFloor(ctx), &res.CopyFloor},
		)
		if err != nil {
			return res, err
		}
		if res.PeakRSSBatch, err = srv.PeakRSS(); err != nil {
			return res, err
		}
	}
	if err := srv.Stop(); err != nil {
		return res, err
	}
	return res, nil
}

// reset empties system_logs and checkpoints, so the next slice starts clean.
func (w *writeBench) reset(ctx context.Context) error {
	if _, err := w.pool.Exec(ctx, "TRUNCATE system_logs"); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if _, err := w.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// startSelf runs this binary with one of its hidden commands (the HTTP
// floor or the hand-written server) as a separate process, like the server.
func (w *writeBench) startSelf(ctx context.Context, command, logName string, args ...string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	return startProcess(ctx, command, self, append([]string{command, "--addr", "127.0.0.1:0"}, args...),
		os.Environ(), filepath.Join(w.env.dir, logName))
}

// insertFloor issues the server's INSERT (the sqlc InsertLog, RETURNING
// the row) straight through pool.
func (w *writeBench) insertFloor(ctx context.Context, pool *pgxpool.Pool) func(load) stats {
	q := db.New(pool)
	return func(l load) stats {
		return l.goroutines(ctx, func(ctx context.Context) error {
			_, err := q.InsertLog(ctx, w.row(traceID()))
			return err
		})
	}
}

// storeFloor writes the same entry through logstore.Store.Insert, the
// server's own path to the database, group commit included: the full
// stack without HTTP, authentication or the contract.
func (w *writeBench) storeFloor(ctx context.Context) func(load) stats {
	store := logstore.New(w.pool)
	p := w.entry
	e := logstore.Entry{Level: p.Level, Category: p.Category, Message: p.Message, CorrelationID: p.CorrelationID,
		UserID: p.UserID, Context: p.Context, Actor: p.Actor}
	return func(l load) stats {
		return l.goroutines(ctx, func(ctx context.Context) error {
			e := e
			e.TraceID = traceID()
			_, err := store.Insert(ctx, e)
			return err
		})
	}
}

// copyFloor stores batches of the same rows with pgx.CopyFrom (the sqlc
// CopyLogs the server uses for batches).
func (w *writeBench) copyFloor(ctx context.Context) func(load) stats {
	q := db.New(w.pool)
	return func(l load) stats {
		return l.goroutines(ctx, func(ctx context.Context) error {
			rows := make([]db.CopyLogsParams, batchSize)
			trace := traceID() // one request's trace, as the server stores it
			for i := range rows {
				r := w.row(trace)
				rows[i] = db.CopyLogsParams{ID: r.ID, Timestamp: r.Timestamp, Level: r.Level, Category: r.Category, Message: r.Message,
					CorrelationID: r.CorrelationID, UserID: r.UserID, Context: r.Context, TraceID: r.TraceID, Actor: r.Actor}
			}
			n, err := q.CopyLogs(ctx, rows)
			if err == nil && n != batchSize {
				err = fmt.Errorf("copied %d of %d rows", n, batchSize)
			}
			return err
		})
	}
}

// row is the write entry with a fresh id and timestamp and the trace id
// of its request, as the server would store it.
func (w *writeBench) row(trace *string) db.InsertLogParams {
	p := w.entry
	p.ID = uuid.Must(uuid.NewV7())
	p.Timestamp = time.Now().UTC().Truncate(time.Microsecond)
	p.TraceID = trace
	return p
}

// traceID returns a new W3C trace id. The server stores its request's trace
// id with every entry (one is minted when the caller sends none), and the
// floors store one too, so the database does the same work, the partial
// trace_id index included.
func traceID() *string {
	id := trace.TraceID(uuid.New())
	s := id.String()
	return &s
}

// post is a JSON POST of body to path on addr.
func post(addr, path, body string) vegeta.Target {
	return vegeta.Target{
		Method: http.MethodPost,
		URL:    "http://" + addr + path,
		Body:   []byte(body),
		Header: http.Header{"Content-Type": []string{"application/json"}, "Authorization": []string{"Bearer " + benchToken}},
	}
}

// batchBody is a batch of batchSize copies of writeBody.
func batchBody() string {
	var b strings.Builder
	b.WriteString(`{"entries":[`)
	for i := range batchSize {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(writeBody)
	}
	b.WriteString(`]}`)
	return b.String()
}
