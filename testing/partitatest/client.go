package partitatest

import (
	"context"
	"fmt"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/request"
)

var _ request.Requester = (*Harness)(nil)

// maxCommandRecord is the largest command record Request writes: the
// harness's record limit (core.Env.MaxRecord in env).
const maxCommandRecord = 1 << 20

// Request sends req's command as processor.Client does on Kafka (same
// event, same defaults: source request.DefaultSource, payload {} when
// empty, no access rule checked: the caller is what its sender vouches
// for; use Send with As to test rules), lets every group that is not
// lagging process what it can, and returns the command's reply. It is the
// in-memory request.Requester: code written against one runs on the
// harness and on the worker with the same errors.
//
// Errors: request.ErrUnknownEntity (and ErrUnknown) for an entity that
// takes no commands; request.ErrInvalid for a request that makes no valid
// CloudEvent and request.ErrRecordTooLarge for a record over 1 MiB,
// nothing written; *request.DeadLetterError when the command was
// dead-lettered (errors.Is its kind in package deadletter);
// request.ErrNoReply (and ErrNoReply) when no reply came (its entity is
// lagging, or the command was re-routed into a lagging group), or when ctx
// has ended: the harness never waits, but a done ctx gives what a client
// whose wait ended gets, after the command is written. A request without
// an ID gets the harness's next id ("cmd-<n>"), deterministic like the
// rest of the harness. The harness is one caller at a time, so
// request.ErrInFlight, ErrNotFollowing and ErrUnavailable do not occur.
func (h *Harness) Request(ctx context.Context, req request.Request) (request.Reply, error) {
	if g := h.byName[req.Entity]; g == nil || g.entity == nil || g.entity.Kind == core.Stateless {
		return request.Reply{}, fmt.Errorf("%w entity %q (%w)", ErrUnknown, req.Entity, request.ErrUnknownEntity)
	}
	o := sendOpts{id: req.ID, source: req.Source, caller: req.Caller}
	if o.source == "" {
		o.source = request.DefaultSource
	}
	data := req.Data
	if len(data) == 0 {
		data = []byte("{}")
	}
	ev, err := h.command(req.Subject, req.Command, nil, o)
	if err != nil {
		return request.Reply{}, fmt.Errorf("%w: %w", request.ErrInvalid, err)
	}
	ev.SetDataContentType("application/json")
	ev.DataEncoded = data // as sent, not re-encoded: the entity decodes it
	rec, err := codec.EncodeEvent(ev)
	if err == nil {
		err = codec.RequireSubject(ev)
	}
	if err != nil {
		return request.Reply{}, fmt.Errorf("%w: %w", request.ErrInvalid, err)
	}
	if n := core.RecordSize(rec.Key, rec.Value, rec.Headers); n > maxCommandRecord {
		return request.Reply{}, fmt.Errorf("%w: it would be %d bytes, more than the harness accepts (%d)", request.ErrRecordTooLarge, n, maxCommandRecord)
	}
	h.write(h.topics.Commands(req.Entity), ev, o)
	h.settle(nil)
	if err := ctx.Err(); err != nil {
		return request.Reply{}, fmt.Errorf("%w to command %s: %w", request.ErrNoReply, ev.ID(), err)
	}
	if h.dead[ev.Source()+"\x00"+ev.ID()] {
		return request.Reply{}, h.deadLetterOf(ev.Source(), ev.ID())
	}
	r, err := h.reply(ev.Source(), ev.ID())
	if err != nil {
		return request.Reply{}, fmt.Errorf("%w (%w)", request.ErrNoReply, err)
	}
	return request.Reply{Data: r.Data, Code: r.Code, Message: r.Message, Position: r.Position}, nil
}

// deadLetterOf is the last dead letter of the command of source and id.
func (h *Harness) deadLetterOf(source, id string) *request.DeadLetterError {
	var found *request.DeadLetterError
	for _, part := range h.logs[h.topics.DeadLetters()] {
		for _, r := range part {
			if string(r.Headers["ce_source"]) == source && string(r.Headers["ce_id"]) == id {
				found = &request.DeadLetterError{Code: string(r.Headers[topics.HeaderDLQCode]), Reason: string(r.Headers[topics.HeaderDLQReason])}
			}
		}
	}
	if found == nil { // the harness marked it dead-lettered: its record is there
		found = &request.DeadLetterError{Reason: "dead-lettered"}
	}
	return found
}
