package shop

import "github.com/partita-dev/partita/views"

// CustomerRow is a row of the customers-by-email view.
type CustomerRow struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// NewCustomersByEmail defines the customers-by-email view: one row per
// customer, indexed by email.
func NewCustomersByEmail() *views.View[CustomerRow] {
	v := views.New[CustomerRow]("customers-by-email", views.Index("email"))
	views.FromState(v, "customer", func(u views.Update[CustomerRow, Customer]) views.Effect[CustomerRow] {
		return u.Set(CustomerRow{ID: u.Subject, Email: u.Value.Email, Name: u.Value.Name})
	})
	views.OnDelete(v, "customer", func(u views.Update[CustomerRow, struct{}]) views.Effect[CustomerRow] { return u.Remove() })
	return v
}

// CartRow is a row of the carts view.
type CartRow struct {
	CartID        string         `json:"cartId"`
	ItemCount     int            `json:"itemCount"`     // distinct products
	TotalQuantity int            `json:"totalQuantity"` // sum of quantities
	CheckedOut    bool           `json:"checkedOut"`
	Quantities    map[string]int `json:"quantities"` // by product id
}

// NewCarts defines the carts view, folded from the cart's events and
// indexed by checkedOut.
func NewCarts() *views.View[CartRow] {
	v := views.New[CartRow]("carts", views.Index("checkedOut"), views.Index("totalQuantity"))
	row := func(id string, r CartRow) CartRow {
		r.CartID = id
		q := make(map[string]int, len(r.Quantities)+1)
		for k, n := range r.Quantities {
			q[k] = n
		}
		r.Quantities = q
		return r
	}
	total := func(r CartRow) CartRow {
		r.ItemCount, r.TotalQuantity = len(r.Quantities), 0
		for _, n := range r.Quantities {
			r.TotalQuantity += n
		}
		return r
	}
	views.FromEvent(v, "cart", "ItemAdded", func(u views.Update[CartRow, ItemAdded]) views.Effect[CartRow] {
		r := row(u.Subject, u.Row)
		r.Quantities[u.Value.ProductID] += u.Value.Quantity
		return u.Set(total(r))
	})
	views.FromEvent(v, "cart", "ItemRemoved", func(u views.Update[CartRow, ItemRemoved]) views.Effect[CartRow] {
		r := row(u.Subject, u.Row)
		delete(r.Quantities, u.Value.ProductID)
		return u.Set(total(r))
	})
	views.FromEvent(v, "cart", "CheckedOut", func(u views.Update[CartRow, CheckedOut]) views.Effect[CartRow] {
		r := row(u.Subject, u.Row)
		r.CheckedOut = true
		return u.Set(total(r))
	})
	return v
}
