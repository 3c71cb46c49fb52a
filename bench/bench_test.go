package main

import (
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(config) bool
		wantErr bool
	}{
		{"defaults", nil, nil, func(c config) bool {
			return c.Duration == 10*time.Second && c.Concurrency == 32 && c.ListConcurrency == 4 &&
				c.Rows == 1_000_000 && c.Rounds == 5 && c.Only == nil && c.runs("list") &&
				!c.runs("scale") && slices.Equal(c.ScaleSizes, []int{1_000_000, 10_000_000, 30_000_000})
		}, false},
		{"the cost curve only when asked", []string{"-only", "scale", "-scale-sizes", "200_000,2M"}, nil, func(c config) bool {
			return c.runs("scale") && !c.runs("write") && slices.Equal(c.ScaleSizes, []int{200_000, 2_000_000})
		}, false},
		{"scale sizes must grow", nil, map[string]string{"BENCH_SCALE_SIZES": "10M,1M"}, nil, true},
		{"scale size too small", nil, map[string]string{"BENCH_SCALE_SIZES": "100"}, nil, true},
		{"environment", nil, map[string]string{"BENCH_DURATION": "3s", "BENCH_CONCURRENCY": "8", "BENCH_ROWS": "200_000", "BENCH_ONLY": "write, list"},
			func(c config) bool {
				return c.Duration == 3*time.Second && c.Concurrency == 8 && c.Rows == 200_000 &&
					c.runs("write") && c.runs("list") && !c.runs("batch")
			}, false},
		{"flag wins", []string{"-concurrency", "16"}, map[string]string{"BENCH_CONCURRENCY": "8"},
			func(c config) bool { return c.Concurrency == 16 }, false},
		{"bad duration", nil, map[string]string{"BENCH_DURATION": "soon"}, nil, true},
		{"slices too short", nil, map[string]string{"BENCH_DURATION": "1s", "BENCH_ROUNDS": "5"}, nil, true},
		{"too few rows", nil, map[string]string{"BENCH_ROWS": "10"}, nil, true},
		{"unknown part", nil, map[string]string{"BENCH_ONLY": "everything"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseConfig(tc.args, env(tc.env), io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.check != nil && !tc.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestParseGoBenchmarks(t *testing.T) {
	t.Parallel()
	out := `goos: linux
BenchmarkValidateWrite-2   	  102655	     12750 ns/op	     13100 cpu-ns/op	    5712 B/op	      77 allocs/op
BenchmarkProblemMapping-2   	  451674	      3554 ns/op	    1008 B/op	      33 allocs/op
PASS
ok  	github.com/valhalla-platform/valhalla/internal/contract	4.7s
`
	got, err := parseGoBenchmarks(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBenchmark{{"ValidateWrite", 12750, 13100, 5712, 77}, {"ProblemMapping", 3554, 0, 1008, 33}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got[0].cpuPerOp() != 13100 || got[1].cpuPerOp() != 3554 {
		t.Errorf("cpu per op %v, %v: want cpu-ns/op where reported, else ns/op", got[0].cpuPerOp(), got[1].cpuPerOp())
	}
	if _, err := parseGoBenchmarks(strings.NewReader("FAIL\n")); err == nil {
		t.Error("no results parsed without an error")
	}
}

func TestStatsMerge(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	var s stats
	s.merge(stats{OK: 2, Elapsed: time.Second, CPU: cpuUse{Server: 1}, latencies: []time.Duration{1 * ms, 3 * ms}})
	s.merge(stats{OK: 1, Errors: 1, FirstError: "boom", Elapsed: 3 * time.Second, CPU: cpuUse{Server: 0.2},
		latencies: []time.Duration{2 * ms, 100 * ms}})
	if s.OK != 3 || s.Errors != 1 || s.FirstError != "boom" || s.Elapsed != 4*time.Second {
		t.Errorf("counts %+v", s)
	}
	if got := s.PerSecond(); got != 0.75 {
		t.Errorf("PerSecond = %v, want 0.75", got)
	}
	if s.P50 != 2*ms || s.P99 != 100*ms {
		t.Errorf("p50 %v p99 %v", s.P50, s.P99)
	}
	if got := s.CPU.Server; got < 0.399 || got > 0.401 { // (1×1s + 0.2×3s) / 4s
		t.Errorf("CPU weighted by time = %v, want 0.4", got)
	}
}

func TestTargetLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got  target
		want string
	}{
		{atLeast("single_write_ratio", 0.661, 0.65), "target single_write_ratio 0.66 >=0.65 pass"},
		{atMost("list_deep_ratio.category", 1.6, 1.5), "target list_deep_ratio.category 1.60 <=1.5 miss"},
		{below("peak_rss_mib", 31.5, 64), "target peak_rss_mib 31.5 <64 pass"},
		{below("validation_allocs_per_write", 100, 100), "target validation_allocs_per_write 100 <100 miss"},
	} {
		if got := tc.got.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := slug("category+time range"); got != "category_time_range" {
		t.Errorf("slug = %q", got)
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}

// TestFloorQuery: the list floor asks the store for what the server would
// for each scenario, and include_total without total_limit counts up to the
// contract's default.
func TestFloorQuery(t *testing.T) {
	t.Parallel()
	def, err := contractTotalLimit()
	if err != nil {
		t.Fatal(err)
	}
	if def <= 0 {
		t.Fatalf("contract total_limit default %d", def)
	}
	for _, sc := range listScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			f, count, err := floorQuery(sc.Query, def)
			if err != nil {
				t.Fatal(err)
			}
			if f.Category == nil && f.MinLevel == "" {
				t.Errorf("filter %+v filters nothing", f)
			}
			if got := sc.Query.Get("category"); f.Category != nil && *f.Category != got {
				t.Errorf("category %q, want %q", *f.Category, got)
			}
			want := int64(0)
			switch {
			case sc.Query.Has("total_limit"):
				want = 100_000_000
			case sc.Query.Has("include_total"):
				want = def
			}
			if count != want {
				t.Errorf("count up to %d, want %d", count, want)
			}
		})
	}
	f, _, err := floorQuery(url.Values{"level": {"INFO", "ERROR"}, "since": {"2025-05-02T00:00:00Z"}}, def)
	if err != nil || !slices.Equal(f.Levels, []string{"INFO", "ERROR"}) || f.Since == nil || !f.Since.Equal(dataStart) {
		t.Errorf("levels and since: %+v, %v", f, err)
	}
	if _, _, err := floorQuery(url.Values{"cursor": {"x"}}, def); err == nil {
		t.Error("an unknown parameter passed silently")
	}
}
