package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// Outcome is what Process decided for one input.
type Outcome struct {
	// Envelope is the new envelope to store, nil when nothing changes.
	Envelope *envelope.Envelope
	// Outputs are the records to write, in order.
	Outputs []envelope.Output
	// Remember are the id table's new entries (see Process).
	Remember []Remembered
	// DeadLetter, when not empty, is why the input goes to the dead-letter
	// topic, and Code names the reason's kind when callers may act on it
	// (CodeIdempotencyConflict); Envelope and Outputs are then empty.
	DeadLetter string
	Code       string
	// Duplicate is set when the input was a redelivery of an applied command.
	Duplicate bool
	// Ignored is set when the input was dropped on purpose (unknown type
	// with IgnoreUnknown, or an Ignore effect).
	Ignored bool
	// Job is a detached handler's run (Entity.Detached), for the runtime
	// to start once Envelope is stored.
	Job *Job
}

// Remembered is an entry of an entity's id table: under IDKey, the applied
// command as envelope.EncodeApplied writes it.
type Remembered struct {
	Key   string
	Value []byte
}

// IDTable reads an entity's id table: Get returns nil when key has no
// entry. The table is co-partitioned with the entity (its keys start with
// the subject), so the partition's own copy answers. Pending lists the
// entries of subject that the copy holds and the table's topic may not (it
// has not read them back from the topic): after a crash, a new epoch
// writes them again.
type IDTable interface {
	Get(key string) ([]byte, error)
	Pending(subject string) ([]Remembered, error)
}

// IDKey is the id table's key of a command of subject whose key hashes to
// hash (see hashKey): the subject, a NUL byte and the hash in hex. The
// runtime's partitioner hashes what precedes the NUL, so the entry lives on
// its subject's partition.
func IDKey(subject string, hash uint64) string {
	return subject + "\x00" + strconv.FormatUint(hash, 16)
}

// Arrival is what Process knows of where a command came from.
type Arrival struct {
	Ctx   context.Context // the handler's context (nil: never cancelled)
	IDs   IDTable         // the entity's id table (nil: none)
	From  envelope.Origin // where the command was read
	Since envelope.Since  // where this epoch started reading the subject's partition
}

// CodeIdempotencyConflict is the Outcome.Code (and dead-letter code) of a
// command whose id was applied before with another request.
const CodeIdempotencyConflict = "idempotency_conflict"

// Env is what Process needs from its caller.
type Env struct {
	Topics topics.Names
	Now    func() time.Time
	Sleep  func(time.Duration) // between retries (nil: a timer); the harness passes a no-op
	// Runners run the handler calls (nil: a goroutine per call).
	Runners *Runners
	// Epoch names this run of the processor: a new value each time a
	// processor starts (after a crash, a restart, a move to another
	// worker), never 0. See Process.
	Epoch uint64
	// MaxRecord bounds the bytes of every record the group writes (the
	// producer's limit; 0: none): see HandleEntity.
	MaxRecord int
	// MaxRecordOf, when set, bounds the bytes of a record written to
	// topic instead of MaxRecord (topics can have limits of their own,
	// lower than the producer's; the dead-letter topic's can differ from
	// the others'). Its result must be positive.
	MaxRecordOf func(topic string) int
	// Step receives the workflow steps' reports (Hooks.Step; nil: none).
	Step func(StepReport)
}

// Process handles one validated CloudEvent (it has a subject) for def,
// arriving on topic (the commands topic or a subscribed one), against the
// subject's stored envelope and the entity's id table (at.IDs, nil: none).
//
// Deduplication: a command's key (source, id) is looked for in the
// envelope's window (its last def.Window commands) and, once the subject's
// window has overflowed (envelope.Envelope.Spilled), in the id table, where every
// command the subject applies from then on is written too (Remember). An
// entry older than def.Retention is forgotten: the command is applied
// again. A duplicate answers with its recorded reply, and writes nothing
// else within one epoch (its other records were written by this epoch);
// with another request (envelope.Digest) it is a dead letter with
// CodeIdempotencyConflict.
func Process(env Env, def *Entity, topic string, stored *envelope.Envelope, ev codec.Attributes, at Arrival) Outcome {
	// A processor that died may have left the envelope in its local store
	// with writes that never reached the broker: the table record itself,
	// the outputs (events) of the commands it recorded and their id table
	// entries. The first time a new epoch touches a subject, it writes the
	// envelope again and, ahead of anything new, the recorded outputs but
	// replies, so the events topic holds every event in sequence order (a
	// view drops what is not newer than what it holds, so an event written
	// behind a later one would be lost to it), and the window's id table
	// entries. Only what the broker may lack: the outputs of commands read
	// before the epoch started reading the partition (at.Since) were
	// committed, so acknowledged. Replies are not repeated: a caller that
	// missed one sends the command again and gets it as a duplicate.
	var again []envelope.Output
	var remember []Remembered
	first := stored.Epoch != env.Epoch && stored.WindowLen() > 0
	subject := ev.Subject
	now := env.Now() // the handler's clock and its records' ce-time
	live := func(t int64) bool { return def.Retention <= 0 || t == 0 || now.UnixNano()-t <= int64(def.Retention) }
	if first {
		window := stored.Window()
		var unsure []envelope.Applied
		for _, a := range window {
			if !at.Since.Committed(a.From) {
				unsure = append(unsure, a)
			}
		}
		outs, err := render(env, def.Name, subject, unsure...)
		if err != nil {
			return dead(deadletter.ErrInternal, "subject %q: recorded outputs: %v", subject, err)
		}
		again = without(outs, env.Topics.Replies())
		if stored.Spilled {
			// The window's entries (the envelope may have reached the
			// table topic without them), and any the local copy holds
			// that the topic may lack (they may have left the window
			// since: the envelope does not know them).
			remember = rememberLive(subject, window, live)
			seen := map[string]bool{}
			for _, r := range remember {
				seen[r.Key] = true
			}
			if at.IDs != nil {
				pending, err := at.IDs.Pending(subject)
				if err != nil {
					return dead(deadletter.ErrInternal, "subject %q: id table: %v", subject, err)
				}
				for _, r := range pending {
					if !seen[r.Key] {
						remember = append(remember, r)
					}
				}
			}
		}
	}
	key := ev.Source + "\x00" + ev.ID
	hash := envelope.HashKey(key)
	digest := envelope.Digest(ev)
	var dup *envelope.Applied
	if a, ok := stored.Find(key); ok && live(a.Time) {
		if a.Digest != 0 && a.Digest != digest {
			return conflict(ev)
		}
		dup = &a
	} else if stored.Spilled && at.IDs != nil {
		data, err := at.IDs.Get(IDKey(subject, hash))
		if err != nil {
			return dead(deadletter.ErrInternal, "subject %q: id table: %v", subject, err)
		}
		if data != nil {
			a, err := envelope.DecodeApplied(data)
			if err != nil {
				return dead(deadletter.ErrInternal, "subject %q: %v", subject, err)
			}
			if live(a.Time) && (a.Key == "" || a.Key == key) {
				if a.Digest != 0 && a.Digest != digest {
					return conflict(ev)
				}
				dup = &a
				if first {
					remember = append(remember, remembered(subject, a))
				}
			}
		}
	}
	if dup != nil {
		outs, err := render(env, def.Name, subject, *dup)
		if err != nil {
			return dead(deadletter.ErrInternal, "subject %q: recorded outputs: %v", subject, err)
		}
		replies := only(outs, env.Topics.Replies())
		if !first {
			return Outcome{Outputs: replies, Duplicate: true}
		}
		restamped := *stored
		restamped.Epoch = env.Epoch
		return Outcome{Envelope: &restamped, Outputs: append(again, replies...), Remember: remember, Duplicate: true}
	}
	// A timer's fire or an ask's answer consumes the subject's timer of
	// its name; with none (replaced, cancelled, fired or answered since),
	// it is dropped. Only the runtime writes them, to the loop topic.
	timer, fire := consumed(ev)
	if timer != "" {
		if at.From.Topic != envelope.OriginLoop {
			return dead(deadletter.ErrInvalidEvent, "%s: timer fires and ask answers are accepted from the runtime's loop topic only", ev.Type)
		}
		t, ok := stored.Timer(timer)
		if !ok || fire && ev.ID != fireID(t) {
			return Outcome{Ignored: true}
		}
	}
	handlers := def.Commands
	isCommand := topic == env.Topics.Commands(def.Name)
	if !isCommand {
		handlers = def.Subscriptions[topic]
	}
	h, ok := handlers[ev.Type]
	if !ok {
		if def.IgnoreUnknown {
			return Outcome{Ignored: true}
		}
		return dead(deadletter.ErrUnknownType, "unknown type %q for entity %s on %s", ev.Type, def.Name, topic)
	}
	ctx := at.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	pending := stored.Timers
	if timer != "" {
		rest := *stored
		rest.CancelTimer(timer)
		pending = rest.Timers
	}
	in := Input{Ctx: ctx, Subject: subject, State: stored.State, Exists: stored.Exists, Seq: stored.Seq, Event: ev, Now: now, Timers: pending}
	if fire {
		in.Timer = timer
	}
	var next *envelope.Envelope
	var facts []envelope.Fact
	var job *Job
	if def.Detached > 0 && isCommand && timer == "" {
		// Recorded as applied now (a redelivery is a duplicate); the
		// handler runs off the partition goroutine.
		job = &Job{env: env, def: def, h: h, in: in, ev: ev, stop: at.Ctx}
		next = &envelope.Envelope{Seq: stored.Seq, Exists: stored.Exists, State: stored.State, Timers: stored.Timers}
	} else {
		if def.Hooks {
			in.Ctx = withHooks(ctx, Hooks{Step: env.Step})
		}
		d, failed := call(env, def, h, in)
		if failed != nil {
			return Outcome{Code: deadletter.Code(failed.Kind), DeadLetter: failed.Reason}
		}
		if d.Kind == Ignore && len(d.Publishes)+len(d.Sends)+len(d.Asks)+len(d.Timers) == 0 && timer == "" {
			return Outcome{Ignored: true}
		}
		var err error
		if next, facts, err = apply(env, def, stored, ev, d, isCommand, timer); err != nil {
			return dead(deadletter.ErrUndeclaredTarget, "%v", err)
		}
	}
	applied := envelope.Applied{Key: key, Time: now.UnixNano(), Digest: digest, Facts: facts, From: at.From}
	outs, err := render(env, def.Name, subject, applied)
	if err != nil {
		return dead(deadletter.ErrInternal, "%v", err)
	}
	next.Epoch = env.Epoch
	next.Extend(stored, applied, def.Window)
	if def.Retention > 0 && def.Kind != Stateless {
		next.Spilled = stored.Spilled
		if !next.Spilled && stored.WindowLen() >= def.Window {
			// The window overflows: from now on the subject's commands are
			// kept in the id table too, starting with the window's.
			next.Spilled = true
			remember = append(remember, rememberLive(subject, stored.Window(), live)...)
		}
		if next.Spilled {
			remember = append(remember, remembered(subject, applied))
		}
	}
	return Outcome{Envelope: next, Outputs: append(again, outs...), Remember: remember, Job: job}
}

// rememberLive is the id table entries of the commands in window still
// within the retention.
func rememberLive(subject string, window []envelope.Applied, live func(int64) bool) []Remembered {
	var out []Remembered
	for _, a := range window {
		if live(a.Time) {
			out = append(out, remembered(subject, a))
		}
	}
	return out
}

// remembered is the id table entry of a, a command of subject.
func remembered(subject string, a envelope.Applied) Remembered {
	return Remembered{Key: IDKey(subject, a.KeyHash()), Value: envelope.EncodeApplied(a)}
}

func conflict(ev codec.Attributes) Outcome {
	return dead(deadletter.ErrIdempotencyConflict,
		"%s: the command %s/%s was applied before with another request (type, content type or data); send a new id for a new request",
		CodeIdempotencyConflict, ev.Source, ev.ID)
}

// without drops the outputs to topic; only keeps them.
func without(outs []envelope.Output, topic string) []envelope.Output {
	return slices.DeleteFunc(outs, func(o envelope.Output) bool { return o.Topic == topic })
}

func only(outs []envelope.Output, topic string) []envelope.Output {
	return slices.DeleteFunc(outs, func(o envelope.Output) bool { return o.Topic != topic })
}

// call runs the handler with panic recovery, a timeout and bounded retries.
// It returns the decision, or the dead letter of the input.
func call(env Env, def *Entity, h Handler, in Input) (Decision, *deadletter.Error) {
	wait := def.Backoff
	for attempt := 0; ; attempt++ {
		d, failed := callOnce(env, def, h, in)
		if failed != nil {
			return d, failed
		}
		if d.Kind != Fail {
			return d, nil
		}
		if d.Poison {
			return d, deadletter.New(kindOf(d.Err, deadletter.ErrPermanent), d.Err.Error())
		}
		if attempt >= def.Retries {
			return d, deadletter.New(deadletter.ErrRetriesExhausted, fmt.Sprintf("handler failed %d times, last: %v", attempt+1, d.Err))
		}
		if err := env.wait(in.Ctx, wait); err != nil {
			// The worker stops or lost the partition: the command is not
			// retried here, and goes to the dead letters, not lost.
			return d, deadletter.New(deadletter.ErrCancelled,
				fmt.Sprintf("handler failed %d times and the retries were cancelled (%v), last: %v", attempt+1, err, d.Err))
		}
		wait *= 2
	}
}

// wait waits d between retries, or until ctx ends.
func (env Env) wait(ctx context.Context, d time.Duration) error {
	if env.Sleep != nil {
		env.Sleep(d)
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callOnce runs the handler once, recovering a panic. Without a timeout it
// runs on the caller's goroutine; with one, on a runner, so that a call past
// the timeout can be abandoned (a goroutine hand-off per call: see
// docs/decisions.md#performance).
func callOnce(env Env, def *Entity, h Handler, in Input) (d Decision, failed *deadletter.Error) {
	if def.Timeout <= 0 {
		defer func() {
			if p := recover(); p != nil {
				d, failed = Decision{}, panicked(p)
			}
		}()
		return h(in), nil
	}
	ctx, cancel := context.WithTimeout(in.Ctx, def.Timeout)
	defer cancel()
	in.Ctx = ctx
	type result struct {
		d      Decision
		failed *deadletter.Error
	}
	done := make(chan result, 1)
	env.Runners.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{failed: panicked(p)}
			}
		}()
		done <- result{d: h(in)}
	})
	timer := time.NewTimer(def.Timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.d, r.failed
	case <-timer.C:
		// The handler goroutine is abandoned; its result is dropped.
		return Decision{}, deadletter.New(deadletter.ErrTimeout, fmt.Sprintf("handler did not return within %v", def.Timeout))
	}
}

func panicked(p any) *deadletter.Error {
	return deadletter.New(deadletter.ErrPanic, fmt.Sprintf("handler panicked: %v\n%s", p, debug.Stack()))
}

// dead is the Outcome of a dead letter of kind.
func dead(kind error, format string, args ...any) Outcome {
	return Outcome{Code: deadletter.Code(kind), DeadLetter: fmt.Sprintf(format, args...)}
}

// apply turns a decision into the next envelope and the facts of the
// records to write (see render).
//
// timer is the subject's timer the command consumes ("" for none).
func apply(env Env, def *Entity, stored *envelope.Envelope, cmd codec.Attributes, d Decision, isCommand bool, timer string) (*envelope.Envelope, []envelope.Fact, error) {
	next := &envelope.Envelope{Seq: stored.Seq, Exists: stored.Exists, State: stored.State, Timers: stored.Timers}
	subject := cmd.Subject
	var facts []envelope.Fact
	if def.Kind == Stateless && (d.Kind == Update || d.Kind == Delete || d.Kind == Persist) {
		return nil, nil, fmt.Errorf("%s is a consumer: it has no state to update, delete or persist events to", def.Name)
	}
	if def.Kind == Stateless && len(d.Timers)+len(d.Asks) > 0 {
		return nil, nil, fmt.Errorf("%s is a consumer: it has no subject to keep timers or asks with", def.Name)
	}
	if timer != "" {
		next.CancelTimer(timer)
	}
	now := env.Now()
	var ref string // the command's source "/" id; what timers and asks need only
	if len(d.Timers)+len(d.Asks) > 0 {
		ref = cmd.Source + "/" + cmd.ID
	}
	for _, op := range d.Timers {
		switch {
		case op.Name == "":
			return nil, nil, fmt.Errorf("entity %s: a timer needs a name", def.Name)
		case op.Cancel:
			next.CancelTimer(op.Name)
		case def.Commands[op.Command] == nil:
			return nil, nil, fmt.Errorf("entity %s: timer %q delivers %q, which is not a command of the entity", def.Name, op.Name, op.Command)
		default:
			due := now.Add(op.After).UnixNano()
			next.SetTimer(envelope.Timer{Name: op.Name, Due: due, ID: timerID(ref, op.Name, due),
				Command: op.Command, ContentType: op.ContentType, Data: op.Data})
		}
	}
	switch d.Kind {
	case Update:
		if def.Kind != KeyValue {
			return nil, nil, fmt.Errorf("entity %s is event-sourced: a handler cannot update its state directly", def.Name)
		}
		next.Seq++
		next.Exists, next.State = true, d.State
	case Delete:
		next.Seq++
		next.Exists, next.State = false, nil
	case Persist:
		if def.Kind != EventSourced {
			return nil, nil, fmt.Errorf("entity %s is key-value: a handler cannot persist events", def.Name)
		}
		for _, oe := range d.Events {
			next.Seq++
			facts = append(facts, envelope.Fact{Kind: envelope.FactEvent, Type: oe.Type, Seq: next.Seq, ContentType: oe.ContentType, Data: oe.Data})
		}
		next.Exists, next.State = true, d.State
	default:
		if def.Kind != Stateless && len(d.Publishes)+len(d.Sends)+len(d.Asks) > 0 {
			// What it publishes or sends carries a sequence number of its
			// own, so that a receiver can tell it from the next one.
			next.Seq++
		}
	}
	for _, p := range d.Publishes {
		if !slices.Contains(def.PublishTopics, p.Topic) {
			return nil, nil, fmt.Errorf("entity %s publishes to %s, which it did not declare (entities.PublishesTo)", def.Name, p.Topic)
		}
		subj := p.Subject
		if subj == "" {
			subj = subject
		}
		if err := checkSubject(subj); err != nil {
			return nil, nil, fmt.Errorf("entity %s publishes to %s: %w", def.Name, p.Topic, err)
		}
		facts = append(facts, envelope.Fact{Kind: envelope.FactPublish, Target: p.Topic, Type: p.Type, Subject: subj, Seq: next.Seq, ContentType: p.ContentType, Data: p.Data})
	}
	for _, s := range d.Sends {
		if !slices.Contains(def.SendsTo, s.Entity) {
			return nil, nil, fmt.Errorf("entity %s sends to entity %s, which it did not declare (entities.SendsTo)", def.Name, s.Entity)
		}
		if err := checkSubject(s.Subject); err != nil {
			return nil, nil, fmt.Errorf("entity %s sends to %s: %w", def.Name, s.Entity, err)
		}
		facts = append(facts, envelope.Fact{Kind: envelope.FactSend, Target: s.Entity, Type: s.Command, Subject: s.Subject, Seq: next.Seq, ContentType: s.ContentType, Data: s.Data})
	}
	for i, a := range d.Asks {
		if !slices.Contains(def.SendsTo, a.Entity) {
			return nil, nil, fmt.Errorf("entity %s asks entity %s, which it did not declare (entities.SendsTo)", def.Name, a.Entity)
		}
		if err := checkSubject(a.Subject); err != nil {
			return nil, nil, fmt.Errorf("entity %s asks %s: %w", def.Name, a.Entity, err)
		}
		for _, c := range []string{a.OnReply, a.OnError, a.OnTimeout} {
			if def.Commands[c] == nil {
				return nil, nil, fmt.Errorf("entity %s asks %s: %q is not a command of the entity (an ask needs its reply, error and timeout commands)", def.Name, a.Entity, c)
			}
		}
		facts = append(facts, envelope.Fact{Kind: envelope.FactAsk, Target: askTarget(a), Type: a.Command, Subject: a.Subject, Seq: next.Seq, ContentType: a.ContentType, Data: a.Data})
		source, id := sendRef(env.Topics, def.Name, subject, ref, len(d.Sends)+i)
		due := now.Add(a.Timeout).UnixNano()
		next.SetTimer(envelope.Timer{Name: AskTimer(source + "/" + id), Due: due, ID: timerID(ref, source+"/"+id, due),
			Command: a.OnTimeout, ContentType: "application/json", Data: AskError{Code: CodeTimeout, Message: fmt.Sprintf("no answer from %s within %v", a.Entity, a.Timeout),
				Entity: a.Entity, Subject: a.Subject, Command: a.Command}.data()})
	}
	if isCommand && asked(cmd) {
		var fail *AskError
		if d.Kind == Error {
			fail = &AskError{Code: d.ErrCode, Message: d.ErrMsg, Entity: def.Name}
		}
		facts = append(facts, answerFact(cmd, d.Reply, fail))
	}
	if isCommand && cmd.WantsReply() {
		f := envelope.Fact{Kind: envelope.FactReply, Seq: next.Seq, ContentType: "application/json", Data: d.Reply}
		if d.Kind == Error {
			f.Type = d.ErrCode
			f.Data, _ = json.Marshal(map[string]string{"code": d.ErrCode, "message": d.ErrMsg})
		}
		if f.Data == nil {
			f.Data = json.RawMessage("{}")
		}
		facts = append(facts, f)
	}
	return next, facts, nil
}

// timerID is the ID of the timer name that the command with ref starts,
// due at due (Unix nanoseconds). The due time makes it unique per
// scheduling even when the command is applied again (a crash lost its
// first application from the local store after the runtime had fired the
// timer from there, or it came again after the retention): a fire of the
// first scheduling still in flight then finds another ID and is dropped,
// instead of firing the timer started again before its due time.
func timerID(ref, name string, due int64) uint64 {
	return envelope.HashKey(ref+"\x00"+name+"\x00"+strconv.FormatInt(due, 10)) | 1
}

// ReplyKey is the Kafka key of the reply to the command with source and id.
func ReplyKey(source, id string) string { return source + "/" + id }

// checkSubject refuses a subject Partita cannot route: empty, or holding
// the NUL byte that separates the subject in id table keys (see IDKey).
func checkSubject(subject string) error {
	if subject == "" {
		return errors.New("the subject is empty")
	}
	if strings.IndexByte(subject, 0) >= 0 {
		return fmt.Errorf("the subject %q holds a NUL byte, which Partita reserves", subject)
	}
	return nil
}

// Reply types.
const (
	TypeReply = "partita.reply"
	TypeError = "partita.error"
)

// render writes the records of recorded commands of entity about subject:
// the same records, ids and times each time, so a repeated one is a
// duplicate its receiver recognizes. Entries written before facts
// (envelope versions 1 and 2) hold the records themselves.
func render(env Env, entity, subject string, window ...envelope.Applied) ([]envelope.Output, error) {
	var outs []envelope.Output
	var source string
	for _, a := range window {
		if len(a.Facts) == 0 {
			outs = append(outs, a.Outputs...)
			continue
		}
		if source == "" {
			source = env.Topics.Source(entity)
		}
		cmdSource, cmdID, _ := strings.Cut(a.Key, "\x00")
		cmdRef := cmdSource + "/" + cmdID
		now := time.Unix(0, a.Time).UTC()
		var publishes, sends int
		for _, f := range a.Facts {
			var e codec.Event
			var topic string
			seq := strconv.FormatUint(f.Seq, 10)
			switch f.Kind {
			case envelope.FactEvent:
				topic = env.Topics.Events(entity)
				e = newEvent(source, subject+":"+seq, f.Type, subject, now)
				e.SetExtension(codec.ExtSequence, seq)
			case envelope.FactPublish:
				topic = f.Target
				e = newEvent(source, fmt.Sprintf("%s:%s:publish-%d", subject, cmdRef, publishes), f.Type, f.Subject, now)
				e.SetExtension(codec.ExtSequence, seq)
				publishes++
			case envelope.FactSend, envelope.FactAsk:
				target := f.Target
				var reply, onError string
				if f.Kind == envelope.FactAsk {
					var rest string
					target, rest, _ = cutNUL(f.Target)
					reply, onError, _ = cutNUL(rest)
				}
				topic = env.Topics.Commands(target)
				src, id := sendRef(env.Topics, entity, subject, cmdRef, sends)
				e = newEvent(src, id, f.Type, f.Subject, now)
				if f.Seq > 0 {
					e.SetExtension(codec.ExtSequence, seq)
				}
				if f.Kind == envelope.FactAsk {
					e.SetExtension(codec.ExtAskFrom, entity)
					e.SetExtension(codec.ExtAskSubject, subject)
					e.SetExtension(codec.ExtAskReply, reply)
					e.SetExtension(codec.ExtAskError, onError)
				}
				sends++
			case envelope.FactAnswer:
				o, err := answerRecord(env.Topics, entity, cmdRef, f, now)
				if err != nil {
					return nil, err
				}
				outs = append(outs, o)
				continue
			case envelope.FactReply:
				topic = env.Topics.Replies()
				e = newEvent(source, "reply:"+cmdRef, TypeReply, subject, now)
				e.SetExtension(codec.ExtRequest, cmdID)
				e.SetExtension(codec.ExtRequestSource, cmdSource)
				e.SetExtension(codec.ExtSequence, seq)
				e.SetExtension(codec.ExtPosition, topics.Position{Entity: entity, Subject: subject, Seq: f.Seq}.Token())
				if f.Type != "" {
					e.SetType(TypeError)
					e.SetExtension(codec.ExtErrorCode, f.Type)
				}
			default:
				return nil, fmt.Errorf("%w: a recorded output of unknown kind %d", envelope.ErrUnreadable, f.Kind)
			}
			setData(&e, f.ContentType, f.Data)
			r, err := codec.EncodeEvent(e)
			if err != nil {
				return nil, fmt.Errorf("encode output for %s: %w", topic, err)
			}
			if f.Kind == envelope.FactReply {
				r.Key = []byte(ReplyKey(cmdSource, cmdID))
			}
			outs = append(outs, envelope.Output{Topic: topic, Record: r})
		}
	}
	return outs, nil
}

func newEvent(source, id, typ, subject string, now time.Time) codec.Event {
	e := codec.NewEvent()
	e.SetSource(source)
	e.SetID(id)
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetTime(now)
	return e
}

func setData(e *codec.Event, contentType string, data []byte) {
	e.SetDataContentType(contentType)
	e.DataEncoded = data
}
