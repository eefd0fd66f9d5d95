package processor_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/sample"
)

// model is the test's own fold of the sample domain's rules, written apart
// from package sample so that the two check each other.
type model struct {
	customers map[string]*modelCustomer
	carts     map[string]*modelCart
	lastCmd   map[string]string // subject -> id of its last command
}

type modelCustomer struct {
	exists      bool
	email, name string
	seq         uint64
}

type modelCart struct {
	items      map[string]sample.Item
	checkedOut bool
	seq        uint64
	events     []string // event types, in order
}

// apply folds one command and returns the error code it should get ("" for success).
func (m *model) apply(entity, subject, typ string, data map[string]any) string {
	if entity == "customer" {
		c := m.customers[subject]
		if c == nil {
			c = &modelCustomer{}
			m.customers[subject] = c
		}
		email, _ := data["email"].(string)
		name, _ := data["name"].(string)
		validEmail := strings.Contains(email, "@")
		switch typ {
		case "create":
			switch {
			case c.exists:
				return "conflict"
			case !validEmail || name == "":
				return "invalid_argument"
			}
			c.exists, c.email, c.name = true, email, name
		case "change-email":
			switch {
			case !c.exists:
				return "not_found"
			case !validEmail:
				return "invalid_argument"
			}
			c.email = email
		case "change-name":
			if !c.exists {
				return "not_found"
			}
			c.name = name
		case "get":
			if !c.exists {
				return "not_found"
			}
			return ""
		}
		c.seq++
		return ""
	}
	k := m.carts[subject]
	if k == nil {
		k = &modelCart{items: map[string]sample.Item{}}
		m.carts[subject] = k
	}
	pid, _ := data["productId"].(string)
	switch typ {
	case "add-item":
		q := int(data["quantity"].(float64))
		switch {
		case k.checkedOut:
			return "failed_precondition"
		case q <= 0:
			return "invalid_argument"
		}
		it := k.items[pid]
		k.items[pid] = sample.Item{ProductID: pid, Name: data["name"].(string), Quantity: it.Quantity + q}
		k.events = append(k.events, "ItemAdded")
	case "remove-item":
		if k.checkedOut {
			return "failed_precondition"
		}
		if _, ok := k.items[pid]; !ok {
			return "not_found"
		}
		delete(k.items, pid)
		k.events = append(k.events, "ItemRemoved")
	case "checkout":
		if k.checkedOut || len(k.items) == 0 {
			return "failed_precondition"
		}
		k.checkedOut = true
		k.events = append(k.events, "CheckedOut")
	case "get":
		if k.seq == 0 {
			return "not_found"
		}
		return ""
	}
	k.seq++
	return ""
}

type sent struct {
	entity, subject, typ, id string
	data                     map[string]any
	wantCode                 string
}

// workload makes n commands for subjects customers and carts, folding each
// into m as it goes.
func workload(r *rand.Rand, m *model, n, subjects int) []sent {
	var out []sent
	for i := range n {
		s := r.IntN(subjects)
		var entity, subject, typ string
		data := map[string]any{}
		if s%2 == 0 {
			entity, subject = "customer", "cust-"+strconv.Itoa(s)
			typ = []string{"create", "create", "change-email", "change-name", "get"}[r.IntN(5)]
			data["email"] = fmt.Sprintf("u%d@example.com", r.IntN(1000))
			if r.IntN(10) == 0 {
				data["email"] = "not-an-address"
			}
			data["name"] = fmt.Sprintf("Name %d", r.IntN(1000))
		} else {
			entity, subject = "cart", "cart-"+strconv.Itoa(s)
			typ = []string{"add-item", "add-item", "add-item", "remove-item", "checkout", "get"}[r.IntN(6)]
			if typ == "checkout" && r.IntN(3) > 0 {
				typ = "add-item" // keep most carts open for longer
			}
			p := "p" + strconv.Itoa(r.IntN(5))
			data["productId"] = p
			if typ == "add-item" {
				data["name"] = "Product " + p
				data["quantity"] = float64(r.IntN(5) - 1)
			}
		}
		id := fmt.Sprintf("load-%d", i)
		js, _ := json.Marshal(data)
		var decoded map[string]any
		_ = json.Unmarshal(js, &decoded)
		code := m.apply(entity, subject, typ, decoded)
		m.lastCmd[subject] = "test\x00" + id
		out = append(out, sent{entity: entity, subject: subject, typ: typ, id: id, data: decoded, wantCode: code})
	}
	return out
}

func TestLoadFinalStatesEqualTheFold(t *testing.T) {
	a := newApp(t, sample.NewCustomer(), sample.NewCart())
	a.start()
	m := &model{customers: map[string]*modelCustomer{}, carts: map[string]*modelCart{}, lastCmd: map[string]string{}}
	cmds := workload(rand.New(rand.NewPCG(1, 2)), m, 10_000, 1_000)

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
		c, ok := want[r.Key]
		if !ok {
			return false
		}
		delete(want, r.Key)
		got++
		if code := r.Headers["ce_partitaerror"]; code != c.wantCode {
			t.Errorf("%s %s %s %v: reply code %q, want %q (%s)", c.entity, c.subject, c.typ, c.data, code, c.wantCode, r.Value)
		}
		return len(want) == 0
	})
	t.Logf("%d commands, %d replies in %v", len(cmds), got, time.Since(start))
	assertStates(t, a, m)
	assertCartEvents(t, a, m.carts)
	if d := a.rt.Stats().DeadLetters.Load(); d != 0 {
		t.Errorf("%d dead letters, want none", d)
	}
}

// assertCartEvents checks that each cart's events are on the events topic,
// one per applied command, in sequence order, with deterministic ids.
func assertCartEvents(t *testing.T, a *app, carts map[string]*modelCart) {
	t.Helper()
	total := 0
	for _, k := range carts {
		total += len(k.events)
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
		if len(evs) != len(k.events) {
			t.Errorf("cart %s: %d events on the topic, want %d", subject, len(evs), len(k.events))
			continue
		}
		for i, r := range evs {
			seq := strconv.Itoa(i + 1)
			if r.Headers["ce_partitaseq"] != seq || r.Headers["ce_id"] != subject+":"+seq || r.Headers["ce_type"] != k.events[i] {
				t.Errorf("cart %s event %d: seq %s id %s type %s; want seq %s type %s", subject, i, r.Headers["ce_partitaseq"], r.Headers["ce_id"], r.Headers["ce_type"], seq, k.events[i])
				break
			}
		}
	}
}

// assertStates reads both tables until every subject's latest envelope holds
// its last command, then compares every state with the model.
func assertStates(t *testing.T, a *app, m *model) {
	t.Helper()
	done := func(subjects []string) func(map[string]*core.Envelope) bool {
		return func(latest map[string]*core.Envelope) bool {
			for _, s := range subjects {
				env := latest[s]
				if env == nil || len(env.Applied) == 0 || env.Applied[len(env.Applied)-1].Key != m.lastCmd[s] {
					return false
				}
			}
			return true
		}
	}
	customers := a.table("customer", 8, 2*time.Minute, done(slicesKeys(m.customers)))
	for s, c := range m.customers {
		env := customers[s]
		if env.Seq != c.seq || env.Exists != c.exists {
			t.Errorf("customer %s: seq %d exists %v, want %d %v", s, env.Seq, env.Exists, c.seq, c.exists)
			continue
		}
		if c.exists {
			got := decodeJSON[sample.Customer](t, env.State)
			if got != (sample.Customer{Email: c.email, Name: c.name}) {
				t.Errorf("customer %s: %+v, want %s %s", s, got, c.email, c.name)
			}
		}
	}
	carts := a.table("cart", 8, 2*time.Minute, done(slicesKeys(m.carts)))
	for s, k := range m.carts {
		env := carts[s]
		if env.Seq != k.seq {
			t.Errorf("cart %s: seq %d, want %d", s, env.Seq, k.seq)
			continue
		}
		if k.seq == 0 {
			continue
		}
		got := decodeJSON[sample.Cart](t, env.State)
		if got.CheckedOut != k.checkedOut || !maps.Equal(got.Items, k.items) {
			t.Errorf("cart %s: %+v, want %+v checkedOut=%v", s, got, k.items, k.checkedOut)
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
