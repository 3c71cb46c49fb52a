package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/apiclient"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

const logsUsage = `usage:
  valhalla logs write [flags] MESSAGE   write an entry (--level, --category, --user, --correlation-id, --context JSON)
  valhalla logs get [flags] ID          show one entry
  valhalla logs list [flags]            list entries, newest first (--level, --min-level, --category,
                                        --correlation-id, --trace-id, --user, --since, --until, --limit, --all)
  valhalla logs tail [flags]            follow new entries as they are sealed, resuming by itself
                                        (the list filters, --trace-id, --after SEQ)
  valhalla logs export [flags] > FILE   export the sealed trail (the list filters, --trace-id, --from-seq,
                                        --to-seq, --format ndjson|csv, --proofs); verify it with
                                        valhalla verify --export FILE --key KEY

common flags: --server URL (VALHALLA_URL), --token T (VALHALLA_TOKEN), --json, --request-id ID
`

// parser parses a logs command's arguments (see parseFlags).
type parser func(args []string) ([]string, error)

// clientFlags are the flags every logs command takes.
type clientFlags struct {
	server    string
	token     string
	requestID string
	json      bool
	// envToken is VALHALLA_TOKEN, used when --token is not given.
	envToken string
}

func (c *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.server, "server", envOr(getenv, "VALHALLA_URL", "http://127.0.0.1:8080"), "Valhalla's base URL (VALHALLA_URL)")
	// The environment's token is read here but never shown as the flag's
	// default: -h would print it.
	c.envToken = getenv("VALHALLA_TOKEN")
	fs.StringVar(&c.token, "token", "", "bearer token (default: VALHALLA_TOKEN's value, never printed)")
	fs.StringVar(&c.requestID, "request-id", "", "X-Request-ID to send (default: the server mints one)")
	fs.BoolVar(&c.json, "json", false, "print JSON lines instead of a table")
}

// client returns the generated client (through apiclient, so a trace
// context and request id on the call's context travel too), sending the
// token and the --request-id.
func (c *clientFlags) client() (*api.ClientWithResponses, error) {
	return apiclient.New(c.server, api.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		token := c.token
		if token == "" {
			token = c.envToken
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if c.requestID != "" {
			req.Header.Set(requestid.Header, c.requestID)
		}
		return nil
	}))
}

// levelList collects a repeatable --level flag.
type levelList []api.LogLevel

func (l *levelList) String() string { return fmt.Sprint(*l) }

func (l *levelList) Set(v string) error {
	*l = append(*l, api.LogLevel(strings.ToUpper(v)))
	return nil
}

// logsCommand runs `valhalla logs write|get|list|tail|export` against a server through
// the generated client. A problem answer becomes a one-line error naming the
// request id.
func logsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, logsUsage)
		return errors.New("logs: missing command")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, logsUsage)
		return nil
	}
	fs := flag.NewFlagSet("valhalla logs "+args[0], flag.ContinueOnError)
	var cf clientFlags
	parse := func(args []string) ([]string, error) { return parseFlags(fs, args, stdout, stderr) }
	cf.register(fs, getenv)
	switch args[0] {
	case "write":
		return logsWrite(ctx, fs, parse, &cf, args[1:], stdout)
	case "get":
		return logsGet(ctx, parse, &cf, args[1:], stdout)
	case "list":
		return logsList(ctx, fs, parse, &cf, args[1:], stdout)
	case "tail":
		return logsTail(ctx, fs, parse, &cf, args[1:], stdout, stderr)
	case "export":
		return logsExport(ctx, fs, parse, &cf, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, logsUsage)
		return fmt.Errorf("logs: unknown command %q", args[0])
	}
}

func logsWrite(ctx context.Context, fs *flag.FlagSet, parse parser, cf *clientFlags, args []string, stdout io.Writer) error {
	level := fs.String("level", "", "DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)")
	category := fs.String("category", "", "category (default general)")
	user := fs.String("user", "", "user id")
	correlation := fs.String("correlation-id", "", "correlation id (default: the request id)")
	contextJSON := fs.String("context", "", "context, a JSON object")
	rest, err := parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("logs write: want exactly one MESSAGE argument (quote it)")
	}
	body := api.SystemLogCreate{Message: rest[0]}
	if *level != "" {
		body.Level = ptr(api.LogLevel(strings.ToUpper(*level)))
	}
	body.Category = nonEmpty(*category)
	body.UserId = nonEmpty(*user)
	body.CorrelationId = nonEmpty(*correlation)
	if *contextJSON != "" {
		raw := json.RawMessage(*contextJSON)
		if !json.Valid(raw) {
			return errors.New("logs write: --context is not valid JSON")
		}
		body.Context = &raw
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.CreateSystemLogWithResponse(ctx, &api.CreateSystemLogParams{}, body)
	if err != nil {
		return fmt.Errorf("logs write: %w", err)
	}
	if resp.JSON201 == nil {
		return answerError(resp.HTTPResponse, resp.Body)
	}
	return printLogs(stdout, cf.json, []api.SystemLog{*resp.JSON201})
}

func logsGet(ctx context.Context, parse parser, cf *clientFlags, args []string, stdout io.Writer) error {
	rest, err := parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("logs get: want exactly one ID argument")
	}
	id, err := uuid.Parse(rest[0])
	if err != nil {
		return fmt.Errorf("logs get: %q is not an id (a UUID)", rest[0])
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.GetSystemLogWithResponse(ctx, id, &api.GetSystemLogParams{})
	if err != nil {
		return fmt.Errorf("logs get: %w", err)
	}
	if resp.JSON200 == nil {
		return answerError(resp.HTTPResponse, resp.Body)
	}
	return printLogs(stdout, cf.json, []api.SystemLog{*resp.JSON200})
}

func logsList(ctx context.Context, fs *flag.FlagSet, parse parser, cf *clientFlags, args []string, stdout io.Writer) error {
	var ff filterFlags
	ff.register(fs)
	limit := fs.Int("limit", 50, "entries per page (1-500)")
	all := fs.Bool("all", false, "follow cursors to the last page")
	rest, err := parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("logs list: unexpected arguments %q", rest)
	}
	params := api.ListSystemLogsParams{Limit: ptr(int32(*limit))}
	params.Level, params.MinLevel, params.Category, params.CorrelationId, params.UserId, params.TraceId, params.Since, params.Until = ff.values()
	client, err := cf.client()
	if err != nil {
		return err
	}
	var items []api.SystemLog
	for {
		resp, err := client.ListSystemLogsWithResponse(ctx, &params)
		if err != nil {
			return fmt.Errorf("logs list: %w", err)
		}
		if resp.JSON200 == nil {
			return answerError(resp.HTTPResponse, resp.Body)
		}
		page := resp.JSON200
		if cf.json { // stream JSON lines page by page
			if err := printLogs(stdout, true, page.Items); err != nil {
				return err
			}
		} else {
			items = append(items, page.Items...)
		}
		if !*all || page.NextCursor == nil {
			break
		}
		params.Cursor = page.NextCursor
	}
	if cf.json {
		return nil
	}
	return printLogs(stdout, false, items)
}

// answerError turns a non-success answer into one line: the problem's status,
// title, detail and violations, and the request id.
func answerError(resp *http.Response, body []byte) error {
	id := resp.Header.Get(requestid.Header)
	var p api.ProblemDetails
	if err := json.Unmarshal(body, &p); err != nil || p.Status == 0 {
		return fmt.Errorf("unexpected answer %s (request id %s)", resp.Status, id)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", p.Status, p.Title, p.Detail)
	if p.Errors != nil {
		for _, e := range *p.Errors {
			where := ""
			switch {
			case e.Pointer != nil:
				where = *e.Pointer
			case e.Parameter != nil:
				where = *e.Parameter
			case e.Header != nil:
				where = *e.Header
			}
			fmt.Fprintf(&b, "; %s: %s", where, e.Detail)
		}
	}
	fmt.Fprintf(&b, " (request id %s)", p.CorrelationId)
	return errors.New(oneLine(b.String(), 0))
}

// printLogs writes entries as JSON lines or as a table.
func printLogs(w io.Writer, asJSON bool, items []api.SystemLog) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, l := range items {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMESTAMP\tLEVEL\tCATEGORY\tUSER\tCORRELATION ID\tID\tMESSAGE")
	for _, l := range items {
		user := "-"
		if l.UserId != nil {
			user = *l.UserId
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			l.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), l.Level, oneLine(l.Category, 32), oneLine(user, 32),
			oneLine(l.CorrelationId, 40), l.Id, oneLine(l.Message, 100))
	}
	return tw.Flush()
}

// oneLine turns line breaks and tabs into spaces, escapes every other
// character a terminal would act on rather than show (C0 and C1 controls, DEL, bidi overrides and isolates, line and
// paragraph separators) as \uXXXX and, when max > 0, cuts s to max runes,
// so one entry stays one table row and cannot move the cursor, set a
// title, or reorder what is shown.
func oneLine(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			b.WriteByte(' ') // a line break or tab only breaks the row
			continue
		}
		if unsafeForTerminal(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	out := []rune(b.String())
	if max > 0 && len(out) > max {
		return string(out[:max-1]) + "…"
	}
	return string(out)
}

// unsafeForTerminal reports whether r is a control, format or separator
// character a terminal may interpret.
func unsafeForTerminal(r rune) bool {
	switch {
	case r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f): // C0, DEL, C1
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, // bidi embeddings, overrides, isolates
		r == 0x200e, r == 0x200f, r == 0x061c, // bidi marks
		r == 0x2028, r == 0x2029, r == utf8.RuneError: // line and paragraph separators; invalid UTF-8
		return true
	}
	return unicode.Is(unicode.Cf, r) && r != 0x200d // other format characters, but the emoji joiner
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
