// Package viewstore is the LevelDB replica of a view's table that package
// processor and the harness keep: rows, secondary indexes and the offsets
// applied, written by one replica (Apply) and read through views.Reader.
package viewstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/views"
)

// Record is one record of the view table, applied to a replica.
type Record struct {
	ID        string
	Envelope  []byte // nil: the id was deleted (tombstone)
	Partition int32
	Offset    int64
	Time      time.Time // the record's timestamp
}

// Applied is how far a replica's partition has come.
type Applied struct {
	Next int64     // the next offset to read
	Time time.Time // timestamp of the last applied record
}

// Store is a view's LevelDB replica of its row table, with secondary
// indexes. Writes of one Apply (rows, index entries, offsets) are one
// LevelDB batch, so a restart resumes exactly where the last Apply ended.
// Safe for concurrent use: one writer (the replica), many readers. It is a
// views.Reader.
type Store struct {
	db      *leveldb.DB
	indexes map[string]bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every Apply
	subs    map[*subscription]struct{}
	closed  bool
}

var _ views.Reader = (*Store)(nil)

// Open opens (or creates) the store in dir with the given indexed fields.
func Open(dir string, indexes ...string) (*Store, error) {
	db, err := leveldb.OpenFile(dir, &opt.Options{})
	if err != nil {
		return nil, fmt.Errorf("open view store %s: %w", dir, err)
	}
	return newStore(db, indexes), nil
}

// OpenMemory opens a store held in memory, for tests and the harness.
func OpenMemory(indexes ...string) (*Store, error) {
	db, err := leveldb.Open(storage.NewMemStorage(), nil)
	if err != nil {
		return nil, fmt.Errorf("open in-memory view store: %w", err)
	}
	return newStore(db, indexes), nil
}

func newStore(db *leveldb.DB, indexes []string) *Store {
	s := &Store{db: db, indexes: map[string]bool{}, changed: make(chan struct{}), subs: map[*subscription]struct{}{}}
	for _, f := range indexes {
		s.indexes[f] = true
	}
	return s
}

// Close closes the store; subscriptions end.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	for sub := range s.subs {
		sub.stop()
	}
	close(s.changed)
	s.mu.Unlock()
	return s.db.Close()
}

// Offsets returns, per partition, how far the replica has applied.
func (s *Store) Offsets() (map[int32]Applied, error) {
	out := map[int32]Applied{}
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixOffset)), nil)
	defer it.Release()
	for it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(prefixOffset)+4 || len(v) != 16 {
			continue
		}
		p := int32(binary.BigEndian.Uint32(k[len(prefixOffset):]))
		out[p] = Applied{Next: int64(binary.BigEndian.Uint64(v)), Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))}
	}
	return out, it.Error()
}

// Apply writes records (in order) in one batch: rows, their index entries
// and the partitions' offsets.
func (s *Store) Apply(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	b := new(leveldb.Batch)
	pending := map[string][]byte{} // rows written earlier in this batch
	var changes []change
	offsets := map[int32]Record{}
	for _, u := range records {
		old, ok := pending[u.ID]
		if !ok {
			var err error
			old, err = s.db.Get(rowKey(u.ID), nil)
			if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
				return err
			}
		}
		oldRow, newRow := rowOf(old), rowOf(u.Envelope)
		for _, k := range s.indexKeys(oldRow, u.ID) {
			b.Delete(k)
		}
		for _, k := range s.indexKeys(newRow, u.ID) {
			b.Put(k, nil)
		}
		if u.Envelope == nil {
			b.Delete(rowKey(u.ID))
		} else {
			b.Put(rowKey(u.ID), u.Envelope)
		}
		pending[u.ID] = u.Envelope
		changes = append(changes, change{id: u.ID, old: oldRow, new: newRow})
		offsets[u.Partition] = u
	}
	for p, u := range offsets {
		k := make([]byte, len(prefixOffset)+4)
		copy(k, prefixOffset)
		binary.BigEndian.PutUint32(k[len(prefixOffset):], uint32(p))
		v := make([]byte, 16)
		binary.BigEndian.PutUint64(v, uint64(u.Offset+1))
		binary.BigEndian.PutUint64(v[8:], uint64(u.Time.UnixNano()))
		b.Put(k, v)
	}
	if err := s.db.Write(b, nil); err != nil {
		return err
	}
	s.notify(changes)
	return nil
}

type change struct {
	id       string
	old, new json.RawMessage
}

func (s *Store) notify(changes []change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
	for sub := range s.subs {
		sub.offer(changes)
	}
}

func rowOf(envelope []byte) json.RawMessage {
	if envelope == nil {
		return nil
	}
	var e struct{ Row json.RawMessage } // the row only: the sequences are not needed here
	if json.Unmarshal(envelope, &e) != nil {
		return nil
	}
	return e.Row
}

// indexKeys returns the index entries of row (decoded once for all indexes).
func (s *Store) indexKeys(row json.RawMessage, id string) [][]byte {
	if row == nil || len(s.indexes) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(row, &fields) != nil {
		return nil
	}
	var keys [][]byte
	for f := range s.indexes {
		if k, ok := indexKeyOf(f, fields[f], id); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// indexKey returns the index entry of one field of row.
func indexKey(field string, row json.RawMessage, id string) ([]byte, bool) {
	var fields map[string]json.RawMessage
	if row == nil || json.Unmarshal(row, &fields) != nil {
		return nil, false
	}
	return indexKeyOf(field, fields[field], id)
}

func indexKeyOf(field string, raw json.RawMessage, id string) ([]byte, bool) {
	if raw == nil {
		return nil, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	enc, err := encodeValue(v)
	if err != nil {
		return nil, false // objects and arrays are not indexed
	}
	k := append(indexPrefix(field), enc...)
	return append(k, id...), true
}

// Get returns the row with id, and whether it exists.
func (s *Store) Get(ctx context.Context, id string) (views.Row, bool, error) {
	if err := ctx.Err(); err != nil {
		return views.Row{}, false, err
	}
	env, err := s.db.Get(rowKey(id), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return views.Row{}, false, nil
	}
	if err != nil {
		return views.Row{}, false, err
	}
	row := rowOf(env)
	return views.Row{ID: id, Data: row}, row != nil, nil
}

// bounds computes the key range of q.
func (s *Store) bounds(q views.Query) (*util.Range, error) {
	if q.Index == "" {
		if q.Eq != nil || q.Gt != nil || q.Gte != nil || q.Lt != nil || q.Lte != nil || q.Prefix != nil {
			return nil, fmt.Errorf("%w: conditions need an index", views.ErrBadQuery)
		}
		return util.BytesPrefix([]byte(prefixRow)), nil
	}
	if !s.indexes[q.Index] {
		return nil, fmt.Errorf("%w: field %q is not indexed", views.ErrBadQuery, q.Index)
	}
	p := indexPrefix(q.Index)
	enc := func(v any) ([]byte, error) {
		e, err := encodeValue(v)
		return append(append([]byte(nil), p...), e...), err
	}
	r := &util.Range{Start: p, Limit: upperBound(p)}
	var err error
	switch {
	case q.Eq != nil:
		if q.Gt != nil || q.Gte != nil || q.Lt != nil || q.Lte != nil || q.Prefix != nil {
			return nil, fmt.Errorf("%w: eq excludes other conditions", views.ErrBadQuery)
		}
		var k []byte
		if k, err = enc(q.Eq); err == nil {
			r = &util.Range{Start: k, Limit: upperBound(k)}
		}
	case q.Prefix != nil:
		if q.Gt != nil || q.Gte != nil || q.Lt != nil || q.Lte != nil {
			return nil, fmt.Errorf("%w: prefix excludes range conditions", views.ErrBadQuery)
		}
		k := append(append([]byte(nil), p...), encodeStringPrefix(*q.Prefix)...)
		r = &util.Range{Start: k, Limit: upperBound(k)}
	default:
		if q.Gt != nil && q.Gte != nil || q.Lt != nil && q.Lte != nil {
			return nil, fmt.Errorf("%w: give one lower and one upper bound", views.ErrBadQuery)
		}
		if q.Gte != nil {
			r.Start, err = enc(q.Gte)
		}
		if q.Gt != nil && err == nil {
			var k []byte
			k, err = enc(q.Gt)
			r.Start = upperBound(k)
		}
		if q.Lt != nil && err == nil {
			r.Limit, err = enc(q.Lt)
		}
		if q.Lte != nil && err == nil {
			var k []byte
			k, err = enc(q.Lte)
			r.Limit = upperBound(k)
		}
	}
	return r, err
}

// checkEvery is how many keys a scan visits between two looks at its
// context.
const checkEvery = 256

// Query returns one page of rows matching q. It stops with ctx.Err() when
// ctx ends before the page is complete.
func (s *Store) Query(ctx context.Context, q views.Query) (views.Page, error) {
	if err := ctx.Err(); err != nil {
		return views.Page{}, err
	}
	r, err := s.bounds(q)
	if err != nil {
		return views.Page{}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	if limit > views.MaxLimit {
		limit = views.MaxLimit
	}
	if q.Page != "" {
		after, err := base64.RawURLEncoding.DecodeString(q.Page)
		if err != nil || bytes.Compare(after, r.Start) < 0 || (r.Limit != nil && bytes.Compare(after, r.Limit) >= 0) {
			return views.Page{}, fmt.Errorf("%w: page token does not belong to this query", views.ErrBadQuery)
		}
		if q.Desc {
			r.Limit = after
		} else {
			r.Start = append(after, 0x00) // the smallest key after it
		}
	}
	snap, err := s.db.GetSnapshot()
	if err != nil {
		return views.Page{}, err
	}
	defer snap.Release()
	it := snap.NewIterator(r, nil)
	defer it.Release()
	var page views.Page
	var last []byte
	n := 0
	for ok := first(it, q.Desc); ok; ok = step(it, q.Desc) {
		if n++; n%checkEvery == 0 && ctx.Err() != nil {
			return views.Page{}, ctx.Err()
		}
		if len(page.Rows) == limit {
			page.Next = base64.RawURLEncoding.EncodeToString(last)
			break
		}
		id, row, err := s.resolve(snap, q.Index, it.Key(), it.Value())
		if err != nil {
			return views.Page{}, err
		}
		last = append(last[:0], it.Key()...)
		if row != nil {
			page.Rows = append(page.Rows, views.Row{ID: id, Data: row})
		}
	}
	return page, it.Error()
}

// Count returns how many rows match q (Limit and Page are ignored). It
// stops with ctx.Err() when ctx ends before it is done.
func (s *Store) Count(ctx context.Context, q views.Query) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r, err := s.bounds(q)
	if err != nil {
		return 0, err
	}
	it := s.db.NewIterator(r, nil)
	defer it.Release()
	n, visited := 0, 0
	for it.Next() {
		if visited++; visited%checkEvery == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if q.Index != "" || rowOf(it.Value()) != nil {
			n++
		}
	}
	return n, it.Error()
}

func first(it iterator.Iterator, desc bool) bool {
	if desc {
		return it.Last()
	}
	return it.First()
}

func step(it iterator.Iterator, desc bool) bool {
	if desc {
		return it.Prev()
	}
	return it.Next()
}

// resolve turns an iterated key into its row id and row.
func (s *Store) resolve(snap *leveldb.Snapshot, index string, key, value []byte) (string, json.RawMessage, error) {
	if index == "" {
		return string(key[len(prefixRow):]), rowOf(value), nil
	}
	id, err := idOfIndexKey(key, len(indexPrefix(index)))
	if err != nil {
		return "", nil, err
	}
	env, err := snap.Get(rowKey(id), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return id, nil, nil
	}
	return id, rowOf(env), err
}

// idOfIndexKey skips the encoded value (self-delimiting) after the prefix.
func idOfIndexKey(key []byte, at int) (string, error) {
	if at >= len(key) {
		return "", errors.New("index key without value")
	}
	switch key[at] {
	case tagNull, tagFalse, tagTrue:
		return string(key[at+1:]), nil
	case tagNumber:
		return string(key[at+9:]), nil
	case tagString:
		for i := at + 1; i+1 < len(key); i++ {
			if key[i] == 0x00 {
				if key[i+1] == 0x01 {
					return string(key[i+2:]), nil
				}
				i++ // 0x00 0xff: an escaped zero byte
			}
		}
	}
	return "", fmt.Errorf("malformed index key %q", key)
}

// WaitFor waits until the store holds the row of the position's subject
// with the position's entity at its sequence or later, or ctx ends
// (views.ErrStale). It holds for views whose rows are keyed by the source
// subject (the default).
func (s *Store) WaitFor(ctx context.Context, token string) error {
	pos, err := topics.ParsePosition(token)
	if err != nil {
		return fmt.Errorf("%w: %w", views.ErrBadQuery, err)
	}
	key := core.SeqKey(pos.Entity, pos.Subject)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return views.ErrClosed
		}
		changed := s.changed
		s.mu.Unlock()
		raw, err := s.db.Get(rowKey(pos.Subject), nil)
		if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
			return err
		}
		var env core.RowEnvelope
		if raw != nil && json.Unmarshal(raw, &env) == nil && env.Seqs[key] >= pos.Seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %s %s at sequence %d: %w", views.ErrStale, pos.Entity, pos.Subject, pos.Seq, ctx.Err())
		}
	}
}
