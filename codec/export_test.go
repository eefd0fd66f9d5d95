package codec

import (
	"context"
	"strings"

	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
)

// DecodeViaBinding is the sdk's Kafka binding's reading of a record (header
// names lower-cased, as DecodeEvent does), the reference DecodeEvent is
// checked against. Only the tests import the binding, so codec does not
// reach sarama.
func DecodeViaBinding(r Record) (*Event, error) {
	h := make(map[string][]byte, len(r.Headers))
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	return binding.ToEvent(context.Background(), kafka_sarama.NewMessage(r.Value, string(h["content-type"]), h))
}

// AttributesOf is an event as DecodeAttributes returns it.
func AttributesOf(e Event) Attributes { return attributesOf(e) }

// UTF8AttributesForTest is utf8Attributes.
func UTF8AttributesForTest(e Event) bool { return utf8Attributes(e) }
