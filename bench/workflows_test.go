package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/workflows"
)

type steps3 struct {
	Reserved, Charged, Confirmed bool
}

// BenchmarkWorkflowSteps3 runs the three-step workflow of issue 17 (an
// entity call, an activity, an entity call) on the real broker, N
// instances started at once, and the same workload on Temporal's
// development server (TemporalSteps3), same N, same run: workflows
// completed per second and end-to-end latency (start command written to
// the last step recorded), with Partita's rate as a ratio of Temporal's.
func BenchmarkWorkflowSteps3(b *testing.B) {
	n, _ := workflowSize()
	kc, client := connect(b)
	app := fmt.Sprintf("wf%d", time.Now().UnixNano())

	ledger := entities.KeyValue[int]("ledger")
	for _, c := range []string{"reserve", "confirm"} {
		entities.Command(ledger, c, func(ctx *entities.Context[int], _ struct{}) entities.Effect[int] {
			return ctx.Update(ctx.State() + 1).Reply(ctx.State() + 1)
		})
	}
	var mu sync.Mutex
	done := map[string]time.Time{}
	finished := make(chan struct{})
	w := workflows.New[steps3]("steps3", workflows.SendsTo("ledger"))
	workflows.Call(w, "reserve", func(string, steps3) (string, string, string, any) { return "ledger", "stock", "reserve", struct{}{} },
		func(s steps3, _ int) workflows.Next[steps3] { s.Reserved = true; return workflows.Goto(s, "charge") })
	workflows.Activity(w, "charge", func(context.Context, workflows.Attempt[steps3]) (bool, error) { return true, nil },
		func(s steps3, ok bool) workflows.Next[steps3] { s.Charged = ok; return workflows.Goto(s, "confirm") })
	workflows.Call(w, "confirm", func(string, steps3) (string, string, string, any) { return "ledger", "orders", "confirm", struct{}{} },
		func(s steps3, _ int) workflows.Next[steps3] { s.Confirmed = true; return workflows.End(s) })
	rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: b.TempDir(),
		Log: slog.New(slog.DiscardHandler)}, ledger, w)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- rt.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	select {
	case <-rt.Ready():
	case err := <-stopped:
		b.Fatal(err)
	case <-time.After(2 * time.Minute):
		b.Fatal("runtime not ready")
	}
	reader, err := rt.View("steps3-by-status")
	if err != nil {
		b.Fatal(err)
	}
	// An instance's completion is when the workflow's status view first
	// shows it completed.
	sub, err := reader.Subscribe(ctx, views.Query{Index: "status", Eq: workflows.Completed})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for c := range sub.Changes() {
			if c.Kind != views.Upserted {
				continue
			}
			mu.Lock()
			if _, seen := done[c.Row.ID]; !seen {
				done[c.Row.ID] = time.Now()
				if len(done) == n {
					close(finished)
				}
			}
			mu.Unlock()
		}
	}()

	started := make([]time.Time, n)
	topic := rt.TopicNames().Commands("steps3")
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	b.ResetTimer()
	for i := range n {
		e := codec.NewEvent()
		e.SetID(fmt.Sprintf("start-%d", i))
		e.SetSource("bench")
		e.SetType(workflows.CommandStart)
		e.SetSubject(fmt.Sprintf("i%d", i))
		_ = e.SetData("application/json", steps3{})
		r, _ := codec.EncodeEvent(e)
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
		for k, v := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
		}
		started[i] = time.Now()
		if _, _, err := producer.SendMessage(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		b.Fatalf("%d of %d workflows completed in 5 minutes", len(done), n)
	}
	b.StopTimer()
	mu.Lock()
	var last time.Time
	lat := make([]time.Duration, 0, n)
	for i := range n {
		t := done[fmt.Sprintf("i%d", i)]
		if t.After(last) {
			last = t
		}
		lat = append(lat, t.Sub(started[i]))
	}
	mu.Unlock()
	slices.Sort(lat)
	partita := TemporalResult{Rate: float64(n) / last.Sub(started[0]).Seconds(), P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}
	temporal := TemporalSteps3(b, n)

	b.ReportMetric(partita.Rate, "workflows/s")
	b.ReportMetric(partita.Rate/temporal.Rate, "x-temporal")
	section, setup := steps3Section(n)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	const measure = "Partita workflow (entity call, activity, entity call; real broker)"
	for _, r := range []benchresult.Result{
		{Section: section, Setup: setup, Measure: measure + ": workflows completed", Value: partita.Rate, Unit: "workflows/s",
			Ratio: partita.Rate / temporal.Rate, Baseline: "Temporal dev server (SQLite, Go SDK worker): workflows completed"},
		{Section: section, Setup: setup, Measure: measure + ": end-to-end latency, p50", Value: ms(partita.P50), Unit: "ms"},
		{Section: section, Setup: setup, Measure: measure + ": end-to-end latency, p99", Value: ms(partita.P99), Unit: "ms"},
	} {
		benchresult.Print(os.Stdout, r)
	}
	for _, r := range temporalResults(section, setup, "workflows completed", "workflows/s", "end-to-end latency", temporal) {
		benchresult.Print(os.Stdout, r)
	}
}
