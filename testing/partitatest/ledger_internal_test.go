package partitatest

import (
	"fmt"
	"testing"

	"github.com/partita-dev/partita/entities"
)

// A schedule's ledger forgets an application lost in a crash: one whose
// subject's state never reached the table topic. A crash that keeps the
// local store loses the writes in flight but not the store, so such an
// application stays undurable after the group's next flush, unless that
// flush wrote its subject's state again. (Flushing forgot them all, so a
// crash that restored the store next took the command's replay for a
// second application; seen with entity lag in the shop's schedules.)
func TestLedgerKeepsApplicationsLostToTheTableAcrossAFlush(t *testing.T) {
	counter := entities.KeyValue[total]("counter")
	entities.Command(counter, "add", func(ctx *entities.Context[total], a added) entities.Effect[total] {
		return ctx.Update(total{N: ctx.State().N + a.By})
	})
	h, err := NewWith([]Option{CommitEvery(100)}, counter)
	if err != nil {
		t.Fatal(err)
	}
	h.sched = &ledger{apps: map[string][]application{}, last: map[string]int{}, consumes: map[string]string{}}
	g := h.byName["counter"]
	commands := h.topics.Commands("counter")
	other := "s2"
	for i := 3; h.partition([]byte(other)) == h.partition([]byte("s1")); i++ {
		other = fmt.Sprintf("s%d", i)
	}
	send := func(subject, id string) int32 {
		ev, err := h.command(subject, "add", added{By: 1}, sendOpts{id: id})
		if err != nil {
			t.Fatal(err)
		}
		h.write(commands, ev, sendOpts{id: id})
		p := h.partition([]byte(subject))
		h.step(cursor{g, commands, p})
		return p
	}
	send("s1", "c1")  // applied into the store; its writes in flight
	h.crash(g, false) // lost, the store kept: c1 is in the store only
	send(other, "c2") // another subject's write ...
	h.flush(g)        // ... lands: s1's state is still not on the topic
	h.crash(g, true)  // another worker: restored without c1
	h.settle(nil)     // c1 replayed: applied anew, once
	if len(h.violations) > 0 {
		t.Fatal(h.violations)
	}
	if apps := h.sched.apps["counter/s1"]; len(apps) != 1 || apps[0].id != "c1" {
		t.Fatalf("the ledger holds %+v for s1, want c1 applied once", apps)
	}
	var s total
	if _, err := h.State("counter", "s1", &s); err != nil || s.N != 1 {
		t.Fatalf("s1 is %+v (%v), want 1", s, err)
	}
}
