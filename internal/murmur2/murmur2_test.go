package murmur2_test

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/internal/murmur2"
)

// The vectors of Kafka's own UtilsTest.testMurmur2.
func TestSumMatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := murmur2.Sum([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// sarama's custom hash partitioner, given New, picks Partition's answer: the
// formula goka uses with its hasher.
func TestSaramaPartitionerAgrees(t *testing.T) {
	p := sarama.NewCustomHashPartitioner(murmur2.New)("t")
	for _, key := range []string{"", "a", "customer-1", "cart-999", "21", "foobar", "ünïcode"} {
		got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, 8)
		if err != nil {
			t.Fatal(err)
		}
		if want := murmur2.Partition([]byte(key), 8); got != want {
			t.Errorf("%q: sarama picks %d, Partition says %d", key, got, want)
		}
	}
}

// A key holding a NUL byte (an id table's key) lands where what precedes
// the NUL does: on its subject's partition.
func TestNULKeysLandOnTheirPrefixPartition(t *testing.T) {
	p := sarama.NewCustomHashPartitioner(murmur2.New)("t")
	for _, subject := range []string{"a", "customer-1", "cart-999"} {
		for _, suffix := range []string{"", "1f", "deadbeefdeadbeef"} {
			got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(subject + "\x00" + suffix)}, 8)
			if err != nil {
				t.Fatal(err)
			}
			if want := murmur2.Partition([]byte(subject), 8); got != want {
				t.Errorf("%q+NUL+%q: partition %d, want its subject's %d", subject, suffix, got, want)
			}
		}
	}
}
