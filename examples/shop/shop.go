// Package shop is Partita's sample application, shared by the worker
// (cmd/worker runs [App]) and the tests: a key-value customer entity, an
// event-sourced cart entity and two views. Its test model (shopmodel) and
// the reliability suite's worker (cmd/reliability-worker) live beside it.
//
//	customer: create {email, name}, change-email {email}, change-name {name}, get {}
//	cart:     add-item {productId, name, quantity}, remove-item {productId}, checkout {}, get {}
//	          events ItemAdded, ItemRemoved, CheckedOut
package shop

import (
	"strings"

	"github.com/partita-dev/partita/entities"
)

// Customer is the state of a customer.
type Customer struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Commands of the customer entity.
type (
	CreateCustomer struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	ChangeEmail struct {
		Email string `json:"email"`
	}
	ChangeName struct {
		Name string `json:"name"`
	}
	Get struct{}
)

// NewCustomer defines the customer entity.
func NewCustomer(opts ...entities.Option) *entities.Entity[Customer] {
	e := entities.KeyValue[Customer]("customer", opts...)
	entities.Command(e, "create", func(ctx *entities.Context[Customer], c CreateCustomer) entities.Effect[Customer] {
		if ctx.Exists() {
			return ctx.Error(entities.Conflict, "customer %s already exists", ctx.Subject())
		}
		if err := validEmail(c.Email); err != "" {
			return ctx.Error(entities.InvalidArgument, "%s", err)
		}
		if strings.TrimSpace(c.Name) == "" {
			return ctx.Error(entities.InvalidArgument, "name is empty")
		}
		s := Customer(c)
		return ctx.Update(s).Reply(s)
	})
	entities.Command(e, "change-email", func(ctx *entities.Context[Customer], c ChangeEmail) entities.Effect[Customer] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no customer %s", ctx.Subject())
		}
		if err := validEmail(c.Email); err != "" {
			return ctx.Error(entities.InvalidArgument, "%s", err)
		}
		s := ctx.State()
		s.Email = c.Email
		return ctx.Update(s).Reply(s)
	})
	entities.Command(e, "change-name", func(ctx *entities.Context[Customer], c ChangeName) entities.Effect[Customer] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no customer %s", ctx.Subject())
		}
		if strings.TrimSpace(c.Name) == "" {
			return ctx.Error(entities.InvalidArgument, "name is empty")
		}
		s := ctx.State()
		s.Name = c.Name
		return ctx.Update(s).Reply(s)
	})
	entities.Command(e, "get", func(ctx *entities.Context[Customer], _ Get) entities.Effect[Customer] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no customer %s", ctx.Subject())
		}
		return ctx.Reply(ctx.State())
	})
	return e
}

func validEmail(email string) string {
	at := strings.IndexByte(email, '@')
	if at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t\n") {
		return "email " + quote(email) + " is not an address"
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

// Item is a line of a cart.
type Item struct {
	ProductID string `json:"productId"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
}

// Cart is the state of a cart.
type Cart struct {
	Items      map[string]Item `json:"items"`
	CheckedOut bool            `json:"checkedOut"`
}

// CartEvent is an event of the cart entity.
type CartEvent interface{ EventType() string }

// Events of the cart entity.
type (
	ItemAdded struct {
		ProductID string `json:"productId"`
		Name      string `json:"name"`
		Quantity  int    `json:"quantity"`
	}
	ItemRemoved struct {
		ProductID string `json:"productId"`
	}
	CheckedOut struct{}
)

func (ItemAdded) EventType() string   { return "ItemAdded" }
func (ItemRemoved) EventType() string { return "ItemRemoved" }
func (CheckedOut) EventType() string  { return "CheckedOut" }

// Commands of the cart entity.
type (
	AddItem struct {
		ProductID string `json:"productId"`
		Name      string `json:"name"`
		Quantity  int    `json:"quantity"`
	}
	RemoveItem struct {
		ProductID string `json:"productId"`
	}
	Checkout struct{}
)

// ApplyCart folds one event into a cart. It does not change c.
func ApplyCart(c Cart, e CartEvent) Cart {
	items := make(map[string]Item, len(c.Items)+1)
	for k, v := range c.Items {
		items[k] = v
	}
	switch e := e.(type) {
	case ItemAdded:
		it := items[e.ProductID]
		it.ProductID, it.Name, it.Quantity = e.ProductID, e.Name, it.Quantity+e.Quantity
		items[e.ProductID] = it
	case ItemRemoved:
		delete(items, e.ProductID)
	case CheckedOut:
		c.CheckedOut = true
	}
	c.Items = items
	return c
}

// NewCart defines the cart entity.
func NewCart(opts ...entities.Option) *entities.EventSourcedEntity[Cart, CartEvent] {
	e := entities.EventSourced[Cart, CartEvent]("cart", ApplyCart, opts...)
	// Each command persists one event and replies with the cart after it.
	persist := func(ctx *entities.EventContext[Cart, CartEvent], ev CartEvent) entities.Effect[Cart] {
		return ctx.Persist(ev).ReplyWith(func(c Cart) any { return c })
	}
	entities.EventCommand(e, "add-item", func(ctx *entities.EventContext[Cart, CartEvent], c AddItem) entities.Effect[Cart] {
		switch {
		case ctx.State().CheckedOut:
			return ctx.Error(entities.FailedPrecondition, "cart %s is checked out", ctx.Subject())
		case c.ProductID == "":
			return ctx.Error(entities.InvalidArgument, "productId is empty")
		case c.Quantity <= 0:
			return ctx.Error(entities.InvalidArgument, "quantity must be more than 0, got %d", c.Quantity)
		}
		return persist(ctx, ItemAdded(c))
	})
	entities.EventCommand(e, "remove-item", func(ctx *entities.EventContext[Cart, CartEvent], c RemoveItem) entities.Effect[Cart] {
		if ctx.State().CheckedOut {
			return ctx.Error(entities.FailedPrecondition, "cart %s is checked out", ctx.Subject())
		}
		if _, ok := ctx.State().Items[c.ProductID]; !ok {
			return ctx.Error(entities.NotFound, "cart %s has no item %q", ctx.Subject(), c.ProductID)
		}
		return persist(ctx, ItemRemoved(c))
	})
	entities.EventCommand(e, "checkout", func(ctx *entities.EventContext[Cart, CartEvent], _ Checkout) entities.Effect[Cart] {
		switch {
		case ctx.State().CheckedOut:
			return ctx.Error(entities.FailedPrecondition, "cart %s is already checked out", ctx.Subject())
		case len(ctx.State().Items) == 0:
			return ctx.Error(entities.FailedPrecondition, "cart %s is empty", ctx.Subject())
		}
		return persist(ctx, CheckedOut{})
	})
	entities.EventCommand(e, "get", func(ctx *entities.EventContext[Cart, CartEvent], _ Get) entities.Effect[Cart] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no cart %s", ctx.Subject())
		}
		return ctx.Reply(ctx.State())
	})
	return e
}
