// Package partitatest runs an application's entities
// and views in memory, with no broker, and injects what at-least-once
// delivery does to them. It is named partitatest so that it does not clash
// with the standard library's testing package at the call site.
//
// The harness simulates Kafka's parts that matter to handlers: topics with
// partitions and offsets, one consumer group per entity and view with
// committed offsets, writes that land only when the broker acknowledges
// them, group tables kept in a local store that a crash can leave ahead of
// the table topic (as goka's LevelDB), and Partita's murmur2 partitioner. Every record goes through the same code
// as in production (core.HandleEntity and core.HandleView: decoding,
// re-routing, dedup, sequence numbers, effects, dead letters); only the
// transport is in memory, so the harness cannot drift from the runtime.
//
// Faults, each explicit: [Redeliver] an earlier command behind newer ones,
// send it [Duplicated] or [Misrouted] onto another partition, let a view lag
// ([Harness.LagView]) so reads are stale, or an entity
// ([Harness.LagEntity]) so its askers time out, [Harness.Crash] a group's
// worker (writes in flight lost, uncommitted records replayed), make a
// handler fail n times ([Harness.FailNext]); or all of them interleaved at
// random from a seed ([Harness.RunSchedule]), timers and asks included, on
// the harness's virtual clock ([Harness.Advance]).
//
// Contract: a Harness is deterministic (fixed clock, fixed delivery order
// unless a schedule's seed says otherwise) and not safe for concurrent use.
// After each call that delivers (Send, Publish, Redeliver, Crash, CatchUp),
// every group that is not lagging has processed everything it can.
package partitatest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/internal/viewstore"
)

// Part is an entity (package entities) or a view (package views), as
// processor.Part.
type Part interface {
	Name() string
	Definition() any
}

// Option configures a Harness.
type Option func(*Harness)

// Partitions sets the partition count of every topic (default 4).
func Partitions(n int32) Option { return func(h *Harness) { h.n = n } }

// TopicPartitions says that the external topic (one an entity subscribes
// to or a view reads, which Partita does not create) has n partitions
// (default: as many as every other topic). A group's topics must have
// equal counts, so one that differs is refused with the runtime's
// message, as the worker refuses it at start-up.
func TopicPartitions(topic string, n int32) Option {
	return func(h *Harness) { h.external[topic] = n }
}

// CommitEvery sets after how many records a group commits its offsets
// (default 1: after every record). A larger value leaves more to replay
// after a Crash.
func CommitEvery(n int) Option { return func(h *Harness) { h.commitEvery = n } }

// Harness runs an application in memory.
type Harness struct {
	topics      topics.Names
	n           int32
	external    map[string]int32 // external topics' partition counts (TopicPartitions)
	commitEvery int
	logs        map[string][][]codec.Record // topic -> partition -> records
	groups      []*group
	byName      map[string]*group
	now         time.Time
	seq         int
	failNext    map[string]int // "<entity>/<type>" -> failures left
	sent        map[string]sentCommand
	duplicates  map[string]bool // command id -> its last delivery was a duplicate
	dead        map[string]bool // command source+NUL+id -> its last delivery was dead-lettered
	violations  []string
	delivered   int
	sched       *ledger // during RunSchedule: every command applied, and when (see schedule.go)
}

// write is a record a group has produced and the broker has not yet
// acknowledged: it lands at the group's next commit, or when everything is
// quiet, and a crash before then loses it.
type write struct {
	topic string
	p     int32
	rec   codec.Record
}

type sentCommand struct {
	topic     string
	partition int32
	record    codec.Record
}

// group is one consumer group: an entity, a consumer or a view.
type group struct {
	name      string
	entity    *core.Entity
	view      *core.View
	sources   map[string]*core.ViewSource
	inputs    []string
	loop      string
	table     map[string][]byte  // the group's local store (goka's LevelDB)
	ids       *idTable           // an entity's local copy of its id table (nil: none)
	starts    map[string][]int64 // where the current epoch started reading each input (the committed offsets at its start)
	unflushed []write            // writes produced but not yet acknowledged
	volatile  []string           // during RunSchedule: the "<entity>/<subject>" of each application in the store whose state is not yet on the table topic
	pos       map[string][]int64
	committed map[string][]int64
	since     int
	epoch     uint64 // the run of the group's processor: a new one after each crash
	lagging   bool
	store     *viewstore.Store
	seen      map[string]map[string]uint64 // view rows: the sequences last stored
}

// New returns a harness running the given entities and views of an
// application named "app". A part that is neither is an error.
func New(parts ...Part) (*Harness, error) { return NewWith(nil, parts...) }

// Start is New for tests: it fails tb if the parts are wrong.
func Start(tb testing.TB, parts ...Part) *Harness {
	tb.Helper()
	h, err := New(parts...)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// NewWith is New with options.
func NewWith(opts []Option, parts ...Part) (*Harness, error) {
	h := &Harness{
		topics: topics.Names{App: "app"}, n: 4, commitEvery: 1,
		logs:   map[string][][]codec.Record{},
		byName: map[string]*group{}, failNext: map[string]int{}, external: map[string]int32{},
		sent: map[string]sentCommand{}, duplicates: map[string]bool{}, dead: map[string]bool{},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, o := range opts {
		o(h)
	}
	// The worker's check and topology (processor.New): the same
	// applications refused with the same messages, the same topics read.
	named := make([]interface{ Name() string }, len(parts))
	for i, p := range parts {
		named[i] = p
	}
	topo, err := core.NewTopology(h.topics.App, named)
	if err != nil {
		return nil, fmt.Errorf("partitatest: %w", err)
	}
	counts := map[string]int32{}
	for _, t := range topo.Topics() {
		counts[t.Name] = h.n
		if n, ok := h.external[t.Name]; ok && t.External {
			counts[t.Name] = n
		}
	}
	if _, err := topo.CheckPartitions(counts); err != nil {
		return nil, fmt.Errorf("partitatest: %w", err)
	}
	for _, tg := range topo.Groups {
		g := &group{name: tg.Name, view: tg.View, sources: tg.ViewSources, inputs: tg.Inputs(), loop: tg.Loop,
			epoch: 1, table: map[string][]byte{}, pos: map[string][]int64{}, committed: map[string][]int64{}}
		if tg.Entity != nil {
			g.entity = h.instrument(tg.Entity)
		}
		if tg.IDs != "" {
			g.ids = newIDTable(nil)
		}
		if tg.View != nil {
			store, err := viewstore.OpenMemory(g.view.Indexes...)
			if err != nil {
				return nil, err
			}
			g.store = store
		}
		if g.loop != "" {
			g.inputs = append(g.inputs, g.loop)
		}
		for _, t := range g.inputs {
			g.pos[t] = make([]int64, h.n)
			g.committed[t] = make([]int64, h.n)
		}
		h.groups = append(h.groups, g)
		h.byName[g.name] = g
	}
	return h, nil
}

// instrument wraps every handler so FailNext can make it fail.
func (h *Harness) instrument(def *core.Entity) *core.Entity {
	d := *def
	wrap := func(typ string, hd core.Handler) core.Handler {
		key := d.Name + "/" + typ
		return func(in core.Input) core.Decision {
			if h.failNext[key] > 0 {
				h.failNext[key]--
				return core.Decision{Kind: core.Fail, Err: fmt.Errorf("partitatest: injected failure of %s", key)}
			}
			return hd(in)
		}
	}
	d.Commands = map[string]core.Handler{}
	for typ, hd := range def.Commands {
		d.Commands[typ] = wrap(typ, hd)
	}
	d.Subscriptions = map[string]map[string]core.Handler{}
	for topic, hs := range def.Subscriptions {
		d.Subscriptions[topic] = map[string]core.Handler{}
		for typ, hd := range hs {
			d.Subscriptions[topic][typ] = wrap(typ, hd)
		}
	}
	return &d
}

// Advance moves the harness clock forward by d, firing the timers (and
// the timeouts of asks) that fall due on the way, in due order, each at
// its due time: as the runtime would, the fire is written to the entity's
// loop topic (through the entity's producer: a crash before it lands
// loses it) and delivered like any command. Groups that are lagging
// ([Harness.LagEntity]) keep their fires until they run again; a timer
// still pending at the next Advance fires again, as the runtime writes a
// fire again while its timer is pending (the repeat is dropped).
func (h *Harness) Advance(d time.Duration) { h.advance(d, nil, func() { h.settle(nil) }) }

// advance is Advance with what happens after each fire is written (the
// harness settles, a schedule delivers a few records at random) and the
// timers already fired, not to fire again (nil: none).
func (h *Harness) advance(d time.Duration, fired map[string]bool, after func()) {
	end := h.now.Add(d)
	if fired == nil {
		fired = map[string]bool{}
	}
	for {
		g, subject, t, ok := h.nextTimer(end, fired)
		if !ok {
			break
		}
		fired[g.name+"\x00"+subject+"\x00"+t.Name+"\x00"+strconv.FormatUint(t.ID, 16)] = true
		if due := time.Unix(0, t.Due); due.After(h.now) {
			h.now = due
		}
		rec := core.FireRecord(h.topics, g.name, subject, t)
		// Through the group's producer, as the runtime writes it: a crash
		// before it lands loses it, and the timer fires again.
		g.unflushed = append(g.unflushed, write{topic: g.loop, p: h.partition(rec.Key), rec: rec})
		if h.sched != nil {
			h.sched.fires++
		}
		after()
	}
	if end.After(h.now) {
		h.now = end
	}
}

// nextTimer is the pending timer due first, no later than end, that has
// not fired in this Advance (fired: by group, subject, name and ID).
func (h *Harness) nextTimer(end time.Time, fired map[string]bool) (g *group, subject string, t envelope.Timer, ok bool) {
	for _, cand := range h.groups {
		if cand.entity == nil || cand.entity.Kind == core.Stateless {
			continue
		}
		for key, data := range cand.table {
			if !envelope.HasTimers(data) {
				continue
			}
			env, err := envelope.DecodeEnvelope(data)
			if err != nil {
				continue
			}
			for _, tm := range env.Timers {
				if tm.Due > end.UnixNano() || fired[cand.name+"\x00"+key+"\x00"+tm.Name+"\x00"+strconv.FormatUint(tm.ID, 16)] {
					continue
				}
				if !ok || tm.Due < t.Due || tm.Due == t.Due && (cand.name+key+tm.Name) < (g.name+subject+t.Name) {
					g, subject, t, ok = cand, key, tm, true
				}
				break // sorted by due time: the first one not fired is this subject's next
			}
		}
	}
	return g, subject, t, ok
}

func (h *Harness) env(g *group) core.Env {
	// The records a group writes are bounded as the runtime's producer
	// bounds them (sarama's default).
	return core.Env{Topics: h.topics, Now: func() time.Time { return h.now }, Sleep: func(time.Duration) {}, Epoch: g.epoch, MaxRecord: 1 << 20}
}

// partition is where Partita's partitioner puts key.
func (h *Harness) partition(key []byte) int32 { return murmur2.Partition(key, h.n) }

// append writes r to topic's partition p and returns its offset.
func (h *Harness) append(topic string, p int32, r codec.Record) int64 {
	parts := h.logs[topic]
	if parts == nil {
		parts = make([][]codec.Record, h.n)
		h.logs[topic] = parts
	}
	parts[p] = append(parts[p], r)
	return int64(len(parts[p]) - 1)
}

// pending lists the (group, topic, partition) that have records to process.
type cursor struct {
	g     *group
	topic string
	p     int32
}

func (h *Harness) pending(includeLagging bool) []cursor {
	var out []cursor
	for _, g := range h.groups {
		if g.lagging && !includeLagging {
			continue
		}
		for _, t := range g.inputs {
			for p := range h.n {
				if g.pos[t][p] < h.size(t, p) {
					out = append(out, cursor{g, t, p})
				}
			}
		}
	}
	return out
}

// settle delivers until no group that is not lagging has anything left and
// every write has landed; pick chooses which of the pending cursors to step
// next (nil: all of them in turn).
func (h *Harness) settle(pick func([]cursor) []cursor) {
	for {
		if cs := h.pending(false); len(cs) > 0 {
			if pick != nil {
				cs = pick(cs)
			}
			for _, c := range cs {
				h.step(c)
			}
			continue
		}
		landed := false
		for _, g := range h.groups {
			landed = len(g.unflushed) > 0 || landed
			h.flush(g)
		}
		if !landed {
			return
		}
	}
}

// step delivers the next record at c.
func (h *Harness) step(c cursor) {
	g, off := c.g, c.g.pos[c.topic][c.p]
	rec := h.logs[c.topic][c.p][off]
	d := core.Delivery{Topic: c.topic, Partition: c.p, Offset: off, Record: rec, Loop: g.loop, Partitions: h.n}
	stateful := g.view != nil || g.entity.Kind != core.Stateless
	if stateful {
		d.Stored = g.table[string(rec.Key)]
	}
	if g.ids != nil {
		d.IDs = g.ids
	}
	if g.entity != nil && g.entity.Kind != core.Stateless && g.starts != nil {
		d.Since = envelope.Since{0, g.starts[h.topics.Commands(g.name)][c.p], g.starts[g.loop][c.p]}
	}
	var a core.Actions
	if g.view != nil {
		a = core.HandleView(h.env(g), g.view, g.sources, d)
	} else {
		a = core.HandleEntity(h.env(g), g.entity, d)
	}
	h.delivered++
	command := c.topic == h.topics.Commands(g.name) ||
		c.topic == g.loop && string(rec.Headers[topics.HeaderOriginTopic]) == h.topics.Commands(g.name)
	if ev, err := codec.DecodeEvent(rec); err == nil && command && a.Loopback == nil {
		h.dead[ev.Source()+"\x00"+ev.ID()] = a.DeadLetter != nil
		if a.DeadLetter == nil {
			h.duplicates[ev.ID()] = a.Duplicate
		}
		if h.sched != nil && a.DeadLetter == nil {
			k := g.name + "/" + ev.Subject()
			timer, consumes := consumedTimer(ev)
			switch {
			case stateful && a.Store == nil && !a.Duplicate:
				// Dropped on purpose: a fire or an answer whose timer is gone
				// (replaced, cancelled, fired or answered since), or an
				// ignored command.
				if consumes {
					h.sched.dropped++
				}
			case h.sched.deliver(h, g, k, ev.ID(), a.Duplicate):
				g.volatile = append(g.volatile, k)
				if consumes {
					h.checkConsumed(g, k, ev, timer, d.Stored)
				}
			}
		}
	}
	produce := func(topic string, p int32, r codec.Record) {
		g.unflushed = append(g.unflushed, write{topic: topic, p: p, rec: r})
	}
	switch {
	case a.Loopback != nil:
		produce(g.loop, h.partition(a.Loopback.Key), *a.Loopback)
	case a.DeadLetter != nil:
		produce(h.topics.DeadLetters(), h.partition(a.DeadLetter.Key), *a.DeadLetter)
		if a.Store != nil { // a dead-lettered fire's timer, consumed
			g.table[string(rec.Key)] = a.Store
			produce(h.topics.Table(g.name), c.p, codec.Record{Key: rec.Key, Value: a.Store})
		}
		for _, o := range a.Outputs { // an asked command's answer
			produce(o.Topic, h.partition(o.Record.Key), o.Record)
		}
	default:
		if a.Store != nil {
			// Like goka: the local store first, the table topic when the
			// write is acknowledged.
			g.table[string(rec.Key)] = a.Store
			produce(h.topics.Table(g.name), c.p, codec.Record{Key: rec.Key, Value: a.Store})
		}
		for _, m := range a.Remember {
			// The local copy at once, the id table's topic when acknowledged.
			g.ids.entries[m.Key] = m.Value
			g.ids.pending[m.Key] = m.Value
			produce(h.topics.IDs(g.name), c.p, codec.Record{Key: []byte(m.Key), Value: m.Value})
		}
		for _, o := range a.Outputs {
			produce(o.Topic, h.partition(o.Record.Key), o.Record)
		}
		if a.Job != nil {
			// A detached run (a workflow's activity) runs at once; what it
			// writes is lost with a crash before it lands, as in the runtime.
			a.Job.Run(func(o envelope.Output) { produce(o.Topic, h.partition(o.Record.Key), o.Record) })
		}
	}
	g.pos[c.topic][c.p] = off + 1
	g.since++
	if g.since >= h.commitEvery {
		h.commit(g)
	}
}

// consumedTimer is the name of the subject's timer that ev, a fire or an
// ask's answer, consumes (see core.Process); ok is false for any other
// command.
func consumedTimer(ev codec.Event) (name string, ok bool) {
	ext := ev.Extensions()
	if n, ok := ext[codec.ExtTimer]; ok {
		return fmt.Sprint(n), true
	}
	if ref, ok := ext[codec.ExtAsk]; ok {
		return core.AskTimer(fmt.Sprint(ref)), true
	}
	return "", false
}

// checkConsumed holds an applied fire or answer (ev, consuming the timer
// named timer of subject k) to the timer stored before it: the timer was
// pending, and a fire comes no earlier than its due time.
func (h *Harness) checkConsumed(g *group, k string, ev codec.Event, timer string, stored []byte) {
	env, err := envelope.DecodeEnvelope(stored)
	if err != nil {
		return
	}
	t, ok := env.Timer(timer)
	_, fire := ev.Extensions()[codec.ExtTimer]
	switch {
	case !ok:
		h.violations = append(h.violations, fmt.Sprintf("%s: %s %s was applied, but its timer %s was not pending", k, ev.Type(), ev.ID(), timer))
	case fire && h.now.UnixNano() < t.Due:
		h.violations = append(h.violations, fmt.Sprintf("%s: timer %s fired %v before its due time %v (fire %s applied at %v)",
			k, timer, time.Unix(0, t.Due).Sub(h.now), time.Unix(0, t.Due).UTC(), ev.ID(), h.now))
	}
	h.sched.consumes[k+"\x00"+ev.ID()] = timer
}

// flush lands a group's writes; a view's store reads its table topic, so it
// applies each row as it lands, checking that no row moves backwards.
func (h *Harness) flush(g *group) {
	table := h.topics.Table(g.name)
	landed := map[string]bool{}
	for _, w := range g.unflushed {
		h.append(w.topic, w.p, w.rec)
		if w.topic == table {
			landed[g.name+"/"+string(w.rec.Key)] = true
		}
		if g.ids != nil && w.topic == h.topics.IDs(g.name) {
			delete(g.ids.pending, string(w.rec.Key)) // read back from the topic
		}
		if g.view == nil || w.topic != table {
			continue
		}
		key := string(w.rec.Key)
		if err := g.store.Apply([]viewstore.Record{{ID: key, Envelope: w.rec.Value, Partition: w.p, Time: h.now}}); err != nil {
			h.violations = append(h.violations, fmt.Sprintf("view %s: apply %s: %v", g.name, key, err))
		}
		h.checkMonotonic(g, key, w.rec.Value)
	}
	g.unflushed = nil
	// The applications whose subject's state just landed are durable; those
	// of other subjects are not: after a crash that kept the local store,
	// they are in the store only, until their subject's state is written
	// again.
	g.volatile = slices.DeleteFunc(g.volatile, func(k string) bool { return landed[k] })
}

// commit lands the group's writes, then commits its offsets (goka commits
// an offset once the writes of its record are acknowledged).
func (h *Harness) commit(g *group) {
	h.flush(g)
	for t, ps := range g.pos {
		copy(g.committed[t], ps)
	}
	g.since = 0
}

// crash kills the group's worker: writes not yet acknowledged are lost and
// the group resumes from its committed offsets. On the same worker
// (restore false) the local store still holds what it wrote, ahead of the
// table topic; on another worker (restore true) the store is restored from
// the table topic.
func (h *Harness) crash(g *group, restore bool) {
	if restore && h.sched != nil {
		// Applications whose state never reached the table topic are undone,
		// newest first: they are the last of their subjects'.
		for _, k := range slices.Backward(g.volatile) {
			h.sched.undo(k)
		}
	}
	if restore {
		g.volatile = nil
	}
	g.unflushed = nil
	g.epoch++
	g.starts = map[string][]int64{}
	for t, ps := range g.committed {
		copy(g.pos[t], ps)
		g.starts[t] = slices.Clone(ps)
	}
	g.since = 0
	if restore {
		g.table = h.restore(h.topics.Table(g.name))
		if g.ids != nil {
			g.ids = newIDTable(h.restore(h.topics.IDs(g.name)))
		}
	}
}

// idTable is a group's local copy of its id table, with the entries it
// wrote that have not landed on the topic (as processor's idCopy marks them).
type idTable struct {
	entries, pending map[string][]byte
}

func newIDTable(entries map[string][]byte) *idTable {
	if entries == nil {
		entries = map[string][]byte{}
	}
	return &idTable{entries: entries, pending: map[string][]byte{}}
}

func (t *idTable) Get(key string) ([]byte, error) { return t.entries[key], nil }

func (t *idTable) Pending(subject string) ([]core.Remembered, error) {
	var out []core.Remembered
	for k, v := range t.pending {
		if strings.HasPrefix(k, subject+"\x00") {
			out = append(out, core.Remembered{Key: k, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b core.Remembered) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// idEntries are the entries of the group's id table copy (nil: none).
func (g *group) idEntries() map[string][]byte {
	if g.ids == nil {
		return nil
	}
	return g.ids.entries
}

// restore reads a table topic: the latest value of each key.
func (h *Harness) restore(topic string) map[string][]byte {
	out := map[string][]byte{}
	for _, part := range h.logs[topic] {
		for _, r := range part {
			if r.Value == nil {
				delete(out, string(r.Key))
			} else {
				out[string(r.Key)] = r.Value
			}
		}
	}
	return out
}

// checkDurable records a violation for every key whose value in a group's
// local store is not the latest on its table topic: a worker restoring the
// group from the topic would lose that write.
func (h *Harness) checkDurable() {
	for _, g := range h.groups {
		if g.view == nil && g.entity.Kind == core.Stateless {
			continue
		}
		topic := h.restore(h.topics.Table(g.name))
		for k, v := range g.table {
			if string(topic[k]) != string(v) {
				h.violations = append(h.violations, fmt.Sprintf("%s: the table topic does not hold the state of %q that the group's store holds; a worker restoring from it would lose a write", g.name, k))
			}
		}
		ids := h.restore(h.topics.IDs(g.name))
		for k, v := range g.idEntries() {
			if string(ids[k]) != string(v) && !h.expired(g, v) {
				h.violations = append(h.violations, fmt.Sprintf("%s: the id table topic does not hold the entry %q that the group's copy holds; a worker restoring from it could apply a command twice", g.name, k))
			}
		}
	}
}

// expired reports whether an entity's id table entry is older than the
// entity's retention: Process forgets it, so whether the topic holds it
// makes no difference (a new epoch does not write expired entries again).
func (h *Harness) expired(g *group, entry []byte) bool {
	if g.entity == nil || g.entity.Retention <= 0 {
		return false
	}
	a, err := envelope.DecodeApplied(entry)
	return err == nil && a.Time != 0 && h.now.UnixNano()-a.Time > int64(g.entity.Retention)
}

// size is the number of records in topic's partition p.
func (h *Harness) size(topic string, p int32) int64 {
	if parts := h.logs[topic]; parts != nil {
		return int64(len(parts[p]))
	}
	return 0
}

// checkMonotonic records a violation if a view row's sequence numbers went
// backwards: the row would show an older state than it showed before.
func (h *Harness) checkMonotonic(g *group, key string, value []byte) {
	var env core.RowEnvelope
	if json.Unmarshal(value, &env) != nil {
		return
	}
	if g.seen == nil {
		g.seen = map[string]map[string]uint64{}
	}
	last := g.seen[key]
	for k, s := range env.Seqs {
		if s < last[k] {
			h.violations = append(h.violations, fmt.Sprintf("view %s row %s went back from sequence %d to %d", g.name, key, last[k], s))
		}
	}
	g.seen[key] = env.Seqs
}
