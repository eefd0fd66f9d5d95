package core

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
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
func Process(env Env, def *Entity, topic string, stored *Envelope, ev codec.Attributes) Outcome {
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
	w := stored.encodedWindow()
	first := stored.Epoch != env.Epoch && len(w.starts) > 0
	subject := ev.Subject
	if first {
		outs, err := render(env, def.Name, subject, stored.Window()...)
		if err != nil {
			return Outcome{DeadLetter: fmt.Sprintf("subject %q: recorded outputs: %v", subject, err)}
		}
		again = without(outs, env.Topics.Replies())
	}
	key := ev.Source + "\x00" + ev.ID
	if i := w.find(key, hashKey(key)); i >= 0 {
		outs, err := render(env, def.Name, subject, w.decode(i))
		if err != nil {
			return Outcome{DeadLetter: fmt.Sprintf("subject %q: recorded outputs: %v", subject, err)}
		}
		if !first {
			return Outcome{Outputs: outs, Duplicate: true}
		}
		restamped := *stored
		restamped.Epoch = env.Epoch
		return Outcome{Envelope: &restamped, Outputs: append(again, only(outs, env.Topics.Replies())...), Duplicate: true}
	}
	handlers := def.Commands
	isCommand := topic == env.Topics.Commands(def.Name)
	if !isCommand {
		handlers = def.Subscriptions[topic]
	}
	h, ok := handlers[ev.Type]
	if !ok {
		if def.IgnoreUnknown {
			return Outcome{Ignored: true}
		}
		return Outcome{DeadLetter: fmt.Sprintf("unknown type %q for entity %s on %s", ev.Type, def.Name, topic)}
	}
	now := env.Now() // the handler's clock and its records' ce-time
	in := Input{Subject: subject, State: stored.State, Exists: stored.Exists, Seq: stored.Seq, Event: ev, Now: now}
	d, reason := call(env, def, h, in)
	if reason != "" {
		return Outcome{DeadLetter: reason}
	}
	if d.Kind == Ignore && len(d.Publishes) == 0 && len(d.Sends) == 0 {
		return Outcome{Ignored: true}
	}
	next, facts, err := apply(def, stored, ev, d, isCommand)
	if err != nil {
		return Outcome{DeadLetter: err.Error()}
	}
	applied := Applied{Key: key, Time: now.UnixNano(), Facts: facts}
	outs, err := render(env, def.Name, subject, applied)
	if err != nil {
		return Outcome{DeadLetter: err.Error()}
	}
	next.Epoch = env.Epoch
	next.window = w.then(applied, def.Window)
	return Outcome{Envelope: next, Outputs: append(again, outs...)}
}

// without drops the outputs to topic; only keeps them.
func without(outs []Output, topic string) []Output {
	return slices.DeleteFunc(outs, func(o Output) bool { return o.Topic == topic })
}

func only(outs []Output, topic string) []Output {
	return slices.DeleteFunc(outs, func(o Output) bool { return o.Topic != topic })
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

// callOnce runs the handler once, recovering a panic. Without a timeout it
// runs on the caller's goroutine; with one, on a runner, so that a call past
// the timeout can be abandoned (a goroutine hand-off per call: see
// docs/decisions.md#performance).
func callOnce(env Env, def *Entity, h Handler, in Input) (d Decision, reason string) {
	if def.Timeout <= 0 {
		defer func() {
			if p := recover(); p != nil {
				d, reason = Decision{}, panicked(p)
			}
		}()
		return h(in), ""
	}
	type result struct {
		d      Decision
		reason string
	}
	done := make(chan result, 1)
	env.Runners.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{reason: panicked(p)}
			}
		}()
		done <- result{d: h(in)}
	})
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

func panicked(p any) string { return fmt.Sprintf("handler panicked: %v\n%s", p, debug.Stack()) }

// apply turns a decision into the next envelope and the facts of the
// records to write (see render).
func apply(def *Entity, stored *Envelope, cmd codec.Attributes, d Decision, isCommand bool) (*Envelope, []Fact, error) {
	next := &Envelope{Seq: stored.Seq, Exists: stored.Exists, State: stored.State}
	subject := cmd.Subject
	var facts []Fact
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
			facts = append(facts, Fact{Kind: FactEvent, Type: oe.Type, Seq: next.Seq, ContentType: oe.ContentType, Data: oe.Data})
		}
		next.Exists, next.State = true, d.State
	}
	for _, p := range d.Publishes {
		if !slices.Contains(def.PublishTopics, p.Topic) {
			return nil, nil, fmt.Errorf("entity %s publishes to %s, which it did not declare (entities.PublishesTo)", def.Name, p.Topic)
		}
		subj := p.Subject
		if subj == "" {
			subj = subject
		}
		facts = append(facts, Fact{Kind: FactPublish, Target: p.Topic, Type: p.Type, Subject: subj, Seq: next.Seq, ContentType: p.ContentType, Data: p.Data})
	}
	for _, s := range d.Sends {
		if !slices.Contains(def.SendsTo, s.Entity) {
			return nil, nil, fmt.Errorf("entity %s sends to entity %s, which it did not declare (entities.SendsTo)", def.Name, s.Entity)
		}
		facts = append(facts, Fact{Kind: FactSend, Target: s.Entity, Type: s.Command, Subject: s.Subject, ContentType: s.ContentType, Data: s.Data})
	}
	if isCommand && cmd.WantsReply() {
		f := Fact{Kind: FactReply, Seq: next.Seq, ContentType: "application/json", Data: d.Reply}
		if d.Kind == Error {
			f.Type = d.ErrCode
			f.Data, _ = json.Marshal(map[string]string{"code": d.ErrCode, "message": d.ErrMsg})
		}
		if f.Data == nil {
			f.Data = json.RawMessage("{}")
		}
		facts = append(facts, f)
	}
	return next, facts, nil
}

// Reply types.
const (
	TypeReply = "partita.reply"
	TypeError = "partita.error"
)

// render writes the records of recorded commands of entity about subject:
// the same records, ids and times each time, so a repeated one is a
// duplicate its receiver recognizes. Entries written before facts
// (envelope versions 1 and 2) hold the records themselves.
func render(env Env, entity, subject string, window ...Applied) ([]Output, error) {
	var outs []Output
	var source string
	for _, a := range window {
		if len(a.Facts) == 0 {
			outs = append(outs, a.Outputs...)
			continue
		}
		if source == "" {
			source = env.Topics.Source(entity)
		}
		cmdSource, cmdID, _ := strings.Cut(a.Key, "\x00")
		cmdRef := cmdSource + "/" + cmdID
		now := time.Unix(0, a.Time).UTC()
		var publishes, sends int
		for _, f := range a.Facts {
			var e codec.Event
			var topic string
			seq := strconv.FormatUint(f.Seq, 10)
			switch f.Kind {
			case FactEvent:
				topic = env.Topics.Events(entity)
				e = newEvent(source, subject+":"+seq, f.Type, subject, now)
				e.SetExtension(codec.ExtSequence, seq)
			case FactPublish:
				topic = f.Target
				e = newEvent(source, fmt.Sprintf("%s:%s:publish-%d", subject, cmdRef, publishes), f.Type, f.Subject, now)
				e.SetExtension(codec.ExtSequence, seq)
				publishes++
			case FactSend:
				topic = env.Topics.Commands(f.Target)
				e = newEvent(source+"/"+subject, fmt.Sprintf("%s:send-%d", cmdRef, sends), f.Type, f.Subject, now)
				sends++
			case FactReply:
				topic = env.Topics.Replies()
				e = newEvent(source, "reply:"+cmdRef, TypeReply, subject, now)
				e.SetExtension(codec.ExtRequest, cmdID)
				e.SetExtension(codec.ExtSequence, seq)
				e.SetExtension(codec.ExtPosition, Position{Entity: entity, Subject: subject, Seq: f.Seq}.Token())
				if f.Type != "" {
					e.SetType(TypeError)
					e.SetExtension(codec.ExtErrorCode, f.Type)
				}
			default:
				return nil, fmt.Errorf("%w: a recorded output of unknown kind %d", errEnvelope, f.Kind)
			}
			setData(&e, f.ContentType, f.Data)
			r, err := codec.EncodeEvent(e)
			if err != nil {
				return nil, fmt.Errorf("encode output for %s: %w", topic, err)
			}
			if f.Kind == FactReply {
				r.Key = []byte(cmdID) // replies are keyed by request id
			}
			outs = append(outs, Output{Topic: topic, Record: r})
		}
	}
	return outs, nil
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
