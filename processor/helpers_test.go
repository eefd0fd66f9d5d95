package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
)

// app is one application under test on the real broker: its own topic
// prefix, its own runtime.
type app struct {
	t       *testing.T
	env     *kafkatest.Env
	name    string
	topics  topics.Names
	kafka   broker.Config
	rt      *processor.Runtime
	client  sarama.Client
	prod    sarama.SyncProducer
	cfg     processor.Config
	parts   []processor.Part
	cancel  context.CancelFunc
	stopped chan struct{}
	runErr  error
}

// newApp is an application on the real test broker.
func newApp(t *testing.T, parts ...processor.Part) *app {
	t.Helper()
	e := kafkatest.Require(t)
	a := newAppOn(t, broker.Config{BootstrapServers: []string{e.Plaintext}}, parts...)
	a.env = e
	return a
}

// newAppOn is an application on the given cluster.
func newAppOn(t *testing.T, kafka broker.Config, parts ...processor.Part) *app {
	t.Helper()
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	a := &app{t: t, name: name, topics: topics.Names{App: name}, kafka: kafka}
	a.cfg = processor.Config{
		App: name, Kafka: a.kafka, Partitions: 8, CreateTopics: true, DataDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	a.parts = parts
	a.renew()
	sc, err := a.kafka.Sarama(nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.Net.MaxOpenRequests = 1 // keep per-partition order across retries
	sc.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	sc.Producer.RequiredAcks = sarama.WaitForAll
	if a.client, err = sarama.NewClient(a.kafka.BootstrapServers, sc); err != nil {
		t.Fatal(err)
	}
	if a.prod, err = sarama.NewSyncProducerFromClient(a.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.prod.Close(); a.client.Close() })
	return a
}

// renew makes a new runtime from the app's configuration (a restarted worker).
func (a *app) renew() {
	a.t.Helper()
	rt, err := processor.New(a.cfg, a.parts...)
	if err != nil {
		a.t.Fatal(err)
	}
	a.rt = rt
}

// stop stops the running runtime and waits for it.
func (a *app) stop() {
	a.t.Helper()
	a.cancel()
	select {
	case <-a.stopped:
	case <-time.After(60 * time.Second):
		a.t.Error("runtime did not stop within 60s")
	}
}

// start runs the runtime until the test ends and waits until it is ready.
func (a *app) start() {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.stopped = make(chan struct{})
	go func() { a.runErr = a.rt.Run(ctx); close(a.stopped) }()
	a.t.Cleanup(a.stop)
	select {
	case <-a.rt.Ready():
	case <-a.stopped:
		a.t.Fatalf("runtime stopped during start-up: %v", a.runErr)
	case <-time.After(2 * time.Minute):
		a.t.Fatal("runtime not ready within 2 minutes")
	}
}

// cmd builds a command CloudEvent.
func cmd(subject, typ, id string, data any) codec.Event {
	e := codec.NewEvent()
	e.SetID(id)
	e.SetSource("test")
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetExtension(codec.ExtReply, "true")
	if data != nil {
		_ = e.SetData("application/json", data)
	}
	return e
}

// message turns an event into a producer message keyed by its subject.
func message(topic string, e codec.Event) *sarama.ProducerMessage {
	r, err := codec.EncodeEvent(e)
	if err != nil {
		panic(err)
	}
	return raw(topic, r)
}

func raw(topic string, r codec.Record) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.Value)}
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	for k, v := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	return m
}

func (a *app) send(msgs ...*sarama.ProducerMessage) {
	a.t.Helper()
	if err := a.prod.SendMessages(msgs); err != nil {
		a.t.Fatal(err)
	}
}

// record is a consumed record.
type record struct {
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
	Headers   map[string]string
	Time      time.Time
}

// read reads topic from the beginning (all partitions), handing each record
// to next until next returns true; it fails the test after timeout.
//
// idle, if given, is asked every 100ms while no record arrives; it can end
// the read too.
func (a *app) read(topic string, timeout time.Duration, next func(record) bool, idle ...func() bool) {
	a.t.Helper()
	consumer, err := sarama.NewConsumerFromClient(a.client)
	if err != nil {
		a.t.Fatal(err)
	}
	defer consumer.Close()
	if err := a.client.RefreshMetadata(topic); err != nil {
		a.t.Fatal(err)
	}
	parts, err := a.client.Partitions(topic)
	if err != nil {
		a.t.Fatal(err)
	}
	ch := make(chan record, 1024)
	stop := make(chan struct{})
	defer close(stop)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			a.t.Fatal(err)
		}
		defer pc.AsyncClose() // Close would wait for the partition's fetch: seconds over 8 partitions
		go func() {
			for m := range pc.Messages() { // until AsyncClose closes it; dropped after stop
				h := map[string]string{}
				for _, rh := range m.Headers {
					h[string(rh.Key)] = string(rh.Value)
				}
				select {
				case ch <- record{Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: m.Value, Headers: h, Time: m.Timestamp}:
				case <-stop:
					return
				}
			}
		}()
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		select {
		case r := <-ch:
			n++
			if next(r) {
				return
			}
		case <-tick.C:
			if len(idle) > 0 && idle[0]() {
				return
			}
		case <-deadline:
			a.t.Fatalf("%s: condition not met within %v after %d records", topic, timeout, n)
		}
	}
}

// readAll reads topic from the beginning until no record arrives for quiet.
func (a *app) readAll(topic string, quiet time.Duration) []record {
	a.t.Helper()
	var out []record
	last := time.Now()
	a.read(topic, time.Minute, func(r record) bool {
		out = append(out, r)
		last = time.Now()
		return false
	}, func() bool { return time.Since(last) > quiet })
	return out
}

// replies waits for the replies to the given command ids and returns them by
// id (the first reply seen for each).
func (a *app) replies(timeout time.Duration, ids ...string) map[string]record {
	a.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	byID := map[string]record{}
	a.read(a.topics.Replies(), timeout, func(r record) bool {
		id := r.Headers["ce_"+codec.ExtRequest] // replies are keyed by the command's source and id
		if _, seen := byID[id]; want[id] && !seen {
			byID[id] = r
		}
		return len(byID) == len(want)
	})
	return byID
}

// table reads an entity's table topic until done holds for the latest
// envelope of every subject, failing if a subject appears on two partitions
// or on a partition other than the one its subject hashes to.
func (a *app) table(entity string, n int32, timeout time.Duration, done func(map[string]*envelope.Envelope) bool) map[string]*envelope.Envelope {
	a.t.Helper()
	latest := map[string]*envelope.Envelope{}
	a.read(a.topics.Table(entity), timeout, func(r record) bool {
		if want := murmur2.Partition([]byte(r.Key), n); r.Partition != want {
			a.t.Fatalf("subject %q has state on partition %d; it hashes to %d", r.Key, r.Partition, want)
		}
		env, err := envelope.DecodeEnvelope(r.Value)
		if err != nil {
			a.t.Fatal(err)
		}
		latest[r.Key] = env
		return done(latest)
	})
	return latest
}

func decodeJSON[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}
