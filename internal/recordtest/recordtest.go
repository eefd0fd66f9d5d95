// Package recordtest helps tests build bad Kafka records from good ones.
package recordtest

import "github.com/partita-dev/partita/codec"

// With returns a copy of r with its headers changed: kv alternates header
// names and values; a nil value removes the header, a string or []byte
// sets it. r itself is not changed.
func With(r codec.Record, kv ...any) codec.Record {
	h := make(map[string][]byte, len(r.Headers)+len(kv)/2)
	for k, v := range r.Headers {
		h[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		switch v := kv[i+1].(type) {
		case nil:
			delete(h, name)
		case []byte:
			h[name] = v
		case string:
			h[name] = []byte(v)
		}
	}
	return codec.Record{Key: r.Key, Value: r.Value, Headers: h}
}
