// Package envyaml decodes YAML configuration with ${env.NAME} expansion.
//
// Contract: expansion happens inside scalar values after parsing, so an
// expanded value is never re-read as YAML (a password with ':' or '#' stays
// a string). "$${" stands for a literal "${". Unknown keys are errors. Every
// undefined variable is reported, together, in one error.
package envyaml

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrUndefined is wrapped by errors about ${env.NAME} references to unset variables.
var ErrUndefined = errors.New("undefined environment variable")

// Lookup finds an environment variable, as os.LookupEnv does.
type Lookup func(name string) (string, bool)

var ref = regexp.MustCompile(`\$\$\{|\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// Decode parses data, expands ${env.NAME} in every scalar through lookup, and
// decodes the result into v, rejecting keys v does not have.
func Decode(data []byte, lookup Lookup, v any) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if root.Kind == 0 {
		return nil // empty document
	}
	var problems []error
	expand(&root, lookup, &problems)
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func expand(n *yaml.Node, lookup Lookup, problems *[]error) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = ref.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$${" {
				return "${"
			}
			name := ref.FindStringSubmatch(m)[1]
			v, ok := lookup(name)
			if !ok {
				*problems = append(*problems, fmt.Errorf("line %d: %w %s", n.Line, ErrUndefined, name))
			}
			return v
		})
		// Let the expanded value resolve as if written in place: "true" can
		// fill a bool, "42" an int or a string; the encoder quotes what needs it.
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			n.Tag = ""
		}
	}
	for _, c := range n.Content {
		expand(c, lookup, problems)
	}
}
