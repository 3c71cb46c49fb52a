// Command valhalla-bench measures the whole stack against its floors on one
// local PostgreSQL and prints a table, then one `target` line per goal.
//
//	valhalla-bench [flags]   run every benchmark (make bench)
//
// It starts a durable local cluster under its data dir, runs bin/valhalla
// as a separate process so its peak RSS can be read, and drives it with
// vegeta. Flags take their defaults from BENCH_DURATION, BENCH_CONCURRENCY,
// BENCH_ROWS and friends; see valhalla-bench -h.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "valhalla-bench:", err)
		os.Exit(1)
	}
}

// run is the whole program. The hidden first arguments "http-floor" and
// "hand-written" serve the do-nothing handler of the HTTP floor and the
// hand-written reference server instead: the benchmark starts itself that
// way, so they run as separate processes like the server.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case httpFloorCommand:
			return serveHTTPFloor(ctx, args[1:], stdout)
		case handWrittenCommand:
			return serveHandWritten(ctx, args[1:], stdout)
		}
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	return benchmark(ctx, cfg, stdout, stderr)
}
