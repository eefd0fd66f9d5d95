// Package deadletter names why Partita dead-letters a record, as errors
// callers test with errors.Is and errors.As: in the runtime (the
// partita_dlq_code header of every dead letter), in the harness
// (partitatest.DeadLetter.Err) and in user tests.
//
// Contract:
//   - Every dead letter has exactly one kind, one of the Err* sentinels
//     below; its code (the header's value) is the kind's [Code].
//   - An [*Error] is a dead letter's kind and reason; errors.Is(err, kind)
//     holds for its kind, and its message is the reason.
//   - Codes are stable: a consumer of the dead-letter topic may switch on
//     them. New kinds may be added.
//
// The package is pure Go, with no Kafka types.
package deadletter

import "errors"

// kind is a dead-letter kind: a sentinel error with a code.
type kind struct{ code, text string }

func (k *kind) Error() string { return k.text }

// The kinds of dead letters.
var (
	// ErrNotCloudEvent: the record is not a CloudEvent (binary or
	// structured mode).
	ErrNotCloudEvent error = &kind{"not_cloudevent", "not a CloudEvent"}
	// ErrInvalidEvent: a CloudEvent missing a required attribute (id,
	// source, type, subject), with an invalid one, an attribute header
	// twice, or a subject Partita cannot key.
	ErrInvalidEvent error = &kind{"invalid_event", "invalid CloudEvent"}
	// ErrUnknownType: no handler for the ce-type (and the entity does not
	// ignore unknown types).
	ErrUnknownType error = &kind{"unknown_type", "unknown type"}
	// ErrBadPayload: the data does not decode into the handler's type, or
	// has a content type it does not read.
	ErrBadPayload error = &kind{"bad_payload", "payload does not fit"}
	// ErrTooLarge: the record, or a record its handling would write (state,
	// reply, event, id entry), is larger than the entity or the topic
	// accepts.
	ErrTooLarge error = &kind{"too_large", "too large"}
	// ErrPanic: the handler panicked.
	ErrPanic error = &kind{"panic", "handler panicked"}
	// ErrTimeout: the handler did not return within its timeout.
	ErrTimeout error = &kind{"timeout", "handler timed out"}
	// ErrRetriesExhausted: the handler kept failing (Fail) past its
	// retries.
	ErrRetriesExhausted error = &kind{"retries_exhausted", "handler kept failing"}
	// ErrPermanent: the handler failed with a failure it marked permanent
	// (entities.Permanent): not retried.
	ErrPermanent error = &kind{"permanent", "permanent failure"}
	// ErrCancelled: the worker stopped or lost the partition while the
	// handler's retries waited.
	ErrCancelled error = &kind{"cancelled", "retries cancelled"}
	// ErrUndeclaredTarget: the handler published to a topic or sent to an
	// entity it did not declare (entities.PublishesTo, entities.SendsTo),
	// or returned an effect its kind of entity cannot have.
	ErrUndeclaredTarget error = &kind{"undeclared_target", "undeclared target"}
	// ErrIdempotencyConflict: the command's id was applied before with
	// another request.
	ErrIdempotencyConflict error = &kind{"idempotency_conflict", "idempotency conflict"}
	// ErrInternal: the stored state or the id table could not be read or
	// written for this record.
	ErrInternal error = &kind{"internal", "internal error"}
)

var kinds = []error{ErrNotCloudEvent, ErrInvalidEvent, ErrUnknownType, ErrBadPayload, ErrTooLarge, ErrPanic, ErrTimeout,
	ErrRetriesExhausted, ErrPermanent, ErrCancelled, ErrUndeclaredTarget, ErrIdempotencyConflict, ErrInternal}

// Error is a dead letter: its kind and the reason, as written in its
// partita_dlq_reason header.
type Error struct {
	Kind   error
	Reason string
}

// New returns the dead letter of kind (one of the Err* values) with reason.
func New(kind error, reason string) *Error { return &Error{Kind: kind, Reason: reason} }

// Error returns the reason.
func (e *Error) Error() string { return e.Reason }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

// Code is the code of err's kind (the partita_dlq_code header), "" when err
// is no dead letter.
func Code(err error) string {
	var k *kind
	if errors.As(err, &k) {
		return k.code
	}
	return ""
}

// FromCode returns the dead letter of the kind whose code is code, with
// reason: what a consumer of the dead-letter topic reads from a record's
// headers. An unknown code (a newer runtime's) gives a Kind of nil.
func FromCode(code, reason string) *Error {
	for _, k := range kinds {
		if Code(k) == code {
			return New(k, reason)
		}
	}
	return &Error{Reason: reason}
}
