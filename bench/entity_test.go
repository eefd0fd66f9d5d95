// Package bench holds the benchmarks that compare Partita with its peers on
// the real broker: `make bench` runs them and prints ratios measured in the
// same run.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
)

// Workload size: BENCH_COMMANDS commands over BENCH_SUBJECTS subjects on 8
// partitions (defaults 1,000,000 and 100,000).
func size() (commands, subjects int) {
	commands, subjects = 1_000_000, 100_000
	if n, err := strconv.Atoi(os.Getenv("BENCH_COMMANDS")); err == nil && n > 0 {
		commands = n
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_SUBJECTS")); err == nil && n > 0 {
		subjects = n
	}
	return
}

type Counter struct {
	N int `json:"n"`
}

type Add struct {
	By int `json:"by"`
}

// fill writes the workload to topic (8 partitions): binary-mode CloudEvents
// "add" {"by":1}, keyed by subject, murmur2-partitioned.
func fill(b *testing.B, client sarama.Client, topic string, commands, subjects int) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 8, ReplicationFactor: 1}, false); err != nil {
		b.Fatal(err)
	}
	client.Config().Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	client.Config().Producer.Flush.Messages = 1000
	client.Config().Producer.Flush.Frequency = 10 * time.Millisecond
	prod, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for range prod.Successes() {
		}
	}()
	go func() {
		for err := range prod.Errors() {
			b.Error(err)
		}
	}()
	for i := range commands {
		e := codec.NewEvent()
		e.SetID("c" + strconv.Itoa(i))
		e.SetSource("bench")
		e.SetType("add")
		e.SetSubject("s" + strconv.Itoa(i%subjects))
		e.SetDataContentType("application/json")
		e.DataEncoded = []byte(`{"by":1}`)
		r, _ := codec.EncodeEvent(e)
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
		for k, v := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
		}
		prod.Input() <- m
	}
	prod.Close()
}

// rawGoka runs a hand-written goka processor doing the same keyed update
// (decode the JSON payload, add to the JSON state, store it) and returns how
// long it took to process every command.
func rawGoka(b *testing.B, brokers []string, topic string, commands int, dir string) time.Duration {
	var done atomic.Int64
	cb := func(ctx goka.Context, msg any) {
		var cmd Add
		_ = json.Unmarshal(msg.([]byte), &cmd)
		var c Counter
		if v, ok := ctx.Value().([]byte); ok {
			_ = json.Unmarshal(v, &c)
		}
		c.N += cmd.By
		data, _ := json.Marshal(c)
		ctx.SetValue(data)
		done.Add(1)
	}
	group := goka.Group(topic + "-raw")
	g := goka.DefineGroup(group, goka.Input(goka.Stream(topic), new(gcodec.Bytes), cb), goka.Persist(new(gcodec.Bytes)))
	cfg := goka.DefaultConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Version = sarama.V3_6_0_0
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication, tmc.Stream.Replication = 1, 1
	p, err := goka.NewProcessor(brokers, g,
		goka.WithHasher(murmur2.New),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(cfg)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(goka.DefaultConfig())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithTopicManagerConfig(tmc)),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)),
		goka.WithLogger(quiet{}),
	)
	if err != nil {
		b.Fatal(err)
	}
	return runUntil(b, func(ctx context.Context) error { return p.Run(ctx) }, func() int64 { return done.Load() }, int64(commands))
}

type quiet struct{}

func (quiet) Print(...any)          {}
func (quiet) Println(...any)        {}
func (quiet) Printf(string, ...any) {}

// runUntil runs run until count reaches n and returns the time it took.
func runUntil(b *testing.B, run func(context.Context) error, count func() int64, n int64) time.Duration {
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

func counterEntity() *entities.Entity[Counter] {
	e := entities.KeyValue[Counter]("counter")
	entities.Command(e, "add", func(ctx *entities.Context[Counter], a Add) entities.Effect {
		return entities.Update(Counter{N: ctx.State().N + a.By})
	})
	return e
}

// BenchmarkEntityThroughput compares, on the real broker and in one run,
// Partita's key-value entity with a raw goka processor doing the same keyed
// update over the same pre-written commands.
func BenchmarkEntityThroughput(b *testing.B) {
	e := kafkatest.Require(b)
	commands, subjects := size()
	kc := broker.Config{BootstrapServers: []string{e.Plaintext}}
	sc, _ := kc.Sarama(nil)
	client, err := sarama.NewClient(kc.BootstrapServers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	app := fmt.Sprintf("bench%d", time.Now().UnixNano())
	topic := app + ".counter.commands"
	t0 := time.Now()
	fill(b, client, topic, commands, subjects)
	fillTime := time.Since(t0)

	raw := rawGoka(b, kc.BootstrapServers, topic, commands, b.TempDir())

	rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, DataDir: b.TempDir(),
		Log: slog.New(slog.DiscardHandler)}, counterEntity())
	if err != nil {
		b.Fatal(err)
	}
	partita := runUntil(b, rt.Run, rt.Stats().Processed.Load, int64(commands))

	rate := func(d time.Duration) float64 { return float64(commands) / d.Seconds() }
	fmt.Printf("\nentity throughput, %d commands over %d subjects, 8 partitions, real broker\n", commands, subjects)
	fmt.Printf("| system | commands/s | ratio to raw goka |\n|---|---|---|\n")
	fmt.Printf("| sarama async producer (writing the workload) | %.0f | %.2f |\n", rate(fillTime), rate(fillTime)/rate(raw))
	fmt.Printf("| raw goka processor | %.0f | 1.00 |\n", rate(raw))
	fmt.Printf("| Partita key-value entity | %.0f | %.2f |\n", rate(partita), rate(partita)/rate(raw))
	for i := 0; i < b.N; i++ {
	}
}
