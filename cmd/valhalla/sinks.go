package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valhalla-platform/valhalla/internal/delivery"
	"github.com/valhalla-platform/valhalla/internal/logstore"
)

var sinksUsage = `usage:
  valhalla sinks create --name NAME --url URL --format webhook|splunk-hec [--filter category=C,min_level=L] [--secret S]
  valhalla sinks list
  valhalla sinks pause|resume|delete NAME
  valhalla sinks replay NAME --from-seq N

Sinks receive the sealed trail, pushed by the servers on the database
(--database-url, or the local cluster under --data-dir, also while serve
runs on it): in seq order, in batches, at least once, from the first entry
(docs/delivery.md). A webhook sink signs each batch per Standard Webhooks
with --secret (whsec_ and base64; generated and printed once when omitted);
a splunk-hec sink sends --secret as its HEC token. replay delivers again
from seq N, as new batches.
`

// sinksCommand creates, lists, pauses, resumes, deletes and replays sinks.
func sinksCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, sinksUsage)
		return nil
	}
	sub := args[0]
	var spec delivery.Spec
	var filterText string
	var fromSeq int64
	cfg, rest, err := parseConfig("sinks "+sub, databaseFlags, args[1:], getenv, stdout, stderr, func(fs *flag.FlagSet) {
		switch sub {
		case "create":
			fs.StringVar(&spec.Name, "name", "", "the sink's name (required)")
			fs.StringVar(&spec.URL, "url", "", "where deliveries are POSTed, http or https (required)")
			fs.StringVar(&spec.Format, "format", "", "webhook or splunk-hec (required)")
			fs.StringVar(&filterText, "filter", "", "deliver only matching entries: category=C,min_level=L")
			fs.StringVar(&spec.Secret, "secret", "", "webhook signing secret (whsec_...; generated when omitted) or the Splunk HEC token")
		case "replay":
			fs.Int64Var(&fromSeq, "from-seq", 0, "deliver again from this seq (required, at least 1)")
		}
	})
	if err != nil {
		return err
	}
	switch {
	case sub == "create" && len(rest) == 0:
		if spec.Name == "" || spec.URL == "" || spec.Format == "" {
			return errors.New("sinks create: --name, --url and --format are required")
		}
		if spec.Filter, err = parseSinkFilter(filterText); err != nil {
			return fmt.Errorf("sinks create: %w", err)
		}
	case sub == "list" && len(rest) == 0:
	case (sub == "pause" || sub == "resume" || sub == "delete") && len(rest) == 1:
	case sub == "replay" && len(rest) == 1:
		if fromSeq < 1 {
			return errors.New("sinks replay: --from-seq N is required, at least 1")
		}
	default:
		fmt.Fprint(stderr, sinksUsage)
		return fmt.Errorf("sinks: unexpected arguments %q", args)
	}

	pool, closeDB, err := openMigrated(ctx, cfg, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	sinks := delivery.NewStore(pool)
	switch sub {
	case "create":
		secret, err := sinks.Create(ctx, spec)
		if err != nil {
			return err
		}
		if spec.Format == delivery.FormatWebhook && spec.Secret == "" {
			fmt.Fprintln(stdout, secret)
			fmt.Fprintf(stderr, "created sink %q; its signing secret above is shown only now (verify deliveries with it)\n", spec.Name)
			return nil
		}
		fmt.Fprintf(stdout, "created sink %q\n", spec.Name)
		return nil
	case "pause", "resume":
		if err := sinks.SetPaused(ctx, rest[0], sub == "pause"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd sink %q\n", sub, rest[0])
		return nil
	case "delete":
		if err := sinks.Delete(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted sink %q\n", rest[0])
		return nil
	case "replay":
		if err := sinks.Replay(ctx, rest[0], fromSeq); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sink %q delivers again from seq %d\n", rest[0], fromSeq)
		return nil
	}
	list, err := sinks.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tURL\tFILTER\tSTATE\tCURSOR\tLAG\tLAST DELIVERY\tLAST ERROR")
	for _, s := range list {
		state := "active"
		switch {
		case s.Paused:
			state = "paused"
		case int(s.Failures) >= delivery.DefaultFailuresToOpen:
			state = fmt.Sprintf("failing (%d)", s.Failures)
		case s.Failures > 0:
			state = fmt.Sprintf("retrying (%d)", s.Failures)
		}
		lag := strconv.FormatInt(s.LagEntries, 10)
		if s.LagEntries > 0 {
			lag += " (" + time.Duration(s.LagSeconds*float64(time.Second)).Round(time.Second).String() + ")"
		}
		last, lastErr := "-", "-"
		if s.LastDeliveredAt != nil {
			last = s.LastDeliveredAt.UTC().Format(time.RFC3339)
		}
		if s.LastError != nil {
			lastErr = oneLine(*s.LastError, 80)
			if s.LastErrorAt != nil {
				lastErr = s.LastErrorAt.UTC().Format(time.RFC3339) + " " + lastErr
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", oneLine(s.Name, 64), s.Format, oneLine(s.Url, 80),
			oneLine(filterString(s.Filter()), 60), state, s.Cursor, lag, last, lastErr)
	}
	return tw.Flush()
}

// parseSinkFilter reads --filter: category=C and min_level=L, separated by
// commas.
func parseSinkFilter(s string) (logstore.Filter, error) {
	var f logstore.Filter
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case ok && k == "category" && v != "":
			f.Category = &v
		case ok && k == "min_level" && v != "":
			f.MinLevel = strings.ToUpper(v)
		default:
			return f, fmt.Errorf("--filter %q: want category=C and/or min_level=L, separated by commas", s)
		}
	}
	return f, nil
}

// filterString shows a sink's filter as --filter takes it, or "-".
func filterString(f logstore.Filter) string {
	var parts []string
	if f.Category != nil {
		parts = append(parts, "category="+*f.Category)
	}
	if f.MinLevel != "" {
		parts = append(parts, "min_level="+f.MinLevel)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
