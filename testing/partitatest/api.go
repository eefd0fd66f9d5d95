package partitatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/views"
)

// Errors of the harness.
var (
	// ErrUnknown: no entity, view or command of that name (or id).
	ErrUnknown = errors.New("partitatest: unknown")
	// ErrNoReply: a command got no reply (it was dead-lettered, re-routed
	// into a lagging group, or its entity is lagging).
	ErrNoReply = errors.New("partitatest: no reply")
)

// SendOption changes a command sent with [Harness.Send].
type SendOption func(*sendOpts)

type sendOpts struct {
	id, source string
	misrouted  bool
	duplicated bool
	caller     *access.Caller
}

// As sends the command as the gateway would for caller: the command's
// access rule is checked first (its own, else its entity's, else the
// worker's default, "authenticated"), and a refusal is Send's error,
// wrapping access.ErrUnauthenticated or access.ErrForbidden (Internal
// commands are always refused, as at the gateway). An admitted command
// carries caller, which its handler reads with Metadata.Caller. Without
// As, a command comes from inside the application: no rule applies and
// Caller is nil.
func As(caller access.Caller) SendOption { return func(o *sendOpts) { o.caller = &caller } }

// ID sets the command's ce-id (default: a new id per send). Sending the
// same id (and source) again is a redelivery.
func ID(id string) SendOption { return func(o *sendOpts) { o.id = id } }

// Source sets the command's ce-source (default "partitatest").
func Source(source string) SendOption { return func(o *sendOpts) { o.source = source } }

// Misrouted puts the command on a partition other than its subject's, under
// a key that is not its subject: what a producer with another partitioner,
// random keys or no key does. Partita re-routes it through the loop topic.
func Misrouted() SendOption { return func(o *sendOpts) { o.misrouted = true } }

// Duplicated writes the command twice, as a producer retry can.
func Duplicated() SendOption { return func(o *sendOpts) { o.duplicated = true } }

// Reply is what a command got back.
type Reply struct {
	// Code is the error code of an error reply, "" on success.
	Code    string
	Message string
	// Data is the reply's JSON payload (success) or error body.
	Data json.RawMessage
	// Seq is the subject's sequence number after the command, and Position
	// its position token for read-your-writes queries.
	Seq      uint64
	Position string
	// Duplicate is set when the last delivery of the command was recognised
	// as a redelivery and answered from the record.
	Duplicate bool
}

// Decode decodes the reply's payload into v.
func (r Reply) Decode(v any) error { return json.Unmarshal(r.Data, v) }

// Command builds the CloudEvent of a command (what Send sends).
func (h *Harness) command(subject, command string, payload any, o sendOpts) (codec.Event, error) {
	h.seq++
	ev := codec.NewEvent()
	ev.SetID(o.id)
	if o.id == "" {
		ev.SetID("cmd-" + strconv.Itoa(h.seq))
	}
	ev.SetSource(o.source)
	if o.source == "" {
		ev.SetSource("partitatest")
	}
	ev.SetType(command)
	ev.SetSubject(subject)
	ev.SetTime(h.now)
	ev.SetExtension(codec.ExtReply, "true") // as the gateway does
	if o.caller != nil {
		b, err := json.Marshal(o.caller)
		if err != nil {
			return ev, fmt.Errorf("partitatest: encode caller: %w", err)
		}
		ev.SetExtension(codec.ExtCaller, string(b))
	}

	if err := ev.SetData("application/json", payload); err != nil {
		return ev, fmt.Errorf("partitatest: encode payload: %w", err)
	}
	return ev, nil
}

// Send sends command (the ce-type) with payload (as JSON) to the entity's
// subject, lets every group that is not lagging process what it can, and
// returns the command's reply.
func (h *Harness) Send(entity, subject, command string, payload any, opts ...SendOption) (Reply, error) {
	if g := h.byName[entity]; g == nil || g.entity == nil || g.entity.Kind == core.Stateless {
		return Reply{}, fmt.Errorf("%w entity %q", ErrUnknown, entity)
	}
	var o sendOpts
	for _, f := range opts {
		f(&o)
	}
	if o.caller != nil {
		d := h.byName[entity].entity
		rule := d.CommandAccess[command].Or(d.Access).Or(access.Authenticated())
		if err := rule.Check(o.caller, "command "+entity+"/"+command); err != nil {
			return Reply{}, err
		}
	}
	ev, err := h.command(subject, command, payload, o)
	if err != nil {
		return Reply{}, err
	}
	h.write(h.topics.Commands(entity), ev, o)
	h.settle(nil)
	return h.reply(ev.Source(), ev.ID())
}

// write appends ev to topic, on its subject's partition unless misrouted.
func (h *Harness) write(topic string, ev codec.Event, o sendOpts) {
	r, err := codec.EncodeEvent(ev)
	if err != nil {
		panic(err) // the harness built ev: it is valid
	}
	p := h.partition(r.Key)
	if o.misrouted {
		p = (p + 1) % h.n
		r.Key = []byte("not-the-subject-" + ev.ID())
	}
	h.append(topic, p, r)
	if o.duplicated {
		h.append(topic, p, r)
	}
	h.sent[ev.Source()+"\x00"+ev.ID()] = sentCommand{topic: topic, partition: p, record: r}
}

// reply finds the last reply to the command of source and id.
func (h *Harness) reply(source, id string) (Reply, error) {
	parts := h.logs[h.topics.Replies()]
	if parts == nil {
		return Reply{}, fmt.Errorf("%w to %s", ErrNoReply, id)
	}
	key := core.ReplyKey(source, id)
	if h.dead[source+"\x00"+id] {
		return Reply{}, fmt.Errorf("%w to %s: its last delivery was dead-lettered", ErrNoReply, id)
	}
	recs := parts[h.partition([]byte(key))]
	for i := len(recs) - 1; i >= 0; i-- {
		if string(recs[i].Key) != key {
			continue
		}
		e, err := codec.DecodeEvent(recs[i])
		if err != nil {
			return Reply{}, err
		}
		r := Reply{Data: e.Data(), Duplicate: h.duplicates[id]}
		r.Seq, _ = strconv.ParseUint(fmt.Sprint(e.Extensions()[codec.ExtSequence]), 10, 64)
		r.Position = fmt.Sprint(e.Extensions()[codec.ExtPosition])
		if e.Type() == core.TypeError {
			var body struct{ Code, Message string }
			_ = json.Unmarshal(e.Data(), &body)
			r.Code, r.Message = body.Code, body.Message
		}
		return r, nil
	}
	return Reply{}, fmt.Errorf("%w to %s", ErrNoReply, id)
}

// Redeliver writes an earlier command (by ce-id; source "partitatest"
// unless given) again at the end of its partition, behind anything sent
// since, and returns the reply it then gets.
func (h *Harness) Redeliver(id string, source ...string) (Reply, error) {
	src := "partitatest"
	if len(source) > 0 {
		src = source[0]
	}
	s, ok := h.sent[src+"\x00"+id]
	if !ok {
		return Reply{}, fmt.Errorf("%w command %s/%s", ErrUnknown, src, id)
	}
	h.append(s.topic, s.partition, s.record)
	h.settle(nil)
	return h.reply(src, id)
}

// RedeliverEvent writes the event with ce-id id on topic again, behind
// everything written to its partition since: the "old message behind new
// ones" a consumer restart or a producer retry causes.
func (h *Harness) RedeliverEvent(topic, id string) error {
	for p, part := range h.logs[topic] {
		for _, r := range part {
			if string(r.Headers["ce_id"]) == id {
				h.append(topic, int32(p), r)
				h.settle(nil)
				return nil
			}
		}
	}
	return fmt.Errorf("%w event %s on %s", ErrUnknown, id, topic)
}

// Record is a record as written to a topic.
type Record struct {
	Partition int32
	Offset    int64
	codec.Record
}

// Records returns every record written to topic, partition by partition.
func (h *Harness) Records(topic string) []Record {
	var out []Record
	for p, part := range h.logs[topic] {
		for o, r := range part {
			out = append(out, Record{Partition: int32(p), Offset: int64(o), Record: r})
		}
	}
	return out
}

// Publish writes a CloudEvent of eventType about subject, with payload (as
// JSON), to topic, for the entities and views that subscribe to it.
func (h *Harness) Publish(topic, eventType, subject string, payload any, opts ...SendOption) error {
	var o sendOpts
	for _, f := range opts {
		f(&o)
	}
	ev, err := h.command(subject, eventType, payload, o)
	if err != nil {
		return err
	}
	h.write(topic, ev, o)
	h.settle(nil)
	return nil
}

// FailNext makes the next n calls of the entity's handler of command (or
// subscribed event type) fail as if a dependency were down. Within an
// entity's retries the command still succeeds; beyond them it is
// dead-lettered.
func (h *Harness) FailNext(entity, command string, n int) { h.failNext[entity+"/"+command] += n }

// LagView stops a view from processing: queries return what it showed
// before, however much happens since. CatchUp ends it.
func (h *Harness) LagView(view string) error {
	g := h.byName[view]
	if g == nil || g.view == nil {
		return fmt.Errorf("%w view %q", ErrUnknown, view)
	}
	g.lagging = true
	return nil
}

// LagEntity stops an entity from processing, as a consumer group far
// behind: commands sent to it wait (Send gets ErrNoReply), and so do its
// timers' fires and the answers to its asks, while its timers still fall
// due; an entity it asks answers nothing in time, so its askers' timeouts
// fire. CatchUp ends it.
func (h *Harness) LagEntity(entity string) error {
	g := h.byName[entity]
	if g == nil || g.entity == nil {
		return fmt.Errorf("%w entity %q", ErrUnknown, entity)
	}
	g.lagging = true
	return nil
}

// CatchUp lets a lagging view (or entity, see LagEntity) process
// everything it missed.
func (h *Harness) CatchUp(name string) error {
	g := h.byName[name]
	if g == nil {
		return fmt.Errorf("%w view or entity %q", ErrUnknown, name)
	}
	g.lagging = false
	h.settle(nil)
	return nil
}

// Crash kills the worker running a group and starts it again: the writes
// its broker had not yet acknowledged are lost (see CommitEvery), it
// resumes from its last committed offsets, so what it processed since is
// delivered again, and its local store still holds the effects of those
// records, ahead of the table topic, as goka's does. After the replay, every
// key's state must be on the table topic again (else [Harness.Violations]
// says which).
func (h *Harness) Crash(name string) error {
	g := h.byName[name]
	if g == nil {
		return fmt.Errorf("%w group %q", ErrUnknown, name)
	}
	h.crash(g, false)
	h.settle(nil)
	h.checkDurable()
	return nil
}

// View returns the read side of a view, for queries (see package views).
func (h *Harness) View(name string) (views.Reader, error) {
	g := h.byName[name]
	if g == nil || g.view == nil {
		return nil, fmt.Errorf("%w view %q", ErrUnknown, name)
	}
	return g.store, nil
}

// ReadAfter returns the row id of a view once the view has applied the
// position of a reply (read-your-writes): a lagging view is advanced, one
// record at a time, until it has.
func (h *Harness) ReadAfter(view, position, id string) (views.Row, bool, error) {
	g := h.byName[view]
	if g == nil || g.view == nil {
		return views.Row{}, false, fmt.Errorf("%w view %q", ErrUnknown, view)
	}
	for {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // check without waiting
		err := g.store.WaitFor(ctx, position)
		if err == nil {
			return g.store.Get(context.Background(), id)
		}
		if !errors.Is(err, views.ErrStale) {
			return views.Row{}, false, err
		}
		var next *cursor
		for _, c := range h.pending(true) {
			if c.g == g {
				next = &c
				break
			}
		}
		if next == nil {
			return views.Row{}, false, fmt.Errorf("view %s has nothing left to apply: %w", view, err)
		}
		h.step(*next)
	}
}

// State decodes the subject's current state into v and reports whether the
// subject has state.
func (h *Harness) State(entity, subject string, v any) (bool, error) {
	g := h.byName[entity]
	if g == nil || g.entity == nil {
		return false, fmt.Errorf("%w entity %q", ErrUnknown, entity)
	}
	env, err := envelope.DecodeEnvelope(g.table[subject])
	if err != nil || !env.Exists {
		return false, err
	}
	return true, json.Unmarshal(env.State, v)
}

// SetState stores state as the subject's state, as if a command had set it
// (its sequence number moves on by one; its dedup window and timers stay):
// for testing a definition against states an earlier one left (a
// workflow instance of an earlier version, an entity's old state shape).
func (h *Harness) SetState(entity, subject string, state any) error {
	g := h.byName[entity]
	if g == nil || g.entity == nil || g.entity.Kind == core.Stateless {
		return fmt.Errorf("%w entity %q", ErrUnknown, entity)
	}
	env, err := envelope.DecodeEnvelope(g.table[subject])
	if err != nil {
		return err
	}
	if env.State, err = json.Marshal(state); err != nil {
		return err
	}
	env.Seq, env.Exists = env.Seq+1, true
	data, err := env.Encode()
	if err != nil {
		return err
	}
	g.table[subject] = data
	h.append(h.topics.Table(entity), h.partition([]byte(subject)), codec.Record{Key: []byte(subject), Value: data})
	h.settle(nil)
	return nil
}

// Timers lists the subject's pending timers, soonest first (asks waiting
// for their answer among them, named "ask:<the asked command's source>/<id>").
func (h *Harness) Timers(entity, subject string) ([]entities.Timer, error) {
	g := h.byName[entity]
	if g == nil || g.entity == nil {
		return nil, fmt.Errorf("%w entity %q", ErrUnknown, entity)
	}
	env, err := envelope.DecodeEnvelope(g.table[subject])
	if err != nil {
		return nil, err
	}
	out := make([]entities.Timer, len(env.Timers))
	for i, t := range env.Timers {
		out[i] = entities.Timer{Name: t.Name, Due: time.Unix(0, t.Due).UTC(), Command: t.Command}
	}
	return out, nil
}

// Now is the harness's clock (see Advance).
func (h *Harness) Now() time.Time { return h.now }

// Events returns the events the entity wrote about subject, in order
// (re-published ones included).
func (h *Harness) Events(entity, subject string) []codec.Event {
	var out []codec.Event
	for _, e := range h.Published(h.topics.Events(entity)) {
		if e.Subject() == subject {
			out = append(out, e)
		}
	}
	return out
}

// Published returns every event written to topic: partition by partition,
// each in order.
func (h *Harness) Published(topic string) []codec.Event {
	var out []codec.Event
	for _, part := range h.logs[topic] {
		for _, r := range part {
			if e, err := codec.DecodeEvent(r); err == nil {
				out = append(out, e)
			}
		}
	}
	return out
}

// DeadLetter is a record in the dead-letter topic.
type DeadLetter struct {
	Group  string // the entity or view that gave up on it
	Reason string
	// Err is the dead letter's kind and reason, a *deadletter.Error:
	// errors.Is(d.Err, deadletter.ErrUnknownType), as the runtime's
	// partita_dlq_code header says.
	Err    error
	Record codec.Record // as received, plus the partita_dlq_* headers
}

// DeadLetters returns the records dead-lettered so far.
func (h *Harness) DeadLetters() []DeadLetter {
	var out []DeadLetter
	for _, part := range h.logs[h.topics.DeadLetters()] {
		for _, r := range part {
			reason := string(r.Headers[topics.HeaderDLQReason])
			out = append(out, DeadLetter{Group: string(r.Headers[topics.HeaderDLQGroup]), Reason: reason,
				Err: deadletter.FromCode(string(r.Headers[topics.HeaderDLQCode]), reason), Record: r})
		}
	}
	return out
}

// Violations lists breaches of the delivery contract the harness saw, such
// as a view row moving backwards. It is empty when Partita holds.
func (h *Harness) Violations() []string { return h.violations }

// Topic is the full name of an application topic, for Publish and
// Published: Topic("signups") is "app.signups".
func (h *Harness) Topic(name string) string { return h.topics.App + "." + name }

// Partition is the partition a subject's records and state live on.
func (h *Harness) Partition(subject string) int32 { return h.partition([]byte(subject)) }

// Rerouted counts the records re-routed through loop topics so far.
func (h *Harness) Rerouted() int {
	n := 0
	for _, g := range h.groups {
		for _, part := range h.logs[g.loop] {
			n += len(part)
		}
	}
	return n
}
