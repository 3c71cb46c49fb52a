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

	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
)

// batchSize is the number of entries in each batch request and COPY.
const batchSize = 1000

// writeBody is the entry every write sends: every field set, so the server
// stores exactly what the database floor stores.
const writeBody = `{"level":"WARNING","category":"auth","message":"new device signed in",` +
	`"correlation_id":"checkout-7f3a","user_id":"user-42","context":{"ip":"203.0.113.7","attempt":2}}`

// writeResults are the write runs and their floors.
type writeResults struct {
	HTTPFloor, DBFloor, Write stats
	// CopyFloor and Batch count COPYs and batch requests of batchSize rows.
	CopyFloor, Batch stats
	// PeakRSS is the server's VmHWM after the single-write run, and
	// PeakRSSBatch after the batch run too.
	PeakRSS, PeakRSSBatch int64
}

// writeBench runs the write benchmarks against one freshly created database.
type writeBench struct {
	cfg   config
	env   *benchEnv
	pool  *pgxpool.Pool // the floors' own pool, one connection per worker
	url   string
	entry db.InsertLogParams
}

// runWrites measures, in order: the HTTP floor, the database floor and the
// full stack for single writes, then the COPY floor and the full stack for
// batches. Each run starts on an empty table after a checkpoint, so none
// inherits another's bloat or dirty pages.
func runWrites(ctx context.Context, cfg config, env *benchEnv) (writeResults, error) {
	var res writeResults
	const dbName = "bench_write"
	if err := env.recreateDatabase(ctx, dbName); err != nil {
		return res, err
	}
	url := env.cluster.ConnString(dbName)
	pool, err := database.Open(ctx, fmt.Sprintf("%s pool_max_conns=%d", url, cfg.Concurrency), 30*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer pool.Close()
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
	w := &writeBench{cfg: cfg, env: env, pool: pool, url: url, entry: db.InsertLogParams{
		Level: entry.Level, Category: entry.Category, Message: entry.Message,
		CorrelationID: entry.CorrelationID, UserID: &entry.UserID, Context: entry.Context,
	}}

	if cfg.runs("write") {
		if res.HTTPFloor, err = w.httpFloor(ctx); err != nil {
			return res, err
		}
		if res.DBFloor, err = w.databaseFloor(ctx); err != nil {
			return res, err
		}
	}
	srv, err := env.startServer(ctx, url, "server-write.log")
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	if cfg.runs("write") {
		env.progress("single write: full stack")
		if res.Write, err = w.measure(ctx, srv.PID(), func(l load) stats {
			return l.http(ctx, post(srv.Addr, "/system/logs", writeBody), http.StatusCreated)
		}); err != nil {
			return res, err
		}
		if res.PeakRSS, err = srv.PeakRSS(); err != nil {
			return res, err
		}
	}
	if cfg.runs("batch") {
		if res.CopyFloor, err = w.copyFloor(ctx); err != nil {
			return res, err
		}
		env.progress("batch write: full stack")
		body := batchBody()
		if res.Batch, err = w.measure(ctx, srv.PID(), func(l load) stats {
			return l.http(ctx, post(srv.Addr, "/system/logs/batch", body), http.StatusCreated)
		}); err != nil {
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

// measure warms up with run, empties the table, checkpoints, and then
// measures run. serverPID is the process whose CPU counts as the server's.
func (w *writeBench) measure(ctx context.Context, serverPID int, run func(load) stats) (stats, error) {
	meter := w.env.meter
	meter.serverPID = serverPID
	if w.cfg.Warmup > 0 {
		run(load{concurrency: w.cfg.Concurrency, duration: w.cfg.Warmup, meter: meter})
	}
	if err := w.reset(ctx); err != nil {
		return stats{}, err
	}
	s := run(load{concurrency: w.cfg.Concurrency, duration: w.cfg.Duration, meter: meter})
	if s.OK == 0 {
		return s, fmt.Errorf("no request succeeded (%d failed, first: %s)", s.Errors, s.FirstError)
	}
	return s, ctx.Err()
}

// reset empties system_logs and checkpoints, so the next run starts clean.
func (w *writeBench) reset(ctx context.Context) error {
	if _, err := w.pool.Exec(ctx, "TRUNCATE system_logs"); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if _, err := w.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// httpFloor measures a do-nothing handler on the same http.Server setup,
// in its own process: this binary started with the hidden http-floor
// command.
func (w *writeBench) httpFloor(ctx context.Context) (stats, error) {
	w.env.progress("single write: HTTP floor")
	self, err := os.Executable()
	if err != nil {
		return stats{}, fmt.Errorf("http floor: %w", err)
	}
	floor, err := startProcess(ctx, "http floor", self, []string{httpFloorCommand, "--addr", "127.0.0.1:0"},
		os.Environ(), filepath.Join(w.env.dir, "http-floor.log"))
	if err != nil {
		return stats{}, err
	}
	s, err := w.measure(ctx, floor.PID(), func(l load) stats {
		return l.http(ctx, post(floor.Addr, "/system/logs", writeBody), http.StatusCreated)
	})
	if stopErr := floor.Stop(); err == nil {
		err = stopErr
	}
	return s, err
}

// databaseFloor issues the server's INSERT (the sqlc InsertLog, RETURNING
// the row) straight through a pgx pool from the same number of goroutines.
func (w *writeBench) databaseFloor(ctx context.Context) (stats, error) {
	w.env.progress("single write: database floor")
	q := db.New(w.pool)
	return w.measure(ctx, 0, func(l load) stats {
		return l.goroutines(ctx, func(ctx context.Context) error {
			_, err := q.InsertLog(ctx, w.row())
			return err
		})
	})
}

// copyFloor stores batches of the same rows with pgx.CopyFrom (the sqlc
// CopyLogs the server uses for batches) from the same number of goroutines.
func (w *writeBench) copyFloor(ctx context.Context) (stats, error) {
	w.env.progress("batch write: COPY floor")
	q := db.New(w.pool)
	return w.measure(ctx, 0, func(l load) stats {
		return l.goroutines(ctx, func(ctx context.Context) error {
			rows := make([]db.CopyLogsParams, batchSize)
			for i := range rows {
				rows[i] = db.CopyLogsParams(w.row())
			}
			n, err := q.CopyLogs(ctx, rows)
			if err == nil && n != batchSize {
				err = fmt.Errorf("copied %d of %d rows", n, batchSize)
			}
			return err
		})
	})
}

// row is the write entry with a fresh id and timestamp, as the server
// would store it.
func (w *writeBench) row() db.InsertLogParams {
	p := w.entry
	p.ID = uuid.Must(uuid.NewV7())
	p.Timestamp = time.Now().UTC().Truncate(time.Microsecond)
	return p
}

// post is a JSON POST of body to path on addr.
func post(addr, path, body string) vegeta.Target {
	return vegeta.Target{
		Method: http.MethodPost,
		URL:    "http://" + addr + path,
		Body:   []byte(body),
		Header: http.Header{"Content-Type": []string{"application/json"}},
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
