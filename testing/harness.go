// Package partitatest (directory testing/) runs entity definitions in memory,
// with no broker, through the same decision code as the Kafka runtime
// (dedup, sequence numbers, effects, dead letters). It is named partitatest
// so that it does not clash with the standard library's testing package.
//
// Contract: a Harness is deterministic (its clock is fixed unless advanced)
// and not safe for concurrent use. Commands are handled in the order sent;
// commands that handlers send to other entities are handled right after the
// command that sent them, in order.
//
// Fault injection (redelivery behind newer commands, lagging views,
// misrouting, crash-restart, seeded schedules) arrives with issue 5; today
// redelivery is expressed by sending the same command id again.
package partitatest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
)

// Definer is an entity definition (see package entities).
type Definer interface {
	Name() string
	Definition() *core.Entity
}

// Harness runs entities in memory.
type Harness struct {
	topics  core.Topics
	defs    map[string]*core.Entity
	states  map[string]map[string]*core.Envelope // entity -> subject -> envelope
	written map[string][]codec.Event             // topic -> events written, in order
	dead    []DeadLetter
	now     time.Time
	seq     int
}

// DeadLetter is a record the runtime would send to the dead-letter topic.
type DeadLetter struct {
	Entity string
	Event  codec.Event
	Reason string
}

// New returns a harness running the given entities, for application "app".
func New(entities ...Definer) *Harness {
	h := &Harness{
		topics:  core.Topics{App: "app"},
		defs:    map[string]*core.Entity{},
		states:  map[string]map[string]*core.Envelope{},
		written: map[string][]codec.Event{},
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, e := range entities {
		d := e.Definition()
		h.defs[d.Name] = d
		h.states[d.Name] = map[string]*core.Envelope{}
	}
	return h
}

// Advance moves the harness clock forward.
func (h *Harness) Advance(d time.Duration) { h.now = h.now.Add(d) }

// SendOption changes a command sent with [Harness.Send].
type SendOption func(*codec.Event)

// ID sets the command's ce-id (default: a new id per send). Sending the
// same id twice is a redelivery.
func ID(id string) SendOption { return func(e *codec.Event) { e.SetID(id) } }

// Reply is what a command got back.
type Reply struct {
	// Code is the error code of an error reply, "" on success.
	Code    string
	Message string
	// Data is the reply's JSON payload (success) or error body.
	Data json.RawMessage
	// Seq is the subject's sequence number after the command.
	Seq uint64
	// DeadLetter is set, and the rest empty, when the command was dead-lettered.
	DeadLetter string
	// Duplicate is set when the command was a redelivery, answered from the record.
	Duplicate bool
}

// Decode decodes the reply's payload into v.
func (r Reply) Decode(v any) error { return json.Unmarshal(r.Data, v) }

// Send sends command (the ce-type) with payload (encoded as JSON) to the
// entity's subject and returns its reply.
func (h *Harness) Send(entity, subject, command string, payload any, opts ...SendOption) (Reply, error) {
	def, ok := h.defs[entity]
	if !ok {
		return Reply{}, fmt.Errorf("partitatest: no entity %q", entity)
	}
	h.seq++
	ev := codec.NewEvent()
	ev.SetID("cmd-" + strconv.Itoa(h.seq))
	ev.SetSource("partitatest")
	ev.SetType(command)
	ev.SetSubject(subject)
	ev.SetTime(h.now)
	if err := ev.SetData("application/json", payload); err != nil {
		return Reply{}, fmt.Errorf("partitatest: encode payload: %w", err)
	}
	for _, o := range opts {
		o(&ev)
	}
	return h.deliver(def, h.topics.Commands(entity), ev)
}

func (h *Harness) deliver(def *core.Entity, topic string, ev codec.Event) (Reply, error) {
	if err := codec.RequireSubject(ev); err != nil {
		h.dead = append(h.dead, DeadLetter{Entity: def.Name, Event: ev, Reason: err.Error()})
		return Reply{DeadLetter: err.Error()}, nil
	}
	stored := h.states[def.Name][ev.Subject()]
	if stored == nil {
		stored = &core.Envelope{}
	}
	env := core.Env{Topics: h.topics, Now: func() time.Time { return h.now }, Sleep: func(time.Duration) {}}
	out := core.Process(env, def, topic, stored, ev)
	if out.DeadLetter != "" {
		h.dead = append(h.dead, DeadLetter{Entity: def.Name, Event: ev, Reason: out.DeadLetter})
		return Reply{DeadLetter: out.DeadLetter}, nil
	}
	if out.Envelope != nil {
		h.states[def.Name][ev.Subject()] = out.Envelope
	}
	reply := Reply{Duplicate: out.Duplicate}
	type send struct {
		def *core.Entity
		ev  codec.Event
	}
	var sends []send
	for _, o := range out.Outputs {
		e, err := codec.DecodeEvent(o.Record)
		if err != nil {
			return Reply{}, fmt.Errorf("partitatest: runtime wrote an unreadable record: %w", err)
		}
		h.written[o.Topic] = append(h.written[o.Topic], e)
		switch {
		case o.Topic == h.topics.Replies():
			reply.Data = e.Data()
			reply.Seq, _ = strconv.ParseUint(fmt.Sprint(e.Extensions()[codec.ExtSequence]), 10, 64)
			if e.Type() == core.TypeError {
				var body struct{ Code, Message string }
				_ = json.Unmarshal(e.Data(), &body)
				reply.Code, reply.Message = body.Code, body.Message
			}
		default:
			for _, d := range h.defs {
				if o.Topic == h.topics.Commands(d.Name) {
					sends = append(sends, send{d, e})
				}
			}
		}
	}
	for _, s := range sends {
		if _, err := h.deliver(s.def, h.topics.Commands(s.def.Name), s.ev); err != nil {
			return Reply{}, err
		}
	}
	return reply, nil
}

// State decodes the subject's current state into v and reports whether the
// subject has state.
func (h *Harness) State(entity, subject string, v any) (bool, error) {
	env := h.states[entity][subject]
	if env == nil || !env.Exists {
		return false, nil
	}
	return true, json.Unmarshal(env.State, v)
}

// Events returns the events the entity wrote for subject, in order.
func (h *Harness) Events(entity, subject string) []codec.Event {
	var out []codec.Event
	for _, e := range h.written[h.topics.Events(entity)] {
		if e.Subject() == subject {
			out = append(out, e)
		}
	}
	return out
}

// Published returns every event written to topic, in order.
func (h *Harness) Published(topic string) []codec.Event { return h.written[topic] }

// DeadLetters returns the records dead-lettered so far.
func (h *Harness) DeadLetters() []DeadLetter { return h.dead }
