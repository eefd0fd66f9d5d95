// Package tablestore is the local copy of goka's table partitions that
// Partita's processors use: goleveldb in goka's layout, with writes written
// in batches and reads cached (see Store). It implements goka's
// storage.Storage; the runtime and the benchmarks' hand-written goka
// processor use it through Builder.
package tablestore

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// offsetKey is where goka's LevelDB storage keeps the table offset; the
// same key and format, so a data directory written by either storage is
// read by the other.
const offsetKey = "__offset"

// Flush limits of Store: entries and bytes buffered before they
// are written to LevelDB in one batch.
const (
	batchEntries = 1024
	batchBytes   = 1 << 20
)

// DefaultCache is the default read cache of a table partition, in bytes.
const DefaultCache = 4 << 20

// Store is the local copy of a goka table partition: goleveldb
// like goka's own storage, with writes buffered and reads cached.
//
// Writes reach LevelDB in batches. goka writes twice per record (the value,
// then the table offset once the table topic acknowledged it) and each
// LevelDB put is a journal write system call: a fifth of the entity path's
// CPU in issue 7's profile. Losing the buffer (the worker is killed) loses
// nothing: the values and the offset are written together, so the store is
// left as it was at an earlier offset, and goka recovers the rest from the
// table topic before it processes input again. The store is never ahead of
// its offset by more than goka's own storage is.
//
// Reads are served from the values written or read last, up to a byte
// budget (a LevelDB get walks the memtable's skip list and the tables of
// each level: a tenth of the entity path's CPU). A full cache drops entries
// at random (Go's map order), which keeps a useful share of a working set
// larger than the budget, where least-recently-used would keep none of a
// cyclic one. Values are shared, never copied: nobody changes them (goka's
// codec hands them to Partita's envelope decoding, which aliases and does
// not write).
type Store struct {
	db *leveldb.DB

	mu        sync.Mutex
	pending   map[string][]byte // not yet in LevelDB; nil: deleted
	size      int               // bytes of pending
	offset    string            // pending table offset, "" when none
	cache     map[string][]byte // in LevelDB; nil: not there
	cached    int               // bytes of cache
	cacheSize int               // budget of cache (<= 0: no cache)
	flushes   int               // batches written
}

// Builder opens a Store per table partition under dir, named like goka's
// default builder names them, with a read cache of cacheSize bytes (<= 0:
// none).
func Builder(dir string, cacheSize int) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		// A bloom filter answers most gets of absent keys (a new subject, a
		// new command id) without reading a table block.
		db, err := leveldb.OpenFile(filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition)), &opt.Options{Filter: filter.NewBloomFilter(10)})
		if err != nil {
			return nil, fmt.Errorf("open local table %s/%d: %w", topic, partition, err)
		}
		return &Store{db: db, pending: map[string][]byte{}, cache: map[string][]byte{}, cacheSize: cacheSize}, nil
	}
}

func (s *Store) Open() error { return nil }

func (s *Store) Close() error {
	s.mu.Lock()
	err := s.flush()
	s.mu.Unlock()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

func (s *Store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	v, ok := s.pending[key]
	if !ok {
		v, ok = s.cache[key]
	}
	flushes := s.flushes
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := s.db.Get([]byte(key), nil)
	if err != nil && err != leveldb.ErrNotFound {
		return nil, fmt.Errorf("local table: get %q: %w", key, err)
	}
	s.mu.Lock()
	if s.flushes == flushes { // else the value read may be older than one written since
		s.remember(key, v)
	}
	s.mu.Unlock()
	return v, nil
}

// remember caches what LevelDB holds for key (nil: nothing), dropping
// entries at random to stay within the budget; s.mu is held.
func (s *Store) remember(key string, v []byte) {
	if old, ok := s.cache[key]; ok {
		delete(s.cache, key)
		s.cached -= len(key) + len(old)
	}
	need := len(key) + len(v)
	if need > s.cacheSize {
		return
	}
	if s.cached+need > s.cacheSize {
		for k, old := range s.cache {
			delete(s.cache, k)
			s.cached -= len(k) + len(old)
			if s.cached+need <= s.cacheSize {
				break
			}
		}
	}
	s.cache[key] = v
	s.cached += need
}

// Set buffers the write; value is not copied (goka hands over a freshly
// encoded value and does not change it).
func (s *Store) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return s.put(key, value)
}

func (s *Store) Delete(key string) error { return s.put(key, nil) }

func (s *Store) put(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[key] = value
	s.size += len(key) + len(value)
	if len(s.pending) >= batchEntries || s.size >= batchBytes {
		return s.flush()
	}
	return nil
}

func (s *Store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	pending := s.offset
	s.mu.Unlock()
	data := []byte(pending)
	if pending == "" {
		var err error
		data, err = s.db.Get([]byte(offsetKey), nil)
		if err == leveldb.ErrNotFound {
			return def, nil
		}
		if err != nil {
			return 0, fmt.Errorf("local table: get offset: %w", err)
		}
	}
	o, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("local table: offset %q: %w", data, err)
	}
	return o, nil
}

func (s *Store) SetOffset(offset int64) error {
	s.mu.Lock()
	s.offset = strconv.FormatInt(offset, 10)
	s.mu.Unlock()
	return nil
}

// MarkRecovered writes what recovery buffered.
func (s *Store) MarkRecovered() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flush()
}

func (s *Store) Iterator() (storage.Iterator, error) {
	return s.iterator(nil)
}

func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	r := util.BytesPrefix(start)
	if len(limit) > 0 {
		r = &util.Range{Start: start, Limit: limit}
	}
	return s.iterator(r)
}

// iterator writes the buffer, then iterates LevelDB.
func (s *Store) iterator(r *util.Range) (storage.Iterator, error) {
	s.mu.Lock()
	err := s.flush()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &iterator{s.db.NewIterator(r, nil)}, nil
}

// flush writes the buffered values and offset in one batch; s.mu is held.
func (s *Store) flush() error {
	if len(s.pending) == 0 && s.offset == "" {
		return nil
	}
	b := new(leveldb.Batch)
	for k, v := range s.pending {
		if v == nil {
			b.Delete([]byte(k))
		} else {
			b.Put([]byte(k), v)
		}
	}
	if s.offset != "" {
		b.Put([]byte(offsetKey), []byte(s.offset))
	}
	if err := s.db.Write(b, nil); err != nil {
		return fmt.Errorf("local table: write %d values: %w", len(s.pending), err)
	}
	for k, v := range s.pending {
		s.remember(k, v)
	}
	s.flushes++
	clear(s.pending)
	s.size, s.offset = 0, ""
	return nil
}

// iterator skips the offset key, as goka's does.
type iterator struct{ it ldbiter.Iterator }

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}

func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }

func (i *iterator) Seek(key []byte) bool {
	if !i.it.Seek(key) {
		return false
	}
	return string(i.it.Key()) != offsetKey || i.Next()
}
