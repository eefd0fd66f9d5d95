package tablestore

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
)

func openBatched(t *testing.T, dir string) *Store {
	t.Helper()
	st, err := Builder(dir, 1<<10)("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Store)
}

func TestStoreReadsItsOwnWrites(t *testing.T) {
	st := openBatched(t, t.TempDir())
	defer st.Close()
	if v, err := st.Get("a"); v != nil || err != nil {
		t.Fatalf("Get of a missing key = %q, %v", v, err)
	}
	if o, _ := st.GetOffset(-2); o != -2 {
		t.Fatalf("offset of a new store = %d, want the default", o)
	}
	st.Set("a", []byte("1"))
	st.Set("b", []byte("2"))
	st.Delete("b")
	st.SetOffset(41)
	if v, _ := st.Get("a"); string(v) != "1" {
		t.Fatalf("Get(a) = %q before a flush", v)
	}
	if ok, _ := st.Has("b"); ok {
		t.Fatal("a deleted key is still there")
	}
	if o, _ := st.GetOffset(-2); o != 41 {
		t.Fatalf("offset = %d, want 41", o)
	}
	it, err := st.Iterator() // writes the buffer first
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
	}
	it.Release()
	if fmt.Sprint(keys) != "[a]" {
		t.Fatalf("iterated %v, want [a] (no offset key, no deleted key)", keys)
	}
}

// A killed worker loses the buffer: the store is then as it was at the
// last batch, values and offset together, and goka recovers the rest from
// the table topic.
func TestStoreLosesOnlyWholeBatches(t *testing.T) {
	dir := t.TempDir()
	st := openBatched(t, dir)
	for i := range batchEntries {
		st.Set(fmt.Sprint("k", i), []byte("v"))
		st.SetOffset(int64(i))
	}
	// The last Set wrote batchEntries values with the offset before it (goka
	// sets a value, then its offset once the table topic has it); the rest
	// is buffered.
	st.Set("late", []byte("v"))
	st.SetOffset(batchEntries)
	st.db.Close() // killed: no flush

	st = openBatched(t, dir)
	defer st.Close()
	if o, _ := st.GetOffset(-2); o != batchEntries-2 {
		t.Fatalf("offset after a kill = %d, want %d", o, batchEntries-2)
	}
	if v, _ := st.Get(fmt.Sprint("k", batchEntries-1)); string(v) != "v" {
		t.Fatal("a value of the written batch is missing")
	}
	if v, _ := st.Get("late"); v != nil {
		t.Fatal("a buffered value survived without its offset")
	}
}

// The data directory stays readable by goka's own storage and back.
func TestStoreKeepsGokasFormat(t *testing.T) {
	dir := t.TempDir()
	st := openBatched(t, dir)
	st.Set("a", []byte("1"))
	st.SetOffset(7)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := leveldb.OpenFile(filepath.Join(dir, "table.3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gst, _ := storage.New(db)
	if o, _ := gst.GetOffset(-2); o != 7 {
		t.Fatalf("goka's storage reads offset %d, want 7", o)
	}
	if v, _ := gst.Get("a"); string(v) != "1" {
		t.Fatalf("goka's storage reads %q, want 1", v)
	}
	gst.SetOffset(9)
	gst.MarkRecovered()
	db.Close()
	st = openBatched(t, dir)
	defer st.Close()
	if o, _ := st.GetOffset(-2); o != 9 {
		t.Fatalf("offset written by goka read as %d, want 9", o)
	}
}

// The read cache answers like LevelDB and stays within its budget.
func TestStoreCacheStaysWithinBudget(t *testing.T) {
	st := openBatched(t, t.TempDir()) // a 1 KiB cache
	defer st.Close()
	value := func(i int) string { return fmt.Sprintf("%0100d", i) }
	for i := range 3 * batchEntries {
		st.Set(fmt.Sprint("k", i), []byte(value(i)))
	}
	st.Delete("k5")
	for round := range 2 {
		for i := range 3 * batchEntries {
			v, err := st.Get(fmt.Sprint("k", i))
			if want := value(i); i == 5 && v != nil || i != 5 && string(v) != want || err != nil {
				t.Fatalf("round %d: Get(k%d) = %.20q, %v", round, i, v, err)
			}
		}
		if st.cached > 1<<10 || len(st.cache) == 0 {
			t.Fatalf("cache holds %d bytes in %d entries, budget 1024", st.cached, len(st.cache))
		}
	}
}
