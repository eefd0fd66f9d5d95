package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
)

// Delivery is one record handed to a group (an entity, a consumer or a
// view), with what the group's table holds for the record's key.
type Delivery struct {
	Topic     string
	Partition int32
	Offset    int64
	Record    codec.Record // Key as received
	// Loop is the group's loop topic ("" for a stateless consumer);
	// Partitions the partition count of the group's co-partitioned topics.
	Loop       string
	Partitions int32
	// Stored is the group table's value under the record's key (nil: none).
	Stored []byte
	// IDs reads the entity's id table (nil: none; see Process).
	IDs IDTable
	// Since is where the group's current epoch started reading this
	// partition of its commands and loop topics (see Process).
	Since envelope.Since
	// Ctx is the handler's context: cancelled when the processor stops or
	// loses the partition (nil: never cancelled).
	Ctx context.Context
}

// Origin is "<topic>/<partition>/<offset>".
func (d Delivery) Origin() string {
	return d.Topic + "/" + strconv.Itoa(int(d.Partition)) + "/" + strconv.FormatInt(d.Offset, 10)
}

// Actions is what a group does with a delivery. The runtime carries them
// out in this order: Loopback; or DeadLetter, then Store (a dead-lettered
// fire's timer consumed) and Outputs (the answer to an asked command); or
// Store, then Outputs.
type Actions struct {
	// Loopback, when set, re-routes the record: write it to the loop topic
	// under Loopback.Key (the subject), and do nothing else.
	Loopback *codec.Record
	// DeadLetter, when set, is the record for the dead-letter topic.
	DeadLetter *codec.Record
	Reason     string // why, with DeadLetter
	// Store is the group table's new value for the key; nil: unchanged.
	Store []byte
	// Remember are entries for the entity's id table, written with Store
	// (to the local table at once, and to its topic).
	Remember []Remembered
	// Outputs are the records to write.
	Outputs []envelope.Output
	// Job is a detached handler's run, started once Store is written
	// (see Job.Run).
	Job *Job
	// Counters.
	Duplicate bool
}

// routed reports whether a record of subject read under key on partition is
// where its subject lives; loop-topic records always are.
func routed(d Delivery, subject string) bool {
	return string(d.Record.Key) == subject && d.Partition == murmur2.Partition([]byte(subject), d.Partitions)
}

// reroute returns the Loopback action for a record not on its subject's partition.
func reroute(d Delivery, subject string) Actions {
	h := make(map[string][]byte, len(d.Record.Headers)+2)
	for k, v := range d.Record.Headers {
		h[k] = v
	}
	h[topics.HeaderOriginTopic] = []byte(d.Topic)
	h[topics.HeaderOrigin] = []byte(d.Origin())
	return Actions{Loopback: &codec.Record{Key: []byte(subject), Value: d.Record.Value, Headers: h}}
}

// deadLetter returns the DeadLetter action: the record as received plus the
// dead-letter headers.
// kind (one of package deadletter's) is written as its code (topics.HeaderDLQCode).
func deadLetter(d Delivery, group string, kind error, reason string, now time.Time) Actions {
	return deadLetterCode(d, group, deadletter.Code(kind), reason, now)
}

// deadLetterCode is deadLetter with the kind's code.
func deadLetterCode(d Delivery, group, code, reason string, now time.Time) Actions {
	h := make(map[string][]byte, len(d.Record.Headers)+5)
	for k, v := range d.Record.Headers {
		h[k] = v
	}
	h[topics.HeaderDLQReason] = []byte(reason)
	h[topics.HeaderDLQOrigin] = []byte(d.Origin())
	h[topics.HeaderDLQGroup] = []byte(group)
	h[topics.HeaderDLQTime] = []byte(now.UTC().Format(time.RFC3339Nano))
	if code != "" {
		h[topics.HeaderDLQCode] = []byte(code)
	}
	return Actions{DeadLetter: &codec.Record{Key: d.Record.Key, Value: d.Record.Value, Headers: h}, Reason: reason}
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// decode reads the delivery's CloudEvent, requiring a subject.
func decode(d Delivery) (codec.Event, error) {
	if err := ambiguous(d); err != nil {
		return codec.Event{}, err
	}
	ev, err := codec.DecodeEvent(d.Record)
	if err == nil {
		err = codec.RequireSubject(ev)
	}
	if err == nil {
		err = checkSubject(ev.Subject())
	}
	return ev, err
}

// ambiguous refuses a record the runtime's consumer marked (topics.HeaderAmbiguous).
func ambiguous(d Delivery) error {
	if names, ok := d.Record.Headers[topics.HeaderAmbiguous]; ok {
		return fmt.Errorf("ambiguous CloudEvent: a CloudEvents header appears more than once (%s)", names)
	}
	return nil
}

// decodeCommand reads the delivery's CloudEvent as attributes (cheaper
// than decode), requiring a subject.
func decodeCommand(d Delivery) (codec.Attributes, error) {
	if err := ambiguous(d); err != nil {
		return codec.Attributes{}, err
	}
	a, err := codec.DecodeAttributes(d.Record)
	if err == nil {
		err = a.RequireSubject()
	}
	if err == nil {
		err = checkSubject(a.Subject)
	}
	return a, err
}

// kindOf is the dead-letter kind of err: what the codec says of a record
// or a payload, else def.
func kindOf(err error, def error) error {
	switch {
	case errors.Is(err, codec.ErrNotCloudEvent):
		return deadletter.ErrNotCloudEvent
	case errors.Is(err, codec.ErrInvalidEvent):
		return deadletter.ErrInvalidEvent
	case errors.Is(err, codec.ErrPayload):
		return deadletter.ErrBadPayload
	}
	return def
}

// HandleEntity is everything an entity (or stateless consumer) does with one
// delivery: decode, re-route, dedup, decide, and what to store and write.
func HandleEntity(env Env, def *Entity, d Delivery) Actions {
	return fit(env, d, def.Name, handleEntity(env, def, d))
}

func handleEntity(env Env, def *Entity, d Delivery) Actions {
	group := env.Topics.Group(def.Name)
	if max := def.MaxValue; max > 0 && len(d.Record.Value) > max {
		return deadLetter(d, group, deadletter.ErrTooLarge, fmt.Sprintf("value is %d bytes, more than the %d the entity accepts (entities.MaxValue)", len(d.Record.Value), max), env.Now())
	}
	ev, err := decodeCommand(d)
	if err != nil {
		return deadLetter(d, group, kindOf(err, deadletter.ErrInvalidEvent), err.Error(), env.Now())
	}
	topic := d.Topic
	stored := &envelope.Envelope{}
	if def.Kind != Stateless { // a consumer has no state, so nothing binds it to a partition
		subject := ev.Subject
		if topic == d.Loop {
			topic = string(d.Record.Headers[topics.HeaderOriginTopic])
			if string(d.Record.Key) != subject || topic == "" {
				return deadLetter(d, group, deadletter.ErrInvalidEvent, "record on the loop topic is not keyed by its subject or lacks its origin", env.Now())
			}
		} else if !routed(d, subject) {
			return reroute(d, subject)
		}
		if stored, err = envelope.DecodeEnvelope(d.Stored); err != nil {
			return deadLetter(d, group, deadletter.ErrInternal, fmt.Sprintf("subject %q: %v", subject, err), env.Now())
		}
	}
	at := Arrival{Ctx: d.Ctx}
	if def.Kind != Stateless {
		at = Arrival{Ctx: d.Ctx, IDs: d.IDs, Since: d.Since, From: envelope.Origin{Topic: envelope.OriginElsewhere, Offset: d.Offset}}
		switch d.Topic {
		case env.Topics.Commands(def.Name):
			at.From.Topic = envelope.OriginCommands
		case d.Loop:
			at.From.Topic = envelope.OriginLoop
		}
	}
	out := Process(env, def, topic, stored, ev, at)
	if out.DeadLetter != "" {
		a := deadLetterCode(d, group, out.Code, out.DeadLetter, env.Now())
		if topic == env.Topics.Commands(def.Name) && asked(ev) {
			// The asker learns of it (its error command), instead of
			// waiting for its timeout.
			f := answerFact(ev, nil, &AskError{Code: CodeDeadLetter, Message: clip(out.DeadLetter, 1000), Kind: out.Code, Entity: def.Name})
			if o, err := answerRecord(env.Topics, def.Name, ev.Source+"/"+ev.ID, f, env.Now()); err == nil {
				a.Outputs = append(a.Outputs, o)
			}
		}
		if name, _ := consumed(ev); name != "" && def.Kind != Stateless {
			// A fire or an answer whose command is dead-lettered consumes
			// its timer all the same: fired again, it would only be
			// dead-lettered again. The dead letter holds the command.
			if next, ok := stored.Timer(name); ok {
				rest := *stored
				rest.CancelTimer(next.Name)
				if data, err := rest.Encode(); err == nil {
					a.Store = data
				}
			}
		}
		return a
	}
	a := Actions{Outputs: out.Outputs, Remember: out.Remember, Duplicate: out.Duplicate, Job: out.Job}
	if a.Job != nil {
		a.Job.dead = func(code, reason string) envelope.Output {
			dl := deadLetterCode(d, group, code, reason, env.Now())
			return envelope.Output{Topic: env.Topics.DeadLetters(), Record: *dl.DeadLetter}
		}
	}
	if out.Envelope != nil && def.Kind != Stateless {
		data, err := out.Envelope.Encode()
		if err != nil {
			return deadLetter(d, group, deadletter.ErrInternal, fmt.Sprintf("encode state: %v", err), env.Now())
		}
		a.Store = data
	}
	return a
}

// HandleView is everything a view does with one delivery from one of its
// sources (by topic) or its loop topic.
func HandleView(env Env, v *View, sources map[string]*ViewSource, d Delivery) Actions {
	return fit(env, d, v.Name, handleView(env, v, sources, d))
}

func handleView(env Env, v *View, sources map[string]*ViewSource, d Delivery) Actions {
	group := env.Topics.Group(v.Name)
	topic := d.Topic
	if topic == d.Loop {
		topic = string(d.Record.Headers[topics.HeaderOriginTopic])
	}
	src := sources[topic]
	if src == nil {
		return deadLetter(d, group, deadletter.ErrInvalidEvent, "record from a topic the view does not read: "+topic, env.Now())
	}
	var (
		subject = string(d.Record.Key)
		typ     string
		seq     uint64
		in      = ViewInput{Ctx: d.Ctx}
	)
	if src.Kind == FromState {
		if d.Record.Value == nil {
			return Actions{} // a compacted-away entity: nothing to apply
		}
		e, err := envelope.DecodeEnvelope(d.Record.Value)
		if err != nil {
			return deadLetter(d, group, deadletter.ErrInvalidEvent, err.Error(), env.Now())
		}
		if e.Seq == 0 {
			// The subject never had state (only error replies were
			// recorded): nothing for a view. Taking it for a deletion would
			// let a replay of it remove a row that exists since.
			return Actions{}
		}
		typ, seq, in.Data = StateChanged, e.Seq, e.State
		if !e.Exists {
			typ, in.Data = StateDeleted, nil
		}
	} else {
		ev, err := decode(d)
		if err != nil {
			return deadLetter(d, group, kindOf(err, deadletter.ErrInvalidEvent), err.Error(), env.Now())
		}
		subject, typ, in.Data, in.Event = ev.Subject(), ev.Type(), ev.Data(), ev
		if s, ok := ev.Extensions()[codec.ExtSequence]; ok {
			seq, _ = strconv.ParseUint(fmt.Sprint(s), 10, 64)
		}
		if d.Topic != d.Loop && !routed(d, subject) {
			return reroute(d, subject)
		}
	}
	stored := &RowEnvelope{}
	if d.Stored != nil {
		if err := json.Unmarshal(d.Stored, stored); err != nil {
			return deadLetter(d, group, deadletter.ErrInternal, fmt.Sprintf("stored row of %q is unreadable: %v", subject, err), env.Now())
		}
	}
	// An update with no sequence number (another producer's event) is
	// recognized by its id, within the retention.
	var idKey string
	now := env.Now()
	if seq == 0 && src.Kind == FromTopic && v.KeepsIDs() {
		idKey = in.Event.Source() + "\x00" + in.Event.ID()
		seen, err := seenID(v, stored, subject, idKey, now, d.IDs)
		if err != nil {
			return deadLetter(d, group, deadletter.ErrInternal, fmt.Sprintf("row %q: id table: %v", subject, err), now)
		}
		if seen {
			return Actions{Store: d.Stored, Duplicate: true}
		}
	}
	next, dead := ProcessView(src, typ, subject, seq, stored, in)
	if dead != nil {
		return deadLetter(d, group, dead.Kind, dead.Reason, env.Now())
	}
	var remember []Remembered
	if next != nil && idKey != "" {
		remember = rememberID(v, next, subject, idKey, now)
	}
	if next == nil {
		// Not newer than what the row holds: a redelivery, or an update
		// overtaken by a later one. Write the row again as it is: after a
		// crash the local store can hold a write the table topic never got,
		// and writing it again makes it durable (as HandleEntity does for a
		// duplicate command).
		return Actions{Store: d.Stored}
	}
	data, err := json.Marshal(next)
	if err != nil {
		return deadLetter(d, group, deadletter.ErrInternal, err.Error(), env.Now())
	}
	return Actions{Store: data, Remember: remember}
}

// RecordSize is at least what a producer counts of a record against its
// limit: key, value, headers and their framing. The runtime, the request
// client and the harness all measure records with it.
func RecordSize(key, value []byte, headers map[string][]byte) int {
	n := 64 + len(key) + len(value)
	for k, v := range headers {
		n += 12 + len(k) + len(v)
	}
	return n
}

// recordLimit bounds the bytes of a record written to topic (see
// Env.MaxRecord and MaxRecordOf; 0 or less: none).
func (env Env) recordLimit(topic string) int {
	if env.MaxRecordOf != nil {
		return env.MaxRecordOf(topic)
	}
	return env.MaxRecord
}

// fit makes a's records fit env.MaxRecord (or, per topic,
// env.MaxRecordOf), so that nothing a caller sends can make a write fail
// and stop the partition: when a record the group of entity or view name
// would write (the re-routed record, the new state, an id table entry, an
// output) does not fit its topic, the input is a dead letter instead, and
// nothing else is written; a dead letter that does not fit the dead-letter
// topic has its value cut.
func fit(env Env, d Delivery, name string, a Actions) Actions {
	if env.MaxRecordOf == nil && env.MaxRecord <= 0 {
		return a
	}
	group := env.Topics.Group(name)
	too := func(what string, n, max int) Actions {
		return deadLetter(d, group, deadletter.ErrTooLarge, fmt.Sprintf("%s would be %d bytes, more than the %d a record may have", what, n, max), env.Now())
	}
	switch {
	case a.Loopback != nil:
		if n, max := RecordSize(a.Loopback.Key, a.Loopback.Value, a.Loopback.Headers), env.recordLimit(d.Loop); n > max {
			a = too("the re-routed record", n, max)
		}
	case a.DeadLetter == nil:
		if n, max := RecordSize(d.Record.Key, a.Store, nil), env.recordLimit(env.Topics.Table(name)); a.Store != nil && n > max {
			a = too("the new state", n, max)
			break
		}
		for _, m := range a.Remember {
			if n, max := RecordSize([]byte(m.Key), m.Value, nil), env.recordLimit(env.Topics.IDs(name)); n > max {
				a = too("an id table entry", n, max)
				break
			}
		}
		for _, o := range a.Outputs {
			if a.DeadLetter != nil {
				break
			}
			if n, max := RecordSize(o.Record.Key, o.Record.Value, o.Record.Headers), env.recordLimit(o.Topic); n > max {
				a = too("a record for "+o.Topic, n, max)
			}
		}
	}
	if dl := a.DeadLetter; dl != nil {
		max := env.recordLimit(env.Topics.DeadLetters())
		if n := RecordSize(dl.Key, dl.Value, dl.Headers); n > max {
			// Cut the value (the reason and origin say what it was); keys
			// and headers the broker accepted with it are kept.
			h := make(map[string][]byte, len(dl.Headers)+1)
			for k, v := range dl.Headers {
				h[k] = v
			}
			h[topics.HeaderDLQCut] = []byte(strconv.Itoa(len(dl.Value)))
			keep := max - RecordSize(dl.Key, nil, h)
			if keep < 0 {
				keep = 0
			}
			a.DeadLetter = &codec.Record{Key: dl.Key, Value: dl.Value[:min(keep, len(dl.Value))], Headers: h}
		}
	}
	return a
}
