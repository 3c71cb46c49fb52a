package httpapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/inorder"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/problem"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// exportPage is how many leaves of the tree one read of an export covers
// (so at most how many entries it holds).
const exportPage = 1000

// exportReaders is how many reads of one export run at once, each on its
// own connection of the read pool. The ranges are known before they are
// read (every leaf up to the checkpoint is sealed), so they need not wait
// for one another: one reader at a time left PostgreSQL idle while the
// server scanned each page (docs/performance.md, "The export's encoder").
const exportReaders = 2

// exportInstance is the export's path, for the instance of a problem
// written into the file.
const exportInstance = "/system/logs/export"

// ExportSystemLogs streams a range of the sealed trail as NDJSON or CSV.
// Like the live tail it writes its own response (exportResponse): the
// generated one cannot clear the server's write timeout, which would cut a
// large export, nor end a failing one with an error line.
func (s *server) ExportSystemLogs(ctx context.Context, req api.ExportSystemLogsRequestObject) (api.ExportSystemLogsResponseObject, error) {
	p := req.Params
	filter := filterOf(p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until)
	cp, err := s.Ledger.Latest(ctx)
	if errors.Is(err, ledger.ErrNoCheckpoint) {
		return nil, problem.New(http.StatusNotFound, problem.TypeNotFound,
			"nothing is sealed yet, so there is nothing to export; retry after Retry-After").
			WithHeader("Retry-After", strconv.Itoa(s.sealRetry()))
	}
	if err != nil {
		return nil, err
	}
	from, to := int64(1), cp.Size
	if p.FromSeq != nil {
		from = *p.FromSeq
	}
	if p.ToSeq != nil {
		to = min(*p.ToSeq, cp.Size)
	}
	// from > to is an empty range: the export holds no entry, only its
	// trailer, as a listing whose since is after its until holds none.
	csvFormat := false
	if p.Format != nil {
		csvFormat = *p.Format == api.Csv
	} else {
		csvFormat = acceptsCSV(ctx)
	}
	return exportResponse{
		ctx: ctx, store: s.Store, ledger: s.Ledger, logger: s.Logger,
		filter: filter, from: from, to: to, checkpoint: cp,
		csv: csvFormat, proofs: p.Proofs != nil && *p.Proofs,
	}, nil
}

// acceptsCSV reports whether the request's Accept header prefers text/csv
// (names it, and not application/x-ndjson before it).
func acceptsCSV(ctx context.Context) bool {
	accept := acceptFromContext(ctx)
	c := strings.Index(accept, "text/csv")
	n := strings.Index(accept, "application/x-ndjson")
	return c >= 0 && (n < 0 || c < n)
}

// exportResponse writes an export.
type exportResponse struct {
	ctx        context.Context
	store      *logstore.Store
	ledger     *ledger.Reader
	logger     *slog.Logger
	filter     logstore.Filter
	from, to   int64
	checkpoint ledger.StoredCheckpoint
	csv        bool
	proofs     bool
}

// exportSink writes one export format.
type exportSink interface {
	entry(e logstore.SealedEntry, proof [][]byte) error
	missing(m logstore.MissingEntry) error
	trailer(count, last int64, cp ledger.StoredCheckpoint) error
	fail(p api.ProblemDetails) error
}

// VisitExportSystemLogsResponse streams the export. Once the headers are
// sent, a failure ends the file with an error line, so it returns nil.
func (r exportResponse) VisitExportSystemLogsResponse(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // however large the export
	h := w.Header()
	ext := "ndjson"
	if r.csv {
		ext = "csv"
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="valhalla-%d-%d.%s"`, r.from, r.to, ext))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(requestid.Header, requestid.FromContext(r.ctx))
	w.WriteHeader(http.StatusOK)
	buf := bufio.NewWriterSize(&flushingWriter{w: w, rc: rc}, 64<<10)
	var sink exportSink
	if r.csv {
		sink = newCSVSink(buf)
	} else {
		sink = &ndjsonSink{w: buf, enc: json.NewEncoder(buf)}
	}
	err := r.write(sink, buf)
	if r.ctx.Err() != nil {
		return nil // the client left
	}
	if err != nil {
		r.logger.ErrorContext(r.ctx, "export failed", "path", exportInstance, "error", err)
		p := problemFor(err, 0)
		_ = sink.fail(api.ProblemDetails{
			Type: p.Type, Title: p.Title, Status: p.Status, Detail: p.Detail,
			Instance: exportInstance, CorrelationId: requestid.FromContext(r.ctx), TraceId: problem.TraceID(r.ctx),
		})
	}
	if err := buf.Flush(); err == nil {
		_ = rc.Flush()
	}
	return nil
}

// write streams the range page by page, seq ascending, then the trailer.
func (r exportResponse) write(sink exportSink, buf *bufio.Writer) error {
	withMissing := r.filter.IsEmpty()
	var count, last int64
	// The next pages are read while this one is written: the database and
	// the encoding overlap, and memory holds exportReaders + 1 pages at
	// most.
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	read := func(ctx context.Context, after, through int64) pageOrError {
		page, err := r.store.FeedRange(ctx, r.filter, after, through)
		return pageOrError{page: page, err: err}
	}
	for next := range inorder.Ranges(ctx, r.from-1, r.to, exportPage, exportReaders, read) {
		if next.err != nil {
			return next.err
		}
		page := next.page
		items, missing := page.Items, page.Missing
		for len(items) > 0 || len(missing) > 0 {
			// Entries and missing entries, merged in seq order.
			if len(missing) == 0 || (len(items) > 0 && items[0].Seq < missing[0].Seq) {
				e := items[0]
				items = items[1:]
				var proof [][]byte
				if r.proofs {
					p, err := r.ledger.ProveEntry(r.ctx, e.ID, r.checkpoint.Size)
					if err != nil {
						return fmt.Errorf("prove entry %d: %w", e.Seq, err)
					}
					proof = hashesToAPI(p.Proof)
				}
				if err := sink.entry(e, proof); err != nil {
					return err
				}
				count, last = count+1, e.Seq
				continue
			}
			m := missing[0]
			missing = missing[1:]
			if !withMissing {
				continue
			}
			if err := sink.missing(m); err != nil {
				return err
			}
			count, last = count+1, m.Seq
		}
		if buf.Buffered() > 0 {
			if err := buf.Flush(); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err // the pages stopped early: no trailer
	}
	return sink.trailer(count, last, r.checkpoint)
}

// pageOrError is one read of the feed.
type pageOrError struct {
	page logstore.FeedPage
	err  error
}

// ndjsonSink writes one JSON object a line: an entry with appendSystemLog,
// into a line it reuses, the rest with enc.
type ndjsonSink struct {
	w    io.Writer
	enc  *json.Encoder
	line []byte
}

func (s *ndjsonSink) entry(e logstore.SealedEntry, proof [][]byte) error {
	seal := e.Seal
	entry := logToAPI(e.SystemLog, &seal)
	if proof != nil {
		return s.enc.Encode(api.ExportProvenEntry{Entry: entry, Proof: proof})
	}
	s.line = append(appendSystemLog(s.line[:0], &entry), '\n')
	_, err := s.w.Write(s.line)
	return err
}

func (s *ndjsonSink) missing(m logstore.MissingEntry) error {
	return s.enc.Encode(api.ExportMissing{Missing: api.MissingEntry{Seq: m.Seq, Id: m.ID, LeafHash: m.LeafHash}})
}

func (s *ndjsonSink) trailer(count, last int64, cp ledger.StoredCheckpoint) error {
	var t api.ExportTrailer
	t.Trailer.Count, t.Trailer.LastSeq, t.Trailer.TreeSize, t.Trailer.Checkpoint = count, last, cp.Size, cp.Note
	return s.enc.Encode(t)
}

func (s *ndjsonSink) fail(p api.ProblemDetails) error {
	return s.enc.Encode(api.ExportError{Error: p})
}

// CSVColumns are the columns of a CSV export, in order.
var CSVColumns = []string{"seq", "id", "timestamp", "level", "category", "message", "correlation_id",
	"user_id", "trace_id", "actor", "context", "leaf_hash"}

// csvSink writes a header row and one row per entry.
type csvSink struct {
	w      *csv.Writer
	header bool
}

func newCSVSink(w io.Writer) *csvSink { return &csvSink{w: csv.NewWriter(w)} }

func (s *csvSink) row(fields []string) error {
	if !s.header {
		s.header = true
		if err := s.w.Write(CSVColumns); err != nil {
			return err
		}
	}
	if err := s.w.Write(fields); err != nil {
		return err
	}
	s.w.Flush()
	return s.w.Error()
}

func (s *csvSink) entry(e logstore.SealedEntry, _ [][]byte) error {
	return s.row([]string{
		strconv.FormatInt(e.Seq, 10), e.ID.String(), e.Timestamp.UTC().Format(time.RFC3339Nano), e.Level, e.Category,
		e.Message, e.CorrelationID, deref(e.UserID), deref(e.TraceID), e.Actor, string(e.Context),
		base64.StdEncoding.EncodeToString(e.LeafHash),
	})
}

func (s *csvSink) missing(logstore.MissingEntry) error { return nil }

func (s *csvSink) trailer(int64, int64, ledger.StoredCheckpoint) error {
	if !s.header { // an empty export still names its columns
		s.header = true
		if err := s.w.Write(CSVColumns); err != nil {
			return err
		}
		s.w.Flush()
	}
	return s.w.Error()
}

func (s *csvSink) fail(p api.ProblemDetails) error {
	b, _ := json.Marshal(p)
	row := make([]string, len(CSVColumns))
	row[0], row[1] = "#error", string(b)
	return s.row(row)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// acceptFromContext is the Accept header of the request withRequest put
// on ctx: the export negotiates its format from it.
func acceptFromContext(ctx context.Context) string {
	if r := requestFrom(ctx); r != nil {
		return r.Header.Get("Accept")
	}
	return ""
}
