package entities

import (
	"errors"
	"fmt"
	"time"

	"github.com/partita-dev/partita/internal/core"
)

// Code classifies an error reply. The gateway maps codes to HTTP statuses.
type Code string

// Error codes.
const (
	InvalidArgument    Code = "invalid_argument"    // 400
	NotFound           Code = "not_found"           // 404
	Conflict           Code = "conflict"            // 409
	FailedPrecondition Code = "failed_precondition" // 412
	PermissionDenied   Code = "permission_denied"   // 403
)

// Effect is what a handler returns: what to do with the state of type S,
// what to reply, what else to write. The handler's context builds one
// (Update or Persist, Delete, Reply, Error, Ignore, Fail); chain
// [Effect.Reply], [Effect.ReplyWith], [Effect.Publish] and [Effect.Send].
// Effects are typed on the entity's state (and Persist on its event type),
// so a wrong state or event is a compile error.
type Effect[S any] struct {
	kind      core.DecisionKind
	state     S
	events    []Event
	reply     any
	hasReply  bool
	replyWith func(S) any
	code      Code
	msg       string
	publishes []publish
	sends     []send
	asks      []Ask
	timers    []timerOp
	err       error
}

type timerOp struct {
	name, command string
	after         time.Duration
	payload       any
	cancel        bool
}

type publish struct {
	topic, eventType, subject string
	data                      any
}

type send struct {
	entity, subject, command string
	payload                  any
}

// errPermanent marks a failure not worth retrying (see Permanent).
var errPermanent = errors.New("permanent failure")

// Permanent marks err as a failure that retrying cannot cure (a payment
// declined, a record that can never be valid): returned with Fail, the
// command is dead-lettered at once, without the entity's retries.
// errors.Is(Permanent(err), err) holds.
func Permanent(err error) error { return fmt.Errorf("%w: %w", errPermanent, err) }

// IsPermanent reports whether err was marked with [Permanent].
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }

// Reply sets the reply sent after the effect is applied.
func (e Effect[S]) Reply(v any) Effect[S] {
	e.reply, e.hasReply, e.replyWith = v, true, nil
	return e
}

// ReplyWith sets the reply to f of the state after the effect: for an
// event-sourced entity, after its events are folded; for Delete, the
// entity's initial state.
func (e Effect[S]) ReplyWith(f func(state S) any) Effect[S] {
	e.replyWith, e.hasReply = f, false
	return e
}

// Publish also writes a CloudEvent of type eventType with data (JSON) to
// topic, which the entity must declare with [PublishesTo]. Its subject is the
// entity's subject; its id is derived from the command, so a redelivered
// command publishes the same id again.
func (e Effect[S]) Publish(topic, eventType string, data any) Effect[S] {
	e.publishes = append(e.publishes, publish{topic: topic, eventType: eventType, data: data})
	return e
}

// Send also sends command (with payload as JSON) to the entity named entity,
// subject subject; the target must be declared with [SendsTo]. Its id is
// derived from this command's, so the target applies it once even when this
// command is redelivered.
func (e Effect[S]) Send(entity, subject, command string, payload any) Effect[S] {
	e.sends = append(e.sends, send{entity: entity, subject: subject, command: command, payload: payload})
	return e
}

// StartTimer also starts the subject's timer name: once after has passed
// (from [Context.Now]), the runtime delivers command with payload (as JSON)
// to this subject, like any command of the entity: in order with the
// subject's other commands, and applied once even when a worker crashes
// around it. Starting a timer replaces a pending one of the same name.
// Timers are kept with the subject's state on Kafka: they survive restarts
// and move with the subject's partition. A timer that fell due while no
// worker ran fires when one takes the partition, in due order. The command
// sees the timer's name in [Metadata.Timer]; its ce-source is the entity's
// source followed by "/timers".
func (e Effect[S]) StartTimer(name string, after time.Duration, command string, payload any) Effect[S] {
	e.timers = append(e.timers, timerOp{name: name, command: command, after: after, payload: payload})
	return e
}

// CancelTimer also cancels the subject's timer name, if one is pending.
func (e Effect[S]) CancelTimer(name string) Effect[S] {
	e.timers = append(e.timers, timerOp{name: name, cancel: true})
	return e
}

// Ask is a command for another entity (or another subject of this one)
// whose answer comes back to the asking subject as one of its own
// commands. The target must be declared with [SendsTo]. Exactly one of
// OnReply, OnError and OnTimeout is delivered, once.
type Ask struct {
	// Entity, Subject and Command address the command; Payload is its data
	// (JSON).
	Entity, Subject, Command string
	Payload                  any
	// OnReply receives the target's reply (its JSON, as the reply's type).
	OnReply string
	// OnError receives an [AskError]: the target's error reply (its code
	// and message) or the command's dead letter (Code "dead_letter").
	OnError string
	// OnTimeout receives an [AskError] with Code "timeout" when no answer
	// came within Timeout (default: 30 seconds). Default: OnError.
	OnTimeout string
	Timeout   time.Duration
}

// DefaultAskTimeout is an [Ask]'s timeout when it sets none.
const DefaultAskTimeout = 30 * time.Second

// AskError is the payload of an ask's OnError and OnTimeout commands.
type AskError struct {
	// Code is the target's error code, or AskTimeout, or AskDeadLetter.
	Code    Code   `json:"code"`
	Message string `json:"message,omitempty"`
	// Kind is the dead letter's kind (a code of package deadletter) when
	// Code is AskDeadLetter.
	Kind string `json:"kind,omitempty"`
	// Entity, Subject and Command are the ask's: which of the subject's
	// asks this answers.
	Entity  string `json:"entity"`
	Subject string `json:"subject"`
	Command string `json:"command"`
}

// Codes of an [AskError] that are no error reply of the target.
const (
	AskTimeout    Code = "timeout"
	AskDeadLetter Code = "dead_letter"
)

// Ask also sends the ask a. Its command's id is derived from this
// command's, so a redelivery asks once; the answer's correlation is the
// runtime's (see [Ask]).
func (e Effect[S]) Ask(a Ask) Effect[S] {
	e.asks = append(e.asks, a)
	return e
}
