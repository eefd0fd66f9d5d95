// Package core is the part of the entity runtime that knows nothing of
// Kafka: given an entity definition, the stored envelope of one subject and
// one incoming CloudEvent, it decides the new envelope and the records to
// write. The Kafka runtime (package processor) and the in-memory harness both
// call Process, so they cannot drift apart.
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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
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

// OutCommand is a command for another entity.
type OutCommand struct {
	Entity      string
	Subject     string
	Command     string
	Data        []byte
	ContentType string
}

// Output is a record to write to a topic.
type Output struct {
	Topic  string       `json:"t"`
	Record codec.Record `json:"r"`
}

// Envelope is what the group table stores for a subject.
//
// It is stored in its binary form only (Encode, DecodeEnvelope): a decoded
// envelope's window is unexported.
type Envelope struct {
	Seq    uint64
	Exists bool
	// Epoch is the Env.Epoch of the processor that wrote the envelope.
	Epoch uint64
	// Spilled is set once the subject's window overflowed: from then on
	// every command it applies is also written to the id table, and a
	// command not found in the window is looked up there.
	Spilled bool
	State   json.RawMessage
	// Applied is the dedup window, oldest first, of an envelope built in
	// memory. DecodeEnvelope keeps a version 4 envelope's window encoded
	// instead (see Window).
	Applied []Applied
	window  *window
}

// Origin is where a record was read on its subject's partition.
type Origin struct {
	Topic  byte // OriginCommands, OriginLoop, or OriginElsewhere (a subscribed topic)
	Offset int64
}

// Origin topics.
const (
	OriginElsewhere byte = iota
	OriginCommands
	OriginLoop
)

// Since is where an epoch started reading a partition, by origin topic
// (Since[OriginCommands], Since[OriginLoop]): every record before it was
// committed by an earlier epoch, so what it wrote was acknowledged. The
// zero Since knows nothing (nothing is before offset 0).
type Since [3]int64

// committed reports whether o was committed before the epoch of s.
func (s Since) committed(o Origin) bool {
	return o.Topic != OriginElsewhere && int(o.Topic) < len(s) && o.Offset < s[o.Topic]
}

// Applied records a command that was applied and what it wrote.
type Applied struct {
	// Key is source + "\x00" + id. A command that wrote nothing is stored
	// as Hash alone (see Envelope.Encode): Key is then empty.
	Key  string
	Hash uint64 // hashKey(Key), when Key is not stored
	Time int64  // when it was applied (Unix nanoseconds): its records' ce-time
	// Digest is the request's Digest (0: not recorded): the same key with
	// another request is refused.
	Digest uint64
	// From is where the command was read (facts entries only): a new
	// epoch writes its facts again only when it was not committed before
	// the epoch started (see Process).
	From  Origin
	Facts []Fact // what it wrote, as render turns it into records
	// Outputs are the records themselves, in envelopes written before
	// facts (versions 1 and 2).
	Outputs []Output
}

// Is reports whether a records the command with key (source + "\x00" + id).
func (a *Applied) Is(key string) bool {
	if a.Key != "" {
		return a.Key == key
	}
	return a.Hash == hashKey(key)
}

// hashKey is the 64-bit FNV-1a hash of a command's key: two keys within a
// subject's window share it with a probability of about 16 in 2^64.
func hashKey(key string) uint64 { return fnv(fnvOffset, key) }

// fnv continues a 64-bit FNV-1a hash h over s.
func fnv[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

const fnvOffset = 14695981039346656037

// Fact is a record a command wrote, as the dedup window keeps it: the
// record follows from the fact, the entity, the command and its time (see
// render), so the window holds the data and not every record's headers.
type Fact struct {
	Kind        FactKind
	Target      string // FactPublish: the topic; FactSend: the entity
	Type        string // the event's or command's type; FactReply: the error code ("" for a reply)
	Subject     string // FactPublish, FactSend: whom the record is about (events and replies are about the command's subject)
	Seq         uint64 // the sequence number it carries (not FactSend)
	ContentType string
	Data        []byte
}

// FactKind is what a fact records.
type FactKind byte

// Fact kinds.
const (
	FactEvent   FactKind = iota + 1 // an event of an event-sourced entity
	FactPublish                     // an event published to another topic
	FactSend                        // a command sent to an entity
	FactReply                       // the reply to the command
)

// Topics names the topics of an application.
type Topics struct{ App string }

// Commands is the commands topic of an entity.
func (t Topics) Commands(entity string) string { return t.App + "." + entity + ".commands" }

// Events is the events topic of an event-sourced entity.
func (t Topics) Events(entity string) string { return t.App + "." + entity + ".events" }

// Group is the goka group of an entity (its table is Group+"-table").
func (t Topics) Group(entity string) string { return t.App + "." + entity }

// Table is the group table topic of an entity.
func (t Topics) Table(entity string) string { return t.Group(entity) + "-table" }

// IDs is the id table topic of an entity (see Process): compacted, keyed
// by IDKey, co-partitioned with its commands.
func (t Topics) IDs(entity string) string { return t.Group(entity) + "-ids" }

// Loop is the loop topic of an entity.
func (t Topics) Loop(entity string) string { return t.Group(entity) + "-loop" }

// Replies is the application's replies topic.
func (t Topics) Replies() string { return t.App + ".replies" }

// DeadLetters is the application's dead-letter topic.
func (t Topics) DeadLetters() string { return t.App + ".dlq" }

// Source is the ce-source of what an entity writes.
func (t Topics) Source(entity string) string { return "partita/" + t.App + "/" + entity }

// Position is where a subject stood after a command: its entity, subject
// and sequence number. Its token travels in replies (ExtPosition) and lets a
// view query wait until the view has applied that sequence.
type Position struct {
	Entity  string `json:"e"`
	Subject string `json:"s"`
	Seq     uint64 `json:"q"`
}

// Token encodes p as an opaque, URL-safe string.
func (p Position) Token() string {
	data, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(data)
}

// ParsePosition decodes a token made by Position.Token.
func ParsePosition(token string) (Position, error) {
	var p Position
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(data, &p)
	}
	if err != nil || p.Entity == "" || p.Subject == "" {
		return Position{}, fmt.Errorf("%w: %q", ErrBadPosition, token)
	}
	return p, nil
}

// ErrBadPosition is wrapped by ParsePosition's errors.
var ErrBadPosition = errors.New("not a position token")

// DefinitionOf returns what a public definition (an entities.Entity,
// entities.EventSourcedEntity or views.View, whose Definition method
// returns its runtime form as an opaque value) defines: an entity or a
// view, the other nil; ok is false for anything else.
func DefinitionOf(p any) (e *Entity, v *View, ok bool) {
	d, isDef := p.(interface{ Definition() any })
	if !isDef {
		return nil, nil, false
	}
	switch def := d.Definition().(type) {
	case *Entity:
		return def, nil, true
	case *View:
		return nil, def, true
	}
	return nil, nil, false
}
