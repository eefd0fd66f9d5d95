// Package topics names what Partita puts on Kafka: an application's topic
// and group names, the headers the runtime adds to records it re-routes or
// dead-letters, and the position tokens replies carry for read-your-writes
// queries. It holds no Kafka client and no decision: the runtime
// (processor), the harness and the topology (internal/core) share it so that
// a name is spelt once.
package topics

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Headers the runtime adds to records it re-routes or dead-letters.
const (
	HeaderOrigin      = "partita_origin"       // re-routed: "<topic>/<partition>/<offset>" it first arrived at
	HeaderOriginTopic = "partita_origin_topic" // re-routed: the topic it first arrived at
	HeaderDLQReason   = "partita_dlq_reason"   // why the record is a dead letter
	HeaderDLQOrigin   = "partita_dlq_origin"   // "<topic>/<partition>/<offset>" it was read from
	HeaderDLQGroup    = "partita_dlq_group"    // the group that gave up on it
	HeaderDLQTime     = "partita_dlq_time"     // RFC 3339
	HeaderDLQCode     = "partita_dlq_code"     // the reason's kind: a stable code of package deadletter
	HeaderDLQCut      = "partita_dlq_cut"      // the value was cut to fit: its length as received
	// HeaderAmbiguous is set by the runtime's consumers on a record that
	// carries a CloudEvents header more than once (its value names them):
	// which one a reader takes is a guess, so the record is a dead letter.
	HeaderAmbiguous = "partita_ambiguous"
)

// Names names the topics of an application: every topic name the runtime,
// the harness and the topology use comes from here.
type Names struct{ App string }

// Commands is the commands topic of an entity.
func (t Names) Commands(entity string) string { return t.App + "." + entity + ".commands" }

// Events is the events topic of an event-sourced entity.
func (t Names) Events(entity string) string { return t.App + "." + entity + ".events" }

// Group is the goka group of an entity (its table is Group+"-table").
func (t Names) Group(entity string) string { return t.App + "." + entity }

// Table is the group table topic of an entity.
func (t Names) Table(entity string) string { return t.Group(entity) + "-table" }

// IDs is the id table topic of an entity (see Process): compacted, keyed
// by IDKey, co-partitioned with its commands.
func (t Names) IDs(entity string) string { return t.Group(entity) + "-ids" }

// Loop is the loop topic of an entity.
func (t Names) Loop(entity string) string { return t.Group(entity) + "-loop" }

// Replies is the application's replies topic.
func (t Names) Replies() string { return t.App + ".replies" }

// DeadLetters is the application's dead-letter topic.
func (t Names) DeadLetters() string { return t.App + ".dlq" }

// Source is the ce-source of what an entity writes.
func (t Names) Source(entity string) string { return "partita/" + t.App + "/" + entity }

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
