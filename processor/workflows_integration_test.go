package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/workflows"
)

type purchase struct {
	Item    string `json:"item"`
	Charged string `json:"charged"`
}

// A workflow on the real broker: 30 instances reserve stock (an entity
// call), charge a fake payment service over HTTP (an activity whose first
// attempt of every third instance fails) and confirm; the runtime is
// stopped and started again while they run. Every instance completes, the
// service's ledger holds each instance's idempotency key once, and the
// stock was reserved once per instance.
func TestWorkflowOnTheBroker(t *testing.T) {
	var mu sync.Mutex
	ledger := map[string]int{}
	attempts := map[string]int{}
	pay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		attempts[key]++
		var n int
		fmt.Sscanf(key, "buy/p%d/charge", &n)
		if n%3 == 0 && attempts[key] == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		ledger[key] = 1 // the service charges a key once
		fmt.Fprintf(w, "charge-%d", len(ledger))
	}))
	defer pay.Close()

	stockE := entities.KeyValue[int]("stock")
	entities.Command(stockE, "reserve", func(ctx *entities.Context[int], _ struct{}) entities.Effect[int] {
		return ctx.Update(ctx.State() + 1).Reply(ctx.State() + 1)
	})
	buy := workflows.New[purchase]("buy", workflows.SendsTo("stock"))
	workflows.Call(buy, "reserve", func(_ string, p purchase) (string, string, string, any) {
		return "stock", p.Item, "reserve", struct{}{}
	},
		func(p purchase, _ int) workflows.Next[purchase] { return workflows.Goto(p, "charge") })
	workflows.Activity(buy, "charge", func(ctx context.Context, a workflows.Attempt[purchase]) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pay.URL, nil)
		req.Header.Set("Idempotency-Key", a.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("payment service: %s", resp.Status)
		}
		return "ok", nil
	}, func(p purchase, id string) workflows.Next[purchase] { p.Charged = id; return workflows.End(p) },
		workflows.Retry(3, 500*time.Millisecond), workflows.Timeout(5*time.Second))

	a := newApp(t, stockE, buy)
	a.start()
	const n = 30
	for i := range n {
		a.send(message(a.topics.Commands("buy"), cmd(fmt.Sprintf("p%d", i), workflows.CommandStart, fmt.Sprintf("start-%d", i), purchase{Item: fmt.Sprintf("item-%d", i%3)})))
		if i == n/2 {
			a.stop()
			a.renew()
			a.start()
		}
	}
	a.table("buy", a.cfg.Partitions, 2*time.Minute, func(latest map[string]*envelope.Envelope) bool {
		for i := range n {
			env := latest[fmt.Sprintf("p%d", i)]
			if env == nil {
				return false
			}
			var in workflows.Instance[purchase]
			if err := json.Unmarshal(env.State, &in); err != nil {
				t.Fatal(err)
			}
			if in.Status == workflows.Compensated || in.Status == workflows.Failed {
				t.Fatalf("p%d: %s: %s", i, in.Status, in.Reason)
			}
			if in.Status != workflows.Completed {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ledger) != n {
		t.Errorf("the ledger holds %d keys, want %d", len(ledger), n)
	}
	for i := range n {
		if key := fmt.Sprintf("buy/p%d/charge", i); ledger[key] != 1 || i%3 == 0 && attempts[key] < 2 {
			t.Errorf("%s: ledger %d, attempts %d", key, ledger[key], attempts[key])
		}
	}
	a.table("stock", a.cfg.Partitions, time.Minute, func(latest map[string]*envelope.Envelope) bool {
		for i := range 3 {
			env := latest[fmt.Sprintf("item-%d", i)]
			if env == nil {
				return false
			}
			var got int
			_ = json.Unmarshal(env.State, &got)
			if got > n/3 {
				t.Fatalf("item-%d reserved %d times, want %d: a step applied twice", i, got, n/3)
			}
			if got < n/3 {
				return false
			}
		}
		return true
	})
}

// job is the state of the test's long-activity workflow.
type job struct {
	Mode string `json:"mode"` // wide, beating or silent
	Done int    `json:"done"`
}

// steps records the workflow steps' reports (processor.WorkflowObserver).
type steps struct {
	mu  sync.Mutex
	got map[string]int // "step outcome" -> reports
}

func (s *steps) Handled(string, time.Duration) {}
func (s *steps) Rebalanced(string, []int32)    {}
func (s *steps) WorkflowStep(_, step, outcome string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[step+" "+outcome]++
}

// Activities on the real broker run off the partition goroutines, and a
// long one proves it is alive with heartbeats:
//   - 24 activities wait until 12 of them run at once, more than the
//     runner's 8 partitions could run were they on their goroutines;
//   - an activity that runs three times its HeartbeatTimeout, beating,
//     completes at its first attempt;
//   - one that hangs without a heartbeat is given up on at its
//     HeartbeatTimeout, and its second attempt completes the instance
//     (its Timeout, a minute, is never waited for).
//
// The runtime's observer gets each attempt's outcome.
func TestActivitiesRunOffThePartitionsAndHeartbeat(t *testing.T) {
	const wide, together = 24, 12
	var mu sync.Mutex
	running, most := 0, 0
	all := make(chan struct{})
	var once sync.Once
	long := workflows.New[job]("long")
	workflows.Activity(long, "work", func(ctx context.Context, a workflows.Attempt[job]) (int, error) {
		switch {
		case a.State.Mode == "silent" && a.Number == 1:
			<-ctx.Done()
			return 0, ctx.Err()
		case a.State.Mode == "beating":
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				workflows.Heartbeat(ctx)
			}
		case a.State.Mode == "wide":
			mu.Lock()
			running++
			if most = max(most, running); running == together {
				once.Do(func() { close(all) })
			}
			mu.Unlock()
			defer func() { mu.Lock(); running--; mu.Unlock() }()
			for wait := time.After(30 * time.Second); ; {
				workflows.Heartbeat(ctx)
				select {
				case <-all:
				case <-wait:
				case <-time.After(100 * time.Millisecond):
					continue
				}
				break
			}
		}
		return a.Number, nil
	}, func(j job, n int) workflows.Next[job] { j.Done = n; return workflows.End(j) },
		workflows.Timeout(time.Minute), workflows.HeartbeatTimeout(time.Second), workflows.Retry(2, 100*time.Millisecond))

	a := newApp(t, long)
	obs := &steps{got: map[string]int{}}
	a.cfg.Observe = obs
	a.renew()
	a.start()
	ids := []string{"beating", "silent"}
	for i := range wide {
		ids = append(ids, fmt.Sprintf("wide-%d", i))
	}
	for _, id := range ids {
		mode, _, _ := strings.Cut(id, "-")
		a.send(message(a.topics.Commands("long"), cmd(id, workflows.CommandStart, "start-"+id, job{Mode: mode})))
	}
	var silent workflows.Instance[job]
	a.table("long", a.cfg.Partitions, 2*time.Minute, func(latest map[string]*envelope.Envelope) bool {
		for _, id := range ids {
			env := latest[id]
			if env == nil {
				return false
			}
			var in workflows.Instance[job]
			if err := json.Unmarshal(env.State, &in); err != nil {
				t.Fatal(err)
			}
			if over := in.Status == workflows.Compensated || in.Status == workflows.Failed; over {
				t.Fatalf("%s: %s: %+v", id, in.Status, in.History)
			}
			if in.Status != workflows.Completed {
				return false
			}
			if want := map[bool]int{true: 2, false: 1}[id == "silent"]; in.State.Done != want {
				t.Fatalf("%s completed at attempt %d, want %d: %+v", id, in.State.Done, want, in.History)
			}
			if id == "silent" {
				silent = in
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if most < together {
		t.Errorf("at most %d activities ran at once, want %d (the runner has %d partitions)", most, together, a.cfg.Partitions)
	}
	if lost := silent.History[len(silent.History)-4]; !strings.Contains(lost.Detail, "heartbeat_timeout") {
		t.Errorf("the silent activity's first attempt: %+v", silent.History)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.got["work done"] != len(ids) || obs.got["work retried"] != 1 {
		t.Errorf("observed %v, want %d done and 1 retried", obs.got, len(ids))
	}
}

// A definition that does not run the version of unfinished instances is
// refused when the worker starts, not at the instances' next command:
// Run stops with workflows.ErrIncompatible, naming them, and the runtime
// is never ready. Declared Compatible, the new definition runs them.
func TestAnIncompatibleDefinitionIsRefusedAtStartUp(t *testing.T) {
	define := func(opts ...workflows.Option) *workflows.Workflow[job] {
		w := workflows.New[job]("approval", opts...)
		workflows.Wait(w, "approve", "ok", func(j job, _ struct{}) workflows.Next[job] { j.Done = 1; return workflows.End(j) })
		return w
	}
	a := newApp(t, define())
	a.start()
	for _, id := range []string{"a1", "a2"} {
		a.send(message(a.topics.Commands("approval"), cmd(id, workflows.CommandStart, "start-"+id, job{})))
	}
	rows, err := a.rt.View("approval-by-status")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := rows.Count(context.Background(), views.Query{Index: "status", Eq: workflows.Waiting}); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the instances are not waiting in the status view")
		}
	}
	a.stop()

	a.parts = []processor.Part{define(workflows.Version(2))}
	a.renew()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = a.rt.Run(ctx)
	if !errors.Is(err, workflows.ErrIncompatible) || !strings.Contains(err.Error(), "a1 (version 1, waiting)") || !strings.Contains(err.Error(), "a2 (version 1, waiting)") {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-a.rt.Ready():
		t.Error("a refused runtime was ready")
	default:
	}

	a.parts = []processor.Part{define(workflows.Version(2), workflows.Compatible(1))}
	a.renew()
	a.start()
	a.send(message(a.topics.Commands("approval"), cmd("a1", workflows.SignalCommand("ok"), "ok-a1", struct{}{})))
	a.table("approval", a.cfg.Partitions, time.Minute, func(latest map[string]*envelope.Envelope) bool {
		var in workflows.Instance[job]
		if env := latest["a1"]; env == nil || json.Unmarshal(env.State, &in) != nil {
			return false
		}
		return in.Status == workflows.Completed && in.State.Done == 1
	})
}
