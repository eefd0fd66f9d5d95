package core_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
)

type counter struct {
	N int `json:"n"`
}

type add struct {
	By int `json:"by"`
}

// BenchmarkHandleEntity is the entity path of one command without goka: a
// key-value entity's typed handler (the one of the bench package's entity
// throughput benchmark) over a subject with a full dedup window, against
// the same keyed update written by hand (decode the payload, decode the
// state, add, encode). Allocations are both together.
func BenchmarkHandleEntity(b *testing.B) {
	e := entities.KeyValue[counter]("counter")
	entities.Command(e, "add", func(ctx *entities.Context[counter], a add) entities.Effect[counter] {
		return ctx.Update(counter{N: ctx.State().N + a.By})
	})
	def := e.Definition().(*core.Entity)
	env := core.Env{Topics: topics.Names{App: "bench"}, Now: time.Now, Sleep: time.Sleep, Epoch: 1, Runners: core.NewRunners(4)}
	defer env.Runners.Close()
	const subject = "s42"
	records := make([]codec.Record, 64)
	for i := range records {
		ev := codec.NewEvent()
		ev.SetID("c" + strconv.Itoa(i))
		ev.SetSource("bench")
		ev.SetType("add")
		ev.SetSubject(subject)
		ev.SetDataContentType("application/json")
		ev.DataEncoded = []byte(`{"by":1}`)
		r, err := codec.EncodeEvent(ev)
		if err != nil {
			b.Fatal(err)
		}
		records[i] = r
	}
	d := core.Delivery{Topic: "bench.counter.commands", Partitions: 8, Loop: "bench.counter-loop"}
	d.Partition = murmur2.Partition([]byte(subject), 8)
	var stored []byte
	for i := range 16 { // fill the window
		d.Record, d.Stored = records[i], stored
		stored = core.HandleEntity(env, def, d).Store
	}
	// Interleaved, so that both see the same machine: the ratio is the
	// figure to compare across runs.
	state := []byte(`{"n":16}`)
	var partita, raw time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		d.Record, d.Stored = records[16+i%48], stored
		if core.HandleEntity(env, def, d).Store == nil {
			b.Fatal("nothing stored")
		}
		mid := time.Now()
		var cmd add
		_ = json.Unmarshal(records[i%64].Value, &cmd)
		var c counter
		_ = json.Unmarshal(state, &c)
		c.N += cmd.By
		if data, _ := json.Marshal(c); data == nil {
			b.Fatal("nothing stored")
		}
		partita, raw = partita+mid.Sub(start), raw+time.Since(mid)
	}
	b.ReportMetric(float64(partita.Nanoseconds())/float64(b.N), "partita-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(partita)/float64(raw), "partita/raw")
}
