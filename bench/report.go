package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valhalla-platform/valhalla/internal/database"
)

// Goals from issue 5; they are reported, never asserted.
const (
	goalWriteRatio      = 0.65 // full stack ÷ database floor, at least
	goalBatchRatio      = 0.5  // batch ÷ COPY floor, at least
	goalDeepRatio       = 1.5  // deep page ÷ first page, at most
	goalFirstPageP99    = 10 * time.Millisecond
	goalValidationNs    = 20_000 // per write request, under
	goalValidationAlloc = 100    // per write request, under
	goalPeakRSSMiB      = 64     // under
)

// validationBenchmark is the Go benchmark whose cost is the contract's per
// write request.
const validationBenchmark = "ValidateWrite"

// report prints the table, then one line per target:
//
//	target <name> <measured> <goal> <pass|miss>
func report(w io.Writer, cfg config, res results) {
	m := res.Machine
	fmt.Fprintf(w, "Valhalla benchmark, %s: %s per run after %s warm-up, concurrency %d (list latency at %d)\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cfg.Duration, cfg.Warmup, cfg.Concurrency, cfg.ListConcurrency)
	fmt.Fprintf(w, "machine: %d cores (%s), %.0f GiB, Linux %s, %s, PostgreSQL %s (local cluster, unix socket, fsync on)\n",
		m.Cores, m.CPU, m.MemoryGiB, m.Kernel, m.Go, orUnknown(m.PostgreSQL))
	fmt.Fprintf(w, "server: valhalla serve, pool of %d connections (database.DefaultMaxConns); %d interleaved slices per run\n",
		database.DefaultMaxConns, cfg.Rounds)
	fmt.Fprintf(w, "noise: %.2f cores busy on the idle machine before the runs; load generator, server and PostgreSQL share the %d cores\n",
		m.IdleBusy, m.Cores)
	fmt.Fprintln(w, "cpu columns: cores used during the run by the load generator (this process), the server, PostgreSQL,")
	fmt.Fprintln(w, "  interrupts (loopback TCP) and anything else (other processes: noise)")

	var targets []target
	if cfg.runs("write") {
		wr := res.Writes
		section(w, fmt.Sprintf("Single write: POST /system/logs, concurrency %d", cfg.Concurrency))
		tw := table(w)
		fmt.Fprintln(tw, "  run\treq/s\tp50\tp99\terrors\tcpu: loadgen\tserver\tpostgres\tirq\tother\t")
		writeRow(tw, "full stack (valhalla serve)", wr.Write, 1)
		writeRow(tw, "hand-written net/http + pgx, no contract", wr.HandWritten, 1)
		writeRow(tw, "database floor: an INSERT per entry, server's pool", wr.DBFloor, 1)
		writeRow(tw, "database ceiling: a connection per worker", wr.DBCeiling, 1)
		writeRow(tw, "store floor: logstore.Insert, grouped, no HTTP", wr.StoreFloor, 1)
		writeRow(tw, "HTTP floor: do-nothing handler", wr.HTTPFloor, 1)
		tw.Flush()
		ratio := ratio(wr.Write.PerSecond(), wr.DBFloor.PerSecond())
		fmt.Fprintf(w, "  ratio full stack ÷ database floor: %.2f   (hand-written ÷ database floor: %.2f; full stack ÷ hand-written: %.2f)\n",
			ratio, wr.HandWritten.PerSecond()/max(wr.DBFloor.PerSecond(), 1), wr.Write.PerSecond()/max(wr.HandWritten.PerSecond(), 1))
		fmt.Fprintf(w, "  full stack ÷ store floor: %.2f (the cost of HTTP, authentication and the contract once commits are grouped)\n",
			wr.Write.PerSecond()/max(wr.StoreFloor.PerSecond(), 1))
		targets = append(targets, atLeast("single_write_ratio", ratio, goalWriteRatio))
	}
	if cfg.runs("batch") {
		wr := res.Writes
		section(w, fmt.Sprintf("Batch write: POST /system/logs/batch, %d entries, concurrency %d", batchSize, cfg.Concurrency))
		tw := table(w)
		fmt.Fprintln(tw, "  run\trows/s\tp50\tp99\terrors\tcpu: loadgen\tserver\tpostgres\tirq\tother\t")
		writeRow(tw, "full stack", wr.Batch, batchSize)
		writeRow(tw, "COPY floor (pgx.CopyFrom, same rows)", wr.CopyFloor, batchSize)
		tw.Flush()
		ratio := ratio(wr.Batch.PerSecond(), wr.CopyFloor.PerSecond())
		fmt.Fprintf(w, "  ratio batch ÷ COPY floor: %.2f\n", ratio)
		targets = append(targets, atLeast("batch_write_ratio", ratio, goalBatchRatio))
	}
	if cfg.runs("list") {
		lr := res.Lists
		cache := "cached from an earlier run"
		if lr.Loaded {
			cache = "loaded by COPY in this run"
		}
		section(w, fmt.Sprintf("List: GET /system/logs?…&limit=%d on %s rows (%s)", pageSize, thousands(int64(lr.Rows)), cache))
		tw := table(w)
		fmt.Fprintf(tw, "  filter\tpage\tp50 @%d\tp99 @%d\treq/s @%d\tother cpu @%d\treq/s @%d\tp99 @%d\tdeep÷first\t\n",
			cfg.ListConcurrency, cfg.ListConcurrency, cfg.ListConcurrency, cfg.ListConcurrency, cfg.Concurrency, cfg.Concurrency)
		for _, r := range lr.Results {
			fmt.Fprintf(tw, "  %s\t1\t%s\t%s\t%s\t%.2f\t%s\t%s\t\t\n", r.Scenario.Name,
				ms(r.First.P50), ms(r.First.P99), rate(r.First.PerSecond()), r.First.CPU.Other(), rate(r.FirstMax.PerSecond()), ms(r.FirstMax.P99))
			fmt.Fprintf(tw, "  \t%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t\n", r.Depth,
				ms(r.Deep.P50), ms(r.Deep.P99), rate(r.Deep.PerSecond()), r.Deep.CPU.Other(), rate(r.DeepMax.PerSecond()), ms(r.DeepMax.P99), r.Ratio())
			if !r.Scenario.Goals {
				continue
			}
			name := slug(r.Scenario.Name)
			targets = append(targets,
				atMost("list_deep_ratio."+name, r.Ratio(), goalDeepRatio),
				below(fmt.Sprintf("list_first_p99_ms_c%d.%s", cfg.ListConcurrency, name),
					millis(r.First.P99), millis(goalFirstPageP99)))
		}
		tw.Flush()
		var errs int64
		for _, r := range lr.Results {
			errs += r.First.Errors + r.Deep.Errors + r.FirstMax.Errors + r.DeepMax.Errors
		}
		fmt.Fprintf(w, "  failed list requests: %d\n", errs)
	}
	if cfg.runs("plans") {
		p := res.Plans
		section(w, "List plans: go test -run "+planTest+" ./internal/logstore (100k rows, EXPLAIN ANALYZE)")
		fmt.Fprintf(w, "  %d of %d checks passed: each filter's first page and a page after a cursor read in keyset order\n  from a matching index, and the count of include_total uses an index\n", p.Passed, p.Passed+p.Failed)
		targets = append(targets, target{"list_plans_use_matching_index",
			fmt.Sprintf("%d/%d", p.Passed, p.Passed+p.Failed), "all", p.Failed == 0 && p.Passed > 0})
	}
	if cfg.runs("validation") {
		section(w, "Validation and observability cost: go test -bench -benchmem ./internal/contract ./internal/observe")
		tw := table(w)
		fmt.Fprintln(tw, "  benchmark\tns/op\tB/op\tallocs/op\t")
		for _, b := range res.Validation {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t\n", b.Name, thousands(int64(b.NsPerOp)), thousands(b.BytesPerOp), b.AllocsPerOp)
			if b.Name == validationBenchmark {
				targets = append(targets,
					below("validation_ns_per_write", b.NsPerOp, goalValidationNs),
					below("validation_allocs_per_write", float64(b.AllocsPerOp), goalValidationAlloc))
			}
		}
		tw.Flush()
	}
	if cfg.runs("write") || cfg.runs("batch") {
		section(w, "Memory: valhalla serve peak RSS (VmHWM)")
		wr := res.Writes
		if cfg.runs("write") {
			fmt.Fprintf(w, "  after the single-write run: %.1f MiB\n", mib(wr.PeakRSS))
			targets = append(targets, below("peak_rss_mib", mib(wr.PeakRSS), goalPeakRSSMiB))
		}
		if cfg.runs("batch") {
			fmt.Fprintf(w, "  after the batch run too:    %.1f MiB\n", mib(wr.PeakRSSBatch))
		}
	}
	fmt.Fprintln(w)
	for _, t := range targets {
		fmt.Fprintln(w, t)
	}
}

// target is one goal and how the run measured against it.
type target struct {
	name, measured, goal string
	pass                 bool
}

func (t target) String() string {
	verdict := "miss"
	if t.pass {
		verdict = "pass"
	}
	return fmt.Sprintf("target %s %s %s %s", t.name, t.measured, t.goal, verdict)
}

func atLeast(name string, v, goal float64) target {
	return target{name, fmt.Sprintf("%.2f", v), fmt.Sprintf(">=%g", goal), v >= goal}
}

func atMost(name string, v, goal float64) target {
	return target{name, fmt.Sprintf("%.2f", v), fmt.Sprintf("<=%g", goal), v <= goal}
}

func below(name string, v, goal float64) target {
	return target{name, strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), "."), fmt.Sprintf("<%g", goal), v < goal}
}

// writeRow prints one write run; perRequest turns requests into rows.
func writeRow(tw io.Writer, name string, s stats, perRequest int) {
	fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name,
		rate(s.PerSecond()*float64(perRequest)), ms(s.P50), ms(s.P99), s.Errors,
		s.CPU.Loadgen, s.CPU.Server, s.CPU.Postgres, s.CPU.Interrupts, s.CPU.Other())
}

func section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n%s\n", title)
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", millis(d))
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func rate(perSecond float64) string { return thousands(int64(perSecond + 0.5)) }

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// slug turns a scenario name into a target name part: "category+time range"
// becomes "category_time_range".
func slug(name string) string {
	return strings.NewReplacer("+", "_", " ", "_").Replace(name)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
