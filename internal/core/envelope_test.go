package core

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/partita-dev/partita/codec"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, env := range []*Envelope{
		{},
		{Seq: 7, Exists: true, State: []byte(`{"n":1}`), Epoch: 1<<63 | 5},
		{Seq: 300, Exists: false, Applied: []Applied{
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
		data, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != env.Seq || got.Exists != env.Exists || got.Epoch != env.Epoch || string(got.State) != string(env.State) || len(got.Window()) != len(env.Applied) {
			t.Fatalf("round trip: %+v -> %+v", env, got)
		}
		for i := range env.Applied {
			if !got.Window()[i].Is(env.Applied[i].Key) || got.Window()[i].Time != env.Applied[i].Time || len(got.Window()[i].Outputs) != len(env.Applied[i].Outputs) ||
				got.Window()[i].Digest != env.Applied[i].Digest || got.Window()[i].From != env.Applied[i].From ||
				!reflect.DeepEqual(got.Window()[i].Facts, env.Applied[i].Facts) {
				t.Fatalf("applied %d: %+v, want %+v", i, got.Window()[i], env.Applied[i])
			}
			for j, o := range env.Applied[i].Outputs {
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
	if _, err := DecodeEnvelope([]byte("P\x05\x03")); err == nil {
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
	if got.Seq != 1 || got.Epoch != 5 || len(got.Window()) != 1 || got.Window()[0].Key != "s\x00a" || got.Window()[0].Time != 1 {
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
	for i := range 16 {
		env.Applied = append(env.Applied, Applied{Key: fmt.Sprintf("gateway\x00cmd-%d", i), Time: 1})
	}
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
	env := &Envelope{Seq: 3, Exists: true, State: []byte(`{"n":3}`), Applied: []Applied{{Key: "k", Outputs: []Output{{Topic: "t", Record: codec.Record{Key: []byte("k"), Value: []byte("v"), Headers: map[string][]byte{"h": []byte("x")}}}}}}}
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
