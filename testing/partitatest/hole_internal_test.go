package partitatest

import (
	"testing"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
)

type added struct {
	By int `json:"by"`
}

func (added) EventType() string { return "Added" }

type total struct {
	N int `json:"n"`
}

// The crash-path hole that remains without Kafka transactions (goka has
// none; see docs/decisions.md#reliability), shown step by step: a command's
// event reaches the broker but its table write does not; the worker dies;
// on another worker, a command of the same subject that was waiting on the
// loop topic is applied first, at the sequence number the lost write had.
// The events topic then holds two versions of that sequence number (same
// id, different data), and the first command's redelivery is applied
// after them. This test pins the interleaving: it fails once the hole is
// closed, and must then be turned around.
func TestTwoVersionsOfOneSequenceNumberAfterAPartialWrite(t *testing.T) {
	counter := entities.EventSourced[total]("counter", func(s total, e added) total { return total{N: s.N + e.By} })
	entities.EventCommand(counter, "add", func(ctx *entities.EventContext[total, added], a added) entities.Effect[total] {
		return ctx.Persist(added(a))
	})
	h, err := NewWith([]Option{CommitEvery(100)}, counter)
	if err != nil {
		t.Fatal(err)
	}
	g := h.byName["counter"]
	commands := h.topics.Commands("counter")
	send := func(id string, by int, o sendOpts) {
		o.id = id
		ev, err := h.command("s", "add", added{By: by}, o)
		if err != nil {
			t.Fatal(err)
		}
		h.write(commands, ev, o)
	}
	step := func(topic string, p int32) {
		t.Helper()
		if g.pos[topic][p] >= h.size(topic, p) {
			t.Fatalf("nothing to deliver on %s/%d", topic, p)
		}
		h.step(cursor{g, topic, p})
	}
	p := h.partition([]byte("s"))
	// C2 arrives misrouted: it is re-routed to the loop topic (landed and
	// committed), and waits there.
	send("c2", 20, sendOpts{misrouted: true})
	step(commands, (p+1)%h.n)
	h.commit(g)
	// C1 arrives on the subject's partition and is applied as sequence 1.
	send("c1", 1, sendOpts{})
	step(commands, p)
	// The worker dies with the event acknowledged, the table write not.
	var kept []write
	for _, w := range g.unflushed {
		if w.topic == h.topics.Events("counter") {
			kept = append(kept, w)
		}
	}
	g.unflushed = kept
	h.flush(g)
	h.crash(g, true) // another worker, restored from the table topic
	// It reads the loop topic first: C2 becomes sequence 1, then C1 (read
	// again from its uncommitted offset) sequence 2.
	step(g.loop, p)
	step(commands, p)
	h.settle(nil)

	var versions []string
	for _, e := range h.Published(h.topics.Events("counter")) {
		if e.ID() == "s:1" {
			versions = append(versions, string(e.Data()))
		}
	}
	if len(versions) != 2 || versions[0] == versions[1] {
		t.Fatalf("events with id s:1: %q; the interleaving no longer leaves two versions (the hole is closed?)", versions)
	}
	var st total
	if _, err := h.State("counter", "s", &st); err != nil || st.N != 21 {
		t.Fatalf("state %+v %v: the entity itself applied each command once", st, err)
	}
	seq, _ := codec.Sequence(h.Published(h.topics.Events("counter"))[0])
	t.Logf("events topic: s:1 twice (%s then %s), sequence %d first; the state (n=%d) follows the later version", versions[0], versions[1], seq, st.N)
}
