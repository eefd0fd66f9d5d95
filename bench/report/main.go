// Command report renders the figures `make bench` printed (benchresult
// lines, read from -in) as a markdown table and a plot of the ratios under
// -out, with a description of the machine, and puts the tables into the
// README between <!-- bench --> and <!-- /bench -->. It fails when it finds
// no figure, so a benchmark run that printed nothing does not pass for one.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/kafkatest"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	in := flag.String("in", "-", "benchmark output to read (- for standard input)")
	out := flag.String("out", "bench/results", "directory for latest.md and latest.png")
	readme := flag.String("readme", "README.md", "README to update between <!-- bench --> and <!-- /bench --> (empty: none)")
	flag.Parse()
	if err := run(*in, *out, *readme, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// section is the figures of one section, in the order printed.
type section struct {
	name, setup string
	results     []benchresult.Result
}

// run reads the figures from in, writes the results under out and the
// README, and prints the tables to w.
func run(in, out, readme string, w io.Writer) error {
	var r io.Reader = os.Stdin
	measured := time.Now() // when the figures were printed: now, or the file's time
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			measured = st.ModTime()
		}
		r = f
	}
	sections, err := read(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tables := render(sections)
	md := "# Benchmark results\n\n" + machine(measured) + "\n" + tables + "\n![ratios](latest.png)\n"
	if err := os.WriteFile(filepath.Join(out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := drawRatios(sections, filepath.Join(out, "latest.png")); err != nil {
		return err
	}
	fmt.Fprint(w, tables)
	if readme == "" {
		return nil
	}
	link := filepath.ToSlash(filepath.Join(out, "latest.png"))
	return splice(readme, machine(measured)+"\n"+tables+"\n![ratios]("+link+")\n")
}

// read collects the figures by section, in the order they were printed.
func read(r io.Reader) ([]*section, error) {
	var sections []*section
	by := map[string]*section{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		res, ok := benchresult.Parse(sc.Text())
		if !ok {
			continue
		}
		s := by[res.Section]
		if s == nil {
			s = &section{name: res.Section, setup: res.Setup}
			by[res.Section] = s
			sections = append(sections, s)
		}
		s.results = append(s.results, res)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(sections) == 0 {
		return nil, errors.New("no benchmark figures in the input")
	}
	return sections, nil
}

// render writes a markdown table per section.
func render(sections []*section) string {
	var b strings.Builder
	for _, s := range sections {
		fmt.Fprintf(&b, "**%s** (%s)\n\n| measure | value | ratio | baseline |\n|---|---|---|---|\n", s.name, s.setup)
		for _, r := range s.results {
			ratio := ""
			if r.Baseline != "" {
				ratio = ratioText(r.Ratio)
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s | %s |\n", r.Measure, number(r.Value), r.Unit, ratio, r.Baseline)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ratioText prints a ratio with two decimals, or two significant digits
// when that would show a small one as 0.00x.
func ratioText(r float64) string {
	if r > 0 && r < 0.1 {
		return fmt.Sprintf("%.2gx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// number prints v with at most three significant decimals for small values
// and none for large ones.
func number(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// machine describes where the figures were measured.
func machine(measured time.Time) string {
	cpu := firstField("/proc/cpuinfo", "model name")
	mem := firstField("/proc/meminfo", "MemTotal") // "24684084 kB"
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(mem, " kB"), 64); err == nil {
		mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	java := "unknown"
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		java = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return fmt.Sprintf("Measured %s on %d cores (%s), %s memory, Linux %s; %s; %s; Apache Kafka %s (single KRaft broker on loopback, started by internal/kafkatest). Every ratio is against a baseline measured in the same run; the machine is shared, so compare ratios, not absolute figures, across runs.\n",
		measured.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version(), java, kafkatest.KafkaVersion)
}

// firstField returns the value of the first "key: value" line of a /proc file.
func firstField(path, key string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// drawRatios plots each measure's ratio to its baseline as a horizontal
// bar with a line at 1, one panel per section that has baselines.
func drawRatios(sections []*section, path string) error {
	var rows [][]*plot.Plot
	for _, s := range sections {
		var labels []string
		var values plotter.Values
		baselines := map[string]bool{}
		for _, r := range s.results {
			if r.Baseline != "" && r.Measure != r.Baseline {
				baselines[r.Baseline] = true
			}
		}
		for _, r := range s.results {
			if r.Baseline == "" || r.Measure == r.Baseline {
				continue
			}
			label := r.Measure
			if len(baselines) > 1 {
				label += " (vs " + r.Baseline + ")"
			}
			labels = append(labels, label)
			values = append(values, r.Ratio)
		}
		if len(values) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = s.name
		p.X.Label.Text = "ratio to the baseline measured in the same run"
		if len(baselines) == 1 {
			for b := range baselines {
				p.X.Label.Text = "ratio to " + b + " (same run)"
			}
		}
		p.X.Min = 0
		bars, err := plotter.NewBarChart(values, vg.Points(12))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(values)) - 0.5}})
		if err != nil {
			return err
		}
		one.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		var at plotter.XYLabels
		for i, v := range values {
			at.XYs = append(at.XYs, plotter.XY{X: v, Y: float64(i)})
			at.Labels = append(at.Labels, " "+ratioText(v))
		}
		labelsOnBars, err := plotter.NewLabels(at)
		if err != nil {
			return err
		}
		p.Add(bars, one, labelsOnBars)
		p.NominalY(labels...)
		rows = append(rows, []*plot.Plot{p})
	}
	if len(rows) == 0 {
		return errors.New("no ratios to plot")
	}
	img := vgimg.New(10*vg.Inch, 2*vg.Inch*vg.Length(len(rows)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// splice replaces what the README holds between the bench markers.
func splice(path, content string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const begin, end = "<!-- bench -->\n", "<!-- /bench -->"
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section", path, strings.TrimSpace(begin), end)
	}
	var b bytes.Buffer
	b.Write(data[:i+len(begin)])
	b.WriteString(content)
	b.Write(data[j:])
	return os.WriteFile(path, b.Bytes(), 0o644)
}
