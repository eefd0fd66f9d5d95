// Package entities is Partita's entity API: durable actors keyed by a
// subject id, written as typed Go handlers. It has no Kafka types in its API;
// package processor runs entities on Kafka, package partitatest in memory.
//
// An entity is either key-value (a command sets the new state) or
// event-sourced (a command persists events, and an event handler folds each
// event into the state). Command handlers are registered by command name,
// which is the command's ce-type, with a typed payload ([Command],
// [EventCommand]). A handler returns an [Effect] built by its context and
// typed on the entity's state (Update) and event type (Persist): a wrong
// state or event does not compile. The context is a context.Context.
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
//   - Timers ([Effect.StartTimer]) are kept with the subject's state: when
//     one is due its command is handled like any other, in order, once, and
//     never before its time; one replaced or cancelled never fires. An ask
//     ([Effect.Ask]) gets exactly one of its reply, error and timeout
//     commands. Time is [Context.Now]'s, so tests control it.
package entities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
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

// Entity is a key-value entity (or a stateless consumer) over state type
// S. Build one with [KeyValue] or [Consumer], then register handlers with
// [Command] and [Subscribe].
type Entity[S any] struct {
	def        core.Entity
	stateCodec codec.Codec[S]
	initial    S
	// fold folds one event into the state (event-sourced entities only;
	// nil for key-value ones).
	fold func(S, Event) S
}

// EventSourcedEntity is an event-sourced entity over state type S and
// event type E. Build one with [EventSourced], then register handlers with
// [EventCommand] and [EventSubscribe].
type EventSourcedEntity[S any, E Event] struct {
	e *Entity[S]
}

// Name is the entity's name, part of its topic names.
func (e *EventSourcedEntity[S, E]) Name() string { return e.e.Name() }

// Definition returns the runtime form of the entity (see
// [Entity.Definition]).
func (e *EventSourcedEntity[S, E]) Definition() any { return e.e.Definition() }

// Event is what an event-sourced entity persists. EventType is the event's
// ce-type on the events topic, e.g. "ItemAdded".
type Event interface {
	EventType() string
}

// Option configures an entity: DedupWindow, Retention, Retries,
// HandlerTimeout, MaxValue, IgnoreUnknownTypes, PublishesTo, SendsTo,
// Access, CommandAccess, StartFrom.
type Option interface{ apply(*core.Entity) }

type option func(*core.Entity)

func (o option) apply(e *core.Entity) { o(e) }

// DedupWindow sets how many applied command ids each subject keeps in its
// stored state (default 16): the fast path of deduplication. Each kept
// command keeps its reply and events there, so a larger window costs table
// space on every write; commands older than the window are found in the
// entity's id table (see [Retention]).
func DedupWindow(n int) Option { return option(func(e *core.Entity) { e.Window = n }) }

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
func Retention(d time.Duration) Option { return option(func(e *core.Entity) { e.Retention = d }) }

// Retries sets how often a handler that returns Fail is retried, with
// backoff doubling from backoff, before the command is dead-lettered.
func Retries(n int, backoff time.Duration) Option {
	return option(func(e *core.Entity) { e.Retries, e.Backoff = n, backoff })
}

// HandlerTimeout bounds one handler call: a handler that takes longer is
// abandoned (its goroutine left to finish) and its command dead-lettered.
// By default there is none: a handler runs on its partition's goroutine,
// and one that never returns holds its partition (nothing is lost; the
// worker's lag grows). With a timeout each call is handed to another
// goroutine and waited for, which costs CPU on every command (see
// docs/decisions.md#performance): set one for handlers that can block
// (calls to other services).
func HandlerTimeout(d time.Duration) Option { return option(func(e *core.Entity) { e.Timeout = d }) }

// MaxValue bounds the size of a command's (or subscribed event's) record
// value (default 256 KiB); a larger one is dead-lettered unread.
func MaxValue(bytes int) Option { return option(func(e *core.Entity) { e.MaxValue = bytes }) }

// IgnoreUnknownTypes drops records whose ce-type has no handler instead of
// dead-lettering them.
func IgnoreUnknownTypes() Option { return option(func(e *core.Entity) { e.IgnoreUnknown = true }) }

// PublishesTo declares the topics handlers may publish to with [Effect.Publish].
func PublishesTo(topics ...string) Option {
	return option(func(e *core.Entity) { e.PublishTopics = append(e.PublishTopics, topics...) })
}

// SendsTo declares the entities handlers may send commands to with [Effect.Send].
func SendsTo(entities ...string) Option {
	return option(func(e *core.Entity) { e.SendsTo = append(e.SendsTo, entities...) })
}

// Access sets the access rule of all the entity's commands at the
// gateway (package access: Public, Authenticated, Claim, Internal); a
// command's own rule ([CommandAccess]) wins. Without either, the
// application's default applies (the worker's access.default,
// "authenticated" unless configured). Rules guard the gateway only:
// entities and consumers of the application send any command.
func Access(rule access.Rule) Option { return option(func(e *core.Entity) { e.Access = rule }) }

// CommandAccess sets the access rule of one command at the gateway, for
// example access.Internal() for a saga step that only other entities may
// send.
func CommandAccess(command string, rule access.Rule) Option {
	return option(func(e *core.Entity) {
		if e.CommandAccess == nil {
			e.CommandAccess = map[string]access.Rule{}
		}
		e.CommandAccess[command] = rule
	})
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
	return option(func(e *core.Entity) {
		if e.StartLatest == nil {
			e.StartLatest = map[string]bool{}
		}
		e.StartLatest[topic] = s == Latest
	})
}

// Consumer defines a stateless consumer: it has no commands topic and no
// state, and only [Subscribe]s to topics. Its handlers may [Effect.Publish],
// [Effect.Send], Ignore or Fail; Update and Delete are errors.
// Delivery is at-least-once: it has no state to remember applied ids in, but
// what it publishes and sends carries ids derived from the input's, so
// receivers can recognise a redelivery.
func Consumer(name string, opts ...Option) *Entity[struct{}] {
	return newEntity[struct{}](name, core.Stateless, opts)
}

// KeyValue defines a key-value entity: handlers return [Context.Update] with the new
// state. The state is stored as JSON.
func KeyValue[S any](name string, opts ...Option) *Entity[S] {
	return newEntity[S](name, core.KeyValue, opts)
}

// EventSourced defines an event-sourced entity: handlers return
// [EventContext.Persist] with events of type E, and apply folds each event
// into the state. Events are written to the entity's events topic as
// CloudEvents (JSON data) with ids "<subject>:<sequence>".
func EventSourced[S any, E Event](name string, apply func(S, E) S, opts ...Option) *EventSourcedEntity[S, E] {
	e := newEntity[S](name, core.EventSourced, opts)
	// Persist takes only Es: the assertion cannot fail.
	e.fold = func(s S, ev Event) S { return apply(s, ev.(E)) }
	return &EventSourcedEntity[S, E]{e: e}
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
		o.apply(&e.def)
	}
	return e
}

// Name is the entity's name, part of its topic names.
func (e *Entity[S]) Name() string { return e.def.Name }

// Definition returns the runtime form of the entity, for package processor
// and the harness: an opaque value. Registering handlers after calling it
// has no effect on what it returned.
func (e *Entity[S]) Definition() any {
	d := e.def
	return &d
}

// Command registers the handler of command name (the ce-type) on the
// key-value entity (or consumer) e. The command's data is decoded as JSON
// into C; data that does not fit goes to the dead-letter topic, and the
// gateway refuses it before writing it (400, naming the field: see
// [codec.PayloadError]).
func Command[S, C any](e *Entity[S], name string, h func(*Context[S], C) Effect[S]) {
	register(e, name, func(c common[S], cmd C) Effect[S] { return h(&Context[S]{c}, cmd) })
}

// EventCommand registers the handler of command name on the
// event-sourced entity e, as [Command] does for key-value entities.
func EventCommand[S any, E Event, C any](e *EventSourcedEntity[S, E], name string, h func(*EventContext[S, E], C) Effect[S]) {
	register(e.e, name, func(c common[S], cmd C) Effect[S] { return h(&EventContext[S, E]{c}, cmd) })
}

// Subscribe registers the handler of events of type eventType on topic: the
// entity consumes that topic (co-partitioned with its commands topic) and
// routes each event to the entity named by its ce-subject.
func Subscribe[S, C any](e *Entity[S], topic, eventType string, h func(*Context[S], C) Effect[S]) {
	subscribe(e, topic, eventType, func(c common[S], cmd C) Effect[S] { return h(&Context[S]{c}, cmd) })
}

// EventSubscribe is [Subscribe] for an event-sourced entity.
func EventSubscribe[S any, E Event, C any](e *EventSourcedEntity[S, E], topic, eventType string, h func(*EventContext[S, E], C) Effect[S]) {
	subscribe(e.e, topic, eventType, func(c common[S], cmd C) Effect[S] { return h(&EventContext[S, E]{c}, cmd) })
}

func register[S, C any](e *Entity[S], name string, h func(common[S], C) Effect[S]) {
	cc := codec.JSON[C]()
	e.def.Commands[name] = handler(e, cc, h)
	e.def.Validators[name] = func(data []byte) error {
		_, err := cc.Decode(data)
		return err
	}
}

func subscribe[S, C any](e *Entity[S], topic, eventType string, h func(common[S], C) Effect[S]) {
	if e.def.Subscriptions[topic] == nil {
		e.def.Subscriptions[topic] = map[string]core.Handler{}
	}
	e.def.Subscriptions[topic][eventType] = handler(e, codec.JSON[C](), h)
}

// handler adapts a typed handler to the runtime's byte-level one.
func handler[S, C any](e *Entity[S], cc codec.Codec[C], h func(common[S], C) Effect[S]) core.Handler {
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
		ctx := in.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		c := common[S]{Context: ctx, subject: in.Subject, state: state, exists: in.Exists, seq: in.Seq, now: in.Now, timers: in.Timers, meta: Metadata{
			ID: in.Event.ID, Source: in.Event.Source, Type: in.Event.Type, Time: in.Event.Time,
			caller: in.Event.Extensions[codec.ExtCaller], timer: in.Timer,
		}}
		return e.decide(state, h(c, cmd))
	}
}

func poison(err error) core.Decision { return core.Decision{Kind: core.Fail, Err: err, Poison: true} }

// decide encodes an effect into the runtime's decision.
func (e *Entity[S]) decide(state S, eff Effect[S]) core.Decision {
	if eff.err != nil {
		return core.Decision{Kind: core.Fail, Err: eff.err, Poison: errors.Is(eff.err, errPermanent)}
	}
	d := core.Decision{Kind: eff.kind, ErrCode: string(eff.code), ErrMsg: eff.msg}
	var err error
	switch eff.kind {
	case core.Update:
		state = eff.state
		if d.State, err = e.stateCodec.Encode(state); err != nil {
			return poison(fmt.Errorf("encode state: %w", err))
		}
	case core.Persist:
		if e.fold == nil {
			return poison(fmt.Errorf("entity %s is not event-sourced: it cannot persist events", e.def.Name))
		}
		for _, ev := range eff.events {
			state = e.fold(state, ev)
			data, err := json.Marshal(ev)
			if err != nil {
				return poison(fmt.Errorf("encode event: %w", err))
			}
			d.Events = append(d.Events, core.OutEvent{Type: ev.EventType(), Data: data, ContentType: "application/json"})
		}
		if d.State, err = e.stateCodec.Encode(state); err != nil {
			return poison(fmt.Errorf("encode state: %w", err))
		}
	case core.Delete:
		state = e.initial
	}
	if eff.replyWith != nil {
		eff.reply, eff.hasReply = eff.replyWith(state), true
	}
	if eff.hasReply {
		if d.Reply, err = json.Marshal(eff.reply); err != nil {
			return poison(fmt.Errorf("encode reply: %w", err))
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
	for _, a := range eff.asks {
		data, err := json.Marshal(a.Payload)
		if err != nil {
			return poison(fmt.Errorf("encode asked command: %w", err))
		}
		out := core.OutAsk{OutCommand: core.OutCommand{Entity: a.Entity, Subject: a.Subject, Command: a.Command, Data: data, ContentType: "application/json"},
			OnReply: a.OnReply, OnError: a.OnError, OnTimeout: a.OnTimeout, Timeout: a.Timeout}
		if out.OnTimeout == "" {
			out.OnTimeout = out.OnError
		}
		if out.Timeout <= 0 {
			out.Timeout = DefaultAskTimeout
		}
		d.Asks = append(d.Asks, out)
	}
	for _, t := range eff.timers {
		op := core.TimerOp{Name: t.name, Cancel: t.cancel, After: t.after, Command: t.command}
		if !t.cancel {
			if op.Data, err = json.Marshal(t.payload); err != nil {
				return poison(fmt.Errorf("encode timer %s's command: %w", t.name, err))
			}
			op.ContentType = "application/json"
		}
		d.Timers = append(d.Timers, op)
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
	timer  string
}

// Timer is the name of the timer whose firing delivered the command, ""
// when it was not a timer's.
func (m Metadata) Timer() string { return m.timer }

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

// Context is what a key-value entity's (or a consumer's) handler sees: the
// subject, its current state and the command's metadata, and the effects
// it may return, typed on the entity's state (Update, Delete, Reply,
// Error, Ignore, Fail). It is a context.Context, cancelled when the worker
// stops or loses the subject's partition, and at the entity's
// [HandlerTimeout]: pass it to calls that take one. It is valid only
// during the call.
type Context[S any] struct{ common[S] }

// EventContext is what an event-sourced entity's handler sees: as
// [Context], with Persist, typed on the entity's event type, instead of
// Update.
type EventContext[S any, E Event] struct{ common[S] }

// common is what both contexts have.
type common[S any] struct {
	context.Context
	subject string
	state   S
	exists  bool
	seq     uint64
	now     time.Time
	timers  []envelope.Timer
	meta    Metadata
}

// Timer is a pending timer of the subject.
type Timer struct {
	Name    string
	Due     time.Time
	Command string
}

// Timers are the subject's pending timers, soonest first (the one that
// delivered this command, if any, is no longer pending).
func (c common[S]) Timers() []Timer {
	out := make([]Timer, len(c.timers))
	for i, t := range c.timers {
		out[i] = Timer{Name: t.Name, Due: time.Unix(0, t.Due).UTC(), Command: t.Command}
	}
	return out
}

// Subject is the entity instance's id (the command's ce-subject).
func (c common[S]) Subject() string { return c.subject }

// State is the current state; the zero S (or the initial state) when the
// subject has none.
func (c common[S]) State() S { return c.state }

// Exists reports whether the subject has state (it was updated or events
// were persisted, and it was not deleted since).
func (c common[S]) Exists() bool { return c.exists }

// Sequence is the subject's sequence number before this command.
func (c common[S]) Sequence() uint64 { return c.seq }

// Command is the command's metadata.
func (c common[S]) Command() Metadata { return c.meta }

// Now is the time the runtime handed the command to the handler.
func (c common[S]) Now() time.Time { return c.now }

// Reply replies with v (encoded as JSON) and changes nothing.
func (c common[S]) Reply(v any) Effect[S] {
	return Effect[S]{kind: core.Reply, reply: v, hasReply: true}
}

// Error replies with an error and changes nothing. The command still counts
// as applied: a redelivery gets the same error.
func (c common[S]) Error(code Code, format string, args ...any) Effect[S] {
	return Effect[S]{kind: core.Error, code: code, msg: fmt.Sprintf(format, args...)}
}

// Delete deletes the subject's state. Its sequence number and dedup window
// are kept, so redeliveries are still recognised.
func (c common[S]) Delete() Effect[S] { return Effect[S]{kind: core.Delete} }

// Ignore does nothing: no state change and no reply.
func (c common[S]) Ignore() Effect[S] { return Effect[S]{kind: core.Ignore} }

// Fail reports a failure: the handler is called again with backoff, up to
// the entity's [Retries], and then the command goes to the dead-letter
// topic with err as the reason. A failure marked [Permanent] is
// dead-lettered at once.
func (c common[S]) Fail(err error) Effect[S] {
	if err == nil {
		err = errors.New("handler failed (Fail(nil))")
	}
	return Effect[S]{err: err}
}

// Update sets the new state of the key-value entity. Chain [Effect.Reply].
func (c *Context[S]) Update(state S) Effect[S] { return Effect[S]{kind: core.Update, state: state} }

// Persist persists events; each is folded into the state in order and
// written to the events topic. Chain [Effect.Reply] or [Effect.ReplyWith]
// (a reply from the state after the events).
func (c *EventContext[S, E]) Persist(events ...E) Effect[S] {
	evs := make([]Event, len(events))
	for i, ev := range events {
		evs[i] = ev
	}
	return Effect[S]{kind: core.Persist, events: evs}
}
