package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/lifecycle"
)

const retentionUsage = `usage: valhalla retention run [--dry-run] [--retention 90d] [--partition-interval 1d] [flags]

Maintains system_logs' partitions once, as a server does every
--maintain-interval (docs/lifecycle.md): creates the partitions of the
current interval and the next two, moving into them any entries the
default partition took, then, with a retention, drops every partition
whose entries are all older than it. Before a drop, the entries an active
legal hold matches are kept in a partition of their own that every read
still sees; each drop is recorded, signed with the ledger's key, so
valhalla verify reports its entries as retired. Prints every partition
and what it does to it; with --dry-run, what it would do, changing
nothing. The command waits for no server: when one is maintaining, it
says so and exits 1.
`

// retentionCommand runs valhalla retention run.
func retentionCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, retentionUsage)
		return nil
	}
	if args[0] != "run" {
		fmt.Fprint(stderr, retentionUsage)
		return fmt.Errorf("retention: unknown subcommand %q", args[0])
	}
	var dryRun bool
	cfg, rest, err := parseConfig("retention run", lifecycleFlags, args[1:], getenv, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "print what the run would do and change nothing")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("retention run: unexpected arguments %q", rest)
	}
	pool, closeDB, err := openMigrated(ctx, cfg, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	logger := cliLogger(cfg, stderr)
	var key *ledger.Key
	if cfg.Retention > 0 && !dryRun {
		if key, err = ledgerKey(ctx, pool, cfg.LedgerKeyFile); err != nil {
			return fmt.Errorf("retention run: %w", err)
		}
	}
	m := lifecycle.New(pool, lifecycle.Options{Interval: cfg.PartitionInterval, Retention: cfg.Retention, Key: key, Logger: logger})
	rep, err := m.Run(ctx, dryRun)
	if errors.Is(err, lifecycle.ErrBusy) {
		return fmt.Errorf("retention run: %w; try again in a moment", err)
	}
	if err != nil {
		return err
	}
	return printReport(stdout, rep, cfg.Retention, dryRun)
}

// ledgerKey reads the ledger's signing key from path, which must exist
// (a new key would sign records no verifier trusts) and must be the key
// the ledger's checkpoints are signed with.
func ledgerKey(ctx context.Context, pool *pgxpool.Pool, path string) (*ledger.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the ledger key (--ledger-key-file, the servers' key): %w", err)
	}
	key, err := ledger.ParseKey(string(b))
	if err != nil {
		return nil, err
	}
	cp, err := ledger.NewReader(pool).Latest(ctx)
	if errors.Is(err, ledger.ErrNoCheckpoint) {
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	if origin, _, _ := strings.Cut(cp.Note, "\n"); origin != key.Name() {
		return nil, fmt.Errorf("the key in %s is %s, but the ledger's checkpoints are signed by %s", path, key.Name(), origin)
	}
	return key, nil
}

// printReport prints every partition and what the run did (or would do)
// to it, then a summary line.
func printReport(w io.Writer, rep lifecycle.Report, retention time.Duration, dryRun bool) error {
	will := map[bool]string{true: "would ", false: ""}[dryRun]
	policy := "retention: forever (nothing is dropped)"
	if retention > 0 {
		policy = fmt.Sprintf("retention: %s, cutoff %s (partitions ending at or before it are dropped)", retention, rep.Cutoff.Format(time.RFC3339))
	}
	fmt.Fprintln(w, policy)
	drops := map[string]lifecycle.Drop{}
	for _, d := range rep.Drops {
		drops[d.Partition.Name] = d
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tFROM\tTO\tROWS\tACTION")
	row := func(p lifecycle.Partition, rows, action string) {
		from, to := "-", "-"
		if !p.Default {
			from, to = p.From.Format(time.RFC3339), p.To.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, from, to, rows, action)
	}
	var retired, held int64
	dropped := 0
	dropAction := func(d lifecycle.Drop) string {
		dropped++
		retired += d.Retired
		held += d.Held
		parts := []string{fmt.Sprintf("%sdrop: %d sealed entries retired", will, d.Retired)}
		if len(d.Seqs) > 0 {
			parts[0] += " (seq " + ledger.FormatSeqRanges(d.Seqs) + ")"
		}
		if d.Unsealed > 0 {
			parts = append(parts, fmt.Sprintf("%d never sealed", d.Unsealed))
		}
		if d.Held > 0 {
			parts = append(parts, fmt.Sprintf("%d kept by legal holds", d.Held))
		}
		return strings.Join(parts, ", ")
	}
	for _, p := range rep.Partitions {
		rows := "~" + fmt.Sprint(max(p.Rows, 0))
		action := "keep"
		switch d, ok := drops[p.Name]; {
		case p.Default:
			action = "keep (takes entries no partition covers yet)"
		case ok && d.Waiting:
			action = "keep for now: entries still wait to be sealed"
		case ok:
			rows = fmt.Sprint(d.Retired + d.Unsealed + d.Held)
			action = dropAction(d)
		case p.Held:
			action = "keep (held entries)"
		}
		row(p, rows, action)
	}
	for _, p := range rep.Created {
		action := will + "create"
		if d, ok := drops[p.Name]; ok && !d.Waiting {
			action += ", then " + dropAction(d)
		}
		row(p, "-", action)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	created, drop := "created", "dropped"
	if dryRun {
		created, drop = "would create", "would drop"
	}
	_, err := fmt.Fprintf(w, "%s %d partitions (moving %d entries out of the default), %s %d partitions: %d entries retired, %d kept by legal holds\n",
		created, len(rep.Created), rep.Moved, drop, dropped, retired, held)
	return err
}

const holdsUsage = `usage:
  valhalla holds create --name NAME --reason TEXT [--category C] [--user-id U] [--since T] [--until T] [flags]
  valhalla holds list [flags]
  valhalla holds release NAME [flags]

A legal hold keeps the entries it matches (every criterion it sets; times
are RFC 3339, since inclusive, until exclusive) through retention: before
a partition is dropped they move to a partition of their own, which the
listing, the get and the feed read as any other. A released hold's
entries follow the retention again from the next run. Names are never
reused.
`

// holdsCommand creates, lists and releases legal holds.
func holdsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, holdsUsage)
		return nil
	}
	sub := args[0]
	var hold lifecycle.Hold
	var category, userID string
	var since, until time.Time
	cfg, rest, err := parseConfig("holds "+sub, databaseFlags, args[1:], getenv, stdout, stderr, func(fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&hold.Name, "name", "", "the hold's name (required)")
			fs.StringVar(&hold.Reason, "reason", "", "why the entries are held, e.g. the matter or ticket (required)")
			fs.StringVar(&category, "category", "", "hold only entries of this category")
			fs.StringVar(&userID, "user-id", "", "hold only entries of this user id")
			fs.Func("since", "hold only entries at or after this RFC 3339 time", timeFlag("since", &since))
			fs.Func("until", "hold only entries before this RFC 3339 time", timeFlag("until", &until))
		}
	})
	if err != nil {
		return err
	}
	switch {
	case sub == "create" && len(rest) == 0:
		if hold.Name == "" || hold.Reason == "" {
			return errors.New("holds create: --name and --reason are required")
		}
	case sub == "list" && len(rest) == 0:
	case sub == "release" && len(rest) == 1:
	default:
		fmt.Fprint(stderr, holdsUsage)
		return fmt.Errorf("holds: unexpected arguments %q", args)
	}
	pool, closeDB, err := openMigrated(ctx, cfg, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	holds := lifecycle.NewHolds(pool)
	switch sub {
	case "create":
		if category != "" {
			hold.Category = &category
		}
		if userID != "" {
			hold.UserID = &userID
		}
		if !since.IsZero() {
			hold.Since = &since
		}
		if !until.IsZero() {
			hold.Until = &until
		}
		if err := holds.Create(ctx, hold); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created legal hold %q: %s\n", hold.Name, criteria(hold))
		return nil
	case "release":
		if err := holds.Release(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released legal hold %q; its entries follow the retention from the next run\n", rest[0])
		return nil
	}
	list, err := holds.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOLDS\tCREATED\tRELEASED\tREASON")
	for _, h := range list {
		released := "-"
		if h.ReleasedAt != nil {
			released = h.ReleasedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, criteria(h), h.CreatedAt.UTC().Format(time.RFC3339), released, h.Reason)
	}
	return tw.Flush()
}

// criteria describes what a hold matches.
func criteria(h lifecycle.Hold) string {
	var parts []string
	if h.Category != nil {
		parts = append(parts, "category="+*h.Category)
	}
	if h.UserID != nil {
		parts = append(parts, "user_id="+*h.UserID)
	}
	if h.Since != nil {
		parts = append(parts, "since="+h.Since.UTC().Format(time.RFC3339))
	}
	if h.Until != nil {
		parts = append(parts, "until="+h.Until.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "every entry"
	}
	return strings.Join(parts, ",")
}
