package processor_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

type note struct {
	Text string `json:"text"`
}

// Nothing a caller sends can stop a partition (real broker): a command of
// 1,048,250 bytes (the broker takes it; its dead letter, value plus reason,
// is larger than the producer's limit) and a command whose reply would be
// 2 MB are each dead-lettered, and the next command of the same entity is
// answered within seconds.
func TestOversizeInputsDoNotWedgeTheEntity(t *testing.T) {
	notes := entities.KeyValue[note]("notes")
	entities.Command(notes, "set", func(ctx *entities.Context[note], n note) entities.Effect[note] {
		return ctx.Update(n).Reply(n)
	})
	entities.Command(notes, "echo-big", func(ctx *entities.Context[note], n note) entities.Effect[note] {
		return ctx.Reply(note{Text: strings.Repeat("z", 2<<20)})
	})
	a := newApp(t, notes)
	a.start()
	topic := a.topics.Commands("notes")

	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.MaxMessageBytes = 2 << 20
	sc.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	big, err := sarama.NewSyncProducer(a.kafka.BootstrapServers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	// 1,048,250 bytes of value: the broker takes it (its limit is 1,048,588
	// bytes a batch); its dead letter adds some 300 bytes of reason
	// headers, more than the producer's 1 MiB.
	huge := note{Text: string(bytes.Repeat([]byte("y"), 1_048_250-len(`{"text":""}`)))}
	if _, _, err := big.SendMessage(message(topic, cmd("n-1", "set", "huge", huge))); err != nil {
		t.Fatalf("the broker refused the 1,048,000-byte command: %v", err)
	}
	a.send(message(topic, cmd("n-1", "echo-big", "big-reply", note{})))
	start := time.Now()
	a.send(message(topic, cmd("n-1", "set", "after", note{Text: "fine"})))
	if r := a.replies(time.Minute, "after")["after"]; string(r.Value) != `{"text":"fine"}` {
		t.Fatalf("reply after the oversize inputs: %s", r.Value)
	}
	t.Logf("next command answered %v after the oversize inputs", time.Since(start))

	dead := map[string]record{}
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool {
		dead[r.Headers["ce_id"]] = r
		return dead["huge"].Headers != nil && dead["big-reply"].Headers != nil
	})
	if h := dead["huge"].Headers; h[topics.HeaderDLQCut] == "" || !strings.Contains(h[processor.HeaderDLQReason], "entities.MaxValue") || len(dead["huge"].Value) >= 1_048_250 {
		t.Errorf("dead letter of the huge command: %d bytes of value, headers %v; want it cut, saying so", len(dead["huge"].Value), h)
	}
	if reason := dead["big-reply"].Headers[processor.HeaderDLQReason]; !strings.Contains(reason, "more than the") {
		t.Errorf("dead letter of the command with a 2 MB reply: %q", reason)
	}
	if n := a.rt.Stats().Restarts.Load(); n != 0 {
		t.Errorf("%d processor restarts, want none", n)
	}
}
