package apicheck

import (
	"bufio"
	"bytes"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// public are the packages users import.
var public = []string{
	"github.com/partita-dev/partita/access",
	"github.com/partita-dev/partita/request",
	"github.com/partita-dev/partita/codec",
	"github.com/partita-dev/partita/entities",
	"github.com/partita-dev/partita/views",
	"github.com/partita-dev/partita/workflows",
	"github.com/partita-dev/partita/testing/partitatest",
	"github.com/partita-dev/partita/processor",
	"github.com/partita-dev/partita/processor/broker",
	"github.com/partita-dev/partita/worker",
}

// TestNoExportedSignatureNamesAnInternalType type-checks the public
// packages from their compiled export data and walks every exported
// identifier: functions, methods, struct fields, interface methods, type
// definitions and aliases, variables and constants.
func TestNoExportedSignatureNamesAnInternalType(t *testing.T) {
	out, err := exec.Command("go", append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}"}, public...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), " "); ok && file != "" {
			exports[path] = file
		}
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) { return os.Open(exports[path]) })
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		c := checker{t: t, seen: map[types.Type]bool{}}
		for _, name := range pkg.Scope().Names() {
			obj := pkg.Scope().Lookup(name)
			if !obj.Exported() {
				continue
			}
			c.where = path + "." + name
			if tn, ok := obj.(*types.TypeName); ok && !tn.IsAlias() {
				c.named(tn.Type())
				continue
			}
			c.walk(obj.Type())
		}
	}
}

type checker struct {
	t     *testing.T
	where string
	seen  map[types.Type]bool
}

func internal(p *types.Package) bool {
	return p != nil && strings.Contains(p.Path(), "/internal/")
}

// named checks a type the package defines: its underlying type's exported
// parts and its exported methods.
func (c *checker) named(t types.Type) {
	n, ok := t.(*types.Named)
	if !ok {
		c.walk(t)
		return
	}
	c.walk(n.Underlying())
	where := c.where
	for i := range n.NumMethods() {
		if m := n.Method(i); m.Exported() {
			c.where = where + "." + m.Name()
			c.walk(m.Type())
		}
	}
	c.where = where
}

func (c *checker) walk(t types.Type) {
	if t == nil || c.seen[t] {
		return
	}
	c.seen[t] = true
	switch t := t.(type) {
	case *types.Named:
		if internal(t.Obj().Pkg()) {
			c.t.Errorf("%s names %s.%s", c.where, t.Obj().Pkg().Path(), t.Obj().Name())
		}
		if args := t.TypeArgs(); args != nil {
			for i := range args.Len() {
				c.walk(args.At(i))
			}
		}
	case *types.Alias:
		c.walk(types.Unalias(t))
	case *types.Pointer:
		c.walk(t.Elem())
	case *types.Slice:
		c.walk(t.Elem())
	case *types.Array:
		c.walk(t.Elem())
	case *types.Map:
		c.walk(t.Key())
		c.walk(t.Elem())
	case *types.Chan:
		c.walk(t.Elem())
	case *types.Signature:
		c.walk(t.Params())
		c.walk(t.Results())
	case *types.Tuple:
		for i := range t.Len() {
			c.walk(t.At(i).Type())
		}
	case *types.Struct:
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				c.walk(f.Type())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				c.walk(m.Type())
			}
		}
	case *types.TypeParam:
		c.walk(t.Constraint())
	}
}
