package main

import (
	"fmt"
	"io"
	"time"

	"github.com/valhalla-platform/valhalla/internal/delivery"
)

// The sealed trail's goals (issues 12 and 13; docs/ledger.md, docs/follow.md).
const (
	goalSealedRatio    = 0.9 // sealing on ÷ sequencer paused, writes/s, at least
	goalSealLagP99     = time.Second
	goalProofP99Ratio  = 2   // proof p99 ÷ plain read p99, at most
	goalVerifyRatio    = 0.8 // verify ÷ feed read, entries/s, at least
	goalTailSlack      = 100 * time.Millisecond
	goalTailWriteRatio = 0.9 // writes/s with subscribers ÷ without, at least
	goalExportRatio    = 0.5 // export ÷ COPY, entries/s, at least
)

// reportLedger prints the sealed trail's section and returns its targets.
func reportLedger(w io.Writer, cfg config, lr ledgerResults) []target {
	var targets []target
	section(w, fmt.Sprintf("Sealed trail: writes with the sequencer sealing every %s against it paused (--seal-interval 0), concurrency %d",
		sealInterval, cfg.Concurrency))
	tw := table(w)
	fmt.Fprintln(tw, "  run\tentries/s\tp50\tp99\terrors\tcpu: loadgen\tserver\tpostgres\tirq\tother\t")
	writeRow(tw, "single write: sealing on", lr.Write, 1)
	writeRow(tw, "single write: sequencer paused", lr.WritePaused, 1)
	writeRow(tw, fmt.Sprintf("single write: sealing on, %d tail subscribers", tailSubscribers), lr.WriteTail, 1)
	writeRow(tw, "batch: sealing on", lr.Batch, batchSize)
	writeRow(tw, "batch: sequencer paused", lr.BatchPaused, batchSize)
	tw.Flush()
	single := ratio(lr.Write.PerSecond(), lr.WritePaused.PerSecond())
	batch := ratio(lr.Batch.PerSecond(), lr.BatchPaused.PerSecond())
	fmt.Fprintf(w, "  sealing on ÷ paused: single %.2f, batch %.2f (goal ≥ %g)\n", single, batch, goalSealedRatio)
	wp50, wp99 := percentiles(lr.WriteLag)
	sp50, sp99 := percentiles(lr.WriteStampLag)
	bp50, bp99 := percentiles(lr.BatchLag)
	fmt.Fprintf(w, "  seal lag, the write's commit to its seal's commit: single writes p50 %s p99 %s (%d entries); batches p50 %s p99 %s (%d entries) (goal p99 ≤ %s)\n",
		ms(wp50), ms(wp99), len(lr.WriteLag), ms(bp50), ms(bp99), len(lr.BatchLag), goalSealLagP99)
	fmt.Fprintf(w, "  the same from the entry's timestamp (the server's receipt), single writes: p50 %s p99 %s\n", ms(sp50), ms(sp99))
	tp50, tp99 := percentiles(lr.Tail)
	tailGoal := sealInterval + goalTailSlack
	tailRatio := ratio(lr.WriteTail.PerSecond(), lr.Write.PerSecond())
	fmt.Fprintf(w, "  write → tail, entry timestamp to the event read, %d subscribers: p50 %s p99 %s over %d deliveries (every %dth seq's of %d), %d missed (goal p99 ≤ %s)\n",
		tailSubscribers, ms(tp50), ms(tp99), len(lr.Tail), latencySample, lr.TailDelivered, lr.TailMissed, tailGoal)
	cp50, cp99 := percentiles(lr.TailParts.Commit)
	lp50, lp99 := percentiles(lr.TailParts.Seal)
	dp50, dp99 := percentiles(lr.TailParts.Deliver)
	fmt.Fprintf(w, "    of the first subscriber's %d: timestamp → write's commit p50 %s p99 %s; → seal's commit p50 %s p99 %s; → event read p50 %s p99 %s\n",
		len(lr.TailParts.Deliver), ms(cp50), ms(cp99), ms(lp50), ms(lp99), ms(dp50), ms(dp99))
	fmt.Fprintf(w, "  writes with the subscribers ÷ without: %.2f (goal ≥ %g)\n", tailRatio, goalTailWriteRatio)

	section(w, fmt.Sprintf("Sealed trail: reading the list runs' dataset of %s sealed entries", thousands(lr.Rows)))
	tw = table(w)
	fmt.Fprintf(tw, "  run\treq/s @%d\tp50\tp99\terrors\tcpu: loadgen\tserver\tpostgres\tirq\tother\t\n", cfg.ListConcurrency)
	writeRow(tw, "GET /system/logs/{id}", lr.Get, 1)
	writeRow(tw, "GET /system/logs/{id}/proof", lr.Proof, 1)
	tw.Flush()
	proof := ratio(float64(lr.Proof.P99), float64(lr.Get.P99))
	fmt.Fprintf(w, "  proof p99 ÷ read p99: %.2f (goal ≤ %g)\n", proof, float64(goalProofP99Ratio))
	tw = table(w)
	fmt.Fprintln(tw, "  pass\tentries\tseconds\tentries/s\t")
	for _, r := range []struct {
		name string
		t    throughput
	}{
		{"valhalla verify (feed, leaves, root, checkpoint)", lr.Verify},
		{"the same feed read, nothing verified", lr.Feed},
		{"GET /system/logs/export (NDJSON)", lr.Export},
		{"COPY of the same join, ORDER BY seq", lr.Copy},
		{fmt.Sprintf("webhook sink catching up (batches of %d, receiver verifies each)", delivery.DefaultBatchSize), lr.Sink},
	} {
		fmt.Fprintf(tw, "  %s\t%s\t%.1f\t%s\t\n", r.name, thousands(r.t.Entries), r.t.Elapsed.Seconds(), rate(r.t.PerSecond()))
	}
	tw.Flush()
	verify := ratio(lr.Verify.PerSecond(), lr.Feed.PerSecond())
	export := ratio(lr.Export.PerSecond(), lr.Copy.PerSecond())
	fmt.Fprintf(w, "  verify ÷ feed read: %.2f (goal ≥ %g); export ÷ COPY: %.2f (goal ≥ %g); server peak RSS after the export, fresh process: %.1f MiB (goal < %d)\n",
		verify, goalVerifyRatio, export, goalExportRatio, mib(lr.ExportRSS), goalPeakRSSMiB)
	fmt.Fprintf(w, "  sink delivery ÷ feed read: %.2f (reported; no goal)\n", ratio(lr.Sink.PerSecond(), lr.Feed.PerSecond()))

	return append(targets,
		atLeast("sealed_single_write_ratio", single, goalSealedRatio),
		atLeast("sealed_batch_ratio", batch, goalSealedRatio),
		atMost("seal_lag_p99_single_write_s", wp99.Seconds(), goalSealLagP99.Seconds()),
		atMost("seal_lag_p99_batch_s", bp99.Seconds(), goalSealLagP99.Seconds()),
		atMost("tail_delivery_p99_ms", millis(tp99), millis(tailGoal)),
		atLeast("tail_write_ratio", tailRatio, goalTailWriteRatio),
		atMost("proof_p99_ratio", proof, goalProofP99Ratio),
		atLeast("verify_ratio", verify, goalVerifyRatio),
		atLeast("export_copy_ratio", export, goalExportRatio),
		below("export_peak_rss_mib", mib(lr.ExportRSS), goalPeakRSSMiB),
	)
}
