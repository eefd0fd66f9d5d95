package processor_test

import (
	"testing"
	"time"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/processor/broker"
)

// The embedded broker (kfake) serves `make run`: the runtime must work on it.
// This says nothing about real Kafka; the integration tests do.
func TestRuntimeOnEmbeddedBroker(t *testing.T) {
	e, err := broker.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	a := newAppOn(t, e.Config(broker.Config{}), shop.NewCustomer(), shop.NewCart())
	a.start()
	topic := a.topics.Commands("cart")
	a.send(message(topic, cmd("k1", "add-item", "e-1", shop.AddItem{ProductID: "p", Name: "P", Quantity: 2})),
		message(topic, cmd("k1", "checkout", "e-2", struct{}{})))
	r := a.replies(30*time.Second, "e-1", "e-2")
	if r["e-2"].Headers["ce_partitaseq"] != "2" || r["e-2"].Headers["ce_type"] != "partita.reply" {
		t.Errorf("checkout reply: %v %s", r["e-2"].Headers, r["e-2"].Value)
	}
}
