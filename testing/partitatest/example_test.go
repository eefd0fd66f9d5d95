package partitatest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

// counterApp is a counter entity and a view of the counts.
func counterApp() (*entities.Entity[Count], *views.View[Count]) {
	counter := entities.KeyValue[Count]("counter", entities.PublishesTo("app.milestones"))
	entities.Command(counter, "increment", func(ctx *entities.Context[Count], _ struct{}) entities.Effect[Count] {
		next := Count{N: ctx.State().N + 1}
		eff := ctx.Update(next).Reply(next)
		if next.N%10 == 0 {
			eff = eff.Publish("app.milestones", "Reached", next)
		}
		return eff
	})
	entities.Command(counter, "reset", func(ctx *entities.Context[Count], _ struct{}) entities.Effect[Count] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no counter %s", ctx.Subject())
		}
		return ctx.Update(Count{}).Reply(Count{})
	})
	counts := views.New[Count]("counts", views.Index("n"))
	views.FromState(counts, "counter", func(u views.Update[Count, Count]) views.Effect[Count] { return u.Set(u.Value) })
	return counter, counts
}

func Example() {
	counter, counts := counterApp()
	h, err := pt.New(counter, counts)
	if err != nil {
		panic(err)
	}
	r, _ := h.Send("counter", "c1", "increment", struct{}{})
	fmt.Println(string(r.Data), "seq", r.Seq)
	var c Count
	exists, _ := h.State("counter", "c1", &c)
	fmt.Println(exists, c.N)
	// Output:
	// {"n":1} seq 1
	// true 1
}

func ExampleStart() {
	t := &testing.T{} // in a test: the test's t
	counter, counts := counterApp()
	h := pt.Start(t, counter, counts)
	r, err := h.Send("counter", "c1", "reset", struct{}{})
	pt.ExpectError(t, "not_found")(r, err)
	fmt.Println(r.Code, r.Message)
	// Output:
	// not_found no counter c1
}

func ExampleNewWith() {
	counter, counts := counterApp()
	h, _ := pt.NewWith([]pt.Option{pt.Partitions(8), pt.CommitEvery(5)}, counter, counts)
	fmt.Println(h.Partition("c1") < 8)
	// Output:
	// true
}

func ExampleHarness_Send() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	for range 10 {
		_, _ = h.Send("counter", "c1", "increment", struct{}{})
	}
	for _, e := range h.Published("app.milestones") {
		fmt.Println(e.Type(), string(e.Data()))
	}
	// Output:
	// Reached {"n":10}
}

func ExampleHarness_Redeliver() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	_, _ = h.Send("counter", "c1", "increment", struct{}{}, pt.ID("inc-1"))
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	r, _ := h.Redeliver("inc-1") // behind the newer command
	fmt.Println(string(r.Data), r.Duplicate)
	var c Count
	_, _ = h.State("counter", "c1", &c)
	fmt.Println(c.N)
	// Output:
	// {"n":1} true
	// 2
}

func ExampleDuplicated() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	r, _ := h.Send("counter", "c1", "increment", struct{}{}, pt.Duplicated())
	fmt.Println(string(r.Data), r.Duplicate)
	// Output:
	// {"n":1} true
}

func ExampleMisrouted() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	r, _ := h.Send("counter", "c1", "increment", struct{}{}, pt.Misrouted(), pt.Source("other-producer"))
	fmt.Println(string(r.Data), h.Rerouted())
	// Output:
	// {"n":1} 1
}

func ExampleHarness_FailNext() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	h.FailNext("counter", "increment", 2) // within the default 3 retries
	r, _ := h.Send("counter", "c1", "increment", struct{}{})
	fmt.Println(string(r.Data))
	h.FailNext("counter", "increment", 4) // beyond them
	_, err := h.Send("counter", "c1", "increment", struct{}{})
	fmt.Println(errors.Is(err, pt.ErrNoReply), h.DeadLetters()[0].Reason)
	// Output:
	// {"n":1}
	// true handler failed 4 times, last: partitatest: injected failure of counter/increment
}

func ExampleHarness_LagView() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	_ = h.LagView("counts")
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	store, _ := h.View("counts")
	before, _, _ := views.Get[Count](context.Background(), store, "c1")
	_ = h.CatchUp("counts")
	after, _, _ := views.Get[Count](context.Background(), store, "c1")
	fmt.Println(before.N, after.N)
	// Output:
	// 1 2
}

func ExampleHarness_Crash() {
	counter, counts := counterApp()
	h, _ := pt.NewWith([]pt.Option{pt.CommitEvery(100)}, counter, counts)
	for range 3 {
		_, _ = h.Send("counter", "c1", "increment", struct{}{})
	}
	_ = h.Crash("counter") // replays the three uncommitted commands
	var c Count
	_, _ = h.State("counter", "c1", &c)
	fmt.Println(c.N, len(h.Violations()))
	// Output:
	// 3 0
}

func ExampleHarness_RunSchedule() {
	counter, counts := counterApp()
	h, _ := pt.New(counter, counts)
	var work []pt.Command
	for i := range 30 {
		work = append(work, pt.Command{Entity: "counter", Subject: fmt.Sprintf("c%d", i%3), Name: "increment", Payload: struct{}{}})
	}
	rep, _ := h.RunSchedule(7, work, pt.DefaultFaults)
	var c Count
	_, _ = h.State("counter", "c0", &c)
	fmt.Println(c.N, len(rep.Applied["counter/c0"]), rep.Faults() > 0, len(h.Violations()))
	// Output:
	// 10 10 true 0
}

func ExampleExpect() {
	t := &testing.T{} // in a test: the test's t
	counter, counts := counterApp()
	h := pt.Start(t, counter, counts)
	r, err := h.Send("counter", "c1", "increment", struct{}{})
	c := pt.Expect[Count](t)(r, err)
	fmt.Println(c.N)
	// Output:
	// 1
}

func ExampleExpectRow() {
	t := &testing.T{}
	counter, counts := counterApp()
	h := pt.Start(t, counter, counts)
	_, _ = h.Send("counter", "c1", "increment", struct{}{})
	fmt.Println(pt.ExpectRow[Count](t, h, "counts", "c1").N)
	h.ExpectNoRow(t, "counts", "c2")
	h.ExpectHeld(t)
	// Output:
	// 1
}

func ExampleExpectPublished() {
	t := &testing.T{}
	counter, counts := counterApp()
	h := pt.Start(t, counter, counts)
	for range 20 {
		_, _ = h.Send("counter", "c1", "increment", struct{}{})
	}
	for _, m := range pt.ExpectPublished[Count](t, h, "app.milestones", 2) {
		fmt.Println(m.N)
	}
	// Output:
	// 10
	// 20
}

func ExampleHarness_ExpectEvents() {
	t := &testing.T{}
	order := entities.EventSourced[Order, StatusChanged]("order", func(o Order, e StatusChanged) Order { return Order(e) })
	entities.EventCommand(order, "set-status", func(ctx *entities.EventContext[Order, StatusChanged], s StatusChanged) entities.Effect[Order] {
		return ctx.Persist(s)
	})
	h := pt.Start(t, order)
	_, _ = h.Send("order", "o1", "set-status", StatusChanged{Status: "paid"})
	for _, e := range h.ExpectEvents(t, "order", "o1", "StatusChanged") {
		fmt.Println(e.ID(), string(e.Data()))
	}
	// Output:
	// o1:1 {"status":"paid"}
}

func ExampleHarness_ExpectDeadLettered() {
	t := &testing.T{}
	counter, counts := counterApp()
	h := pt.Start(t, counter, counts)
	_, err := h.Send("counter", "c1", "frobnicate", struct{}{})
	d := h.ExpectDeadLettered(t, err, "unknown type")
	fmt.Println(d.Group, d.Reason)
	// Output:
	// app.counter unknown type "frobnicate" for entity counter on app.counter.commands
}
