package core

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/internal/envelope"
)

// Hooks are what the runtime hands the handlers of an entity that asks
// for them (Entity.Hooks, Entity.Detached) through their context, beyond
// their decision: package workflows' instances and activity runner use
// them.
type Hooks struct {
	// Send writes a command for another entity at once, before the
	// handler returns (a detached handler's only; nil otherwise). The
	// entity must declare the target (SendsTo).
	Send func(OutCommand) error
	// Step reports a workflow step's attempt to the runtime's observer
	// (nil: none).
	Step func(StepReport)
}

// StepReport is a workflow step's attempt that ended.
type StepReport struct {
	Workflow, Step string
	// Outcome: StepDone, StepRetried (it failed, another attempt follows)
	// or StepFailed (it failed, and was the last).
	Outcome string
	// Took is the attempt's time, from when it was issued to its outcome.
	Took time.Duration
}

// Outcomes of a StepReport.
const (
	StepDone    = "done"
	StepRetried = "retried"
	StepFailed  = "failed"
)

type hooksKey struct{}

// HooksOf returns the hooks ctx carries (zero when none).
func HooksOf(ctx context.Context) Hooks {
	h, _ := ctx.Value(hooksKey{}).(Hooks)
	return h
}

func withHooks(ctx context.Context, h Hooks) context.Context {
	return context.WithValue(ctx, hooksKey{}, h)
}

// Job is the run of a detached handler (Entity.Detached): Process records
// the command as applied and returns its run, which the runtime starts
// off the partition goroutine (the harness at once).
type Job struct {
	env  Env
	def  *Entity
	h    Handler
	in   Input
	ev   codec.Attributes
	stop context.Context // the delivery's: the partition lost or the worker stopping
	// dead renders the command's dead letter (set by HandleEntity; nil:
	// none is written).
	dead func(code, reason string) envelope.Output
}

// Run calls the handler, with its retries and timeout, and writes through
// write the commands it sends while it runs (Hooks.Send) and, when it
// returns, the answer to its asker: the reply, an error reply, or a dead
// letter (written too) when the handler panicked, timed out, kept failing
// or decided more than a reply. A run whose partition was lost, or whose
// worker stops, writes no answer: like a run lost in a crash, the asker's
// timeout covers it.
func (j *Job) Run(write func(envelope.Output)) {
	in := j.in
	var sent atomic.Int64 // Send may be called from the handler's goroutines
	in.Ctx = withHooks(in.Ctx, Hooks{Step: j.env.Step, Send: func(c OutCommand) error {
		o, err := j.sendRecord(c, int(sent.Add(1)-1))
		if err != nil {
			return err
		}
		write(o)
		return nil
	}})
	d, failed := call(j.env, j.def, j.h, in)
	if failed == nil && (d.Kind == Update || d.Kind == Persist || d.Kind == Delete ||
		len(d.Publishes)+len(d.Sends)+len(d.Asks)+len(d.Timers) > 0) {
		failed = deadletter.New(deadletter.ErrInternal, fmt.Sprintf("entity %s runs its handlers detached: they may only reply or fail", j.def.Name))
	}
	if j.stop != nil && j.stop.Err() != nil {
		return
	}
	var fail *AskError
	var reply []byte
	switch {
	case failed != nil:
		if j.dead != nil {
			write(j.dead(deadletter.Code(failed.Kind), failed.Reason))
		}
		fail = &AskError{Code: CodeDeadLetter, Message: clip(failed.Reason, 1000), Kind: deadletter.Code(failed.Kind), Entity: j.def.Name}
	case d.Kind == Error:
		fail = &AskError{Code: d.ErrCode, Message: d.ErrMsg, Entity: j.def.Name}
	default:
		reply = d.Reply
	}
	if !asked(j.ev) {
		return
	}
	ref := j.ev.Source + "/" + j.ev.ID
	o, err := answerRecord(j.env.Topics, j.def.Name, ref, answerFact(j.ev, reply, fail), j.env.Now())
	if err == nil && fail == nil && j.tooLarge(o) {
		// Written, it would fail the write and be lost: the asker learns
		// why instead.
		o, err = answerRecord(j.env.Topics, j.def.Name, ref, answerFact(j.ev, nil, &AskError{Code: CodeDeadLetter, Kind: deadletter.Code(deadletter.ErrTooLarge),
			Message: fmt.Sprintf("the reply of %s would be %d bytes, more than a record may have", j.def.Name, RecordSize(o.Record.Key, o.Record.Value, o.Record.Headers)), Entity: j.def.Name}), j.env.Now())
	}
	if err == nil {
		write(o)
	}
}

// tooLarge reports whether o does not fit its topic.
func (j *Job) tooLarge(o envelope.Output) bool {
	limit := j.env.recordLimit(o.Topic)
	return limit > 0 && RecordSize(o.Record.Key, o.Record.Value, o.Record.Headers) > limit
}

// sendRecord is the record of the n-th command c a detached run sends.
func (j *Job) sendRecord(c OutCommand, n int) (envelope.Output, error) {
	if !slices.Contains(j.def.SendsTo, c.Entity) {
		return envelope.Output{}, fmt.Errorf("entity %s sends to entity %s, which it did not declare (entities.SendsTo)", j.def.Name, c.Entity)
	}
	if err := checkSubject(c.Subject); err != nil {
		return envelope.Output{}, fmt.Errorf("entity %s sends to %s: %w", j.def.Name, c.Entity, err)
	}
	e := newEvent(j.env.Topics.Source(j.def.Name)+"/"+j.in.Subject, fmt.Sprintf("%s/%s:%d:sent-%d", j.ev.Source, j.ev.ID, j.in.Now.UnixNano(), n), c.Command, c.Subject, j.env.Now())
	setData(&e, c.ContentType, c.Data)
	r, err := codec.EncodeEvent(e)
	if err != nil {
		return envelope.Output{}, err
	}
	return envelope.Output{Topic: j.env.Topics.Commands(c.Entity), Record: r}, nil
}
