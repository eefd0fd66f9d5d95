package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/recordtest"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/testing/partitatest"
)

func TestRedeliveredCommandIsAppliedOnce(t *testing.T) {
	a := newApp(t, shop.NewCustomer(), shop.NewCart())
	a.start()
	topic := a.topics.Commands("cart")
	first := cmd("cart-r", "add-item", "r-1", shop.AddItem{ProductID: "p1", Name: "Pen", Quantity: 2})

	// replyCount waits until id has n replies and returns them.
	replies := func(id string, n int) []record {
		var rs []record
		a.read(a.topics.Replies(), time.Minute, func(r record) bool {
			if r.Headers["ce_"+codec.ExtRequest] == id {
				rs = append(rs, r)
			}
			return len(rs) == n
		})
		return rs
	}
	a.send(message(topic, first))
	replies("r-1", 1)
	a.send(message(topic, first)) // right after
	a.send(message(topic, cmd("cart-r", "add-item", "r-2", shop.AddItem{ProductID: "p2", Name: "Ink", Quantity: 1})))
	a.send(message(topic, cmd("cart-r", "remove-item", "r-3", shop.RemoveItem{ProductID: "p1"})))
	replies("r-3", 1)
	a.send(message(topic, first)) // again, behind newer commands
	rs := replies("r-1", 3)
	for _, r := range rs[1:] {
		if !bytes.Equal(r.Value, rs[0].Value) || r.Headers["ce_id"] != rs[0].Headers["ce_id"] || r.Headers["ce_partitaseq"] != "1" {
			t.Errorf("redelivery got reply %s %v, first was %s %v", r.Value, r.Headers, rs[0].Value, rs[0].Headers)
		}
	}
	env := a.table("cart", 8, time.Minute, func(l map[string]*envelope.Envelope) bool {
		return l["cart-r"] != nil && l["cart-r"].Seq == 3
	})["cart-r"]
	state := decodeJSON[shop.Cart](t, env.State)
	if len(state.Items) != 1 || state.Items["p2"].Quantity != 1 {
		t.Errorf("state %+v: want only p2 x1 (p1 added once, then removed)", state)
	}
	// Events: each once. A redelivery within the processor's run writes
	// its reply alone: its event was written before its input committed.
	var events []record
	a.read(a.topics.Events("cart"), time.Minute, func(r record) bool {
		events = append(events, r)
		return len(events) == 3
	})
	events = a.readAll(a.topics.Events("cart"), 2*time.Second) // and nothing after them
	count := map[string]int{}
	for _, e := range events {
		count[e.Headers["ce_id"]]++
		if e.Headers["ce_id"] == "cart-r:1" && !bytes.Equal(e.Value, events[0].Value) {
			t.Errorf("re-published event differs: %s vs %s", e.Value, events[0].Value)
		}
	}
	if count["cart-r:1"] != 1 || count["cart-r:2"] != 1 || count["cart-r:3"] != 1 {
		t.Errorf("event ids on the topic: %v; want each once", count)
	}
	if d := a.rt.Stats().Duplicates.Load(); d != 2 {
		t.Errorf("%d duplicates counted, want 2", d)
	}
}

// kcat produces one binary-mode CloudEvent with librdkafka, keyed by key
// (no key when empty), with the given partitioner.
func kcat(t *testing.T, addr, topic, partitioner, key string, ev codec.Event) {
	t.Helper()
	args := []string{"-P", "-b", addr, "-t", topic, "-X", "partitioner=" + partitioner, "-K", "\t"}
	r, err := codec.EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.Headers {
		args = append(args, "-H", k+"="+string(v))
	}
	c := exec.Command("kcat", args...)
	c.Stdin = strings.NewReader(key + "\t" + string(r.Value) + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
}

func TestMisroutedCommandsReachTheirEntity(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is required (Debian package kcat; .ci/run installs it)")
	}
	a := newApp(t, shop.NewCustomer())
	a.start()
	topic := a.topics.Commands("customer")
	create := func(subject, id string) codec.Event {
		return cmd(subject, "create", id, shop.CreateCustomer{Email: subject + "@example.com", Name: subject})
	}
	var ids []string
	// Java's default partitioning (murmur2) keyed by subject: no re-routing.
	for i := range 16 {
		s, id := fmt.Sprintf("java-%d", i), fmt.Sprintf("java-%d", i)
		kcat(t, a.env.Plaintext, topic, "murmur2_random", s, create(s, id))
		ids = append(ids, id)
	}
	a.replies(time.Minute, ids...)
	if n := a.rt.Stats().Rerouted.Load(); n != 0 {
		t.Errorf("%d records re-routed; murmur2 keyed by subject must land where Partita expects", n)
	}
	// librdkafka's default (CRC32), random keys, and no key at all.
	ids = ids[:0]
	for i := range 16 {
		s := fmt.Sprintf("crc-%d", i)
		kcat(t, a.env.Plaintext, topic, "consistent_random", s, create(s, s))
		ids = append(ids, s)
	}
	for i := range 16 {
		s := fmt.Sprintf("rnd-%d", i)
		m := message(topic, create(s, s))
		m.Key = sarama.StringEncoder(fmt.Sprintf("random-key-%d-%d", i, time.Now().UnixNano()))
		a.send(m)
		ids = append(ids, s)
	}
	for i := range 16 {
		s := fmt.Sprintf("nokey-%d", i)
		m := message(topic, create(s, s))
		m.Key = nil
		m.Partition = int32(i % 8)
		a.send(m)
		ids = append(ids, s)
	}
	got := a.replies(time.Minute, ids...)
	for id, r := range got {
		if r.Headers["ce_type"] != core.TypeReply || r.Headers["ce_subject"] != id {
			t.Errorf("%s: reply %v %s", id, r.Headers, r.Value)
		}
	}
	if n := a.rt.Stats().Rerouted.Load(); n == 0 {
		t.Error("no record was re-routed; the misrouted ones must be")
	}
	// Every subject's state is on its own partition only (table() checks it).
	all := append(ids, "java-0")
	a.table("customer", 8, time.Minute, func(l map[string]*envelope.Envelope) bool {
		for _, s := range all {
			if l[s] == nil || !l[s].Exists {
				return false
			}
		}
		return true
	})
}

func TestInteropWithKcat(t *testing.T) {
	a := newApp(t, shop.NewCustomer(), shop.NewCart())
	a.start()
	topic := a.topics.Commands("cart")
	kcat(t, a.env.Plaintext, topic, "murmur2_random", "cart-i", cmd("cart-i", "add-item", "k-1", shop.AddItem{ProductID: "p", Name: "P", Quantity: 1}))
	structured := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("cart-i"),
		Value:   sarama.StringEncoder(`{"specversion":"1.0","id":"s-1","source":"structured","type":"checkout","subject":"cart-i","partitareply":"true","datacontenttype":"application/json","data":{}}`),
		Headers: []sarama.RecordHeader{{Key: []byte("content-type"), Value: []byte("application/cloudevents+json")}}}
	a.send(structured)
	got := a.replies(time.Minute, "k-1", "s-1")
	for id, r := range got {
		if r.Headers["ce_type"] != core.TypeReply {
			t.Errorf("%s: %v %s", id, r.Headers, r.Value)
		}
	}
	// Read the events back with kcat: every ce_ header is there.
	out, err := exec.Command("kcat", "-C", "-b", a.env.Plaintext, "-t", a.topics.Events("cart"), "-o", "beginning", "-e", "-q",
		"-f", "%k %h\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("kcat read %d events, want 2:\n%s", len(lines), out)
	}
	for _, l := range lines {
		for _, h := range []string{"ce_specversion=1.0", "ce_id=cart-i:", "ce_source=partita/" + a.name + "/cart", "ce_type=", "ce_subject=cart-i", "ce_time=", "ce_partitaseq=", "content-type=application/json"} {
			if !strings.Contains(l, h) {
				t.Errorf("event read by kcat lacks %q: %s", h, l)
			}
		}
		if !strings.HasPrefix(l, "cart-i ") {
			t.Errorf("event key is not the subject: %s", l)
		}
	}
}

// boom is an entity whose handlers misbehave on purpose.
func boom() *entities.Entity[struct{}] {
	e := entities.KeyValue[struct{}]("boom", entities.HandlerTimeout(300*time.Millisecond), entities.Retries(2, 10*time.Millisecond))
	entities.Command(e, "panic", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] { panic("boom") })
	entities.Command(e, "hang", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		time.Sleep(2 * time.Second)
		return ctx.Ignore()
	})
	entities.Command(e, "fail", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		return ctx.Fail(errors.New("downstream unavailable"))
	})
	return e
}

func TestBadRecordsGoToTheDeadLetterTopic(t *testing.T) {
	a := newApp(t, shop.NewCustomer(), boom())
	a.start()
	topic := a.topics.Commands("customer")
	good := func(subject, id string) codec.Record {
		r, _ := codec.EncodeEvent(cmd(subject, "create", id, shop.CreateCustomer{Email: "a@b.c", Name: "A"}))
		return r
	}
	boomCmd := func(typ, id string) codec.Record {
		r, _ := codec.EncodeEvent(cmd("s", typ, id, struct{}{}))
		return r
	}
	cases := recordtest.Corpus(topic, good, a.topics.Commands("boom"), boomCmd)
	for _, c := range cases {
		a.send(raw(c.Topic, c.Record))
	}
	// Normal traffic behind the bad records, on every partition, still flows.
	var ids []string
	for i := range 32 {
		id := fmt.Sprintf("after-%d", i)
		a.send(message(topic, cmd(id, "create", id, shop.CreateCustomer{Email: "x@y.z", Name: "X"})))
		ids = append(ids, id)
	}
	a.replies(time.Minute, ids...)

	byKind := map[string]record{}
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool {
		byKind[r.Headers["test_kind"]] = r
		t.Logf("dead letter %q: %s", r.Headers["test_kind"], r.Headers[processor.HeaderDLQReason])
		return len(byKind) == len(cases)
	})
	for _, c := range cases {
		r := byKind[c.Kind]
		if reason := r.Headers[processor.HeaderDLQReason]; !strings.Contains(reason, c.Reason) {
			t.Errorf("%s: dead-letter reason %q does not say %q", c.Kind, reason, c.Reason)
		}
		if err := deadletter.FromCode(r.Headers[processor.HeaderDLQCode], ""); !errors.Is(err, c.Want) {
			t.Errorf("%s: dead-letter code %q, want %q", c.Kind, r.Headers[processor.HeaderDLQCode], deadletter.Code(c.Want))
		}
		if !bytes.Equal(r.Value, c.Record.Value) || r.Headers[processor.HeaderDLQOrigin] == "" {
			t.Errorf("%s: dead letter lost the original value or its origin: %.80q %v", c.Kind, r.Value, r.Headers)
		}
	}
	if n := a.rt.Stats().DeadLetters.Load(); n != int64(len(cases)) {
		t.Errorf("%d dead letters counted, want %d", n, len(cases))
	}
	select {
	case <-a.stopped:
		t.Fatalf("the runtime stopped: %v", a.runErr)
	default:
	}
}

func TestPartitionCountMismatchFailsStart(t *testing.T) {
	a := newApp(t, shop.NewCustomer())
	admin, err := sarama.NewClusterAdminFromClient(a.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(a.topics.Commands("customer"), &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.rt.Run(ctx)
	if !errors.Is(err, processor.ErrPartitionMismatch) {
		t.Fatalf("want ErrPartitionMismatch, got %v", err)
	}
	for _, s := range []string{a.topics.Commands("customer") + " has 4", a.topics.Table("customer") + " has 8", a.topics.Loop("customer") + " has 8"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
}

// The co-partitioning check is the topology's, shared with the harness: a
// subscription to an external topic whose partition count differs from
// the entity's own topics' is refused by the runtime on the real broker and by
// partitatest.New (told the topic's count) with the same problem.
func TestHarnessAndRuntimeRefuseTheSamePartitionMismatch(t *testing.T) {
	topic := fmt.Sprintf("zorders-%d", time.Now().UnixNano()) // sorts after the app's topics
	mailer := func() *entities.Entity[struct{}] {
		c := entities.KeyValue[struct{}]("mailer")
		entities.Subscribe(c, topic, "placed", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] { return ctx.Ignore() })
		return c
	}
	a := newApp(t, mailer())
	a.cfg.Partitions = 4
	a.renew()
	admin, err := sarama.NewClusterAdminFromClient(a.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	// The runtime must find the topic (a fresh topic takes a moment to
	// show in the metadata), so that it fails on the partition count.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_ = a.client.RefreshMetadata(topic)
		if ps, err := a.client.Partitions(topic); err == nil && len(ps) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not in the metadata after 30 s", topic)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runErr := a.rt.Run(ctx)
	_, harnessErr := partitatest.NewWith([]partitatest.Option{partitatest.Partitions(4), partitatest.TopicPartitions(topic, 3)}, mailer())
	if !errors.Is(runErr, processor.ErrPartitionMismatch) || harnessErr == nil {
		t.Fatalf("runtime: %v; harness: %v; want both to refuse", runErr, harnessErr)
	}
	want := fmt.Sprintf("app.mailer: app.mailer.commands has 4, %s has 3, app.mailer-table has 4, app.mailer-loop has 4, app.mailer-ids has 4; they must be equal", topic)
	got := strings.ReplaceAll(runErr.Error(), a.name+".", "app.")
	if !strings.Contains(harnessErr.Error(), want) || !strings.Contains(got, want) {
		t.Errorf("want %q from both:\nruntime: %v\nharness: %v", want, runErr, harnessErr)
	}
}
