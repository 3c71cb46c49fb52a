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
// the problem mapping.
var goBenchPackages = []string{"./internal/contract"}

// goBenchmark is one line of go test -bench -benchmem output.
type goBenchmark struct {
	Name        string
	NsPerOp     float64
	BytesPerOp  int64
	AllocsPerOp int64
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
//	BenchmarkValidateWrite-2   102655   12750 ns/op   5712 B/op   77 allocs/op
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
