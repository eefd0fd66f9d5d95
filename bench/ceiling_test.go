package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/internal/benchresult"
)

// BenchmarkBrokerCeiling measures what the broker itself takes and gives on
// this machine: sarama producing and consuming BENCH_RECORDS records of 100
// bytes, against Kafka's own producer and consumer performance tools in the
// same run.
func BenchmarkBrokerCeiling(b *testing.B) {
	kc, client := connect(b)
	addr := kc.BootstrapServers[0]
	n := envInt("BENCH_RECORDS", 1_000_000)
	run := time.Now().UnixNano()
	saramaTopic, toolTopic := fmt.Sprintf("ceiling%d-sarama", run), fmt.Sprintf("ceiling%d-tool", run)
	createTopic(b, client, saramaTopic, nil)
	createTopic(b, client, toolTopic, nil)

	value := make([]byte, 100)
	produced := produceAll(b, client, saramaTopic, n, func(i int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: saramaTopic, Key: sarama.StringEncoder("k" + strconv.Itoa(i)), Value: sarama.ByteEncoder(value)}
	})
	consumed := consumeAll(b, client, saramaTopic, n)

	// "1000000 records sent, 251256.3 records/sec (23.96 MB/sec), ..."
	out := java(b, "org.apache.kafka.tools.ProducerPerformance", "--topic", toolTopic, "--num-records", strconv.Itoa(n),
		"--record-size", "100", "--throughput", "-1", "--producer-props", "bootstrap.servers="+addr, "acks=all")
	toolProduce := toolRate(b, out, " records sent, ", func(line string) string {
		_, after, _ := strings.Cut(line, " records sent, ")
		rate, _, _ := strings.Cut(after, " ")
		return rate
	})
	// CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
	out = java(b, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", addr, "--topic", toolTopic,
		"--messages", strconv.Itoa(n), "--timeout", "60000")
	toolConsume := toolRate(b, out, ", ", func(line string) string {
		fields := strings.Split(line, ", ")
		if len(fields) < 6 || strings.Contains(line, "nMsg") {
			return ""
		}
		return fields[5]
	})

	setup := fmt.Sprintf("%s records of 100 bytes, 8 partitions, acks=all, real broker", thousands(n))
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	for _, r := range []benchresult.Result{
		{Measure: "Kafka producer perf tool", Value: toolProduce, Ratio: 1, Baseline: "Kafka producer perf tool"},
		{Measure: "sarama async producer", Value: rate(produced), Ratio: rate(produced) / toolProduce, Baseline: "Kafka producer perf tool"},
		{Measure: "Kafka consumer perf tool", Value: toolConsume, Ratio: 1, Baseline: "Kafka consumer perf tool"},
		{Measure: "sarama consumer", Value: rate(consumed), Ratio: rate(consumed) / toolConsume, Baseline: "Kafka consumer perf tool"},
	} {
		r.Section, r.Setup, r.Unit = "broker ceiling", setup, "records/s"
		benchresult.Print(os.Stdout, r)
	}
	for i := 0; i < b.N; i++ {
	}
}

// toolRate finds the last line of a Kafka tool's output that holds marker
// (the tools print progress lines before the total) and parses the rate
// field pick takes from it.
func toolRate(b *testing.B, out, marker string, pick func(line string) string) float64 {
	b.Helper()
	lines := strings.Split(out, "\n")
	slices.Reverse(lines)
	for _, line := range lines {
		if !strings.Contains(line, marker) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(pick(line)), 64); err == nil && v > 0 {
			return v
		}
	}
	b.Fatalf("no rate in the tool's output:\n%s", out)
	return 0
}

// consumeAll reads n records from topic's partitions, from the oldest, and
// returns how long it took.
func consumeAll(b *testing.B, client sarama.Client, topic string, n int) time.Duration {
	b.Helper()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	got := make(chan int, len(parts))
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			b.Fatal(err)
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer pc.Close()
			count := 0
			if end > 0 {
				for m := range pc.Messages() {
					count++
					if m.Offset+1 >= end {
						break
					}
				}
			}
			got <- count
		}()
	}
	total := 0
	for range parts {
		total += <-got
	}
	if total != n {
		b.Fatalf("consumed %d of %d", total, n)
	}
	return time.Since(start)
}
