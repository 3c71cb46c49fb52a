package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valhalla-platform/valhalla/internal/database"
)

// Goals: ratios to floors measured in the same run, on the same machine,
// never absolute times (the same commit runs at very different speeds on
// two machines of one kind), plus two machine-independent counts. They are
// reported, never asserted.
const (
	goalWriteRatio      = 0.65 // full stack ÷ database floor, req/s, at least
	goalBatchRatio      = 0.5  // batch ÷ COPY floor, rows/s, at least
	goalDeepRatio       = 1.5  // deep page ÷ first page, p50, at most
	goalListThroughput  = 0.4  // list first page ÷ list floor, req/s at Concurrency, at least
	goalListP99         = 3    // list first page ÷ list floor, p99 at ListConcurrency, at most
	goalValidationShare = 0.25 // validating a write ÷ the full stack's server CPU per write, at most
	goalValidationAlloc = 100  // allocations validating a write, under
	goalPeakRSSMiB      = 64   // peak RSS after the single-write run, MiB, under
	// validationBenchmark is the Go benchmark of validating one write.
	validationBenchmark = "ValidateWrite"
)

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
		writeRow(tw, "full stack, rate and in-flight limits off", wr.WriteNoLimits, 1)
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
		targets = append(targets, limitsCost(w, wr))
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
		fmt.Fprintf(tw, "  filter\tpage\tp50 @%d\tp99 @%d\treq/s @%d\tother cpu @%d\treq/s @%d\tp99 @%d\tdeep÷first\t÷floor req/s @%d\t÷floor p99 @%d\t\n",
			cfg.ListConcurrency, cfg.ListConcurrency, cfg.ListConcurrency, cfg.ListConcurrency, cfg.Concurrency, cfg.Concurrency,
			cfg.Concurrency, cfg.ListConcurrency)
		for _, r := range lr.Results {
			fmt.Fprintf(tw, "  %s\t1\t%s\t%s\t%s\t%.2f\t%s\t%s\t\t%.2f\t%.2f\t\n", r.Scenario.Name,
				ms(r.First.P50), ms(r.First.P99), rate(r.First.PerSecond()), r.First.CPU.Other(), rate(r.FirstMax.PerSecond()), ms(r.FirstMax.P99),
				r.ThroughputRatio(), r.P99Ratio())
			fmt.Fprintf(tw, "  \t%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t\t\t\n", r.Depth,
				ms(r.Deep.P50), ms(r.Deep.P99), rate(r.Deep.PerSecond()), r.Deep.CPU.Other(), rate(r.DeepMax.PerSecond()), ms(r.DeepMax.P99), r.Ratio())
			fmt.Fprintf(tw, "  list floor\t1\t%s\t%s\t%s\t%.2f\t%s\t%s\t\t\t\t\n",
				ms(r.Floor.P50), ms(r.Floor.P99), rate(r.Floor.PerSecond()), r.Floor.CPU.Other(), rate(r.FloorMax.PerSecond()), ms(r.FloorMax.P99))
			if !r.Scenario.Goals {
				continue
			}
			name := slug(r.Scenario.Name)
			targets = append(targets,
				atMost("list_deep_ratio."+name, r.Ratio(), goalDeepRatio),
				atLeast(fmt.Sprintf("list_throughput_ratio_c%d.%s", cfg.Concurrency, name), r.ThroughputRatio(), goalListThroughput),
				atMost(fmt.Sprintf("list_p99_ratio_c%d.%s", cfg.ListConcurrency, name), r.P99Ratio(), goalListP99))
		}
		tw.Flush()
		var errs int64
		for _, r := range lr.Results {
			errs += r.First.Errors + r.Deep.Errors + r.FirstMax.Errors + r.DeepMax.Errors + r.Floor.Errors + r.FloorMax.Errors
		}
		fmt.Fprintf(w, "  list floor: logstore.Store.List, the server's sqlc query through a pool opened as the server's, no HTTP\n")
		fmt.Fprintf(w, "  ÷floor: full stack's first page against the floor's (req/s at %d, p99 at %d)\n", cfg.Concurrency, cfg.ListConcurrency)
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
		// The server's CPU per single write, from the full-stack run: what
		// the benchmarks below are a share of.
		var perWrite float64 // ns
		if cfg.runs("write") && res.Writes.Write.PerSecond() > 0 {
			perWrite = res.Writes.Write.CPU.Server / res.Writes.Write.PerSecond() * 1e9
		}
		fmt.Fprintln(tw, "  benchmark\tns/op\tcpu ns/op\tB/op\tallocs/op\tshare of server cpu per write\t")
		for _, b := range res.Validation {
			share, cpu := "n/a", "n/a"
			if perWrite > 0 {
				share = fmt.Sprintf("%.2f", b.cpuPerOp()/perWrite)
			}
			if b.CPUNsPerOp > 0 {
				cpu = thousands(int64(b.CPUNsPerOp))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t\n", b.Name, thousands(int64(b.NsPerOp)), cpu, thousands(b.BytesPerOp), b.AllocsPerOp, share)
			if b.Name == validationBenchmark {
				if perWrite > 0 {
					targets = append(targets, atMost("validation_share_of_server_cpu_per_write", b.cpuPerOp()/perWrite, goalValidationShare))
				}
				targets = append(targets, below("validation_allocs_per_write", float64(b.AllocsPerOp), goalValidationAlloc))
			}
		}
		tw.Flush()
		if perWrite > 0 {
			fmt.Fprintf(w, "  server cpu per write in the full-stack run: %s ns (%.2f cores at %s req/s); share = cpu ns/op (or ns/op) ÷ that\n",
				thousands(int64(perWrite)), res.Writes.Write.CPU.Server, rate(res.Writes.Write.PerSecond()))
		} else {
			fmt.Fprintln(w, "  share: n/a without the write part in this run")
		}
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
	if cfg.runs("ledger") {
		targets = append(targets, reportLedger(w, cfg, res.Ledger)...)
	}
	if cfg.runs("scale") {
		targets = append(targets, reportScale(w, cfg, res.Scale)...)
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
