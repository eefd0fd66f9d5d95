package core

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/internal/topics"
)

// With limits per topic (Env.MaxRecordOf), each record is checked against
// its own topic's limit: a reply too large for the replies topic is a dead
// letter even though the state recording it fits the table topic, and a
// dead letter is cut to the dead-letter topic's limit, whatever the
// others'.
func TestRecordsAreMadeToFitTheirTopic(t *testing.T) {
	names := topics.Names{App: "app"}
	limits := map[string]int{names.Replies(): 200_000, names.DeadLetters(): 100_000}
	env := Env{Topics: names, Now: func() time.Time { return time.Unix(0, 0) }, Epoch: 1, MaxRecord: 1 << 20,
		MaxRecordOf: func(topic string) int {
			if n, ok := limits[topic]; ok {
				return n
			}
			return 1 << 20
		}}
	reply := strings.Repeat("r", 300_000)
	def := &Entity{Name: "e", Kind: KeyValue, Window: 16, MaxValue: 4 << 20, Commands: map[string]Handler{
		"big-reply":  func(in Input) Decision { return Decision{Kind: Reply, Reply: []byte(`"` + reply + `"`)} },
		"mid-reply":  func(in Input) Decision { return Decision{Kind: Reply, Reply: []byte(`"` + reply[:150_000] + `"`)} },
		"big-update": func(in Input) Decision { return Decision{Kind: Update, State: []byte(`"` + reply + `"`)} },
	}}
	delivery := func(typ string, value []byte) Delivery { return fitDelivery(t, names, typ, value) }
	a := HandleEntity(env, def, delivery("big-reply", []byte(`{}`)))
	if a.DeadLetter == nil || !strings.Contains(a.Reason, "a record for app.replies") || !strings.Contains(a.Reason, "more than the 200000") {
		t.Fatalf("a 300 KB reply: %q; want a dead letter naming the replies topic and its limit", a.Reason)
	}
	if a = HandleEntity(env, def, delivery("mid-reply", []byte(`{}`))); a.DeadLetter != nil || len(a.Outputs) != 1 {
		t.Fatalf("a 150 KB reply: %q; want it written", a.Reason)
	}
	if a = HandleEntity(env, def, delivery("big-update", []byte(`{}`))); a.DeadLetter != nil || a.Store == nil {
		t.Fatalf("a 300 KB state: %q; want it written (the table topic's limit is the producer's)", a.Reason)
	}
	poison := append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("y"), 150_000)...), '"', '}')
	a = HandleEntity(env, def, delivery("nope", poison))
	if a.DeadLetter == nil {
		t.Fatal("an unknown type: want a dead letter")
	}
	if n := RecordSize(a.DeadLetter.Key, a.DeadLetter.Value, a.DeadLetter.Headers); n > 100_000 {
		t.Fatalf("the dead letter is %d bytes, more than the dead-letter topic's 100000", n)
	}
	if got := string(a.DeadLetter.Headers[topics.HeaderDLQCut]); got != strconv.Itoa(len(poison)) {
		t.Fatalf("cut header %q, want %d", got, len(poison))
	}
}
