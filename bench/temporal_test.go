package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partita-dev/partita/internal/benchresult"
)

// Temporal is the peer of the timer and workflow benchmarks: its
// development server (the temporal CLI's `server start-dev`, SQLite, on
// loopback), driven by the Go SDK in bench/temporal, a module of its own so
// that the SDK stays out of Partita's go.mod. The helpers here build the
// CLI and that program into the git-ignored cache and run it; the
// benchmarks that compare Partita with it call TemporalTimers and
// TemporalSteps3 with the same workload sizes (workflowSize).

// temporalCLIVersion is the temporal CLI that serves the runs; the
// Makefile's TEMPORAL_CLI_VERSION says the same (TestTemporalCLIVersion).
const temporalCLIVersion = "v1.5.1"

// TemporalResult is one Temporal run's figures.
type TemporalResult struct {
	Rate     float64       // timers fired, or workflows completed, per second
	P50, P99 time.Duration // timers: lateness; steps3: end-to-end latency
	// Timers: the lateness from when the workflow set its timer (resumed
	// minus (set + delay)), which leaves out the wait for its first task.
	SetP50, SetP99 time.Duration
}

// workflowSize is the size of the timer and workflow workloads, for both
// sides: BENCH_WORKFLOWS workflows (default 200; Temporal's development
// server manages about 13 timer workflows a second on the 2-core machine)
// and, for the timers, a sleep of BENCH_TIMER_DELAY (default 1s).
func workflowSize() (n int, delay time.Duration) {
	delay = time.Second
	if d, err := time.ParseDuration(os.Getenv("BENCH_TIMER_DELAY")); err == nil && d > 0 {
		delay = d
	}
	return envInt("BENCH_WORKFLOWS", 200), delay
}

// TemporalTimers starts n workflows as fast as possible, each sleeping
// delay on a durable timer, on a development server of its own. Rate is
// timers fired per second (n over the time from the first start request to
// the last completion); P50 and P99 are the lateness: when the workflow
// went on after its sleep (wall clock on the worker) minus (the server's
// record of the workflow's start + delay).
func TemporalTimers(tb testing.TB, n int, delay time.Duration) TemporalResult {
	tb.Helper()
	return runTemporal(tb, "-workload", "timers", "-n", strconv.Itoa(n), "-delay", delay.String())
}

// TemporalSteps3 runs n workflows of three sequential trivial activities,
// started as fast as possible, on a development server of its own. Rate is
// workflows completed per second (n over the time from the first start
// request to the last completion); P50 and P99 are the end-to-end latency,
// from the start request to the client seeing the completion.
func TemporalSteps3(tb testing.TB, n int) TemporalResult {
	tb.Helper()
	return runTemporal(tb, "-workload", "steps3", "-n", strconv.Itoa(n))
}

// temporalBinaries builds, once per run, the temporal CLI when
// .cache/bin/temporal is missing (go install from the module proxy, a few
// minutes) and the bench/temporal program (go build, cached by Go), and
// returns their paths.
var temporalBinaries = sync.OnceValues(func() ([2]string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return [2]string{}, err
	}
	bin := filepath.Join(root, ".cache", "bin")
	cli, peer := filepath.Join(bin, "temporal"), filepath.Join(bin, "partita-temporal-bench")
	if _, err := os.Stat(cli); err != nil {
		cmd := exec.Command("go", "install", "github.com/temporalio/cli/cmd/temporal@"+temporalCLIVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return [2]string{}, fmt.Errorf("the temporal CLI is missing at %s and could not be built (go install github.com/temporalio/cli/cmd/temporal@%s): %w\n%s",
				cli, temporalCLIVersion, err, out)
		}
	}
	cmd := exec.Command("go", "build", "-o", peer, ".")
	cmd.Dir = filepath.Join(root, "bench", "temporal")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return [2]string{}, fmt.Errorf("build bench/temporal (go build): %w\n%s", err, out)
	}
	return [2]string{cli, peer}, nil
})

// temporalLine is the JSON line bench/temporal prints; durations in
// nanoseconds.
type temporalLine struct {
	Workload string  `json:"workload"`
	N        int     `json:"n"`
	Rate     float64 `json:"rate"`
	P50      int64   `json:"p50_ns"`
	P99      int64   `json:"p99_ns"`
	SetP50   int64   `json:"set_p50_ns"`
	SetP99   int64   `json:"set_p99_ns"`
}

// runTemporal runs bench/temporal with args and parses its result line.
func runTemporal(tb testing.TB, args ...string) TemporalResult {
	tb.Helper()
	bins, err := temporalBinaries()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins[1], append([]string{"-temporal", bins[0], "-timeout", "14m"}, args...)...)
	cmd.WaitDelay = 30 * time.Second // it stops its server on SIGKILL's way only where Linux does (Pdeathsig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("bench/temporal %v: %v\n%s\n%s", args, err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var l temporalLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &l); err != nil || l.Rate <= 0 {
		tb.Fatalf("bench/temporal %v: no result line (%v) in:\n%s\n%s", args, err, out, stderr.String())
	}
	return TemporalResult{Rate: l.Rate, P50: time.Duration(l.P50), P99: time.Duration(l.P99), SetP50: time.Duration(l.SetP50), SetP99: time.Duration(l.SetP99)}
}

// Sections and setups of the timer and workflow figures, for both sides.
func timersSection(n int, delay time.Duration) (section, setup string) {
	return "durable timers", fmt.Sprintf("%s timers of %s, requested as fast as possible: Temporal's dev server (SQLite, Go SDK worker), workflows each sleeping on a durable timer; "+
		"Partita (one worker, 8 partitions), commands each starting an entity timer; "+
		"rate = timers over the first request to the last fire applied; lateness from the request = resumed - (requested + %s), from the timer's start = resumed - (set + %s)",
		thousands(n), delay, delay, delay)
}

func steps3Section(n int) (section, setup string) {
	return "three-step workflows", fmt.Sprintf("%s workflows of three sequential steps, started as fast as possible; latency from the start request to completion", thousands(n))
}

// temporalResults are a Temporal run's figures as result lines: what (e.g.
// "timers fired") and unit (e.g. "timers/s") name the rate, which latency
// the percentiles.
func temporalResults(section, setup, what, unit, latency string, r TemporalResult) []benchresult.Result {
	const peer = "Temporal dev server (SQLite, Go SDK worker)"
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return []benchresult.Result{
		{Section: section, Setup: setup, Measure: peer + ": " + what, Value: r.Rate, Unit: unit},
		{Section: section, Setup: setup, Measure: peer + ": " + latency + ", p50", Value: ms(r.P50), Unit: "ms"},
		{Section: section, Setup: setup, Measure: peer + ": " + latency + ", p99", Value: ms(r.P99), Unit: "ms"},
	}
}

// TestTemporalCLIVersion checks that the Makefile builds the CLI version
// the helpers build when it is missing.
func TestTemporalCLIVersion(t *testing.T) {
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	if m := regexp.MustCompile(`(?m)^TEMPORAL_CLI_VERSION\s*:=\s*(\S+)`).FindSubmatch(data); m != nil {
		got = string(m[1])
	}
	if got != temporalCLIVersion {
		t.Fatalf("the Makefile's TEMPORAL_CLI_VERSION is %q, the bench helpers' %q", got, temporalCLIVersion)
	}
}
