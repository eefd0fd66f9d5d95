package entities_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
)

// A failure marked Permanent is dead-lettered at once; any other is
// retried.
func TestPermanentFailuresAreNotRetried(t *testing.T) {
	calls := map[string]int{}
	e := entities.KeyValue[Counter]("payment", entities.Retries(3, time.Millisecond))
	declined := errors.New("card declined")
	entities.Command(e, "charge", func(ctx *entities.Context[Counter], _ struct{}) entities.Effect[Counter] {
		calls[ctx.Subject()]++
		if ctx.Subject() == "permanent" {
			return ctx.Fail(entities.Permanent(declined))
		}
		return ctx.Fail(declined)
	})
	if !errors.Is(entities.Permanent(declined), declined) {
		t.Fatal("Permanent(err) does not wrap err")
	}
	h := partitatest.Start(t, e)
	_, _ = h.Send("payment", "permanent", "charge", struct{}{})
	_, _ = h.Send("payment", "transient", "charge", struct{}{})
	if calls["permanent"] != 1 || calls["transient"] != 4 {
		t.Errorf("handler calls: %v; want 1 for the permanent failure, 4 (1 + 3 retries) for the transient one", calls)
	}
	dead := h.DeadLetters()
	if len(dead) != 2 || !strings.Contains(dead[0].Reason+dead[1].Reason, "card declined") {
		t.Errorf("dead letters: %+v", dead)
	}
}

// The handler's context is a context.Context; with a timeout it carries
// the deadline, which a handler hands to the calls it makes.
func TestHandlersGetAContext(t *testing.T) {
	var deadline bool
	e := entities.KeyValue[Counter]("c", entities.HandlerTimeout(time.Minute))
	entities.Command(e, "look", func(ctx *entities.Context[Counter], _ struct{}) entities.Effect[Counter] {
		var c context.Context = ctx
		_, deadline = c.Deadline()
		return ctx.Reply(c.Err() == nil)
	})
	h := partitatest.Start(t, e)
	r, err := h.Send("c", "x", "look", struct{}{})
	if err != nil || string(r.Data) != "true" || !deadline {
		t.Errorf("reply %s %v, deadline %v; want a live context with the timeout's deadline", r.Data, err, deadline)
	}
}
