package processor_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/examples/shop/shopmodel"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/views"
)

func newShop(t *testing.T) *app {
	return newApp(t, shop.NewCustomer(), shop.NewCart(), shop.NewCustomersByEmail(), shop.NewCarts())
}

// sendAll sends the workload's commands and waits for every reply.
func sendAll(t *testing.T, a *app, cmds []sent) {
	t.Helper()
	var batch []*sarama.ProducerMessage
	ids := make([]string, 0, len(cmds))
	for _, c := range cmds {
		batch = append(batch, message(a.topics.Commands(c.entity), cmd(c.subject, c.typ, c.id, c.data)))
		ids = append(ids, c.id)
		if len(batch) == 500 {
			a.send(batch...)
			batch = batch[:0]
		}
	}
	a.send(batch...)
	a.replies(3*time.Minute, ids...)
}

// allRows pages through a view and fails if a row is visited twice.
func allRows[R any](t *testing.T, s views.Reader, q views.Query) map[string]R {
	t.Helper()
	out := map[string]R{}
	for {
		page, err := s.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := views.Decode[R](page.Rows)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range page.Rows {
			if _, dup := out[r.ID]; dup {
				t.Fatalf("row %s visited twice while paging", r.ID)
			}
			out[r.ID] = rows[i]
		}
		if page.Next == "" {
			return out
		}
		q.Page = page.Next
	}
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestViewsEqualTheFoldAndSurviveARestart(t *testing.T) {
	a := newShop(t)
	a.start()
	m := shopmodel.New()
	cmds := workload(rand.New(rand.NewPCG(3, 4)), m, map[string]string{}, 10_000, 3_000)
	sendAll(t, a, cmds)

	customers, err := a.rt.View("customers-by-email")
	if err != nil {
		t.Fatal(err)
	}
	carts, _ := a.rt.View("carts")
	wantCustomers, wantCarts := m.CustomerRows(), m.CartRows()
	eventually(t, 2*time.Minute, "views equal the fold", func() bool {
		return maps.Equal(allRows[shop.CustomerRow](t, customers, views.Query{Limit: 1000}), wantCustomers) &&
			shopmodel.EqualCarts(allRows[shop.CartRow](t, carts, views.Query{Limit: 1000}), wantCarts)
	})
	if len(wantCarts) < 1000 {
		t.Fatalf("only %d cart rows: the paging check wants more than 1,000", len(wantCarts))
	}
	// Paging in small pages, by index, in both orders, visits each row once.
	for _, q := range []views.Query{{Index: "totalQuantity", Limit: 37}, {Index: "checkedOut", Desc: true, Limit: 50}} {
		if got := allRows[shop.CartRow](t, carts, q); !shopmodel.EqualCarts(got, wantCarts) {
			t.Errorf("paging %+v: %d rows, want %d", q, len(got), len(wantCarts))
		}
	}
	// Index queries against the model.
	checkedOut := 0
	for _, r := range wantCarts {
		if r.CheckedOut {
			checkedOut++
		}
	}
	if n, err := carts.Count(t.Context(), views.Query{Index: "checkedOut", Eq: true}); n != checkedOut || err != nil {
		t.Errorf("checked-out carts: %d %v, want %d", n, err, checkedOut)
	}
	matching := func(keep func(shop.CartRow) bool) map[string]shop.CartRow {
		out := map[string]shop.CartRow{}
		for id, r := range wantCarts {
			if keep(r) {
				out[id] = r
			}
		}
		return out
	}
	if got := allRows[shop.CartRow](t, carts, views.Query{Index: "totalQuantity", Gte: 3, Lt: 7, Limit: 100}); !shopmodel.EqualCarts(got, matching(func(r shop.CartRow) bool {
		return r.TotalQuantity >= 3 && r.TotalQuantity < 7
	})) {
		t.Errorf("totalQuantity in [3,7): %d rows", len(got))
	}
	byEmail := func(keep func(shop.CustomerRow) bool) map[string]shop.CustomerRow {
		out := map[string]shop.CustomerRow{}
		for id, r := range wantCustomers {
			if keep(r) {
				out[id] = r
			}
		}
		return out
	}
	prefix := "u1"
	if got := allRows[shop.CustomerRow](t, customers, views.Query{Index: "email", Prefix: &prefix, Desc: true, Limit: 20}); !maps.Equal(got, byEmail(func(r shop.CustomerRow) bool {
		return strings.HasPrefix(r.Email, prefix)
	})) {
		t.Errorf("email prefix %q: %d rows", prefix, len(got))
	}
	for _, c := range wantCustomers {
		want := byEmail(func(r shop.CustomerRow) bool { return r.Email == c.Email })
		if got := allRows[shop.CustomerRow](t, customers, views.Query{Index: "email", Eq: c.Email}); !maps.Equal(got, want) {
			t.Errorf("email = %s: %v, want %v", c.Email, got, want)
		}
	}
	// Ordered: by totalQuantity descending, the sequence never increases.
	page, err := carts.Query(t.Context(), views.Query{Index: "totalQuantity", Desc: true, Limit: 1000})
	rows, _ := views.Decode[shop.CartRow](page.Rows)
	for i := 1; i < len(rows); i++ {
		if err != nil || rows[i].TotalQuantity > rows[i-1].TotalQuantity {
			t.Fatalf("descending order broken at %d: %d after %d (%v)", i, rows[i].TotalQuantity, rows[i-1].TotalQuantity, err)
		}
	}

	// Restart the worker: the replicas resume from their stored offsets.
	before := a.rt.Stats().ViewApplied.Load()
	a.stop()
	a.renew()
	a.start()
	reread := a.rt.Stats().ViewApplied.Load()
	t.Logf("view records applied before the restart: %d; re-read after it before serving: %d", before, reread)
	if reread > 2*8 { // at most a couple per partition of each view (records written during shutdown)
		t.Errorf("restart re-read %d view records before serving, want a rebuild-free resume", reread)
	}
	customers, _ = a.rt.View("customers-by-email")
	if got := allRows[shop.CustomerRow](t, customers, views.Query{Limit: 1000}); !maps.Equal(got, wantCustomers) {
		t.Errorf("after restart: %d customer rows, want %d", len(got), len(wantCustomers))
	}

	// Rebuild the carts view from the cart events: the same rows again.
	a.stop()
	a.renew()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.rt.RebuildView(ctx, "carts"); err != nil {
		t.Fatal(err)
	}
	a.start()
	carts, _ = a.rt.View("carts")
	eventually(t, 2*time.Minute, "rebuilt carts view equals the fold", func() bool {
		return shopmodel.EqualCarts(allRows[shop.CartRow](t, carts, views.Query{Limit: 1000}), wantCarts)
	})
	if n := a.rt.Stats().ViewApplied.Load(); n < int64(len(wantCarts)) {
		t.Errorf("the rebuild applied %d records; the carts view alone has %d rows", n, len(wantCarts))
	}
}

func TestOldUpdateBehindNewerNeverMovesARowBack(t *testing.T) {
	a := newShop(t)
	a.start()
	topic := a.topics.Commands("cart")
	a.send(message(topic, cmd("k", "add-item", "o-1", shop.AddItem{ProductID: "p1", Name: "P", Quantity: 2})),
		message(topic, cmd("k", "add-item", "o-2", shop.AddItem{ProductID: "p1", Name: "P", Quantity: 3})),
		message(topic, cmd("k", "remove-item", "o-3", shop.RemoveItem{ProductID: "p1"})))
	a.replies(time.Minute, "o-1", "o-2", "o-3")
	// Redeliver the first event (seq 1) behind the newer ones, as a broker
	// redelivery would, then a newer command as a marker behind it.
	var first record
	a.read(a.topics.Events("cart"), time.Minute, func(r record) bool { first = r; return true })
	old := codec.Record{Key: []byte(first.Key), Value: first.Value, Headers: map[string][]byte{}}
	for k, v := range first.Headers {
		old.Headers[k] = []byte(v)
	}
	if old.Headers["ce_partitaseq"] == nil || string(old.Headers["ce_partitaseq"]) != "1" {
		t.Fatalf("first event is not seq 1: %v", first.Headers)
	}
	a.send(raw(a.topics.Events("cart"), old))
	a.send(message(topic, cmd("k", "add-item", "o-4", shop.AddItem{ProductID: "p9", Name: "Q", Quantity: 1})))
	carts, _ := a.rt.View("carts")
	var row shop.CartRow
	eventually(t, time.Minute, "marker applied", func() bool {
		row, _, _ = views.Get[shop.CartRow](t.Context(), carts, "k")
		return row.Quantities["p9"] == 1
	})
	if _, back := row.Quantities["p1"]; back || row.TotalQuantity != 1 || row.ItemCount != 1 {
		t.Fatalf("the old event moved the row back: %+v", row)
	}
}

func TestReadYourWrites(t *testing.T) {
	e := newShop(t) // for its broker only
	a := newAppOn(t, e.kafka, shop.NewCustomer(), shop.NewCustomersByEmail())
	a.cfg.ViewApplyDelay = 2 * time.Second // a lagging view
	a.renew()
	a.start()
	topic := a.topics.Commands("customer")
	a.send(message(topic, cmd("c", "create", "w-0", shop.CreateCustomer{Email: "v0@example.com", Name: "C"})))
	a.replies(time.Minute, "w-0")
	store, _ := a.rt.View("customers-by-email")
	stale := 0
	const writes = 5
	for i := 1; i <= writes; i++ {
		id, email := "w-"+string(rune('a'+i)), "v"+string(rune('a'+i))+"@example.com"
		a.send(message(topic, cmd("c", "change-email", id, shop.ChangeEmail{Email: email})))
		// Right after the write, without a token: the row may still be the old one.
		if row, _, _ := views.Get[shop.CustomerRow](t.Context(), store, "c"); row.Email != email {
			stale++
		}
		r := a.replies(time.Minute, id)[id]
		token := r.Headers["ce_partitaposition"]
		if token == "" {
			t.Fatalf("reply without position token: %v", r.Headers)
		}
		// With it: always the write.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := store.WaitFor(ctx, token)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if row, _, _ := views.Get[shop.CustomerRow](t.Context(), store, "c"); row.Email != email {
			t.Fatalf("after waiting for the position, the row is %+v, want email %s", row, email)
		}
	}
	t.Logf("reads without the token that were stale: %d of %d", stale, writes)
	if stale == 0 {
		t.Error("no stale read without the token despite a lagging view: the test shows nothing")
	}
	// A position the view never reaches fails with ErrStale.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	far := topics.Position{Entity: "customer", Subject: "c", Seq: 1 << 40}.Token()
	if err := store.WaitFor(ctx, far); !errors.Is(err, views.ErrStale) || !strings.Contains(err.Error(), "customer c at sequence") {
		t.Errorf("want ErrStale naming the position, got %v", err)
	}
	lag, err := a.rt.Lag("customers-by-email")
	if err != nil || len(lag) != 8 {
		t.Errorf("lag: %v %v", lag, err)
	}
}
