package workflows_test

import (
	"context"
	"fmt"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/workflows"
)

type transfer struct {
	From, To string
	Amount   int
	Receipt  string
}

type account struct{ Balance int }

// A money transfer: debit (an entity call, compensated by a refund), then a
// notification activity that fails once and is retried, then the end.
func Example() {
	accounts := entities.KeyValue[account]("account")
	entities.Command(accounts, "debit", func(ctx *entities.Context[account], n int) entities.Effect[account] {
		s := ctx.State()
		if s.Balance < n {
			return ctx.Error(entities.FailedPrecondition, "balance %d is less than %d", s.Balance, n)
		}
		s.Balance -= n
		return ctx.Update(s).Reply(s)
	})
	entities.Command(accounts, "credit", func(ctx *entities.Context[account], n int) entities.Effect[account] {
		s := ctx.State()
		s.Balance += n
		return ctx.Update(s).Reply(s)
	})

	failures := 1
	w := workflows.New[transfer]("transfer", workflows.SendsTo("account"), workflows.Deadline(24*time.Hour))
	workflows.Call(w, "debit",
		func(_ string, t transfer) (string, string, string, any) { return "account", t.From, "debit", t.Amount },
		func(t transfer, _ account) workflows.Next[transfer] { return workflows.Goto(t, "notify") },
		workflows.Compensate("refund"))
	workflows.Activity(w, "notify",
		func(ctx context.Context, a workflows.Attempt[transfer]) (string, error) {
			if failures > 0 { // the mail service is down, once
				failures--
				return "", fmt.Errorf("mail service unavailable")
			}
			return "mail:" + a.Key, nil // a.Key is the same for every attempt
		},
		func(t transfer, receipt string) workflows.Next[transfer] {
			t.Receipt = receipt
			return workflows.End(t)
		},
		workflows.Retry(3, time.Minute), workflows.Timeout(10*time.Second))
	workflows.Call(w, "refund",
		func(_ string, t transfer) (string, string, string, any) { return "account", t.From, "credit", t.Amount },
		func(t transfer, _ account) workflows.Next[transfer] { return workflows.End(t) })

	h, _ := partitatest.New(accounts, w)
	_, _ = h.Send("account", "alice", "credit", 100)
	_, _ = h.Send("transfer", "t1", workflows.CommandStart, transfer{From: "alice", To: "bob", Amount: 30})
	var in workflows.Instance[transfer]
	_, _ = h.State("transfer", "t1", &in)
	fmt.Println(in.Status, in.Step, in.Attempt)

	h.Advance(time.Minute) // the retry's backoff
	_, _ = h.State("transfer", "t1", &in)
	fmt.Println(in.Status, in.State.Receipt)

	_, _ = h.Send("transfer", "t2", workflows.CommandStart, transfer{From: "alice", To: "bob", Amount: 500})
	var t2 workflows.Instance[transfer]
	_, _ = h.State("transfer", "t2", &t2)
	fmt.Println(t2.Status, t2.Reason)
	// Output:
	// running notify 1
	// completed mail:transfer/t1/notify
	// compensated step debit failed: failed_precondition: balance 70 is less than 500
}

// A long activity beats as it goes: with a HeartbeatTimeout on its step, an
// attempt whose worker dies is retried after a minute, not at the step's
// Timeout of a day.
func ExampleHeartbeat() {
	w := workflows.New[transfer]("export")
	workflows.Activity(w, "copy",
		func(ctx context.Context, a workflows.Attempt[transfer]) (int, error) {
			copied := 0
			for range 3 { // a chunk at a time
				copied++
				workflows.Heartbeat(ctx)
			}
			return copied, ctx.Err()
		},
		func(t transfer, chunks int) workflows.Next[transfer] {
			t.Receipt = fmt.Sprintf("%d chunks", chunks)
			return workflows.End(t)
		},
		workflows.Timeout(24*time.Hour), workflows.HeartbeatTimeout(time.Minute), workflows.Retry(5, time.Second))

	h, _ := partitatest.New(w)
	_, _ = h.Send("export", "e1", workflows.CommandStart, transfer{})
	var in workflows.Instance[transfer]
	_, _ = h.State("export", "e1", &in)
	fmt.Println(in.Status, in.State.Receipt)
	// Output:
	// completed 3 chunks
}
