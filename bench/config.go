package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is what one benchmark run measures and where. A flag wins over its
// environment variable, which wins over the default.
type config struct {
	// Duration is how long each measured run lasts.
	Duration time.Duration
	// Warmup precedes each comparison and is not counted.
	Warmup time.Duration
	// Rounds is how many slices each comparison's Duration is cut into;
	// the contenders take turns slice by slice.
	Rounds int
	// Concurrency is the number of requests (or goroutines) in flight in
	// every write run and floor, and in the list throughput runs.
	Concurrency int
	// ListConcurrency is the concurrency of the list latency runs.
	ListConcurrency int
	// Rows is the size of the preloaded table the list runs read.
	Rows int
	// DataDir holds the benchmark's PostgreSQL cluster, the cached
	// preload and the server logs.
	DataDir string
	// Server is the valhalla binary under test.
	Server string
	// Only restricts the run to some parts (see parts); empty runs all
	// but the cost curve.
	Only []string
	// ScaleSizes are the table sizes of the cost curve, growing.
	ScaleSizes []int
}

// parts are the pieces of a run, in the order they run.
var parts = []string{"write", "batch", "list", "plans", "validation", "ledger", "scale"}

// onlyAsked are the parts that run only when asked for by name: the cost
// curve loads tens of millions of rows (make bench-scale).
var onlyAsked = []string{"scale"}

// runs reports whether part is part of this run.
func (c config) runs(part string) bool {
	if len(c.Only) == 0 {
		return !slices.Contains(onlyAsked, part)
	}
	return slices.Contains(c.Only, part)
}

// parseConfig parses args with defaults from getenv.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("valhalla-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.String("duration", envOr(getenv, "BENCH_DURATION", "10s"),
		"length of each measured run (BENCH_DURATION)")
	warmup := fs.String("warmup", envOr(getenv, "BENCH_WARMUP", "2s"),
		"unmeasured load before each run (BENCH_WARMUP)")
	rounds := fs.String("rounds", envOr(getenv, "BENCH_ROUNDS", "5"),
		"slices each run is cut into, taken in turns with the runs it is compared with (BENCH_ROUNDS)")
	concurrency := fs.String("concurrency", envOr(getenv, "BENCH_CONCURRENCY", "32"),
		"requests in flight in the write runs, their floors and the list throughput runs (BENCH_CONCURRENCY)")
	listConcurrency := fs.String("list-concurrency", envOr(getenv, "BENCH_LIST_CONCURRENCY", "4"),
		"requests in flight in the list latency runs (BENCH_LIST_CONCURRENCY)")
	rows := fs.String("rows", envOr(getenv, "BENCH_ROWS", "1000000"),
		"rows preloaded for the list runs (BENCH_ROWS)")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr(getenv, "BENCH_DATA_DIR", "./.valhalla-bench"),
		"the benchmark's PostgreSQL cluster, preload cache and logs (BENCH_DATA_DIR)")
	fs.StringVar(&cfg.Server, "server", envOr(getenv, "BENCH_SERVER", "./bin/valhalla"),
		"the valhalla binary to measure (BENCH_SERVER)")
	scaleSizes := fs.String("scale-sizes", envOr(getenv, "BENCH_SCALE_SIZES", "1M,10M,30M"),
		"table sizes of the cost curve (scale), growing; a size the disk has no room for is skipped (BENCH_SCALE_SIZES)")
	only := fs.String("only", getenv("BENCH_ONLY"),
		"comma-separated parts to run: "+strings.Join(parts, ",")+" (BENCH_ONLY; default all)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var (
		errs []error
		err  error
	)
	parseDuration := func(name, v string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < min {
			errs = append(errs, fmt.Errorf("%s %q: want a duration of at least %s", name, v, min))
		}
		return d
	}
	parseInt := func(name, v string, min int) int {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(v, "_", "")))
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s %q: want a whole number of at least %d", name, v, min))
		}
		return n
	}
	cfg.Duration = parseDuration("duration", *duration, time.Second)
	cfg.Warmup = parseDuration("warmup", *warmup, 0)
	cfg.Rounds = parseInt("rounds", *rounds, 1)
	if cfg.Rounds > 0 && cfg.Duration/time.Duration(cfg.Rounds) < 500*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %s in %d rounds: want slices of at least 500ms", cfg.Duration, cfg.Rounds))
	}
	cfg.Concurrency = parseInt("concurrency", *concurrency, 1)
	cfg.ListConcurrency = parseInt("list concurrency", *listConcurrency, 1)
	cfg.Rows = parseInt("rows", *rows, minRows)
	if cfg.ScaleSizes, err = parseSizes(*scaleSizes); err != nil {
		errs = append(errs, err)
	}
	for p := range strings.SplitSeq(*only, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(parts, p) {
			errs = append(errs, fmt.Errorf("only: unknown part %q, want some of %s", p, strings.Join(parts, ",")))
		}
		cfg.Only = append(cfg.Only, p)
	}
	return cfg, errors.Join(errs...)
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}
