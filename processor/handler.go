package processor

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/lovoo/goka"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/murmur2"
)

// Headers Partita adds to records it re-routes or dead-letters.
const (
	HeaderOrigin      = "partita_origin"     // re-routed: "<topic>/<partition>/<offset>" it first arrived at
	HeaderDLQReason   = "partita_dlq_reason" // why the record is a dead letter
	HeaderDLQOrigin   = "partita_dlq_origin" // "<topic>/<partition>/<offset>" it was read from
	HeaderDLQGroup    = "partita_dlq_group"  // the group that gave up on it
	HeaderDLQTime     = "partita_dlq_time"   // RFC 3339
	headerOriginTopic = "partita_origin_topic"
)

// handler is the goka callback of one entity.
type handler struct {
	def        *core.Entity
	topics     core.Topics
	loop       string
	partitions int32
	stats      *Stats
	log        *slog.Logger
	env        core.Env
}

func (h *handler) handle(ctx goka.Context, msg any) {
	h.stats.Processed.Add(1)
	raw, _ := msg.([]byte)
	headers := ctx.Headers()
	rec := codec.Record{Key: []byte(ctx.Key()), Value: raw, Headers: headers}
	topic := string(ctx.Topic())

	ev, err := codec.DecodeEvent(rec)
	if err == nil {
		err = codec.RequireSubject(ev)
	}
	if err != nil {
		h.deadLetter(ctx, rec, err.Error())
		return
	}
	if h.def.Kind == core.Stateless {
		// No state, so nothing is bound to a partition: no re-routing.
		h.apply(ctx, rec, topic, &core.Envelope{}, ev)
		return
	}
	subject := ev.Subject()
	if topic == h.loop {
		topic = string(headers[headerOriginTopic])
		if ctx.Key() != subject || topic == "" {
			h.deadLetter(ctx, rec, "record on the loop topic is not keyed by its subject or lacks its origin")
			return
		}
	} else if ctx.Key() != subject || ctx.Partition() != murmur2.Partition([]byte(subject), h.partitions) {
		// Not where its subject lives: state must only be touched on the
		// subject's partition, under the subject's key.
		h.stats.Rerouted.Add(1)
		fwd := goka.Headers{}.Merged(headers, goka.Headers{
			headerOriginTopic: []byte(topic),
			HeaderOrigin:      []byte(origin(ctx)),
		})
		ctx.Loopback(subject, raw, goka.WithCtxEmitHeaders(fwd))
		return
	}
	var stored []byte
	if v := ctx.Value(); v != nil {
		stored, _ = v.([]byte)
	}
	env, err := core.DecodeEnvelope(stored)
	if err != nil {
		h.deadLetter(ctx, rec, fmt.Sprintf("subject %q: %v", subject, err))
		return
	}
	h.apply(ctx, rec, topic, env, ev)
}

// apply runs the entity's decision for ev and writes its outcome.
func (h *handler) apply(ctx goka.Context, rec codec.Record, topic string, env *core.Envelope, ev codec.Event) {
	out := core.Process(h.env, h.def, topic, env, ev)
	switch {
	case out.DeadLetter != "":
		h.deadLetter(ctx, rec, out.DeadLetter)
		return
	case out.Duplicate:
		h.stats.Duplicates.Add(1)
	}
	if out.Envelope != nil && h.def.Kind != core.Stateless {
		data, err := out.Envelope.Encode()
		if err != nil {
			h.deadLetter(ctx, rec, fmt.Sprintf("encode state: %v", err))
			return
		}
		ctx.SetValue(data)
	}
	for _, o := range out.Outputs {
		ctx.Emit(goka.Stream(o.Topic), string(o.Record.Key), o.Record.Value, goka.WithCtxEmitHeaders(o.Record.Headers))
	}
}

// deadLetter writes the record as received, plus the reason, to the
// dead-letter topic, and the partition moves on.
func (h *handler) deadLetter(ctx goka.Context, rec codec.Record, reason string) {
	h.stats.DeadLetters.Add(1)
	h.log.Warn("dead letter", "reason", reason, "origin", origin(ctx))
	ctx.Emit(goka.Stream(h.topics.DeadLetters()), ctx.Key(), rec.Value,
		goka.WithCtxEmitHeaders(dlqHeaders(ctx, rec, h.topics.Group(h.def.Name), reason)))
}

// dlqHeaders are the record's own headers plus the dead-letter headers.
func dlqHeaders(ctx goka.Context, rec codec.Record, group, reason string) goka.Headers {
	return goka.Headers{}.Merged(rec.Headers, goka.Headers{
		HeaderDLQReason: []byte(reason),
		HeaderDLQOrigin: []byte(origin(ctx)),
		HeaderDLQGroup:  []byte(group),
		HeaderDLQTime:   []byte(time.Now().UTC().Format(time.RFC3339Nano)),
	})
}

func origin(ctx goka.Context) string {
	return string(ctx.Topic()) + "/" + strconv.Itoa(int(ctx.Partition())) + "/" + strconv.FormatInt(ctx.Offset(), 10)
}
