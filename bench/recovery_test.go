package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

// BenchmarkStateRecovery measures how long a worker with an empty data
// directory takes to restore a table of BENCH_ENTITIES entities (default
// 1,000,000) before it serves: Partita's group table against Kafka Streams
// restoring its store from its changelog, in the same run. Both topics are
// written directly: Partita's with the envelope one "add" through the
// gateway leaves (state, sequence, and the dedup window's record of it with
// its reply), Kafka Streams' with its counter; the table says each one's
// size.
func BenchmarkStateRecovery(b *testing.B) {
	kc, client := connect(b)
	n := envInt("BENCH_ENTITIES", 1_000_000)
	app := fmt.Sprintf("recover%d", time.Now().UnixNano())
	compact := "compact"
	compacted := map[string]*string{"cleanup.policy": &compact}

	// Partita: the counter entity's table topic.
	entity := counterEntity()
	topics := topics.Names{App: app}
	cmd := codec.Attributes{ID: "c", Source: "bench", Type: "add", Subject: "s", DataContentType: "application/json", Data: []byte(`{"by":1}`),
		Extensions: map[string]string{codec.ExtReply: "true"}} // as the gateway sends it
	env := core.Env{Topics: topics, Now: time.Now, Sleep: time.Sleep, Epoch: 1}
	out := core.Process(env, entity.Definition().(*core.Entity), topics.Commands("counter"), &envelope.Envelope{}, cmd, core.Arrival{})
	envelope, err := out.Envelope.Encode()
	if err != nil || out.DeadLetter != "" {
		b.Fatalf("envelope: %v %s", err, out.DeadLetter)
	}
	table := topics.Table("counter")
	createTopic(b, client, table, compacted)
	produceAll(b, client, table, n, func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: table, Key: sarama.StringEncoder("s" + strconv.Itoa(i)), Value: sarama.ByteEncoder(envelope)}
	})
	rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: b.TempDir(),
		Log: slog.New(slog.DiscardHandler)}, entity)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	start := time.Now()
	go func() { errs <- rt.Run(ctx) }()
	select {
	case <-rt.Ready():
	case err := <-errs:
		b.Fatalf("Partita stopped before it was ready: %v", err)
	case <-time.After(10 * time.Minute):
		b.Fatal("Partita not ready after 10 minutes")
	}
	partita := time.Since(start)
	cancel()
	<-errs

	// Kafka Streams: its store's changelog, and an empty input topic.
	appID, input := app+"-kstreams", app+".kstreams-input"
	counter := []byte(`{"n":1}`)
	createTopic(b, client, input, nil)
	changelog := appID + "-counters-changelog"
	createTopic(b, client, changelog, compacted)
	produceAll(b, client, changelog, n, func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: changelog, Key: sarama.StringEncoder("s" + strconv.Itoa(i)), Value: sarama.ByteEncoder(counter)}
	})
	kstreams := javaMillis(b, java(b, "dev.partita.bench.KeyedUpdate", "restore", kc.BootstrapServers[0], input, appID, b.TempDir()), "restored")

	setup := fmt.Sprintf("%s entities, 8 partitions, empty data directory, real broker", thousands(n))
	secs := func(d time.Duration) float64 { return d.Seconds() }
	for _, r := range []benchresult.Result{
		{Measure: fmt.Sprintf("Kafka Streams restoring its store (%d-byte values)", len(counter)), Value: secs(kstreams), Ratio: 1},
		{Measure: fmt.Sprintf("Partita restoring its group table (%d-byte envelopes: state and one recorded command with its reply)", len(envelope)), Value: secs(partita), Ratio: secs(partita) / secs(kstreams)},
	} {
		r.Section, r.Setup, r.Unit, r.Baseline = "state recovery (time to ready; lower is better)", setup, "s", "Kafka Streams"
		benchresult.Print(os.Stdout, r)
	}
	for i := 0; i < b.N; i++ {
	}
}
