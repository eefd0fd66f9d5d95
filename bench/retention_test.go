package bench

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/processor"
)

// BenchmarkRetention measures what idempotency by time costs, in one run:
// Partita's key-value entity with the default retention (24 h: ids beyond a
// subject's window of 16 go to the id table) against the window alone
// (Retention(0)), on the standard workload (10 commands a subject: no
// subject outgrows its window) and on a hot one (BENCH_HOT_COMMANDS over
// 1,000 subjects: every subject does), with the table bytes a subject
// costs in each.
func BenchmarkRetention(b *testing.B) {
	kc, client := connect(b)
	commands, subjects := size()
	hot := envInt("BENCH_HOT_COMMANDS", 200_000)
	for _, w := range []struct {
		name               string
		commands, subjects int
	}{
		{"standard", commands / 2, subjects / 2},
		{"hot", hot, 1_000},
	} {
		setup := fmt.Sprintf("%s workload: %s commands over %s subjects (%d each), 8 partitions, real broker",
			w.name, thousands(w.commands), thousands(w.subjects), w.commands/w.subjects)
		run := func(label string, opts ...entities.Option) (rate float64, table, ids float64) {
			app := fmt.Sprintf("ret%d", time.Now().UnixNano())
			fill(b, client, app+".counter.commands", w.commands, w.subjects)
			rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: b.TempDir(),
				Log: slog.New(slog.DiscardHandler)}, counterEntity(opts...))
			if err != nil {
				b.Fatal(err)
			}
			d := runUntil(b, w.name+"-"+label, rt.Run, rt.Stats().Processed.Load, int64(w.commands))
			_, tb := latestBytes(b, client, app+".counter-table")
			_, ib := latestBytes(b, client, app+".counter-ids")
			return float64(w.commands) / d.Seconds(), float64(tb) / float64(w.subjects), float64(ib) / float64(w.subjects)
		}
		windowRate, windowTable, _ := run("window", entities.Retention(0))
		retRate, retTable, retIDs := run("retention")
		baseline := "Partita, window of 16 alone (Retention(0)), same workload"
		for _, r := range []benchresult.Result{
			{Measure: "Partita, window alone: throughput", Value: windowRate, Unit: "commands/s", Ratio: 1},
			{Measure: "Partita, retention 24 h (window + id table): throughput", Value: retRate, Unit: "commands/s", Ratio: retRate / windowRate},
			{Measure: "window alone: table bytes per subject", Value: windowTable, Unit: "bytes", Ratio: 1},
			{Measure: "retention 24 h: table bytes per subject", Value: retTable, Unit: "bytes", Ratio: retTable / windowTable},
			{Measure: "retention 24 h: id table bytes per subject", Value: retIDs, Unit: "bytes", Ratio: retIDs / windowTable},
		} {
			r.Section, r.Setup, r.Baseline = "idempotency retention", setup, baseline
			benchresult.Print(os.Stdout, r)
		}
	}
	for i := 0; i < b.N; i++ {
	}
}

// latestBytes reads topic to its end and returns how many keys it holds
// and the bytes of their latest values (what compaction keeps).
func latestBytes(b *testing.B, client sarama.Client, topic string) (keys, bytes int) {
	b.Helper()
	if err := client.RefreshMetadata(topic); err != nil {
		return 0, 0 // no such topic (the window alone keeps no id table)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		b.Fatal(err)
	}
	latest := map[string]int{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			b.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			b.Fatal(err)
		}
		for m := range pc.Messages() {
			latest[string(m.Key)] = len(m.Value)
			if m.Offset+1 >= end {
				break
			}
		}
		pc.AsyncClose()
	}
	for _, n := range latest {
		bytes += n
	}
	return len(latest), bytes
}
