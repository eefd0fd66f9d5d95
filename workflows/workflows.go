// Package workflows is Partita's workflow component: a durable process of
// named steps over a typed state, kept and run by Kafka alone. A workflow
// instance is an entity underneath (partitioned by its id, ordered,
// effectively-once); its steps call entities (asks), run activities
// (plain Go functions that do I/O) or wait for a signal, and each step
// decides what comes next: another step, the end, or a failure, which runs
// the compensations of the steps completed before it, newest first.
//
// Contract, as the runtime keeps it:
//   - An instance runs one step at a time. A step's outcome (an activity's
//     result, an entity's reply, a signal) is recorded in the instance's
//     state before the instance moves on, so a crash re-runs at most the
//     step in flight: an activity is at-least-once, and gets the same
//     idempotency key ([Attempt.Key]) every time it runs for that step,
//     for the external service to recognise.
//   - A failing step is retried with backoff ([Retry]); after its last
//     retry it goes to its failover step ([Failover]) if it has one, else
//     the instance fails: the compensations ([Compensate]) of the steps
//     completed before, newest first, each retried as a step is. The
//     instance ends compensated, or failed when a compensation gave up;
//     its history says why.
//   - A step's [Timeout] bounds one attempt (an activity's context ends
//     then; a call or a wait that gets no answer fails), and [Deadline]
//     the whole instance.
//   - Signals ([Wait]) are commands to a running instance; cancel, pause
//     and resume are too. Status and history are the instance's state
//     (GET /entities/{workflow}/{id}), and the built-in view
//     "<workflow>-by-status" lists instances by status.
//   - Versioning: an instance records the version of the definition it
//     started under ([Version]). A definition runs instances of its own
//     version and of the versions it declares [Compatible] (their steps
//     must still exist); an instance of any other version is never
//     interpreted. A worker refuses to start while the status view lists
//     an unfinished instance of such a version (its runtime stops with
//     [ErrIncompatible], naming the instances); and should one come
//     anyway (a row not yet written), its commands are dead-lettered with
//     a reason naming both versions. A step an instance stands on that
//     the definition no longer has is refused the same way.
//   - Activities run off the partition goroutines, at most [Parallel] at
//     once per worker. Their run is not part of the runner's record: a
//     worker that dies mid-run loses it, and the instance retries the
//     attempt at the step's [Timeout], or sooner at its
//     [HeartbeatTimeout] when the activity beats ([Heartbeat]).
//   - Each attempt that ends is reported to the runtime's observer (the
//     worker's partita_workflow_step_seconds{workflow,step,outcome}).
//
// A workflow is one part of an application (worker.App, partitatest.New):
// it brings its instance entity (named like the workflow), its activity
// runner ("<workflow>-activities", which receives the activities' runs on
// its partitions) and its status view.
package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/views"
)

// Statuses of an instance.
const (
	Running      = "running"      // a step is in flight
	Waiting      = "waiting"      // a Wait step waits for its signal
	Paused       = "paused"       // it will not start its next step until resumed
	Compensating = "compensating" // a step failed: compensations run
	Completed    = "completed"    // it reached the end
	Compensated  = "compensated"  // it failed, and every compensation ran
	Failed       = "failed"       // it failed, and a compensation gave up
	Cancelled    = "cancelled"    // cancelled, and every compensation ran
)

// Instance is the stored state of a workflow instance, as GET
// /entities/{workflow}/{id} shows it.
type Instance[S any] struct {
	Status  string `json:"status"`
	Step    string `json:"step,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	State   S      `json:"state"`
	Version int    `json:"version"`
	// Done are the steps completed, oldest first: the compensations to
	// run should the instance fail.
	Done []string `json:"done,omitempty"`
	// Next is the step a paused instance starts when resumed.
	Next    string  `json:"next,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	History []Entry `json:"history"`
	// Cancel: the compensations run because the instance was cancelled.
	Cancel bool `json:"cancel,omitempty"`
	// Uncertain: an attempt of the current step timed out, so the step may
	// have taken effect.
	Uncertain bool `json:"uncertain,omitempty"`
	// Started is when the current attempt was issued.
	Started time.Time `json:"started,omitzero"`
}

// Entry is a line of an instance's history.
type Entry struct {
	Time   time.Time `json:"time"`
	Step   string    `json:"step,omitempty"`
	Event  string    `json:"event"` // started, step-started, step-done, step-failed, retry, failover, compensating, compensated, signal, ...
	Detail string    `json:"detail,omitempty"`
}

// Row is the status view's row of an instance.
type Row struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Step    string `json:"step,omitempty"`
	Version int    `json:"version,omitempty"`
}

// Workflow is a workflow definition over state S. Define its steps with
// [Activity], [Call] and [Wait]; the first one defined is where instances
// start.
type Workflow[S any] struct {
	options
	name  string
	steps map[string]*step[S]
	order []string
}

// Option configures a workflow.
type Option interface{ apply(*options) }

type options struct {
	parallel   int
	version    int
	compatible []int
	deadline   time.Duration
	sendsTo    []string
	access     *access.Rule
}

type option func(*options)

func (o option) apply(opts *options) { o(opts) }

// DefaultParallel is how many activities of a workflow run at once in a
// worker when the workflow sets no [Parallel].
const DefaultParallel = 64

// Parallel bounds how many activities of the workflow run at once in each
// worker (default DefaultParallel). They run off the partition
// goroutines; when n are running, the next one waits for one of them
// (and its runner partition with it).
func Parallel(n int) Option { return option(func(o *options) { o.parallel = n }) }

// Version is the definition's version (default 1), recorded by every
// instance it starts.
func Version(n int) Option { return option(func(o *options) { o.version = n }) }

// Compatible declares earlier versions whose running instances this
// definition continues: their steps must still be defined, with the same
// meaning.
func Compatible(versions ...int) Option {
	return option(func(o *options) { o.compatible = append(o.compatible, versions...) })
}

// Deadline bounds an instance's life: when it passes, a running instance
// fails (and compensates).
func Deadline(d time.Duration) Option { return option(func(o *options) { o.deadline = d }) }

// SendsTo declares the entities that Call steps ask.
func SendsTo(entities ...string) Option {
	return option(func(o *options) { o.sendsTo = append(o.sendsTo, entities...) })
}

// Access sets who may start, signal, cancel, pause and resume instances
// through the gateway (and read them).
func Access(rule access.Rule) Option { return option(func(o *options) { o.access = &rule }) }

// New defines a workflow named name.
func New[S any](name string, opts ...Option) *Workflow[S] {
	o := options{version: 1, parallel: DefaultParallel}
	for _, opt := range opts {
		opt.apply(&o)
	}
	o.parallel = max(o.parallel, 1)
	return &Workflow[S]{options: o, name: name, steps: map[string]*step[S]{}}
}

// Name is the workflow's name: its instance entity's.
func (w *Workflow[S]) Name() string { return w.name }

// Next is what a step decided: the state after it and where the instance
// goes (see [Goto], [End], [Fail]).
type Next[S any] struct {
	state  S
	step   string
	end    bool
	reason string
}

// Goto continues with step.
func Goto[S any](state S, step string) Next[S] { return Next[S]{state: state, step: step} }

// End ends the instance: completed.
func End[S any](state S) Next[S] { return Next[S]{state: state, end: true} }

// Fail fails the instance with reason: the completed steps' compensations
// run.
func Fail[S any](state S, reason string) Next[S] { return Next[S]{state: state, reason: reason} }

// Attempt is what an activity runs on.
type Attempt[S any] struct {
	State S `json:"state"`
	// Key is the same for every attempt of this step of this instance:
	// hand it to the external service as its idempotency key.
	Key string `json:"key"`
	// Number counts the attempts, from 1.
	Number int `json:"number"`
}

// StepOption configures a step.
type StepOption interface{ applyStep(*stepOptions) }

type stepOptions struct {
	timeout    time.Duration
	heartbeat  time.Duration
	retries    int
	backoff    time.Duration
	failover   string
	compensate string
}

type stepOption func(*stepOptions)

func (o stepOption) applyStep(s *stepOptions) { o(s) }

// DefaultStepTimeout bounds an attempt of a step that sets no [Timeout].
const DefaultStepTimeout = 30 * time.Second

// Timeout bounds one attempt of the step (default DefaultStepTimeout; a
// Wait step without one waits forever).
func Timeout(d time.Duration) StepOption { return stepOption(func(s *stepOptions) { s.timeout = d }) }

// HeartbeatTimeout makes an activity step's attempt prove it is alive:
// its run must call [Heartbeat] at least every d, or the attempt counts as lost
// (its worker may have died) and is retried at once, as one that timed
// out, without waiting for the step's [Timeout], which still bounds the
// whole attempt. For long activities: with a Timeout of an hour and a
// HeartbeatTimeout of 10 s, a worker killed mid-run costs 10 s, not an hour.
func HeartbeatTimeout(d time.Duration) StepOption {
	return stepOption(func(s *stepOptions) { s.heartbeat = d })
}

// Retry retries a failed attempt up to n more times, waiting backoff
// before the first retry and twice as long before each next one.
func Retry(n int, backoff time.Duration) StepOption {
	return stepOption(func(s *stepOptions) { s.retries, s.backoff = n, backoff })
}

// Failover goes to step when the last attempt failed, instead of failing
// the instance.
func Failover(step string) StepOption { return stepOption(func(s *stepOptions) { s.failover = step }) }

// Compensate names the step that undoes this one, should the instance fail
// after it completed.
func Compensate(step string) StepOption {
	return stepOption(func(s *stepOptions) { s.compensate = step })
}

type stepKind int

const (
	kindActivity stepKind = iota
	kindCall
	kindWait
)

// step is a step, type-erased: its registrations on the instance entity
// and the activity runner.
type step[S any] struct {
	name string
	kind stepKind
	opts stepOptions
	// signal is a Wait step's signal.
	signal string
	// call builds a Call step's ask from the instance's id and state.
	call func(id string, state S) (entity, subject, command string, payload any)
	// register adds the step's commands to the instance entity and the
	// runner.
	register func(w *Workflow[S], inst *entities.Entity[Instance[S]], runner *entities.Entity[struct{}])
}

func (w *Workflow[S]) add(s *step[S], opts []StepOption) {
	for _, o := range opts {
		o.applyStep(&s.opts)
	}
	if s.opts.timeout == 0 && s.kind != kindWait {
		s.opts.timeout = DefaultStepTimeout
	}
	if _, dup := w.steps[s.name]; !dup {
		w.order = append(w.order, s.name)
	}
	w.steps[s.name] = s
}

// Activity defines step name: run does the step's I/O (an HTTP call, a
// payment) off the instance's partition, with a context that ends at the
// step's [Timeout], at least once; then records its result in the state
// and decides what comes next. An error from run (or a panic, or the
// timeout) fails the attempt; wrap it with entities.Permanent to fail the
// step at once, without retries.
func Activity[S, O any](w *Workflow[S], name string, run func(ctx context.Context, a Attempt[S]) (O, error), then func(state S, out O) Next[S], opts ...StepOption) {
	s := &step[S]{name: name, kind: kindActivity}
	s.register = func(w *Workflow[S], inst *entities.Entity[Instance[S]], runner *entities.Entity[struct{}]) {
		entities.Command(runner, cmdRun+name, func(ctx *entities.Context[struct{}], a Attempt[S]) entities.Effect[struct{}] {
			actx, cancel := context.WithTimeout(ctx, s.opts.timeout)
			defer cancel()
			if s.opts.heartbeat > 0 {
				actx = context.WithValue(actx, heartbeatKey{}, w.beater(ctx, name, a.Number, s.opts.heartbeat))
			}
			res := result[O]{Attempt: a.Number}
			var err error
			if res.Out, err = run(actx, a); err != nil {
				res.Error, res.Permanent = err.Error(), entities.IsPermanent(err)
			}
			return ctx.Reply(res)
		})
		entities.Command(inst, cmdDone+name, func(ctx *entities.Context[Instance[S]], r result[O]) entities.Effect[Instance[S]] {
			if r.Error != "" {
				if in := ctx.State(); in.Attempt != r.Attempt && in.Step == name {
					return ctx.Ignore() // an earlier attempt's failure, come late
				}
				return w.attemptFailed(ctx, name, codeActivity+": "+r.Error, r.Permanent, false)
			}
			return w.finished(ctx, name, func(st S) Next[S] { return then(st, r.Out) })
		})
	}
	w.add(s, opts)
}

// result is an activity's answer to its instance: its output, or its
// error, of attempt Attempt.
type result[O any] struct {
	Attempt   int    `json:"attempt"`
	Out       O      `json:"out"`
	Error     string `json:"error,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`
}

// beat is the payload of a heartbeat and of its timeout.
type beat struct {
	Attempt int `json:"attempt"`
}

type heartbeatKey struct{}

// Heartbeat tells the instance that the activity running with ctx is
// alive (see [HeartbeatTimeout]). Call it as often as you like: it writes
// at most one heartbeat per third of the step's HeartbeatTimeout. Outside
// an activity of a step with a HeartbeatTimeout, it does nothing.
func Heartbeat(ctx context.Context) {
	if hb, ok := ctx.Value(heartbeatKey{}).(func()); ok {
		hb()
	}
}

// beater returns the heartbeat of attempt n of step name of the instance
// an activity runs for (ctx: the runner's handler's).
func (w *Workflow[S]) beater(ctx *entities.Context[struct{}], name string, n int, every time.Duration) func() {
	send := core.HooksOf(ctx).Send
	data, _ := json.Marshal(beat{Attempt: n})
	var mu sync.Mutex
	var last time.Time
	id := ctx.Subject()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if send == nil || time.Since(last) < every/3 {
			return
		}
		last = time.Now()
		_ = send(core.OutCommand{Entity: w.name, Subject: id, Command: cmdBeat + name, Data: data, ContentType: "application/json"}) // a lost beat: the next one, or the timeout
	}
}

// Call defines step name: it asks an entity (declared with [SendsTo]) the
// command ask makes from the instance's id and state, and hands its reply
// to then. An error reply or a dead letter of the command fails the
// attempt.
func Call[S, R any](w *Workflow[S], name string, ask func(id string, state S) (entity, subject, command string, payload any), then func(state S, reply R) Next[S], opts ...StepOption) {
	s := &step[S]{name: name, kind: kindCall, call: ask}
	s.register = func(w *Workflow[S], inst *entities.Entity[Instance[S]], _ *entities.Entity[struct{}]) {
		entities.Command(inst, cmdDone+name, func(ctx *entities.Context[Instance[S]], r R) entities.Effect[Instance[S]] {
			return w.finished(ctx, name, func(st S) Next[S] { return then(st, r) })
		})
	}
	w.add(s, opts)
}

// Wait defines step name: the instance waits for the signal (a command
// "signal-<signal>" with a G) and hands it to then. With a [Timeout], no
// signal in time fails the step.
func Wait[S, G any](w *Workflow[S], name, signal string, then func(state S, g G) Next[S], opts ...StepOption) {
	s := &step[S]{name: name, kind: kindWait, signal: signal}
	s.register = func(w *Workflow[S], inst *entities.Entity[Instance[S]], _ *entities.Entity[struct{}]) {
		entities.Command(inst, SignalCommand(signal), func(ctx *entities.Context[Instance[S]], g G) entities.Effect[Instance[S]] {
			in := ctx.State()
			if refused, ok := w.unknown(ctx, in); ok {
				return refused
			}
			waiting := in.Status == Waiting || in.Status == Paused && in.Next == in.Step && in.Attempt > 0
			if !waiting || w.steps[in.Step] == nil || w.steps[in.Step].signal != signal {
				return ctx.Error(entities.FailedPrecondition, "instance %s is %s at %q, not waiting for signal %q", ctx.Subject(), in.Status, in.Step, signal)
			}
			in.History = append(in.History, Entry{Time: ctx.Now(), Step: in.Step, Event: "signal", Detail: signal})
			next := then(in.State, g)
			return w.advance(ctx, in, in.Step, next).CancelTimer(timerStep)
		})
	}
	w.add(s, opts)
}

// SignalCommand is the command that delivers signal to an instance.
func SignalCommand(signal string) string { return "signal-" + signal }

// Commands of an instance a client sends (through the gateway: POST
// /entities/{workflow}/{id}/{command}).
const (
	CommandStart  = "start"  // the initial state, as JSON
	CommandCancel = "cancel" // {}
	CommandPause  = "pause"  // {}
	CommandResume = "resume" // {}
	CommandStatus = "status" // {}: replies with the instance
)

// The runtime's own commands and timers.
const (
	cmdRun     = "run:"     // the runner's: run the activity of a step
	cmdDone    = "done:"    // a step's result
	cmdBeat    = "beat:"    // an activity's heartbeat
	cmdLost    = "lost:"    // an activity's heartbeat did not come in time
	cmdFailed  = "failed:"  // a step's attempt failed (an entities.AskError)
	cmdRetry   = "retry:"   // the backoff before a retry passed
	cmdTimeout = "timeout:" // a Wait step's timeout
	cmdExpire  = "deadline" // the workflow's deadline passed

	timerStep     = "step"
	timerBeat     = "heartbeat"
	timerDeadline = "deadline"

	codeActivity = "activity_failed"
)

// Definition returns the workflow's runtime form for package processor
// and the harness: its instance entity, activity runner and status view.
func (w *Workflow[S]) Definition() any {
	var timeout time.Duration
	for _, s := range w.steps {
		timeout = max(timeout, s.opts.timeout)
	}
	internal := access.Internal()
	runner := entities.KeyValue[struct{}](w.name+"-activities", entities.Retries(0, time.Millisecond),
		entities.HandlerTimeout(timeout+runnerMargin), entities.Access(internal), entities.SendsTo(w.name))
	opts := []entities.Option{entities.SendsTo(append([]string{runner.Name()}, w.sendsTo...)...), entities.CommandAccess(cmdExpire, internal)}
	if w.access != nil {
		opts = append(opts, entities.Access(*w.access))
	}
	for _, name := range w.order {
		for _, c := range []string{cmdDone, cmdFailed, cmdRetry, cmdTimeout, cmdBeat, cmdLost} {
			opts = append(opts, entities.CommandAccess(c+name, internal))
		}
	}
	inst := entities.KeyValue[Instance[S]](w.name, opts...)
	for _, name := range w.order {
		w.steps[name].register(w, inst, runner)
	}
	w.registerControl(inst)
	rd := runner.Definition().(*core.Entity)
	rd.Detached = w.parallel
	id := inst.Definition().(*core.Entity)
	id.Hooks = true
	var viewOpts []views.Option
	if w.access != nil {
		viewOpts = append(viewOpts, views.Access(*w.access))
	}
	status := views.New[Row](w.name+"-by-status", append(viewOpts, views.Index("status"))...)
	views.FromState(status, w.name, func(u views.Update[Row, Instance[S]]) views.Effect[Row] {
		return u.Set(Row{ID: u.Subject, Status: u.Value.Status, Step: u.Value.Step, Version: u.Value.Version})
	})
	sv := status.Definition().(*core.View)
	sv.Workflow = w.name
	sv.Check = w.check
	return []any{id, rd, sv}
}

// registerControl registers start, the failure path and the controls.
func (w *Workflow[S]) registerControl(inst *entities.Entity[Instance[S]]) {
	entities.Command(inst, CommandStart, func(ctx *entities.Context[Instance[S]], st S) entities.Effect[Instance[S]] {
		if ctx.Exists() {
			return ctx.Reply(ctx.State()) // a repeated start answers with the instance
		}
		if len(w.order) == 0 {
			return ctx.Error(entities.FailedPrecondition, "workflow %s has no steps", w.name)
		}
		in := Instance[S]{Status: Running, State: st, Version: w.version,
			History: []Entry{{Time: ctx.Now(), Event: "started", Detail: fmt.Sprintf("version %d", w.version)}}}
		eff := w.start(ctx, &in, w.order[0])
		if w.deadline > 0 {
			eff = eff.StartTimer(timerDeadline, w.deadline, cmdExpire, struct{}{})
		}
		return eff
	})
	entities.Command(inst, CommandStatus, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no instance %s of workflow %s", ctx.Subject(), w.name)
		}
		return ctx.Reply(ctx.State())
	})
	for _, name := range w.order {
		entities.Command(inst, cmdFailed+name, func(ctx *entities.Context[Instance[S]], e entities.AskError) entities.Effect[Instance[S]] {
			if in := ctx.State(); e.Code == entities.AskTimeout && in.Step == name && ctx.Now().Before(in.Started.Add(w.askTimeout(name))) {
				return ctx.Ignore() // an earlier attempt's ask timed out (its heartbeat was lost)
			}
			return w.attemptFailed(ctx, name, fmt.Sprintf("%s: %s", e.Code, e.Message), false, e.Code == entities.AskTimeout)
		})
		entities.Command(inst, cmdBeat+name, func(ctx *entities.Context[Instance[S]], b beat) entities.Effect[Instance[S]] {
			if !w.current(ctx.State(), name, b.Attempt) {
				return ctx.Ignore()
			}
			return ctx.Ignore().StartTimer(timerBeat, w.steps[name].opts.heartbeat, cmdLost+name, b)
		})
		entities.Command(inst, cmdLost+name, func(ctx *entities.Context[Instance[S]], b beat) entities.Effect[Instance[S]] {
			if !w.current(ctx.State(), name, b.Attempt) {
				return ctx.Ignore()
			}
			return w.attemptFailed(ctx, name, fmt.Sprintf("heartbeat_timeout: no heartbeat within %v", w.steps[name].opts.heartbeat), false, true)
		})
		entities.Command(inst, cmdTimeout+name, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
			return w.attemptFailed(ctx, name, "timeout: no signal in time", false, false)
		})
		entities.Command(inst, cmdRetry+name, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
			in := ctx.State()
			if refused, ok := w.unknown(ctx, in); ok {
				return refused
			}
			if in.Step != name || (in.Status != Running && in.Status != Compensating && in.Status != Paused) {
				return ctx.Ignore()
			}
			in.Attempt++
			in.History = append(in.History, Entry{Time: ctx.Now(), Step: name, Event: "retry", Detail: fmt.Sprintf("attempt %d", in.Attempt)})
			return w.run(ctx, &in)
		})
	}
	entities.Command(inst, cmdExpire, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
		in := ctx.State()
		if over(in.Status) || in.Status == Compensating {
			return ctx.Ignore()
		}
		return w.compensate(ctx, w.inFlight(in), "deadline passed", false)
	})
	entities.Command(inst, CommandCancel, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
		in := ctx.State()
		switch {
		case !ctx.Exists():
			return ctx.Error(entities.NotFound, "no instance %s of workflow %s", ctx.Subject(), w.name)
		case over(in.Status) || in.Status == Compensating:
			return ctx.Error(entities.FailedPrecondition, "instance %s is %s", ctx.Subject(), in.Status)
		}
		return w.compensate(ctx, w.inFlight(in), "cancelled", true)
	})
	entities.Command(inst, CommandPause, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
		in := ctx.State()
		if in.Status != Running && in.Status != Waiting {
			return ctx.Error(entities.FailedPrecondition, "instance %s is %s", ctx.Subject(), in.Status)
		}
		in.Next, in.Status = in.Step, Paused
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: in.Step, Event: "paused"})
		return ctx.Update(in).Reply(in)
	})
	entities.Command(inst, CommandResume, func(ctx *entities.Context[Instance[S]], _ struct{}) entities.Effect[Instance[S]] {
		in := ctx.State()
		if in.Status != Paused {
			return ctx.Error(entities.FailedPrecondition, "instance %s is %s, not paused", ctx.Subject(), in.Status)
		}
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: in.Next, Event: "resumed"})
		next := in.Next
		in.Next = ""
		if next == "" { // paused between steps after the last one: nothing in flight
			in.Status = Completed
			return ctx.Update(in).Reply(in)
		}
		if in.Step == next && in.Attempt > 0 {
			// Paused while the step was in flight: its answer was kept
			// waiting (see finished) or is still to come.
			in.Status = Running
			if w.steps[next].kind == kindWait {
				in.Status = Waiting
			}
			return ctx.Update(in).Reply(in)
		}
		return w.start(ctx, &in, next)
	})
}

// current reports whether attempt of step name is the instance's attempt
// in flight.
func (w *Workflow[S]) current(in Instance[S], name string, attempt int) bool {
	return in.Step == name && in.Attempt == attempt && !over(in.Status) && w.steps[name] != nil
}

// runnerMargin is how much longer than an activity's step timeout its
// runner's handler may take (the activity's context ends at the step
// timeout; the handler then still answers), and its instance waits.
const runnerMargin = 5 * time.Second

// askTimeout is how long the ask of an attempt of step name waits for its
// answer.
func (w *Workflow[S]) askTimeout(name string) time.Duration {
	s := w.steps[name]
	if s == nil {
		return 0
	}
	if s.kind == kindActivity {
		return s.opts.timeout + runnerMargin
	}
	return s.opts.timeout
}

// report tells the runtime's observer that the attempt in flight of in's
// step ended with outcome.
func (w *Workflow[S]) report(ctx *entities.Context[Instance[S]], in Instance[S], outcome string) {
	if step := core.HooksOf(ctx).Step; step != nil && !in.Started.IsZero() {
		step(core.StepReport{Workflow: w.name, Step: in.Step, Outcome: outcome, Took: ctx.Now().Sub(in.Started)})
	}
}

// runs reports whether the definition runs instances of version.
func (w *Workflow[S]) runs(version int) bool {
	return version == w.version || slices.Contains(w.compatible, version)
}

// ErrIncompatible is what a worker stops with at start-up when a workflow's
// status view lists unfinished instances of a version the definition does
// not run (see [Compatible]).
var ErrIncompatible = errors.New("unfinished instances of a version this definition does not run")

// check refuses, at start-up, the definition that would meet unfinished
// instances of a version it does not run: rows is the status view's
// views.Reader. Rows written before rows carried their version (0) are
// left to the refusal at their next command.
func (w *Workflow[S]) check(ctx context.Context, rows any) error {
	r, ok := rows.(views.Reader)
	if !ok {
		return fmt.Errorf("workflow %s: its status view has no reader", w.name)
	}
	var refused []string
	n := 0
	for _, status := range []string{Running, Waiting, Paused, Compensating} {
		q := views.Query{Index: "status", Eq: status, Limit: views.MaxLimit}
		for {
			page, err := r.Query(ctx, q)
			if err != nil {
				return fmt.Errorf("workflow %s: reading its status view: %w", w.name, err)
			}
			for _, row := range page.Rows {
				var x Row
				if err := json.Unmarshal(row.Data, &x); err != nil {
					return fmt.Errorf("workflow %s: row %s of its status view: %w", w.name, row.ID, err)
				}
				if x.Version != 0 && !w.runs(x.Version) {
					if n++; n <= 10 {
						refused = append(refused, fmt.Sprintf("%s (version %d, %s)", x.ID, x.Version, x.Status))
					}
				}
			}
			if page.Next == "" {
				break
			}
			q.Page = page.Next
		}
	}
	if n == 0 {
		return nil
	}
	list := strings.Join(refused, ", ")
	if n > len(refused) {
		list = "the first " + strconv.Itoa(len(refused)) + ": " + list
	}
	compatible := "none"
	if len(w.compatible) > 0 {
		compatible = fmt.Sprint(w.compatible)
	}
	return fmt.Errorf("workflow %s: %d %w (%s); the definition is version %d, compatible with %s: declare their versions with workflows.Compatible (their steps kept), or let them end under workers of their version first",
		w.name, n, ErrIncompatible, list, w.version, compatible)
}

func over(status string) bool {
	switch status {
	case Completed, Compensated, Failed, Cancelled:
		return true
	}
	return false
}

// unknown refuses an instance this definition cannot interpret: another
// version not declared compatible, or a step it no longer has.
func (w *Workflow[S]) unknown(ctx *entities.Context[Instance[S]], in Instance[S]) (entities.Effect[Instance[S]], bool) {
	if !ctx.Exists() {
		return ctx.Error(entities.NotFound, "no instance %s of workflow %s", ctx.Subject(), w.name), true
	}
	if !w.runs(in.Version) {
		return ctx.Fail(entities.Permanent(fmt.Errorf("instance %s of workflow %s started under version %d; this definition is version %d and does not declare %d compatible (workflows.Compatible)",
			ctx.Subject(), w.name, in.Version, w.version, in.Version))), true
	}
	if in.Step != "" && w.steps[in.Step] == nil {
		return ctx.Fail(entities.Permanent(fmt.Errorf("instance %s of workflow %s stands on step %q, which this definition (version %d) does not have",
			ctx.Subject(), w.name, in.Step, w.version))), true
	}
	return entities.Effect[Instance[S]]{}, false
}

// start moves the instance to step and runs its first attempt.
func (w *Workflow[S]) start(ctx *entities.Context[Instance[S]], in *Instance[S], name string) entities.Effect[Instance[S]] {
	if w.steps[name] == nil {
		return w.compensate(ctx, *in, fmt.Sprintf("step %q is not defined", name), false)
	}
	in.Step, in.Attempt, in.Uncertain = name, 1, false
	in.History = append(in.History, Entry{Time: ctx.Now(), Step: name, Event: "step-started"})
	return w.run(ctx, in)
}

// run issues the current attempt of the instance's step.
func (w *Workflow[S]) run(ctx *entities.Context[Instance[S]], in *Instance[S]) entities.Effect[Instance[S]] {
	s := w.steps[in.Step]
	steady := in.Status == Compensating || in.Status == Paused // a retry while paused stays paused
	if !steady {
		in.Status = Running
	}
	in.Started = ctx.Now()
	switch s.kind {
	case kindActivity:
		key := w.name + "/" + ctx.Subject() + "/" + s.name
		eff := ctx.Update(*in).Reply(*in).Ask(entities.Ask{
			Entity: w.name + "-activities", Subject: ctx.Subject(), Command: cmdRun + s.name,
			Payload: Attempt[S]{State: in.State, Key: key, Number: in.Attempt},
			OnReply: cmdDone + s.name, OnError: cmdFailed + s.name, Timeout: w.askTimeout(s.name),
		})
		if s.opts.heartbeat > 0 {
			eff = eff.StartTimer(timerBeat, s.opts.heartbeat, cmdLost+s.name, beat{Attempt: in.Attempt})
		}
		return eff
	case kindCall:
		entity, subject, command, payload := s.call(ctx.Subject(), in.State)
		return ctx.Update(*in).Reply(*in).Ask(entities.Ask{
			Entity: entity, Subject: subject, Command: command, Payload: payload,
			OnReply: cmdDone + s.name, OnError: cmdFailed + s.name, Timeout: w.askTimeout(s.name),
		})
	default: // kindWait
		if !steady {
			in.Status = Waiting
		}
		eff := ctx.Update(*in).Reply(*in)
		if s.opts.timeout > 0 {
			eff = eff.StartTimer(timerStep, s.opts.timeout, cmdTimeout+s.name, struct{}{})
		}
		return eff
	}
}

// finished records a step's outcome and moves on.
func (w *Workflow[S]) finished(ctx *entities.Context[Instance[S]], name string, then func(S) Next[S]) entities.Effect[Instance[S]] {
	in := ctx.State()
	if refused, ok := w.unknown(ctx, in); ok {
		return refused
	}
	if in.Step != name || over(in.Status) || in.Attempt == 0 {
		return ctx.Ignore() // an answer to a step the instance has left
	}
	next := then(in.State)
	return w.advance(ctx, in, name, next)
}

// advance records that step completed with next and acts on it.
func (w *Workflow[S]) advance(ctx *entities.Context[Instance[S]], in Instance[S], step string, next Next[S]) entities.Effect[Instance[S]] {
	w.report(ctx, in, core.StepDone)
	return w.next(ctx, in, step, next).CancelTimer(timerBeat)
}

// next records that step completed with next and acts on it.
func (w *Workflow[S]) next(ctx *entities.Context[Instance[S]], in Instance[S], step string, next Next[S]) entities.Effect[Instance[S]] {
	in.State = next.state
	if in.Status == Compensating {
		// A compensation completed: on to the one before it.
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: step, Event: "compensated"})
		return w.unwind(ctx, in)
	}
	in.Done = append(in.Done, step)
	in.History = append(in.History, Entry{Time: ctx.Now(), Step: step, Event: "step-done"})
	in.Attempt = 0
	switch {
	case next.reason != "":
		return w.compensate(ctx, in, next.reason, false)
	case next.end:
		in.Status, in.Step = Completed, ""
		in.History = append(in.History, Entry{Time: ctx.Now(), Event: "completed"})
		return ctx.Update(in).Reply(in).CancelTimer(timerDeadline)
	case in.Status == Paused:
		in.Next = next.step
		return ctx.Update(in).Reply(in)
	}
	return w.start(ctx, &in, next.step)
}

// attemptFailed retries the step, fails over, or fails the instance.
// timedOut: the attempt got no answer in time, so it may still take
// effect (see uncertain).
func (w *Workflow[S]) attemptFailed(ctx *entities.Context[Instance[S]], name, why string, permanent, timedOut bool) entities.Effect[Instance[S]] {
	in := ctx.State()
	if refused, ok := w.unknown(ctx, in); ok {
		return refused
	}
	if in.Step != name || over(in.Status) || in.Attempt == 0 {
		return ctx.Ignore()
	}
	s := w.steps[name]
	in.Uncertain = in.Uncertain || timedOut
	in.History = append(in.History, Entry{Time: ctx.Now(), Step: name, Event: "step-failed", Detail: fmt.Sprintf("attempt %d: %s", in.Attempt, why)})
	if !permanent && in.Attempt <= s.opts.retries {
		w.report(ctx, in, core.StepRetried)
		backoff := s.opts.backoff << (in.Attempt - 1)
		return ctx.Update(in).StartTimer(timerStep, backoff, cmdRetry+name, struct{}{}).CancelTimer(timerBeat)
	}
	w.report(ctx, in, core.StepFailed)
	if in.Status == Compensating {
		in.Status, in.Reason = Failed, fmt.Sprintf("%s; compensation %s gave up: %s", in.Reason, name, why)
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: name, Event: "failed", Detail: in.Reason})
		return ctx.Update(in).CancelTimer(timerDeadline)
	}
	in = w.uncertain(ctx, in)
	if s.opts.failover != "" {
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: name, Event: "failover", Detail: s.opts.failover})
		return w.start(ctx, &in, s.opts.failover)
	}
	return w.compensate(ctx, in, fmt.Sprintf("step %s failed: %s", name, why), false)
}

// uncertain counts the current step as done, for its compensation, when
// one of its attempts got no answer in time: a call or an activity that
// timed out may still take effect (the target applies the command late),
// so its compensation must run should the instance fail. Compensations
// must therefore accept undoing what never happened.
func (w *Workflow[S]) uncertain(ctx *entities.Context[Instance[S]], in Instance[S]) Instance[S] {
	if in.Uncertain && w.steps[in.Step].opts.compensate != "" {
		in.Done = append(in.Done, in.Step)
		in.History = append(in.History, Entry{Time: ctx.Now(), Step: in.Step, Event: "maybe-done", Detail: "an attempt timed out: its compensation runs if the instance fails"})
	}
	in.Uncertain = false
	return in
}

// inFlight counts the step in flight (a call or an activity that was sent
// and has not answered) as done, for its compensation: cancelled or past
// its deadline, the instance cannot know whether it took effect.
func (w *Workflow[S]) inFlight(in Instance[S]) Instance[S] {
	if s := w.steps[in.Step]; s != nil && s.kind != kindWait && in.Attempt > 0 && (in.Status == Running || in.Status == Paused) {
		in.Uncertain = true
	}
	return in
}

// compensate fails the instance: the compensations of its completed steps
// run, newest first.
func (w *Workflow[S]) compensate(ctx *entities.Context[Instance[S]], in Instance[S], reason string, cancel bool) entities.Effect[Instance[S]] {
	if in.Step != "" && w.steps[in.Step] != nil {
		in = w.uncertain(ctx, in)
	}
	in.Status, in.Reason, in.Cancel = Compensating, reason, cancel
	in.History = append(in.History, Entry{Time: ctx.Now(), Step: in.Step, Event: "compensating", Detail: reason})
	return w.unwind(ctx, in).CancelTimer(timerStep).CancelTimer(timerBeat)
}

// unwind runs the next compensation, or ends the instance.
func (w *Workflow[S]) unwind(ctx *entities.Context[Instance[S]], in Instance[S]) entities.Effect[Instance[S]] {
	for len(in.Done) > 0 {
		done := in.Done[len(in.Done)-1]
		in.Done = in.Done[:len(in.Done)-1]
		if c := w.steps[done].opts.compensate; c != "" && w.steps[c] != nil {
			in.Step, in.Attempt = c, 1
			in.History = append(in.History, Entry{Time: ctx.Now(), Step: c, Event: "step-started", Detail: "compensates " + done})
			return w.run(ctx, &in)
		}
	}
	in.Status, in.Step, in.Attempt = Compensated, "", 0
	if in.Cancel {
		in.Status = Cancelled
	}
	in.History = append(in.History, Entry{Time: ctx.Now(), Event: in.Status, Detail: in.Reason})
	return ctx.Update(in).Reply(in).CancelTimer(timerDeadline)
}
