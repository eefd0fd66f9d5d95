package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

// The timer benchmarks (issue 16) run the "ticker" entity: a counter whose
// "add" is the plain keyed update of the entity benchmark, whose "arm"
// updates the same state and starts the timer "t" (due at an absolute time
// or after a delay), and whose "ring", the timer's command, updates the
// state again. The handlers note when they ran (ctx.Now()) in a tally, and
// "ring" its lateness: when it was applied minus its timer's due time (the
// due time travels in the timer's payload).

// arm is the "arm" command: the timer falls due at At (Unix nanoseconds)
// or, when At is zero, After nanoseconds from the arming; Sent is when the
// command was written, if known.
type arm struct {
	At    int64 `json:"at,omitempty"`
	After int64 `json:"after,omitempty"`
	Sent  int64 `json:"sent,omitempty"`
}

// ring is the timer's payload: its due time and, if known, when the
// arming command was written plus the delay (a Temporal workflow's start
// request plus its sleep).
type ring struct {
	Due      int64 `json:"due"`
	Expected int64 `json:"expected,omitempty"`
}

// tally is what the handlers of one command type saw.
type tally struct {
	mu          sync.Mutex
	n           int
	first, last time.Time
	late        []time.Duration // ring: applied - due
	sinceSent   []time.Duration // ring: applied - (written + delay), when known
}

func (t *tally) hit(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	if t.n == 1 || now.Before(t.first) {
		t.first = now
	}
	if now.After(t.last) {
		t.last = now
	}
}

func (t *tally) rang(now time.Time, r ring) {
	t.hit(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.late = append(t.late, now.Sub(time.Unix(0, r.Due)))
	if r.Expected != 0 {
		t.sinceSent = append(t.sinceSent, now.Sub(time.Unix(0, r.Expected)))
	}
}

// lateness returns copies of the lateness lists.
func (t *tally) lateness() (late, sinceSent []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.late), slices.Clone(t.sinceSent)
}

func (t *tally) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// span returns the first and last times seen.
func (t *tally) span() (first, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first, t.last
}

// percentiles returns the p50 and p99 of ds (zero when empty).
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99)
}

// tallies are the current tallies of the ticker's commands; a phase of a
// benchmark swaps in fresh ones.
type tallies struct {
	adds, arms, rings atomic.Pointer[tally]
}

func newTallies() *tallies {
	t := &tallies{}
	t.adds.Store(new(tally))
	t.arms.Store(new(tally))
	t.rings.Store(new(tally))
	return t
}

func tickerEntity(t *tallies) *entities.Entity[Counter] {
	e := entities.KeyValue[Counter]("ticker")
	entities.Command(e, "add", func(ctx *entities.Context[Counter], a Add) entities.Effect[Counter] {
		t.adds.Load().hit(ctx.Now())
		return ctx.Update(Counter{N: ctx.State().N + a.By})
	})
	entities.Command(e, "arm", func(ctx *entities.Context[Counter], a arm) entities.Effect[Counter] {
		now := ctx.Now()
		due := time.Unix(0, a.At)
		if a.At == 0 {
			due = now.Add(time.Duration(a.After))
		}
		r := ring{Due: due.UnixNano()}
		if a.Sent != 0 {
			r.Expected = a.Sent + a.After
		}
		t.arms.Load().hit(now)
		return ctx.Update(Counter{N: ctx.State().N + 1}).StartTimer("t", due.Sub(now), "ring", r)
	})
	entities.Command(e, "ring", func(ctx *entities.Context[Counter], r ring) entities.Effect[Counter] {
		t.rings.Load().rang(ctx.Now(), r)
		return ctx.Update(Counter{N: ctx.State().N + 1})
	})
	return e
}

// command is a binary-mode CloudEvent command for topic, keyed by subject.
func command(topic, id, typ, subject string, data []byte) *sarama.ProducerMessage {
	e := codec.NewEvent()
	e.SetID(id)
	e.SetSource("bench")
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetDataContentType("application/json")
	e.DataEncoded = data
	r, _ := codec.EncodeEvent(e)
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
	for k, v := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	return m
}

func mustJSON(v any) []byte {
	data, _ := json.Marshal(v)
	return data
}

// timerObserver collects the scheduler's lateness (when it wrote a fire
// minus the timer's due time) while on.
type timerObserver struct {
	on   atomic.Bool
	mu   sync.Mutex
	late []time.Duration
}

func (*timerObserver) Handled(string, time.Duration) {}
func (*timerObserver) Rebalanced(string, []int32)    {}
func (o *timerObserver) TimerFired(_ string, late time.Duration) {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	o.late = append(o.late, late)
	o.mu.Unlock()
}

// profile starts, with BENCH_PROFILE=dir, a CPU profile written to
// dir/<name>.pprof; it returns the function that stops it.
func profile(b *testing.B, name string) func() {
	dir := os.Getenv("BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// running is a runtime started by start.
type running struct {
	rt     *processor.Runtime
	cancel context.CancelFunc
	errs   chan error
	ready  time.Duration // from Run to Ready
}

// start runs rt and waits until it is ready.
func start(b *testing.B, rt *processor.Runtime) *running {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rt: rt, cancel: cancel, errs: make(chan error, 1)}
	begin := time.Now()
	go func() { r.errs <- rt.Run(ctx) }()
	select {
	case <-rt.Ready():
		r.ready = time.Since(begin)
	case err := <-r.errs:
		b.Fatalf("the runtime stopped before it was ready: %v", err)
	case <-time.After(10 * time.Minute):
		b.Fatal("the runtime was not ready after 10 minutes")
	}
	return r
}

func (r *running) stop(b *testing.B) {
	b.Helper()
	r.cancel()
	if err := <-r.errs; err != nil && err != context.Canceled {
		b.Logf("the runtime stopped with: %v", err)
	}
}

// await polls done until it holds, failing b when r stops or after timeout.
func (r *running) await(b *testing.B, what string, timeout time.Duration, done func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		select {
		case err := <-r.errs:
			b.Fatalf("%s: the runtime stopped: %v", what, err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not done after %v", what, timeout)
		}
	}
}

func (r *running) pending(entity string) int { return r.rt.TimerStats()[entity].Pending }

// BenchmarkTimers measures Partita's durable timers against its own
// command rate and against Temporal, in one run, on the ticker entity:
//
//   - firing against commands: BENCH_TIMERS (default 200,000) "add"
//     commands to as many subjects, written before the worker starts; the
//     command rate is from the first applied to the last. Then each subject
//     gets an "arm" whose timer falls due at one instant T, set far enough
//     ahead that every arm is applied before it (three times the commands'
//     time, plus 3 s); the firing rate is the timers over the time from T
//     to the last fire applied, and the lateness is applied minus T.
//   - side by side with Temporal: workflowSize's n "arm" commands (to new
//     subjects) starting a timer of BENCH_TIMER_DELAY, written as fast as
//     possible to the running worker; the rate is n over the time from the
//     first write to the last fire applied, as TemporalTimers measures its
//     workflows (first start request to last completion). Lateness is
//     given both ways: from the request (applied minus (written + delay);
//     Temporal: resumed minus (started + delay)) and from when the timer
//     was set (applied minus due; Temporal: from its timer's start). Then
//     TemporalTimers runs with the same n and delay, the worker stopped.
func BenchmarkTimers(b *testing.B) {
	kc, client := connect(b)
	n := envInt("BENCH_TIMERS", 200_000)
	wn, delay := workflowSize()
	app := fmt.Sprintf("timers%d", time.Now().UnixNano())
	cmds := topics.Names{App: app}.Commands("ticker")
	t := newTallies()

	createTopic(b, client, cmds, nil)
	produceAll(b, client, cmds, n, func(i int) *sarama.ProducerMessage {
		return command(cmds, "c"+strconv.Itoa(i), "add", "s"+strconv.Itoa(i), []byte(`{"by":1}`))
	})
	rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: b.TempDir(),
		Log: slog.New(slog.DiscardHandler)}, tickerEntity(t))
	if err != nil {
		b.Fatal(err)
	}
	r := start(b, rt)
	adds := t.adds.Load()
	r.await(b, "the adds", 10*time.Minute, func() bool { return adds.count() >= n })
	first, last := adds.span()
	commandRate := float64(n-1) / last.Sub(first).Seconds()

	// Every timer due at one instant.
	due := time.Now().Add(3*time.Second + 3*last.Sub(first))
	produceAll(b, client, cmds, n, func(i int) *sarama.ProducerMessage {
		return command(cmds, "a"+strconv.Itoa(i), "arm", "s"+strconv.Itoa(i), mustJSON(arm{At: due.UnixNano()}))
	})
	arms, rings := t.arms.Load(), t.rings.Load()
	r.await(b, "the arms", 10*time.Minute, func() bool { return arms.count() >= n })
	if _, lastArm := arms.span(); lastArm.After(due) {
		b.Logf("the last arm was applied %v after its timer's due time: the firing rate counts from the due time anyway", lastArm.Sub(due))
	}
	stopProfile := profile(b, "timers-fire")
	r.await(b, "the fires", 10*time.Minute, func() bool { return rings.count() >= n })
	stopProfile()
	_, lastRing := rings.span()
	fireRate := float64(n) / lastRing.Sub(due).Seconds()
	burstLate, _ := rings.lateness()
	burst50, burst99 := percentiles(burstLate)

	// Temporal's workload, on the running worker.
	paired := new(tally)
	t.rings.Store(paired)
	began := time.Now()
	produceAll(b, client, cmds, wn, func(i int) *sarama.ProducerMessage {
		return command(cmds, "w"+strconv.Itoa(i), "arm", "w"+strconv.Itoa(i), mustJSON(arm{After: int64(delay), Sent: time.Now().UnixNano()}))
	})
	r.await(b, "the side-by-side fires", 10*time.Minute, func() bool { return paired.count() >= wn })
	_, lastSide := paired.span()
	sideRate := float64(wn) / lastSide.Sub(began).Seconds()
	setLate, reqLate := paired.lateness()
	req50, req99 := percentiles(reqLate)
	set50, set99 := percentiles(setLate)
	r.stop(b)

	temporal := TemporalTimers(b, wn, delay)

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	section, setup := timersSection(wn, delay)
	pair := func(what string, unit string, theirs, mine float64) []benchresult.Result {
		base := benchresult.Result{Measure: "Temporal: " + what, Value: theirs, Unit: unit}
		res := benchresult.Result{Measure: "Partita: " + what, Value: mine, Unit: unit}
		if theirs > 0 {
			base.Ratio, base.Baseline = 1, base.Measure
			res.Ratio, res.Baseline = mine/theirs, base.Measure
		}
		return []benchresult.Result{base, res}
	}
	var side []benchresult.Result
	side = append(side, pair("timers fired", "timers/s", temporal.Rate, sideRate)...)
	side = append(side, pair("lateness from request, p50", "ms", ms(temporal.P50), ms(req50))...)
	side = append(side, pair("lateness from request, p99", "ms", ms(temporal.P99), ms(req99))...)
	side = append(side, pair("lateness from timer start, p50", "ms", ms(temporal.SetP50), ms(set50))...)
	side = append(side, pair("lateness from timer start, p99", "ms", ms(temporal.SetP99), ms(set99))...)
	for _, res := range side {
		res.Section, res.Setup = section, setup
		benchresult.Print(os.Stdout, res)
	}

	setup = fmt.Sprintf("Partita key-value entity, %s subjects on one worker, 8 partitions, real broker: %s commands (rate from the first applied to the last), "+
		"then one timer each, all due at the same instant (rate from the due time to the last fire applied); lateness = applied - due",
		thousands(n), thousands(n))
	base := "commands applied"
	for _, res := range []benchresult.Result{
		{Measure: base, Value: commandRate, Unit: "commands/s", Ratio: 1, Baseline: base},
		{Measure: "timers fired (from the due time)", Value: fireRate, Unit: "timers/s", Ratio: fireRate / commandRate, Baseline: base},
		{Measure: "lateness of the burst, p50", Value: ms(burst50), Unit: "ms"},
		{Measure: "lateness of the burst, p99", Value: ms(burst99), Unit: "ms"},
	} {
		res.Section, res.Setup = "timers fired against commands", setup
		benchresult.Print(os.Stdout, res)
	}
	for i := 0; i < b.N; i++ {
	}
}

// memory returns the process's resident set (VmRSS) and the Go heap in
// use, after a collection that returns what it can to the system.
func memory() (rss, heap uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb << 10
			}
		}
	}
	return rss, ms.HeapAlloc
}

// dirSize is the bytes of the files under dir.
func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPendingTimers measures what BENCH_PENDING_TIMERS (default
// 1,000,000) pending timers cost one worker, against the same entity with
// as many subjects and the same state but no timer:
//
//   - memory: the process's RSS (VmRSS) and Go heap once every command is
//     applied, each less what it was before the worker started (after a
//     collection), with and without the timers; and again after a restart
//     that loads the schedule from the restored table;
//   - the local store: the bytes of the worker's data directory;
//   - recovery: a worker with an empty data directory restores the table
//     and loads the schedule; the time from Run until it is ready (the
//     schedule is loaded before: checked), against the table without
//     timers, restored before and after it;
//   - lateness: with the restored worker holding the pending timers,
//     BENCH_DUE_TIMERS (default 10,000) more fall due within one second
//     (due times spread evenly, set a few seconds ahead): applied minus
//     due, and when the scheduler wrote the fire minus due
//     (processor.TimerObserver).
//
// The pending timers are "arm" commands due in 24 h, written before the
// worker starts; the baseline's are "add" commands, one per subject.
func BenchmarkPendingTimers(b *testing.B) {
	kc, client := connect(b)
	m := envInt("BENCH_PENDING_TIMERS", 1_000_000)
	dueN := envInt("BENCH_DUE_TIMERS", 10_000)
	stamp := time.Now().UnixNano()
	t := newTallies()
	obs := new(timerObserver)
	entity := tickerEntity(t)
	runtimeFor := func(app string) (*processor.Runtime, string) {
		dir := b.TempDir()
		rt, err := processor.New(processor.Config{App: app, Kafka: kc, Partitions: 8, CreateTopics: true, DataDir: dir,
			Log: slog.New(slog.DiscardHandler), Observe: obs}, entity)
		if err != nil {
			b.Fatal(err)
		}
		return rt, dir
	}

	type loaded struct {
		app             string
		rss, heap       uint64 // after, less before
		rssAfter        uint64
		store           int64
		restore         time.Duration
		restoreHeap     uint64
		restoreRSS      uint64
		restoreRSSAfter uint64
	}
	load := func(name, typ string, data []byte, timers bool) *loaded {
		l := &loaded{app: fmt.Sprintf("pend%s%d", name, stamp)}
		cmds := topics.Names{App: l.app}.Commands("ticker")
		createTopic(b, client, cmds, nil)
		produceAll(b, client, cmds, m, func(i int) *sarama.ProducerMessage {
			return command(cmds, "c"+strconv.Itoa(i), typ, "s"+strconv.Itoa(i), data)
		})
		rss0, heap0 := memory()
		rt, dir := runtimeFor(l.app)
		r := start(b, rt)
		r.await(b, name+": the commands", 15*time.Minute, func() bool { return rt.Stats().Processed.Load() >= int64(m) })
		if timers {
			r.await(b, name+": the schedule", time.Minute, func() bool { return r.pending("ticker") >= m })
		}
		rss1, heap1 := memory()
		l.rss, l.heap, l.rssAfter = rss1-min(rss0, rss1), heap1-min(heap0, heap1), rss1
		r.stop(b)
		l.store = dirSize(b, dir)
		return l
	}
	restore := func(l *loaded, timers bool) *running {
		rss0, heap0 := memory()
		rt, _ := runtimeFor(l.app)
		r := start(b, rt)
		l.restore = r.ready
		if timers {
			if p := r.pending("ticker"); p != m {
				b.Logf("%d of %d timers scheduled when the worker was ready", p, m)
				r.await(b, "the restored schedule", time.Minute, func() bool { return r.pending("ticker") >= m })
			}
		}
		rss1, heap1 := memory()
		l.restoreRSS, l.restoreHeap, l.restoreRSSAfter = rss1-min(rss0, rss1), heap1-min(heap0, heap1), rss1
		return r
	}

	base := load("base", "add", []byte(`{"by":1}`), false)
	timed := load("timed", "arm", mustJSON(arm{At: time.Now().Add(24 * time.Hour).UnixNano()}), true)
	restore(base, false).stop(b)
	before := base.restore
	stopProfile := profile(b, "timers-restore")
	r := restore(timed, true)
	stopProfile()
	statsStart := time.Now()
	r.rt.TimerStats()
	statsTime := time.Since(statsStart)

	// More timers fall due within one second on the worker holding them.
	cmds := topics.Names{App: timed.app}.Commands("ticker")
	rings := new(tally)
	t.rings.Store(rings)
	at := time.Now().Add(5 * time.Second)
	obs.on.Store(true)
	produceAll(b, client, cmds, dueN, func(i int) *sarama.ProducerMessage {
		due := at.Add(time.Duration(i) * time.Second / time.Duration(dueN))
		return command(cmds, "d"+strconv.Itoa(i), "arm", "d"+strconv.Itoa(i), mustJSON(arm{At: due.UnixNano()}))
	})
	r.await(b, "the due timers", 10*time.Minute, func() bool { return rings.count() >= dueN })
	obs.on.Store(false)
	if p := r.pending("ticker"); p != m {
		b.Logf("%d timers pending after the due ones fired, want %d", p, m)
	}
	r.stop(b)
	restore(base, false).stop(b)
	after := base.restore
	dueLate, _ := rings.lateness()
	applied50, applied99 := percentiles(dueLate)
	obs.mu.Lock()
	written50, written99 := percentiles(obs.late)
	obs.mu.Unlock()

	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	baseRestore := (before + after).Seconds() / 2
	perTimer := func(with, without uint64) float64 { return (float64(with) - float64(without)) / float64(m) }
	section := "pending timers"
	setup := fmt.Sprintf("%s subjects with one timer each, due in 24 h, on one worker, 8 partitions, against as many subjects with the same state and no timer; "+
		"restore: time to ready from an empty data directory (without timers: mean of the runs before and after); real broker",
		thousands(m))
	const restoreBase = "restore without timers"
	const storeBase = "local store without timers"
	for _, res := range []benchresult.Result{
		{Measure: restoreBase, Value: baseRestore, Unit: "s", Ratio: 1, Baseline: restoreBase},
		{Measure: "restore with timers, schedule loaded", Value: timed.restore.Seconds(), Unit: "s", Ratio: timed.restore.Seconds() / baseRestore, Baseline: restoreBase},
		{Measure: storeBase, Value: mib(uint64(base.store)), Unit: "MiB", Ratio: 1, Baseline: storeBase},
		{Measure: "local store with timers", Value: mib(uint64(timed.store)), Unit: "MiB", Ratio: float64(timed.store) / float64(base.store), Baseline: storeBase},
		{Measure: "process RSS with the timers loaded", Value: mib(timed.rssAfter), Unit: "MiB"},
		{Measure: "RSS growth while loading, without timers", Value: mib(base.rss), Unit: "MiB"},
		{Measure: "RSS growth while loading, with timers", Value: mib(timed.rss), Unit: "MiB"},
		{Measure: "Go heap per pending timer (loaded from commands, less the same without timers)", Value: perTimer(timed.heap, base.heap), Unit: "bytes"},
		{Measure: "Go heap per pending timer (after the restart, less the same without timers)", Value: perTimer(timed.restoreHeap, base.restoreHeap), Unit: "bytes"},
		{Measure: "RSS per pending timer (after the restart, less the same without timers)", Value: perTimer(timed.restoreRSS, base.restoreRSS), Unit: "bytes"},
		{Measure: "Runtime.TimerStats() (counts every pending timer, holding the schedule's lock one partition at a time)", Value: ms(statsTime), Unit: "ms"},
		{Measure: fmt.Sprintf("%s timers due within one second: lateness of the fire applied, p50", thousands(dueN)), Value: ms(applied50), Unit: "ms"},
		{Measure: fmt.Sprintf("%s timers due within one second: lateness of the fire applied, p99", thousands(dueN)), Value: ms(applied99), Unit: "ms"},
		{Measure: fmt.Sprintf("%s timers due within one second: lateness of the fire written (TimerObserver), p50", thousands(dueN)), Value: ms(written50), Unit: "ms"},
		{Measure: fmt.Sprintf("%s timers due within one second: lateness of the fire written (TimerObserver), p99", thousands(dueN)), Value: ms(written99), Unit: "ms"},
	} {
		res.Section, res.Setup = section, setup
		benchresult.Print(os.Stdout, res)
	}
	for i := 0; i < b.N; i++ {
	}
}
