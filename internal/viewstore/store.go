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
	"slices"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
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
// Safe for concurrent use: one writer (the replica; Apply calls are
// serialized), many readers. It is a views.Reader.
type Store struct {
	db     *leveldb.DB
	fields []string // the indexed fields, sorted

	// applying serializes Apply and holds what it reuses from one call to
	// the next (a batch of 1,000 rows is a few hundred KiB).
	applying struct {
		sync.Mutex
		batch   leveldb.Batch
		rows    map[string][]byte // id: the envelope stored, then written
		ids     []string
		changes []change
		key     []byte // LevelDB copies keys: one buffer serves every row
		was, is indexEntries
	}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every Apply
	subs    map[*subscription]struct{}
	closed  bool
}

var _ views.Reader = (*Store)(nil)

// options are LevelDB's defaults but for two, chosen for a replica:
//   - a 16 MiB write buffer (the default is 4 MiB). Every batch writes
//     index entries spread over the whole index, so each memtable flushed
//     to level 0 overlaps all of level 1, and compacting it rewrites most
//     of level 1: fewer, larger flushes rewrite it fewer times. Applying a
//     million rows (BenchmarkViewStore), level-1 compactions wrote 207 MB
//     in 4.9 s with 4 MiB, and the writes were held back 312 times (1 s)
//     for level 0 to drain; with 16 MiB, 45 MB in 0.8 s and never held
//     back. It costs up to twice the buffer in memory while the replica
//     writes (the memtable being filled and the one being flushed) and a
//     longer journal to replay at open.
//   - bloom filters (10 bits a key, about 1% false positives): the store's
//     reads are mostly point reads by row key (Get, the rows of an index
//     query, the rows Apply replaces), which a filter spares the tables
//     that do not hold the key. Tables written before without filters are
//     read as before.
func options() *opt.Options {
	return &opt.Options{
		WriteBuffer: 16 * opt.MiB,
		Filter:      filter.NewBloomFilter(10),
	}
}

// Open opens (or creates) the store in dir with the given indexed fields.
func Open(dir string, indexes ...string) (*Store, error) {
	db, err := leveldb.OpenFile(dir, options())
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
	fields := slices.Compact(slices.Sorted(slices.Values(indexes)))
	return &Store{db: db, fields: fields, changed: make(chan struct{}), subs: map[*subscription]struct{}{}}
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
	a := &s.applying
	a.Lock()
	defer a.Unlock()
	defer func() { // the next Apply starts afresh, and envelopes are not kept alive
		clear(a.rows)
		clear(a.ids)
		clear(a.changes)
	}()
	if err := s.readRows(records); err != nil {
		return err
	}
	b := &a.batch
	b.Reset()
	changes := a.changes[:0]
	offsets := map[int32]Record{}
	was, is := &a.was, &a.is
	for _, u := range records {
		old := a.rows[u.ID]
		oldRow := was.fromEnvelope(s.fields, old, u.ID)
		newRow := is.fromEnvelope(s.fields, u.Envelope, u.ID)
		for i := range was.len() {
			if k := was.key(i); !is.has(k) { // an entry put again below needs no delete
				b.Delete(k)
			}
		}
		for i := range is.len() {
			b.Put(is.key(i), nil)
		}
		a.key = appendRowKey(a.key[:0], u.ID)
		if u.Envelope == nil {
			b.Delete(a.key)
		} else {
			b.Put(a.key, u.Envelope)
		}
		a.rows[u.ID] = u.Envelope
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
		return fmt.Errorf("view store: write: %w", err)
	}
	a.changes = changes
	s.notify(changes)
	return nil
}

// readRows sets s.applying.rows to the stored envelope (nil: none) of each
// id of records, before they are applied: the old rows whose index entries
// Apply replaces.
//
// It reads them in id order with one iterator while that is cheap: a seek
// lands on the first stored row at or after an id, which answers for every
// id before that row at once. Rows of new ids, the bulk of a replica's
// first catch-up, are mostly answered so, where a Get each would look in
// both memtables every time. When seeks do not pay (updates of ids spread
// over the store), it reads the rest with Get, which the tables' bloom
// filters make cheaper than a seek.
func (s *Store) readRows(records []Record) error {
	a := &s.applying
	if a.rows == nil {
		a.rows = map[string][]byte{}
	}
	ids := a.ids[:0]
	for _, u := range records {
		if _, ok := a.rows[u.ID]; !ok {
			a.rows[u.ID] = nil
			ids = append(ids, u.ID)
		}
	}
	slices.Sort(ids)
	a.ids = ids
	// Apply is the only writer: nothing changes the rows while they are read.
	snap, err := s.db.GetSnapshot()
	if err != nil {
		return fmt.Errorf("view store: read rows: %w", err)
	}
	defer snap.Release()
	first, last := rowKey(ids[0]), rowKey(ids[len(ids)-1])
	it := snap.NewIterator(&util.Range{Start: first, Limit: append(last, 0x00)}, nil)
	defer it.Release()
	// placed: the iterator is at the first stored row after the previous
	// id (not valid: there is none).
	placed, valid := false, false
	seeks, answered := 0, 0 // seeks made; ids answered by the iterator without one
	for _, id := range ids {
		key := appendRowKey(a.key[:0], id)
		a.key = key
		if placed {
			c := 1
			if valid {
				c = bytes.Compare(it.Key(), key)
			}
			if c >= 0 {
				if c == 0 {
					a.rows[id] = bytes.Clone(it.Value())
					valid = it.Next()
				}
				answered++
				continue
			}
		}
		if seeks <= 4+answered/2 { // a seek costs a few Gets
			seeks++
			valid, placed = it.Seek(key), true
			if valid && bytes.Equal(it.Key(), key) {
				a.rows[id] = bytes.Clone(it.Value())
				valid = it.Next()
			}
			continue
		}
		placed = false
		v, err := snap.Get(key, nil)
		if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
			return fmt.Errorf("view store: read row %q: %w", id, err)
		}
		a.rows[id] = v
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("view store: read rows: %w", err)
	}
	return nil
}

// change is one applied record, for subscriptions. Its rows share the
// memory of the envelopes they come from.
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
	if len(s.subs) == 0 {
		return
	}
	for i, c := range changes {
		if c.new != nil { // rows sent outlive Apply; the caller's envelopes may not
			changes[i].new = append(json.RawMessage(nil), c.new...)
		}
	}
	for sub := range s.subs {
		sub.offer(changes)
	}
}

// indexEntries are the index keys of one row, in a buffer that serves row
// after row.
type indexEntries struct {
	buf    []byte
	ends   []int    // where each key ends in buf
	values [][]byte // the indexed fields' raw values
}

// fromEnvelope sets e to the index entries of the row of envelope, and
// returns that row (see readEnvelope).
func (e *indexEntries) fromEnvelope(fields []string, envelope []byte, id string) []byte {
	row := readEnvelope(envelope, fields, e.valuesOf(fields))
	e.build(fields, id)
	return row
}

// fromRow sets e to the index entries of row.
func (e *indexEntries) fromRow(fields []string, row []byte, id string) {
	fieldValues(row, fields, e.valuesOf(fields))
	e.build(fields, id)
}

func (e *indexEntries) valuesOf(fields []string) [][]byte {
	if len(e.values) != len(fields) {
		e.values = make([][]byte, len(fields))
	}
	return e.values
}

// build sets e to the index keys of the fields' values in e.values, one per
// field with a scalar value.
func (e *indexEntries) build(fields []string, id string) {
	e.buf, e.ends = e.buf[:0], e.ends[:0]
	for i, f := range fields {
		if e.values[i] == nil {
			continue
		}
		start := len(e.buf)
		k, ok := appendFieldValue(appendIndexPrefix(e.buf, f), e.values[i])
		if !ok {
			e.buf = e.buf[:start]
			continue
		}
		e.buf = append(k, id...)
		e.ends = append(e.ends, len(e.buf))
	}
}

func (e *indexEntries) len() int { return len(e.ends) }

// key returns the i-th key; it is valid until the next build.
func (e *indexEntries) key(i int) []byte {
	start := 0
	if i > 0 {
		start = e.ends[i-1]
	}
	return e.buf[start:e.ends[i]]
}

func (e *indexEntries) has(k []byte) bool {
	for i := range e.len() {
		if bytes.Equal(e.key(i), k) {
			return true
		}
	}
	return false
}

// indexKey returns the index entry of one field of row.
func indexKey(field string, row json.RawMessage, id string) ([]byte, bool) {
	var e indexEntries
	e.fromRow([]string{field}, row, id)
	if e.len() == 0 {
		return nil, false
	}
	return e.key(0), true
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
	row := envelopeRow(env) // env is this call's own: the row can share it
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
	if !slices.Contains(s.fields, q.Index) {
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
		if q.Index != "" || envelopeRow(it.Value()) != nil {
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
		return string(key[len(prefixRow):]), rowOf(value), nil // the iterator's memory: copied
	}
	id, err := idOfIndexKey(key, len(indexPrefix(index)))
	if err != nil {
		return "", nil, err
	}
	env, err := snap.Get(rowKey(id), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return id, nil, nil
	}
	return id, envelopeRow(env), err
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
