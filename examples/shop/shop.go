// Package shop is Partita's sample application, shared by the worker
// (cmd/worker runs [App]) and the tests: a key-value customer entity, an
// event-sourced cart entity and two views. Its test model (shopmodel) and
// the reliability suite's worker (cmd/reliability-worker) live beside it.
//
//	customer: create {email, name}, change-email {email}, change-name {name}, get {}
//	cart:     add-item {productId, name, quantity}, remove-item {productId}, checkout {customerId?}, get {}
//	          events ItemAdded, ItemRemoved, CheckedOut, CartExpired, CheckoutRequested, CheckoutRefused
//
// A cart that is not checked out expires after an idle time (a timer that
// every change starts again); a checkout that names a customer asks the
// customer entity whether the customer exists before it checks out.
package shop

import (
	"fmt"
	"strings"
	"time"

	"github.com/partita-dev/partita/access"
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
	// Expired: the cart was left idle (see NewCartIdle); it takes no more
	// changes.
	Expired bool `json:"expired,omitempty"`
	// Checkout is "pending" while a checkout waits for its customer's
	// answer; Customer is whom it names, Refused why the last one was
	// refused.
	Checkout string `json:"checkout,omitempty"`
	Customer string `json:"customer,omitempty"`
	Refused  string `json:"refused,omitempty"`
	// Order is the order workflow instance that reserved the cart: it
	// takes no changes until the order checks it out or releases it.
	Order string `json:"order,omitempty"`
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
	CheckedOut  struct{}
	CartExpired struct{}
	// CheckoutRequested: a checkout for a customer waits for the customer
	// entity's answer.
	CheckoutRequested struct {
		CustomerID string `json:"customerId"`
	}
	CheckoutRefused struct {
		Reason string `json:"reason"`
	}
	// CartReserved and CartReleased: an order holds the cart's items.
	CartReserved struct {
		Order string `json:"order"`
	}
	CartReleased struct{}
)

func (ItemAdded) EventType() string         { return "ItemAdded" }
func (ItemRemoved) EventType() string       { return "ItemRemoved" }
func (CheckedOut) EventType() string        { return "CheckedOut" }
func (CartExpired) EventType() string       { return "CartExpired" }
func (CheckoutRequested) EventType() string { return "CheckoutRequested" }
func (CheckoutRefused) EventType() string   { return "CheckoutRefused" }
func (CartReserved) EventType() string      { return "CartReserved" }
func (CartReleased) EventType() string      { return "CartReleased" }

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
	// Checkout checks the cart out; with a CustomerID, once the customer
	// entity says that customer exists; with Order, the order that
	// reserved it confirms it.
	Checkout struct {
		CustomerID string `json:"customerId,omitempty"`
		Order      string `json:"order,omitempty"`
	}
	// Reserve holds the cart's items for an order (see NewOrder); Release
	// lets them go.
	Reserve struct {
		Order string `json:"order"`
	}
	Release struct {
		Order string `json:"order"`
	}
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
		c.CheckedOut, c.Checkout = true, ""
	case CartExpired:
		items = map[string]Item{}
		c.Expired = true
	case CheckoutRequested:
		c.Checkout, c.Customer, c.Refused = "pending", e.CustomerID, ""
	case CheckoutRefused:
		c.Checkout, c.Refused = "", e.Reason
	case CartReserved:
		c.Order = e.Order
	case CartReleased:
		c.Order = ""
	}
	c.Items = items
	return c
}

// DefaultCartIdle is how long a cart may stay unchanged before it expires.
const DefaultCartIdle = 30 * time.Minute

// The cart's timer and the commands it and the customer's answer deliver.
const (
	idleTimer         = "idle"
	cmdExpire         = "expire"
	cmdCustomerFound  = "customer-found"
	cmdCustomerAbsent = "customer-absent"
)

// NewCart defines the cart entity, whose carts expire after
// DefaultCartIdle.
func NewCart(opts ...entities.Option) *entities.EventSourcedEntity[Cart, CartEvent] {
	return NewCartIdle(DefaultCartIdle, opts...)
}

// NewCartIdle defines the cart entity, whose carts expire after idle
// without a change (0: never). It sends to (asks) the customer entity.
func NewCartIdle(idle time.Duration, opts ...entities.Option) *entities.EventSourcedEntity[Cart, CartEvent] {
	opts = append([]entities.Option{entities.SendsTo("customer"),
		entities.CommandAccess(cmdExpire, access.Internal()),
		entities.CommandAccess(cmdCustomerFound, access.Internal()),
		entities.CommandAccess(cmdCustomerAbsent, access.Internal())}, opts...)
	e := entities.EventSourced[Cart, CartEvent]("cart", ApplyCart, opts...)
	// Each command persists one event and replies with the cart after it;
	// a change starts the idle timer again.
	persist := func(ctx *entities.EventContext[Cart, CartEvent], ev CartEvent) entities.Effect[Cart] {
		return ctx.Persist(ev).ReplyWith(func(c Cart) any { return c })
	}
	change := func(ctx *entities.EventContext[Cart, CartEvent], ev CartEvent) entities.Effect[Cart] {
		if idle <= 0 {
			return persist(ctx, ev)
		}
		return persist(ctx, ev).StartTimer(idleTimer, idle, cmdExpire, struct{}{})
	}
	closed := func(ctx *entities.EventContext[Cart, CartEvent]) (entities.Effect[Cart], bool) {
		switch s := ctx.State(); {
		case s.CheckedOut:
			return ctx.Error(entities.FailedPrecondition, "cart %s is checked out", ctx.Subject()), true
		case s.Expired:
			return ctx.Error(entities.FailedPrecondition, "cart %s expired after %v without a change", ctx.Subject(), idle), true
		case s.Checkout != "":
			return ctx.Error(entities.FailedPrecondition, "cart %s is being checked out", ctx.Subject()), true
		case s.Order != "":
			return ctx.Error(entities.FailedPrecondition, "cart %s is reserved by order %s", ctx.Subject(), s.Order), true
		}
		return entities.Effect[Cart]{}, false
	}
	entities.EventCommand(e, "add-item", func(ctx *entities.EventContext[Cart, CartEvent], c AddItem) entities.Effect[Cart] {
		if eff, ok := closed(ctx); ok {
			return eff
		}
		switch {
		case c.ProductID == "":
			return ctx.Error(entities.InvalidArgument, "productId is empty")
		case c.Quantity <= 0:
			return ctx.Error(entities.InvalidArgument, "quantity must be more than 0, got %d", c.Quantity)
		}
		return change(ctx, ItemAdded(c))
	})
	entities.EventCommand(e, "remove-item", func(ctx *entities.EventContext[Cart, CartEvent], c RemoveItem) entities.Effect[Cart] {
		if eff, ok := closed(ctx); ok {
			return eff
		}
		if _, ok := ctx.State().Items[c.ProductID]; !ok {
			return ctx.Error(entities.NotFound, "cart %s has no item %q", ctx.Subject(), c.ProductID)
		}
		return change(ctx, ItemRemoved(c))
	})
	entities.EventCommand(e, "checkout", func(ctx *entities.EventContext[Cart, CartEvent], c Checkout) entities.Effect[Cart] {
		if ctx.State().CheckedOut {
			if o := ctx.State().Order; o != "" && o == c.Order {
				return ctx.Reply(ctx.State()) // the order confirms again (a retry)
			}
			return ctx.Error(entities.FailedPrecondition, "cart %s is already checked out", ctx.Subject())
		}
		if o := ctx.State().Order; o != "" && o == c.Order {
			return persist(ctx, CheckedOut{}) // the order that reserved it confirms
		}
		if eff, ok := closed(ctx); ok {
			return eff
		}
		if len(ctx.State().Items) == 0 {
			return ctx.Error(entities.FailedPrecondition, "cart %s is empty", ctx.Subject())
		}
		if c.CustomerID == "" {
			return persist(ctx, CheckedOut{}).CancelTimer(idleTimer)
		}
		// Ask the customer entity; its answer (or a timeout) checks out or
		// refuses. Meanwhile the cart takes no changes and does not expire.
		return persist(ctx, CheckoutRequested{CustomerID: c.CustomerID}).CancelTimer(idleTimer).Ask(entities.Ask{
			Entity: "customer", Subject: c.CustomerID, Command: "get", Payload: Get{},
			OnReply: cmdCustomerFound, OnError: cmdCustomerAbsent, Timeout: 10 * time.Second,
		})
	})
	entities.EventCommand(e, cmdCustomerFound, func(ctx *entities.EventContext[Cart, CartEvent], _ Customer) entities.Effect[Cart] {
		if ctx.State().Checkout == "" {
			return ctx.Ignore()
		}
		return persist(ctx, CheckedOut{})
	})
	entities.EventCommand(e, cmdCustomerAbsent, func(ctx *entities.EventContext[Cart, CartEvent], a entities.AskError) entities.Effect[Cart] {
		if ctx.State().Checkout == "" {
			return ctx.Ignore()
		}
		reason := fmt.Sprintf("customer %s: %s", ctx.State().Customer, a.Code)
		if a.Message != "" {
			reason += ": " + a.Message
		}
		return change(ctx, CheckoutRefused{Reason: reason})
	})
	entities.EventCommand(e, "reserve", func(ctx *entities.EventContext[Cart, CartEvent], c Reserve) entities.Effect[Cart] {
		if ctx.State().Order == c.Order && c.Order != "" {
			return ctx.Reply(ctx.State()) // reserved by this order already
		}
		if eff, ok := closed(ctx); ok {
			return eff
		}
		if len(ctx.State().Items) == 0 {
			return ctx.Error(entities.FailedPrecondition, "cart %s is empty", ctx.Subject())
		}
		return persist(ctx, CartReserved(c)).CancelTimer(idleTimer)
	})
	entities.EventCommand(e, "release", func(ctx *entities.EventContext[Cart, CartEvent], c Release) entities.Effect[Cart] {
		if ctx.State().Order != c.Order || c.Order == "" {
			return ctx.Reply(ctx.State()) // not reserved by this order: nothing to release
		}
		return change(ctx, CartReleased{})
	})
	entities.EventCommand(e, cmdExpire, func(ctx *entities.EventContext[Cart, CartEvent], _ struct{}) entities.Effect[Cart] {
		if s := ctx.State(); s.CheckedOut || s.Expired || s.Checkout != "" || s.Order != "" {
			return ctx.Ignore()
		}
		return ctx.Persist(CartExpired{})
	})
	entities.EventCommand(e, "get", func(ctx *entities.EventContext[Cart, CartEvent], _ Get) entities.Effect[Cart] {
		if !ctx.Exists() {
			return ctx.Error(entities.NotFound, "no cart %s", ctx.Subject())
		}
		return ctx.Reply(ctx.State())
	})
	return e
}
