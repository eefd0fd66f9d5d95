package worker

import (
	"io"
	"os"
	"testing"
)

// The file's table_cache reaches the runtime's configuration.
func TestConfigFileSetsTheTableCache(t *testing.T) {
	file := t.TempDir() + "/partita.yaml"
	if err := os.WriteFile(file, []byte("table_cache: 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := load("run", []string{"--config", file}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TableCache != 65536 {
		t.Fatalf("TableCache = %d, want 65536", cfg.TableCache)
	}
}
