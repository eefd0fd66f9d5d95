package processor

import (
	"errors"
	"hash"
	"sync"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// groupProducer is the goka producer of one group: a sarama producer per
// distinct record limit among the topics the group writes (one, unless a
// topic has a max.message.bytes of its own), each record sent by the
// producer of its topic's limit. sarama bounds a record and the records it
// batches for one partition by the producer's MaxMessageBytes, so each
// batch fits its own topic, and a topic with a low limit does not lower
// the others'. Records of one topic always go through one producer, in
// the order goka emits them. Dead letters count in Stats.DeadLetters once
// the broker acknowledged them.
type groupProducer struct {
	byTopic  map[string]goka.Producer
	fallback goka.Producer // the smallest limit's, for a topic not foreseen
	all      []goka.Producer
	dlq      string
	stats    *Stats
}

// groupProducers builds the groupProducer of a group writing topics;
// limit gives each topic's record limit, config a producer configuration
// for a limit.
func groupProducers(topics []string, limit func(string) int, config func(max int) *sarama.Config, dlq string, stats *Stats) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		gp := &groupProducer{byTopic: map[string]goka.Producer{}, dlq: dlq, stats: stats}
		byLimit := map[int]goka.Producer{}
		smallest := 0
		for _, t := range topics {
			n := limit(t)
			p := byLimit[n]
			if p == nil {
				var err error
				if p, err = goka.ProducerBuilderWithConfig(config(n))(brokers, clientID, hasher); err != nil {
					_ = gp.Close()
					return nil, err
				}
				byLimit[n] = p
				gp.all = append(gp.all, p)
			}
			gp.byTopic[t] = p
			if smallest == 0 || n < smallest {
				smallest, gp.fallback = n, p
			}
		}
		if gp.fallback == nil {
			return nil, errors.New("a group that writes no topic") // every group writes dead letters
		}
		return gp, nil
	}
}

func (gp *groupProducer) producer(topic string) goka.Producer {
	if p := gp.byTopic[topic]; p != nil {
		return p
	}
	return gp.fallback
}

func (gp *groupProducer) count(err error) {
	if err == nil {
		gp.stats.DeadLetters.Add(1)
	}
}

func (gp *groupProducer) Emit(topic, key string, value []byte) *goka.Promise {
	p := gp.producer(topic).Emit(topic, key, value)
	if topic == gp.dlq {
		p.Then(gp.count)
	}
	return p
}

func (gp *groupProducer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	p := gp.producer(topic).EmitWithHeaders(topic, key, value, headers)
	if topic == gp.dlq {
		p.Then(gp.count)
	}
	return p
}

// Close closes every producer (each waits for its records in flight).
func (gp *groupProducer) Close() error {
	errs := make([]error, len(gp.all))
	var wg sync.WaitGroup
	for i, p := range gp.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
