// Package request is a command sent to an entity and the reply it gets, as
// one interface, [Requester], with two implementations: *processor.Client,
// which writes the command to Kafka and waits for its reply or dead letter
// (what the worker's HTTP gateway uses), and *partitatest.Harness, which
// answers in memory. Code written against a Requester runs on either, and
// gets the same errors from both.
//
// The package is pure Go, with no Kafka types: the harness and user tests
// import it without goka or sarama.
//
// Contract of a Requester:
//   - One Request is one command: Kafka key and ce-subject = Subject,
//     ce-type = Command, ce-id = ID, ce-source = Source, on the entity's
//     commands topic, asking for a reply. The command is written whatever
//     ctx says; ctx bounds the wait for its reply.
//   - (Source, ID) is the idempotency key: the entity applies a command
//     once within its dedup window and answers a retry with the recorded
//     reply; the same key with another request is a dead letter with code
//     "idempotency_conflict".
//   - The answer is exactly one of: a [Reply] (Code != "" for an error the
//     entity replied with), or an error that errors.Is one of the Err*
//     values below, or is a [*DeadLetterError].
package request

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/deadletter"
)

// DefaultSource is the ce-source of a Request that names none: the one the
// worker's gateway sends with on every worker, so that a request retried
// with the same ID against any worker is the same command.
const DefaultSource = "partita-gateway"

// Request is a command for an entity's subject.
type Request struct {
	Entity  string // the entity (its commands topic)
	Subject string // the subject: ce-subject and Kafka key
	Command string // the command: ce-type
	// Data is the command's JSON payload, already validated by the caller;
	// empty is sent as {}.
	Data []byte
	// ID is the ce-id and, with Source, the idempotency key; "" gets a new
	// id. Retrying with the same ID (and Source) is safe.
	ID string
	// Source is the ce-source; "" is [DefaultSource].
	Source string
	// Caller, when set, travels as the command's partitacaller extension
	// (codec.ExtCaller), for handlers' Metadata.Caller. No access rule is
	// checked: whoever makes the Request vouches for it (the gateway checks
	// rules before it sends).
	Caller *access.Caller
}

// Reply is an entity's reply to a command.
type Reply struct {
	// Data is the reply's JSON payload; for an error reply, its JSON body
	// ({"code", "message"}), whose fields are Code and Message.
	Data json.RawMessage
	// Code is the entity's error code (ctx.Error) and Message its message;
	// Code is "" exactly when the reply is no error.
	Code, Message string
	// Position is the reply's position token (codec.ExtPosition): a view
	// query or a state read given it waits until it has seen this write.
	Position string
}

// Decode decodes the reply's payload into v.
func (r Reply) Decode(v any) error { return json.Unmarshal(r.Data, v) }

// Requester sends a command and returns its reply. Implementations are
// *processor.Client and *partitatest.Harness; see the package's contract.
type Requester interface {
	Request(ctx context.Context, req Request) (Reply, error)
}

// Errors of a Request, for errors.Is.
var (
	// ErrUnknownEntity: no entity of that name takes commands.
	ErrUnknownEntity = errors.New("no such entity")
	// ErrInvalid: the request does not make a valid command (its subject or
	// id cannot be a CloudEvent's). Nothing was written.
	ErrInvalid = errors.New("invalid request")
	// ErrRecordTooLarge: the command's record is over the producer's limit
	// (checked before writing), or the broker refused it as too large.
	ErrRecordTooLarge = errors.New("the command's record is too large")
	// ErrNotFollowing: the client does not follow the replies yet (a reply
	// could be missed); nothing was written. Retry once it is ready.
	ErrNotFollowing = errors.New("not yet following the replies")
	// ErrInFlight: a request with the same Source and ID is waiting on this
	// client; nothing was written.
	ErrInFlight = errors.New("a request with this id is in flight")
	// ErrUnavailable: the command could not be written; the error wraps
	// the cause. Retry with the same ID.
	ErrUnavailable = errors.New("the command could not be written")
	// ErrNoReply: ctx ended before the reply came. The command may still
	// be applied: retry with the same ID to get its reply.
	ErrNoReply = errors.New("no reply")
	// ErrDeadLetter: the command was dead-lettered; the error is a
	// *DeadLetterError.
	ErrDeadLetter = errors.New("dead-lettered")
)

// DeadLetterError is a command that went to the dead-letter topic instead
// of being answered. errors.Is(err, ErrDeadLetter) holds, and so does
// errors.Is(err, kind) for its kind in package deadletter
// (deadletter.ErrIdempotencyConflict for Code "idempotency_conflict").
type DeadLetterError struct {
	Code   string // the kind's code (partita_dlq_code), "" when the dead letter has none
	Reason string // why (partita_dlq_reason)
}

func (e *DeadLetterError) Error() string {
	if e.Code == "" {
		return "dead-lettered: " + e.Reason
	}
	return fmt.Sprintf("dead-lettered (%s): %s", e.Code, e.Reason)
}

// Unwrap returns ErrDeadLetter and the dead letter's kind, when it has a
// known one.
func (e *DeadLetterError) Unwrap() []error {
	if kind := deadletter.FromCode(e.Code, e.Reason).Kind; kind != nil {
		return []error{ErrDeadLetter, kind}
	}
	return []error{ErrDeadLetter}
}
