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
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/tablestore"
	"github.com/partita-dev/partita/processor"
)

type Counter struct {
	N int `json:"n"`
}

type Add struct {
	By int `json:"by"`
}

// fill writes the workload to topic (8 partitions): binary-mode CloudEvents
// "add" {"by":1}, keyed by subject, murmur2-partitioned; it returns how long
// the writing took.
func fill(b *testing.B, client sarama.Client, topic string, commands, subjects int) time.Duration {
	createTopic(b, client, topic, nil)
	return produceAll(b, client, topic, commands, func(i int) *sarama.ProducerMessage {
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
		return m
	})
}

// rawGoka runs a hand-written goka processor doing the same keyed update
// (decode the JSON payload, add to the JSON state, store it) with local
// tables from st and returns how long it took to process every command;
// run names its group.
func rawGoka(b *testing.B, run string, brokers []string, topic string, commands int, st storage.Builder) time.Duration {
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
	group := goka.Group(topic + "-" + run)
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
		goka.WithStorageBuilder(st),
		goka.WithLogger(quiet{}),
	)
	if err != nil {
		b.Fatal(err)
	}
	return runUntil(b, run, func(ctx context.Context) error { return p.Run(ctx) }, func() int64 { return done.Load() }, int64(commands))
}

func counterEntity(opts ...entities.Option) *entities.Entity[Counter] {
	e := entities.KeyValue[Counter]("counter", opts...)
	entities.Command(e, "add", func(ctx *entities.Context[Counter], a Add) entities.Effect[Counter] {
		return ctx.Update(Counter{N: ctx.State().N + a.By})
	})
	return e
}

// BenchmarkEntityThroughput compares, on the real broker and in one run,
// Partita's key-value entity with a raw goka processor and a Kafka Streams
// application (bench/kstreams) doing the same keyed update over the same
// pre-written commands.
func BenchmarkEntityThroughput(b *testing.B) {
	kc, client := connect(b)
	commands, subjects := size()
	app := fmt.Sprintf("bench%d", time.Now().UnixNano())
	topic := app + ".counter.commands"
	fillTime := fill(b, client, topic, commands, subjects)

	// The baseline runs before and after the others: the machine is
	// shared, and its speed drifts over a run.
	rawBefore := rawGoka(b, "rawgoka-before", kc.BootstrapServers, topic, commands, storage.DefaultBuilder(b.TempDir()))

	rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: b.TempDir(),
		Log: slog.New(slog.DiscardHandler)}, counterEntity())
	if err != nil {
		b.Fatal(err)
	}
	partita := runUntil(b, "partita", rt.Run, rt.Stats().Processed.Load, int64(commands))
	// The same hand-written processor on Partita's local tables: what the
	// framework costs over goka with the storage held equal.
	rawOnTables := rawGoka(b, "rawgoka-tablestore", kc.BootstrapServers, topic, commands, tablestore.Builder(b.TempDir(), tablestore.DefaultCache))

	kstreams := javaMillis(b, java(b, "dev.partita.bench.KeyedUpdate", "process", kc.BootstrapServers[0], topic, app+"-kstreams", b.TempDir(), strconv.Itoa(commands)), "processed")
	rawAfter := rawGoka(b, "rawgoka-after", kc.BootstrapServers, topic, commands, storage.DefaultBuilder(b.TempDir()))

	setup := fmt.Sprintf("%s commands over %s subjects, 8 partitions, real broker", thousands(commands), thousands(subjects))
	rate := func(d time.Duration) float64 { return float64(commands) / d.Seconds() }
	baseline := (rate(rawBefore) + rate(rawAfter)) / 2
	res := func(measure string, d time.Duration) benchresult.Result {
		return benchresult.Result{Section: "entity throughput", Setup: setup, Measure: measure, Value: rate(d), Unit: "commands/s",
			Ratio: rate(d) / baseline, Baseline: "raw goka processor (mean of the runs before and after)"}
	}
	for _, r := range []benchresult.Result{
		res("raw goka processor, run before", rawBefore),
		res("raw goka processor, run after", rawAfter),
		res("Partita key-value entity", partita),
		res("raw goka processor on Partita's local tables (batched, cached LevelDB)", rawOnTables),
		res("Kafka Streams (RocksDB store + changelog, 2 threads)", kstreams),
		res("sarama async producer writing the workload", fillTime),
	} {
		benchresult.Print(os.Stdout, r)
	}
	for i := 0; i < b.N; i++ {
	}
}
