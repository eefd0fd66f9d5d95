package processor_test

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

// notesApp is an application of one key-value entity, "notes": "set"
// stores and answers the note, "echo-big" answers n bytes that do not
// compress.
func notesApp(t *testing.T, n int) *app {
	notes := entities.KeyValue[note]("notes")
	entities.Command(notes, "set", func(ctx *entities.Context[note], v note) entities.Effect[note] {
		return ctx.Update(v).Reply(v)
	})
	entities.Command(notes, "echo-big", func(ctx *entities.Context[note], v note) entities.Effect[note] {
		return ctx.Reply(note{Text: incompressible(n)})
	})
	return newApp(t, notes)
}

// incompressible is n hex digits of pseudo-random bytes: snappy, which the
// runtime's producer uses, leaves them as they are.
func incompressible(n int) string {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

// partHealth returns the part of rt named name, of kind kind.
func partHealth(t *testing.T, rt *processor.Runtime, kind, name string) processor.GroupHealth {
	t.Helper()
	for _, h := range rt.Health() {
		if h.Kind == kind && h.Name == name {
			return h
		}
	}
	t.Fatalf("no %s %q in %+v", kind, name, rt.Health())
	return processor.GroupHealth{}
}

// createTopic creates topic with the app's partition count and config.
func (a *app) createTopic(topic string, config map[string]string) {
	a.t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(a.client)
	if err != nil {
		a.t.Fatal(err)
	}
	entries := map[string]*string{}
	for k, v := range config {
		entries[k] = &v
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: a.cfg.Partitions, ReplicationFactor: 1, ConfigEntries: entries}, false); err != nil {
		a.t.Fatalf("create %s: %v", topic, err)
	}
}

// A group put into a restart loop from outside (real broker): Health and
// Healthy say so within seconds, naming the group and its error, and
// Partitions keeps the group's rows (stale) instead of dropping them; once
// the fault is repaired the group runs again and Healthy is nil.
func TestHealthFollowsARestartLoop(t *testing.T) {
	a := notesApp(t, 10)
	if err := a.rt.Healthy(); !errors.Is(err, processor.ErrUnhealthy) {
		t.Fatalf("Healthy before Run: %v, want ErrUnhealthy", err)
	}
	if h := a.rt.Health(); len(h) != 0 {
		t.Fatalf("Health before Run: %+v, want none", h)
	}
	a.start()
	group := a.topics.Group("notes")
	eventually(t, 30*time.Second, "healthy after start", func() bool { return a.rt.Healthy() == nil })
	if h := partHealth(t, a.rt, processor.KindProcessor, group); h.State != processor.HealthRunning || h.Restarts != 0 || h.LastError != "" {
		t.Fatalf("after start: %+v", h)
	}
	ctx := context.Background()
	rows := func(stale bool) int {
		n := 0
		for _, p := range a.rt.Partitions(ctx) {
			if p.Group == group && p.Stale == stale && p.Recovered == !stale {
				n++
			}
		}
		return n
	}
	if n := rows(false); n != int(a.cfg.Partitions) {
		t.Fatalf("%d recovered partitions of %s, want %d", n, group, a.cfg.Partitions)
	}

	f := kafkatest.BreakLoop(t, a.kafka.BootstrapServers, a.topics.Loop("notes"),
		message(a.topics.Commands("notes"), cmd("n-1", "set", "misrouted", note{Text: "late"})))
	eventually(t, 10*time.Second, "processor restarting", func() bool {
		h := partHealth(t, a.rt, processor.KindProcessor, group)
		return h.State == processor.HealthRestarting && h.LastError != ""
	})
	took := time.Since(f.Sent)
	h := partHealth(t, a.rt, processor.KindProcessor, group)
	t.Logf("restarting %v after the misrouted write: %+v", took.Round(time.Millisecond), h)
	if took > 5*time.Second {
		t.Errorf("restarting seen %v after the fault, want within 5s", took)
	}
	if !strings.Contains(h.LastError, a.topics.Loop("notes")) {
		t.Errorf("LastError %q does not name the loop topic", h.LastError)
	}
	err := a.rt.Healthy()
	if !errors.Is(err, processor.ErrUnhealthy) || !strings.Contains(err.Error(), "processor "+group+" restarting") {
		t.Errorf("Healthy while restarting: %v", err)
	}
	t.Logf("Healthy: %v", err)
	if n := rows(true); n != int(a.cfg.Partitions) {
		t.Errorf("while restarting: %d stale rows of %s, want %d: %+v", n, group, a.cfg.Partitions, a.rt.Partitions(ctx))
	}

	time.Sleep(3 * time.Second) // a few failed attempts
	f.Heal()
	healed := time.Now()
	eventually(t, 45*time.Second, "healthy again", func() bool { return a.rt.Healthy() == nil })
	took = time.Since(healed)
	h = partHealth(t, a.rt, processor.KindProcessor, group)
	t.Logf("running %v after the repair: %+v", took.Round(time.Millisecond), h)
	if h.State != processor.HealthRunning || h.Restarts < 2 || h.Since.Before(healed) {
		t.Errorf("after the repair: %+v; want running since the repair, after 2 or more restarts", h)
	}
	if r := a.replies(time.Minute, "misrouted")["misrouted"]; string(r.Value) != `{"text":"late"}` {
		t.Errorf("reply to the misrouted command: %s", r.Value)
	}
	eventually(t, 10*time.Second, "partitions recovered", func() bool { return rows(false) == int(a.cfg.Partitions) })
}

// Record size limits come from the cluster, per topic (real broker): with
// the replies topic limited to 200,000 bytes and the dead-letter topic to
// 120,000, a command whose reply would be 300 KB is a dead letter saying
// the reply would be too large (its state, with the reply recorded, is as
// large but fits the table topic), a 150 KB command that is a dead letter
// is cut to fit the dead-letter topic, nothing restarts, and the next
// command is answered at once.
func TestRecordLimitsFromTheCluster(t *testing.T) {
	a := notesApp(t, 300_000)
	a.createTopic(a.topics.Replies(), map[string]string{"max.message.bytes": "200000", "retention.ms": "3600000"})
	a.createTopic(a.topics.DeadLetters(), map[string]string{"max.message.bytes": "120000"})
	a.start()
	topic := a.topics.Commands("notes")

	a.send(message(topic, cmd("n-1", "echo-big", "big-reply", note{})))
	a.send(message(topic, cmd("n-1", "nope", "big-poison", note{Text: incompressible(150_000)})))
	dead := map[string]record{}
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool {
		dead[r.Headers["ce_id"]] = r
		return dead["big-reply"].Headers != nil && dead["big-poison"].Headers != nil
	})
	reason := dead["big-reply"].Headers[processor.HeaderDLQReason]
	if !strings.Contains(reason, "a record for "+a.topics.Replies()) || !strings.Contains(reason, "a record may have") {
		t.Errorf("dead letter of the command with a 300 KB reply: %q", reason)
	}
	t.Logf("big reply: %s", reason)
	p := dead["big-poison"]
	if cut := p.Headers[topics.HeaderDLQCut]; cut == "" || len(p.Value) >= 120_000 {
		t.Errorf("dead letter of the 150 KB command: %d bytes of value, cut header %q; want it cut under 120,000", len(p.Value), cut)
	} else if n, _ := strconv.Atoi(cut); n < 150_000 {
		t.Errorf("cut header %q, want the length received", cut)
	}

	start := time.Now()
	a.send(message(topic, cmd("n-1", "set", "after", note{Text: "fine"})))
	if r := a.replies(30*time.Second, "after")["after"]; string(r.Value) != `{"text":"fine"}` {
		t.Fatalf("reply after the oversize outputs: %s", r.Value)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("next command answered after %v, want within 2s", took)
	} else {
		t.Logf("next command answered after %v", took)
	}
	if n := a.rt.Stats().Restarts.Load(); n != 0 {
		t.Errorf("%d restarts, want none", n)
	}
	if h := partHealth(t, a.rt, processor.KindProcessor, a.topics.Group("notes")); h.State != processor.HealthRunning || h.Restarts != 0 {
		t.Errorf("health: %+v", h)
	}
	// Counted when the broker's acknowledgement reaches the producer,
	// which can be after the record is readable.
	eventually(t, 5*time.Second, "2 dead letters counted", func() bool { return a.rt.Stats().DeadLetters.Load() == 2 })
}

// A dead letter that cannot be written stops the processor (goka fails a
// processor whose write fails, and does not commit the input), which is
// restarted and reads the record again: nothing is lost, and the dead
// letter is counted once, when it is written (real broker; the dead-letter
// topic is deleted, then created again).
func TestFailedDeadLetterWriteIsRetried(t *testing.T) {
	a := notesApp(t, 10)
	a.start()
	group := a.topics.Group("notes")
	admin, err := sarama.NewClusterAdminFromClient(a.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(a.topics.DeadLetters()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "dead-letter topic gone", func() bool {
		_ = a.client.RefreshMetadata()
		topics, _ := a.client.Topics()
		for _, tp := range topics {
			if tp == a.topics.DeadLetters() {
				return false
			}
		}
		return true
	})
	a.send(message(a.topics.Commands("notes"), cmd("n-1", "nope", "poison", note{})))
	eventually(t, 10*time.Second, "processor restarting", func() bool {
		return partHealth(t, a.rt, processor.KindProcessor, group).State == processor.HealthRestarting
	})
	h := partHealth(t, a.rt, processor.KindProcessor, group)
	t.Logf("%+v", h)
	if !strings.Contains(h.LastError, a.topics.DeadLetters()) {
		t.Errorf("LastError %q does not name the dead-letter topic", h.LastError)
	}
	if n := a.rt.Stats().DeadLetters.Load(); n != 0 {
		t.Errorf("%d dead letters counted while none could be written", n)
	}
	a.createTopic(a.topics.DeadLetters(), nil)
	eventually(t, 45*time.Second, "healthy again", func() bool { return a.rt.Healthy() == nil })
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool { return r.Headers["ce_id"] == "poison" })
	eventually(t, 5*time.Second, "1 dead letter counted", func() bool { return a.rt.Stats().DeadLetters.Load() == 1 })
	t.Logf("after: %+v", partHealth(t, a.rt, processor.KindProcessor, group))
}

// A topic's limit bounds the batches the runtime's producer sends it, not
// only each record, and only that topic (real broker): with the replies
// topic limited to 10,000 bytes, 1,000 commands sent at once over 50
// subjects, each answered with 1,000 bytes that do not compress, are all
// answered without a restart (sarama batches up to the producer's
// MaxMessageBytes per partition, which the broker would refuse whole), and
// the subjects' states, which record the replies of their last commands
// (some 17 KB), are written to the table topic, whose limit is the
// broker's.
func TestTopicLimitBoundsBatches(t *testing.T) {
	a := notesApp(t, 1000)
	a.createTopic(a.topics.Replies(), map[string]string{"max.message.bytes": "10000", "retention.ms": "3600000"})
	a.start()
	var msgs []*sarama.ProducerMessage
	var ids []string
	for i := range 1000 {
		id := "c" + strconv.Itoa(i)
		ids = append(ids, id)
		msgs = append(msgs, message(a.topics.Commands("notes"), cmd("n-"+strconv.Itoa(i%50), "echo-big", id, note{})))
	}
	a.send(msgs...)
	got := a.replies(2*time.Minute, ids...)
	for id, r := range got {
		if len(r.Value) < 1000 {
			t.Fatalf("reply to %s: %s", id, r.Value)
		}
	}
	if n := a.rt.Stats().Restarts.Load(); n != 0 {
		t.Errorf("%d restarts, want none", n)
	}
	if n := a.rt.Stats().DeadLetters.Load(); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// Health lists every supervised part of a worker, sorted by kind and name,
// each running once the runtime is ready; once Run has returned, each is
// stopped and Healthy is an error (real broker).
func TestHealthListsEveryPart(t *testing.T) {
	a := newShop(t)
	a.cfg.StateReads = true
	a.renew()
	a.start()
	eventually(t, 30*time.Second, "healthy", func() bool { return a.rt.Healthy() == nil })
	var got []string
	for _, h := range a.rt.Health() {
		got = append(got, h.Kind+": "+h.Name)
		if h.State != processor.HealthRunning || h.Restarts != 0 || h.Since.IsZero() {
			t.Errorf("%+v", h)
		}
	}
	g := a.topics.Group
	want := []string{
		"processor: " + g("cart"), "processor: " + g("carts"), "processor: " + g("customer"), "processor: " + g("customers-by-email"),
		"state replica: state replica cart", "state replica: state replica customer",
		"view replica: view replica carts", "view replica: view replica customers-by-email",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Health:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	a.stop()
	for _, h := range a.rt.Health() {
		if h.State != processor.HealthStopped {
			t.Errorf("after Run: %+v", h)
		}
	}
	if err := a.rt.Healthy(); !errors.Is(err, processor.ErrUnhealthy) {
		t.Errorf("Healthy after Run: %v", err)
	}
}
