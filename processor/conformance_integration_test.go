package processor_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/examples/shop/shopmodel"
	"github.com/partita-dev/partita/internal/envelope"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

// TestHarnessConformsToTheBroker drives one scenario through the in-memory
// harness and through the real broker and finds the same final states and
// the same view rows.
func TestHarnessConformsToTheBroker(t *testing.T) {
	cmds := shopmodel.Workload(rand.New(rand.NewPCG(5, 6)), 400, 40)

	h := pt.Start(t, shop.NewCustomer(), shop.NewCart(), shop.NewCustomersByEmail(), shop.NewCarts())
	for _, c := range cmds {
		if _, err := h.Send(c.Entity, c.Subject, c.Type, c.Data); err != nil {
			t.Fatal(err)
		}
	}
	h.ExpectHeld(t)

	a := newShop(t)
	a.start()
	var sents []sent
	last := map[string]string{}
	for i, c := range cmds {
		id := fmt.Sprintf("conf-%d", i)
		last[c.Subject] = "test\x00" + id
		sents = append(sents, sent{entity: c.Entity, subject: c.Subject, typ: c.Type, id: id, data: c.Data})
	}
	sendAll(t, a, sents)

	for _, entity := range []string{"customer", "cart"} {
		subjects := map[string]bool{}
		for _, c := range cmds {
			if c.Entity == entity {
				subjects[c.Subject] = true
			}
		}
		table := a.table(entity, 8, 2*time.Minute, func(l map[string]*envelope.Envelope) bool {
			for s := range subjects {
				if e := l[s]; e == nil || len(e.Window()) == 0 || !e.Window()[len(e.Window())-1].Is(last[s]) {
					return false
				}
			}
			return true
		})
		for s := range subjects {
			env := table[s]
			switch entity {
			case "customer":
				var want shop.Customer
				ok, _ := h.State(entity, s, &want)
				if ok != env.Exists || ok && decodeJSON[shop.Customer](t, env.State) != want {
					t.Errorf("customer %s: broker %s, harness %+v", s, env.State, want)
				}
			case "cart":
				var want shop.Cart
				ok, _ := h.State(entity, s, &want)
				got := decodeJSON[shop.Cart](t, env.State)
				if ok != env.Exists || ok && (got.CheckedOut != want.CheckedOut || !maps.Equal(got.Items, want.Items)) {
					t.Errorf("cart %s: broker %s, harness %+v", s, env.State, want)
				}
			}
		}
	}
	hc, _ := h.View("customers-by-email")
	hk, _ := h.View("carts")
	bc, _ := a.rt.View("customers-by-email")
	bk, _ := a.rt.View("carts")
	wantC := allRows[shop.CustomerRow](t, hc, views.Query{Limit: 1000})
	wantK := allRows[shop.CartRow](t, hk, views.Query{Limit: 1000})
	eventually(t, time.Minute, "broker views equal the harness's", func() bool {
		return maps.Equal(allRows[shop.CustomerRow](t, bc, views.Query{Limit: 1000}), wantC) &&
			shopmodel.EqualCarts(allRows[shop.CartRow](t, bk, views.Query{Limit: 1000}), wantK)
	})
	if len(wantC) == 0 || len(wantK) == 0 {
		t.Fatalf("the scenario made no rows (%d customers, %d carts): it compares nothing", len(wantC), len(wantK))
	}
	t.Logf("%d commands: %d customer rows and %d cart rows equal on both", len(cmds), len(wantC), len(wantK))
}
