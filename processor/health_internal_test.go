package processor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A part's state follows its runs: starting until its first run
// recovers, restarting from a failure until a later run recovers, and a
// late report of a run that has stopped changes nothing.
func TestPartStates(t *testing.T) {
	p := newPart(KindProcessor, "app.cart")
	if h := p.health(); h.State != HealthStarting || h.Restarts != 0 {
		t.Fatalf("new: %+v", h)
	}
	if w := p.why(); !strings.HasPrefix(w, "processor app.cart starting") {
		t.Fatalf("why, starting: %q", w)
	}
	gen := p.generation()
	p.recovered(gen)
	if h := p.health(); h.State != HealthRunning || p.why() != "" {
		t.Fatalf("recovered: %+v %q", h, p.why())
	}
	p.recovering(gen) // a rebalance
	if h := p.health(); h.State != HealthStarting {
		t.Fatalf("rebalancing: %+v", h)
	}
	p.recovered(gen)
	p.failed(errors.New("1 error occurred:\n\t* boom\n\n"), false, time.Now().Add(4*time.Second))
	h := p.health()
	if h.State != HealthRestarting || h.Restarts != 1 || h.LastError != "boom" {
		t.Fatalf("failed: %+v", h)
	}
	if w := p.why(); !strings.HasPrefix(w, "processor app.cart restarting after 1 failure, next attempt in 4s: boom") {
		t.Fatalf("why, restarting: %q", w)
	}
	p.recovered(gen) // the stopped run's watcher, late
	p.recovering(gen)
	if h := p.health(); h.State != HealthRestarting {
		t.Fatalf("a late report of the stopped run changed the state: %+v", h)
	}
	p.restarted()
	gen = p.generation()
	p.recovering(gen) // a restarting part stays restarting until it recovers
	if w, h := p.why(), p.health(); h.State != HealthRestarting || !strings.Contains(w, "started again, recovering") {
		t.Fatalf("restarted: %+v %q", h, w)
	}
	p.failed(errors.New("again"), false, time.Now())
	p.failed(errors.New("and again"), false, time.Now())
	if w := p.why(); !strings.Contains(w, "after 3 failures") || !strings.HasSuffix(w, ": and again") {
		t.Fatalf("why after 3 failures: %q", w)
	}
	p.failed(errors.New("after a long run"), true, time.Now())
	if w := p.why(); !strings.Contains(w, "after 1 failure,") {
		t.Fatalf("a failure after a stable run counts as a first: %q", w)
	}
	p.recovered(p.generation())
	if h := p.health(); h.State != HealthRunning || h.Restarts != 4 || h.LastError != "after a long run" {
		t.Fatalf("running again: %+v", h)
	}
	p.stopped()
	if h := p.health(); h.State != HealthStopped {
		t.Fatalf("stopped: %+v", h)
	}
	p.recovered(p.generation())
	if h := p.health(); h.State != HealthStopped {
		t.Fatalf("a stopped part was revived: %+v", h)
	}
	r := newPart(KindViewReplica, "view replica carts")
	if w := r.why(); !strings.HasPrefix(w, "view replica carts starting") {
		t.Fatalf("replica: %q", w)
	}
}

// LastError is one line, without goka's list headings and the record key
// goka names, and bounded.
func TestOneLine(t *testing.T) {
	err := errors.New("1 error occurred:\n\t* error consuming from group consumer: 1 error occurred:\n\t* error processing message (partition=4): asynchronous error from callback: could not commit message with key 'someone@example.com': 2 errors occurred:\n\t* error emitting to app-loop: boom\n\t* other\n\n")
	want := "error consuming from group consumer: error processing message (partition=4): asynchronous error from callback: could not commit message: error emitting to app-loop: boom; other"
	if got := oneLine(err); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	long := oneLine(errors.New(strings.Repeat("é", 1000)))
	if len(long) > maxErrorLen+len("…") || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "éé") {
		t.Errorf("long error: %d bytes %q", len(long), long[len(long)-8:])
	}
	if oneLine(nil) == "" {
		t.Error("nil error: empty")
	}
}

// A topic's record limit is the producer's, or what fits the topic's
// max.message.bytes when that is lower.
func TestRecordLimits(t *testing.T) {
	l := recordLimits{producer: 1 << 20, topics: map[string]int{"small": 200_000, "default": 1_048_588, "large": 8 << 20}}
	if got, want := l.forTopic("small"), 200_000-61-16-16*7; got != want {
		t.Errorf("small: %d, want %d", got, want)
	}
	if got := l.forTopic("default"); got >= 1_048_588-61 || got < 1_047_000 {
		t.Errorf("default: %d", got)
	}
	if got := l.forTopic("large"); got != 1<<20 {
		t.Errorf("large: %d, want the producer's", got)
	}
	if got := l.forTopic("unknown"); got != 1<<20 {
		t.Errorf("unknown: %d, want the producer's", got)
	}
	if got := (recordLimits{producer: 1 << 20, topics: map[string]int{"tiny": 10}}).forTopic("tiny"); got != 1 {
		t.Errorf("tiny: %d, want 1", got)
	}
}
