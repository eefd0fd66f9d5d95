package processor

import (
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
)

// Headers Partita adds to records it re-routes or dead-letters.
const (
	HeaderOrigin    = core.HeaderOrigin    // re-routed: "<topic>/<partition>/<offset>" it first arrived at
	HeaderDLQReason = core.HeaderDLQReason // why the record is a dead letter
	HeaderDLQOrigin = core.HeaderDLQOrigin // "<topic>/<partition>/<offset>" it was read from
	HeaderDLQGroup  = core.HeaderDLQGroup  // the group that gave up on it
	HeaderDLQTime   = core.HeaderDLQTime   // RFC 3339
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
}

func (h *handler) handle(ctx goka.Context, msg any) {
	h.stats.Processed.Add(1)
	raw, _ := msg.([]byte)
	d := core.Delivery{
		Topic: string(ctx.Topic()), Partition: ctx.Partition(), Offset: ctx.Offset(),
		Record: codec.Record{Key: []byte(ctx.Key()), Value: raw, Headers: ctx.Headers()},
		Loop:   h.loop, Partitions: h.partitions,
	}
	if h.stateful {
		d.Stored, _ = ctx.Value().([]byte)
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
		h.stats.DeadLetters.Add(1)
		h.log.Warn("dead letter", "reason", a.Reason, "origin", d.Origin())
		ctx.Emit(goka.Stream(h.dlq), string(a.DeadLetter.Key), a.DeadLetter.Value, goka.WithCtxEmitHeaders(a.DeadLetter.Headers))
		return
	}
	if a.Duplicate {
		h.stats.Duplicates.Add(1)
	}
	if a.Store != nil {
		ctx.SetValue(a.Store)
	}
	for _, o := range a.Outputs {
		ctx.Emit(goka.Stream(o.Topic), string(o.Record.Key), o.Record.Value, goka.WithCtxEmitHeaders(o.Record.Headers))
	}
}
