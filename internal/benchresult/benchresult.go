// Package benchresult carries figures from the benchmarks, which print them
// one per line, to bench/report, which renders the table and the plot. A
// figure with a ratio was measured against its baseline in the same run.
package benchresult

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Result is one figure.
type Result struct {
	Section  string  `json:"section"` // e.g. "entity throughput"
	Setup    string  `json:"setup"`   // what was run, e.g. "1,000,000 commands over 100,000 subjects, 8 partitions"
	Measure  string  `json:"measure"` // e.g. "Partita key-value entity"
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`               // e.g. "commands/s", "ms"
	Ratio    float64 `json:"ratio,omitempty"`    // Value over the baseline's, same run
	Baseline string  `json:"baseline,omitempty"` // the Measure of the baseline
}

// prefix marks a result line in a benchmark's output.
const prefix = "partita-bench "

// Print writes r as one line.
func Print(w io.Writer, r Result) {
	data, _ := json.Marshal(r) // a Result always marshals
	fmt.Fprintln(w, prefix+string(data))
}

// Parse reads a line written by Print; ok is false for any other line.
func Parse(line string) (r Result, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if !found || json.Unmarshal([]byte(rest), &r) != nil {
		return Result{}, false
	}
	return r, true
}
