// Package shopmodel is an independent fold of the shop's rules (package
// shop, the sample application), written apart from it so that tests can
// check one against the other: on the real broker (package processor) and
// in the harness (the shop's seeded schedules).
package shopmodel

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/partita-dev/partita/examples/shop"
)

// Model is the expected state of every customer and cart.
type Model struct {
	Customers map[string]*Customer
	Carts     map[string]*Cart
}

// Customer is a customer's expected state.
type Customer struct {
	Exists      bool
	Email, Name string
	Seq         uint64
}

// Cart is a cart's expected state and the types of its events, in order.
type Cart struct {
	Items      map[string]shop.Item
	CheckedOut bool
	Seq        uint64
	Events     []string
}

// New returns an empty model.
func New() *Model { return &Model{Customers: map[string]*Customer{}, Carts: map[string]*Cart{}} }

// Command is a command of a workload; Data is its JSON payload decoded.
type Command struct {
	Entity, Subject, Type string
	Data                  map[string]any
}

// Workload makes n random commands over subjects subjects (even: customers,
// odd: carts), with invalid ones mixed in.
func Workload(r *rand.Rand, n, subjects int) []Command {
	out := make([]Command, 0, n)
	for range n {
		s := r.IntN(subjects)
		c := Command{Data: map[string]any{}}
		if s%2 == 0 {
			c.Entity, c.Subject = "customer", "cust-"+strconv.Itoa(s)
			c.Type = []string{"create", "create", "change-email", "change-name", "get"}[r.IntN(5)]
			c.Data["email"] = fmt.Sprintf("u%d@example.com", r.IntN(1000))
			if r.IntN(10) == 0 {
				c.Data["email"] = "not-an-address"
			}
			c.Data["name"] = fmt.Sprintf("Name %d", r.IntN(1000))
		} else {
			c.Entity, c.Subject = "cart", "cart-"+strconv.Itoa(s)
			c.Type = []string{"add-item", "add-item", "add-item", "remove-item", "checkout", "get"}[r.IntN(6)]
			if c.Type == "checkout" && r.IntN(3) > 0 {
				c.Type = "add-item" // keep most carts open for longer
			}
			p := "p" + strconv.Itoa(r.IntN(5))
			c.Data["productId"] = p
			if c.Type == "add-item" {
				c.Data["name"] = "Product " + p
				c.Data["quantity"] = float64(r.IntN(5) - 1)
			}
		}
		// Normalise through JSON, as the handlers will see it.
		js, _ := json.Marshal(c.Data)
		c.Data = nil
		_ = json.Unmarshal(js, &c.Data)
		out = append(out, c)
	}
	return out
}

// Apply folds one command and returns the error code it should get ("" for success).
func (m *Model) Apply(c Command) string {
	if c.Entity == "customer" {
		return m.customer(c)
	}
	return m.cart(c)
}

func (m *Model) customer(cmd Command) string {
	c := m.Customers[cmd.Subject]
	if c == nil {
		c = &Customer{}
		m.Customers[cmd.Subject] = c
	}
	email, _ := cmd.Data["email"].(string)
	name, _ := cmd.Data["name"].(string)
	validEmail := strings.Contains(email, "@")
	switch cmd.Type {
	case "create":
		switch {
		case c.Exists:
			return "conflict"
		case !validEmail || name == "":
			return "invalid_argument"
		}
		c.Exists, c.Email, c.Name = true, email, name
	case "change-email":
		switch {
		case !c.Exists:
			return "not_found"
		case !validEmail:
			return "invalid_argument"
		}
		c.Email = email
	case "change-name":
		if !c.Exists {
			return "not_found"
		}
		c.Name = name
	case "get":
		if !c.Exists {
			return "not_found"
		}
		return ""
	}
	c.Seq++
	return ""
}

func (m *Model) cart(cmd Command) string {
	k := m.Carts[cmd.Subject]
	if k == nil {
		k = &Cart{Items: map[string]shop.Item{}}
		m.Carts[cmd.Subject] = k
	}
	pid, _ := cmd.Data["productId"].(string)
	switch cmd.Type {
	case "add-item":
		q := int(cmd.Data["quantity"].(float64))
		switch {
		case k.CheckedOut:
			return "failed_precondition"
		case q <= 0:
			return "invalid_argument"
		}
		it := k.Items[pid]
		k.Items[pid] = shop.Item{ProductID: pid, Name: cmd.Data["name"].(string), Quantity: it.Quantity + q}
		k.Events = append(k.Events, "ItemAdded")
	case "remove-item":
		if k.CheckedOut {
			return "failed_precondition"
		}
		if _, ok := k.Items[pid]; !ok {
			return "not_found"
		}
		delete(k.Items, pid)
		k.Events = append(k.Events, "ItemRemoved")
	case "checkout":
		if k.CheckedOut || len(k.Items) == 0 {
			return "failed_precondition"
		}
		k.CheckedOut = true
		k.Events = append(k.Events, "CheckedOut")
	case "get":
		if k.Seq == 0 {
			return "not_found"
		}
		return ""
	}
	k.Seq++
	return ""
}

// CustomerRows is the expected customers-by-email view.
func (m *Model) CustomerRows() map[string]shop.CustomerRow {
	out := map[string]shop.CustomerRow{}
	for s, c := range m.Customers {
		if c.Exists {
			out[s] = shop.CustomerRow{ID: s, Email: c.Email, Name: c.Name}
		}
	}
	return out
}

// CartRows is the expected carts view.
func (m *Model) CartRows() map[string]shop.CartRow {
	out := map[string]shop.CartRow{}
	for s, k := range m.Carts {
		if k.Seq == 0 {
			continue
		}
		r := shop.CartRow{CartID: s, CheckedOut: k.CheckedOut, Quantities: map[string]int{}}
		for p, it := range k.Items {
			r.Quantities[p] = it.Quantity
			r.TotalQuantity += it.Quantity
		}
		r.ItemCount = len(k.Items)
		out[s] = r
	}
	return out
}

// EqualCarts compares cart rows.
func EqualCarts(a, b map[string]shop.CartRow) bool {
	return maps.EqualFunc(a, b, func(x, y shop.CartRow) bool {
		return x.CartID == y.CartID && x.ItemCount == y.ItemCount && x.TotalQuantity == y.TotalQuantity &&
			x.CheckedOut == y.CheckedOut && maps.Equal(x.Quantities, y.Quantities)
	})
}
