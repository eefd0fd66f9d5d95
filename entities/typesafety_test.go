package entities_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEffectsAreTypedOnStateAndEvents builds two small programs that hand
// a handler's effect the wrong state type and the wrong event type, and
// checks that both fail to compile with the compiler naming the mismatch.
func TestEffectsAreTypedOnStateAndEvents(t *testing.T) {
	for dir, want := range map[string][]string{
		"./testdata/wrongstate": {"cannot use Cart{…} (value of struct type Cart) as Customer value in argument to ctx.Update"},
		"./testdata/wrongevent": {"cannot use Shipped{} (value of struct type Shipped) as CartEvent value in argument to ctx.Persist", "does not implement CartEvent"},
	} {
		out, err := exec.Command("go", "build", "-o", "/dev/null", dir).CombinedOutput()
		if err == nil {
			t.Errorf("%s compiled; it must not", dir)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: the compiler's message does not say %q:\n%s", dir, w, out)
			}
		}
	}
}
