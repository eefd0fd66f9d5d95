package sample_test

import (
	"testing"

	"github.com/partita-dev/partita/sample"
	partitatest "github.com/partita-dev/partita/testing"
	"github.com/partita-dev/partita/views"
)

func harness(t *testing.T, parts ...partitatest.Part) *partitatest.Harness {
	t.Helper()
	h, err := partitatest.New(parts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func send(t *testing.T, h *partitatest.Harness, entity, subject, command string, payload any, opts ...partitatest.SendOption) partitatest.Reply {
	t.Helper()
	r, err := h.Send(entity, subject, command, payload, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCustomerRules(t *testing.T) {
	h := harness(t, sample.NewCustomer())
	for _, tc := range []struct {
		command string
		payload any
		code    string
	}{
		{"get", struct{}{}, "not_found"},
		{"change-name", sample.ChangeName{Name: "B"}, "not_found"},
		{"create", sample.CreateCustomer{Email: "nope", Name: "A"}, "invalid_argument"},
		{"create", sample.CreateCustomer{Email: "a@example.com", Name: " "}, "invalid_argument"},
		{"create", sample.CreateCustomer{Email: "a@example.com", Name: "Ada"}, ""},
		{"create", sample.CreateCustomer{Email: "b@example.com", Name: "Bea"}, "conflict"},
		{"change-email", sample.ChangeEmail{Email: "ada@"}, "invalid_argument"},
		{"change-email", sample.ChangeEmail{Email: "ada@example.com"}, ""},
		{"change-name", sample.ChangeName{Name: "Ada L."}, ""},
		{"get", struct{}{}, ""},
	} {
		if r := send(t, h, "customer", "c1", tc.command, tc.payload); r.Code != tc.code || r.DeadLetter != "" {
			t.Errorf("%s %+v: got code %q (%s) dead %q, want %q", tc.command, tc.payload, r.Code, r.Message, r.DeadLetter, tc.code)
		}
	}
	var c sample.Customer
	if ok, err := h.State("customer", "c1", &c); !ok || err != nil || c != (sample.Customer{Email: "ada@example.com", Name: "Ada L."}) {
		t.Errorf("state %+v %v %v", c, ok, err)
	}
}

func TestCartRulesAndEvents(t *testing.T) {
	h := harness(t, sample.NewCart())
	add := func(p string, q int) partitatest.Reply {
		return send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: p, Name: "P " + p, Quantity: q})
	}
	if r := send(t, h, "cart", "k1", "checkout", struct{}{}); r.Code != "failed_precondition" {
		t.Errorf("checkout of an empty cart: %+v", r)
	}
	if r := add("p1", 0); r.Code != "invalid_argument" {
		t.Errorf("quantity 0: %+v", r)
	}
	add("p1", 2)
	add("p1", 1)
	add("p2", 5)
	if r := send(t, h, "cart", "k1", "remove-item", sample.RemoveItem{ProductID: "p9"}); r.Code != "not_found" {
		t.Errorf("removing an absent item: %+v", r)
	}
	send(t, h, "cart", "k1", "remove-item", sample.RemoveItem{ProductID: "p2"})
	r := send(t, h, "cart", "k1", "checkout", struct{}{})
	var cart sample.Cart
	if err := r.Decode(&cart); err != nil || !cart.CheckedOut || cart.Items["p1"].Quantity != 3 || len(cart.Items) != 1 || r.Seq != 5 {
		t.Errorf("checkout reply %+v %v seq %d", cart, err, r.Seq)
	}
	if r := add("p3", 1); r.Code != "failed_precondition" {
		t.Errorf("adding after checkout: %+v", r)
	}
	var types []string
	for i, e := range h.Events("cart", "k1") {
		types = append(types, e.Type())
		if want := "k1:" + string(rune('1'+i)); e.ID() != want {
			t.Errorf("event %d id %s, want %s", i, e.ID(), want)
		}
	}
	if got := len(types); got != 5 || types[0] != "ItemAdded" || types[3] != "ItemRemoved" || types[4] != "CheckedOut" {
		t.Errorf("events %v", types)
	}
}

func TestRedeliveryIsAnsweredFromTheRecord(t *testing.T) {
	h := harness(t, sample.NewCart())
	first := send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: "p1", Name: "P", Quantity: 1}, partitatest.ID("once"))
	send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: "p2", Name: "Q", Quantity: 1})
	again := send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: "p1", Name: "P", Quantity: 1}, partitatest.ID("once"))
	if !again.Duplicate || string(again.Data) != string(first.Data) || again.Seq != 1 {
		t.Errorf("redelivery: %+v, first %+v", again, first)
	}
	var cart sample.Cart
	_, _ = h.State("cart", "k1", &cart)
	if cart.Items["p1"].Quantity != 1 {
		t.Errorf("p1 applied twice: %+v", cart)
	}
	if n := len(h.Events("cart", "k1")); n != 3 { // k1:1, k1:2, and k1:1 published again
		t.Errorf("%d events written, want 3", n)
	}
}

func TestBadPayloadIsDeadLettered(t *testing.T) {
	h := harness(t, sample.NewCart())
	r := send(t, h, "cart", "k1", "add-item", map[string]any{"quantity": "three"})
	if r.DeadLetter == "" || len(h.DeadLetters()) != 1 {
		t.Errorf("want a dead letter, got %+v", r)
	}
}

func TestSampleViews(t *testing.T) {
	h := harness(t, sample.NewCustomer(), sample.NewCart(), sample.NewCustomersByEmail(), sample.NewCarts())
	send(t, h, "customer", "c1", "create", sample.CreateCustomer{Email: "ada@example.com", Name: "Ada"})
	send(t, h, "customer", "c2", "create", sample.CreateCustomer{Email: "bob@example.com", Name: "Bob"})
	send(t, h, "customer", "c1", "change-email", sample.ChangeEmail{Email: "ada@lovelace.org"})
	byEmail, _ := h.View("customers-by-email")
	page, err := byEmail.Query(views.Query{Index: "email", Eq: "ada@lovelace.org"})
	if err != nil || len(page.Rows) != 1 || page.Rows[0].ID != "c1" {
		t.Fatalf("by new email: %v %v", page.Rows, err)
	}
	if n, _ := byEmail.Count(views.Query{Index: "email", Eq: "ada@example.com"}); n != 0 {
		t.Errorf("the old email still finds %d rows", n)
	}

	send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: "p1", Name: "Pen", Quantity: 2})
	send(t, h, "cart", "k1", "add-item", sample.AddItem{ProductID: "p2", Name: "Ink", Quantity: 3})
	send(t, h, "cart", "k1", "remove-item", sample.RemoveItem{ProductID: "p1"})
	send(t, h, "cart", "k2", "add-item", sample.AddItem{ProductID: "p1", Name: "Pen", Quantity: 1})
	send(t, h, "cart", "k2", "checkout", struct{}{})
	carts, _ := h.View("carts")
	k1, ok, err := views.Get[sample.CartRow](carts, "k1")
	if !ok || err != nil || k1.ItemCount != 1 || k1.TotalQuantity != 3 || k1.CheckedOut {
		t.Errorf("k1: %+v %v %v", k1, ok, err)
	}
	page, _ = carts.Query(views.Query{Index: "checkedOut", Eq: true})
	if len(page.Rows) != 1 || page.Rows[0].ID != "k2" {
		t.Errorf("checked-out carts: %v", page.Rows)
	}
}
