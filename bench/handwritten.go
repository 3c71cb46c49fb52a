package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/httpapi"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// handWrittenCommand is the hidden first argument that makes valhalla-bench
// serve the hand-written reference server.
const handWrittenCommand = "hand-written"

// serveHandWritten serves POST /system/logs the way a plain net/http + pgx
// service would: decode the body into a struct, apply the defaults, run the
// same sqlc INSERT through a pool opened like the server's, and encode the
// stored row. There is no contract validation, no problem mapping and no
// middleware; it is the yardstick for what those cost. It logs
// {"msg":"listening","addr":...} like the server, and stops when ctx is
// cancelled.
func serveHandWritten(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(handWrittenCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	dbURL := fs.String("database-url", "", "PostgreSQL URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	pool, err := database.Open(ctx, *dbURL, 30*time.Second, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := db.New(pool)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /system/logs", func(w http.ResponseWriter, r *http.Request) {
		var in api.SystemLogCreate
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)).Decode(&in); err != nil {
			http.Error(w, "malformed body", http.StatusBadRequest)
			return
		}
		if in.Message == "" {
			http.Error(w, "message is required", http.StatusUnprocessableEntity)
			return
		}
		reqID := requestid.Sanitize(r.Header.Get(requestid.Header))
		p := db.InsertLogParams{
			ID:            uuid.Must(uuid.NewV7()),
			Timestamp:     time.Now().UTC().Truncate(time.Microsecond),
			Level:         "INFO",
			Category:      "general",
			Message:       in.Message,
			CorrelationID: reqID,
			UserID:        in.UserId,
			Context:       json.RawMessage("{}"),
			TraceID:       traceID(), // stored as the server stores its request's
			Actor:         "handwritten",
		}
		if in.Level != nil {
			p.Level = string(*in.Level)
		}
		if in.Category != nil {
			p.Category = *in.Category
		}
		if in.CorrelationId != nil {
			p.CorrelationID = *in.CorrelationId
		}
		if in.Context != nil {
			p.Context = *in.Context
		}
		row, err := q.InsertLog(r.Context(), p)
		if err != nil {
			http.Error(w, "insert failed", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Location", "/system/logs/"+row.ID.String())
		h.Set(requestid.Header, reqID)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(api.SystemLog{
			Id: row.ID, Timestamp: row.Timestamp, Level: api.LogLevel(row.Level), Category: row.Category,
			Message: row.Message, CorrelationId: row.CorrelationID, UserId: row.UserID, Context: row.Context,
		})
	})

	return serveUntilDone(ctx, "hand-written", *addr, mux, logger)
}
