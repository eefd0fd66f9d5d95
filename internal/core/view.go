package core

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// RowEnvelope is what a view table stores for a row id: the row (nil when
// the id has no row), per source and subject the last sequence number
// applied, and the ids of the last updates applied that carried no
// sequence number (events of other producers on a topic), for the
// retention, with the view's id table behind them once they overflow (as
// an entity's window: see Process).
type RowEnvelope struct {
	Row     json.RawMessage   `json:"row,omitempty"`
	Seqs    map[string]uint64 `json:"seqs,omitempty"`
	IDs     []RowID           `json:"ids,omitempty"`
	Spilled bool              `json:"spilled,omitempty"`
}

// RowID is an applied update's id (hashKey of source NUL id) and when it
// was applied (Unix nanoseconds).
type RowID struct {
	Hash uint64 `json:"h"`
	Time int64  `json:"t"`
}

// SeqKey is the key of RowEnvelope.Seqs for a source and subject.
func SeqKey(source, subject string) string { return source + "\x00" + subject }

// SourceKind is where a view's updates come from.
type SourceKind int

// Source kinds.
const (
	FromState  SourceKind = iota // a key-value entity's table (its state changes)
	FromEvents                   // an event-sourced entity's events topic
	FromTopic                    // any topic of CloudEvents with a subject
)

// Handler keys of a FromState source.
const (
	StateChanged = "" // the state was set
	StateDeleted = "-deleted"
)

// View is the type-erased definition of a view.
type View struct {
	Name    string
	Indexes []string
	Sources []*ViewSource
	// Window and Retention bound the ids a row remembers of updates that
	// carry no sequence number (see RowEnvelope).
	Window    int
	Retention time.Duration
	// Access is the view's access rule at the gateway (undeclared: the
	// application's default).
	Access access.Rule
	// Workflow, when set, names the workflow whose instances this view
	// lists by status (package workflows): the worker's dashboard and
	// metrics read it.
	Workflow string
	// Check, when set, runs once the worker's replica of the view has
	// caught up at start-up, before the worker is ready; an error stops
	// the worker with it (a workflow refuses instances it cannot run).
	// rows is the view's views.Reader (which package core cannot name:
	// package views imports it).
	Check func(ctx context.Context, rows any) error
}

// KeepsIDs reports whether the view reads a topic, whose updates may carry
// no sequence number: it then keeps an id table.
func (v *View) KeepsIDs() bool {
	for _, s := range v.Sources {
		if s.Kind == FromTopic {
			return v.Retention > 0
		}
	}
	return false
}

// ViewSource is one source of a view with its handlers by event type.
type ViewSource struct {
	Kind     SourceKind
	Entity   string // FromState, FromEvents
	Topic    string // FromTopic
	Handlers map[string]ViewHandler
}

// Name is the source's name in sequence keys and position tokens: the
// entity's name, or the topic's.
func (s *ViewSource) Name() string {
	if s.Kind == FromTopic {
		return s.Topic
	}
	return s.Entity
}

// TopicIn is the topic s reads, among the topics t names.
func (s *ViewSource) TopicIn(t topics.Names) string {
	switch s.Kind {
	case FromState:
		return t.Table(s.Entity)
	case FromEvents:
		return t.Events(s.Entity)
	}
	return s.Topic
}

// ViewInput is what a view handler sees.
type ViewInput struct {
	// Ctx is cancelled when the processor stops or loses the partition
	// (nil: never).
	Ctx     context.Context
	Subject string
	Row     json.RawMessage // nil: no row yet
	Seq     uint64
	Data    json.RawMessage // the state (FromState) or the event's data
	Event   codec.Event     // FromEvents, FromTopic
}

// ViewDecisionKind says what a view handler decided.
type ViewDecisionKind int

// View decisions.
const (
	Keep      ViewDecisionKind = iota // leave the row as it is
	SetRow                            // replace the row
	RemoveRow                         // delete the row
)

// ViewDecision is a view handler's result.
type ViewDecision struct {
	Kind ViewDecisionKind
	Row  json.RawMessage
	Err  error // the input cannot be applied: dead-letter it
}

// ViewHandler computes a row update.
type ViewHandler func(in ViewInput) ViewDecision

// ProcessView applies one update of subject at seq (0: unknown) from src,
// of type typ, to the stored row envelope. It returns the new envelope, or
// nil when nothing changes (an update not newer than the last applied one
// from the same source and subject, so a row never goes backwards), or a
// dead letter.
func ProcessView(src *ViewSource, typ, subject string, seq uint64, stored *RowEnvelope, in ViewInput) (*RowEnvelope, *deadletter.Error) {
	key := SeqKey(src.Name(), subject)
	if seq > 0 && stored.Seqs[key] >= seq {
		return nil, nil
	}
	next := &RowEnvelope{Row: stored.Row, Seqs: make(map[string]uint64, len(stored.Seqs)+1), IDs: stored.IDs, Spilled: stored.Spilled}
	for k, v := range stored.Seqs {
		next.Seqs[k] = v
	}
	if seq > 0 {
		next.Seqs[key] = seq // advance even when ignored, so position waits complete
	}
	h, ok := src.Handlers[typ]
	if !ok {
		return next, nil // views handle the types they care about
	}
	in.Subject, in.Row, in.Seq = subject, stored.Row, seq
	d, dead := callView(h, in)
	if dead != nil {
		return nil, dead
	}
	switch d.Kind {
	case SetRow:
		next.Row = d.Row
	case RemoveRow:
		next.Row = nil
	}
	return next, nil
}

func callView(h ViewHandler, in ViewInput) (d ViewDecision, dead *deadletter.Error) {
	defer func() {
		if p := recover(); p != nil {
			dead = deadletter.New(deadletter.ErrPanic, fmt.Sprintf("view handler panicked: %v\n%s", p, debug.Stack()))
		}
	}()
	d = h(in)
	if d.Err != nil {
		return d, deadletter.New(kindOf(d.Err, deadletter.ErrInternal), d.Err.Error())
	}
	return d, nil
}

// seenID reports whether a row already applied the update with key
// (source NUL id) within v's retention: in its window, or, once spilled, in
// the view's id table.
func seenID(v *View, stored *RowEnvelope, subject, key string, now time.Time, ids IDTable) (bool, error) {
	hash := envelope.HashKey(key)
	live := func(t int64) bool { return now.UnixNano()-t <= int64(v.Retention) }
	for i := len(stored.IDs) - 1; i >= 0; i-- {
		if stored.IDs[i].Hash == hash {
			return live(stored.IDs[i].Time), nil
		}
	}
	if !stored.Spilled || ids == nil {
		return false, nil
	}
	data, err := ids.Get(IDKey(subject, hash))
	if err != nil || len(data) != 8 {
		return false, err
	}
	return live(int64(binary.LittleEndian.Uint64(data))), nil
}

// rememberID adds the update with key to next's window, spilling the
// window to the id table when it overflows, and returns the id table's
// new entries.
func rememberID(v *View, next *RowEnvelope, subject, key string, now time.Time) []Remembered {
	id := RowID{Hash: envelope.HashKey(key), Time: now.UnixNano()}
	entry := func(r RowID) Remembered {
		return Remembered{Key: IDKey(subject, r.Hash), Value: binary.LittleEndian.AppendUint64(nil, uint64(r.Time))}
	}
	var out []Remembered
	if !next.Spilled && len(next.IDs) >= v.Window {
		next.Spilled = true
		for _, r := range next.IDs {
			out = append(out, entry(r))
		}
	}
	if next.Spilled {
		out = append(out, entry(id))
	}
	ids := append(make([]RowID, 0, v.Window), next.IDs[max(0, len(next.IDs)+1-v.Window):]...)
	next.IDs = append(ids, id)
	return out
}
