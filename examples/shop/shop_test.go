package shop_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/workflows"
)

// startShop starts the sample application in the harness.
func startShop(t *testing.T, opts ...pt.Option) *pt.Harness {
	t.Helper()
	h, err := pt.NewWith(opts, shop.NewCustomer(), shop.NewCart(), shop.NewCustomersByEmail(), shop.NewCarts())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCustomerRules(t *testing.T) {
	h := startShop(t)
	send := func(command string, payload any) (pt.Reply, error) { return h.Send("customer", "c1", command, payload) }
	r, err := send("get", struct{}{})
	pt.ExpectError(t, "not_found")(r, err)
	r, err = send("change-name", shop.ChangeName{Name: "B"})
	pt.ExpectError(t, "not_found")(r, err)
	r, err = send("create", shop.CreateCustomer{Email: "nope", Name: "A"})
	pt.ExpectError(t, "invalid_argument")(r, err)
	r, err = send("create", shop.CreateCustomer{Email: "a@example.com", Name: " "})
	pt.ExpectError(t, "invalid_argument")(r, err)
	r, err = send("create", shop.CreateCustomer{Email: "a@example.com", Name: "Ada"})
	if c := pt.Expect[shop.Customer](t)(r, err); c.Name != "Ada" || r.Seq != 1 {
		t.Errorf("create: %+v seq %d", c, r.Seq)
	}
	r, err = send("create", shop.CreateCustomer{Email: "b@example.com", Name: "Bea"})
	pt.ExpectError(t, "conflict")(r, err)
	r, err = send("change-email", shop.ChangeEmail{Email: "ada@"})
	pt.ExpectError(t, "invalid_argument")(r, err)
	r, err = send("change-email", shop.ChangeEmail{Email: "ada@example.com"})
	pt.Expect[shop.Customer](t)(r, err)
	r, err = send("change-name", shop.ChangeName{Name: "Ada L."})
	pt.Expect[shop.Customer](t)(r, err)
	r, err = send("get", struct{}{})
	if c := pt.Expect[shop.Customer](t)(r, err); c != (shop.Customer{Email: "ada@example.com", Name: "Ada L."}) || r.Seq != 3 {
		t.Errorf("get: %+v seq %d", c, r.Seq)
	}
	if row := pt.ExpectRow[shop.CustomerRow](t, h, "customers-by-email", "c1"); row.Email != "ada@example.com" {
		t.Errorf("view row %+v", row)
	}
	h.ExpectHeld(t)
}

func TestCartRulesEventsAndView(t *testing.T) {
	h := startShop(t)
	add := func(p string, q int) (pt.Reply, error) {
		return h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: p, Name: "P " + p, Quantity: q})
	}
	r, err := h.Send("cart", "k1", "checkout", struct{}{})
	pt.ExpectError(t, "failed_precondition")(r, err)
	r, err = add("p1", 0)
	pt.ExpectError(t, "invalid_argument")(r, err)
	for _, a := range []struct {
		p string
		q int
	}{{"p1", 2}, {"p1", 1}, {"p2", 5}} {
		r, err = add(a.p, a.q)
		pt.Expect[shop.Cart](t)(r, err)
	}
	r, err = h.Send("cart", "k1", "remove-item", shop.RemoveItem{ProductID: "p9"})
	pt.ExpectError(t, "not_found")(r, err)
	r, err = h.Send("cart", "k1", "remove-item", shop.RemoveItem{ProductID: "p2"})
	pt.Expect[shop.Cart](t)(r, err)
	r, err = h.Send("cart", "k1", "checkout", struct{}{})
	if cart := pt.Expect[shop.Cart](t)(r, err); !cart.CheckedOut || cart.Items["p1"].Quantity != 3 || len(cart.Items) != 1 || r.Seq != 5 {
		t.Errorf("checkout reply %+v seq %d", cart, r.Seq)
	}
	r, err = add("p3", 1)
	pt.ExpectError(t, "failed_precondition")(r, err)
	evs := h.ExpectEvents(t, "cart", "k1", "ItemAdded", "ItemAdded", "ItemAdded", "ItemRemoved", "CheckedOut")
	if evs[4].ID() != "k1:5" {
		t.Errorf("last event id %s, want k1:5", evs[4].ID())
	}
	row := pt.ExpectRow[shop.CartRow](t, h, "carts", "k1")
	if row.ItemCount != 1 || row.TotalQuantity != 3 || !row.CheckedOut {
		t.Errorf("carts row %+v", row)
	}
	carts, _ := h.View("carts")
	if n, _ := carts.Count(t.Context(), views.Query{Index: "checkedOut", Eq: true}); n != 1 {
		t.Errorf("%d checked-out carts", n)
	}
	h.ExpectHeld(t)
}

type signedUp struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func TestPublishAndSubscribe(t *testing.T) {
	customer := shop.NewCustomer()
	h0, _ := pt.New() // only for topic names
	signups, welcomes := h0.Topic("signups"), h0.Topic("welcomes")
	entities.Subscribe(customer, signups, "SignedUp", func(ctx *entities.Context[shop.Customer], s signedUp) entities.Effect[shop.Customer] {
		if ctx.Exists() {
			return ctx.Ignore()
		}
		return ctx.Update(shop.Customer(s))
	})
	mailer := entities.Consumer("mailer", entities.PublishesTo(welcomes))
	entities.Subscribe(mailer, signups, "SignedUp", func(ctx *entities.Context[struct{}], s signedUp) entities.Effect[struct{}] {
		return ctx.Ignore().Publish(welcomes, "Welcomed", map[string]string{"to": s.Email})
	})
	h := pt.Start(t, customer, mailer, shop.NewCustomersByEmail())
	for _, s := range []string{"s1", "s2"} {
		if err := h.Publish(signups, "SignedUp", s, signedUp{Email: s + "@example.com", Name: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Publish(signups, "SignedUp", "s1", signedUp{Email: "s1@example.com", Name: "s1"}, pt.ID("cmd-1")); err != nil { // a redelivered signup
		t.Fatal(err)
	}
	sent := pt.ExpectPublished[map[string]string](t, h, welcomes, 2)
	if sent[0]["to"] == "" {
		t.Errorf("welcome %v", sent)
	}
	if row := pt.ExpectRow[shop.CustomerRow](t, h, "customers-by-email", "s2"); row.Email != "s2@example.com" {
		t.Errorf("row %+v", row)
	}
	h.ExpectHeld(t)
}

func TestFaultRedeliveryBehindNewer(t *testing.T) {
	h := startShop(t)
	first, err := h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: "p1", Name: "P", Quantity: 1}, pt.ID("once"))
	pt.Expect[shop.Cart](t)(first, err)
	r, err := h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: "p2", Name: "Q", Quantity: 1})
	pt.Expect[shop.Cart](t)(r, err)
	again, err := h.Redeliver("once")
	if err != nil || !again.Duplicate || string(again.Data) != string(first.Data) || again.Seq != 1 {
		t.Fatalf("redelivery: %+v %v, first %+v", again, err, first)
	}
	var cart shop.Cart
	_, _ = h.State("cart", "k1", &cart)
	if cart.Items["p1"].Quantity != 1 {
		t.Errorf("p1 applied twice: %+v", cart)
	}
	h.ExpectEvents(t, "cart", "k1", "ItemAdded", "ItemAdded")
	if n := len(h.Events("cart", "k1")); n != 2 { // a redelivery in the same run writes its reply alone
		t.Errorf("%d events written, want 2", n)
	}
	// The event itself redelivered behind the newer one (a restart
	// republishes what the broker may lack): the view does not move.
	if err := h.RedeliverEvent("app.cart.events", "k1:1"); err != nil {
		t.Fatal(err)
	}
	if row := pt.ExpectRow[shop.CartRow](t, h, "carts", "k1"); row.TotalQuantity != 2 {
		t.Errorf("view moved with the redelivered event: %+v", row)
	}
	h.ExpectHeld(t)
}

func TestFaultDuplicate(t *testing.T) {
	h := startShop(t)
	r, err := h.Send("customer", "c1", "create", shop.CreateCustomer{Email: "a@b.c", Name: "A"}, pt.Duplicated())
	if c := pt.Expect[shop.Customer](t)(r, err); c.Name != "A" || !r.Duplicate || r.Seq != 1 {
		t.Errorf("duplicate create: %+v %+v", c, r)
	}
	h.ExpectHeld(t)
}

func TestFaultMisrouted(t *testing.T) {
	h := startShop(t)
	r, err := h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: "p1", Name: "P", Quantity: 2}, pt.Misrouted())
	pt.Expect[shop.Cart](t)(r, err)
	r, err = h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: "p1", Name: "P", Quantity: 3})
	if cart := pt.Expect[shop.Cart](t)(r, err); cart.Items["p1"].Quantity != 5 {
		t.Errorf("misrouted update lost: %+v", cart)
	}
	if h.Rerouted() != 1 {
		t.Errorf("%d records re-routed, want 1", h.Rerouted())
	}
	h.ExpectHeld(t)
}

func TestFaultLaggingViewReadsStale(t *testing.T) {
	h := startShop(t)
	r, err := h.Send("customer", "c1", "create", shop.CreateCustomer{Email: "old@example.com", Name: "A"})
	pt.Expect[shop.Customer](t)(r, err)
	if err := h.LagView("customers-by-email"); err != nil {
		t.Fatal(err)
	}
	r, err = h.Send("customer", "c1", "change-email", shop.ChangeEmail{Email: "new@example.com"})
	pt.Expect[shop.Customer](t)(r, err)
	if row := pt.ExpectRow[shop.CustomerRow](t, h, "customers-by-email", "c1"); row.Email != "old@example.com" {
		t.Fatalf("a lagging view shows %+v, want the stale row", row)
	}
	row, ok, err := h.ReadAfter("customers-by-email", r.Position, "c1")
	if !ok || err != nil || string(row.Data) == "" {
		t.Fatalf("read after the position: %v %v", ok, err)
	}
	got, _ := views.Decode[shop.CustomerRow]([]views.Row{row})
	if got[0].Email != "new@example.com" {
		t.Errorf("read-your-writes: %+v", got[0])
	}
	_ = h.CatchUp("customers-by-email")
	h.ExpectHeld(t)
}

func TestFaultCrashReplaysUncommitted(t *testing.T) {
	h := startShop(t, pt.CommitEvery(100)) // nothing committed: a crash replays everything
	for _, q := range []int{1, 2, 3} {
		r, err := h.Send("cart", "k1", "add-item", shop.AddItem{ProductID: "p", Name: "P", Quantity: q})
		pt.Expect[shop.Cart](t)(r, err)
	}
	for _, g := range []string{"cart", "carts"} {
		if err := h.Crash(g); err != nil {
			t.Fatal(err)
		}
	}
	var cart shop.Cart
	_, _ = h.State("cart", "k1", &cart)
	if cart.Items["p"].Quantity != 6 {
		t.Errorf("after crash and replay: %+v, want quantity 6", cart)
	}
	h.ExpectEvents(t, "cart", "k1", "ItemAdded", "ItemAdded", "ItemAdded")
	if row := pt.ExpectRow[shop.CartRow](t, h, "carts", "k1"); row.TotalQuantity != 6 {
		t.Errorf("view after replay: %+v", row)
	}
	h.ExpectHeld(t)
}

func TestFaultHandlerFails(t *testing.T) {
	h := startShop(t)
	h.FailNext("customer", "create", entities.DefaultRetries) // within the retries: succeeds
	r, err := h.Send("customer", "c1", "create", shop.CreateCustomer{Email: "a@b.c", Name: "A"})
	pt.Expect[shop.Customer](t)(r, err)
	h.FailNext("customer", "change-name", entities.DefaultRetries+1) // beyond: dead letter
	_, err = h.Send("customer", "c1", "change-name", shop.ChangeName{Name: "B"})
	d := h.ExpectDeadLettered(t, err, "handler failed 4 times")
	if d.Group != "app.customer" {
		t.Errorf("dead letter from %q", d.Group)
	}
}

func TestBadPayloadIsDeadLettered(t *testing.T) {
	h := startShop(t)
	_, err := h.Send("cart", "k1", "add-item", map[string]any{"quantity": "three"})
	h.ExpectDeadLettered(t, err, "payload does not fit")
}

// A cart left idle expires once its idle time has passed since its last
// change (every change starts the timer again); a checked-out cart never
// does.
func TestCartExpiresWhenIdle(t *testing.T) {
	h := startShop(t)
	add := func(cart string) {
		t.Helper()
		pt.Expect[shop.Cart](t)(h.Send("cart", cart, "add-item", shop.AddItem{ProductID: "pen", Name: "Pen", Quantity: 1}))
	}
	add("idle")
	add("done")
	pt.Expect[shop.Cart](t)(h.Send("cart", "done", "checkout", shop.Checkout{}))
	h.Advance(shop.DefaultCartIdle - time.Minute)
	add("idle") // a change: the timer starts again
	h.Advance(shop.DefaultCartIdle - time.Second)
	var c shop.Cart
	if _, err := h.State("cart", "idle", &c); err != nil || c.Expired {
		t.Fatalf("expired before its idle time since the last change: %+v %v", c, err)
	}
	h.Advance(time.Second)
	var expired shop.Cart
	if _, _ = h.State("cart", "idle", &expired); !expired.Expired || len(expired.Items) != 0 {
		t.Fatalf("not expired after its idle time: %+v", expired)
	}
	pt.ExpectError(t, "failed_precondition")(h.Send("cart", "idle", "add-item", shop.AddItem{ProductID: "ink", Name: "Ink", Quantity: 1}))
	h.ExpectEvents(t, "cart", "idle", "ItemAdded", "ItemAdded", "CartExpired")
	h.Advance(24 * time.Hour)
	var done shop.Cart
	if _, _ = h.State("cart", "done", &done); done.Expired || !done.CheckedOut {
		t.Fatalf("a checked-out cart: %+v", done)
	}
	// The expiry command is the runtime's: the gateway refuses it.
	if _, err := h.Send("cart", "done", "expire", struct{}{}, pt.As(access.Caller{Subject: "mallory"})); !errors.Is(err, access.ErrForbidden) {
		t.Fatalf("expire from a gateway caller: %v, want access.ErrForbidden", err)
	}
}

// A checkout that names a customer asks the customer entity: it checks out
// when the customer exists, and is refused with the reason when not.
func TestCheckoutAsksTheCustomer(t *testing.T) {
	h := startShop(t)
	pt.Expect[shop.Customer](t)(h.Send("customer", "c1", "create", shop.CreateCustomer{Email: "a@example.com", Name: "Ada"}))
	for _, cart := range []string{"k1", "k2"} {
		pt.Expect[shop.Cart](t)(h.Send("cart", cart, "add-item", shop.AddItem{ProductID: "pen", Name: "Pen", Quantity: 1}))
	}
	if c := pt.Expect[shop.Cart](t)(h.Send("cart", "k1", "checkout", shop.Checkout{CustomerID: "c1"})); c.Checkout != "pending" {
		t.Fatalf("checkout's reply: %+v, want the checkout pending", c)
	}
	var k1, k2 shop.Cart
	if _, _ = h.State("cart", "k1", &k1); !k1.CheckedOut || k1.Checkout != "" {
		t.Fatalf("k1 after the customer's answer: %+v", k1)
	}
	pt.Expect[shop.Cart](t)(h.Send("cart", "k2", "checkout", shop.Checkout{CustomerID: "nobody"}))
	if _, _ = h.State("cart", "k2", &k2); k2.CheckedOut || k2.Refused != "customer nobody: not_found: no customer nobody" {
		t.Fatalf("k2 after the customer's answer: %+v", k2)
	}
	// Refused, the cart takes changes again and can be checked out.
	pt.Expect[shop.Cart](t)(h.Send("cart", "k2", "checkout", shop.Checkout{}))
	h.ExpectEvents(t, "cart", "k2", "ItemAdded", "CheckoutRequested", "CheckoutRefused", "CheckedOut")
	h.ExpectHeld(t)
}

// The order workflow: reserve the cart, charge the fake payment service,
// check the cart out; a declined charge releases the cart; the service's
// ledger holds each order's charge once.
func TestOrderWorkflow(t *testing.T) {
	pay, err := shop.StartPayments("127.0.0.1:0", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer pay.Close()
	h, err := pt.New(shop.NewCustomer(), shop.NewCartIdle(time.Hour), shop.NewOrder(pay.URL()))
	if err != nil {
		t.Fatal(err)
	}
	for _, cart := range []string{"k1", "k2"} {
		pt.Expect[shop.Cart](t)(h.Send("cart", cart, "add-item", shop.AddItem{ProductID: "pen", Name: "Pen", Quantity: 1}))
	}
	pt.Expect[workflows.Instance[shop.Order]](t)(h.Send("order", "o1", workflows.CommandStart, shop.Order{Cart: "k1", Amount: 40}))
	pt.Expect[workflows.Instance[shop.Order]](t)(h.Send("order", "o2", workflows.CommandStart, shop.Order{Cart: "k2", Amount: 400}))
	var o1, o2 workflows.Instance[shop.Order]
	var k1, k2 shop.Cart
	_, _ = h.State("order", "o1", &o1)
	_, _ = h.State("order", "o2", &o2)
	_, _ = h.State("cart", "k1", &k1)
	_, _ = h.State("cart", "k2", &k2)
	if o1.Status != workflows.Completed || o1.State.Payment != "charge-1" || !k1.CheckedOut {
		t.Fatalf("o1 %s (%q), k1 %+v", o1.Status, o1.Reason, k1)
	}
	if o2.Status != workflows.Compensated || k2.Order != "" || k2.CheckedOut || !strings.Contains(o2.Reason, "payment declined") {
		t.Fatalf("o2 %s (%q), k2 %+v", o2.Status, o2.Reason, k2)
	}
	// The released cart takes changes again.
	pt.Expect[shop.Cart](t)(h.Send("cart", "k2", "add-item", shop.AddItem{ProductID: "ink", Name: "Ink", Quantity: 1}))
	if l := pay.Ledger(); len(l) != 1 || l[0].Key != "order/o1/charge" || l[0].Amount != 40 {
		t.Fatalf("ledger %+v", l)
	}
	// A refund of no charge (a compensation of a charge that timed out and
	// never happened) does nothing.
	req, _ := http.NewRequest(http.MethodPost, pay.URL()+"/refund", strings.NewReader(`{"payment":""}`))
	req.Header.Set("Idempotency-Key", "order/o9/refund")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK || len(pay.Ledger()) != 1 {
		t.Fatalf("refund of nothing: %v %v, ledger %+v", resp, err, pay.Ledger())
	}
	h.ExpectHeld(t)
}
