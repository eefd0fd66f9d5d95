package processor

import (
	"bytes"
	"context"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// Headers Partita adds to records it re-routes or dead-letters.
const (
	HeaderOrigin    = topics.HeaderOrigin    // re-routed: "<topic>/<partition>/<offset>" it first arrived at
	HeaderDLQReason = topics.HeaderDLQReason // why the record is a dead letter
	HeaderDLQOrigin = topics.HeaderDLQOrigin // "<topic>/<partition>/<offset>" it was read from
	HeaderDLQGroup  = topics.HeaderDLQGroup  // the group that gave up on it
	HeaderDLQTime   = topics.HeaderDLQTime   // RFC 3339
	HeaderDLQCode   = topics.HeaderDLQCode   // the kind's code (package deadletter: deadletter.FromCode)
)

// handler adapts goka's callback to the runtime's record handling
// (core.HandleEntity or core.HandleView), which the in-memory harness calls
// too: this file only moves data between goka and core.
type handler struct {
	group      string
	observe    Observer
	decide     func(core.Delivery) core.Actions
	dlq        string
	loop       string
	partitions int32
	stateful   bool
	stats      *Stats
	log        *slog.Logger
	// ids is the entity's id table ("" topic: none).
	ids idTables
	// timers schedules an entity's timers (nil for views and consumers).
	timers *timers
	// slots bounds the detached runs in flight (nil: the entity has none;
	// see core.Entity.Detached).
	slots chan struct{}
	// out is the processor's producer while it is open: detached runs
	// write with it.
	outMu sync.RWMutex
	out   emitter
	// starts is where this processor started reading each partition of
	// its commands and loop topics, since its last rebalance.
	mu       sync.Mutex
	starts   map[int32]*start
	commands string // the commands topic ("" for views and consumers)
}

// start is where a processor started reading a partition, by origin topic.
type start struct {
	since envelope.Since
	seen  [3]bool
}

// since records that the processor read topic's partition p at offset
// (the first offset read since a rebalance is where the group's committed
// offset stood) and returns where it started reading p.
func (h *handler) since(topic string, p int32, offset int64) envelope.Since {
	o := envelope.OriginElsewhere
	switch topic {
	case h.commands:
		o = envelope.OriginCommands
	case h.loop:
		o = envelope.OriginLoop
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.starts == nil {
		h.starts = map[int32]*start{}
	}
	s := h.starts[p]
	if s == nil {
		s = &start{}
		h.starts[p] = s
	}
	if o != envelope.OriginElsewhere && !s.seen[o] {
		s.since[o], s.seen[o] = offset, true
	}
	return s.since
}

// rebalanced forgets where partitions started: an assignment starts them
// again at the committed offsets.
func (h *handler) rebalanced() {
	h.mu.Lock()
	h.starts = nil
	h.mu.Unlock()
}

func (h *handler) handle(ctx goka.Context, msg any) {
	h.stats.Processed.Add(1)
	raw, _ := msg.([]byte)
	d := core.Delivery{
		Topic: string(ctx.Topic()), Partition: ctx.Partition(), Offset: ctx.Offset(),
		Record: codec.Record{Key: []byte(ctx.Key()), Value: raw, Headers: ctx.Headers()},
		Loop:   h.loop, Partitions: h.partitions,
		Ctx: ctx.Context(), // goka's: cancelled when the processor stops or the partition is revoked
	}
	if h.stateful {
		d.Stored, _ = ctx.Value().([]byte)
	}
	ids := h.ids.partition(ctx.Partition())
	if ids != nil {
		d.IDs = ids
	}
	if h.commands != "" {
		d.Since = h.since(d.Topic, d.Partition, d.Offset)
	}
	start := time.Now()
	a := h.decide(d)
	if h.observe != nil {
		h.observe.Handled(h.group, time.Since(start))
	}
	switch {
	case a.Loopback != nil:
		h.stats.Rerouted.Add(1)
		ctx.Loopback(string(a.Loopback.Key), a.Loopback.Value, goka.WithCtxEmitHeaders(a.Loopback.Headers))
		return
	case a.DeadLetter != nil:
		// Counted once written (groupProducer).
		h.log.Warn("dead letter", "reason", a.Reason, "origin", d.Origin())
		ctx.Emit(goka.Stream(h.dlq), string(a.DeadLetter.Key), a.DeadLetter.Value, goka.WithCtxEmitHeaders(a.DeadLetter.Headers))
		h.store(ctx, a.Store)  // a dead-lettered fire's timer, consumed
		h.emit(ctx, a.Outputs) // an asked command's answer
		return
	}
	if a.Duplicate {
		h.stats.Duplicates.Add(1)
	}
	h.store(ctx, a.Store)
	for _, m := range a.Remember {
		// The local copy at once (the next command may look for it), the
		// topic like any output: goka commits the input once it has it.
		if ids != nil {
			if err := ids.Remember(m.Key, m.Value); err != nil {
				ctx.Fail(err)
			}
		}
		ctx.Emit(goka.Stream(h.ids.topic), m.Key, m.Value)
	}
	h.emit(ctx, a.Outputs)
	if a.Job != nil {
		h.detach(ctx.Context(), a.Job)
	}
}

// detach starts a detached run once one of the entity's slots is free: the
// partition waits for one. A run whose partition is lost before it starts
// is dropped; its asker's timeout covers it (core.Job.Run).
func (h *handler) detach(ctx context.Context, j *core.Job) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	go func() {
		defer func() { <-h.slots }()
		j.Run(h.write)
	}()
}

// write writes a detached run's record with the processor's producer. A
// record that cannot be written is lost to its run, whose asker's timeout
// covers it.
func (h *handler) write(o envelope.Output) {
	h.outMu.RLock()
	defer h.outMu.RUnlock()
	if h.out == nil {
		h.log.Warn("detached run: the producer is closed; its record is dropped", "topic", o.Topic)
		return
	}
	h.out(o.Topic, string(o.Record.Key), o.Record.Value, goka.Headers(o.Record.Headers)).Then(func(err error) {
		if err != nil {
			h.log.Warn("detached run: a record was not written", "topic", o.Topic, "error", err)
		}
	})
}

// producerBuilder wraps the processor's producer builder: while the
// producer is open, detached runs write with it and the timers' schedule
// runs, writing its fires with it.
func (h *handler) producerBuilder(b goka.ProducerBuilder) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		p, err := b(brokers, clientID, hasher)
		if err != nil {
			return nil, err
		}
		h.outMu.Lock()
		h.out = p.EmitWithHeaders
		h.outMu.Unlock()
		if h.timers != nil {
			h.timers.start(p.EmitWithHeaders)
		}
		return &openProducer{Producer: p, h: h}, nil
	}
}

type openProducer struct {
	goka.Producer
	h *handler
}

func (p *openProducer) Close() error {
	p.h.outMu.Lock()
	p.h.out = nil
	p.h.outMu.Unlock()
	if p.h.timers != nil {
		p.h.timers.close()
	}
	return p.Producer.Close()
}

// store sets the key's new table value, if any, and tells the timers.
func (h *handler) store(ctx goka.Context, value []byte) {
	if value == nil {
		return
	}
	ctx.SetValue(value)
	if h.timers != nil {
		h.timers.stored(ctx.Partition(), ctx.Key(), value)
	}
}

// emit writes outs; one for the group's own loop topic (an entity's
// answer to its own ask) goes through goka's loopback.
func (h *handler) emit(ctx goka.Context, outs []envelope.Output) {
	for _, o := range outs {
		if o.Topic == h.loop {
			ctx.Loopback(string(o.Record.Key), o.Record.Value, goka.WithCtxEmitHeaders(o.Record.Headers))
			continue
		}
		ctx.Emit(goka.Stream(o.Topic), string(o.Record.Key), o.Record.Value, goka.WithCtxEmitHeaders(o.Record.Headers))
	}
}

// ambiguity marks a record that carries a CloudEvents header (ce_*,
// content-type) more than once with topics.HeaderAmbiguous, naming each such
// header with its values ("ce_subject=a|b"): goka hands the callback a map
// of headers, which would keep one of them silently. A producer's own
// HeaderAmbiguous is dropped first: only the runtime sets it.
type ambiguity struct{}

func (ambiguity) OnConsume(m *sarama.ConsumerMessage) {
	var marks []byte
	hs := m.Headers[:0:0]
	for _, h := range m.Headers {
		if string(h.Key) != topics.HeaderAmbiguous {
			hs = append(hs, h)
		}
	}
	if len(hs) != len(m.Headers) {
		m.Headers = hs
	}
	for i, h := range m.Headers {
		if !cloudEventsHeader(h.Key) || repeated(m.Headers[:i], h.Key) {
			continue // not one of them, or named already
		}
		var values [][]byte
		for _, o := range m.Headers[i+1:] {
			if bytes.EqualFold(o.Key, h.Key) {
				values = append(values, o.Value)
			}
		}
		if values == nil {
			continue
		}
		if len(marks) > 0 {
			marks = append(marks, ',')
		}
		marks = append(append(append(marks, h.Key...), '='), h.Value...)
		for _, v := range values {
			marks = append(append(marks, '|'), v...)
		}
	}
	if marks != nil {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(topics.HeaderAmbiguous), Value: marks})
	}
}

// repeated reports whether hs holds a header named like key.
func repeated(hs []*sarama.RecordHeader, key []byte) bool {
	for _, o := range hs {
		if bytes.EqualFold(o.Key, key) {
			return true
		}
	}
	return false
}

var contentType = []byte("content-type")

func cloudEventsHeader(k []byte) bool {
	return len(k) > 3 && (k[0]|0x20) == 'c' && (k[1]|0x20) == 'e' && k[2] == '_' || bytes.EqualFold(k, contentType)
}
