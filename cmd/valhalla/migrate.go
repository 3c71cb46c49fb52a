package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/valhalla-platform/valhalla/internal/database"
)

// migrate applies migrations (up) or lists them (status), against the same
// database serve would use; a local cluster that serve runs is used as it is.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseConfig("migrate", databaseFlags, args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "up" && rest[0] != "status") {
		return fmt.Errorf("usage: valhalla migrate up|status [flags]")
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	pool, closeDB, err := openDatabase(ctx, cfg, getenv, logger, true)
	if err != nil {
		return err
	}
	defer closeDB()

	if rest[0] == "up" {
		applied, err := database.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		for _, m := range applied {
			fmt.Fprintf(stdout, "applied %05d %s (%s)\n", m.Source.Version, m.Source.Path, m.Duration.Round(time.Millisecond))
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "no pending migrations")
		}
		return nil
	}
	status, err := database.MigrationStatus(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range status {
		applied := "-"
		if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%05d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, s.Source.Path)
	}
	return tw.Flush()
}
