package viewstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/internal/viewstore"
	"github.com/partita-dev/partita/views"
)

type person struct {
	Name  string  `json:"name"`
	Age   float64 `json:"age"`
	Email string  `json:"email"`
	VIP   bool    `json:"vip"`
}

func envelope(t testing.TB, row any, seqs map[string]uint64) []byte {
	data, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(core.RowEnvelope{Row: data, Seqs: seqs})
	return env
}

func open(t testing.TB, dir string) *viewstore.Store {
	t.Helper()
	s, err := viewstore.Open(dir, "age", "email", "vip", "name")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// people stores n people with ids p0000.. and returns them by id.
func people(t testing.TB, s *viewstore.Store, n int) map[string]person {
	r := rand.New(rand.NewPCG(7, 8))
	all := map[string]person{}
	var batch []viewstore.Record
	for i := range n {
		id := fmt.Sprintf("p%04d", i)
		p := person{Name: fmt.Sprintf("n%d", r.IntN(50)), Age: float64(r.IntN(90) - 5), Email: fmt.Sprintf("%s@%s.com", id, []string{"a", "b", "c"}[i%3]), VIP: i%4 == 0}
		all[id] = p
		batch = append(batch, viewstore.Record{ID: id, Envelope: envelope(t, p, nil), Partition: int32(i % 4), Offset: int64(i / 4)})
	}
	if err := s.Apply(batch); err != nil {
		t.Fatal(err)
	}
	return all
}

func ids(rows []views.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// want computes the expected ids by brute force, in the expected order.
func want(all map[string]person, keep func(person) bool, less func(a, b person) bool, desc bool) []string {
	var out []string
	for id, p := range all {
		if keep(p) {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := all[out[i]], all[out[j]]
		if desc {
			a, b = b, a
			if less(a, b) || less(b, a) {
				return less(a, b)
			}
			return out[i] > out[j]
		}
		if less(a, b) || less(b, a) {
			return less(a, b)
		}
		return out[i] < out[j]
	})
	return out
}

func collect(t *testing.T, s *viewstore.Store, q views.Query) []string {
	t.Helper()
	var out []string
	for {
		page, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids(page.Rows)...)
		if page.Next == "" {
			return out
		}
		q.Page = page.Next
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQueriesReturnExactlyTheMatchingRows(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	all := people(t, s, 1000)
	byAge := func(a, b person) bool { return a.Age < b.Age }
	byEmail := func(a, b person) bool { return a.Email < b.Email }
	prefix := "p01"
	for name, tc := range map[string]struct {
		q    views.Query
		want []string
	}{
		"eq":          {views.Query{Index: "age", Eq: 30.0, Limit: 7}, want(all, func(p person) bool { return p.Age == 30 }, byAge, false)},
		"eq bool":     {views.Query{Index: "vip", Eq: true, Limit: 33}, want(all, func(p person) bool { return p.VIP }, func(a, b person) bool { return false }, false)},
		"gt":          {views.Query{Index: "age", Gt: 60.0, Limit: 50}, want(all, func(p person) bool { return p.Age > 60 }, byAge, false)},
		"gte lt":      {views.Query{Index: "age", Gte: -2.0, Lt: 10.0}, want(all, func(p person) bool { return p.Age >= -2 && p.Age < 10 }, byAge, false)},
		"lte desc":    {views.Query{Index: "age", Lte: 5.0, Desc: true, Limit: 9}, want(all, func(p person) bool { return p.Age <= 5 }, byAge, true)},
		"prefix":      {views.Query{Index: "email", Prefix: &prefix, Limit: 13}, want(all, func(p person) bool { return p.Email[:3] == prefix }, byEmail, false)},
		"order by":    {views.Query{Index: "email", Desc: true, Limit: 101}, want(all, func(person) bool { return true }, byEmail, true)},
		"all by id":   {views.Query{Limit: 999}, want(all, func(person) bool { return true }, func(a, b person) bool { return false }, false)},
		"string gte":  {views.Query{Index: "name", Gte: "n40"}, want(all, func(p person) bool { return p.Name >= "n40" }, func(a, b person) bool { return a.Name < b.Name }, false)},
		"empty range": {views.Query{Index: "age", Gt: 1000.0}, nil},
	} {
		got := collect(t, s, tc.q)
		if !equal(got, tc.want) {
			t.Errorf("%s: got %d rows %v..., want %d %v...", name, len(got), head(got), len(tc.want), head(tc.want))
		}
		n, err := s.Count(context.Background(), tc.q)
		if err != nil || n != len(tc.want) {
			t.Errorf("%s: count %d %v, want %d", name, n, err, len(tc.want))
		}
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func TestPagingVisitsEachRowOnce(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	people(t, s, 1000)
	seen := map[string]int{}
	pages := 0
	for _, q := range []views.Query{{Index: "age", Limit: 37}, {Limit: 37, Desc: true}} {
		for _, id := range collect(t, s, q) {
			seen[id]++
		}
		pages++
	}
	for id, n := range seen {
		if n != pages {
			t.Fatalf("%s visited %d times over %d paged walks", id, n, pages)
		}
	}
	if len(seen) != 1000 {
		t.Fatalf("visited %d rows, want 1000", len(seen))
	}
}

func TestChangingAndDeletingRowsUpdatesTheIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	if err := s.Apply([]viewstore.Record{
		{ID: "a", Envelope: envelope(t, person{Email: "a@x", Age: 1}, nil)},
		{ID: "a", Envelope: envelope(t, person{Email: "a@y", Age: 2}, nil)}, // same batch
		{ID: "b", Envelope: envelope(t, person{Email: "b@x", Age: 3}, nil)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply([]viewstore.Record{{ID: "b", Envelope: nil}}); err != nil {
		t.Fatal(err)
	}
	for q, wantN := range map[string]int{"a@x": 0, "a@y": 1, "b@x": 0} {
		if n, _ := s.Count(context.Background(), views.Query{Index: "email", Eq: q}); n != wantN {
			t.Errorf("email=%s: %d rows, want %d", q, n, wantN)
		}
	}
	if _, ok, _ := s.Get(context.Background(), "b"); ok {
		t.Error("deleted row b still there")
	}
}

func TestBadQueries(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for _, q := range []views.Query{
		{Index: "nope", Eq: 1.0},
		{Eq: 1.0},
		{Index: "age", Eq: 1.0, Gt: 0.0},
		{Index: "age", Gt: 0.0, Gte: 0.0},
		{Index: "age", Eq: map[string]any{}},
		{Index: "age", Page: "garbage!"},
	} {
		if _, err := s.Query(context.Background(), q); !errors.Is(err, views.ErrBadQuery) {
			t.Errorf("%+v: want ErrBadQuery, got %v", q, err)
		}
	}
}

func TestOffsetsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	people(t, s, 100)
	s.Close()
	s = open(t, dir)
	defer s.Close()
	offs, err := s.Offsets()
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(4) {
		if offs[p].Next != 25 {
			t.Errorf("partition %d resumes at %d, want 25", p, offs[p].Next)
		}
	}
	if n, _ := s.Count(context.Background(), views.Query{}); n != 100 {
		t.Errorf("%d rows after restart", n)
	}
}

func TestSubscribeSendsResultThenChanges(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	_ = s.Apply([]viewstore.Record{{ID: "a", Envelope: envelope(t, person{VIP: true}, nil)}, {ID: "b", Envelope: envelope(t, person{}, nil)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := s.Subscribe(ctx, views.Query{Index: "vip", Eq: true})
	if err != nil {
		t.Fatal(err)
	}
	next := func() views.Change {
		select {
		case c := <-sub.Changes():
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change within 5s")
		}
		return views.Change{}
	}
	if c := next(); c.Kind != views.Upserted || c.Row.ID != "a" {
		t.Fatalf("initial: %+v", c)
	}
	if c := next(); c.Kind != views.Current {
		t.Fatalf("want Current, got %+v", c)
	}
	_ = s.Apply([]viewstore.Record{{ID: "b", Envelope: envelope(t, person{VIP: true}, nil)}})
	if c := next(); c.Kind != views.Upserted || c.Row.ID != "b" {
		t.Fatalf("b became VIP: %+v", c)
	}
	_ = s.Apply([]viewstore.Record{{ID: "a", Envelope: envelope(t, person{VIP: false}, nil)}})
	if c := next(); c.Kind != views.Removed || c.Row.ID != "a" {
		t.Fatalf("a is no longer VIP: %+v", c)
	}
	cancel()
	for range sub.Changes() { // closes
	}
}

func TestWaitForPosition(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	tok := topics.Position{Entity: "customer", Subject: "c1", Seq: 2}.Token()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.WaitFor(ctx, tok); !errors.Is(err, views.ErrStale) {
		t.Fatalf("want ErrStale before the write, got %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.WaitFor(ctx, tok)
	}()
	_ = s.Apply([]viewstore.Record{{ID: "c1", Envelope: envelope(t, person{}, map[string]uint64{core.SeqKey("customer", "c1"): 1})}})
	_ = s.Apply([]viewstore.Record{{ID: "c1", Envelope: envelope(t, person{}, map[string]uint64{core.SeqKey("customer", "c1"): 2})}})
	if err := <-done; err != nil {
		t.Fatalf("after the write: %v", err)
	}
	if err := s.WaitFor(context.Background(), "not-a-token"); !errors.Is(err, views.ErrBadQuery) {
		t.Errorf("bad token: %v", err)
	}
}

// endsAfter is a context that ends after its Err has been asked n times:
// it ends in the middle of a scan.
type endsAfter struct {
	context.Context
	n int
}

func (c *endsAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestReadsHonourTheContext(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	people(t, s, 1000)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Get(ended, "p0001"); !errors.Is(err, context.Canceled) {
		t.Errorf("get: %v", err)
	}
	if _, err := s.Query(ended, views.Query{}); !errors.Is(err, context.Canceled) {
		t.Errorf("query: %v", err)
	}
	if _, err := s.Count(ended, views.Query{}); !errors.Is(err, context.Canceled) {
		t.Errorf("count: %v", err)
	}
	if _, err := s.Subscribe(ended, views.Query{}); !errors.Is(err, context.Canceled) {
		t.Errorf("subscribe: %v", err)
	}
	// Ending while scanning: the scan stops with the context's error.
	if _, err := s.Query(&endsAfter{Context: context.Background(), n: 2}, views.Query{Limit: views.MaxLimit}); !errors.Is(err, context.Canceled) {
		t.Errorf("query ended while scanning: %v", err)
	}
	if _, err := s.Count(&endsAfter{Context: context.Background(), n: 2}, views.Query{Index: "age"}); !errors.Is(err, context.Canceled) {
		t.Errorf("count ended while scanning: %v", err)
	}
	// An applied position is reported even with an ended context; one not
	// applied is stale at once.
	_ = s.Apply([]viewstore.Record{{ID: "c1", Envelope: envelope(t, person{}, map[string]uint64{core.SeqKey("customer", "c1"): 1})}})
	if err := s.WaitFor(ended, topics.Position{Entity: "customer", Subject: "c1", Seq: 1}.Token()); err != nil {
		t.Errorf("applied position: %v", err)
	}
	if err := s.WaitFor(ended, topics.Position{Entity: "customer", Subject: "c1", Seq: 2}.Token()); !errors.Is(err, views.ErrStale) || !errors.Is(err, context.Canceled) {
		t.Errorf("position not applied: %v", err)
	}
}

// Apply reads rows where they lie in the records' envelopes; the rows it
// sends to subscribers are their own, since a caller may reuse its buffers
// once Apply has returned.
func TestSubscribersGetRowsOfTheirOwn(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := s.Subscribe(ctx, views.Query{Index: "vip", Eq: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := <-sub.Changes(); c.Kind != views.Current {
		t.Fatalf("want Current, got %+v", c)
	}
	env := envelope(t, person{Name: "ann", VIP: true}, nil)
	want := string(env)
	if err := s.Apply([]viewstore.Record{{ID: "a", Envelope: env}}); err != nil {
		t.Fatal(err)
	}
	for i := range env {
		env[i] = ' '
	}
	var c views.Change
	select {
	case c = <-sub.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change within 5s")
	}
	var e core.RowEnvelope
	if err := json.Unmarshal([]byte(want), &e); err != nil {
		t.Fatal(err)
	}
	if c.Kind != views.Upserted || string(c.Row.Data) != string(e.Row) {
		t.Fatalf("got %+v %s, want the row %s", c, c.Row.Data, e.Row)
	}
}
