package codec_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/partita-dev/partita/codec"
)

// FuzzDecodeEvent: any record either decodes to a valid CloudEvent that
// re-encodes and decodes again, or is rejected with an error; never a panic.
func FuzzDecodeEvent(f *testing.F) {
	good, _ := codec.EncodeEvent(sample())
	f.Add(good.Value, "1.0", "c-1", "test", "add-item", "cart-7", "application/json", "")
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","subject":"k","data":{}}`), "", "", "", "", "", "application/cloudevents+json", "")
	f.Add([]byte("hello"), "0.3", "", "", "", "", "", "ce_partitaseq")
	f.Add([]byte{}, "1.0", "\xff", "s", "t", "\xc3", "text/plain", "ce_x")
	f.Add([]byte("{}"), "1.0", "i", "%zz", "t", "s", "", "ce_time")
	f.Add([]byte("{}"), "1.0", "i", "s", "t", "s", "", "ce_dataschema")
	f.Add([]byte("{}"), "1.0", "i", "s", "t", "s", "", "ce_Bad-Name")
	f.Fuzz(func(t *testing.T, value []byte, spec, id, source, typ, subject, contentType, extra string) {
		h := map[string][]byte{}
		for k, v := range map[string]string{"ce_specversion": spec, "ce_id": id, "ce_source": source, "ce_type": typ, "ce_subject": subject, "content-type": contentType} {
			if v != "" {
				h[k] = []byte(v)
			}
		}
		if extra != "" {
			h[extra] = []byte("x")
		}
		rec := codec.Record{Key: []byte(subject), Value: value, Headers: h}
		e, err := codec.DecodeEvent(rec)
		sameAsBinding(t, rec, e, err)
		sameAttributes(t, rec, e, err)
		if err != nil {
			return
		}
		r, err := codec.EncodeEvent(e)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v (%v)", err, e)
		}
		if _, err := codec.DecodeEvent(r); err != nil {
			t.Fatalf("an encoded event does not decode: %v", err)
		}
		_ = codec.RequireSubject(e)
	})
}

// sameAsBinding checks DecodeEvent's outcome for rec (e, err) against the
// sdk binding's reading of it: what DecodeEvent accepts, the binding reads
// as the same event; a valid 1.0 event with UTF-8 attributes that the
// binding reads, DecodeEvent accepts. (With both content-type and
// ce_datacontenttype the winner depends on map order in both: skipped.)
func sameAsBinding(t *testing.T, rec codec.Record, e codec.Event, err error) {
	t.Helper()
	lower := map[string][]byte{}
	for k, v := range rec.Headers {
		lower[strings.ToLower(k)] = v
	}
	if _, ok := lower["ce_datacontenttype"]; ok && lower["content-type"] != nil {
		return
	}
	want, werr := codec.DecodeViaBinding(rec)
	if werr == nil && want != nil {
		werr = want.Validate()
	}
	valid := werr == nil && want != nil && want.SpecVersion() == "1.0" && codec.UTF8AttributesForTest(*want)
	for k, v := range lower {
		if strings.HasPrefix(k, "ce_") && !utf8.Valid(v) {
			valid = false
		}
	}
	switch {
	case err == nil && !valid:
		t.Fatalf("DecodeEvent accepted what the binding rejects (%v): %v", werr, e)
	case err == nil && !reflect.DeepEqual(e, *want):
		t.Fatalf("DecodeEvent and the binding differ:\n%v\n%v", e, *want)
	case err != nil && valid:
		t.Fatalf("DecodeEvent rejected (%v) what the binding reads: %v", err, *want)
	}
}

// Binary-mode records with every kind of attribute decode as the binding
// decodes them.
func TestBinaryDecodingMatchesTheBinding(t *testing.T) {
	for _, h := range []map[string]string{
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "/s", "ce_type": "t"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "urn:x", "ce_type": "t", "ce_subject": "k", "ce_time": "2026-11-22T06:00:00.123456789Z",
			"ce_dataschema": "https://example.com/s", "content-type": "application/json", "ce_partitaseq": "7", "ce_ext": "v"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_time": "yesterday"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "%zz", "ce_type": "t"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "CE_Bad_Name": "v"},
		{"ce_specversion": "1.0", "ce_id": "", "ce_source": "s", "ce_type": "t"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_dataschema": "::"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_subject": ""},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_datacontenttype": "text/plain"},
		{"ce_specversion": "1.0", "ce_id": " 1 ", "ce_source": "HTTPS://Example.com/a b", "ce_type": " t ", "ce_subject": " k ", "content-type": " application/json "},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "//host/p", "ce_type": "t", "content-type": "application/json; charset=utf-8", "ce_partitareply": "true"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": "a:b", "ce_type": "t", "content-type": "no/such/type"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_source": " ", "ce_type": "t", "ce_data": "x"},
		{"ce_specversion": "1.0", "ce_id": "1", "ce_type": "t"},
	} {
		rec := codec.Record{Value: []byte(`{"a":1}`), Headers: map[string][]byte{}}
		for k, v := range h {
			rec.Headers[k] = []byte(v)
		}
		e, err := codec.DecodeEvent(rec)
		sameAsBinding(t, rec, e, err)
		sameAttributes(t, rec, e, err)
	}
}

// sameAttributes checks DecodeAttributes against DecodeEvent's outcome for
// rec (e, err): the same kind of error, or the same attributes.
func sameAttributes(t *testing.T, rec codec.Record, e codec.Event, err error) {
	t.Helper()
	a, aerr := codec.DecodeAttributes(rec)
	switch {
	case (aerr == nil) != (err == nil) || errors.Is(aerr, codec.ErrNotCloudEvent) != errors.Is(err, codec.ErrNotCloudEvent):
		// (The messages can name different headers: both read a map.)
		t.Fatalf("DecodeAttributes: %v; DecodeEvent: %v", aerr, err)
	case err == nil && !reflect.DeepEqual(a, codec.AttributesOf(e)):
		t.Fatalf("DecodeAttributes and DecodeEvent differ:\n%+v\n%+v", a, codec.AttributesOf(e))
	}
}
