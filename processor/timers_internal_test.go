package processor

import (
	"log/slog"
	"testing"
	"time"

	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// A subject that restarts its timer on every command (a cart's idle
// timer) keeps one pending timer; the queue's stale entries stay bounded.
func TestRestartedTimersKeepTheQueueBounded(t *testing.T) {
	ts := newTimers("cart", topics.Names{App: "app"}, slog.New(slog.DiscardHandler), nil)
	ts.pending[0] = map[string][]envelope.Timer{}
	for i := range 100_000 {
		env := &envelope.Envelope{Seq: uint64(i), Exists: true, State: []byte(`{}`)}
		env.SetTimer(envelope.Timer{Name: "idle", Due: int64(1e18 + i), ID: uint64(i) | 1, Command: "expire"})
		data, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ts.stored(0, "k1", data)
		ts.stored(0, "k2", data)
	}
	if got := ts.stats(time.Unix(0, 0)).Pending; got != 2 {
		t.Fatalf("%d pending timers, want 2", got)
	}
	if n := ts.queue.Len(); n > 2048 {
		t.Fatalf("the queue holds %d entries for 2 pending timers", n)
	}
	// A stored envelope without timers removes the subject's.
	ts.stored(0, "k1", mustEncode(t, &envelope.Envelope{Seq: 1, Exists: true}))
	if got := ts.stats(time.Unix(0, 0)).Pending; got != 1 {
		t.Fatalf("%d pending timers after k1 dropped its timer, want 1", got)
	}
}

func mustEncode(t *testing.T, env *envelope.Envelope) []byte {
	t.Helper()
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
