package codec

import (
	"fmt"
	"strconv"
)

// Sequence returns an event's sequence number (extension partitaseq): what
// Partita's entities stamp on their events, published events and sent
// commands. It grows by at least one per command of the subject that wrote
// anything. ok is false when the event carries none.
func Sequence(e Event) (seq uint64, ok bool) {
	v, found := e.Extensions()[ExtSequence]
	if !found {
		return 0, false
	}
	seq, err := strconv.ParseUint(fmt.Sprint(v), 10, 64)
	return seq, err == nil && seq > 0
}

// Latest is what a consumer that is not a Partita view needs to read an
// entity's events effectively-once: Partita writes an event again after a
// worker crash (same id, same sequence number), possibly behind newer
// events of its subject, so a consumer applies an event only when its
// sequence number is newer than the last one it applied for the event's
// source and subject. Keep Latest's figures with the consumer's own state
// (Seen and Set), in the same transaction, for it to survive a restart.
// The zero Latest is ready to use; it is not safe for concurrent use.
type Latest struct {
	last map[string]uint64
}

// Newer reports whether e is newer than the last event Newer accepted for
// its source and subject, and if so remembers it. An event without a
// sequence number is accepted: dedup it by its id.
func (l *Latest) Newer(e Event) bool {
	seq, ok := Sequence(e)
	if !ok {
		return true
	}
	k := e.Source() + "\x00" + e.Subject()
	if l.last[k] >= seq {
		return false
	}
	l.Set(e.Source(), e.Subject(), seq)
	return true
}

// Seen is the last sequence number accepted for source and subject (0: none).
func (l *Latest) Seen(source, subject string) uint64 { return l.last[source+"\x00"+subject] }

// Set records seq as the last applied for source and subject (for a
// consumer restoring its figures).
func (l *Latest) Set(source, subject string, seq uint64) {
	if l.last == nil {
		l.last = map[string]uint64{}
	}
	l.last[source+"\x00"+subject] = seq
}
