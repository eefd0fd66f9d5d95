package entities

import (
	"errors"
	"fmt"

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
	err       error
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
