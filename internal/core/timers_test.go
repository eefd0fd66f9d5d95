package core

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// A command that starts a timer can be applied twice: a worker applies it
// into its local store and fires the timer from there, then crashes before
// the store reaches the table topic; the next worker restores the table
// without it and applies the command again, later, starting the timer
// again with a later due time. The first fire, still on the loop topic,
// must not fire the second timer before its due time: it is dropped, and
// the second timer's own fire is applied. (The seeded schedules found it:
// examples/shop, timers-asks workload.)
func TestStaleFireOfACommandAppliedAgainIsDropped(t *testing.T) {
	def := &Entity{Name: "basket", Kind: KeyValue, Window: 16, Commands: map[string]Handler{
		"add": func(in Input) Decision {
			return Decision{Kind: Update, State: []byte(`{}`), Timers: []TimerOp{{Name: "idle", After: time.Hour, Command: "expire", ContentType: "application/json", Data: []byte(`{}`)}}}
		},
		"expire": func(in Input) Decision { return Decision{Kind: Update, State: []byte(`{"expired":true}`)} },
	}}
	names := topics.Names{App: "app"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(now time.Time) Env {
		return Env{Topics: names, Now: func() time.Time { return now }, Sleep: func(time.Duration) {}, Epoch: 1}
	}
	add := codec.Attributes{ID: "a1", Source: "test", Type: "add", Subject: "b1"}
	commands, loop := names.Commands("basket"), Arrival{From: envelope.Origin{Topic: envelope.OriginLoop}}

	first := Process(at(t0), def, commands, &envelope.Envelope{}, add, Arrival{})
	timer, ok := first.Envelope.Timer("idle")
	if !ok {
		t.Fatal("no timer started")
	}
	stale := FireRecord(names, "basket", "b1", timer)
	// The first application is lost; the command is applied again 30
	// minutes later.
	again := Process(at(t0.Add(30*time.Minute)), def, commands, &envelope.Envelope{}, add, Arrival{})
	restarted, _ := again.Envelope.Timer("idle")
	if restarted.ID == timer.ID {
		t.Fatalf("the timer started again has the first one's ID %x", timer.ID)
	}
	fire := func(rec codec.Record) codec.Attributes {
		a, err := codec.DecodeAttributes(rec)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if out := Process(at(t0.Add(time.Hour)), def, commands, again.Envelope, fire(stale), loop); !out.Ignored || out.Envelope != nil {
		t.Fatalf("the first timer's fire, at its due time and 30 minutes before the second's: %+v; want it dropped", out)
	}
	own := FireRecord(names, "basket", "b1", restarted)
	out := Process(at(t0.Add(90*time.Minute)), def, commands, again.Envelope, fire(own), loop)
	if out.Envelope == nil || string(out.Envelope.State) != `{"expired":true}` || len(out.Envelope.Timers) != 0 {
		t.Fatalf("the second timer's fire at its due time: %+v; want it applied and the timer consumed", out)
	}
}

// A fire whose command is dead-lettered consumes its timer: it is not
// fired again (and dead-lettered again) every 30 s.
func TestADeadLetteredFireConsumesItsTimer(t *testing.T) {
	def := &Entity{Name: "e", Kind: KeyValue, Window: 16, Commands: map[string]Handler{
		"set": func(in Input) Decision {
			return Decision{Kind: Reply, Reply: []byte(`{}`), Timers: []TimerOp{{Name: "ring", After: time.Minute, Command: "ring", ContentType: "application/json", Data: []byte(`{}`)}}}
		},
		"ring": func(in Input) Decision { return Decision{Kind: Fail, Err: errors.New("broken"), Poison: true} },
	}}
	names := topics.Names{App: "app"}
	env := Env{Topics: names, Now: func() time.Time { return time.Unix(0, 0) }, Sleep: func(time.Duration) {}, Epoch: 1}
	set := fitDelivery(t, names, "set", []byte(`{}`))
	a := HandleEntity(env, def, set)
	stored, err := envelope.DecodeEnvelope(a.Store)
	if err != nil || len(stored.Timers) != 1 {
		t.Fatalf("after set: %v %v", stored, err)
	}
	fire := FireRecord(names, "e", string(set.Record.Key), stored.Timers[0])
	d := Delivery{Topic: names.Loop("e"), Loop: names.Loop("e"), Partition: set.Partition, Partitions: set.Partitions, Record: fire, Stored: a.Store}
	dead := HandleEntity(env, def, d)
	if dead.DeadLetter == nil || dead.Store == nil {
		t.Fatalf("the fire: dead letter %v, store %v; want both", dead.DeadLetter != nil, dead.Store != nil)
	}
	if after, _ := envelope.DecodeEnvelope(dead.Store); len(after.Timers) != 0 || after.Seq != stored.Seq {
		t.Fatalf("after the dead-lettered fire: timers %v, seq %d", after.Timers, after.Seq)
	}
}

// An ask's timeout says which ask it ends.
func TestAskTimeoutNamesItsAsk(t *testing.T) {
	def := &Entity{Name: "e", Kind: KeyValue, Window: 16, SendsTo: []string{"other"}, Commands: map[string]Handler{
		"go": func(in Input) Decision {
			return Decision{Kind: Reply, Reply: []byte(`{}`), Asks: []OutAsk{{OutCommand: OutCommand{Entity: "other", Subject: "o-1", Command: "get", ContentType: "application/json", Data: []byte(`{}`)},
				OnReply: "got", OnError: "failed", OnTimeout: "failed", Timeout: time.Second}}}
		},
		"got": func(in Input) Decision { return Decision{Kind: Ignore} }, "failed": func(in Input) Decision { return Decision{Kind: Ignore} },
	}}
	names := topics.Names{App: "app"}
	env := Env{Topics: names, Now: func() time.Time { return time.Unix(0, 0) }, Sleep: func(time.Duration) {}, Epoch: 1}
	a := HandleEntity(env, def, fitDelivery(t, names, "go", []byte(`{}`)))
	stored, err := envelope.DecodeEnvelope(a.Store)
	if err != nil || len(stored.Timers) != 1 {
		t.Fatalf("after the ask: %v %v", stored, err)
	}
	var ae AskError
	if err := json.Unmarshal(stored.Timers[0].Data, &ae); err != nil || ae.Code != CodeTimeout || ae.Entity != "other" || ae.Subject != "o-1" || ae.Command != "get" {
		t.Fatalf("the timeout's payload: %+v %v", ae, err)
	}
}

// The fire record, written header by header, is the CloudEvent that
// codec.EncodeEvent writes for the same event, and reads back as it.
func TestFireRecordIsACloudEvent(t *testing.T) {
	names := topics.Names{App: "app"}
	for _, tm := range []envelope.Timer{
		{Name: "idle", Due: time.Date(2026, 12, 6, 17, 0, 0, 123456789, time.UTC).UnixNano(), ID: 0xabc, Command: "expire", ContentType: "application/json", Data: []byte(`{"a":1}`)},
		{Name: "bare", Due: 1, ID: 1, Command: "ring"},
	} {
		rec := FireRecord(names, "cart", "k/1", tm)
		e := newEvent(TimerSource(names, "cart"), fireID(tm), tm.Command, "k/1", time.Unix(0, tm.Due).UTC())
		e.SetExtension(codec.ExtTimer, tm.Name)
		setData(&e, tm.ContentType, tm.Data)
		want, err := codec.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		want.Headers[topics.HeaderOriginTopic] = []byte(names.Commands("cart"))
		if !reflect.DeepEqual(rec.Headers, want.Headers) || string(rec.Key) != string(want.Key) || string(rec.Value) != string(want.Value) {
			t.Errorf("%s: fire %q %q, EncodeEvent %q %q", tm.Name, rec.Headers, rec.Value, want.Headers, want.Value)
		}
		got, err := codec.DecodeEvent(rec)
		if err != nil || got.ID() != fireID(tm) || got.Type() != tm.Command || got.Subject() != "k/1" || got.Extensions()[codec.ExtTimer] != tm.Name {
			t.Errorf("%s: decoded %v %v", tm.Name, got, err)
		}
	}
}
