package codec_test

import (
	"testing"

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
		e, err := codec.DecodeEvent(codec.Record{Key: []byte(subject), Value: value, Headers: h})
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
