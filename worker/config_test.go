package worker

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
)

func loadFile(t *testing.T, yaml string, env map[string]string) (Config, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "partita.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := load("run", []string{"--config", file}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	return cfg, err
}

// The runtime's settings are processor.Config, inlined: the file's keys
// are the ones the README lists, at the top level, and each reaches the
// runtime's configuration.
func TestTheFileSetsTheRuntimeConfig(t *testing.T) {
	cfg, err := loadFile(t, `
app: orders
data_dir: /var/lib/orders
partitions: 12
replication: 2
create_topics: false
hot_standby: true
state_reads: ${env.STATE_READS}
table_cache: -1
kafka:
  bootstrap_servers: [b-1:9092]
http_addr: :9000
`, map[string]string{"STATE_READS": "false"})
	if err != nil {
		t.Fatal(err)
	}
	want := processor.Config{App: "orders", DataDir: "/var/lib/orders", Partitions: 12, Replication: 2,
		CreateTopics: false, HotStandby: true, StateReads: false, TableCache: -1,
		Kafka: broker.Config{BootstrapServers: []string{"b-1:9092"}}}
	if !reflect.DeepEqual(cfg.Config, want) {
		t.Errorf("runtime config\n got %+v\nwant %+v", cfg.Config, want)
	}
	if cfg.HTTPAddr != ":9000" {
		t.Errorf("http_addr %q", cfg.HTTPAddr)
	}
}

// Without a file, or with one that does not mention them, topics are
// created and state reads are on: the worker's defaults.
func TestTheWorkersDefaults(t *testing.T) {
	none, _, err := load("run", nil, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadFile(t, "partitions: 4\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{"no file": none, "a file": other} {
		if !cfg.CreateTopics || !cfg.StateReads || cfg.DataDir != DefaultDataDir {
			t.Errorf("%s: create_topics %v, state_reads %v, data_dir %q; want true, true, %q", name, cfg.CreateTopics, cfg.StateReads, cfg.DataDir, DefaultDataDir)
		}
	}
}

// Settings made in code only (Log, Observe, ViewApplyDelay) are no keys of
// the file, nor are the spellings the configurations had before.
func TestCodeOnlySettingsAreNoKeys(t *testing.T) {
	for _, key := range []string{"log: x", "observe: x", "view_apply_delay: 1s", "no_create_topics: true", "config: {}"} {
		if _, err := loadFile(t, key+"\n", nil); err == nil || !strings.Contains(err.Error(), "not found in type") {
			t.Errorf("%q: want an unknown-key error, got %v", key, err)
		}
	}
}

// Bad values in the file, the environment and the flags are reported
// together.
func TestEveryProblemOfTheFileAtOnce(t *testing.T) {
	_, err := loadFile(t, "partitions: -1\naccess:\n  default: nobody\nhttp:\n  max_connections: -5\n", map[string]string{"KAFKA_TLS": "maybe"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, s := range []string{"partitions and replication must not be negative", "access.default", `KAFKA_TLS="maybe"`, "max_connections"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("not reported: %q in\n%v", s, err)
		}
	}
}
