package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// javaClasspath builds the Kafka Streams peer and Kafka's tools
// (bench/kstreams, Maven) into the git-ignored cache once per run and
// returns the classpath.
var javaClasspath = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, ".cache", "kstreams")
	cmd := exec.Command("mvn", "-B", "-q", "-f", filepath.Join(root, "bench", "kstreams", "pom.xml"), "package")
	if data, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bench/kstreams (mvn package): %w\n%s", err, data)
	}
	return filepath.Join(out, "target", "kstreams-bench-1.jar") + string(os.PathListSeparator) + filepath.Join(out, "lib", "*"), nil
})

// java runs a class of the Kafka Streams project with args and returns its
// standard output.
func java(b *testing.B, class string, args ...string) string {
	b.Helper()
	cp, err := javaClasspath()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("java", append([]string{"-Xmx1g", "-cp", cp, class}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("java %s %v: %v\n%s\n%s", class, args, err, out, stderr.String())
	}
	return string(out)
}

// javaMillis finds "<word> <ms>" in a Java peer's output.
func javaMillis(b *testing.B, out, word string) time.Duration {
	b.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, word+" "); ok {
			if ms, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	b.Fatalf("no %q line in:\n%s", word, out)
	return 0
}
