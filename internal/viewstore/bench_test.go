package viewstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/partita-dev/partita/internal/benchresult"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/viewstore"
	"github.com/partita-dev/partita/views"
)

// benchRows is the size of the view the benchmark builds (PARTITA_BENCH_ROWS
// overrides it; the default is the one million rows the figures are for).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("PARTITA_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

type benchRow struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Status string `json:"status"`
	Total  int    `json:"total"`
}

func benchEnvelope(i int) (string, []byte) {
	id := fmt.Sprintf("row-%08d", i)
	row, _ := json.Marshal(benchRow{ID: id, Email: fmt.Sprintf("user%d@example.com", i), Status: []string{"open", "paid", "shipped"}[i%3], Total: i % 1000})
	env, _ := json.Marshal(core.RowEnvelope{Row: row, Seqs: map[string]uint64{core.SeqKey("order", id): 1}})
	return id, env
}

// BenchmarkViewStore measures, in one run on one machine:
//   - materialization: rows/s through Store.Apply (row + two index entries +
//     offsets per batch of 1,000), as a ratio to goleveldb's own batched
//     writes of the same row envelopes (one Put per row, same batch size);
//   - p50/p99 latency of a get by id and of an index equality query
//     (limit 10) on the resulting view.
//
// Run with: make bench (or go test -run '^$' -bench ViewStore ./internal/viewstore/).
func BenchmarkViewStore(b *testing.B) {
	n := benchRows()
	const batch = 1000
	dir := b.TempDir()

	// Baseline: goleveldb batched writes of the same values.
	raw, err := leveldb.OpenFile(filepath.Join(dir, "raw"), nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		wb := new(leveldb.Batch)
		for j := i; j < i+batch && j < n; j++ {
			id, env := benchEnvelope(j)
			wb.Put([]byte("r\x00"+id), env)
		}
		if err := raw.Write(wb, nil); err != nil {
			b.Fatal(err)
		}
	}
	rawRate := float64(n) / time.Since(start).Seconds()
	raw.Close()

	s, err := viewstore.Open(filepath.Join(dir, "view"), "email", "status")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start = time.Now()
	for i := 0; i < n; i += batch {
		recs := make([]viewstore.Record, 0, batch)
		for j := i; j < i+batch && j < n; j++ {
			id, env := benchEnvelope(j)
			recs = append(recs, viewstore.Record{ID: id, Envelope: env, Partition: int32(j % 8), Offset: int64(j / 8), Time: time.Now()})
		}
		if err := s.Apply(recs); err != nil {
			b.Fatal(err)
		}
	}
	viewRate := float64(n) / time.Since(start).Seconds()

	lat := func(f func(i int)) (p50, p99 time.Duration) {
		const samples = 20_000
		d := make([]time.Duration, samples)
		for i := range d {
			t0 := time.Now()
			f((i * 7919) % n)
			d[i] = time.Since(t0)
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[samples/2], d[samples*99/100]
	}
	getP50, getP99 := lat(func(i int) {
		if _, ok, err := s.Get(context.Background(), fmt.Sprintf("row-%08d", i)); !ok || err != nil {
			b.Fatalf("get %d: %v %v", i, ok, err)
		}
	})
	eqP50, eqP99 := lat(func(i int) {
		page, err := s.Query(context.Background(), views.Query{Index: "email", Eq: fmt.Sprintf("user%d@example.com", i), Limit: 10})
		if err != nil || len(page.Rows) != 1 {
			b.Fatalf("eq %d: %v %v", i, page.Rows, err)
		}
	})
	stP50, stP99 := lat(func(i int) {
		page, err := s.Query(context.Background(), views.Query{Index: "status", Eq: "paid", Limit: 10})
		if err != nil || len(page.Rows) != 10 {
			b.Fatalf("status: %v %v", len(page.Rows), err)
		}
	})

	b.ReportMetric(viewRate, "view-rows/s")
	b.ReportMetric(rawRate, "leveldb-rows/s")
	b.ReportMetric(viewRate/rawRate, "ratio")
	setup := fmt.Sprintf("%d rows, 2 indexes, batches of %d", n, batch)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, r := range []benchresult.Result{
		{Section: "view materialization", Measure: "goleveldb batched Put, same rows", Value: rawRate, Unit: "rows/s", Ratio: 1},
		{Section: "view materialization", Measure: "Partita view store", Value: viewRate, Unit: "rows/s", Ratio: viewRate / rawRate},
		{Section: "view queries", Measure: "get by id, p50", Value: ms(getP50), Unit: "ms"},
		{Section: "view queries", Measure: "get by id, p99", Value: ms(getP99), Unit: "ms"},
		{Section: "view queries", Measure: "index eq (unique email, limit 10), p50", Value: ms(eqP50), Unit: "ms"},
		{Section: "view queries", Measure: "index eq (unique email, limit 10), p99", Value: ms(eqP99), Unit: "ms"},
		{Section: "view queries", Measure: "index eq (status, 1/3 of rows, limit 10), p50", Value: ms(stP50), Unit: "ms"},
		{Section: "view queries", Measure: "index eq (status, 1/3 of rows, limit 10), p99", Value: ms(stP99), Unit: "ms"},
	} {
		r.Setup = setup
		if r.Ratio != 0 {
			r.Baseline = "goleveldb batched Put, same rows"
		}
		benchresult.Print(os.Stdout, r)
	}
	for i := 0; i < b.N; i++ { // the figures above are the result; b.N is irrelevant
	}
}
