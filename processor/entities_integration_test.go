package processor_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/examples/shop/shopmodel"
	"github.com/partita-dev/partita/internal/envelope"
)

// sent is a workload command as sent, with the error code the model expects.
type sent struct {
	entity, subject, typ, id string
	data                     map[string]any
	wantCode                 string
}

// workload makes n commands over subjects, folding each into m in send order
// and remembering each subject's last command.
func workload(r *rand.Rand, m *shopmodel.Model, last map[string]string, n, subjects int) []sent {
	var out []sent
	for i, c := range shopmodel.Workload(r, n, subjects) {
		id := fmt.Sprintf("load-%d", i)
		last[c.Subject] = "test\x00" + id
		out = append(out, sent{entity: c.Entity, subject: c.Subject, typ: c.Type, id: id, data: c.Data, wantCode: m.Apply(c)})
	}
	return out
}

func TestLoadFinalStatesEqualTheFold(t *testing.T) {
	a := newApp(t, shop.NewCustomer(), shop.NewCart())
	a.start()
	m, last := shopmodel.New(), map[string]string{}
	cmds := workload(rand.New(rand.NewPCG(1, 2)), m, last, 10_000, 1_000)

	start := time.Now()
	var batch []*sarama.ProducerMessage
	for _, c := range cmds {
		batch = append(batch, message(a.topics.Commands(c.entity), cmd(c.subject, c.typ, c.id, c.data)))
		if len(batch) == 500 {
			a.send(batch...)
			batch = batch[:0]
		}
	}
	a.send(batch...)

	want := map[string]sent{}
	for _, c := range cmds {
		want[c.id] = c
	}
	got := 0
	a.read(a.topics.Replies(), 3*time.Minute, func(r record) bool {
		id := r.Headers["ce_"+codec.ExtRequest]
		c, ok := want[id]
		if !ok {
			return false
		}
		delete(want, id)
		got++
		if code := r.Headers["ce_partitaerror"]; code != c.wantCode {
			t.Errorf("%s %s %s %v: reply code %q, want %q (%s)", c.entity, c.subject, c.typ, c.data, code, c.wantCode, r.Value)
		}
		return len(want) == 0
	})
	t.Logf("%d commands, %d replies in %v", len(cmds), got, time.Since(start))
	assertStates(t, a, m, last)
	assertCartEvents(t, a, m.Carts)
	if d := a.rt.Stats().DeadLetters.Load(); d != 0 {
		t.Errorf("%d dead letters, want none", d)
	}
}

// assertCartEvents checks that each cart's events are on the events topic,
// one per applied command, in sequence order, with deterministic ids.
func assertCartEvents(t *testing.T, a *app, carts map[string]*shopmodel.Cart) {
	t.Helper()
	total := 0
	for _, k := range carts {
		total += len(k.Events)
	}
	got := map[string][]record{}
	seen := 0
	a.read(a.topics.Events("cart"), 2*time.Minute, func(r record) bool {
		got[r.Key] = append(got[r.Key], r)
		seen++
		return seen >= total
	})
	for subject, k := range carts {
		evs := got[subject]
		if len(evs) != len(k.Events) {
			t.Errorf("cart %s: %d events on the topic, want %d", subject, len(evs), len(k.Events))
			continue
		}
		for i, r := range evs {
			seq := strconv.Itoa(i + 1)
			if r.Headers["ce_partitaseq"] != seq || r.Headers["ce_id"] != subject+":"+seq || r.Headers["ce_type"] != k.Events[i] {
				t.Errorf("cart %s event %d: seq %s id %s type %s; want seq %s type %s", subject, i, r.Headers["ce_partitaseq"], r.Headers["ce_id"], r.Headers["ce_type"], seq, k.Events[i])
				break
			}
		}
	}
}

// assertStates reads both tables until every subject's latest envelope holds
// its last command, then compares every state with the model.
func assertStates(t *testing.T, a *app, m *shopmodel.Model, last map[string]string) {
	t.Helper()
	done := func(subjects []string) func(map[string]*envelope.Envelope) bool {
		return func(latest map[string]*envelope.Envelope) bool {
			for _, s := range subjects {
				env := latest[s]
				if env == nil || len(env.Window()) == 0 || !env.Window()[len(env.Window())-1].Is(last[s]) {
					return false
				}
			}
			return true
		}
	}
	customers := a.table("customer", 8, 2*time.Minute, done(slicesKeys(m.Customers)))
	for s, c := range m.Customers {
		env := customers[s]
		if env.Seq != c.Seq || env.Exists != c.Exists {
			t.Errorf("customer %s: seq %d exists %v, want %d %v", s, env.Seq, env.Exists, c.Seq, c.Exists)
			continue
		}
		if c.Exists {
			got := decodeJSON[shop.Customer](t, env.State)
			if got != (shop.Customer{Email: c.Email, Name: c.Name}) {
				t.Errorf("customer %s: %+v, want %s %s", s, got, c.Email, c.Name)
			}
		}
	}
	carts := a.table("cart", 8, 2*time.Minute, done(slicesKeys(m.Carts)))
	for s, k := range m.Carts {
		env := carts[s]
		if env.Seq != k.Seq {
			t.Errorf("cart %s: seq %d, want %d", s, env.Seq, k.Seq)
			continue
		}
		if k.Seq == 0 {
			continue
		}
		got := decodeJSON[shop.Cart](t, env.State)
		if got.CheckedOut != k.CheckedOut || !maps.Equal(got.Items, k.Items) {
			t.Errorf("cart %s: %+v, want %+v checkedOut=%v", s, got, k.Items, k.CheckedOut)
		}
	}
}

func slicesKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
