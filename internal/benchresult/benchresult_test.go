package benchresult

import (
	"bytes"
	"testing"
)

func TestPrintParse(t *testing.T) {
	var buf bytes.Buffer
	want := Result{Section: "entity throughput", Setup: "10 commands", Measure: "Partita", Value: 1234.5, Unit: "commands/s", Ratio: 0.5, Baseline: "raw goka"}
	Print(&buf, want)
	got, ok := Parse(buf.String())
	if !ok || got != want {
		t.Fatalf("Parse(%q) = %+v, %v", buf.String(), got, ok)
	}
	for _, line := range []string{"", "ok  	github.com/x 1s", "partita-bench {not json"} {
		if _, ok := Parse(line); ok {
			t.Errorf("Parse(%q) took it for a result", line)
		}
	}
}
