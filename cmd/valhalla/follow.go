package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/apiclient"
)

// filterFlags are the listing's filters, as flags of tail and export.
type filterFlags struct {
	levels      levelList
	minLevel    string
	category    string
	correlation string
	user        string
	trace       string
	since       time.Time
	until       time.Time
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.levels, "level", "only this level (repeatable)")
	fs.StringVar(&f.minLevel, "min-level", "", "only this severity and above")
	fs.StringVar(&f.category, "category", "", "only this category")
	fs.StringVar(&f.correlation, "correlation-id", "", "only this correlation id")
	fs.StringVar(&f.user, "user", "", "only this user id")
	fs.StringVar(&f.trace, "trace-id", "", "only entries written under this W3C trace id (32 hex digits)")
	fs.Func("since", "only at or after this RFC 3339 time", timeFlag("since", &f.since))
	fs.Func("until", "only before this RFC 3339 time", timeFlag("until", &f.until))
}

// timeFlag parses the RFC 3339 value of the flag name into into.
func timeFlag(name string, into *time.Time) func(string) error {
	return func(v string) error {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("--%s %q is not an RFC 3339 time", name, v)
		}
		*into = t
		return nil
	}
}

// values returns the filters as the generated parameters take them.
func (f *filterFlags) values() (levels *[]api.LogLevel, minLevel *api.LogLevel, category, correlation, user, trace *string, since, until *time.Time) {
	if len(f.levels) > 0 {
		levels = ptr([]api.LogLevel(f.levels))
	}
	if f.minLevel != "" {
		minLevel = ptr(api.LogLevel(strings.ToUpper(f.minLevel)))
	}
	if !f.since.IsZero() {
		since = &f.since
	}
	if !f.until.IsZero() {
		until = &f.until
	}
	return levels, minLevel, nonEmpty(f.category), nonEmpty(f.correlation), nonEmpty(f.user), nonEmpty(f.trace), since, until
}

// logsTail follows the live tail, printing each entry as it is sealed,
// reconnecting and resuming by itself until interrupted.
func logsTail(ctx context.Context, fs *flag.FlagSet, parse parser, cf *clientFlags, args []string, stdout, stderr io.Writer) error {
	var ff filterFlags
	ff.register(fs)
	after := fs.Int64("after", -1, "start after this seq (0: from the first entry); default: only new entries")
	rest, err := parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("logs tail: unexpected arguments %q", rest)
	}
	var p api.GetSystemLogStreamParams
	p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until = ff.values()
	if *after >= 0 {
		p.After = after
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	err = apiclient.Follow(ctx, client, p, func(e api.SystemLog) error {
		if err := printTailed(out, cf.json, e); err != nil {
			return err
		}
		return out.Flush()
	}, apiclient.FollowOptions{OnReconnect: func(after int64, why error) {
		fmt.Fprintf(stderr, "valhalla: stream interrupted (%s); resuming after seq %d\n", oneLine(why.Error(), 200), after)
	}})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // interrupted: the normal way to stop following
	}
	return err
}

// printTailed writes one followed entry: a JSON line, or one table row.
func printTailed(w io.Writer, asJSON bool, e api.SystemLog) error {
	if asJSON {
		return printLogs(w, true, []api.SystemLog{e})
	}
	seq := int64(0)
	if e.Seq != nil {
		seq = *e.Seq
	}
	_, err := fmt.Fprintf(w, "%-8d %s  %-8s %-16s %s\n", seq, e.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"),
		e.Level, oneLine(e.Category, 16), oneLine(e.Message, 160))
	return err
}

// logsExport writes an export of the sealed trail to stdout, with a
// progress line on stderr when stderr is a terminal. It fails when the
// export did not end with its trailer.
func logsExport(ctx context.Context, fs *flag.FlagSet, parse parser, cf *clientFlags, args []string, stdout, stderr io.Writer) error {
	var ff filterFlags
	ff.register(fs)
	fromSeq := fs.Int64("from-seq", 0, "first seq (default 1)")
	toSeq := fs.Int64("to-seq", 0, "last seq (default: the latest signed checkpoint)")
	format := fs.String("format", "ndjson", "ndjson or csv")
	proofs := fs.Bool("proofs", false, "give each entry its inclusion proof (NDJSON), so a filtered export verifies offline")
	rest, err := parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("logs export: unexpected arguments %q", rest)
	}
	var p api.ExportSystemLogsParams
	p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until = ff.values()
	if *fromSeq > 0 {
		p.FromSeq = fromSeq
	}
	if *toSeq > 0 {
		p.ToSeq = toSeq
	}
	switch *format {
	case "ndjson", "csv":
		p.Format = ptr(api.ExportSystemLogsParamsFormat(*format))
	default:
		return fmt.Errorf("logs export: --format %q: want ndjson or csv", *format)
	}
	if *proofs {
		p.Proofs = proofs
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.ExportSystemLogs(ctx, &p)
	if err != nil {
		return fmt.Errorf("logs export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return answerError(resp, body)
	}
	var progress *progressLine
	if isTerminal(stderr) {
		progress = &progressLine{w: stderr, start: time.Now()}
	}
	last, err := copyLines(stdout, resp.Body, progress)
	if progress != nil {
		progress.done()
	}
	if err != nil {
		return fmt.Errorf("logs export: %w (the file is incomplete)", err)
	}
	return exportEnding(*format, last)
}

// copyLines copies r to w line by line, counting lines for progress, and
// returns the last line.
func copyLines(w io.Writer, r io.Reader, progress *progressLine) ([]byte, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	bw := bufio.NewWriterSize(w, 256<<10)
	var last []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := bw.Write(line); werr != nil {
				return nil, werr
			}
			if err == nil { // a whole line
				last = append(last[:0], line...)
				progress.line()
			} else if !errors.Is(err, bufio.ErrBufferFull) {
				last = append(last[:0], line...)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return last, bw.Flush()
		default:
			_ = bw.Flush()
			return last, err
		}
	}
}

// exportEnding checks an export's last line: the trailer (NDJSON), not an
// error line (either format).
func exportEnding(format string, last []byte) error {
	last = bytes.TrimSpace(last)
	if format == "csv" {
		if bytes.HasPrefix(last, []byte("#error,")) {
			return fmt.Errorf("logs export: the server failed during the export (the file is incomplete): %s", oneLine(string(last), 300))
		}
		return nil
	}
	switch {
	case bytes.HasPrefix(last, []byte(`{"error":`)):
		return fmt.Errorf("logs export: the server failed during the export (the file is incomplete): %s", oneLine(string(last), 300))
	case !bytes.HasPrefix(last, []byte(`{"trailer":`)):
		return errors.New("logs export: the export ended without its trailer (the file is incomplete)")
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine redraws "N entries, R/s" on a terminal at most 10 times a
// second. A nil progressLine does nothing.
type progressLine struct {
	w     io.Writer
	start time.Time
	last  time.Time
	n     int64
}

func (p *progressLine) line() {
	if p == nil {
		return
	}
	p.n++
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw(now)
	}
}

func (p *progressLine) draw(now time.Time) {
	rate := float64(p.n) / max(now.Sub(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r%d entries, %.0f entries/s  ", p.n, rate)
}

func (p *progressLine) done() {
	p.draw(time.Now())
	fmt.Fprintln(p.w)
}
