package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/viewstore"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/views"
)

// ErrUnknownView is returned by View and Lag for a name that is no view of
// the application, or before Run has opened the view.
var ErrUnknownView = errors.New("no such view")

func (r *Runtime) replicaDir(group string) string {
	return filepath.Join(r.cfg.DataDir, "views", group)
}

// replica keeps a view's store in step with its table topic.
type replica struct {
	name  string
	topic string
	store *viewstore.Store
	delay time.Duration

	mu  sync.Mutex
	hwm map[int32]int64 // high-water marks seen, per partition
}

// PartitionLag is how far a view replica's partition is behind.
type PartitionLag struct {
	Partition int32
	Gap       int64         // records written to the view table but not applied yet
	Age       time.Duration // since the timestamp of the last applied record; 0 if none
}

// View returns the read side of a view this runtime serves, for queries
// (see package views). The runtime alone writes to it.
func (r *Runtime) View(name string) (views.Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.replicas[name]
	if rep == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	return rep.store, nil
}

// Lag returns, per partition, how far the view's replica is behind.
func (r *Runtime) Lag(name string) ([]PartitionLag, error) {
	r.mu.Lock()
	rep := r.replicas[name]
	r.mu.Unlock()
	if rep == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	applied, err := rep.store.Offsets()
	if err != nil {
		return nil, err
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	var out []PartitionLag
	for p, hwm := range rep.hwm {
		l := PartitionLag{Partition: p, Gap: hwm - applied[p].Next}
		if l.Gap < 0 {
			l.Gap = 0
		}
		if t := applied[p].Time; !t.IsZero() && applied[p].Next > 0 {
			l.Age = time.Since(t)
		}
		out = append(out, l)
	}
	return out, nil
}

// openReplica opens the view's store and returns its replica.
func (r *Runtime) openReplica(v *core.View) (*replica, error) {
	store, err := viewstore.Open(r.replicaDir(r.topics.Group(v.Name)), v.Indexes...)
	if err != nil {
		return nil, err
	}
	rep := &replica{name: v.Name, topic: r.topics.Table(v.Name), store: store, delay: r.cfg.ViewApplyDelay, hwm: map[int32]int64{}}
	r.mu.Lock()
	r.replicas[v.Name] = rep
	r.mu.Unlock()
	return rep, nil
}

// run consumes the view table from where the store stopped and applies it
// in batches until ctx ends or the consumer fails. caughtUp is called once
// every partition has reached the high-water mark it had at start.
func (rep *replica) run(ctx context.Context, client sarama.Client, caughtUp func(), stats *Stats, log *slog.Logger) error {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	parts, err := client.Partitions(rep.topic)
	if err != nil {
		return err
	}
	applied, err := rep.store.Offsets()
	if err != nil {
		return err
	}
	records := make(chan *sarama.ConsumerMessage, 4096)
	pending := map[int32]bool{}
	starts := make([]int64, len(parts))
	// Every high-water mark before any fetch: Kafka answers one request per
	// connection at a time, and a fetch waits up to Consumer.MaxWaitTime.
	for i, p := range parts {
		starts[i] = sarama.OffsetOldest
		if a, ok := applied[p]; ok {
			starts[i] = a.Next
		}
		hwm, err := client.GetOffset(rep.topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		rep.setHWM(p, hwm)
		if starts[i] == sarama.OffsetOldest && hwm > 0 || starts[i] >= 0 && starts[i] < hwm {
			pending[p] = true
		}
	}
	for i, p := range parts {
		start := starts[i]
		pc, err := consumer.ConsumePartition(rep.topic, p, start)
		if err != nil {
			return fmt.Errorf("view %s partition %d from %d: %w", rep.name, p, start, err)
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				rep.setHWM(m.Partition, pc.HighWaterMarkOffset())
				select {
				case records <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	log.Debug("view replica started", "view", rep.name, "resume", applied)
	signal := func() {
		if len(pending) == 0 {
			caughtUp()
		}
	}
	signal()
	for {
		var batch []viewstore.Record
		select {
		case <-ctx.Done():
			return nil
		case m := <-records:
			batch = append(batch, toRecord(m))
		drain:
			for len(batch) < 1000 {
				select {
				case m := <-records:
					batch = append(batch, toRecord(m))
				default:
					break drain
				}
			}
		}
		if rep.delay > 0 {
			select {
			case <-time.After(rep.delay):
			case <-ctx.Done():
				return nil
			}
		}
		if err := rep.store.Apply(batch); err != nil {
			return fmt.Errorf("view %s: apply: %w", rep.name, err)
		}
		stats.ViewApplied.Add(int64(len(batch)))
		for _, b := range batch {
			if pending[b.Partition] && b.Offset+1 >= rep.hwmOf(b.Partition) {
				delete(pending, b.Partition)
			}
		}
		signal()
	}
}

func toRecord(m *sarama.ConsumerMessage) viewstore.Record {
	var env []byte
	if m.Value != nil {
		env = m.Value
	}
	return viewstore.Record{ID: string(m.Key), Envelope: env, Partition: m.Partition, Offset: m.Offset, Time: m.Timestamp}
}

func (rep *replica) setHWM(p int32, hwm int64) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if old, ok := rep.hwm[p]; !ok || hwm > old {
		rep.hwm[p] = hwm
	}
}

func (rep *replica) hwmOf(p int32) int64 {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.hwm[p]
}

// RebuildView makes a view start over from its sources at the next Run: it
// deletes the view's committed offsets, its table topic and this worker's
// local copies. Every worker of the application must be stopped (the group
// must be empty) and each must call it, or delete its data directory, before
// starting again. Sources are read from their oldest record: a view fed by a
// topic with limited retention is rebuilt only as far as that topic reaches
// back, while entity tables (compacted) and events topics (kept forever by
// default) rebuild completely.
func (r *Runtime) RebuildView(ctx context.Context, name string) error {
	var v *core.View
	for _, cand := range r.views {
		if cand.Name == name {
			v = cand
		}
	}
	if v == nil {
		return fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	client, err := broker.Connect(ctx, r.cfg.Kafka, r.cfg.Log)
	if err != nil {
		return err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return err
	}
	group := r.topics.Group(name)
	if err := admin.DeleteConsumerGroup(group); err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return fmt.Errorf("delete offsets of %s (stop every worker first): %w", group, err)
	}
	for _, t := range []string{r.topics.Table(name), r.topics.Loop(name)} {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("delete %s: %w", t, err)
		}
	}
	// Deletion is asynchronous: wait until the topics are gone, so Run
	// creates them afresh.
	for deadline := time.Now().Add(time.Minute); ; {
		_ = client.RefreshMetadata()
		topics, err := client.Topics()
		if err != nil {
			return err
		}
		if !slices.Contains(topics, r.topics.Table(name)) && !slices.Contains(topics, r.topics.Loop(name)) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics of view %s still exist after a minute", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, dir := range []string{r.groupDir(group), r.replicaDir(group)} {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	r.cfg.Log.Info("view reset: it rebuilds from its sources at the next start", "view", name)
	return nil
}

// Workflows names the application's workflows (package workflows), each
// with the view that lists its instances by status.
func (r *Runtime) Workflows() map[string]string {
	out := map[string]string{}
	for _, v := range r.views {
		if v.Workflow != "" {
			out[v.Workflow] = v.Name
		}
	}
	return out
}
