// Package bench holds the benchmarks that compare Partita with its peers on
// the real broker, in one run: a raw goka processor, a Kafka Streams
// application (bench/kstreams, Maven) and the broker's own ceiling. Each
// figure is printed as a benchresult line; `make bench` renders them, with
// the views and gateway benchmarks, into bench/results/ (see bench/report).
package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/processor/broker"
)

// envInt reads a positive integer from the environment, or returns def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// connect returns the test broker's plaintext connection settings and a
// client on it, closed when b ends.
func connect(b *testing.B) (broker.Config, sarama.Client) {
	b.Helper()
	kc := broker.Config{BootstrapServers: []string{kafkatest.Require(b).Plaintext}}
	sc, err := kc.Sarama(nil)
	if err != nil {
		b.Fatal(err)
	}
	client, err := sarama.NewClient(kc.BootstrapServers, sc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return kc, client
}

// createTopic creates topic with 8 partitions and the given config.
func createTopic(b *testing.B, client sarama.Client, topic string, config map[string]*string) {
	b.Helper()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 8, ReplicationFactor: 1, ConfigEntries: config}, false); err != nil {
		b.Fatal(err)
	}
}

// produceAll writes n messages made by msg with an async producer
// (murmur2-partitioned, acks from all replicas) and returns how long it took.
func produceAll(b *testing.B, client sarama.Client, topic string, n int, msg func(i int) *sarama.ProducerMessage) time.Duration {
	b.Helper()
	cfg := client.Config()
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = 1000
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	start := time.Now()
	prod, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range prod.Successes() {
		}
		close(done)
	}()
	go func() {
		for err := range prod.Errors() {
			b.Error(err)
		}
	}()
	for i := range n {
		prod.Input() <- msg(i)
	}
	prod.AsyncClose()
	<-done
	return time.Since(start)
}

// Workload size: BENCH_COMMANDS commands over BENCH_SUBJECTS subjects on 8
// partitions (defaults 1,000,000 and 100,000).
func size() (commands, subjects int) {
	return envInt("BENCH_COMMANDS", 1_000_000), envInt("BENCH_SUBJECTS", 100_000)
}

type quiet struct{}

func (quiet) Print(...any)          {}
func (quiet) Println(...any)        {}
func (quiet) Printf(string, ...any) {}

// runUntil runs run until count reaches n and returns the time it took.
// With BENCH_PROFILE=dir it writes a CPU profile of the run to
// dir/<name>.pprof.
func runUntil(b *testing.B, name string, run func(context.Context) error, count func() int64, n int64) time.Duration {
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	start := time.Now()
	go func() { errs <- run(ctx) }()
	for count() < n {
		select {
		case err := <-errs:
			b.Fatalf("stopped early after %d: %v", count(), err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 15*time.Minute {
			b.Fatalf("only %d of %d in 15 minutes", count(), n)
		}
	}
	d := time.Since(start)
	cancel()
	<-errs
	return d
}

// thousands prints n with commas: 1,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
