package partitatest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/views"
)

// Expect returns a check of [Harness.Send]'s results, to use in one line:
//
//	cart := partitatest.Expect[Cart](t)(h.Send("cart", "k1", "add-item", item))
//
// The check fails tb unless the command succeeded, and returns its reply
// decoded as T.
func Expect[T any](tb testing.TB) func(Reply, error) T {
	return func(r Reply, err error) T {
		tb.Helper()
		var v T
		switch {
		case err != nil:
			tb.Fatalf("command failed: %v", err)
		case r.Code != "":
			tb.Fatalf("command got error %s: %s", r.Code, r.Message)
		case json.Unmarshal(r.Data, &v) != nil:
			tb.Fatalf("reply %s is not a %T", r.Data, v)
		}
		return v
	}
}

// ExpectError returns a check of [Harness.Send]'s results that fails tb
// unless the command got an error reply with code:
//
//	partitatest.ExpectError(t, "not_found")(h.Send("cart", "k9", "get", struct{}{}))
func ExpectError(tb testing.TB, code string) func(Reply, error) Reply {
	return func(r Reply, err error) Reply {
		tb.Helper()
		if err != nil {
			tb.Fatalf("command failed: %v", err)
		}
		if r.Code != code {
			tb.Fatalf("want error %s, got %q (%s) %s", code, r.Code, r.Message, r.Data)
		}
		return r
	}
}

// ExpectDeadLettered fails tb unless the command got no reply and a dead
// letter whose reason contains reason; it returns the dead letter.
func (h *Harness) ExpectDeadLettered(tb testing.TB, err error, reason string) DeadLetter {
	tb.Helper()
	if !errors.Is(err, ErrNoReply) {
		tb.Fatalf("want a dead-lettered command (no reply), got %v", err)
	}
	return h.ExpectDeadLetter(tb, reason)
}

// ExpectDeadLetter fails tb unless a dead letter's reason contains reason.
func (h *Harness) ExpectDeadLetter(tb testing.TB, reason string) DeadLetter {
	tb.Helper()
	var reasons []string
	for _, d := range h.DeadLetters() {
		if strings.Contains(d.Reason, reason) {
			return d
		}
		reasons = append(reasons, d.Reason)
	}
	tb.Fatalf("no dead letter says %q; dead letters: %q", reason, reasons)
	return DeadLetter{}
}

// ExpectEvents fails tb unless the entity wrote, about subject, events of
// exactly these types in this order (an event re-published after a
// redelivery, same id, counts once). It returns them.
func (h *Harness) ExpectEvents(tb testing.TB, entity, subject string, types ...string) []codec.Event {
	tb.Helper()
	var got []codec.Event
	var gotTypes []string
	seen := map[string]bool{}
	for _, e := range h.Events(entity, subject) {
		if !seen[e.ID()] {
			seen[e.ID()] = true
			got = append(got, e)
			gotTypes = append(gotTypes, e.Type())
		}
	}
	if strings.Join(gotTypes, ",") != strings.Join(types, ",") {
		tb.Fatalf("%s %s wrote events %v, want %v", entity, subject, gotTypes, types)
	}
	return got
}

// ExpectPublished fails tb unless exactly n distinct events (by id) were
// written to topic, and returns their data decoded as T.
func ExpectPublished[T any](tb testing.TB, h *Harness, topic string, n int) []T {
	tb.Helper()
	var out []T
	seen := map[string]bool{}
	for _, e := range h.Published(topic) {
		if seen[e.Source()+"\x00"+e.ID()] {
			continue
		}
		seen[e.Source()+"\x00"+e.ID()] = true
		var v T
		if err := json.Unmarshal(e.Data(), &v); err != nil {
			tb.Fatalf("event %s on %s: %v", e.ID(), topic, err)
		}
		out = append(out, v)
	}
	if len(out) != n {
		tb.Fatalf("%d events on %s, want %d", len(out), topic, n)
	}
	return out
}

// ExpectRow fails tb unless the view has a row id, and returns it decoded.
func ExpectRow[R any](tb testing.TB, h *Harness, view, id string) R {
	tb.Helper()
	s, err := h.View(view)
	if err != nil {
		tb.Fatal(err)
	}
	r, ok, err := views.Get[R](context.Background(), s, id)
	if err != nil || !ok {
		tb.Fatalf("view %s has no row %s (%v)", view, id, err)
	}
	return r
}

// ExpectNoRow fails tb if the view has a row id.
func (h *Harness) ExpectNoRow(tb testing.TB, view, id string) {
	tb.Helper()
	s, err := h.View(view)
	if err != nil {
		tb.Fatal(err)
	}
	if row, ok, _ := s.Get(context.Background(), id); ok {
		tb.Fatalf("view %s has row %s: %s", view, id, row.Data)
	}
}

// ExpectHeld fails tb if the harness saw a contract violation.
func (h *Harness) ExpectHeld(tb testing.TB) {
	tb.Helper()
	if v := h.Violations(); len(v) > 0 {
		tb.Fatalf("delivery contract violated:\n%s", strings.Join(v, "\n"))
	}
}
