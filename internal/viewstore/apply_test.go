package viewstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestApplyKeepsRowsAndIndexesLikeAModel applies random batches (new ids
// between stored ones, updates that change indexed fields or not, ids
// repeated within a batch, tombstones, values that are not indexed) and
// compares everything stored, key by key, with what the rows call for.
// Batches of new ids are read mostly by the iterator, batches of updates
// spread over the store mostly by Get (see readRows): both are covered.
func TestApplyKeepsRowsAndIndexesLikeAModel(t *testing.T) {
	s, err := Open(t.TempDir(), "status", "email", "n")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	model := map[string][]byte{}
	offsets := map[int32]int64{}
	envelope := func() []byte {
		if r.IntN(8) == 0 {
			return nil
		}
		email := fmt.Sprintf("%q", fmt.Sprintf("u%d@x", r.IntN(50)))
		switch r.IntN(10) {
		case 0:
			email = `{"not":"indexed"}`
		case 1:
			email = "7"
		}
		status := []string{`"open"`, `"paid"`, `"shipped"`, `null`, `true`}[r.IntN(5)]
		row := fmt.Sprintf(`{"email":%s,"status":%s,"n":%d}`, email, status, r.IntN(5))
		if r.IntN(10) == 0 {
			row = fmt.Sprintf(`{"status":%s}`, status)
		}
		return fmt.Appendf(nil, `{"row":%s,"seqs":{"order\u0000x":%d}}`, row, r.IntN(100))
	}
	apply := func(ids []int) {
		t.Helper()
		var batch []Record
		for _, i := range ids {
			id := fmt.Sprintf("k%05d", i)
			p := int32(r.IntN(3))
			env := envelope()
			batch = append(batch, Record{ID: id, Envelope: env, Partition: p, Offset: offsets[p]})
			offsets[p]++
			if env == nil {
				delete(model, id)
			} else {
				model[id] = env
			}
		}
		if err := s.Apply(batch); err != nil {
			t.Fatal(err)
		}
	}
	check := func(round int) {
		t.Helper()
		var wantRows, wantIndex []string
		for id, env := range model {
			wantRows = append(wantRows, prefixRow+id+"="+string(env))
			for _, k := range jsonIndexKeys(s.fields, jsonRow(env), id) {
				wantIndex = append(wantIndex, string(k))
			}
		}
		var gotRows, gotIndex []string
		it := s.db.NewIterator(nil, nil)
		defer it.Release()
		for it.Next() {
			switch k := string(it.Key()); {
			case bytes.HasPrefix(it.Key(), []byte(prefixRow)):
				gotRows = append(gotRows, k+"="+string(it.Value()))
			case bytes.HasPrefix(it.Key(), []byte(prefixIndex)):
				gotIndex = append(gotIndex, k)
			}
		}
		slices.Sort(wantRows)
		slices.Sort(wantIndex)
		if !slices.Equal(gotRows, wantRows) {
			t.Fatalf("round %d: %d rows stored, want %d", round, len(gotRows), len(wantRows))
		}
		if !slices.Equal(gotIndex, wantIndex) {
			t.Fatalf("round %d: index entries %q, want %q", round, gotIndex, wantIndex)
		}
		applied, err := s.Offsets()
		if err != nil {
			t.Fatal(err)
		}
		for p, next := range offsets {
			if applied[p].Next != next {
				t.Fatalf("round %d: partition %d at %d, want %d", round, p, applied[p].Next, next)
			}
		}
	}

	var even []int
	for i := 0; i < 4000; i += 2 {
		even = append(even, i)
	}
	apply(even)
	check(0)
	for round := 1; round <= 30; round++ {
		var ids []int
		switch round % 3 {
		case 0: // new ids, between stored ones
			start := r.IntN(3800)
			for i := start + 1; i < start+200; i += 2 {
				ids = append(ids, i)
			}
		case 1: // updates spread over the store
			for range 200 {
				ids = append(ids, 2*r.IntN(2000))
			}
		case 2: // anything, ids repeated in the batch
			for range 300 {
				ids = append(ids, r.IntN(60))
			}
		}
		apply(ids)
		check(round)
	}
}

// TestReadRowsReadsWhatIsStored checks the old rows Apply replaces, for
// ids before, between, on and after the stored ones, whichever way
// readRows reads them.
func TestReadRowsReadsWhatIsStored(t *testing.T) {
	s, err := OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var batch []Record
	for i := 10; i < 1000; i += 10 {
		batch = append(batch, Record{ID: fmt.Sprintf("k%04d", i), Envelope: fmt.Appendf(nil, `{"row":{"i":%d}}`, i)})
	}
	if err := s.Apply(batch); err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, // before every row
		{1000, 1001, 1002},             // after every row
		{10, 11, 20, 21, 22, 30, 990},  // on and between
		{990, 10, 500, 20, 505, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190}, // next rows
		{5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 999},
		// Every other row, and ids between: a seek each, which does not
		// pay, so the rest is read with Get.
		{10, 30, 50, 70, 90, 110, 130, 150, 170, 190, 210, 230, 250, 255, 270, 290, 310, 311, 330, 999, 1005},
	} {
		var records []Record
		for _, i := range ids {
			records = append(records, Record{ID: fmt.Sprintf("k%04d", i)})
		}
		s.applying.Lock()
		if err := s.readRows(records); err != nil {
			t.Fatal(err)
		}
		for _, i := range ids {
			id := fmt.Sprintf("k%04d", i)
			var want []byte
			if i%10 == 0 && i >= 10 && i < 1000 {
				want = fmt.Appendf(nil, `{"row":{"i":%d}}`, i)
			}
			if got := s.applying.rows[id]; !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("%s: read %q, want %q", id, got, want)
			}
		}
		clear(s.applying.rows)
		s.applying.Unlock()
	}
}
