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
//	'P' 5 | uvarint seq | exists byte | uvarint epoch | flags byte | bytes state | uvarint n | n × applied
//	flags:   bit 0: spilled (the subject's applied commands are also kept in the id table, see Process)
//	applied: form byte, then
//	  0 (wrote nothing): 8 bytes hashKey(key) | 8 bytes digest | varint time
//	  1 (facts):         bytes key | varint time | 8 bytes digest | origin byte | varint offset | uvarint f | f × fact
//	  2 (records):       bytes key | uvarint m | m × output
//	fact:    kind byte | bytes target | bytes type | bytes subject | uvarint seq | bytes content type | bytes data
//	output:  bytes topic | bytes key | bytes value | uvarint h | h × (bytes k | bytes v)
//
// where bytes is a uvarint length and the bytes, 8-byte numbers are
// little-endian, time is Unix nanoseconds and digest is the request's
// digest (see Digest; 0: not recorded, as in older versions). The state is the entity's
// own encoding (JSON). The window keeps facts, not records (see render):
// a reply record is some 500 bytes of headers around its data. A command
// that wrote nothing (no reply asked, no event) needs only its key to be
// recognized, and a hash of it does: 9 bytes instead of some 30, for most
// of the window of most entities. Form 2 holds the records of entries
// written by versions 1 and 2.
//
// Versions 1 (no epoch, no time, no facts: key | outputs), 2 (no time, no
// facts), 3 (key | time | facts | outputs) and 4 (no flags, no digests, no
// time in form 0) are still read; their windows are converted once, when
// the envelope is written again. Decoding aliases the input; goka hands
// each callback its own copy.
const envelopeMagic, envelopeVersion = 'P', 5

// Envelope flags.
const flagSpilled = 1

// Forms of an applied entry in a version 4 envelope.
const (
	formHash byte = iota
	formFacts
	formRecords
)

var errEnvelope = errors.New("stored state is unreadable")

// Encode writes the envelope for the group table.
func (e *Envelope) Encode() ([]byte, error) {
	w := e.encodedWindow()
	b := make([]byte, 0, 24+len(e.State)+len(w.raw))
	b = append(b, envelopeMagic, envelopeVersion)
	b = binary.AppendUvarint(b, e.Seq)
	if e.Exists {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, e.Epoch)
	var flags byte
	if e.Spilled {
		flags |= flagSpilled
	}
	b = append(b, flags)
	b = appendBytes(b, e.State)
	b = binary.AppendUvarint(b, uint64(len(w.starts)))
	return append(b, w.raw...), nil
}

// appendApplied writes a window entry (version 5).
func appendApplied(b []byte, a Applied) []byte {
	switch {
	case len(a.Outputs) > 0:
		b = append(b, formRecords)
		b = appendBytes(b, []byte(a.Key))
		b = appendOutputs(b, a.Outputs)
	case len(a.Facts) > 0:
		b = append(b, formFacts)
		b = appendBytes(b, []byte(a.Key))
		b = binary.AppendVarint(b, a.Time)
		b = binary.LittleEndian.AppendUint64(b, a.Digest)
		b = append(b, a.From.Topic)
		b = binary.AppendVarint(b, a.From.Offset)
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
	default:
		h := a.Hash
		if a.Key != "" {
			h = hashKey(a.Key)
		}
		b = append(b, formHash)
		b = binary.LittleEndian.AppendUint64(b, h)
		b = binary.LittleEndian.AppendUint64(b, a.Digest)
		b = binary.AppendVarint(b, a.Time)
	}
	return b
}

// window is a dedup window as Encode writes it (version 5 entries), kept
// encoded: the entity path looks for one key in it and appends one entry,
// and decoding every entry of the window on every command, to encode them
// all again, was a tenth of that path (issue 7). It is never changed.
type window struct {
	raw    []byte // the entries
	starts []int  // where each entry starts in raw
}

// encodedWindow is e's window, encoded.
func (e *Envelope) encodedWindow() *window {
	if e.window != nil {
		return e.window
	}
	w := &window{starts: make([]int, 0, len(e.Applied))}
	for _, a := range e.Applied {
		w.starts = append(w.starts, len(w.raw))
		w.raw = appendApplied(w.raw, a)
	}
	return w
}

// Window returns the dedup window, oldest first.
func (e *Envelope) Window() []Applied {
	if e.window == nil {
		return e.Applied
	}
	out := make([]Applied, len(e.window.starts))
	for i := range out {
		out[i] = e.window.decode(i)
	}
	return out
}

func (w *window) entry(i int) []byte {
	if i+1 < len(w.starts) {
		return w.raw[w.starts[i]:w.starts[i+1]]
	}
	return w.raw[w.starts[i]:]
}

// decode reads entry i (DecodeEnvelope checked that it reads).
func (w *window) decode(i int) Applied {
	r := reader{b: w.entry(i)}
	return r.applied(envelopeVersion)
}

// find returns the index of the newest entry of the command with key,
// whose hashKey is hash, or -1, with the entry's time and digest.
func (w *window) find(key string, hash uint64) (i int, time int64, digest uint64) {
	for i := len(w.starts) - 1; i >= 0; i-- {
		e := w.entry(i)
		if e[0] == formHash {
			if binary.LittleEndian.Uint64(e[1:]) == hash {
				r := reader{b: e[17:]}
				return i, r.varint(), binary.LittleEndian.Uint64(e[9:])
			}
			continue
		}
		r := reader{b: e[1:]}
		if string(r.bytes()) == key {
			if e[0] == formRecords {
				return i, 0, 0
			}
			t := r.varint()
			return i, t, binary.LittleEndian.Uint64(r.next(8))
		}
	}
	return -1, 0, 0
}

// then returns the window of the last size-1 entries of w and a (nil when
// size is 0).
func (w *window) then(a Applied, size int) *window {
	if size <= 0 {
		return nil
	}
	drop := max(0, len(w.starts)+1-size)
	from := len(w.raw)
	if drop < len(w.starts) {
		from = w.starts[drop]
	}
	next := &window{raw: make([]byte, 0, len(w.raw)-from+32), starts: make([]int, 0, len(w.starts)-drop+1)}
	next.raw = append(next.raw, w.raw[from:]...)
	for _, s := range w.starts[drop:] {
		next.starts = append(next.starts, s-from)
	}
	next.starts = append(next.starts, len(next.raw))
	next.raw = appendApplied(next.raw, a)
	return next
}

func appendOutputs(b []byte, outs []Output) []byte {
	b = binary.AppendUvarint(b, uint64(len(outs)))
	for _, o := range outs {
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
	return b
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
	if version >= 5 {
		env.Spilled = r.byte()&flagSpilled != 0
	}
	if st := r.bytes(); len(st) > 0 {
		env.State = st
	}
	n := r.count()
	if version < envelopeVersion {
		env.Applied = make([]Applied, 0, n)
		for range n {
			env.Applied = append(env.Applied, r.applied(version))
		}
	} else {
		// Kept encoded; each entry is read once here to check it.
		w := &window{raw: r.b, starts: make([]int, 0, n)}
		for range n {
			w.starts = append(w.starts, len(w.raw)-len(r.b))
			r.applied(version)
		}
		env.window = w
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: truncated or corrupt", errEnvelope)
	}
	return env, nil
}

// applied reads an entry of the applied window of an envelope of version.
func (r *reader) applied(version byte) Applied {
	form := formRecords // versions 1 and 2: key | outputs
	switch {
	case version >= 4:
		form = r.byte()
	case version == 3:
		form = formFacts // key | time | facts | outputs
	}
	var a Applied
	switch form {
	case formHash:
		if h := r.next(8); h != nil {
			a.Hash = binary.LittleEndian.Uint64(h)
		}
		if version >= 5 {
			if d := r.next(8); d != nil {
				a.Digest = binary.LittleEndian.Uint64(d)
			}
			a.Time = r.varint()
		}
		return a
	case formFacts, formRecords:
		a.Key = string(r.bytes())
	default:
		r.fail()
		return a
	}
	if form == formFacts {
		a.Time = r.varint()
		if version >= 5 {
			if d := r.next(8); d != nil {
				a.Digest = binary.LittleEndian.Uint64(d)
			}
			a.From = Origin{Topic: r.byte(), Offset: r.varint()}
		}
		if f := r.count(); f > 0 {
			a.Facts = make([]Fact, 0, f)
			for range f {
				a.Facts = append(a.Facts, Fact{Kind: FactKind(r.byte()), Target: string(r.bytes()), Type: string(r.bytes()),
					Subject: string(r.bytes()), Seq: r.uvarint(), ContentType: string(r.bytes()), Data: nilIfEmpty(r.bytes())})
			}
		}
	}
	if form == formRecords || version == 3 {
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
	}
	return a
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

// fail marks the envelope malformed; every read after it returns zero.
func (r *reader) fail() {
	r.err = errEnvelope
	r.b = nil
}

// next returns the next n bytes (nil, failing, when fewer are left).
func (r *reader) next(n int) []byte {
	if n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.next(1); v != nil {
		return v[0]
	}
	return 0
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
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in what is left.
func (r *reader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *reader) bytes() []byte { return r.next(r.count()) }

// EncodeApplied is an applied entry as the id table stores it (the form a
// version 5 window keeps it in).
func EncodeApplied(a Applied) []byte { return appendApplied(nil, a) }

// DecodeApplied reads an entry written by EncodeApplied.
func DecodeApplied(data []byte) (Applied, error) {
	r := reader{b: data}
	a := r.applied(envelopeVersion)
	if r.err != nil || len(r.b) != 0 {
		return Applied{}, fmt.Errorf("%w: an id table entry is truncated or corrupt", errEnvelope)
	}
	return a, nil
}
