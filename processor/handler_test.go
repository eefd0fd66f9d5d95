package processor

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/internal/topics"
)

// The interceptor names each CloudEvents header that appears more than once
// with its values, ignores others, and drops a producer's own mark.
func TestAmbiguityMarksRepeatedCloudEventsHeaders(t *testing.T) {
	h := func(k, v string) *sarama.RecordHeader { return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	for _, c := range []struct {
		in   []*sarama.RecordHeader
		want string
	}{
		{[]*sarama.RecordHeader{h("ce_id", "1"), h("ce_subject", "a"), h("x", "1"), h("x", "2")}, ""},
		{[]*sarama.RecordHeader{h("ce_subject", "a"), h("ce_id", "1"), h("ce_subject", "b")}, "ce_subject=a|b"},
		{[]*sarama.RecordHeader{h("ce_type", "t"), h("CE_TYPE", "u"), h("content-type", "j"), h("Content-Type", "k")}, "ce_type=t|u,content-type=j|k"},
		{[]*sarama.RecordHeader{h(topics.HeaderAmbiguous, "forged"), h("ce_id", "1")}, ""},
	} {
		m := &sarama.ConsumerMessage{Headers: c.in}
		ambiguity{}.OnConsume(m)
		got := ""
		for _, x := range m.Headers {
			if string(x.Key) == topics.HeaderAmbiguous {
				got = string(x.Value)
			}
		}
		if got != c.want {
			t.Errorf("%d headers: mark %q, want %q", len(c.in), got, c.want)
		}
	}
}
