package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchPackages hold the Go benchmarks of the validation middleware and
// the problem mapping, and of the observability middleware without an OTLP
// exporter (Overhead/*: what tracing, metrics and the access log add).
var goBenchPackages = []string{"./internal/contract", "./internal/observe"}

// goBenchmark is one line of go test -bench -benchmem output.
type goBenchmark struct {
	Name    string
	NsPerOp float64
	// CPUNsPerOp is the process's CPU time per op, for the benchmarks
	// that report it (cpu-ns/op); 0 otherwise.
	CPUNsPerOp  float64
	BytesPerOp  int64
	AllocsPerOp int64
}

// cpuPerOp is the CPU time per op when the benchmark reports it, else its
// wall time.
func (b goBenchmark) cpuPerOp() float64 {
	if b.CPUNsPerOp > 0 {
		return b.CPUNsPerOp
	}
	return b.NsPerOp
}

// runGoBenchmarks runs the Go benchmarks with go test and parses their
// results; go test's own output goes to log.
func runGoBenchmarks(ctx context.Context, log io.Writer) ([]goBenchmark, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1"}, goBenchPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return parseGoBenchmarks(&out)
}

// parseGoBenchmarks reads the result lines of go test -bench -benchmem:
//
//	BenchmarkValidateWrite-2   102655   12750 ns/op   13100 cpu-ns/op   5712 B/op   77 allocs/op
func parseGoBenchmarks(r io.Reader) ([]goBenchmark, error) {
	var out []goBenchmark
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		b := goBenchmark{Name: strings.TrimPrefix(fields[0], "Benchmark")}
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			b.Name = b.Name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(fields); i += 2 {
			switch fields[i+1] {
			case "ns/op":
				b.NsPerOp, _ = strconv.ParseFloat(fields[i], 64)
			case "cpu-ns/op":
				b.CPUNsPerOp, _ = strconv.ParseFloat(fields[i], 64)
			case "B/op":
				b.BytesPerOp, _ = strconv.ParseInt(fields[i], 10, 64)
			case "allocs/op":
				b.AllocsPerOp, _ = strconv.ParseInt(fields[i], 10, 64)
			}
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go test output: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("go test printed no benchmark results")
	}
	return out, nil
}

// planTest is the Go test that checks the plan of every kind of list query
// on a table big enough for the planner to care.
const planTest = "TestListPlansUseMatchingIndex"

// planResult is how the plan test went.
type planResult struct {
	Passed, Failed int
}

// runPlanTest runs the plan test with go test and counts its subtests; go
// test's output goes to log. A failing test is a result, not an error.
func runPlanTest(ctx context.Context, log io.Writer) (planResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-run", "^"+planTest+"$", "./internal/logstore")
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = log
	runErr := cmd.Run()
	var res planResult
	for line := range strings.SplitSeq(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "--- ") || !strings.Contains(line, planTest+"/") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "--- PASS"):
			res.Passed++
		case strings.HasPrefix(line, "--- FAIL"):
			res.Failed++
		}
	}
	if res.Passed+res.Failed == 0 {
		return res, fmt.Errorf("go test -run %s ran no subtest: %v", planTest, runErr)
	}
	return res, nil
}
