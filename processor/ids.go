package processor

import (
	"sync"

	"github.com/lovoo/goka/storage"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/tablestore"
)

// idTables are the local copies of an entity's id table (see core.Process):
// goka keeps them as a joined table, restored from the topic before the
// partition processes input and fed by it since; the entity's handler reads
// them and writes its own entries to them at once, ahead of the topic, so
// the next command sees them.
//
// An entry the handler writes is marked pending (a local key, "\x01" and
// the entry's key) until goka reads it back from the topic, which proves
// the broker has it. A worker killed before then restarts with the marks
// of the entries its last writes may have lost, and the next epoch writes
// them again (core.IDTable's Pending).
type idTables struct {
	topic string // "" when the entity keeps none
	mu    *sync.Mutex
	parts map[int32]*idCopy
}

func newIDTables(topic string) idTables {
	return idTables{topic: topic, mu: new(sync.Mutex), parts: map[int32]*idCopy{}}
}

// partition is the open copy of partition p, nil when there is none.
func (t idTables) partition(p int32) *idCopy {
	if t.topic == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts[p]
}

// builder wraps a storage builder so that the copies of the id table it
// opens are registered until goka closes them.
func (t idTables) builder(b storage.Builder) storage.Builder {
	if t.topic == "" {
		return b
	}
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil || topic != t.topic {
			return st, err
		}
		s, ok := st.(*tablestore.Store)
		if !ok {
			return st, nil
		}
		c := &idCopy{Store: s}
		c.close = func() {
			t.mu.Lock()
			if t.parts[partition] == c {
				delete(t.parts, partition)
			}
			t.mu.Unlock()
		}
		t.mu.Lock()
		t.parts[partition] = c
		t.mu.Unlock()
		return c, nil
	}
}

// idCopy is a registered local copy of an id table partition: goka sees
// its storage.Storage side (Set is goka storing what it read from the
// topic), the handler Get, Remember and Pending.
type idCopy struct {
	*tablestore.Store
	close func()
}

// pendingKey marks key as written locally and not yet read from the topic.
func pendingKey(key string) string { return "\x01" + key }

// Set stores what goka read from the topic: the entry is no longer pending.
func (c *idCopy) Set(key string, value []byte) error {
	if err := c.Store.Set(key, value); err != nil {
		return err
	}
	return c.Store.Delete(pendingKey(key))
}

// Remember stores an entry the handler writes, pending until goka reads
// it from the topic.
func (c *idCopy) Remember(key string, value []byte) error {
	if err := c.Store.Set(key, value); err != nil {
		return err
	}
	return c.Store.Set(pendingKey(key), value)
}

// Pending lists subject's entries not yet read back from the topic.
func (c *idCopy) Pending(subject string) ([]core.Remembered, error) {
	it, err := c.Store.IteratorWithRange([]byte(pendingKey(subject+"\x00")), nil)
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var out []core.Remembered
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		out = append(out, core.Remembered{Key: string(it.Key()[1:]), Value: append([]byte(nil), v...)})
	}
	return out, it.Err()
}

func (c *idCopy) Close() error {
	c.close()
	return c.Store.Close()
}
