// Package views is Partita's view API: view definitions and the read side
// of their rows. A view is a queryable read model: it consumes a key-value
// entity's state changes, an event-sourced entity's events, or a topic of
// CloudEvents, turns each update into a row, and keeps the rows with
// secondary indexes for queries. It has no Kafka types in its API; package
// processor runs views on Kafka.
//
// Contract, as the runtime keeps it:
//   - Rows are keyed by the update's subject. Updates for one row are
//     applied one at a time, in order.
//   - An update whose sequence number is not newer than the last one the
//     row applied from the same source and subject is dropped: a view never
//     goes backwards when an old message is redelivered behind a newer one.
//     Topic sources without a partitaseq extension are applied as they come.
//   - Views are eventually consistent. Each serving worker keeps a replica
//     of the view's table, read through a [Reader]; a query given a
//     position token from a command's reply waits (bounded, [Reader.WaitFor])
//     until the replica has applied that position: read-your-writes.
//   - Handlers must be deterministic and quick; an update whose handler
//     panics or fails goes to the dead-letter topic.
package views

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
)

// View is a view definition with rows of type R (stored as JSON).
type View[R any] struct {
	def     core.View
	sources map[string]*core.ViewSource
}

// Option configures a view.
type Option interface{ apply(*core.View) }

type option func(*core.View)

func (o option) apply(v *core.View) { o(v) }

// Index declares a secondary index on a top-level field of the row's JSON
// (its JSON name). Only indexed fields can be queried or ordered by.
func Index(field string) Option {
	return option(func(v *core.View) { v.Indexes = append(v.Indexes, field) })
}

// Access sets the view's access rule at the gateway (queries, rows and
// streams); without one, the application's default applies (the worker's
// access.default, "authenticated" unless configured). access.Internal()
// keeps the view off the gateway.
func Access(rule access.Rule) Option { return option(func(v *core.View) { v.Access = rule }) }

// Defaults of a view's options.
const (
	DefaultRetention = 24 * time.Hour
	DefaultIDWindow  = 16
)

// Retention sets how long a view remembers the ids (ce-source and ce-id) of
// the updates it applied from a topic ([FromTopic]) that carry no sequence
// number (default 24 hours): such an update delivered again within it is
// skipped. Updates with a sequence number (entities' state changes and
// events, and what entities publish) are skipped when not newer, at any
// age. Each row keeps the last 16 ids; older ones go to the view's id
// table, the compacted topic <app>.<view>-ids. Retention(0): no ids kept.
func Retention(d time.Duration) Option { return option(func(v *core.View) { v.Retention = d }) }

// New defines a view named name.
func New[R any](name string, opts ...Option) *View[R] {
	v := &View[R]{def: core.View{Name: name, Window: DefaultIDWindow, Retention: DefaultRetention}, sources: map[string]*core.ViewSource{}}
	for _, o := range opts {
		o.apply(&v.def)
	}
	return v
}

// Name is the view's name, part of its topic names.
func (v *View[R]) Name() string { return v.def.Name }

// Definition returns the runtime form of the view, for package processor
// and the harness: an opaque value.
func (v *View[R]) Definition() any {
	d := v.def
	return &d
}

// Update is what a view handler sees: the subject (the row's id), the
// current row (the zero R when Exists is false), the update's value and its
// sequence number. Its methods build the handler's [Effect].
type Update[R, T any] struct {
	Subject string
	Row     R
	Exists  bool
	Value   T
	Seq     uint64
	ctx     context.Context
}

// Context is cancelled when the worker stops or loses the row's partition.
func (u Update[R, T]) Context() context.Context {
	if u.ctx == nil {
		return context.Background()
	}
	return u.ctx
}

// Set makes row the row of the update's subject.
func (u Update[R, T]) Set(row R) Effect[R] { return Effect[R]{kind: core.SetRow, row: row} }

// Remove deletes the row of the update's subject.
func (u Update[R, T]) Remove() Effect[R] { return Effect[R]{kind: core.RemoveRow} }

// Keep leaves the row as it is.
func (u Update[R, T]) Keep() Effect[R] { return Effect[R]{kind: core.Keep} }

// Effect is a view handler's result, typed on the view's row: build it
// with the update's Set, Remove or Keep.
type Effect[R any] struct {
	kind core.ViewDecisionKind
	row  R
}

func (v *View[R]) source(kind core.SourceKind, entity, topic string) *core.ViewSource {
	key := fmt.Sprint(kind, "/", entity, "/", topic)
	s := v.sources[key]
	if s == nil {
		s = &core.ViewSource{Kind: kind, Entity: entity, Topic: topic, Handlers: map[string]core.ViewHandler{}}
		v.sources[key] = s
		v.def.Sources = append(v.def.Sources, s)
	}
	return s
}

// FromState handles the state changes of the key-value entity named entity:
// Value is its new state.
func FromState[R, S any](v *View[R], entity string, h func(Update[R, S]) Effect[R]) {
	v.source(core.FromState, entity, "").Handlers[core.StateChanged] = handler(codec.JSON[S](), h)
}

// OnDelete handles the deletion of a key-value entity's state.
func OnDelete[R any](v *View[R], entity string, h func(Update[R, struct{}]) Effect[R]) {
	v.source(core.FromState, entity, "").Handlers[core.StateDeleted] = func(in core.ViewInput) core.ViewDecision {
		return decide(in, h, struct{}{})
	}
}

// FromEvent handles events of type eventType of the event-sourced entity
// named entity: Value is the event's data.
func FromEvent[R, E any](v *View[R], entity, eventType string, h func(Update[R, E]) Effect[R]) {
	v.source(core.FromEvents, entity, "").Handlers[eventType] = handler(codec.JSON[E](), h)
}

// FromTopic handles CloudEvents of type eventType on topic; each must carry
// a ce-subject, the row's id. The topic must be co-partitioned with the
// view's table (same partition count); records not on their subject's
// partition are re-routed first.
func FromTopic[R, E any](v *View[R], topic, eventType string, h func(Update[R, E]) Effect[R]) {
	v.source(core.FromTopic, "", topic).Handlers[eventType] = handler(codec.JSON[E](), h)
}

func handler[R, T any](c codec.Codec[T], h func(Update[R, T]) Effect[R]) core.ViewHandler {
	return func(in core.ViewInput) core.ViewDecision {
		val, err := c.Decode(in.Data)
		if err != nil {
			return core.ViewDecision{Err: fmt.Errorf("view update of %s: %w", in.Subject, err)}
		}
		return decide(in, h, val)
	}
}

func decide[R, T any](in core.ViewInput, h func(Update[R, T]) Effect[R], val T) core.ViewDecision {
	u := Update[R, T]{Subject: in.Subject, Value: val, Seq: in.Seq, Exists: in.Row != nil, ctx: in.Ctx}
	if in.Row != nil {
		if err := json.Unmarshal(in.Row, &u.Row); err != nil {
			return core.ViewDecision{Err: fmt.Errorf("stored row of %s: %w", in.Subject, err)}
		}
	}
	eff := h(u)
	if eff.kind != core.SetRow {
		return core.ViewDecision{Kind: eff.kind}
	}
	data, err := json.Marshal(eff.row)
	if err != nil {
		return core.ViewDecision{Err: fmt.Errorf("encode row: %w", err)}
	}
	return core.ViewDecision{Kind: core.SetRow, Row: data}
}
