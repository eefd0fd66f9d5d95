package processor

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// An envelope stored again with the same timers (any command of the
// subject) queues nothing more: a due timer is written once, not once per
// command the subject had while it was pending. A replaced timer is
// queued. The schedule keeps its own copy of each timer's data, not the
// envelope it was decoded from.
func TestTimersQueueEachTimerOnce(t *testing.T) {
	ts := newTimers("e", topics.Names{App: "a"}, slog.New(slog.DiscardHandler), nil)
	ts.pending[0] = map[string][]envelope.Timer{}
	stored := func(tm ...envelope.Timer) {
		env := &envelope.Envelope{Exists: true, State: []byte(`{}`), Timers: tm}
		value, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ts.stored(0, "s", value)
		clear(value) // the handler's buffer is not the schedule's
	}
	due := time.Now().Add(-time.Second).UnixNano() // due already
	ring := envelope.Timer{Name: "ring", Due: due, ID: 1, Command: "ring", ContentType: "application/json", Data: []byte(`{"n":1}`)}
	other := envelope.Timer{Name: "other", Due: due + 1, ID: 2, Command: "ring", ContentType: "application/json", Data: []byte(`{"n":2}`)}
	for range 5 {
		stored(ring, other)
	}
	if n := ts.queue.Len(); n != 2 {
		t.Fatalf("two timers stored 5 times unchanged are queued %d times, want 2", n)
	}
	replaced := other
	replaced.ID, replaced.Due, replaced.Data = 3, due+2, []byte(`{"n":3}`)
	stored(ring, replaced)
	if n, c := ts.queue.Len(), ts.count.Load(); n != 3 || c != 2 {
		t.Fatalf("after a replacement: %d queued, %d pending; want 3 (the stale entry stays until it comes up) and 2", n, c)
	}

	emitted := make(chan string, 10)
	ts.start(func(topic, key string, value []byte, _ goka.Headers) *goka.Promise {
		emitted <- string(value)
		p, finish := goka.NewPromiseWithFinisher()
		finish(nil, nil)
		return p
	})
	defer ts.close()
	var fires []string
	for {
		select {
		case v := <-emitted:
			fires = append(fires, v)
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	if len(fires) != 2 {
		t.Fatalf("%d fires written, want 2 (ring and the replaced other, once each): %q", len(fires), fires)
	}
	for i, want := range []string{`{"n":1}`, `{"n":3}`} {
		if got := fires[i]; !strings.Contains(got, want) {
			t.Errorf("fire %d is %q, want one carrying %s", i, got, want)
		}
	}
}

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
