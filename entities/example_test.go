package entities_test

import (
	"fmt"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
)

type Counter struct {
	Value int `json:"value"`
}

type Increment struct {
	By int `json:"by"`
}

// A key-value entity: each command returns the new state.
func ExampleKeyValue() {
	counter := entities.KeyValue[Counter]("counter")
	entities.Command(counter, "increment", func(ctx *entities.Context[Counter], cmd Increment) entities.Effect[Counter] {
		if cmd.By <= 0 {
			return ctx.Error(entities.InvalidArgument, "by must be positive, got %d", cmd.By)
		}
		next := Counter{Value: ctx.State().Value + cmd.By}
		return ctx.Update(next).Reply(next)
	})

	h, _ := partitatest.New(counter)
	r, _ := h.Send("counter", "c-1", "increment", Increment{By: 2})
	fmt.Println(string(r.Data), r.Seq)
	r, _ = h.Send("counter", "c-1", "increment", Increment{By: -1})
	fmt.Println(r.Code, r.Message)
	// Output:
	// {"value":2} 1
	// invalid_argument by must be positive, got -1
}

type Account struct {
	Balance int `json:"balance"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

func (Deposited) EventType() string { return "Deposited" }

type Deposit struct {
	Amount int `json:"amount"`
}

// An event-sourced entity: commands persist events, events fold into state.
func ExampleEventSourced() {
	account := entities.EventSourced[Account, entities.Event]("account", func(a Account, e entities.Event) Account {
		if d, ok := e.(Deposited); ok {
			a.Balance += d.Amount
		}
		return a
	})
	entities.EventCommand(account, "deposit", func(ctx *entities.EventContext[Account, entities.Event], cmd Deposit) entities.Effect[Account] {
		// The reply is computed from the state after the event is folded.
		return ctx.Persist(Deposited(cmd)).ReplyWith(func(a Account) any { return map[string]int{"balance": a.Balance} })
	})

	h, _ := partitatest.New(account)
	_, _ = h.Send("account", "acc-1", "deposit", Deposit{Amount: 10})
	r, _ := h.Send("account", "acc-1", "deposit", Deposit{Amount: 5})
	fmt.Println(string(r.Data))
	for _, e := range h.Events("account", "acc-1") {
		fmt.Println(e.ID(), e.Type(), string(e.Data()))
	}
	// Output:
	// {"balance":15}
	// acc-1:1 Deposited {"amount":10}
	// acc-1:2 Deposited {"amount":5}
}

// A handler can send commands to other entities: a saga without a workflow
// engine. The sent command's id derives from this command's, so a redelivery
// does not apply it twice.
func ExampleEffect_Send() {
	orders := entities.KeyValue[struct{ Placed bool }]("order", entities.SendsTo("counter"))
	entities.Command(orders, "place", func(ctx *entities.Context[struct{ Placed bool }], _ struct{}) entities.Effect[struct{ Placed bool }] {
		return ctx.Update(struct{ Placed bool }{true}).Send("counter", "orders-placed", "increment", Increment{By: 1})
	})
	counter := entities.KeyValue[Counter]("counter")
	entities.Command(counter, "increment", func(ctx *entities.Context[Counter], cmd Increment) entities.Effect[Counter] {
		return ctx.Update(Counter{Value: ctx.State().Value + cmd.By})
	})

	h, _ := partitatest.New(orders, counter)
	_, _ = h.Send("order", "o-1", "place", struct{}{}, partitatest.ID("p-1"))
	_, _ = h.Send("order", "o-1", "place", struct{}{}, partitatest.ID("p-1")) // redelivered
	_, _ = h.Send("order", "o-2", "place", struct{}{})
	var c Counter
	_, _ = h.State("counter", "orders-placed", &c)
	fmt.Println(c.Value)
	// Output:
	// 2
}
