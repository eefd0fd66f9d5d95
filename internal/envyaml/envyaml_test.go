package envyaml_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/partita-dev/partita/internal/envyaml"
)

type doc struct {
	Name  string `yaml:"name"`
	Pass  string `yaml:"pass"`
	Num   string `yaml:"num"`
	On    bool   `yaml:"on"`
	Quote string `yaml:"quote"`
	Lit   string `yaml:"lit"`
}

func env(m map[string]string) envyaml.Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDecodeExpandsScalars(t *testing.T) {
	src := "name: svc-${env.WHO}\npass: ${env.PASS}\nnum: ${env.NUM}\non: ${env.ON}\nquote: \"${env.ON}\"\nlit: $${env.PASS}\n"
	var d doc
	err := envyaml.Decode([]byte(src), env(map[string]string{"WHO": "a", "PASS": "x: y #z", "NUM": "0123", "ON": "true"}), &d)
	if err != nil {
		t.Fatal(err)
	}
	want := doc{Name: "svc-a", Pass: "x: y #z", Num: "0123", On: true, Quote: "true", Lit: "${env.PASS}"}
	if d != want {
		t.Fatalf("got %+v, want %+v", d, want)
	}
}

func TestDecodeReportsEveryUndefinedVariable(t *testing.T) {
	var d doc
	err := envyaml.Decode([]byte("name: ${env.A}\npass: ${env.B}\n"), env(nil), &d)
	if !errors.Is(err, envyaml.ErrUndefined) || !strings.Contains(err.Error(), " A") || !strings.Contains(err.Error(), " B") {
		t.Fatalf("want both A and B reported, got %v", err)
	}
}

func TestDecodeRejectsUnknownKeys(t *testing.T) {
	var d doc
	if err := envyaml.Decode([]byte("nmae: x\n"), env(nil), &d); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Fatalf("want unknown key nmae rejected, got %v", err)
	}
}
