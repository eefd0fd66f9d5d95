// Package entities is Partita's entity API: durable actors keyed by a
// subject id, written as typed Go handlers. It has no Kafka types in its API;
// package processor runs entities on Kafka, package partitatest in memory.
//
// An entity is either key-value (a command sets the new state) or
// event-sourced (a command persists events, and an event handler folds each
// event into the state). Command handlers are registered by command name,
// which is the command's ce-type, with a typed payload.
//
// Contract, as the runtime keeps it:
//   - Commands for one subject are handled one at a time, in order; a
//     handler sees the state left by the previous command.
//   - A command redelivered (same ce-source and ce-id, within the
//     [Retention], 24 hours by default) is not handled again: its recorded
//     reply is returned. The same id with another request (type, content
//     type or data) is a dead letter with the code idempotency_conflict.
//   - Events, published events and sent commands carry the subject's
//     sequence number (extension partitaseq), which grows with every
//     command that changes state or writes any of them; after a worker
//     crash some are written again, with the same ids and sequence
//     numbers: a consumer drops what is not newer than the last sequence
//     number it applied for that source and subject.
//   - A handler must be deterministic in what it returns for a given state
//     and command, and must not do I/O that it cannot repeat: on a crash
//     before commit the command is handled again.
//   - Handlers may run on any goroutine, never two at once for one subject.
package entities

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
)

// Defaults of an entity's options.
const (
	DefaultDedupWindow    = 16
	DefaultRetention      = 24 * time.Hour
	DefaultRetries        = 3
	DefaultBackoff        = 100 * time.Millisecond
	DefaultHandlerTimeout = 0 // none: handlers run on the partition's goroutine
	DefaultMaxValue       = 256 << 10
)

// Entity is an entity definition over state type S. Build one with
// [KeyValue] or [EventSourced], then register handlers with [Command].
type Entity[S any] struct {
	def        core.Entity
	stateCodec codec.Codec[S]
	initial    S
	// apply folds one event into the state (event-sourced only).
	apply func(S, any) (S, error)
}

// Event is what an event-sourced entity persists. EventType is the event's
// ce-type on the events topic, e.g. "ItemAdded".
type Event interface {
	EventType() string
}

// Option configures an entity.
type Option func(*core.Entity)

// DedupWindow sets how many applied command ids each subject keeps in its
// stored state (default 16): the fast path of deduplication. Each kept
// command keeps its reply and events there, so a larger window costs table
// space on every write; commands older than the window are found in the
// entity's id table (see [Retention]).
func DedupWindow(n int) Option { return func(e *core.Entity) { e.Window = n } }

// Retention sets how long an applied command's id (ce-source and ce-id) is
// remembered (default 24 hours): a command delivered again within it is not
// applied again, however many other commands its subject handled in
// between, and gets its recorded reply; after it, the same id is a new
// command. Ids beyond a subject's [DedupWindow] are kept in the entity's id
// table, the compacted topic <app>.<entity>-ids (co-partitioned, restored
// with the entity's table), only once the subject has more commands than
// the window: a subject that never does costs nothing more.
//
// Retention(0) keeps the window alone: a redelivery behind more than
// DedupWindow newer commands of its subject is applied again.
func Retention(d time.Duration) Option { return func(e *core.Entity) { e.Retention = d } }

// Retries sets how often a handler that returns [Fail] is retried, with
// backoff doubling from backoff, before the command is dead-lettered.
func Retries(n int, backoff time.Duration) Option {
	return func(e *core.Entity) { e.Retries, e.Backoff = n, backoff }
}

// HandlerTimeout bounds one handler call: a handler that takes longer is
// abandoned (its goroutine left to finish) and its command dead-lettered.
// By default there is none: a handler runs on its partition's goroutine,
// and one that never returns holds its partition (nothing is lost; the
// worker's lag grows). With a timeout each call is handed to another
// goroutine and waited for, which costs about a sixth of the entity path's
// CPU: set one for handlers that can block (calls to other services).
func HandlerTimeout(d time.Duration) Option { return func(e *core.Entity) { e.Timeout = d } }

// MaxValue bounds the size of a command's (or subscribed event's) record
// value (default 256 KiB); a larger one is dead-lettered unread.
func MaxValue(bytes int) Option { return func(e *core.Entity) { e.MaxValue = bytes } }

// IgnoreUnknownTypes drops records whose ce-type has no handler instead of
// dead-lettering them.
func IgnoreUnknownTypes() Option { return func(e *core.Entity) { e.IgnoreUnknown = true } }

// PublishesTo declares the topics handlers may publish to with [Effect.Publish].
func PublishesTo(topics ...string) Option {
	return func(e *core.Entity) { e.PublishTopics = append(e.PublishTopics, topics...) }
}

// SendsTo declares the entities handlers may send commands to with [Effect.Send].
func SendsTo(entities ...string) Option {
	return func(e *core.Entity) { e.SendsTo = append(e.SendsTo, entities...) }
}

// Access sets the access rule of all the entity's commands at the
// gateway (package access: Public, Authenticated, Claim, Internal); a
// command's own rule ([CommandAccess]) wins. Without either, the
// application's default applies (the worker's access.default,
// "authenticated" unless configured). Rules guard the gateway only:
// entities and consumers of the application send any command.
func Access(rule access.Rule) Option { return func(e *core.Entity) { e.Access = rule } }

// CommandAccess sets the access rule of one command at the gateway, for
// example access.Internal() for a saga step that only other entities may
// send.
func CommandAccess(command string, rule access.Rule) Option {
	return func(e *core.Entity) {
		if e.CommandAccess == nil {
			e.CommandAccess = map[string]access.Rule{}
		}
		e.CommandAccess[command] = rule
	}
}

// Start is where a new subscription starts reading a topic.
type Start int

// Subscription starts.
const (
	Earliest Start = iota // from the oldest record still in the topic (default)
	Latest                // from records written after the subscription first starts
)

// StartFrom sets where a new subscription to topic starts. It matters only
// the first time the entity's group runs; afterwards it resumes where it
// stopped.
func StartFrom(topic string, s Start) Option {
	return func(e *core.Entity) {
		if e.StartLatest == nil {
			e.StartLatest = map[string]bool{}
		}
		e.StartLatest[topic] = s == Latest
	}
}

// Consumer defines a stateless consumer: it has no commands topic and no
// state, and only [Subscribe]s to topics. Its handlers may [Effect.Publish],
// [Effect.Send], [Ignore] or [Fail]; Update, Persist and Delete are errors.
// Delivery is at-least-once: it has no state to remember applied ids in, but
// what it publishes and sends carries ids derived from the input's, so
// receivers can recognise a redelivery.
func Consumer(name string, opts ...Option) *Entity[struct{}] {
	return newEntity[struct{}](name, core.Stateless, opts)
}

// KeyValue defines a key-value entity: handlers return [Update] with the new
// state. The state is stored as JSON.
func KeyValue[S any](name string, opts ...Option) *Entity[S] {
	return newEntity[S](name, core.KeyValue, opts)
}

// EventSourced defines an event-sourced entity: handlers return [Persist]
// with events of type E, and apply folds each event into the state. Events
// are written to the entity's events topic as CloudEvents (JSON data) with
// ids "<subject>:<sequence>".
func EventSourced[S any, E Event](name string, apply func(S, E) S, opts ...Option) *Entity[S] {
	e := newEntity[S](name, core.EventSourced, opts)
	e.apply = func(s S, ev any) (S, error) {
		typed, ok := ev.(E)
		if !ok {
			return s, fmt.Errorf("entity %s persists %T, which is not its event type %T", name, ev, *new(E))
		}
		return apply(s, typed), nil
	}
	return e
}

func newEntity[S any](name string, kind core.Kind, opts []Option) *Entity[S] {
	e := &Entity[S]{
		def: core.Entity{
			Name: name, Kind: kind,
			Commands:      map[string]core.Handler{},
			Validators:    map[string]func([]byte) error{},
			Subscriptions: map[string]map[string]core.Handler{},
			Window:        DefaultDedupWindow, Retention: DefaultRetention, Retries: DefaultRetries, Backoff: DefaultBackoff, Timeout: DefaultHandlerTimeout,
			MaxValue: DefaultMaxValue,
		},
		stateCodec: codec.JSON[S](),
	}
	for _, o := range opts {
		o(&e.def)
	}
	return e
}

// Name is the entity's name, part of its topic names.
func (e *Entity[S]) Name() string { return e.def.Name }

// Definition returns the runtime form of the entity, for package processor
// and the harness. Registering handlers after calling it has no effect on
// what it returned.
func (e *Entity[S]) Definition() *core.Entity {
	d := e.def
	return &d
}

// Command registers the handler of command name (the ce-type) on e. The
// command's data is decoded as JSON into C; data that does not fit goes to
// the dead-letter topic, and the gateway refuses it before writing it (400,
// naming the field: see [codec.PayloadError]).
func Command[S, C any](e *Entity[S], name string, h func(*Context[S], C) Effect) {
	cc := codec.JSON[C]()
	e.def.Commands[name] = handler(e, cc, h)
	e.def.Validators[name] = func(data []byte) error {
		_, err := cc.Decode(data)
		return err
	}
}

// Subscribe registers the handler of events of type eventType on topic: the
// entity consumes that topic (co-partitioned with its commands topic) and
// routes each event to the entity named by its ce-subject.
func Subscribe[S, C any](e *Entity[S], topic, eventType string, h func(*Context[S], C) Effect) {
	if e.def.Subscriptions[topic] == nil {
		e.def.Subscriptions[topic] = map[string]core.Handler{}
	}
	e.def.Subscriptions[topic][eventType] = handler(e, codec.JSON[C](), h)
}

// handler adapts a typed handler to the runtime's byte-level one.
func handler[S, C any](e *Entity[S], cc codec.Codec[C], h func(*Context[S], C) Effect) core.Handler {
	return func(in core.Input) core.Decision {
		if !cc.Accepts(in.Event.DataContentType) {
			return poison(fmt.Errorf("%w: content type %q, want %s", codec.ErrPayload, in.Event.DataContentType, cc.ContentType()))
		}
		cmd, err := cc.Decode(in.Event.Data)
		if err != nil {
			return poison(fmt.Errorf("command %s: %w", in.Event.Type, err))
		}
		state := e.initial
		if in.State != nil {
			if state, err = e.stateCodec.Decode(in.State); err != nil {
				return poison(fmt.Errorf("stored state of %s: %w", in.Subject, err))
			}
		}
		ctx := &Context[S]{subject: in.Subject, state: state, exists: in.Exists, seq: in.Seq, now: in.Now, meta: Metadata{
			ID: in.Event.ID, Source: in.Event.Source, Type: in.Event.Type, Time: in.Event.Time,
			caller: in.Event.Extensions[codec.ExtCaller],
		}}
		return e.decide(state, h(ctx, cmd))
	}
}

func poison(err error) core.Decision { return core.Decision{Kind: core.Fail, Err: err, Poison: true} }

// decide encodes an effect into the runtime's decision.
func (e *Entity[S]) decide(state S, eff Effect) core.Decision {
	if eff.err != nil {
		return core.Decision{Kind: core.Fail, Err: eff.err, Poison: eff.poison}
	}
	d := core.Decision{Kind: eff.kind, ErrCode: string(eff.code), ErrMsg: eff.msg}
	var err error
	if eff.hasReply {
		if d.Reply, err = json.Marshal(eff.reply); err != nil {
			return poison(fmt.Errorf("encode reply: %w", err))
		}
	}
	switch eff.kind {
	case core.Update:
		s, ok := eff.state.(S)
		if !ok {
			return poison(fmt.Errorf("Update got %T, want the entity's state type %T", eff.state, state))
		}
		if d.State, err = e.stateCodec.Encode(s); err != nil {
			return poison(fmt.Errorf("encode state: %w", err))
		}
	case core.Persist:
		if e.apply == nil {
			return poison(fmt.Errorf("entity %s is key-value: use Update, not Persist", e.def.Name))
		}
		for _, ev := range eff.events {
			if state, err = e.apply(state, ev); err != nil {
				return poison(err)
			}
			data, err := json.Marshal(ev)
			if err != nil {
				return poison(fmt.Errorf("encode event: %w", err))
			}
			d.Events = append(d.Events, core.OutEvent{Type: ev.EventType(), Data: data, ContentType: "application/json"})
		}
		if d.State, err = e.stateCodec.Encode(state); err != nil {
			return poison(fmt.Errorf("encode state: %w", err))
		}
	}
	for _, p := range eff.publishes {
		data, err := json.Marshal(p.data)
		if err != nil {
			return poison(fmt.Errorf("encode published event: %w", err))
		}
		d.Publishes = append(d.Publishes, core.OutEvent{Topic: p.topic, Type: p.eventType, Subject: p.subject, Data: data, ContentType: "application/json"})
	}
	for _, s := range eff.sends {
		data, err := json.Marshal(s.payload)
		if err != nil {
			return poison(fmt.Errorf("encode sent command: %w", err))
		}
		d.Sends = append(d.Sends, core.OutCommand{Entity: s.entity, Subject: s.subject, Command: s.command, Data: data, ContentType: "application/json"})
	}
	return d
}

// Metadata describes the command being handled.
type Metadata struct {
	ID     string    // ce-id
	Source string    // ce-source
	Type   string    // ce-type: the command name
	Time   time.Time // ce-time, zero when absent
	caller string    // the partitacaller extension, decoded on demand
}

// Caller is who sent the command through the gateway (its principal and
// the claims the worker forwards), as the gateway set it; nil for a
// command that did not come through the gateway (sent by an entity, or
// written straight to Kafka without the extension). With authentication
// off (development mode) its Method is access.MethodNone.
func (m Metadata) Caller() *access.Caller {
	if m.caller == "" {
		return nil
	}
	var c access.Caller
	if json.Unmarshal([]byte(m.caller), &c) != nil {
		return nil
	}
	return &c
}

// Context is what a handler sees: the subject, its current state and the
// command's metadata. It is valid only during the call.
type Context[S any] struct {
	subject string
	state   S
	exists  bool
	seq     uint64
	now     time.Time
	meta    Metadata
}

// Subject is the entity instance's id (the command's ce-subject).
func (c *Context[S]) Subject() string { return c.subject }

// State is the current state; the zero S (or the initial state) when the
// subject has none.
func (c *Context[S]) State() S { return c.state }

// Exists reports whether the subject has state (it was updated or events
// were persisted, and it was not deleted since).
func (c *Context[S]) Exists() bool { return c.exists }

// Sequence is the subject's sequence number before this command.
func (c *Context[S]) Sequence() uint64 { return c.seq }

// Command is the command's metadata.
func (c *Context[S]) Command() Metadata { return c.meta }

// Now is the time the runtime handed the command to the handler.
func (c *Context[S]) Now() time.Time { return c.now }
