package core

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/partita-dev/partita/codec"
)

// Outcome is what Process decided for one input.
type Outcome struct {
	// Envelope is the new envelope to store, nil when nothing changes.
	Envelope *Envelope
	// Outputs are the records to write, in order.
	Outputs []Output
	// DeadLetter, when not empty, is why the input goes to the dead-letter
	// topic; Envelope and Outputs are then empty.
	DeadLetter string
	// Duplicate is set when the input was a redelivery of an applied command.
	Duplicate bool
	// Ignored is set when the input was dropped on purpose (unknown type
	// with IgnoreUnknown, or an Ignore effect).
	Ignored bool
}

// Env is what Process needs from its caller.
type Env struct {
	Topics Topics
	Now    func() time.Time
	Sleep  func(time.Duration) // between retries; the harness passes a no-op
	// Runners run the handler calls (nil: a goroutine per call).
	Runners *Runners
	// Epoch names this run of the processor: a new value each time a
	// processor starts (after a crash, a restart, a move to another
	// worker), never 0. See Process.
	Epoch uint64
}

// Process handles one validated CloudEvent (it has a subject) for def,
// arriving on topic (the commands topic or a subscribed one), against the
// subject's stored envelope.
func Process(env Env, def *Entity, topic string, stored *Envelope, ev codec.Event) Outcome {
	// A processor that died may have left the envelope in its local store
	// with writes that never reached the broker: the table record itself,
	// and the outputs (events) of the commands it recorded. The first time
	// a new epoch touches a subject, it writes the envelope again and, ahead
	// of anything new, the recorded outputs but replies, so the events topic
	// holds every event in sequence order (a view drops what is not newer
	// than what it holds, so an event written behind a later one would be
	// lost to it). Replies are not repeated: a caller that missed one sends
	// the command again and gets it as a duplicate.
	var again []Output
	first := stored.Epoch != env.Epoch && len(stored.Applied) > 0
	if first {
		again = recorded(stored.Applied, env.Topics.Replies())
	}
	key := ev.Source() + "\x00" + ev.ID()
	for _, a := range stored.Applied {
		if a.Key != key {
			continue
		}
		if !first {
			return Outcome{Outputs: a.Outputs, Duplicate: true}
		}
		restamped := *stored
		restamped.Epoch = env.Epoch
		return Outcome{Envelope: &restamped, Outputs: append(again, replies(a.Outputs, env.Topics.Replies())...), Duplicate: true}
	}
	handlers := def.Commands
	isCommand := topic == env.Topics.Commands(def.Name)
	if !isCommand {
		handlers = def.Subscriptions[topic]
	}
	h, ok := handlers[ev.Type()]
	if !ok {
		if def.IgnoreUnknown {
			return Outcome{Ignored: true}
		}
		return Outcome{DeadLetter: fmt.Sprintf("unknown type %q for entity %s on %s", ev.Type(), def.Name, topic)}
	}
	in := Input{Subject: ev.Subject(), State: stored.State, Exists: stored.Exists, Seq: stored.Seq, Event: ev, Now: env.Now()}
	d, reason := call(env, def, h, in)
	if reason != "" {
		return Outcome{DeadLetter: reason}
	}
	if d.Kind == Ignore && len(d.Publishes) == 0 && len(d.Sends) == 0 {
		return Outcome{Ignored: true}
	}
	next, outs, err := apply(env, def, stored, ev, d, isCommand)
	if err != nil {
		return Outcome{DeadLetter: err.Error()}
	}
	next.Epoch = env.Epoch
	next.Applied = append(slices.Clone(stored.Applied), Applied{Key: key, Outputs: outs})
	if over := len(next.Applied) - def.Window; over > 0 {
		next.Applied = next.Applied[over:]
	}
	return Outcome{Envelope: next, Outputs: append(again, outs...)}
}

// recorded lists the outputs of the recorded commands, in the order they
// were written, but those to the replies topic.
func recorded(window []Applied, repliesTopic string) []Output {
	var out []Output
	for _, a := range window {
		for _, o := range a.Outputs {
			if o.Topic != repliesTopic {
				out = append(out, o)
			}
		}
	}
	return out
}

// replies keeps the outputs to the replies topic.
func replies(outs []Output, repliesTopic string) []Output {
	var out []Output
	for _, o := range outs {
		if o.Topic == repliesTopic {
			out = append(out, o)
		}
	}
	return out
}

// call runs the handler with panic recovery, a timeout and bounded retries.
// It returns the decision, or the reason to dead-letter the input.
func call(env Env, def *Entity, h Handler, in Input) (Decision, string) {
	wait := def.Backoff
	for attempt := 0; ; attempt++ {
		d, reason := callOnce(env, def, h, in)
		if reason != "" {
			return d, reason
		}
		if d.Kind != Fail {
			return d, ""
		}
		if d.Poison {
			return d, d.Err.Error()
		}
		if attempt >= def.Retries {
			return d, fmt.Sprintf("handler failed %d times, last: %v", attempt+1, d.Err)
		}
		env.Sleep(wait)
		wait *= 2
	}
}

func callOnce(env Env, def *Entity, h Handler, in Input) (Decision, string) {
	type result struct {
		d      Decision
		reason string
	}
	done := make(chan result, 1)
	env.Runners.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{reason: fmt.Sprintf("handler panicked: %v\n%s", p, debug.Stack())}
			}
		}()
		done <- result{d: h(in)}
	})
	if def.Timeout <= 0 {
		r := <-done
		return r.d, r.reason
	}
	timer := time.NewTimer(def.Timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.d, r.reason
	case <-timer.C:
		// The handler goroutine is abandoned; its result is dropped.
		return Decision{}, fmt.Sprintf("handler did not return within %v", def.Timeout)
	}
}

// apply turns a decision into the next envelope and the records to write.
func apply(env Env, def *Entity, stored *Envelope, cmd codec.Event, d Decision, isCommand bool) (*Envelope, []Output, error) {
	next := &Envelope{Seq: stored.Seq, Exists: stored.Exists, State: stored.State}
	source := env.Topics.Source(def.Name)
	subject := cmd.Subject()
	now := env.Now()
	var outs []Output
	emit := func(topic string, e codec.Event) error {
		r, err := codec.EncodeEvent(e)
		if err != nil {
			return fmt.Errorf("encode output for %s: %w", topic, err)
		}
		outs = append(outs, Output{Topic: topic, Record: r})
		return nil
	}
	if def.Kind == Stateless && (d.Kind == Update || d.Kind == Delete || d.Kind == Persist) {
		return nil, nil, fmt.Errorf("%s is a consumer: it has no state to update, delete or persist events to", def.Name)
	}
	switch d.Kind {
	case Update:
		if def.Kind != KeyValue {
			return nil, nil, fmt.Errorf("entity %s is event-sourced: a handler cannot update its state directly", def.Name)
		}
		next.Seq++
		next.Exists, next.State = true, d.State
	case Delete:
		next.Seq++
		next.Exists, next.State = false, nil
	case Persist:
		if def.Kind != EventSourced {
			return nil, nil, fmt.Errorf("entity %s is key-value: a handler cannot persist events", def.Name)
		}
		for _, oe := range d.Events {
			next.Seq++
			e := newEvent(source, subject+":"+strconv.FormatUint(next.Seq, 10), oe.Type, subject, now)
			e.SetExtension(codec.ExtSequence, strconv.FormatUint(next.Seq, 10))
			setData(&e, oe.ContentType, oe.Data)
			if err := emit(env.Topics.Events(def.Name), e); err != nil {
				return nil, nil, err
			}
		}
		next.Exists, next.State = true, d.State
	}
	cmdRef := cmd.Source() + "/" + cmd.ID()
	for i, p := range d.Publishes {
		if !slices.Contains(def.PublishTopics, p.Topic) {
			return nil, nil, fmt.Errorf("entity %s publishes to %s, which it did not declare (entities.PublishesTo)", def.Name, p.Topic)
		}
		subj := p.Subject
		if subj == "" {
			subj = subject
		}
		e := newEvent(source, fmt.Sprintf("%s:%s:publish-%d", subject, cmdRef, i), p.Type, subj, now)
		e.SetExtension(codec.ExtSequence, strconv.FormatUint(next.Seq, 10))
		setData(&e, p.ContentType, p.Data)
		if err := emit(p.Topic, e); err != nil {
			return nil, nil, err
		}
	}
	for i, s := range d.Sends {
		if !slices.Contains(def.SendsTo, s.Entity) {
			return nil, nil, fmt.Errorf("entity %s sends to entity %s, which it did not declare (entities.SendsTo)", def.Name, s.Entity)
		}
		e := newEvent(source+"/"+subject, fmt.Sprintf("%s:send-%d", cmdRef, i), s.Command, s.Subject, now)
		setData(&e, s.ContentType, s.Data)
		if err := emit(env.Topics.Commands(s.Entity), e); err != nil {
			return nil, nil, err
		}
	}
	if isCommand && codec.WantsReply(cmd) {
		pos := Position{Entity: def.Name, Subject: subject, Seq: next.Seq}
		if err := emit(env.Topics.Replies(), reply(source, cmd, d, pos, now)); err != nil {
			return nil, nil, err
		}
		outs[len(outs)-1].Record.Key = []byte(cmd.ID()) // replies are keyed by request id
	}
	return next, outs, nil
}

// Reply types.
const (
	TypeReply = "partita.reply"
	TypeError = "partita.error"
)

func reply(source string, cmd codec.Event, d Decision, pos Position, now time.Time) codec.Event {
	e := newEvent(source, "reply:"+cmd.Source()+"/"+cmd.ID(), TypeReply, cmd.Subject(), now)
	e.SetExtension(codec.ExtRequest, cmd.ID())
	e.SetExtension(codec.ExtSequence, strconv.FormatUint(pos.Seq, 10))
	e.SetExtension(codec.ExtPosition, pos.Token())
	data := d.Reply
	if d.Kind == Error {
		e.SetType(TypeError)
		e.SetExtension(codec.ExtErrorCode, d.ErrCode)
		data, _ = json.Marshal(map[string]string{"code": d.ErrCode, "message": d.ErrMsg})
	}
	if data == nil {
		data = json.RawMessage("{}")
	}
	setData(&e, "application/json", data)
	return e
}

func newEvent(source, id, typ, subject string, now time.Time) codec.Event {
	e := codec.NewEvent()
	e.SetSource(source)
	e.SetID(id)
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetTime(now)
	return e
}

func setData(e *codec.Event, contentType string, data []byte) {
	e.SetDataContentType(contentType)
	e.DataEncoded = data
}
