package processor

import (
	"bytes"
	"container/heap"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// TimerObserver, implemented by a Config.Observe, also receives each
// timer fire with its lateness: how long after its due time the runtime
// wrote it (the fire is applied once the entity reads it back, in order
// with the subject's other commands).
type TimerObserver interface {
	TimerFired(entity string, lateness time.Duration)
}

// TimerStats counts an entity's pending timers in this worker (asks
// waiting for their answer included), and those of them past due.
type TimerStats struct {
	Pending int `json:"pending"`
	Overdue int `json:"overdue"`
}

// refire is how long after writing a fire the scheduler writes it again
// when its timer is still pending (the write failed, or the partition moved
// and back): a repeated fire is a duplicate, and a stale one is dropped.
const refire = 30 * time.Second

// timers schedules the fires of one entity processor's timers: the
// pending timers of the subjects of its assigned partitions, in memory,
// loaded from the partition's table once goka has restored it
// (MarkRecovered) and kept up to date by the handler from each envelope it
// stores. When a timer is due, it writes core.FireRecord to the entity's
// loop topic through the processor's producer; the processor applies it
// like a command (core.Process consumes the timer). Timers of partitions
// the worker does not own (a rebalance, hot standby copies) are not fired.
type timers struct {
	entity string
	names  topics.Names
	log    *slog.Logger
	obs    TimerObserver

	mu        sync.Mutex
	assigned  map[int32]bool
	recovered map[int32]storage.Storage             // table partitions restored, by partition
	pending   map[int32]map[string][]envelope.Timer // partition -> subject -> timers
	queue     timerQueue                            // every pending timer once at least; stale entries are skipped
	count     atomic.Int64                          // pending timers
	wake      chan struct{}
	stop      chan struct{}
}

func newTimers(entity string, names topics.Names, log *slog.Logger, obs Observer) *timers {
	t := &timers{entity: entity, names: names, log: log, assigned: map[int32]bool{}, recovered: map[int32]storage.Storage{},
		pending: map[int32]map[string][]envelope.Timer{}, wake: make(chan struct{}, 1)}
	t.obs, _ = obs.(TimerObserver)
	return t
}

// queued is a timer in the queue: due (Unix nanoseconds) and where it is.
type queued struct {
	due     int64
	p       int32
	subject string
	name    string
	id      uint64
}

type timerQueue []queued

func (q timerQueue) Len() int           { return len(q) }
func (q timerQueue) Less(i, j int) bool { return q[i].due < q[j].due }
func (q timerQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *timerQueue) Push(x any)        { *q = append(*q, x.(queued)) }
func (q *timerQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// builder wraps the processor's storage builder: the group table's
// partitions are registered, and loaded into the schedule once restored.
func (t *timers) builder(table string, b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil || topic != table {
			return st, err
		}
		return &timerTable{Storage: st, t: t, p: partition}, nil
	}
}

// timerTable is a group table partition whose recovery loads its timers.
type timerTable struct {
	storage.Storage
	t *timers
	p int32
}

func (s *timerTable) MarkRecovered() error {
	if err := s.Storage.MarkRecovered(); err != nil {
		return err
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.t.recovered[s.p] = s.Storage
	if s.t.assigned[s.p] {
		s.t.load(s.p)
	}
	return nil
}

func (s *timerTable) Close() error {
	s.t.mu.Lock()
	if s.t.recovered[s.p] == s.Storage {
		delete(s.t.recovered, s.p)
	}
	s.t.drop(s.p)
	s.t.mu.Unlock()
	return s.Storage.Close()
}

// rebalanced takes a new assignment: partitions no longer assigned stop
// firing; newly assigned ones already restored (hot standby) are loaded.
func (t *timers) rebalanced(a goka.Assignment) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p := range t.assigned {
		if _, ok := a[p]; !ok {
			t.drop(p)
		}
	}
	next := map[int32]bool{}
	for p := range a {
		next[p] = true
		if !t.assigned[p] && t.recovered[p] != nil {
			t.load(p)
		}
	}
	t.assigned = next
}

// load reads partition p's timers from its restored table (t.mu held):
// the envelopes' headers say which hold timers; only those are decoded.
func (t *timers) load(p int32) {
	t.drop(p)
	st := t.recovered[p]
	it, err := st.Iterator()
	if err != nil {
		t.log.Error("timers: read the table", "partition", p, "error", err)
		return
	}
	defer it.Release()
	subjects := map[string][]envelope.Timer{}
	for it.Next() {
		v, err := it.Value()
		if err != nil || !envelope.HasTimers(v) {
			continue
		}
		env, err := envelope.DecodeEnvelope(bytes.Clone(v)) // the iterator reuses v; a decoded envelope aliases it
		if err != nil {
			continue
		}
		subjects[string(it.Key())] = env.Timers
	}
	t.pending[p] = map[string][]envelope.Timer{}
	for subject, ts := range subjects {
		t.set(p, subject, ts)
	}
	t.poke()
}

// drop forgets partition p's timers (t.mu held); their queue entries are
// skipped when they come up.
func (t *timers) drop(p int32) {
	for _, ts := range t.pending[p] {
		t.count.Add(-int64(len(ts)))
	}
	delete(t.pending, p)
}

// set makes ts subject's timers on p (t.mu held). ts is freshly decoded:
// set keeps it, with each timer's Data copied, so that the schedule does
// not hold on to the envelope it was decoded from. Only the timers not
// already pending (same name, id and due time) are queued: an envelope
// stored again with its timers unchanged (any command of the subject)
// queues nothing, so the queue does not grow with the subject's commands
// and a timer is not written once per queued copy when due.
func (t *timers) set(p int32, subject string, ts []envelope.Timer) {
	subjects := t.pending[p]
	if subjects == nil {
		return // not a partition this worker owns (or not restored yet)
	}
	prev := subjects[subject]
	t.count.Add(int64(len(ts) - len(prev)))
	if len(ts) == 0 {
		delete(subjects, subject)
		return
	}
	for i := range ts {
		ts[i].Data = bytes.Clone(ts[i].Data)
	}
	subjects[subject] = ts
	// Queue the new ones only: a subject that changes often (a cart whose
	// every change restarts its timer) would otherwise fill the queue with
	// entries of timers it still has.
	for _, tm := range ts {
		if !slices.ContainsFunc(prev, func(o envelope.Timer) bool { return o.Name == tm.Name && o.ID == tm.ID && o.Due == tm.Due }) {
			heap.Push(&t.queue, queued{due: tm.Due, p: p, subject: subject, name: tm.Name, id: tm.ID})
		}
	}
	// A restarted timer leaves its old entry behind until it comes up:
	// when those outnumber the pending timers, the queue is rebuilt.
	if n := t.queue.Len(); n > 1024 && n > 2*int(t.count.Load()) {
		t.rebuild()
	}
}

// rebuild makes the queue hold each pending timer once (t.mu held).
func (t *timers) rebuild() {
	q := make(timerQueue, 0, t.count.Load())
	for p, subjects := range t.pending {
		for subject, ts := range subjects {
			for _, tm := range ts {
				q = append(q, queued{due: tm.Due, p: p, subject: subject, name: tm.Name, id: tm.ID})
			}
		}
	}
	heap.Init(&q)
	t.queue = q
}

// stored tells the schedule the envelope the handler stored for subject
// on p. Most envelopes hold no timers and nothing is pending: that costs
// a header read.
func (t *timers) stored(p int32, subject string, value []byte) {
	has := envelope.HasTimers(value)
	if !has && t.count.Load() == 0 {
		return
	}
	var ts []envelope.Timer
	if has {
		env, err := envelope.DecodeEnvelope(value)
		if err != nil {
			return
		}
		ts = env.Timers
	}
	t.mu.Lock()
	if _, had := t.pending[p][subject]; had || has {
		t.set(p, subject, ts)
	}
	t.mu.Unlock()
	if has {
		t.poke()
	}
}

func (t *timers) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// current returns the pending timer q stands for, if it is still pending
// (t.mu held).
func (t *timers) current(q queued) (envelope.Timer, bool) {
	for _, tm := range t.pending[q.p][q.subject] {
		if tm.Name == q.name && tm.ID == q.id {
			return tm, true
		}
	}
	return envelope.Timer{}, false
}

// emitter writes a record (the processor's producer's EmitWithHeaders).
type emitter func(topic, key string, value []byte, headers goka.Headers) *goka.Promise

// start runs the schedule, writing fires through emit, until stopped.
func (t *timers) start(emit emitter) {
	t.mu.Lock()
	t.stop = make(chan struct{})
	stop := t.stop
	t.mu.Unlock()
	go t.run(emit, stop)
}

// close stops the schedule (the processor's producer closes).
func (t *timers) close() {
	t.mu.Lock()
	if t.stop != nil {
		close(t.stop)
		t.stop = nil
	}
	t.mu.Unlock()
}

func (t *timers) run(emit emitter, stop chan struct{}) {
	loop := t.names.Loop(t.entity)
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	for {
		now := time.Now()
		var due []queued
		var fires []envelope.Timer
		next := time.Second
		t.mu.Lock()
		// At most fireBatch at a time: the handlers wait for the lock.
		for t.queue.Len() > 0 && len(due) < fireBatch {
			q := t.queue[0]
			if q.due > now.UnixNano() {
				next = min(next, time.Duration(q.due-now.UnixNano()))
				break
			}
			heap.Pop(&t.queue)
			if tm, ok := t.current(q); ok {
				due, fires = append(due, q), append(fires, tm)
			}
		}
		for _, q := range due {
			// Written again if still pending after refire.
			heap.Push(&t.queue, queued{due: now.Add(refire).UnixNano(), p: q.p, subject: q.subject, name: q.name, id: q.id})
		}
		if len(due) == fireBatch {
			next = 0 // more may be due
		}
		t.mu.Unlock()
		for i, q := range due {
			rec := core.FireRecord(t.names, t.entity, q.subject, fires[i])
			emit(loop, string(rec.Key), rec.Value, goka.Headers(rec.Headers)).Then(func(err error) {
				if err != nil {
					t.log.Warn("timers: a fire was not written; it is written again", "subject", q.subject, "timer", q.name, "error", err)
				}
			})
			if t.obs != nil {
				t.obs.TimerFired(t.entity, time.Since(time.Unix(0, fires[i].Due)))
			}
		}
		if next == 0 {
			continue
		}
		wait.Reset(next)
		select {
		case <-stop:
			return
		case <-t.wake:
		case <-wait.C:
		}
		if !wait.Stop() {
			select {
			case <-wait.C:
			default:
			}
		}
	}
}

// fireBatch bounds the fires taken off the queue under the lock at once.
const fireBatch = 512

// stats counts the pending timers and those past due. It holds the lock
// (which the handlers wait for) one partition at a time: at a million
// timers, holding it for all of them stalled every handler of the entity
// for 90 ms at each metrics scrape.
func (t *timers) stats(now time.Time) TimerStats {
	t.mu.Lock()
	parts := make([]int32, 0, len(t.pending))
	for p := range t.pending {
		parts = append(parts, p)
	}
	t.mu.Unlock()
	var s TimerStats
	for _, p := range parts {
		t.mu.Lock()
		for _, ts := range t.pending[p] {
			s.Pending += len(ts)
			for _, tm := range ts {
				if tm.Due <= now.UnixNano() {
					s.Overdue++
				}
			}
		}
		t.mu.Unlock()
	}
	return s
}

// TimerStats counts each entity's pending and overdue timers in this
// worker (the partitions it owns).
func (r *Runtime) TimerStats() map[string]TimerStats {
	r.mu.Lock()
	ts := make(map[string]*timers, len(r.timers))
	for k, v := range r.timers {
		ts[k] = v
	}
	r.mu.Unlock()
	out := make(map[string]TimerStats, len(ts))
	now := time.Now()
	for entity, t := range ts {
		out[entity] = t.stats(now)
	}
	return out
}
