package entities

import (
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

// Effect is what a handler returns: what to do with the state, what to
// reply, what else to write. Build one with [Reply], [Error], [Update],
// [Persist], [Delete], [Ignore] or [Fail], then chain [Effect.Reply],
// [Effect.Publish] and [Effect.Send].
type Effect struct {
	kind      core.DecisionKind
	state     any
	events    []Event
	reply     any
	hasReply  bool
	code      Code
	msg       string
	publishes []publish
	sends     []send
	err       error
	poison    bool
}

type publish struct {
	topic, eventType, subject string
	data                      any
}

type send struct {
	entity, subject, command string
	payload                  any
}

// Reply replies with v (encoded as JSON) and changes nothing.
func Reply(v any) Effect { return Effect{kind: core.Reply, reply: v, hasReply: true} }

// Error replies with an error and changes nothing. The command still counts
// as applied: a redelivery gets the same error.
func Error(code Code, format string, args ...any) Effect {
	return Effect{kind: core.Error, code: code, msg: fmt.Sprintf(format, args...)}
}

// Update sets the new state of a key-value entity. Chain [Effect.Reply].
func Update[S any](state S) Effect { return Effect{kind: core.Update, state: state} }

// Persist persists events of an event-sourced entity; each is folded into
// the state in order and written to the events topic. Chain [Effect.Reply].
func Persist(events ...Event) Effect { return Effect{kind: core.Persist, events: events} }

// Delete deletes the subject's state. Its sequence number and dedup window
// are kept, so redeliveries are still recognised.
func Delete() Effect { return Effect{kind: core.Delete} }

// Ignore does nothing: no state change and no reply.
func Ignore() Effect { return Effect{kind: core.Ignore} }

// Fail reports a transient failure: the handler is called again with
// backoff, up to the entity's retries, and then the command goes to the
// dead-letter topic with err as the reason.
func Fail(err error) Effect { return Effect{err: err} }

// Reply sets the reply sent after the effect is applied.
func (e Effect) Reply(v any) Effect {
	e.reply, e.hasReply = v, true
	return e
}

// Publish also writes a CloudEvent of type eventType with data (JSON) to
// topic, which the entity must declare with [PublishesTo]. Its subject is the
// entity's subject; its id is derived from the command, so a redelivered
// command publishes the same id again.
func (e Effect) Publish(topic, eventType string, data any) Effect {
	e.publishes = append(e.publishes, publish{topic: topic, eventType: eventType, data: data})
	return e
}

// Send also sends command (with payload as JSON) to the entity named entity,
// subject subject; the target must be declared with [SendsTo]. Its id is
// derived from this command's, so the target applies it once even when this
// command is redelivered.
func (e Effect) Send(entity, subject, command string, payload any) Effect {
	e.sends = append(e.sends, send{entity: entity, subject: subject, command: command, payload: payload})
	return e
}
