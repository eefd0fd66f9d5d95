package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/workflows"
)

// order is the state of the test's order workflow.
type order struct {
	Item     string `json:"item"`
	Amount   int    `json:"amount"`
	Reserved bool   `json:"reserved"`
	Charge   string `json:"charge"`
	Approved bool   `json:"approved"`
}

type stock struct{ Reserved int }

// payments is a fake payment service: it records each idempotency key it
// charged, once, and fails as told.
type payments struct {
	mu      sync.Mutex
	charged map[string]int // key -> calls
	failN   int            // fail this many calls, then succeed
	always  error          // fail every call with this
	calls   int
}

func (p *payments) charge(_ context.Context, a workflows.Attempt[order]) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.always != nil {
		return "", p.always
	}
	if p.failN > 0 {
		p.failN--
		return "", errors.New("payment provider unavailable")
	}
	p.charged[a.Key]++
	return "ch-" + a.Key, nil
}

// newInventory is the entity the workflow calls: reserve and release.
func newInventory() *entities.Entity[stock] {
	inv := entities.KeyValue[stock]("inventory")
	entities.Command(inv, "reserve", func(ctx *entities.Context[stock], n int) entities.Effect[stock] {
		if n > 10 {
			return ctx.Error(entities.FailedPrecondition, "only 10 in stock")
		}
		s := ctx.State()
		s.Reserved += n
		return ctx.Update(s).Reply(s)
	})
	entities.Command(inv, "release", func(ctx *entities.Context[stock], n int) entities.Effect[stock] {
		s := ctx.State()
		s.Reserved -= n
		return ctx.Update(s).Reply(s)
	})
	return inv
}

// newOrder is reserve (Call, compensated by release), charge (Activity),
// approve (Wait, optional), confirm (End).
func newOrder(p *payments, wait bool, opts ...workflows.StepOption) *workflows.Workflow[order] {
	w := workflows.New[order]("order", workflows.SendsTo("inventory"))
	workflows.Call(w, "reserve", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "reserve", o.Amount },
		func(o order, _ stock) workflows.Next[order] {
			o.Reserved = true
			return workflows.Goto(o, "charge")
		}, workflows.Compensate("release"))
	next := "confirm"
	if wait {
		next = "approve"
	}
	workflows.Activity(w, "charge", p.charge, func(o order, id string) workflows.Next[order] {
		o.Charge = id
		return workflows.Goto(o, next)
	}, opts...)
	workflows.Wait(w, "approve", "approval", func(o order, ok bool) workflows.Next[order] {
		if !ok {
			return workflows.Fail(o, "not approved")
		}
		o.Approved = true
		return workflows.Goto(o, "confirm")
	}, workflows.Timeout(time.Hour))
	workflows.Activity(w, "confirm", func(context.Context, workflows.Attempt[order]) (struct{}, error) { return struct{}{}, nil },
		func(o order, _ struct{}) workflows.Next[order] { return workflows.End(o) })
	workflows.Call(w, "release", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "release", o.Amount },
		func(o order, _ stock) workflows.Next[order] {
			o.Reserved = false
			return workflows.End(o)
		})
	workflows.Activity(w, "refund-manually", func(context.Context, workflows.Attempt[order]) (struct{}, error) { return struct{}{}, nil },
		func(o order, _ struct{}) workflows.Next[order] {
			return workflows.Fail(o, "charged manually: refunded by hand")
		})
	return w
}

func instance(t *testing.T, h *pt.Harness, id string) workflows.Instance[order] {
	t.Helper()
	var in workflows.Instance[order]
	if ok, err := h.State("order", id, &in); err != nil || !ok {
		t.Fatalf("instance %s: %v %v", id, ok, err)
	}
	return in
}

func events(in workflows.Instance[order]) string {
	var out []string
	for _, e := range in.History {
		if e.Step != "" {
			out = append(out, e.Event+":"+e.Step)
		} else {
			out = append(out, e.Event)
		}
	}
	return strings.Join(out, " ")
}

func stockOf(t *testing.T, h *pt.Harness, item string) int {
	t.Helper()
	var s stock
	if _, err := h.State("inventory", item, &s); err != nil {
		t.Fatal(err)
	}
	return s.Reserved
}

func TestAnInstanceRunsItsStepsOnce(t *testing.T) {
	p := &payments{charged: map[string]int{}}
	h := pt.Start(t, newInventory(), newOrder(p, false))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 2}))
	in := instance(t, h, "o1")
	if in.Status != workflows.Completed || !in.State.Reserved || in.State.Charge != "ch-order/o1/charge" {
		t.Fatalf("instance: %+v", in)
	}
	if got := events(in); got != "started step-started:reserve step-done:reserve step-started:charge step-done:charge step-started:confirm step-done:confirm completed" {
		t.Errorf("history: %s", got)
	}
	if stockOf(t, h, "pen") != 2 || p.charged["order/o1/charge"] != 1 {
		t.Errorf("stock %d, charges %v", stockOf(t, h, "pen"), p.charged)
	}
	// A repeated start answers with the instance and runs nothing again.
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 2}))
	if stockOf(t, h, "pen") != 2 || p.calls != 1 {
		t.Errorf("a repeated start ran steps again: stock %d, calls %d", stockOf(t, h, "pen"), p.calls)
	}
	h.ExpectHeld(t)
}

// An activity failing twice is retried with backoff, on the clock, with the
// same idempotency key.
func TestAFailingActivityIsRetried(t *testing.T) {
	p := &payments{charged: map[string]int{}, failN: 2}
	h := pt.Start(t, newInventory(), newOrder(p, false, workflows.Retry(3, time.Second)))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	if in := instance(t, h, "o1"); in.Status != workflows.Running || in.Step != "charge" {
		t.Fatalf("after the first failure: %+v", in)
	}
	h.Advance(time.Second) // the first retry: fails again
	h.Advance(2 * time.Second)
	in := instance(t, h, "o1")
	if in.Status != workflows.Completed || p.calls != 3 || p.charged["order/o1/charge"] != 1 {
		t.Fatalf("after the retries: %s (calls %d, charged %v)", in.Status, p.calls, p.charged)
	}
	if got := events(in); !strings.Contains(got, "step-failed:charge retry:charge step-failed:charge retry:charge step-done:charge") {
		t.Errorf("history: %s", got)
	}
}

// A step that keeps failing fails the instance: the completed steps'
// compensations run (the reservation is released), newest first.
func TestAFailedStepIsCompensated(t *testing.T) {
	p := &payments{charged: map[string]int{}, always: errors.New("card declined")}
	h := pt.Start(t, newInventory(), newOrder(p, false, workflows.Retry(1, time.Second)))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 3}))
	h.Advance(time.Second)
	in := instance(t, h, "o1")
	if in.Status != workflows.Compensated || in.State.Reserved || stockOf(t, h, "pen") != 0 {
		t.Fatalf("instance %s (reason %q), reserved %v, stock %d", in.Status, in.Reason, in.State.Reserved, stockOf(t, h, "pen"))
	}
	if !strings.Contains(in.Reason, "card declined") || !strings.Contains(events(in), "compensating:charge step-started:release compensated:release compensated") {
		t.Errorf("reason %q, history %s", in.Reason, events(in))
	}
	// A permanent failure is not retried.
	p2 := &payments{charged: map[string]int{}, always: entities.Permanent(errors.New("card stolen"))}
	h2 := pt.Start(t, newInventory(), newOrder(p2, false, workflows.Retry(5, time.Second)))
	pt.Expect[workflows.Instance[order]](t)(h2.Send("order", "o2", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	if in := instance(t, h2, "o2"); in.Status != workflows.Compensated || p2.calls != 1 {
		t.Fatalf("permanent failure: %s after %d calls", in.Status, p2.calls)
	}
}

// After its last retry a step with a failover goes there instead.
func TestFailover(t *testing.T) {
	p := &payments{charged: map[string]int{}, always: errors.New("provider down")}
	h := pt.Start(t, newInventory(), newOrder(p, false, workflows.Failover("refund-manually")))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	in := instance(t, h, "o1")
	if !strings.Contains(events(in), "failover:charge step-started:refund-manually") || in.Status != workflows.Compensated {
		t.Fatalf("%s: %s", in.Status, events(in))
	}
}

// A Wait step waits for its signal; a signal it does not wait for is
// refused; cancel compensates.
func TestSignalsAndCancel(t *testing.T) {
	p := &payments{charged: map[string]int{}}
	h := pt.Start(t, newInventory(), newOrder(p, true))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	if in := instance(t, h, "o1"); in.Status != workflows.Waiting || in.Step != "approve" {
		t.Fatalf("before the signal: %+v", in)
	}
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.SignalCommand("approval"), true))
	if in := instance(t, h, "o1"); in.Status != workflows.Completed || !in.State.Approved {
		t.Fatalf("after the signal: %+v", in)
	}
	pt.ExpectError(t, "failed_precondition")(h.Send("order", "o1", workflows.SignalCommand("approval"), true))

	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o2", workflows.CommandStart, order{Item: "ink", Amount: 4}))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o2", workflows.CommandCancel, struct{}{}))
	if in := instance(t, h, "o2"); in.Status != workflows.Cancelled || stockOf(t, h, "ink") != 0 {
		t.Fatalf("cancelled: %s, stock %d", in.Status, stockOf(t, h, "ink"))
	}
	// A Wait step's timeout fails it.
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o3", workflows.CommandStart, order{Item: "pad", Amount: 1}))
	h.Advance(time.Hour)
	if in := instance(t, h, "o3"); in.Status != workflows.Compensated || !strings.Contains(in.Reason, "no signal in time") {
		t.Fatalf("timed out: %s %q", in.Status, in.Reason)
	}
	// Pause holds the next step until resume.
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o4", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o4", workflows.CommandPause, struct{}{}))
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o4", workflows.SignalCommand("approval"), true))
	if in := instance(t, h, "o4"); in.Status != workflows.Paused || in.Next != "confirm" {
		t.Fatalf("paused: %+v", in)
	}
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o4", workflows.CommandResume, struct{}{}))
	if in := instance(t, h, "o4"); in.Status != workflows.Completed {
		t.Fatalf("resumed: %+v", in)
	}
}

// The gateway may not deliver the runtime's own commands.
func TestInternalCommandsAreRefused(t *testing.T) {
	h := pt.Start(t, newInventory(), newOrder(&payments{charged: map[string]int{}}, false))
	for _, c := range []struct{ entity, command string }{
		{"order", "done:charge"}, {"order", "failed:charge"}, {"order", "beat:charge"}, {"order", "lost:charge"},
		{"order", "retry:charge"}, {"order", "deadline"}, {"order-activities", "run:charge"},
	} {
		_, err := h.Send(c.entity, "o1", c.command, map[string]int{"attempt": 1}, pt.As(access.Caller{Subject: "mallory"}))
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("a gateway caller sent %s to %s: %v; want it forbidden", c.command, c.entity, err)
		}
	}
}

// An instance of a version the definition does not declare compatible is
// never interpreted: its commands are dead-lettered, naming both versions.
func TestVersions(t *testing.T) {
	p := &payments{charged: map[string]int{}}
	v1 := newOrder(p, true)
	h := pt.Start(t, newInventory(), v1)
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 1}))
	// The same instance under a version 2 definition.
	v2 := workflows.New[order]("order", workflows.Version(2), workflows.SendsTo("inventory"))
	workflows.Wait(v2, "approve", "approval", func(o order, ok bool) workflows.Next[order] { return workflows.End(o) })
	in := instance(t, h, "o1")
	h2 := pt.Start(t, newInventory(), v2)
	if err := h2.SetState("order", "o1", in); err != nil {
		t.Fatal(err)
	}
	_, err := h2.Send("order", "o1", workflows.SignalCommand("approval"), true)
	dl := h2.ExpectDeadLetter(t, "started under version 1; this definition is version 2")
	if err == nil || dl.Reason == "" {
		t.Fatalf("a version 1 instance was interpreted by version 2: %v", err)
	}
	// Declared compatible, it continues.
	v3 := workflows.New[order]("order", workflows.Version(3), workflows.Compatible(1), workflows.SendsTo("inventory"))
	workflows.Wait(v3, "approve", "approval", func(o order, ok bool) workflows.Next[order] { return workflows.End(o) })
	h3 := pt.Start(t, newInventory(), v3)
	if err := h3.SetState("order", "o1", in); err != nil {
		t.Fatal(err)
	}
	pt.Expect[workflows.Instance[order]](t)(h3.Send("order", "o1", workflows.SignalCommand("approval"), true))
	if got := instance(t, h3, "o1"); got.Status != workflows.Completed || got.Version != 1 {
		t.Fatalf("compatible: %+v", got)
	}
}

// Faults: seeded schedules of crashes, redeliveries, duplicates and clock
// jumps while 20 instances run, a third of them with a charge that always
// fails: every instance ends as it should; the payment service's ledger
// (one entry per idempotency key) holds exactly the completed instances'
// charges; each completed instance's reservation holds and each failed
// one's was released, once (the inventory's counts).
func TestInstancesUnderFaults(t *testing.T) {
	for seed := range uint64(200) {
		p := &payments{charged: map[string]int{}}
		fail := &payments{charged: map[string]int{}, always: errors.New("declined")}
		w := workflows.New[order]("order", workflows.SendsTo("inventory"))
		workflows.Call(w, "reserve", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "reserve", 1 },
			func(o order, _ stock) workflows.Next[order] { o.Reserved = true; return workflows.Goto(o, "charge") },
			workflows.Compensate("release"))
		workflows.Activity(w, "charge", func(ctx context.Context, a workflows.Attempt[order]) (string, error) {
			if a.State.Amount%3 == 0 {
				return fail.charge(ctx, a)
			}
			return p.charge(ctx, a)
		}, func(o order, id string) workflows.Next[order] { o.Charge = id; return workflows.End(o) }, workflows.Retry(2, time.Second))
		workflows.Call(w, "release", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "release", 1 },
			func(o order, _ stock) workflows.Next[order] { o.Reserved = false; return workflows.End(o) })
		h := pt.Start(t, newInventory(), w)
		work := make([]pt.Command, 20)
		for i := range work {
			work[i] = pt.Command{Entity: "order", Subject: fmt.Sprintf("o%d", i), Name: workflows.CommandStart, Payload: order{Item: fmt.Sprintf("item-%d", i%4), Amount: i}}
		}
		// No clock jumps during the workload: an answer held up by a crash
		// would time its step out, a legitimate failure this test does not
		// count on. The retries come after it.
		faults := pt.DefaultFaults
		faults.Gap = 0
		if _, err := h.RunSchedule(seed, work, faults); err != nil {
			t.Fatal(err)
		}
		h.Advance(time.Hour)
		reserved := map[string]int{}
		for i := range work {
			in := instance(t, h, fmt.Sprintf("o%d", i))
			want := workflows.Completed
			if i%3 == 0 {
				want = workflows.Compensated
			} else {
				reserved[fmt.Sprintf("item-%d", i%4)]++
			}
			if in.Status != want {
				t.Fatalf("seed %d: o%d is %s, want %s: %s", seed, i, in.Status, want, events(in))
			}
		}
		for item, n := range reserved {
			if got := stockOf(t, h, item); got != n {
				t.Fatalf("seed %d: %s has %d reserved, want %d (a step or compensation applied twice or lost)", seed, item, got, n)
			}
		}
		for i := range work {
			key := fmt.Sprintf("order/o%d/charge", i)
			if _, ok := p.charged[key]; ok == (i%3 == 0) {
				t.Fatalf("seed %d: the ledger %v key %s: charged %v", seed, p.charged, key, ok)
			}
		}
		h.ExpectHeld(t)
	}
}

// An activity hanging past its step's timeout: its context ends, the
// attempt fails, and the retry (which answers) completes the step.
func TestAHangingActivityTimesOut(t *testing.T) {
	hung := 0
	w := workflows.New[order]("order")
	workflows.Activity(w, "slow", func(ctx context.Context, a workflows.Attempt[order]) (string, error) {
		if a.Number == 1 {
			hung++
			<-ctx.Done() // hangs until the step's timeout
			return "", ctx.Err()
		}
		return "fast", nil
	}, func(o order, s string) workflows.Next[order] { o.Charge = s; return workflows.End(o) },
		workflows.Timeout(50*time.Millisecond), workflows.Retry(1, time.Second))
	h := pt.Start(t, w)
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{}))
	h.Advance(time.Second)
	in := instance(t, h, "o1")
	if in.Status != workflows.Completed || in.State.Charge != "fast" || hung != 1 || !strings.Contains(events(in), "step-failed:slow retry:slow step-done:slow") {
		t.Fatalf("%s %q hung %d: %s", in.Status, in.State.Charge, hung, events(in))
	}
}

// A call that times out may still take effect (the target applies it
// late): when the instance then fails, that step's compensation runs too.
// Here the inventory lags past the reserve's timeout; once it catches up
// it applies the reservation and then its release, in that order.
func TestATimedOutCallIsCompensated(t *testing.T) {
	w := workflows.New[order]("order", workflows.SendsTo("inventory"))
	workflows.Call(w, "reserve", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "reserve", o.Amount },
		func(o order, _ stock) workflows.Next[order] { return workflows.End(o) },
		workflows.Compensate("release"), workflows.Timeout(time.Second))
	workflows.Call(w, "release", func(_ string, o order) (string, string, string, any) { return "inventory", o.Item, "release", o.Amount },
		func(o order, _ stock) workflows.Next[order] { return workflows.End(o) })
	h := pt.Start(t, newInventory(), w)
	if err := h.LagEntity("inventory"); err != nil {
		t.Fatal(err)
	}
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{Item: "pen", Amount: 2}))
	h.Advance(time.Second) // the reserve times out
	if err := h.CatchUp("inventory"); err != nil {
		t.Fatal(err)
	}
	in := instance(t, h, "o1")
	if in.Status != workflows.Compensated || stockOf(t, h, "pen") != 0 || !strings.Contains(events(in), "maybe-done:reserve compensating:reserve step-started:release compensated:release") {
		t.Fatalf("%s, stock %d: %s", in.Status, stockOf(t, h, "pen"), events(in))
	}
}

// An activity whose worker stops answering (here its runner lags: no
// heartbeat comes) is retried once its HeartbeatTimeout passes, long
// before its step's Timeout; when the runner comes back, the attempt that
// was given up on is ignored and the instance completes once.
func TestALostActivityIsRetriedAtItsHeartbeatTimeout(t *testing.T) {
	runs := map[int]int{}
	w := workflows.New[order]("order")
	workflows.Activity(w, "charge", func(ctx context.Context, a workflows.Attempt[order]) (string, error) {
		runs[a.Number]++
		workflows.Heartbeat(ctx)
		return fmt.Sprintf("attempt-%d", a.Number), nil
	}, func(o order, s string) workflows.Next[order] { o.Charge = s; return workflows.End(o) },
		workflows.Timeout(time.Hour), workflows.HeartbeatTimeout(10*time.Second), workflows.Retry(3, time.Second))
	h := pt.Start(t, w)
	if err := h.LagEntity("order-activities"); err != nil {
		t.Fatal(err)
	}
	pt.Expect[workflows.Instance[order]](t)(h.Send("order", "o1", workflows.CommandStart, order{}))
	h.Advance(9 * time.Second)
	if in := instance(t, h, "o1"); in.Attempt != 1 || strings.Contains(events(in), "step-failed") {
		t.Fatalf("before its heartbeat timeout: attempt %d: %s", in.Attempt, events(in))
	}
	h.Advance(2 * time.Second) // the heartbeat timeout, then the backoff
	in := instance(t, h, "o1")
	if in.Attempt != 2 || !strings.Contains(in.History[len(in.History)-2].Detail, "heartbeat_timeout") {
		t.Fatalf("after its heartbeat timeout: attempt %d: %+v", in.Attempt, in.History)
	}
	if err := h.CatchUp("order-activities"); err != nil {
		t.Fatal(err)
	}
	h.Advance(time.Minute)
	in = instance(t, h, "o1")
	if in.Status != workflows.Completed || runs[1] != 1 || runs[2] != 1 || strings.Count(events(in), "step-done") != 1 {
		t.Fatalf("%s %q runs %v: %s", in.Status, in.State.Charge, runs, events(in))
	}
	if timers, _ := h.Timers("order", "o1"); len(timers) != 0 {
		t.Errorf("timers left: %+v", timers)
	}
}
