package processor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/internal/kafkatest"
)

// What fits a topic's max.message.bytes by the runtime's count (fitting)
// is what the broker takes (real broker): single records of exactly that
// size, snappy-compressed like the runtime's, of data that compresses in
// various degrees, and batches of small records from a producer whose
// MaxMessageBytes is that size.
func TestFittingRecordsAreAccepted(t *testing.T) {
	e := kafkatest.Require(t)
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	client, err := sarama.NewClient([]string{e.Plaintext}, sc)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	r := rand.New(rand.NewPCG(1, 2))
	kinds := map[string]func(n int) []byte{
		"random": func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		},
		// short matches everywhere: 4 random bytes, then 4 copied from
		// far back (the tags cost as much as they save)
		"short matches": func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				if i%8 >= 4 && i >= 30000 {
					b[i] = b[i-30000+r.IntN(8)]
				} else {
					b[i] = byte(r.Uint32())
				}
			}
			return b
		},
		"half zeros": func(n int) []byte {
			b := make([]byte, n)
			for i := 0; i < n; i += 2 {
				b[i] = byte(r.Uint32())
			}
			return b
		},
	}
	for _, limit := range []int{10_000, 200_000, 1_048_588} {
		topic := fmt.Sprintf("fit%d-%d", time.Now().UnixNano(), limit)
		v := fmt.Sprint(limit)
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"max.message.bytes": &v}}, false); err != nil {
			t.Fatal(err)
		}
		defer admin.DeleteTopic(topic)
		max := fitting(limit)
		for _, comp := range []sarama.CompressionCodec{sarama.CompressionSnappy, sarama.CompressionNone} {
			pc := sarama.NewConfig()
			pc.Version = sarama.V3_6_0_0
			pc.Producer.Return.Successes = true
			pc.Producer.Compression = comp
			pc.Producer.MaxMessageBytes = max
			pc.Net.MaxOpenRequests = 1
			pc.Producer.Flush.Frequency = 50 * time.Millisecond
			p, err := sarama.NewSyncProducer([]string{e.Plaintext}, pc)
			if err != nil {
				t.Fatal(err)
			}
			for name, gen := range kinds {
				m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.ByteEncoder(gen(max - 37))}
				if n := m.ByteSize(2); n != max {
					t.Fatalf("message of %d bytes by sarama's count, want %d", n, max)
				}
				if _, _, err := p.SendMessage(m); err != nil {
					t.Errorf("limit %d, %v, %s: a record of %d bytes by sarama's count: %v", limit, comp, name, max, err)
				}
			}
			// Many small records at once: sarama batches them up to
			// MaxMessageBytes per partition.
			var batch []*sarama.ProducerMessage
			for i := 0; i < 20*limit/1000; i++ {
				batch = append(batch, &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(kinds["random"](1000))})
			}
			if err := p.SendMessages(batch); err != nil {
				t.Errorf("limit %d, %v: %d records of 1,000 bytes: %v", limit, comp, len(batch), err)
			}
			p.Close()
		}
	}
}
