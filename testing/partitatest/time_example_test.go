package partitatest_test

import (
	"fmt"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
)

type basket struct {
	Items   int
	Expired bool
}

type addItem struct{}

// newBasket is a basket that expires after an hour without a change: every
// change starts the timer "idle" again, which replaces the pending one.
func newBasket() *entities.Entity[basket] {
	b := entities.KeyValue[basket]("basket")
	entities.Command(b, "add", func(ctx *entities.Context[basket], _ addItem) entities.Effect[basket] {
		s := ctx.State()
		s.Items++
		return ctx.Update(s).StartTimer("idle", time.Hour, "expire", struct{}{}).Reply(s)
	})
	entities.Command(b, "expire", func(ctx *entities.Context[basket], _ struct{}) entities.Effect[basket] {
		s := ctx.State()
		s.Expired = true
		return ctx.Update(s)
	})
	return b
}

// A durable timer on the harness's clock: Advance fires what falls due, in
// due order, each once.
func ExampleHarness_Advance() {
	h, _ := partitatest.New(newBasket())
	_, _ = h.Send("basket", "b1", "add", addItem{})
	h.Advance(50 * time.Minute)
	_, _ = h.Send("basket", "b1", "add", addItem{}) // resets the timer
	timers, _ := h.Timers("basket", "b1")
	fmt.Println(len(timers), timers[0].Name, timers[0].Due.Sub(h.Now()))

	h.Advance(59 * time.Minute)
	var s basket
	_, _ = h.State("basket", "b1", &s)
	fmt.Println(s.Items, s.Expired)

	h.Advance(time.Minute)
	_, _ = h.State("basket", "b1", &s)
	timers, _ = h.Timers("basket", "b1")
	fmt.Println(s.Items, s.Expired, len(timers))
	// Output:
	// 1 idle 1h0m0s
	// 2 false
	// 2 true 0
}

type owner struct{ Name string }

type account struct {
	Open   bool
	Reason string
}

type openAccount struct{ Owner string }

// newAccounts is an entity that asks "owner" whether an account's owner
// exists before it opens the account.
func newAccounts() *entities.Entity[account] {
	accounts := entities.KeyValue[account]("account", entities.SendsTo("owner"))
	entities.Command(accounts, "open", func(ctx *entities.Context[account], c openAccount) entities.Effect[account] {
		return ctx.Reply("checking").Ask(entities.Ask{Entity: "owner", Subject: c.Owner, Command: "get", Payload: struct{}{},
			OnReply: "owner-found", OnError: "owner-missing", Timeout: time.Minute})
	})
	entities.Command(accounts, "owner-found", func(ctx *entities.Context[account], o owner) entities.Effect[account] {
		return ctx.Update(account{Open: true, Reason: "owner " + o.Name})
	})
	entities.Command(accounts, "owner-missing", func(ctx *entities.Context[account], e entities.AskError) entities.Effect[account] {
		return ctx.Update(account{Reason: string(e.Code) + ": " + e.Message})
	})
	return accounts
}

// An entity asks another and gets exactly one answer: the reply, an error
// (the target's error reply or a dead letter), or the timeout.
func ExampleHarness_Advance_ask() {
	owners := entities.KeyValue[owner]("owner")
	entities.Command(owners, "get", func(ctx *entities.Context[owner], _ struct{}) entities.Effect[owner] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no owner %s", ctx.Subject())
		}
		return ctx.Reply(ctx.State())
	})
	entities.Command(owners, "register", func(ctx *entities.Context[owner], o owner) entities.Effect[owner] {
		return ctx.Update(o)
	})
	accounts := newAccounts()
	h, _ := partitatest.New(owners, accounts)
	_, _ = h.Send("owner", "ada", "register", owner{Name: "Ada"})
	_, _ = h.Send("account", "a1", "open", openAccount{Owner: "ada"})
	_, _ = h.Send("account", "a2", "open", openAccount{Owner: "bob"})
	var a1, a2 account
	_, _ = h.State("account", "a1", &a1)
	_, _ = h.State("account", "a2", &a2)
	fmt.Println(a1)
	fmt.Println(a2)
	// Output:
	// {true owner Ada}
	// {false not_found: no owner bob}
}

// A seeded schedule with timers: the clock's jumps fire the timers that
// fall due, in due order, among redeliveries, duplicates, misrouted
// commands, crashes and lag; after the workload the clock moves on until
// no timer is pending. Each basket's last "idle" timer fired once, after
// its last item, and the harness found nothing wrong (no timer left, none
// fired early or twice).
func ExampleHarness_RunSchedule_timers() {
	h, _ := partitatest.New(newBasket())
	var work []partitatest.Command
	for i := range 30 {
		work = append(work, partitatest.Command{Entity: "basket", Subject: fmt.Sprintf("b%d", i%3), Name: "add", Payload: addItem{}})
	}
	rep, _ := h.RunSchedule(7, work, partitatest.DefaultFaults)
	for _, b := range []string{"b0", "b1", "b2"} {
		var s basket
		_, _ = h.State("basket", b, &s)
		timers, _ := h.Timers("basket", b)
		fmt.Println(b, s.Items, s.Expired, len(timers))
	}
	fmt.Println(rep.Fired >= 3, rep.Drain > 0, len(h.Violations()))
	// Output:
	// b0 10 true 0
	// b1 10 true 0
	// b2 10 true 0
	// true true 0
}

// An asked entity that lags answers too late: the asker's timeout fires
// first, and the answer that comes when it catches up is dropped.
func ExampleHarness_LagEntity() {
	owners := entities.KeyValue[owner]("owner")
	entities.Command(owners, "get", func(ctx *entities.Context[owner], _ struct{}) entities.Effect[owner] {
		return ctx.Reply(owner{Name: "Ada"})
	})
	accounts := newAccounts()
	h, _ := partitatest.New(owners, accounts)
	_ = h.LagEntity("owner")
	_, _ = h.Send("account", "a1", "open", openAccount{Owner: "ada"})
	h.Advance(time.Minute)
	_ = h.CatchUp("owner") // answers now: too late
	var a account
	_, _ = h.State("account", "a1", &a)
	fmt.Println(a)
	// Output:
	// {false timeout: no answer from owner within 1m0s}
}
