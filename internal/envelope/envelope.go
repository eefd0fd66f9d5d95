// Package envelope is the stored form of an entity's subject in its group
// table: sequence number, state, epoch and the dedup window of the commands
// it applied with what each wrote (facts), in a compact binary encoding
// that older versions of which are still read. The window has one
// representation, encoded, behind methods: the entity path looks up one
// key and appends one entry per command without decoding the rest. It also
// encodes the id table's entries (EncodeApplied) and a request's Digest.
package envelope

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/partita-dev/partita/codec"
)

// The group table's value is a compact binary envelope (not JSON: the
// applied window's records would be base64 and maps, and decoding and
// encoding them dominated the entity path; see docs/decisions.md):
//
//	'P' 6 | uvarint seq | exists byte | uvarint epoch | flags byte | bytes state | [timers] | uvarint n | n × applied
//	flags:   bit 0: spilled (the subject's applied commands are also kept in the id table, see Process)
//	         bit 1: timers follow the state
//	timers:  uvarint t | t × (bytes name | varint due | 8 bytes id | bytes command | bytes content type | bytes data)
//	applied: form byte, then
//	  0 (wrote nothing): 8 bytes HashKey(key) | 8 bytes digest | varint time
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
// read. Version 5 is 6 without timers; its entries are version 6's
// (entryVersion: the id table's entries carry no version of their own).
// Decoding aliases the input; goka hands each callback its own copy.
const envelopeMagic, envelopeVersion, entryVersion = 'P', 6, 5

// Envelope flags.
const (
	flagSpilled = 1
	flagTimers  = 2
)

// Forms of an applied entry in a version 4 envelope.
const (
	formHash byte = iota
	formFacts
	formRecords
)

// ErrUnreadable is wrapped by the errors of an envelope or id table entry
// that cannot be read.
var ErrUnreadable = errors.New("stored state is unreadable")

// Output is a record to write to a topic.
type Output struct {
	Topic  string       `json:"t"`
	Record codec.Record `json:"r"`
}

// Envelope is what the group table stores for a subject.
type Envelope struct {
	Seq    uint64
	Exists bool
	// Epoch is the epoch (core.Env.Epoch) of the processor that wrote the envelope.
	Epoch uint64
	// Spilled is set once the subject's window overflowed: from then on
	// every command it applies is also written to the id table, and a
	// command not found in the window is looked up there.
	Spilled bool
	State   json.RawMessage
	// Timers are the subject's pending timers, by due time then name (see
	// SetTimer): a timer fires its command when due, and asks wait for
	// their answer as a timer named AskTimer(id) that fires the timeout.
	Timers []Timer
	// window is the dedup window, oldest first, kept as Encode writes it
	// (see Window, Find, Extend, SetWindow): the one representation.
	window *window
}

// Timer is a pending timer of a subject: when Due (Unix nanoseconds)
// comes, the runtime delivers Command with Data to the subject, as a record
// whose id is made of Name and ID (see core.Process): a fire of a timer
// that was replaced (a new ID) or cancelled since finds it missing and is
// dropped.
type Timer struct {
	Name        string
	Due         int64
	ID          uint64 // unique per scheduling: a hash of the scheduling command's key, the name and Due
	Command     string
	ContentType string
	Data        []byte
}

// Timer returns the pending timer named name.
func (e *Envelope) Timer(name string) (Timer, bool) {
	for _, t := range e.Timers {
		if t.Name == name {
			return t, true
		}
	}
	return Timer{}, false
}

// SetTimer adds t, replacing the timer of its name, keeping Timers sorted
// by due time then name. Timers is copied, never changed in place (an
// envelope's Timers may be another's).
func (e *Envelope) SetTimer(t Timer) {
	out := make([]Timer, 0, len(e.Timers)+1)
	for _, o := range e.Timers {
		if o.Name != t.Name {
			out = append(out, o)
		}
	}
	i := sort.Search(len(out), func(i int) bool {
		return out[i].Due > t.Due || out[i].Due == t.Due && out[i].Name > t.Name
	})
	e.Timers = append(out[:i], append([]Timer{t}, out[i:]...)...)
}

// CancelTimer removes the timer named name; it reports whether there was
// one.
func (e *Envelope) CancelTimer(name string) bool {
	for i, o := range e.Timers {
		if o.Name == name {
			e.Timers = append(e.Timers[:i:i], e.Timers[i+1:]...)
			return true
		}
	}
	return false
}

// Origin is where a record was read on its subject's partition.
type Origin struct {
	Topic  byte // OriginCommands, OriginLoop, or OriginElsewhere (a subscribed topic)
	Offset int64
}

// Origin topics.
const (
	OriginElsewhere byte = iota
	OriginCommands
	OriginLoop
)

// Since is where an epoch started reading a partition, by origin topic
// (Since[OriginCommands], Since[OriginLoop]): every record before it was
// committed by an earlier epoch, so what it wrote was acknowledged. The
// zero Since knows nothing (nothing is before offset 0).
type Since [3]int64

// Committed reports whether o was committed before the epoch of s.
func (s Since) Committed(o Origin) bool {
	return o.Topic != OriginElsewhere && int(o.Topic) < len(s) && o.Offset < s[o.Topic]
}

// Applied records a command that was applied and what it wrote.
type Applied struct {
	// Key is source + "\x00" + id. A command that wrote nothing is stored
	// as Hash alone (see Envelope.Encode): Key is then empty.
	Key  string
	Hash uint64 // HashKey(Key), when Key is not stored
	Time int64  // when it was applied (Unix nanoseconds): its records' ce-time
	// Digest is the request's Digest (0: not recorded): the same key with
	// another request is refused.
	Digest uint64
	// From is where the command was read (facts entries only): a new
	// epoch writes its facts again only when it was not committed before
	// the epoch started (see core.Process).
	From  Origin
	Facts []Fact // what it wrote, as core renders it into records
	// Outputs are the records themselves, in envelopes written before
	// facts (versions 1 and 2).
	Outputs []Output
}

// Is reports whether a records the command with key (source + "\x00" + id).
func (a *Applied) Is(key string) bool {
	if a.Key != "" {
		return a.Key == key
	}
	return a.Hash == HashKey(key)
}

// KeyHash is HashKey(a.Key), or the stored hash when the key is not.
func (a *Applied) KeyHash() uint64 {
	if a.Key != "" {
		return HashKey(a.Key)
	}
	return a.Hash
}

// HashKey is the 64-bit FNV-1a hash of a command's key: two keys within a
// subject's window share it with a probability of about 16 in 2^64.
func HashKey(key string) uint64 { return fnv(fnvOffset, key) }

// fnv continues a 64-bit FNV-1a hash h over s.
func fnv[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

const fnvOffset = 14695981039346656037

// Fact is a record a command wrote, as the dedup window keeps it: the
// record follows from the fact, the entity, the command and its time (see
// core.Process), so the window holds the data and not every record's headers.
type Fact struct {
	Kind        FactKind
	Target      string // FactPublish: the topic; FactSend: the entity
	Type        string // the event's or command's type; FactReply: the error code ("" for a reply)
	Subject     string // FactPublish, FactSend: whom the record is about (events and replies are about the command's subject)
	Seq         uint64 // the sequence number it carries (not FactSend)
	ContentType string
	Data        []byte
}

// FactKind is what a fact records.
type FactKind byte

// Fact kinds.
const (
	FactEvent   FactKind = iota + 1 // an event of an event-sourced entity
	FactPublish                     // an event published to another topic
	FactSend                        // a command sent to an entity
	FactReply                       // the reply to the command
	// FactAsk is a command sent to an entity that answers: Target holds
	// the entity, the reply command and the error command, NUL-separated.
	FactAsk
	// FactAnswer is the answer to an asked command, for the asker: Target
	// holds the asking entity and subject, NUL-separated; Type the asker's
	// command that receives it.
	FactAnswer
)

// Digest is the digest of a command's request, recorded with its id: its
// type, content type and data. The same id with another digest is refused.
func Digest(ev codec.Attributes) uint64 {
	h := fnv(fnvOffset, ev.Type)
	h = fnv(fnv(h, "\xff"), ev.DataContentType) // 0xff: no UTF-8 text holds it
	h = fnv(fnv(h, "\xff"), ev.Data)
	return h | 1 // never 0, which means "not recorded"
}

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
	if len(e.Timers) > 0 {
		flags |= flagTimers
	}
	b = append(b, flags)
	b = appendBytes(b, e.State)
	if len(e.Timers) > 0 {
		b = binary.AppendUvarint(b, uint64(len(e.Timers)))
		for _, t := range e.Timers {
			b = appendBytes(b, []byte(t.Name))
			b = binary.AppendVarint(b, t.Due)
			b = binary.LittleEndian.AppendUint64(b, t.ID)
			b = appendBytes(b, []byte(t.Command))
			b = appendBytes(b, []byte(t.ContentType))
			b = appendBytes(b, t.Data)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(w.starts)))
	return append(b, w.raw...), nil
}

// appendApplied writes a window entry (entryVersion).
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
		b = append(b, formHash)
		b = binary.LittleEndian.AppendUint64(b, a.KeyHash())
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

// encodedWindow is e's window (empty when it has none).
func (e *Envelope) encodedWindow() *window {
	if e.window != nil {
		return e.window
	}
	return &window{}
}

// SetWindow makes entries (oldest first) e's dedup window.
func (e *Envelope) SetWindow(entries []Applied) {
	w := &window{starts: make([]int, 0, len(entries))}
	for _, a := range entries {
		w.starts = append(w.starts, len(w.raw))
		w.raw = appendApplied(w.raw, a)
	}
	e.window = w
}

// Window returns the dedup window, oldest first.
func (e *Envelope) Window() []Applied {
	w := e.encodedWindow()
	out := make([]Applied, len(w.starts))
	for i := range out {
		out[i] = w.decode(i)
	}
	return out
}

// WindowLen is how many commands the window holds.
func (e *Envelope) WindowLen() int { return len(e.encodedWindow().starts) }

// Find returns the newest window entry of the command with key (source
// NUL id), if the window holds it. Only that entry is decoded.
func (e *Envelope) Find(key string) (Applied, bool) {
	w := e.encodedWindow()
	if i := w.find(key, HashKey(key)); i >= 0 {
		return w.decode(i), true
	}
	return Applied{}, false
}

// Extend makes e's window prev's last size-1 entries and a (none when
// size is 0): the entries are copied as they are encoded.
func (e *Envelope) Extend(prev *Envelope, a Applied, size int) {
	e.window = prev.encodedWindow().then(a, size)
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
	return r.applied(entryVersion)
}

// find returns the index of the newest entry of the command with key,
// whose HashKey is hash, or -1.
func (w *window) find(key string, hash uint64) int {
	for i := len(w.starts) - 1; i >= 0; i-- {
		e := w.entry(i)
		if e[0] == formHash {
			if binary.LittleEndian.Uint64(e[1:]) == hash {
				return i
			}
			continue
		}
		r := reader{b: e[1:]}
		if string(r.bytes()) == key {
			return i
		}
	}
	return -1
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
		return nil, fmt.Errorf("%w: not a Partita envelope (versions 1 to %d)", ErrUnreadable, envelopeVersion)
	}
	env.Seq = r.uvarint()
	env.Exists = r.byte() == 1
	if version >= 2 {
		env.Epoch = r.uvarint()
	}
	var flags byte
	if version >= 5 {
		flags = r.byte()
		env.Spilled = flags&flagSpilled != 0
	}
	if st := r.bytes(); len(st) > 0 {
		env.State = st
	}
	if flags&flagTimers != 0 {
		env.Timers = r.timers()
	}
	n := r.count()
	if version < entryVersion {
		// Converted once to this version's entries.
		window := make([]Applied, 0, n)
		for range n {
			window = append(window, r.applied(version))
		}
		env.SetWindow(window)
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
		return nil, fmt.Errorf("%w: truncated or corrupt", ErrUnreadable)
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

// timers reads the timers of a version 6 envelope.
func (r *reader) timers() []Timer {
	n := r.count()
	out := make([]Timer, 0, n)
	for range n {
		t := Timer{Name: string(r.bytes()), Due: r.varint()}
		if id := r.next(8); id != nil {
			t.ID = binary.LittleEndian.Uint64(id)
		}
		t.Command, t.ContentType, t.Data = string(r.bytes()), string(r.bytes()), nilIfEmpty(r.bytes())
		out = append(out, t)
	}
	return out
}

// HasTimers reports whether data, a stored envelope, holds timers: it reads
// the header only, so that a partition's envelopes can be scanned for the
// timers to schedule without decoding them.
func HasTimers(data []byte) bool {
	r := reader{b: data}
	if r.byte() != envelopeMagic || r.byte() != envelopeVersion {
		return false
	}
	r.uvarint()
	r.byte()
	r.uvarint()
	return r.err == nil && r.byte()&flagTimers != 0
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
	r.err = ErrUnreadable
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
	a := r.applied(entryVersion)
	if r.err != nil || len(r.b) != 0 {
		return Applied{}, fmt.Errorf("%w: an id table entry is truncated or corrupt", ErrUnreadable)
	}
	return a, nil
}
