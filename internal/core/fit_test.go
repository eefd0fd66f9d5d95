package core

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
)

// Nothing an input makes the runtime write may exceed the producer's
// limit (a failed write stops the partition): an output that would is a
// dead letter of the input instead, and a dead letter too large is cut.
func TestRecordsAreMadeToFit(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	def := &Entity{Name: "e", Kind: KeyValue, Window: 16, MaxValue: 4 << 20, Commands: map[string]Handler{
		"big-reply": func(in Input) Decision { return Decision{Kind: Reply, Reply: []byte(`"` + big + `"`)} },
		"ok":        func(in Input) Decision { return Decision{Kind: Update, State: []byte(`{}`)} },
	}}
	env := Env{Topics: topics.Names{App: "app"}, Now: func() time.Time { return time.Unix(0, 0) }, Epoch: 1, MaxRecord: 1_000_000}
	delivery := func(typ string, value []byte) Delivery { return fitDelivery(t, env.Topics, typ, value) }
	a := HandleEntity(env, def, delivery("big-reply", []byte(`{}`)))
	// (The reply is recorded in the subject's window too: the new state is
	// the first record that would not fit.)
	if a.DeadLetter == nil || a.Store != nil || len(a.Outputs) != 0 || !strings.Contains(a.Reason, "more than the 1000000 a record may have") {
		t.Fatalf("a 2 MB reply: %q; want a dead letter saying what would not fit, and nothing else", a.Reason)
	}
	huge := append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("y"), 1_048_000)...), '"', '}')
	// A 1 MB command (the broker takes up to about 1 MiB) is larger than
	// the entity accepts: its dead letter, value and reason, would not fit.
	small := *def
	small.MaxValue = 256 << 10
	a = HandleEntity(env, &small, delivery("ok", huge))
	if a.DeadLetter == nil {
		t.Fatal("a 1 MB command: want a dead letter")
	}
	if n := RecordSize(a.DeadLetter.Key, a.DeadLetter.Value, a.DeadLetter.Headers); n > env.MaxRecord {
		t.Fatalf("the dead letter is %d bytes, more than %d", n, env.MaxRecord)
	}
	if got := string(a.DeadLetter.Headers[topics.HeaderDLQCut]); got != strconv.Itoa(len(huge)) {
		t.Fatalf("cut header %q, want the original length %d", got, len(huge))
	}
}

// fitDelivery is a command of type typ with data value for subject s of
// entity e, on its commands topic, asking for a reply.
func fitDelivery(t *testing.T, topics topics.Names, typ string, value []byte) Delivery {
	t.Helper()
	e := codec.NewEvent()
	e.SetID("i-" + typ)
	e.SetSource("test")
	e.SetType(typ)
	e.SetSubject("s")
	e.SetExtension(codec.ExtReply, "true")
	e.SetDataContentType("application/json")
	e.DataEncoded = value
	r, err := codec.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return Delivery{Topic: topics.Commands("e"), Record: r, Loop: topics.Loop("e"), Partitions: 8, Partition: murmur2.Partition([]byte("s"), 8)}
}
