package processor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

// stateApp is the sample customer (with a remove command) and cart, and a
// stateless consumer, so that State's cases all occur.
func stateApp(t *testing.T) (*app, []processor.Part) {
	t.Helper()
	e := newApp(t) // for the broker and a unique prefix
	signups := e.name + ".signups"
	admin, err := sarama.NewClusterAdminFromClient(e.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(signups, &sarama.TopicDetail{NumPartitions: 8, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	customer := shop.NewCustomer()
	entities.Command(customer, "remove", func(ctx *entities.Context[shop.Customer], _ struct{}) entities.Effect[shop.Customer] {
		return ctx.Delete().Reply(struct{}{})
	})
	welcome := entities.Consumer("welcome", entities.IgnoreUnknownTypes())
	entities.Subscribe(welcome, signups, "SignedUp", func(ctx *entities.Context[struct{}], _ signedUp) entities.Effect[struct{}] { return ctx.Ignore() })
	parts := []processor.Part{customer, shop.NewCart(), welcome}
	a := newAppOn(t, e.kafka, parts...)
	a.cfg.StateReads = true
	a.renew()
	return a, parts
}

func TestStateReadsTheEntityTableWithPositions(t *testing.T) {
	a, _ := stateApp(t)
	a.start()
	ctx := context.Background()
	read := func(entity, subject, after string) (processor.EntityState, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return a.rt.State(ctx, entity, subject, after)
	}

	// Ready means the replicas recovered: a subject with no state answers
	// at once, as one that never existed.
	start := time.Now()
	if st, err := read("customer", "nobody", ""); err != nil || st.Exists || st.Seq != 0 || st.State != nil || st.Subject != "nobody" {
		t.Fatalf("missing subject: %+v %v", st, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a read of a missing subject took %v", d)
	}

	customers, carts := a.topics.Commands("customer"), a.topics.Commands("cart")
	a.send(
		message(customers, cmd("c1", "create", "s-1", shop.CreateCustomer{Email: "c1@example.com", Name: "One"})),
		message(customers, cmd("c1", "change-name", "s-2", shop.ChangeName{Name: "Uno"})),
		message(carts, cmd("k1", "add-item", "s-3", shop.AddItem{ProductID: "pen", Name: "Pen", Quantity: 1})),
		message(carts, cmd("k1", "add-item", "s-4", shop.AddItem{ProductID: "ink", Name: "Ink", Quantity: 2})),
	)
	replies := a.replies(time.Minute, "s-1", "s-2", "s-3", "s-4")
	token := func(id string) string {
		tok := replies[id].Headers["ce_partitaposition"]
		if tok == "" {
			t.Fatalf("reply %s has no position: %v", id, replies[id].Headers)
		}
		return tok
	}

	// With the reply's position: at least that write.
	st, err := read("customer", "c1", token("s-2"))
	if err != nil {
		t.Fatal(err)
	}
	if c := decodeJSON[shop.Customer](t, st.State); !st.Exists || st.Seq < 2 || c.Name != "Uno" || c.Email != "c1@example.com" {
		t.Errorf("customer c1 after change-name: %+v (%+v)", st, c)
	}
	st, err = read("cart", "k1", token("s-4"))
	if err != nil {
		t.Fatal(err)
	}
	if k := decodeJSON[shop.Cart](t, st.State); !st.Exists || st.Seq != 2 || len(k.Items) != 2 || k.Items["ink"].Quantity != 2 {
		t.Errorf("cart k1 after two items: %+v (%+v)", st, k)
	}
	// An older position reads the newest state.
	if st, err := read("customer", "c1", token("s-1")); err != nil || st.Seq < 2 {
		t.Errorf("with the older token: %+v %v", st, err)
	}

	// A deleted subject exists no more but keeps its sequence number.
	a.send(message(customers, cmd("c1", "remove", "s-5", struct{}{})))
	tok := a.replies(time.Minute, "s-5")["s-5"].Headers["ce_partitaposition"]
	if st, err := read("customer", "c1", tok); err != nil || st.Exists || st.Seq != 3 {
		t.Errorf("after remove: %+v %v", st, err)
	}

	// Errors.
	for _, c := range []struct {
		entity, subject, after string
		want                   error
	}{
		{"nope", "c1", "", processor.ErrUnknownEntity},
		{"welcome", "c1", "", processor.ErrUnknownEntity}, // stateless
		{"customers-by-email", "c1", "", processor.ErrUnknownEntity},
		{"customer", "c1", "not-a-token", processor.ErrBadPosition},
		{"customer", "c2", token("s-2"), processor.ErrBadPosition}, // another subject
		{"cart", "c1", topics.Position{Entity: "customer", Subject: "c1", Seq: 1}.Token(), processor.ErrBadPosition},
		{"customer", "c\x00timer", "", processor.ErrBadSubject},
	} {
		if _, err := read(c.entity, c.subject, c.after); !errors.Is(err, c.want) {
			t.Errorf("State(%s, %q, %q) = %v, want %v", c.entity, c.subject, c.after, err, c.want)
		}
	}
	if _, err := read("customer", "c1", "not-a-token"); !errors.Is(err, topics.ErrBadPosition) {
		t.Errorf("a bad token's error does not wrap core's: %v", err)
	}
	// A position the replica never reaches: bounded by the context.
	wait, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	far := topics.Position{Entity: "customer", Subject: "c1", Seq: 1 << 40}.Token()
	if _, err := a.rt.State(wait, "customer", "c1", far); !errors.Is(err, processor.ErrNotYet) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unreachable position: %v, want ErrNotYet and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the bounded wait took %v", d)
	}
}

// A worker reads the state of subjects on partitions another worker of the
// same application owns.
func TestStateIsServedByEveryWorker(t *testing.T) {
	a, parts := stateApp(t)
	a.start()
	customers := a.topics.Commands("customer")
	var ids []string
	for i := range 16 {
		id := fmt.Sprintf("m-%d", i)
		ids = append(ids, id)
		a.send(message(customers, cmd(fmt.Sprintf("c%d", i), "create", id, shop.CreateCustomer{Email: "m@example.com", Name: "M"})))
	}
	replies := a.replies(time.Minute, ids...)

	// A second worker: its own data directory, same application.
	cfg := a.cfg
	cfg.DataDir = t.TempDir()
	rt2, err := processor.New(cfg, parts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = rt2.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	select {
	case <-rt2.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("second runtime not ready")
	}
	owned := map[int32]bool{}
	for _, p := range rt2.Partitions(ctx) {
		if p.Group == a.topics.Group("customer") {
			owned[p.Partition] = true
		}
	}
	foreign := 0
	for i, id := range ids {
		subject := fmt.Sprintf("c%d", i)
		if !owned[murmur2.Partition([]byte(subject), 8)] {
			foreign++
		}
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := rt2.State(rctx, "customer", subject, replies[id].Headers["ce_partitaposition"])
		rcancel()
		if err != nil || !st.Exists || st.Seq != 1 {
			t.Errorf("second worker, %s: %+v %v", subject, st, err)
		}
	}
	t.Logf("the second worker owns customer partitions %v; %d of %d subjects are on others", owned, foreign, len(ids))
	if foreign == 0 {
		t.Error("the second worker owns every subject's partition: the test shows nothing")
	}
}
