package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// The group table's value is a compact binary envelope (not JSON: the
// applied window's records would be base64 and maps, and decoding and
// encoding them dominated the entity path; see docs/decisions.md):
//
//	'P' 3 | uvarint seq | exists byte | uvarint epoch | bytes state | uvarint n | n × applied
//	applied: bytes key | varint time | uvarint f | f × fact | uvarint m | m × output
//	fact:    kind byte | bytes target | bytes type | bytes subject | uvarint seq | bytes content type | bytes data
//	output:  bytes topic | bytes key | bytes value | uvarint h | h × (bytes k | bytes v)
//
// where bytes is a uvarint length and the bytes. The state is the entity's
// own encoding (JSON). The window keeps facts, not records (see render):
// a reply record is some 500 bytes of headers around its data. Versions 1
// (no epoch, no time, no facts) and 2 (no time, no facts: records in
// outputs) are still read. Decoding aliases the input; goka hands each callback
// its own copy.
const envelopeMagic, envelopeVersion = 'P', 3

var errEnvelope = errors.New("stored state is unreadable")

// Encode writes the envelope for the group table.
func (e *Envelope) Encode() ([]byte, error) {
	n := 16 + len(e.State)
	for _, a := range e.Applied {
		n += 16 + len(a.Key)
		for _, f := range a.Facts {
			n += 16 + len(f.Target) + len(f.Type) + len(f.Subject) + len(f.ContentType) + len(f.Data)
		}
		for _, o := range a.Outputs {
			n += 24 + len(o.Topic) + len(o.Record.Key) + len(o.Record.Value)
			for k, v := range o.Record.Headers {
				n += 8 + len(k) + len(v)
			}
		}
	}
	b := make([]byte, 0, n)
	b = append(b, envelopeMagic, envelopeVersion)
	b = binary.AppendUvarint(b, e.Seq)
	if e.Exists {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, e.Epoch)
	b = appendBytes(b, e.State)
	b = binary.AppendUvarint(b, uint64(len(e.Applied)))
	for _, a := range e.Applied {
		b = appendBytes(b, []byte(a.Key))
		b = binary.AppendVarint(b, a.Time)
		b = binary.AppendUvarint(b, uint64(len(a.Facts)))
		for _, f := range a.Facts {
			b = append(b, byte(f.Kind))
			b = appendBytes(b, []byte(f.Target))
			b = appendBytes(b, []byte(f.Type))
			b = appendBytes(b, []byte(f.Subject))
			b = binary.AppendUvarint(b, f.Seq)
			b = appendBytes(b, []byte(f.ContentType))
			b = appendBytes(b, f.Data)
		}
		b = binary.AppendUvarint(b, uint64(len(a.Outputs)))
		for _, o := range a.Outputs {
			b = appendBytes(b, []byte(o.Topic))
			b = appendBytes(b, o.Record.Key)
			b = appendBytes(b, o.Record.Value)
			keys := make([]string, 0, len(o.Record.Headers))
			for k := range o.Record.Headers {
				keys = append(keys, k)
			}
			sort.Strings(keys) // deterministic bytes for the same envelope
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = appendBytes(b, []byte(k))
				b = appendBytes(b, o.Record.Headers[k])
			}
		}
	}
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// DecodeEnvelope reads a stored envelope; nil data is an empty envelope.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	env := &Envelope{}
	if len(data) == 0 {
		return env, nil
	}
	r := reader{b: data}
	magic, version := r.byte(), r.byte()
	if magic != envelopeMagic || version < 1 || version > envelopeVersion {
		return nil, fmt.Errorf("%w: not a Partita envelope (versions 1 to %d)", errEnvelope, envelopeVersion)
	}
	env.Seq = r.uvarint()
	env.Exists = r.byte() == 1
	if version >= 2 {
		env.Epoch = r.uvarint()
	}
	if st := r.bytes(); len(st) > 0 {
		env.State = st
	}
	n := r.count()
	if n > 0 {
		env.Applied = make([]Applied, 0, n)
	}
	for range n {
		a := Applied{Key: string(r.bytes())}
		if version >= 3 {
			a.Time = r.varint()
			if f := r.count(); f > 0 {
				a.Facts = make([]Fact, 0, f)
				for range f {
					a.Facts = append(a.Facts, Fact{Kind: FactKind(r.byte()), Target: string(r.bytes()), Type: string(r.bytes()),
						Subject: string(r.bytes()), Seq: r.uvarint(), ContentType: string(r.bytes()), Data: nilIfEmpty(r.bytes())})
				}
			}
		}
		if m := r.count(); m > 0 {
			a.Outputs = make([]Output, 0, m)
			for range m {
				o := Output{Topic: string(r.bytes())}
				o.Record.Key = r.bytes()
				o.Record.Value = r.bytes()
				h := r.count()
				o.Record.Headers = make(map[string][]byte, h)
				for range h {
					k := string(r.bytes())
					o.Record.Headers[k] = r.bytes()
				}
				a.Outputs = append(a.Outputs, o)
			}
		}
		env.Applied = append(env.Applied, a)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: truncated or corrupt", errEnvelope)
	}
	return env, nil
}

// nilIfEmpty keeps "no data" nil, as it was before encoding.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// reader reads the envelope's primitives, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.err = errEnvelope
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	return skip(r, n, v)
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	return skip(r, n, v)
}

// skip moves past a varint of n bytes (n <= 0: malformed) and returns v.
func skip[T int64 | uint64](r *reader, n int, v T) T {
	if n <= 0 {
		r.err = errEnvelope
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in what is left.
func (r *reader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.err = errEnvelope
		r.b = nil
		return 0
	}
	return int(v)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
