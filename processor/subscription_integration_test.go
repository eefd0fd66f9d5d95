package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/envelope"
)

type signedUp struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func TestSubscriptions(t *testing.T) {
	e := newApp(t) // only for its broker, client and a unique prefix
	signups, mail, lateMail := e.name+".signups", e.name+".mail", e.name+".late-mail"

	// An entity subscribes: each SignedUp creates the customer it names.
	customer := shop.NewCustomer()
	entities.Subscribe(customer, signups, "SignedUp", func(ctx *entities.Context[shop.Customer], s signedUp) entities.Effect[shop.Customer] {
		if ctx.Exists() {
			return ctx.Ignore()
		}
		return ctx.Update(shop.Customer(s))
	})
	// A stateless consumer reads from the beginning and ignores unknown types.
	welcome := entities.Consumer("welcome", entities.PublishesTo(mail), entities.IgnoreUnknownTypes())
	entities.Subscribe(welcome, signups, "SignedUp", func(ctx *entities.Context[struct{}], s signedUp) entities.Effect[struct{}] {
		return ctx.Ignore().Publish(mail, "WelcomeMailed", map[string]string{"to": s.Email})
	})
	// Another starts at the latest record.
	late := entities.Consumer("late", entities.PublishesTo(lateMail), entities.StartFrom(signups, entities.Latest))
	entities.Subscribe(late, signups, "SignedUp", func(ctx *entities.Context[struct{}], s signedUp) entities.Effect[struct{}] {
		return ctx.Ignore().Publish(lateMail, "WelcomeMailed", map[string]string{"to": s.Email})
	})

	admin, err := sarama.NewClusterAdminFromClient(e.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(signups, &sarama.TopicDetail{NumPartitions: 8, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	signup := func(i int) *sarama.ProducerMessage {
		return message(signups, cmd(fmt.Sprintf("s-%d", i), "SignedUp", fmt.Sprintf("su-%d", i), signedUp{Email: fmt.Sprintf("s%d@example.com", i), Name: "S"}))
	}
	e.send(signup(0), signup(1), signup(2))
	e.send(message(signups, cmd("s-x", "Unsubscribed", "un-1", struct{}{}))) // unknown type

	a := newAppOn(t, e.kafka, customer, welcome, late)
	a.start()
	e.send(signup(3), signup(4))

	count := func(topic string, n int) map[string]bool {
		seen := map[string]bool{}
		a.read(topic, time.Minute, func(r record) bool {
			seen[r.Key] = true
			return len(seen) == n
		})
		return seen
	}
	if got := count(mail, 5); !got["s-0"] || !got["s-4"] {
		t.Errorf("welcome (earliest) mailed %v, want s-0..s-4", got)
	}
	count(lateMail, 2)
	got := a.readAll(lateMail, 2*time.Second)
	keys := map[string]bool{}
	for _, r := range got {
		keys[r.Key] = true
	}
	if len(got) != 2 || !keys["s-3"] || !keys["s-4"] {
		t.Errorf("late (latest) mailed %d records for %v; want only s-3 and s-4", len(got), keys)
	}
	a.table("customer", 8, time.Minute, func(l map[string]*envelope.Envelope) bool {
		for i := range 5 {
			if env := l[fmt.Sprintf("s-%d", i)]; env == nil || !env.Exists {
				return false
			}
		}
		return true
	})
	// The entity dead-letters the unknown type; the consumer that ignores unknown types does not.
	var dead []record
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool { dead = append(dead, r); return true })
	if dead[0].Headers["ce_type"] != "Unsubscribed" || dead[0].Headers["partita_dlq_group"] != a.topics.Group("customer") {
		t.Errorf("dead letter %v", dead[0].Headers)
	}
	time.Sleep(time.Second)
	if n := a.rt.Stats().DeadLetters.Load(); n != 1 {
		t.Errorf("%d dead letters, want 1 (the entity's; the consumer ignores unknown types)", n)
	}
}
