// Package core is Partita's decision logic, shared by the Kafka runtime
// (package processor) and the in-memory harness so that they cannot drift
// apart: the type-erased definitions of entities and views, the topology
// of an application (NewTopology: which topics each group reads and
// writes, checked once for both), and the decisions (HandleEntity,
// HandleView, Process): given a definition, a subject's stored envelope
// (package envelope) and one delivered record, what to store and which
// records to write. It holds no Kafka client; topic names, headers and
// position tokens are package topics'.
//
// Contract of Process:
//   - A command whose (source, id) is in the envelope's applied window is not
//     applied again: the outputs recorded for it are returned unchanged.
//   - Every state change advances the subject's sequence number by one per
//     change (key-value) or per event (event-sourced); events and replies
//     carry it in the partitaseq extension; event ids are "<subject>:<seq>".
//   - A handler that panics, times out, or keeps failing after the bounded
//     retries, a payload that does not fit, and an unknown type (unless
//     ignored) produce a dead letter with a reason and no state change.
package core

import (
	"context"
	"encoding/json"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
)

// Kind is the kind of entity.
type Kind int

// The entity kinds.
const (
	KeyValue Kind = iota
	EventSourced
	Stateless // a consumer of subscribed topics: no state, no commands topic
)

// Entity is the type-erased definition the runtime executes.
type Entity struct {
	Name string
	Kind Kind
	// Commands are the handlers of the commands topic, by ce-type.
	Commands map[string]Handler
	// Subscriptions are handlers of other topics' events, by topic then ce-type.
	Subscriptions map[string]map[string]Handler
	// StartLatest names the subscribed topics a new group starts reading at
	// their end instead of their beginning.
	StartLatest map[string]bool
	// IgnoreUnknown drops, instead of dead-lettering, records of unknown type.
	IgnoreUnknown bool
	// Window is how many applied command ids each subject keeps in its
	// envelope (the fast path of deduplication).
	Window int
	// Retention is how long an applied command id is remembered: a
	// redelivery within it is not applied again, however many commands
	// came in between. Ids that leave the window are kept in the entity's
	// id table (see Process). 0: the window alone, with no expiry.
	Retention time.Duration
	// Retries is how often a failing handler is retried before its record
	// is dead-lettered; Backoff is the first wait, doubled each time.
	Retries int
	Backoff time.Duration
	// Timeout bounds one handler call.
	Timeout time.Duration
	// MaxValue bounds the size of a record's value; larger ones are dead letters.
	MaxValue int
	// PublishTopics and SendsTo declare where effects may write.
	PublishTopics []string
	SendsTo       []string
	// Access is the entity's access rule at the gateway; CommandAccess
	// overrides it per command. Undeclared rules take the application's
	// default.
	Access        access.Rule
	CommandAccess map[string]access.Rule
	// Validators decode each command's payload strictly, as its handler
	// would, so that the gateway refuses a client's mistake before
	// anything is written (nil error: the payload fits).
	Validators map[string]func(data []byte) error
	// Detached, above 0, runs the entity's command handlers off the
	// partition goroutine, at most Detached at once in a worker (package
	// workflows' activity runner): a command is recorded as applied at
	// once, and its run is handed to the runtime (Outcome.Job), which
	// writes the answer to its asker when the handler returns. A crash
	// loses a run in flight: the asker's timeout covers it. Its handlers
	// may only reply or fail, and get Hooks with Send.
	Detached int
	// Hooks hands the entity's handlers the runtime's Hooks (HooksOf).
	Hooks bool
}

// Handler runs one typed handler over an input. It decodes the payload
// itself; a payload that does not fit returns a Decision with Err set and
// Poison true.
type Handler func(in Input) Decision

// Input is what a handler sees.
type Input struct {
	// Ctx is cancelled when the processor stops or loses the partition,
	// and at the entity's timeout.
	Ctx     context.Context
	Subject string
	State   json.RawMessage // nil when the subject has no state
	Exists  bool
	Seq     uint64
	Event   codec.Attributes
	Now     time.Time
	// Timers are the subject's pending timers (the one this input fires
	// or answers, if any, removed); Timer names the timer this input
	// fires ("" for none).
	Timers []envelope.Timer
	Timer  string
}

// DecisionKind says what a handler decided.
type DecisionKind int

// Decisions.
const (
	Ignore  DecisionKind = iota // nothing: no state change, no reply
	Reply                       // reply, no state change
	Error                       // an error reply with a code
	Update                      // new state (key-value), then reply
	Persist                     // events (event-sourced), then reply
	Delete                      // delete the state, then reply
	Fail                        // a failure: retried, then dead-lettered
)

// Decision is a handler's result, already encoded.
type Decision struct {
	Kind      DecisionKind
	State     json.RawMessage // Update, Persist: the new state
	Events    []OutEvent      // Persist
	Reply     json.RawMessage // the reply payload (JSON), if any
	ErrCode   string          // Error
	ErrMsg    string          // Error
	Publishes []OutEvent      // events for other topics
	Sends     []OutCommand    // commands for other entities
	Asks      []OutAsk        // commands for other entities, answered
	Timers    []TimerOp       // timers of the subject to start or cancel, in order
	Err       error           // Fail
	Poison    bool            // Fail: do not retry (the input can never succeed)
}

// OutEvent is an event to write.
type OutEvent struct {
	Topic       string // Publishes only
	Type        string
	Subject     string // Publishes: defaults to the entity's subject
	Data        []byte
	ContentType string
}

// OutAsk is a command for an entity whose answer comes back to the
// asking subject as one of its own commands: OnReply with the reply,
// OnError with an AskError for an error reply or a dead letter, or
// OnTimeout with an AskError if neither came within Timeout.
type OutAsk struct {
	OutCommand
	OnReply, OnError, OnTimeout string
	Timeout                     time.Duration
}

// TimerOp starts (Cancel false) or cancels the subject's timer Name: when
// After (from the input's Now) has passed, Command with Data is delivered
// to the subject. Starting a timer replaces the one of its name.
type TimerOp struct {
	Name        string
	Cancel      bool
	After       time.Duration
	Command     string
	ContentType string
	Data        []byte
}

// OutCommand is a command for another entity.
type OutCommand struct {
	Entity      string
	Subject     string
	Command     string
	Data        []byte
	ContentType string
}

// DefinitionsOf returns what a public definition defines: an
// entities.Entity, entities.EventSourcedEntity or views.View (whose
// Definition method returns its runtime form as an opaque value) one
// entity or view; a composite part (a workflow, whose Definition returns a
// []any) the entities and views it is made of. ok is false for anything
// else.
func DefinitionsOf(p any) (es []*Entity, vs []*View, ok bool) {
	d, isDef := p.(interface{ Definition() any })
	if !isDef {
		return nil, nil, false
	}
	defs := []any{d.Definition()}
	if list, isList := defs[0].([]any); isList {
		defs = list
	}
	for _, def := range defs {
		switch def := def.(type) {
		case *Entity:
			es = append(es, def)
		case *View:
			vs = append(vs, def)
		default:
			return nil, nil, false
		}
	}
	return es, vs, len(defs) > 0
}
