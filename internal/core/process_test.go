package core

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// A processor that died can leave an envelope in its local store whose
// writes never reached the broker. The next epoch writes the envelope and the
// recorded events again, ahead of anything new, so the events topic keeps
// sequence order; within one epoch nothing is repeated.
func TestNewEpochWritesRecordedOutputsAgain(t *testing.T) {
	def := &Entity{Name: "counter", Kind: EventSourced, Window: 16, Commands: map[string]Handler{
		"add": func(in Input) Decision {
			return Decision{Kind: Persist, State: []byte(`{}`), Events: []OutEvent{{Type: "added", Data: []byte(`{}`), ContentType: "application/json"}}}
		},
	}}
	topics := topics.Names{App: "app"}
	env := func(epoch uint64) Env {
		return Env{Topics: topics, Now: func() time.Time { return time.Unix(0, 0) }, Sleep: func(time.Duration) {}, Epoch: epoch}
	}
	cmd := func(id string) codec.Attributes {
		return codec.Attributes{ID: id, Source: "test", Type: "add", Subject: "s", Extensions: map[string]string{codec.ExtReply: "true"}}
	}
	events := func(outs []envelope.Output) (seqs []string) {
		for _, o := range outs {
			if o.Topic == topics.Events("counter") {
				seqs = append(seqs, string(o.Record.Headers["ce_partitaseq"]))
			}
		}
		return seqs
	}
	replies := func(outs []envelope.Output) (n int) {
		for _, o := range outs {
			if o.Topic == topics.Replies() {
				n++
			}
		}
		return n
	}
	commands := topics.Commands("counter")

	first := Process(env(1), def, commands, &envelope.Envelope{}, cmd("a"), Arrival{})
	second := Process(env(1), def, commands, first.Envelope, cmd("b"), Arrival{})
	if got := events(second.Outputs); len(got) != 1 || got[0] != "2" {
		t.Fatalf("same epoch, new command: events %v, want just [2]", got)
	}
	// Same epoch, a duplicate: its reply alone (its event was written by
	// this epoch, which wrote everything before it committed the input).
	if dup := Process(env(1), def, commands, second.Envelope, cmd("a"), Arrival{}); dup.Envelope != nil || len(events(dup.Outputs)) != 0 || replies(dup.Outputs) != 1 {
		t.Fatalf("same epoch, duplicate: envelope %v, events %v; want no write, no event, its reply", dup.Envelope, events(dup.Outputs))
	}

	// New epoch, a new command: the recorded events first, then its own.
	third := Process(env(2), def, commands, second.Envelope, cmd("c"), Arrival{})
	if got := events(third.Outputs); len(got) != 3 || got[0] != "1" || got[1] != "2" || got[2] != "3" {
		t.Fatalf("new epoch, new command: events %v, want [1 2 3]", got)
	}
	if replies(third.Outputs) != 1 || third.Envelope.Epoch != 2 {
		t.Fatalf("new epoch, new command: %d replies, epoch %d; want its own reply only, epoch 2", replies(third.Outputs), third.Envelope.Epoch)
	}

	// New epoch, a duplicate: the envelope written again (stamped) and the
	// recorded events, with the duplicate's own reply.
	dup := Process(env(3), def, commands, second.Envelope, cmd("a"), Arrival{})
	if !dup.Duplicate || dup.Envelope == nil || dup.Envelope.Epoch != 3 || dup.Envelope.Seq != 2 {
		t.Fatalf("new epoch, duplicate: %+v; want the envelope at seq 2 stamped with epoch 3", dup)
	}
	if got := events(dup.Outputs); len(got) != 2 || replies(dup.Outputs) != 1 {
		t.Fatalf("new epoch, duplicate: events %v, %d replies; want [1 2] and one reply", got, replies(dup.Outputs))
	}
}

// A new epoch writes again only what the broker may lack: the outputs of
// commands read at or after where the epoch started reading the partition.
// Those read before were committed, so their writes were acknowledged.
func TestNewEpochSkipsWhatWasCommitted(t *testing.T) {
	def := &Entity{Name: "counter", Kind: EventSourced, Window: 16, Commands: map[string]Handler{
		"add": func(in Input) Decision {
			return Decision{Kind: Persist, State: []byte(`{}`), Events: []OutEvent{{Type: "added", Data: []byte(`{}`), ContentType: "application/json"}}}
		},
	}}
	topics := topics.Names{App: "app"}
	env := func(epoch uint64) Env {
		return Env{Topics: topics, Now: func() time.Time { return time.Unix(0, 0) }, Sleep: func(time.Duration) {}, Epoch: epoch}
	}
	cmd := func(id string) codec.Attributes {
		return codec.Attributes{ID: id, Source: "test", Type: "add", Subject: "s"}
	}
	commands := topics.Commands("counter")
	stored := &envelope.Envelope{}
	for i, from := range []envelope.Origin{{Topic: envelope.OriginCommands, Offset: 3}, {Topic: envelope.OriginLoop, Offset: 4}, {Topic: envelope.OriginCommands, Offset: 8}, {Topic: envelope.OriginLoop, Offset: 9}} {
		stored = Process(env(1), def, commands, stored, cmd(string(rune('a'+i))), Arrival{From: from}).Envelope
	}
	// The new epoch started reading the commands topic at 5 and the loop
	// topic at 9: events 1 and 2 were committed; 3 (commands 8) and 4 (loop
	// 9) may not have been.
	out := Process(env(2), def, commands, stored, cmd("e"), Arrival{From: envelope.Origin{Topic: envelope.OriginCommands, Offset: 10}, Since: envelope.Since{0, 5, 9}})
	var seqs []string
	for _, o := range out.Outputs {
		seqs = append(seqs, string(o.Record.Headers["ce_partitaseq"]))
	}
	if strings.Join(seqs, ",") != "3,4,5" {
		t.Fatalf("new epoch wrote events %v, want 3,4 again and its own 5", seqs)
	}
	// With nothing known of where it started, everything is written again.
	out = Process(env(3), def, commands, stored, cmd("e"), Arrival{})
	if n := len(out.Outputs); n != 5 {
		t.Fatalf("new epoch knowing nothing wrote %d events, want 4 again and its own", n)
	}
}

// A command gets a reply only when it asks for one; without, nothing is
// written for it and its dedup record holds no output.
func TestReplyOnlyWhenAsked(t *testing.T) {
	def := &Entity{Name: "counter", Kind: KeyValue, Window: 16, Commands: map[string]Handler{
		"set": func(in Input) Decision { return Decision{Kind: Update, State: []byte(`{}`), Reply: []byte(`{}`)} },
	}}
	env := Env{Topics: topics.Names{App: "app"}, Now: func() time.Time { return time.Unix(0, 0) }, Epoch: 1}
	for _, ask := range []string{"", "false", "true"} {
		e := codec.Attributes{ID: "a", Source: "test", Type: "set", Subject: "s"}
		if ask != "" {
			e.Extensions = map[string]string{codec.ExtReply: ask}
		}
		out := Process(env, def, env.Topics.Commands("counter"), &envelope.Envelope{}, e, Arrival{})
		want := 0
		if ask == "true" {
			want = 1
		}
		if len(out.Outputs) != want || len(out.Envelope.Window()[0].Facts) != want {
			t.Errorf("%s %q: %d outputs, %d recorded; want %d", codec.ExtReply, ask, len(out.Outputs), len(out.Envelope.Window()[0].Facts), want)
		}
	}
}

// A duplicate gets back exactly the records the command first wrote (same
// ids, times, data), rendered from the facts its envelope keeps; an entry
// written before facts gives back the records it holds.
func TestDuplicateGetsTheSameRecords(t *testing.T) {
	def := &Entity{Name: "cart", Kind: EventSourced, Window: 16, PublishTopics: []string{"audit"}, SendsTo: []string{"stock"},
		Commands: map[string]Handler{"add": func(in Input) Decision {
			return Decision{Kind: Persist, State: []byte(`{}`), Reply: []byte(`{"ok":true}`),
				Events:    []OutEvent{{Type: "added", Data: []byte(`{"n":1}`), ContentType: "application/json"}, {Type: "counted", Data: []byte(`{}`), ContentType: "application/json"}},
				Publishes: []OutEvent{{Topic: "audit", Type: "audited", Data: []byte(`{}`), ContentType: "application/json"}},
				Sends:     []OutCommand{{Entity: "stock", Subject: "p-1", Command: "reserve", Data: []byte(`{}`), ContentType: "application/json"}}}
		}}}
	clock := time.Unix(1700000000, 123456789)
	env := Env{Topics: topics.Names{App: "shop"}, Now: func() time.Time { return clock }, Epoch: 1}
	e := codec.Attributes{ID: "a", Source: "test", Type: "add", Subject: "k-1", Extensions: map[string]string{codec.ExtReply: "true"}}
	first := Process(env, def, env.Topics.Commands("cart"), &envelope.Envelope{}, e, Arrival{})
	if len(first.Outputs) != 5 {
		t.Fatalf("%d outputs, want 2 events, a publish, a send, a reply", len(first.Outputs))
	}
	data, err := first.Envelope.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := envelope.DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	same := Process(env, def, env.Topics.Commands("cart"), stored, e, Arrival{})
	if !same.Duplicate || !reflect.DeepEqual(same.Outputs, first.Outputs[4:]) {
		t.Fatalf("duplicate in the same epoch wrote\n%v\nwant its reply\n%v", same.Outputs, first.Outputs[4:])
	}
	env.Epoch = 2 // a new epoch writes everything recorded again
	dup := Process(env, def, env.Topics.Commands("cart"), stored, e, Arrival{})
	if !dup.Duplicate || !reflect.DeepEqual(dup.Outputs, first.Outputs) {
		t.Fatalf("duplicate wrote\n%v\nwant\n%v", dup.Outputs, first.Outputs)
	}

	legacy := &envelope.Envelope{Seq: 1, Exists: true, State: []byte(`{}`), Epoch: 1}
	legacy.SetWindow([]envelope.Applied{{Key: "test\x00a", Outputs: first.Outputs[:1]}})
	if again := Process(env, def, env.Topics.Commands("cart"), legacy, e, Arrival{}); !again.Duplicate || !reflect.DeepEqual(again.Outputs, first.Outputs[:1]) {
		t.Fatalf("an entry holding records: duplicate wrote %v", again.Outputs)
	}
}

// A handler's panic dead-letters its command with the panic, whether the
// handler runs on the partition's goroutine (no timeout) or on a runner.
func TestHandlerPanicIsADeadLetter(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Second} {
		def := &Entity{Name: "counter", Kind: KeyValue, Window: 16, Timeout: timeout, Commands: map[string]Handler{
			"add": func(in Input) Decision { panic("boom") },
		}}
		env := Env{Topics: topics.Names{App: "app"}, Now: time.Now, Sleep: func(time.Duration) {}, Epoch: 1, Runners: NewRunners(1)}
		out := Process(env, def, env.Topics.Commands("counter"), &envelope.Envelope{}, codec.Attributes{ID: "a", Source: "test", Type: "add", Subject: "s"}, Arrival{})
		if !strings.HasPrefix(out.DeadLetter, "handler panicked: boom") || out.Envelope != nil {
			t.Errorf("timeout %v: dead letter %q, envelope %v", timeout, out.DeadLetter, out.Envelope)
		}
		env.Runners.Close()
	}
}
