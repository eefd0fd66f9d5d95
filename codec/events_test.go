package codec_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"

	"github.com/partita-dev/partita/codec"
)

func sample() codec.Event {
	e := codec.NewEvent()
	e.SetID("c-1")
	e.SetSource("test")
	e.SetType("add-item")
	e.SetSubject("cart-7")
	e.SetExtension(codec.ExtSequence, 3)
	_ = e.SetData("application/json", map[string]any{"productId": "p1", "quantity": 2})
	return e
}

func TestBinaryRoundTrip(t *testing.T) {
	r, err := codec.EncodeEvent(sample())
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "cart-7" || string(r.Headers["ce_type"]) != "add-item" || string(r.Headers["ce_partitaseq"]) != "3" ||
		string(r.Headers["content-type"]) != "application/json" {
		t.Fatalf("binary mode record: key %q headers %q", r.Key, r.Headers)
	}
	e, err := codec.DecodeEvent(r)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "c-1" || e.Subject() != "cart-7" || string(e.Data()) != `{"productId":"p1","quantity":2}` {
		t.Fatalf("decoded %v", e)
	}
}

// EncodeEvent writes what the sdk's Kafka binding writes (the reference
// its writer follows), header for header.
func TestEncodeMatchesTheBinding(t *testing.T) {
	full := sample()
	full.SetTime(time.Date(2026, 12, 6, 16, 30, 0, 123, time.UTC))
	full.SetDataSchema("https://example.com/schema")
	full.SetExtension(codec.ExtCaller, `{"sub":"a"}`)
	empty := codec.NewEvent()
	empty.SetID("i")
	empty.SetSource("s")
	empty.SetType("t")
	for name, e := range map[string]codec.Event{"sample": sample(), "full": full, "no data": empty} {
		got, err := codec.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		pm := &sarama.ProducerMessage{}
		ctx := kafka_sarama.WithSkipKeyMapping(context.Background())
		if err := kafka_sarama.WriteProducerMessage(ctx, binding.ToMessage(&e), pm); err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{}
		for _, h := range pm.Headers {
			want[string(h.Key)] = h.Value
		}
		var value []byte
		if pm.Value != nil {
			value, _ = pm.Value.Encode()
		}
		if !reflect.DeepEqual(got.Headers, want) || string(got.Value) != string(value) {
			t.Errorf("%s: encoded %q %q, the binding %q %q", name, got.Headers, got.Value, want, value)
		}
	}
}

func TestStructuredModeIsRead(t *testing.T) {
	r := codec.Record{
		Value:   []byte(`{"specversion":"1.0","id":"x","source":"kcat","type":"get","subject":"s","datacontenttype":"application/json","data":{}}`),
		Headers: map[string][]byte{"content-type": []byte("application/cloudevents+json")},
	}
	e, err := codec.DecodeEvent(r)
	if err != nil || e.Type() != "get" || e.Subject() != "s" {
		t.Fatalf("%v %v", e, err)
	}
}

func TestBadRecordsAreNamed(t *testing.T) {
	good, _ := codec.EncodeEvent(sample())
	with := func(k string, v []byte) codec.Record {
		h := map[string][]byte{}
		for hk, hv := range good.Headers {
			h[hk] = hv
		}
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
		return codec.Record{Key: good.Key, Value: good.Value, Headers: h}
	}
	for name, tc := range map[string]struct {
		r    codec.Record
		want error
	}{
		"plain bytes":        {codec.Record{Value: []byte("hello")}, codec.ErrNotCloudEvent},
		"spec version 0.3":   {with("ce_specversion", []byte("0.3")), codec.ErrInvalidEvent},
		"no id":              {with("ce_id", nil), codec.ErrInvalidEvent},
		"no source":          {with("ce_source", nil), codec.ErrInvalidEvent},
		"no type":            {with("ce_type", nil), codec.ErrInvalidEvent},
		"garbage header":     {with("ce_type", []byte{0xff, 0xfe}), codec.ErrInvalidEvent},
		"structured garbage": {codec.Record{Value: []byte("{nope"), Headers: map[string][]byte{"content-type": []byte("application/cloudevents+json")}}, codec.ErrInvalidEvent},
	} {
		if _, err := codec.DecodeEvent(tc.r); !errors.Is(err, tc.want) {
			t.Errorf("%s: want %v, got %v", name, tc.want, err)
		}
	}
	e := sample()
	e.SetSubject("")
	if err := codec.RequireSubject(e); !errors.Is(err, codec.ErrInvalidEvent) {
		t.Errorf("missing subject: %v", err)
	}
}

func TestJSONCodec(t *testing.T) {
	type item struct {
		Quantity int `json:"quantity"`
	}
	c := codec.JSON[item]()
	if _, err := c.Decode([]byte(`{"quantity":"three"}`)); !errors.Is(err, codec.ErrPayload) {
		t.Errorf("wrong type: %v", err)
	}
	if _, err := c.Decode(nil); !errors.Is(err, codec.ErrPayload) {
		t.Errorf("empty: %v", err)
	}
	if _, err := c.Decode([]byte(`{"quantity":3} {"quantity":4}`)); !errors.Is(err, codec.ErrPayload) {
		t.Errorf("data after the value: %v", err)
	}
	if v, err := c.Decode([]byte(`{"quantity":3,"extra":1}`)); err != nil || v.Quantity != 3 {
		t.Errorf("unknown fields are ignored: %v %v", v, err)
	}
	if !c.Accepts("application/json; charset=utf-8") || c.Accepts("text/plain") {
		t.Error("content types")
	}
}
