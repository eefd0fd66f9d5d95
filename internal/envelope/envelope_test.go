package envelope

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/partita-dev/partita/codec"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, c := range []struct {
		env     *Envelope
		applied []Applied
	}{
		{env: &Envelope{}},
		{env: &Envelope{Seq: 7, Exists: true, State: []byte(`{"n":1}`), Epoch: 1<<63 | 5}},
		{env: &Envelope{Seq: 300, Exists: false}, applied: []Applied{
			{Key: "src\x00id-1", Outputs: []Output{{Topic: "app.replies", Record: codec.Record{Key: []byte("id-1"), Value: []byte("{}"),
				Headers: map[string][]byte{"ce_id": []byte("reply:src/id-1"), "ce_type": []byte("partita.reply")}}}}},
			{Key: "src\x00id-2", Outputs: []Output{}},
			{Key: "src\x00id-3", Time: -5, Digest: 42, From: Origin{OriginLoop, 77}, Facts: []Fact{
				{Kind: FactEvent, Type: "added", Subject: "s", Seq: 299, ContentType: "application/json", Data: []byte(`{"a":1}`)},
				{Kind: FactSend, Target: "other", Type: "do", Subject: "o"},
				{Kind: FactReply, Type: "not_found", Subject: "s", Seq: 300, Data: []byte(`{}`)},
			}},
		}},
	} {
		env := c.env
		env.SetWindow(c.applied)
		data, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != env.Seq || got.Exists != env.Exists || got.Epoch != env.Epoch || string(got.State) != string(env.State) || len(got.Window()) != len(c.applied) {
			t.Fatalf("round trip: %+v -> %+v", env, got)
		}
		for i := range c.applied {
			if !got.Window()[i].Is(c.applied[i].Key) || got.Window()[i].Time != c.applied[i].Time || len(got.Window()[i].Outputs) != len(c.applied[i].Outputs) ||
				got.Window()[i].Digest != c.applied[i].Digest || got.Window()[i].From != c.applied[i].From ||
				!reflect.DeepEqual(got.Window()[i].Facts, c.applied[i].Facts) {
				t.Fatalf("applied %d: %+v, want %+v", i, got.Window()[i], c.applied[i])
			}
			for j, o := range c.applied[i].Outputs {
				if g := got.Window()[i].Outputs[j]; g.Topic != o.Topic || !reflect.DeepEqual(g.Record, o.Record) {
					t.Fatalf("output %d/%d: %+v, want %+v", i, j, g, o)
				}
			}
		}
	}
}

// Envelopes written before the epoch (version 1) are still read.
func TestEnvelopeReadsVersion1(t *testing.T) {
	v1 := []byte("P\x01\x03\x01\x07{\"n\":3}\x00")
	got, err := DecodeEnvelope(v1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || !got.Exists || string(got.State) != `{"n":3}` || got.Epoch != 0 || len(got.Window()) != 0 {
		t.Fatalf("version 1: %+v", got)
	}
	if _, err := DecodeEnvelope([]byte("P\x07\x03")); err == nil {
		t.Fatal("an envelope of a later version decoded")
	}
}

// Version 3 entries (key, time, facts, records) are still read.
func TestEnvelopeReadsVersion3(t *testing.T) {
	v3 := []byte("P\x03\x01\x01\x05\x02{}\x01\x03s\x00a\x02\x00\x00")
	got, err := DecodeEnvelope(v3)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.Epoch != 5 || len(got.Window()) != 1 || !got.Window()[0].Is("s\x00a") || got.Window()[0].Time != 1 {
		t.Fatalf("version 3: %+v", got)
	}
}

// A command that wrote nothing takes 18 bytes of the window here: a form
// byte, the hash of its key, the request's digest and the time (a varint:
// one byte for this test's time, 9 for a real one). It is still
// recognized, and no other key is.
func TestEnvelopeRemembersSilentCommandsByHash(t *testing.T) {
	env := &Envelope{Seq: 16, Exists: true, State: []byte(`{"n":16}`)}
	empty, _ := env.Encode()
	var window []Applied
	for i := range 16 {
		window = append(window, Applied{Key: fmt.Sprintf("gateway\x00cmd-%d", i), Time: 1})
	}
	env.SetWindow(window)
	data, _ := env.Encode()
	if n := len(data) - len(empty); n != 16*18 {
		t.Fatalf("16 silent commands take %d bytes, want %d", n, 16*18)
	}
	got, err := DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Window()[7].Is("gateway\x00cmd-7") || got.Window()[7].Is("gateway\x00cmd-8") || got.Window()[7].Is("other\x00cmd-7") {
		t.Fatalf("entry 7 (hash %x) does not tell its key from others", got.Window()[7].Hash)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	env := &Envelope{Seq: 3, Exists: true, State: []byte(`{"n":3}`)}
	env.SetWindow([]Applied{{Key: "k", Outputs: []Output{{Topic: "t", Record: codec.Record{Key: []byte("k"), Value: []byte("v"), Headers: map[string][]byte{"h": []byte("x")}}}}}})
	good, _ := env.Encode()
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("P\x01"))
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			return
		}
		again, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeEnvelope(again); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
	})
}

// Timers are kept sorted by due time, replaced by name, cancelled by name,
// and survive the round trip; HasTimers tells from the header alone.
func TestEnvelopeTimers(t *testing.T) {
	env := &Envelope{Seq: 2, Exists: true, State: []byte(`{}`)}
	plain, _ := env.Encode()
	env.SetTimer(Timer{Name: "b", Due: 20, ID: 1, Command: "expire", ContentType: "application/json", Data: []byte(`{}`)})
	env.SetTimer(Timer{Name: "a", Due: 30, ID: 2, Command: "remind"})
	env.SetTimer(Timer{Name: "c", Due: 10, ID: 3, Command: "ping"})
	env.SetTimer(Timer{Name: "a", Due: 5, ID: 4, Command: "remind"}) // replaces a
	if !env.CancelTimer("c") || env.CancelTimer("c") {
		t.Fatal("cancel: want true once, then false")
	}
	env.SetWindow([]Applied{{Key: "s\x00x", Time: 1}})
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !HasTimers(data) || HasTimers(plain) || HasTimers(nil) || HasTimers([]byte("P\x05")) {
		t.Fatal("HasTimers does not tell envelopes with timers from others")
	}
	got, err := DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Timer{{Name: "a", Due: 5, ID: 4, Command: "remind"}, {Name: "b", Due: 20, ID: 1, Command: "expire", ContentType: "application/json", Data: []byte(`{}`)}}
	if !reflect.DeepEqual(got.Timers, want) || got.WindowLen() != 1 || string(got.State) != `{}` {
		t.Fatalf("timers %+v, want %+v (window %d)", got.Timers, want, got.WindowLen())
	}
	if tm, ok := got.Timer("b"); !ok || tm.ID != 1 {
		t.Fatalf("Timer(b): %+v %v", tm, ok)
	}
}
