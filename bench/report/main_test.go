package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partita-dev/partita/internal/benchresult"
)

// The figures of a run become a table per section, a plot, and the README's
// bench section; other output lines are ignored.
func TestReport(t *testing.T) {
	var log bytes.Buffer
	log.WriteString("goos: linux\nBenchmarkX-2 1 5 ns/op\n")
	for _, r := range []benchresult.Result{
		{Section: "entity throughput", Setup: "10 commands", Measure: "raw goka", Value: 1000, Unit: "commands/s", Ratio: 1, Baseline: "raw goka"},
		{Section: "entity throughput", Setup: "10 commands", Measure: "Partita", Value: 500, Unit: "commands/s", Ratio: 0.5, Baseline: "raw goka"},
		{Section: "view queries", Setup: "10 rows", Measure: "get, p50", Value: 0.0123, Unit: "ms"},
		{Section: "timers", Setup: "2 timers", Measure: "peer, p50", Value: 4000, Unit: "ms", Ratio: 1, Baseline: "peer, p50"},
		{Section: "timers", Setup: "2 timers", Measure: "Partita, p50", Value: 19.6, Unit: "ms", Ratio: 0.0049, Baseline: "peer, p50"},
	} {
		benchresult.Print(&log, r)
	}
	dir := t.TempDir()
	in, readme := filepath.Join(dir, "bench.log"), filepath.Join(dir, "README.md")
	if err := os.WriteFile(in, log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readme, []byte("# X\n<!-- bench -->\nold\n<!-- /bench -->\nrest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, filepath.Join(dir, "results"), readme, io.Discard); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results", "latest.md"))
	for _, want := range []string{"**entity throughput** (10 commands)", "| Partita | 500.0 commands/s | 0.50x | raw goka |", "| get, p50 | 0.0123 ms |  |  |",
		"| Partita, p50 | 19.6 ms | 0.0049x | peer, p50 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q:\n%s", want, md)
		}
	}
	if png, err := os.ReadFile(filepath.Join(dir, "results", "latest.png")); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("latest.png is not a PNG: %v", err)
	}
	got, _ := os.ReadFile(readme)
	if s := string(got); strings.Contains(s, "old") || !strings.Contains(s, "0.50x") || !strings.HasSuffix(s, "<!-- /bench -->\nrest\n") {
		t.Errorf("README:\n%s", s)
	}
	if err := run(filepath.Join(dir, "README.md"), filepath.Join(dir, "none"), "", io.Discard); err == nil {
		t.Error("a log without figures was taken for a run")
	}
}
