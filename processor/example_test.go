package processor_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/views"
)

// Running entities and a view on Kafka (here the embedded broker), sending a
// command as a CloudEvent and reading the view with the reply's position.
func ExampleRuntime() {
	kafka, _ := broker.StartEmbedded(0, "")
	defer kafka.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	rt, err := processor.New(processor.Config{App: "shop", Kafka: kafka.Config(broker.Config{}), DataDir: dir, CreateTopics: true},
		shop.NewCustomer(), shop.NewCustomersByEmail())
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rt.Run(ctx) }()
	<-rt.Ready()

	// Any producer may send commands: a CloudEvent keyed by its subject.
	// This one asks for a reply.
	cmd := codec.NewEvent()
	cmd.SetID("req-1")
	cmd.SetSource("example")
	cmd.SetType("create")
	cmd.SetSubject("c-1")
	cmd.SetExtension(codec.ExtReply, "true")
	_ = cmd.SetData("application/json", shop.CreateCustomer{Email: "ada@example.com", Name: "Ada"})
	rec, _ := codec.EncodeEvent(cmd)
	cfg, _ := kafka.Config(broker.Config{}).Sarama(nil)
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	producer, _ := sarama.NewSyncProducer(kafka.Config(broker.Config{}).BootstrapServers, cfg)
	defer producer.Close()
	msg := &sarama.ProducerMessage{Topic: "shop.customer.commands", Key: sarama.ByteEncoder(rec.Key), Value: sarama.ByteEncoder(rec.Value)}
	for k, v := range rec.Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	_, _, _ = producer.SendMessage(msg)

	// The reply comes on shop.replies, keyed by the command's source and
	// id; its position token lets a query wait for the view.
	consumer, _ := sarama.NewConsumer(kafka.Config(broker.Config{}).BootstrapServers, cfg)
	defer consumer.Close()
	pc, _ := consumer.ConsumePartition("shop.replies", murmur2.Partition([]byte("example/req-1"), 8), sarama.OffsetOldest)
	defer pc.Close()
	reply := <-pc.Messages()
	var position string
	for _, h := range reply.Headers {
		if string(h.Key) == "ce_"+codec.ExtPosition {
			position = string(h.Value)
		}
	}
	fmt.Println(string(reply.Value))

	store, _ := rt.View("customers-by-email")
	wait, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if err := store.WaitFor(wait, position); err != nil {
		panic(err)
	}
	row, _, _ := views.Get[shop.CustomerRow](ctx, store, "c-1")
	fmt.Println(row.Email)
	// Output:
	// {"email":"ada@example.com","name":"Ada"}
	// ada@example.com
}
