package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/auth"
	"github.com/valhalla-platform/valhalla/internal/jsonb"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/requestid"
	"github.com/valhalla-platform/valhalla/internal/tracing"
)

// MaxContextBytes bounds an entry's context, as sent. With the contract's
// bounds on the other fields it bounds a whole entry: under 128 KiB.
const MaxContextBytes = 64 << 10

// Defaults the contract declares for an entry.
const (
	defaultLevel    = api.LogLevel("INFO")
	defaultCategory = "general"
	defaultLimit    = 50
	// defaultTotalLimit is how many matches include_total counts at most.
	defaultTotalLimit = 1_000
)

// CreateSystemLog stores one entry.
func (s *server) CreateSystemLog(ctx context.Context, req api.CreateSystemLogRequestObject) (api.CreateSystemLogResponseObject, error) {
	caller, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	entry, errs := entryFromAPI(ctx, *req.Body, "")
	if len(errs) > 0 {
		return nil, problem.Invalid("a value cannot be stored", errs...)
	}
	entry.Actor = caller.Name
	if err := s.limitEntries(caller, 1); err != nil {
		return nil, err
	}
	var stored db.SystemLog
	replayed := false
	if key := req.Params.IdempotencyKey; key != nil {
		k, err := idempotencyKey(caller, *key, "createSystemLog", req.Body)
		if err != nil {
			return nil, err
		}
		var rows []db.SystemLog
		rows, replayed, err = s.Store.InsertBatch(ctx, &k, []logstore.Entry{entry})
		if err != nil {
			return nil, err
		}
		stored = rows[0]
	} else if stored, err = s.Store.Insert(ctx, entry); err != nil {
		return nil, err
	}
	if !replayed { // a replay wrote nothing
		s.Metrics.LogWritten(stored.Level)
	}
	body := logToAPI(stored, nil) // a new entry is not sealed yet
	if replayed {
		items, err := s.withSeals(ctx, []db.SystemLog{stored})
		if err != nil {
			return nil, err
		}
		body = items[0]
	}
	return api.CreateSystemLog201JSONResponse{
		Body: body,
		Headers: api.CreateSystemLog201ResponseHeaders{
			Location:   "/system/logs/" + stored.ID.String(),
			XRequestID: requestid.FromContext(ctx),
		},
	}, nil
}

// CreateSystemLogBatch stores every entry in one transaction, or none.
func (s *server) CreateSystemLogBatch(ctx context.Context, req api.CreateSystemLogBatchRequestObject) (api.CreateSystemLogBatchResponseObject, error) {
	caller, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	entries := make([]logstore.Entry, len(req.Body.Entries))
	var errs []api.FieldError
	for i, in := range req.Body.Entries {
		var entryErrs []api.FieldError
		entries[i], entryErrs = entryFromAPI(ctx, in, "/entries/"+strconv.Itoa(i))
		entries[i].Actor = caller.Name
		errs = append(errs, entryErrs...)
	}
	if len(errs) > 0 {
		return nil, problem.Invalid("a value cannot be stored", errs...)
	}
	if err := s.limitEntries(caller, len(entries)); err != nil {
		return nil, err
	}
	var key *logstore.Key
	if name := req.Params.IdempotencyKey; name != nil {
		k, err := idempotencyKey(caller, *name, "createSystemLogBatch", req.Body)
		if err != nil {
			return nil, err
		}
		key = &k
	}
	stored, replayed, err := s.Store.InsertBatch(ctx, key, entries)
	if err != nil {
		return nil, err
	}
	items := make([]api.SystemLog, len(stored))
	for i, row := range stored {
		if !replayed { // a replay wrote nothing
			s.Metrics.LogWritten(row.Level)
		}
		items[i] = logToAPI(row, nil) // new entries are not sealed yet
	}
	if replayed {
		if items, err = s.withSeals(ctx, stored); err != nil {
			return nil, err
		}
	}
	return api.CreateSystemLogBatch201JSONResponse{
		Body:    api.SystemLogBatch{Items: items},
		Headers: api.CreateSystemLogBatch201ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetSystemLog returns one entry.
func (s *server) GetSystemLog(ctx context.Context, req api.GetSystemLogRequestObject) (api.GetSystemLogResponseObject, error) {
	stored, err := s.Store.Get(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	items, err := s.withSeals(ctx, []db.SystemLog{stored})
	if err != nil {
		return nil, err
	}
	return api.GetSystemLog200JSONResponse{
		Body:    items[0],
		Headers: api.GetSystemLog200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// ListSystemLogs returns one page of entries, newest first.
func (s *server) ListSystemLogs(ctx context.Context, req api.ListSystemLogsRequestObject) (api.ListSystemLogsResponseObject, error) {
	p := req.Params
	filter := filterOf(p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until)
	limit := int32(defaultLimit)
	if p.Limit != nil {
		limit = *p.Limit
	}
	cursor := ""
	if p.Cursor != nil {
		cursor = *p.Cursor
	}
	var countUpTo int64
	if p.IncludeTotal != nil && *p.IncludeTotal {
		countUpTo = defaultTotalLimit
		if p.TotalLimit != nil {
			countUpTo = *p.TotalLimit
		}
	}
	if err := s.readAllowed(ctx); err != nil {
		return nil, err
	}
	page, err := s.Store.List(ctx, filter, limit, cursor, countUpTo)
	if err != nil {
		return nil, err
	}
	size := logstore.RowsSize(page.Items)
	s.chargeRead(ctx, size)
	if size > HeavyBytes {
		// Encoding it takes a core for a while: in turn with the others.
		if err := s.enterHeavy(ctx); err != nil {
			return nil, err
		}
	}
	items, err := s.withSeals(ctx, page.Items)
	if err != nil {
		return nil, err
	}
	body := api.SystemLogList{Items: items, Total: page.Total}
	if page.Total != nil {
		relation := api.Gte
		if page.TotalExact {
			relation = api.Eq
		}
		body.TotalRelation = &relation
	}
	if page.NextCursor != "" {
		body.NextCursor = &page.NextCursor
	}
	return listResponse{body: body, requestID: requestid.FromContext(ctx), size: size}, nil
}

// idempotencyKey scopes the client's key to the caller and identifies the
// request by the operation and the decoded body, so a retry that encodes the
// same body differently (spacing, member order) is still the same request.
func idempotencyKey(caller auth.Principal, key, operation string, body any) (logstore.Key, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return logstore.Key{}, fmt.Errorf("idempotency key: encode body: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(operation))
	h.Write([]byte{0})
	h.Write(b)
	return logstore.Key{Actor: caller.Name, Name: key, Request: h.Sum(nil)}, nil
}

// callerOf returns the caller the contract validator authenticated. Writes
// are secured by the contract, so its absence is a wiring fault: fail closed.
func callerOf(ctx context.Context) (auth.Principal, error) {
	caller, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{}, errors.New("no authenticated caller on a secured operation")
	}
	return caller, nil
}

// entryFromAPI applies the contract's defaults to in; the correlation id
// defaults to the request's, and the trace id is the request's. A context
// over MaxContextBytes, or holding a value PostgreSQL's jsonb refuses, is
// reported, located under pointer.
func entryFromAPI(ctx context.Context, in api.SystemLogCreate, pointer string) (logstore.Entry, []api.FieldError) {
	e := logstore.Entry{
		Level:         string(defaultLevel),
		Category:      defaultCategory,
		Message:       in.Message,
		CorrelationID: requestid.FromContext(ctx),
		UserID:        in.UserId,
	}
	if id := tracing.TraceID(ctx); id != "" {
		e.TraceID = &id
	}
	if in.Level != nil {
		e.Level = string(*in.Level)
	}
	if in.Category != nil {
		e.Category = *in.Category
	}
	if in.CorrelationId != nil {
		e.CorrelationID = *in.CorrelationId
	}
	if in.Context != nil {
		e.Context = *in.Context
	}
	// The contract keeps U+0000 out of the typed strings; a free-form
	// context can only be checked here, for its size and for what jsonb
	// refuses, before the write is queued.
	if len(e.Context) > MaxContextBytes {
		return e, []api.FieldError{problem.Pointer(pointer+"/context",
			fmt.Sprintf("is %d bytes; at most %d are allowed", len(e.Context), MaxContextBytes))}
	}
	if v := jsonb.Check(e.Context); v != nil {
		return e, []api.FieldError{problem.Pointer(pointer+"/context"+v.Pointer, v.Reason)}
	}
	return e, nil
}

// logToAPI converts a stored row to the contract's SystemLog, with its
// seal, or with a null seq and leaf hash when seal is nil.
func logToAPI(row db.SystemLog, seal *logstore.Seal) api.SystemLog {
	out := api.SystemLog{
		Id:            row.ID,
		Timestamp:     row.Timestamp,
		Level:         api.LogLevel(row.Level),
		Category:      row.Category,
		Message:       row.Message,
		CorrelationId: row.CorrelationID,
		TraceId:       row.TraceID,
		UserId:        row.UserID,
		Context:       row.Context,
		Actor:         row.Actor,
	}
	if seal != nil {
		out.Seq, out.LeafHash = &seal.Seq, &seal.LeafHash
	}
	return out
}

// filterOf is the store's filter for the listing's (and the feed's) filter
// parameters.
func filterOf(level *[]api.LogLevel, minLevel *api.LogLevel, category, correlationID, userID, traceID *string, since, until *time.Time) logstore.Filter {
	f := logstore.Filter{
		Category:      category,
		CorrelationID: correlationID,
		UserID:        userID,
		TraceID:       traceID,
		Since:         since,
		Until:         until,
	}
	if level != nil {
		for _, l := range *level {
			f.Levels = append(f.Levels, string(l))
		}
	}
	if minLevel != nil {
		f.MinLevel = string(*minLevel)
	}
	return f
}
