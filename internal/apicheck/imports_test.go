package apicheck

import (
	"os/exec"
	"strings"
	"testing"
)

// The import graph DESIGN.md promises (issue 15, item 6: processor owns
// every Kafka conversation): the worker speaks to Kafka only through
// processor, and the packages users' handlers and tests import pull in
// neither goka nor sarama.
const (
	module = "github.com/partita-dev/partita/"
	goka   = "github.com/lovoo/goka"
	sarama = "github.com/IBM/sarama"
	codec  = module + "codec"
)

// noDirect: packages and what they must not import themselves. views is
// the read contract only: the row store (LevelDB) is internal/viewstore's.
var noDirect = map[string][]string{
	module + "worker": {module + "internal/core", module + "internal/murmur2", goka, sarama},
	module + "views":  {module + "internal/viewstore", "github.com/syndtr/goleveldb"},
}

// noGoka must not reach goka, however indirectly.
var noGoka = []string{
	module + "entities", module + "views", codec, module + "access", module + "deadletter",
	module + "request", module + "testing/partitatest", module + "workflows",
}

// noSarama must not reach sarama, however indirectly: the packages users'
// handlers and tests import (codec writes and reads CloudEvents records
// itself, not through the sdk's sarama binding).
var noSarama = noGoka

// TestImportGraph reads the packages' imports with go list and fails on
// any edge the rules above forbid, naming a path that reaches it.
func TestImportGraph(t *testing.T) {
	roots := []string{module + "worker"}
	roots = append(roots, noGoka...)
	out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, roots...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	for pkg, banned := range noDirect {
		for _, imp := range imports[pkg] {
			for _, b := range banned {
				if within(imp, b) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
	for _, pkg := range noGoka {
		if path := reach(imports, pkg, goka); path != nil {
			t.Errorf("%s imports goka: %s", pkg, strings.Join(path, " -> "))
		}
	}
	for _, pkg := range noSarama {
		if path := reach(imports, pkg, sarama); path != nil {
			t.Errorf("%s imports sarama: %s", pkg, strings.Join(path, " -> "))
		}
	}
}

// within reports whether pkg is path or one of its subpackages.
func within(pkg, path string) bool { return pkg == path || strings.HasPrefix(pkg, path+"/") }

// reach returns a shortest import path from pkg to a package within
// target, or nil when there is none.
func reach(imports map[string][]string, pkg, target string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if within(p, target) {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append([]string{p}, path...)
			}
			return path
		}
		for _, q := range imports[p] {
			if _, seen := prev[q]; seen {
				continue
			}
			prev[q] = p
			queue = append(queue, q)
		}
	}
	return nil
}
