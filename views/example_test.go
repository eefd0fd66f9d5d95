package views_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

type Product struct {
	Name  string `json:"name"`
	Price int    `json:"price"`
}

type ProductRow struct {
	Name  string `json:"name"`
	Price int    `json:"price"`
	Cheap bool   `json:"cheap"`
}

func catalog() (*entities.Entity[Product], *views.View[ProductRow]) {
	product := entities.KeyValue[Product]("product")
	entities.Command(product, "set", func(ctx *entities.Context[Product], p Product) entities.Effect[Product] {
		return ctx.Update(p)
	})
	byPrice := views.New[ProductRow]("products-by-price", views.Index("price"), views.Index("cheap"))
	views.FromState(byPrice, "product", func(u views.Update[ProductRow, Product]) views.Effect[ProductRow] {
		return u.Set(ProductRow{Name: u.Value.Name, Price: u.Value.Price, Cheap: u.Value.Price < 10})
	})
	return product, byPrice
}

// A view from a key-value entity's state, queried by an index range.
func ExampleFromState() {
	product, byPrice := catalog()
	h, _ := partitatest.New(product, byPrice)
	for id, p := range map[string]Product{"pen": {"Pen", 3}, "ink": {"Ink", 12}, "pad": {"Pad", 7}, "box": {"Box", 30}} {
		_, _ = h.Send("product", id, "set", p)
	}
	ctx := context.Background()
	products, _ := h.View("products-by-price") // a views.Reader
	page, _ := products.Query(ctx, views.Query{Index: "price", Gte: 5, Lt: 20, Desc: true})
	rows, _ := views.Decode[ProductRow](page.Rows)
	for i, r := range rows {
		fmt.Println(page.Rows[i].ID, r.Name, r.Price)
	}
	n, _ := products.Count(ctx, views.Query{Index: "cheap", Eq: true})
	fmt.Println("cheap:", n)
	pen, _, _ := views.Get[ProductRow](ctx, products, "pen")
	fmt.Println("pen:", pen.Price)
	// Output:
	// ink Ink 12
	// pad Pad 7
	// cheap: 2
	// pen: 3
}

// Paging: each page carries the token of the next.
func ExampleReader_Query() {
	product, byPrice := catalog()
	h, _ := partitatest.New(product, byPrice)
	for i := range 5 {
		_, _ = h.Send("product", fmt.Sprintf("p%d", i), "set", Product{Name: "P", Price: i})
	}
	products, _ := h.View("products-by-price")
	q := views.Query{Index: "price", Limit: 2}
	for {
		page, _ := products.Query(context.Background(), q)
		fmt.Println(len(page.Rows), "rows")
		if page.Next == "" {
			break
		}
		q.Page = page.Next
	}
	// Output:
	// 2 rows
	// 2 rows
	// 1 rows
}

// A subscription sends the current result, then each change.
func ExampleReader_Subscribe() {
	product, byPrice := catalog()
	h, _ := partitatest.New(product, byPrice)
	_, _ = h.Send("product", "pen", "set", Product{"Pen", 3})
	products, _ := h.View("products-by-price")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, _ := products.Subscribe(ctx, views.Query{Index: "cheap", Eq: true})
	show := func(c views.Change) {
		fmt.Println(strings.TrimSpace([]string{"upserted", "removed", "current"}[c.Kind] + " " + c.Row.ID + " " + string(c.Row.Data)))
	}
	show(<-sub.Changes())
	show(<-sub.Changes())
	_, _ = h.Send("product", "pen", "set", Product{"Pen", 15}) // no longer cheap
	show(<-sub.Changes())
	// Output:
	// upserted pen {"name":"Pen","price":3,"cheap":true}
	// current
	// removed pen
}
