package main

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where a run happened.
type machine struct {
	Cores      int
	CPU        string
	MemoryGiB  float64
	Kernel     string
	Go         string
	PostgreSQL string
	// IdleBusy is how many cores were busy before the benchmark started:
	// other work on the machine, which also competes during the runs.
	IdleBusy float64
}

// describeMachine reads the machine's make-up and watches it idle for
// window to measure how busy it is without us.
func describeMachine(ctx context.Context, meter cpuMeter, window time.Duration) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				m.MemoryGiB = kb / (1 << 20)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	start := meter.snapshot()
	select {
	case <-ctx.Done():
	case <-time.After(window):
	}
	m.IdleBusy = meter.since(start).Machine
	return m
}
