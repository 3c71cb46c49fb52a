package main

import (
	"fmt"
	"io"
	"strings"
)

// reportScale prints the cost curve and returns its targets: each larger
// size against the smallest, and each size's partition drop.
func reportScale(w io.Writer, cfg config, sr scaleResults) []target {
	var targets []target
	if len(sr.Sizes) == 0 {
		return nil
	}
	var names []string
	for _, s := range sr.Sizes {
		names = append(names, sizeName(s.Rows))
	}
	section(w, fmt.Sprintf("Cost curve: the same runs on %s rows, a database and a server each, interleaved (make bench-scale)",
		strings.Join(names, ", ")))
	if len(sr.Skipped) > 0 {
		fmt.Fprintf(w, "  skipped for want of disk: %s\n", strings.Join(sr.Skipped, "; "))
	}
	tw := table(w)
	fmt.Fprintln(tw, "  rows\tbuilt in\ttable MiB/M rows\tindexes MiB/M\tledger MiB/M\t"+
		"write req/s\twrite p99\tbatch rows/s\tbatch p99\tfeed p99\tget p99\t")
	for _, s := range sr.Sizes {
		built := "cached"
		if s.Build > 0 {
			built = s.Build.Round(1e9).String()
		}
		perM := float64(s.Rows) / 1e6
		fmt.Fprintf(tw, "  %s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", thousands(int64(s.Rows)), built,
			mib(s.TableBytes)/perM, mib(s.IndexBytes)/perM, mib(s.LedgerBytes)/perM,
			rate(s.Write.PerSecond()), ms(s.Write.P99), rate(s.Batch.PerSecond()*batchSize), ms(s.Batch.P99),
			ms(s.Feed.P99), ms(s.Get.P99))
	}
	tw.Flush()

	tw = table(w)
	header := "  list filter\tpage\t"
	for _, n := range names {
		header += "p99 " + n + "\t"
	}
	fmt.Fprintln(tw, header)
	for i, l := range sr.Sizes[0].Lists {
		first, deep := fmt.Sprintf("  %s\t1\t", l.Name), fmt.Sprintf("  \t%d\t", l.Depth)
		for _, s := range sr.Sizes {
			first += ms(s.Lists[i].First.P99) + "\t"
			deep += ms(s.Lists[i].Deep.P99) + "\t"
		}
		fmt.Fprintln(tw, first)
		fmt.Fprintln(tw, deep)
	}
	tw.Flush()

	tw = table(w)
	fmt.Fprintln(tw, "  rows\tpartition dropped\tdrop took\twrites during\tp99 during\twrites outside\tp99 outside\tduring÷outside\t")
	for _, s := range sr.Sizes {
		d := s.Drop
		r := ratio(float64(d.During.P99), float64(d.Outside.P99))
		fmt.Fprintf(tw, "  %s\t%s rows\t%s\t%d\t%s\t%d\t%s\t%.2f\t\n", thousands(int64(s.Rows)), thousands(d.Rows),
			ms(d.Took), d.During.OK+d.During.Errors, ms(d.During.P99), d.Outside.OK+d.Outside.Errors, ms(d.Outside.P99), r)
		targets = append(targets, atMost("scale_drop_p99_ratio."+sizeName(s.Rows), r, goalDropP99))
	}
	tw.Flush()
	var errs int64
	for _, s := range sr.Sizes {
		errs += s.Write.Errors + s.Batch.Errors + s.Feed.Errors + s.Get.Errors + s.Drop.During.Errors + s.Drop.Outside.Errors
		for _, l := range s.Lists {
			errs += l.First.Errors + l.Deep.Errors
		}
	}
	fmt.Fprintf(w, "  writes at concurrency %d, reads at %d; the ledger's rows of each dataset carry stand-in hashes (bench/scale.go)\n",
		cfg.Concurrency, cfg.ListConcurrency)
	fmt.Fprintf(w, "  WAL written per entry: %.0f bytes in the single-write runs, %.0f in the batch runs (what a replica replays)\n",
		sr.WALPerWrite, sr.WALPerBatchRow)
	fmt.Fprintf(w, "  failed requests: %d\n", errs)

	base := sr.Sizes[0]
	for _, s := range sr.Sizes[1:] {
		at := sizeName(s.Rows) + "_vs_" + sizeName(base.Rows)
		targets = append(targets,
			atLeast("scale_write_ratio."+at, ratio(s.Write.PerSecond(), base.Write.PerSecond()), goalScaleWrites),
			atLeast("scale_batch_ratio."+at, ratio(s.Batch.PerSecond(), base.Batch.PerSecond()), goalScaleWrites),
			atMost("scale_feed_p99_ratio."+at, ratio(float64(s.Feed.P99), float64(base.Feed.P99)), goalScaleLatency),
			atMost("scale_get_p99_ratio."+at, ratio(float64(s.Get.P99), float64(base.Get.P99)), goalScaleLatency))
		for i, l := range s.Lists {
			b := base.Lists[i]
			targets = append(targets,
				atMost("scale_list_first_p99_ratio."+slug(l.Name)+"."+at, ratio(float64(l.First.P99), float64(b.First.P99)), goalScaleLatency),
				atMost("scale_list_deep_p99_ratio."+slug(l.Name)+"."+at, ratio(float64(l.Deep.P99), float64(b.Deep.P99)), goalScaleLatency))
		}
	}
	return targets
}
