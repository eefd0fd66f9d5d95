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
	"github.com/partita-dev/partita/views"
)

// Part is an entity (package entities) or a view (package views).
type Part interface{ Name() string }

type entityDef interface {
	Definition() *core.Entity
}

type viewDef interface {
	ViewDefinition() *core.View
}

// view is a view run in memory: its rows (as the view table would hold
// them) and its store.
type view struct {
	def   *core.View
	rows  map[string]*core.RowEnvelope
	store *views.Store
	next  int64 // offset of the next record, as if one partition
}

// Harness runs entities in memory.
type Harness struct {
	topics  core.Topics
	defs    map[string]*core.Entity
	states  map[string]map[string]*core.Envelope // entity -> subject -> envelope
	written map[string][]codec.Event             // topic -> events written, in order
	dead    []DeadLetter
	views   map[string]*view
	now     time.Time
	seq     int
}

// DeadLetter is a record the runtime would send to the dead-letter topic.
type DeadLetter struct {
	Entity string
	Event  codec.Event
	Reason string
}

// New returns a harness running the given entities and views, for
// application "app". A part that is neither is an error.
func New(parts ...Part) (*Harness, error) {
	h := &Harness{
		topics:  core.Topics{App: "app"},
		defs:    map[string]*core.Entity{},
		states:  map[string]map[string]*core.Envelope{},
		written: map[string][]codec.Event{},
		views:   map[string]*view{},
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, p := range parts {
		switch p := p.(type) {
		case entityDef:
			d := p.Definition()
			h.defs[d.Name] = d
			h.states[d.Name] = map[string]*core.Envelope{}
		case viewDef:
			d := p.ViewDefinition()
			store, err := views.OpenMemoryStore(d.Indexes...)
			if err != nil {
				return nil, err
			}
			h.views[d.Name] = &view{def: d, rows: map[string]*core.RowEnvelope{}, store: store}
		default:
			return nil, fmt.Errorf("partitatest: %q (%T) is neither an entity nor a view", p.Name(), p)
		}
	}
	return h, nil
}

// View returns the store of a view, for queries. Views are up to date after
// every Send.
func (h *Harness) View(name string) (*views.Store, error) {
	v := h.views[name]
	if v == nil {
		return nil, fmt.Errorf("partitatest: no view %q", name)
	}
	return v.store, nil
}

// feed applies one source update to every view that reads it.
func (h *Harness) feed(kind core.SourceKind, name, typ, subject string, seq uint64, in core.ViewInput) error {
	for _, v := range h.views {
		for _, src := range v.def.Sources {
			if src.Kind != kind || src.Name() != name {
				continue
			}
			stored := v.rows[subject]
			if stored == nil {
				stored = &core.RowEnvelope{}
			}
			next, reason := core.ProcessView(src, typ, subject, seq, stored, in)
			if reason != "" {
				h.dead = append(h.dead, DeadLetter{Entity: v.def.Name, Event: in.Event, Reason: reason})
				continue
			}
			if next == nil {
				continue
			}
			v.rows[subject] = next
			data, err := json.Marshal(next)
			if err != nil {
				return err
			}
			if err := v.store.Apply([]views.Record{{ID: subject, Envelope: data, Offset: v.next, Time: h.now}}); err != nil {
				return err
			}
			v.next++
		}
	}
	return nil
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
		if def.Kind == core.KeyValue && out.Envelope.Seq != stored.Seq {
			typ := core.StateChanged
			if !out.Envelope.Exists {
				typ = core.StateDeleted
			}
			if err := h.feed(core.FromState, def.Name, typ, ev.Subject(), out.Envelope.Seq, core.ViewInput{Data: out.Envelope.State}); err != nil {
				return Reply{}, err
			}
		}
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
		if err := h.feedEvent(def, o.Topic, e); err != nil {
			return Reply{}, err
		}
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

// feedEvent gives an event written to topic to the views that read it.
func (h *Harness) feedEvent(def *core.Entity, topic string, e codec.Event) error {
	seq, _ := strconv.ParseUint(fmt.Sprint(e.Extensions()[codec.ExtSequence]), 10, 64)
	in := core.ViewInput{Data: e.Data(), Event: e}
	if topic == h.topics.Events(def.Name) {
		return h.feed(core.FromEvents, def.Name, e.Type(), e.Subject(), seq, in)
	}
	return h.feed(core.FromTopic, topic, e.Type(), e.Subject(), seq, in)
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
