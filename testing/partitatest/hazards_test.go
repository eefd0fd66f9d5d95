package partitatest_test

// The four hazards of at-least-once delivery on Kafka, each shown hitting a
// naive handler or view, and Partita's defence holding. Run them with
// go test ./testing -run Example_hazard -v.

import (
	"context"
	"fmt"

	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

type Payment struct {
	Amount int `json:"amount"`
}

type Wallet struct {
	Balance int `json:"balance"`
}

// Hazard 1, redelivery: a consumer that is redelivered a message it already
// handled (its offset was not committed before a crash) handles it again.
// A naive handler that adds to a balance kept outside Partita counts the
// payment twice; a Partita entity remembers the ids it applied and does not.
func Example_hazardRedelivery() {
	h0, _ := pt.New()
	payments := h0.Topic("payments")

	naive := map[string]int{} // a balance kept by the handler itself
	counter := entities.Consumer("naive-counter")
	entities.Subscribe(counter, payments, "Paid", func(ctx *entities.Context[struct{}], p Payment) entities.Effect[struct{}] {
		naive[ctx.Subject()] += p.Amount
		return ctx.Ignore()
	})
	wallet := entities.KeyValue[Wallet]("wallet")
	entities.Subscribe(wallet, payments, "Paid", func(ctx *entities.Context[Wallet], p Payment) entities.Effect[Wallet] {
		return ctx.Update(Wallet{Balance: ctx.State().Balance + p.Amount})
	})

	h, _ := pt.New(counter, wallet)
	_ = h.Publish(payments, "Paid", "w1", Payment{Amount: 5}, pt.ID("pay-1"))
	_ = h.Publish(payments, "Paid", "w1", Payment{Amount: 5}, pt.ID("pay-1")) // redelivered
	var w Wallet
	_, _ = h.State("wallet", "w1", &w)
	fmt.Println("naive balance:", naive["w1"])
	fmt.Println("Partita balance:", w.Balance)
	// Output:
	// naive balance: 10
	// Partita balance: 5
}

type Order struct {
	Status string `json:"status"`
}

type StatusChanged struct {
	Status string `json:"status"`
}

func (StatusChanged) EventType() string { return "StatusChanged" }

type OrderRow struct {
	Status string `json:"status"`
}

// Hazard 2, an old message behind new ones: a redelivered old event arrives
// after newer ones. A naive last-write-wins read model goes back to the old
// status; a Partita view compares the event's sequence number with the
// row's and drops it.
func Example_hazardOldBehindNew() {
	order := entities.EventSourced[Order, StatusChanged]("order", func(o Order, e StatusChanged) Order { return Order(e) })
	entities.EventCommand(order, "set-status", func(ctx *entities.EventContext[Order, StatusChanged], s StatusChanged) entities.Effect[Order] {
		return ctx.Persist(s)
	})
	h0, _ := pt.New()
	naive := map[string]string{} // last write wins
	reader := entities.Consumer("naive-reader")
	entities.Subscribe(reader, h0.Topic("order.events"), "StatusChanged", func(ctx *entities.Context[struct{}], e StatusChanged) entities.Effect[struct{}] {
		naive[ctx.Subject()] = e.Status
		return ctx.Ignore()
	})
	view := views.New[OrderRow]("orders")
	views.FromEvent(view, "order", "StatusChanged", func(u views.Update[OrderRow, StatusChanged]) views.Effect[OrderRow] {
		return u.Set(OrderRow(u.Value))
	})

	h, _ := pt.New(order, reader, view)
	_, _ = h.Send("order", "o1", "set-status", StatusChanged{Status: "paid"})
	_, _ = h.Send("order", "o1", "set-status", StatusChanged{Status: "shipped"})
	_ = h.RedeliverEvent(h.Topic("order.events"), "o1:1") // "paid" again, behind "shipped"
	store, _ := h.View("orders")
	row, _, _ := views.Get[OrderRow](context.Background(), store, "o1")
	fmt.Println("naive status:", naive["o1"])
	fmt.Println("Partita view:", row.Status)
	// Output:
	// naive status: paid
	// Partita view: shipped
}

type Count struct {
	N int `json:"n"`
}

// Hazard 3, a message on the wrong partition: a producer with another
// partitioner, random keys or no key puts a subject's message on a
// partition other than the one its state lives on. A naive processor keeps
// state under the record's key on the record's partition, so the update
// lands beside the subject's state instead of in it: a lost update, and a
// stale read of the subject. Partita re-routes the record to the subject's
// partition first.
func Example_hazardMisrouted() {
	counter := entities.KeyValue[Count]("counter")
	entities.Command(counter, "increment", func(ctx *entities.Context[Count], _ struct{}) entities.Effect[Count] {
		return ctx.Update(Count{N: ctx.State().N + 1})
	})
	h, _ := pt.New(counter)
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	_, _ = h.Send("counter", "c1", "increment", struct{}{}, pt.Misrouted())

	// A naive processor trusts the record: it keeps state per partition and key.
	naive := map[string]int{}
	for _, r := range h.Records(h.Topic("counter.commands")) {
		naive[fmt.Sprintf("%d/%s", r.Partition, r.Key)]++
	}
	fmt.Println("naive: count of c1 on its partition:", naive[fmt.Sprintf("%d/c1", h.Partition("c1"))])
	var c Count
	_, _ = h.State("counter", "c1", &c)
	fmt.Println("Partita: count of c1:", c.N, "re-routed:", h.Rerouted())
	// Output:
	// naive: count of c1 on its partition: 1
	// Partita: count of c1: 2 re-routed: 1
}

// Hazard 4, a stale read: a view is eventually consistent, so a query right
// after a write can return the row as it was. The reply's position token
// lets the query wait until the view has applied the write.
func Example_hazardStaleRead() {
	counter := entities.KeyValue[Count]("counter")
	entities.Command(counter, "increment", func(ctx *entities.Context[Count], _ struct{}) entities.Effect[Count] {
		return ctx.Update(Count{N: ctx.State().N + 1})
	})
	counts := views.New[Count]("counts")
	views.FromState(counts, "counter", func(u views.Update[Count, Count]) views.Effect[Count] { return u.Set(u.Value) })
	h, _ := pt.New(counter, counts)
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	_ = h.LagView("counts") // the view falls behind
	r, _ := h.Send("counter", "c1", "increment", struct{}{})

	store, _ := h.View("counts")
	stale, _, _ := views.Get[Count](context.Background(), store, "c1")
	fmt.Println("read without the token:", stale.N)
	row, _, _ := h.ReadAfter("counts", r.Position, "c1")
	fresh, _ := views.Decode[Count]([]views.Row{row})
	fmt.Println("read after the reply's position:", fresh[0].N)
	// Output:
	// read without the token: 1
	// read after the reply's position: 2
}
