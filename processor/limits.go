package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Record size limits.
//
// A record the broker refuses as too large fails its write, and a failed
// write stops the goka processor that made it: the supervisor starts it
// again on the same input, which fails the same way, forever. So
// everything the runtime writes is made to fit (core.Env.MaxRecordOf; see
// core.HandleEntity) the limit of its topic: the smaller of the producer's
// own (Producer.MaxMessageBytes) and what a record batch may have on that
// topic (max.message.bytes, which the cluster reports for every topic: the
// topic's own setting or the broker's message.max.bytes), less what the
// broker counts beyond the records.
//
// What the broker counts (measured on Kafka 4.1): the whole record batch
// as it arrives, after compression: 12 bytes of log overhead, the 49-byte
// batch header, then the records. A record of value v, 1-byte key and no
// headers sent uncompressed fits a topic limit of 200,000 with v up to
// 199,927 (61 bytes of batch overhead plus 12 of the record's own framing,
// which sarama's ProducerMessage.ByteSize and core's record size count
// more generously). Snappy in sarama's xerial framing adds a 16-byte
// header and about 10 bytes per 32 KiB block to data that does not
// compress (85 bytes on 200,000 random bytes).
//
// The same limit is the Producer.MaxMessageBytes of the producer that
// writes to the topic (groupProducer: one producer per distinct limit),
// which sarama also applies to the sum of the records it batches for one
// partition: a batch of many small records then fits the topic too.

// batchOverhead is what a record batch adds to its records in the
// broker's count: log overhead (offset, length) and the v2 batch header.
const batchOverhead = 12 + 49

// compressionSlack bounds what snappy, framed as sarama frames it, adds to
// n bytes that do not compress: a 16-byte header, and per 32 KiB block a
// 4-byte length, the block's length and literal tags (10 bytes measured;
// 16 allowed).
func compressionSlack(n int) int { return 16 + 16*((n+32<<10-1)/(32<<10)) }

// fitting returns the largest sum of records (as sarama and core count
// them) whose batch a topic whose max.message.bytes is limit accepts.
func fitting(limit int) int { return limit - batchOverhead - compressionSlack(limit) }

// recordLimits are the limits a record written by the runtime must fit.
type recordLimits struct {
	producer int            // the producer's Producer.MaxMessageBytes
	topics   map[string]int // max.message.bytes by topic, where the cluster said
}

// written lists the topics graph's group writes: its outputs (the
// dead-letter topic among them), loop and table topics.
func written(graph *goka.GroupGraph) []string {
	var topics []string
	for _, e := range graph.OutputStreams() {
		topics = append(topics, e.Topic())
	}
	if e := graph.LoopStream(); e != nil {
		topics = append(topics, e.Topic())
	}
	if e := graph.GroupTable(); e != nil {
		topics = append(topics, e.Topic())
	}
	return topics
}

// forTopic is the limit of a record written to topic: the producer's, or
// what fits the topic's max.message.bytes when that is lower.
func (l recordLimits) forTopic(topic string) int {
	n := l.producer
	if limit, ok := l.topics[topic]; ok {
		n = min(n, fitting(limit))
	}
	return max(n, 1)
}

// The configurations readLimits reads.
const (
	topicMaxMessage  = "max.message.bytes"
	brokerMaxMessage = "message.max.bytes"
)

// readLimits reads max.message.bytes of topics from the cluster
// (DescribeConfigs; the broker's message.max.bytes for a topic the answer
// lacks it for). A topic the principal may not describe, or an answer that
// fails, leaves that topic out (the producer's limit applies to it), logged
// once at info level.
func readLimits(client sarama.Client, topics []string, producer int, log *slog.Logger) recordLimits {
	l := recordLimits{producer: producer, topics: map[string]int{}}
	if len(topics) == 0 {
		return l
	}
	sort.Strings(topics)
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		log.Info("record size limits not read from the cluster; the producer's applies", "limit", producer, "err", err)
		return l
	}
	// Not admin.Close: it closes the client, which is the caller's.
	var resources []*sarama.ConfigResource
	for _, t := range topics {
		resources = append(resources, &sarama.ConfigResource{Type: sarama.TopicResource, Name: t, ConfigNames: []string{topicMaxMessage}})
	}
	results, err := admin.DescribeConfigs(resources, sarama.DescribeConfigsOptions{})
	if err != nil {
		log.Info("record size limits not read from the cluster; the producer's applies", "limit", producer, "err", err)
		return l
	}
	var denied, failed, lacking []string
	var firstErr error
	for _, res := range results {
		if res.ErrorCode != 0 {
			kerr := sarama.KError(res.ErrorCode)
			if errors.Is(kerr, sarama.ErrTopicAuthorizationFailed) || errors.Is(kerr, sarama.ErrClusterAuthorizationFailed) {
				denied = append(denied, res.Name)
			} else {
				failed = append(failed, res.Name)
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", res.Name, kerr)
				}
			}
			continue
		}
		found := false
		for _, c := range res.Configs {
			if c.Name != topicMaxMessage {
				continue
			}
			if n, err := strconv.Atoi(c.Value); err == nil && n > 0 {
				l.topics[res.Name], found = n, true
			}
		}
		if !found {
			lacking = append(lacking, res.Name)
		}
	}
	if len(lacking) > 0 {
		if n, err := brokerLimit(admin, client); err == nil {
			for _, t := range lacking {
				l.topics[t] = n
			}
		} else {
			failed = append(failed, lacking...)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if len(denied) > 0 {
		log.Info("not allowed to describe topics: their record size limit is the producer's", "topics", denied, "limit", producer)
	}
	if len(failed) > 0 {
		log.Info("record size limits of topics not read: the producer's applies", "topics", failed, "limit", producer, "err", firstErr)
	}
	if len(l.topics) > 0 {
		small, at := 0, ""
		for _, t := range topics {
			if n, ok := l.topics[t]; ok && (at == "" || n < small) {
				small, at = n, t
			}
		}
		log.Info("record size limits read from the cluster", "topics", len(l.topics), "smallest max.message.bytes", small, "topic", at,
			"its record limit", l.forTopic(at), "producer limit", producer)
	}
	return l
}

// brokerLimit reads message.max.bytes of one of the cluster's brokers.
func brokerLimit(admin sarama.ClusterAdmin, client sarama.Client) (int, error) {
	brokers := client.Brokers()
	if len(brokers) == 0 {
		return 0, errors.New("no broker known")
	}
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.BrokerResource, Name: strconv.Itoa(int(brokers[0].ID())), ConfigNames: []string{brokerMaxMessage}}}, sarama.DescribeConfigsOptions{})
	if err != nil {
		return 0, fmt.Errorf("broker %s: %w", brokerMaxMessage, err)
	}
	for _, res := range results {
		if res.ErrorCode != 0 {
			return 0, fmt.Errorf("broker %s: %w", brokerMaxMessage, sarama.KError(res.ErrorCode))
		}
		for _, e := range res.Configs {
			if e.Name == brokerMaxMessage {
				if n, err := strconv.Atoi(e.Value); err == nil && n > 0 {
					return n, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("broker %s: not in the answer", brokerMaxMessage)
}
