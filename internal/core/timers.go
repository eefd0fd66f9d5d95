package core

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// Timers and asks. A subject's pending timers live in its envelope, so they
// move with its partition and are as durable as its state. When one is due,
// the runtime (or the harness, on its clock) writes FireRecord to the
// entity's loop topic; Process applies it as the timer's command, in order
// with the subject's other commands, once: the fire's id is made of the
// timer's name and ID, a redelivered fire is a duplicate, and a fire whose
// timer was replaced, cancelled or fired since finds it missing and is
// dropped.
//
// An ask is a sent command that carries who asked (codec.ExtAskFrom, ...)
// plus a timer of the asking subject, AskTimer(the sent command's source
// and id), that fires the timeout command. The asked entity answers on the
// asker's loop topic (FactAnswer), with its reply, its error reply, or the
// command's dead letter; the answer consumes the asker's timer, so exactly
// one of answer and timeout is applied, whichever comes first.

// AskTimer is the name of the timer that waits for the answer to the ask
// whose command has ref (its ce-source, "/", its ce-id).
func AskTimer(ref string) string { return "ask:" + ref }

// TimerSource is the ce-source of the fires of entity's timers.
func TimerSource(names topics.Names, entity string) string { return names.Source(entity) + "/timers" }

// fireID is the ce-id of the fire of t.
func fireID(t envelope.Timer) string { return "timer:" + t.Name + ":" + strconv.FormatUint(t.ID, 16) }

// FireRecord is the record that fires t, a timer of entity's subject, for
// its loop topic (names.Loop(entity)): a binary-mode CloudEvent, written
// header by header (codec.EncodeEvent's form, which a burst of due timers
// made the scheduler's largest cost; TestFireRecordIsACloudEvent checks
// that codec reads it back as the same event).
func FireRecord(names topics.Names, entity, subject string, t envelope.Timer) codec.Record {
	h := map[string][]byte{
		"ce_specversion":         []byte("1.0"),
		"ce_id":                  []byte(fireID(t)),
		"ce_source":              []byte(TimerSource(names, entity)),
		"ce_type":                []byte(t.Command),
		"ce_subject":             []byte(subject),
		"ce_time":                []byte(time.Unix(0, t.Due).UTC().Format(time.RFC3339Nano)),
		"ce_" + codec.ExtTimer:   []byte(t.Name),
		topics.HeaderOriginTopic: []byte(names.Commands(entity)),
	}
	if t.ContentType != "" {
		h["content-type"] = []byte(t.ContentType)
	}
	return codec.Record{Key: []byte(subject), Value: t.Data, Headers: h}
}

// AskError is the payload of an ask's OnError and OnTimeout commands (see
// entities.AskError, which has its shape).
type AskError struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	// Entity, Subject and Command are the ask's: which of a subject's asks
	// this answers.
	Entity  string `json:"entity"`
	Subject string `json:"subject"`
	Command string `json:"command"`
	// Kind is the dead-letter kind's code (package deadletter) when Code
	// is CodeDeadLetter.
	Kind string `json:"kind,omitempty"`
}

// Codes of an AskError that are no error reply of the asked entity.
const (
	CodeTimeout    = "timeout"
	CodeDeadLetter = "dead_letter"
)

func (a AskError) data() []byte {
	data, _ := json.Marshal(a)
	return data
}

// answerFact is what an asked command's subject writes to the asker (ev:
// the asked command; it must carry codec.ExtAskFrom): the reply (data), or
// an AskError for an error reply (errCode) or a dead letter.
func answerFact(ev codec.Attributes, data []byte, fail *AskError) envelope.Fact {
	f := envelope.Fact{Kind: envelope.FactAnswer, Target: ev.Extensions[codec.ExtAskFrom] + "\x00" + ev.Extensions[codec.ExtAskSubject],
		Type: ev.Extensions[codec.ExtAskReply], ContentType: "application/json", Data: data}
	if fail != nil {
		fail.Subject, fail.Command = ev.Subject, ev.Type
		f.Type, f.Data = ev.Extensions[codec.ExtAskError], fail.data()
	}
	if f.Data == nil {
		f.Data = json.RawMessage("{}")
	}
	return f
}

// asked reports whether ev is an asked command.
func asked(ev codec.Attributes) bool { return ev.Extensions[codec.ExtAskFrom] != "" }

// answerRecord renders an answer fact of entity (the asked one) to the
// command with ref (ce-source "/" ce-id), written at now.
func answerRecord(names topics.Names, entity, ref string, f envelope.Fact, now time.Time) (envelope.Output, error) {
	asker, subject, ok := cutNUL(f.Target)
	if !ok {
		return envelope.Output{}, fmt.Errorf("%w: an answer without its asker", envelope.ErrUnreadable)
	}
	e := newEvent(names.Source(entity), "answer:"+ref, f.Type, subject, now)
	e.SetExtension(codec.ExtAsk, ref)
	setData(&e, f.ContentType, f.Data)
	r, err := codec.EncodeEvent(e)
	if err != nil {
		return envelope.Output{}, err
	}
	r.Headers[topics.HeaderOriginTopic] = []byte(names.Commands(asker))
	return envelope.Output{Topic: names.Loop(asker), Record: r}, nil
}

// sendRef is the ce-source "/" ce-id of the n-th command (sent or asked)
// that the command with ref (source "/" id) of entity's subject wrote.
func sendRef(names topics.Names, entity, subject, ref string, n int) (source, id string) {
	return names.Source(entity) + "/" + subject, fmt.Sprintf("%s:send-%d", ref, n)
}

func cutNUL(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// askTarget packs an ask's fact target: the entity, its reply and error
// commands.
func askTarget(a OutAsk) string { return a.Entity + "\x00" + a.OnReply + "\x00" + a.OnError }

// consumed is the timer that ev fires or answers ("" when none), and
// whether ev is such a record at all.
func consumed(ev codec.Attributes) (name string, fire bool) {
	if n, ok := ev.Extensions[codec.ExtTimer]; ok {
		return n, true
	}
	if ref, ok := ev.Extensions[codec.ExtAsk]; ok {
		return AskTimer(ref), false
	}
	return "", false
}
