package partitatest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/request"
	pt "github.com/partita-dev/partita/testing/partitatest"
)

// The harness is a request.Requester, as *processor.Client is
// (processor/client_integration_test.go): the same requests, the same
// replies and errors.
var _ request.Requester = (*pt.Harness)(nil)

// requestBank is bank with a refusing command and one that says who called.
func requestBank() *entities.Entity[Account] {
	account := bank()
	entities.Command(account, "withdraw", func(ctx *entities.Context[Account], d Deposit) entities.Effect[Account] {
		if d.Amount > ctx.State().Balance {
			return ctx.Error(entities.FailedPrecondition, "balance %d is less than %d", ctx.State().Balance, d.Amount)
		}
		s := Account{Balance: ctx.State().Balance - d.Amount}
		return ctx.Update(s).Reply(s)
	})
	entities.Command(account, "whoami", func(ctx *entities.Context[Account], _ struct{}) entities.Effect[Account] {
		c := ctx.Command().Caller()
		if c == nil {
			return ctx.Reply("nobody")
		}
		return ctx.Reply(c.Subject)
	})
	return account
}

func TestRequestReplies(t *testing.T) {
	h := pt.Start(t, requestBank())
	ctx := context.Background()
	r, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: []byte(`{"amount": 5}`), ID: "d1"})
	if err != nil || r.Code != "" || r.Position == "" {
		t.Fatalf("deposit: %+v, %v; want a reply with a position", r, err)
	}
	var acc Account
	if err := r.Decode(&acc); err != nil || acc.Balance != 5 {
		t.Fatalf("deposit replied %s (%v), want balance 5", r.Data, err)
	}
	// Retried with the same ID: the recorded reply, applied once.
	again, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: []byte(`{"amount": 5}`), ID: "d1"})
	if err != nil || string(again.Data) != string(r.Data) || again.Position != r.Position {
		t.Fatalf("retry: %+v, %v; want the first reply %+v", again, err, r)
	}
	// An error reply is a reply, with the entity's code and message.
	r, err = h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "withdraw", Data: []byte(`{"amount": 50}`)})
	if err != nil || r.Code != string(entities.FailedPrecondition) || r.Message != "balance 5 is less than 50" {
		t.Fatalf("withdraw: %+v, %v; want failed_precondition", r, err)
	}
	// The caller travels to the handler; no rule is checked.
	r, err = h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "whoami",
		Caller: &access.Caller{Subject: "alice", Method: access.MethodJWT}})
	if err != nil || string(r.Data) != `"alice"` {
		t.Fatalf("whoami: %s, %v; want \"alice\"", r.Data, err)
	}
	// The default source is the gateway's.
	if _, err := h.Redeliver("d1", request.DefaultSource); err != nil {
		t.Fatalf("redeliver d1 of source %s: %v", request.DefaultSource, err)
	}
}

func TestRequestErrors(t *testing.T) {
	h := pt.Start(t, requestBank())
	ctx := context.Background()
	var dead *request.DeadLetterError

	// A payload that does not fit the handler: a dead letter, not a reply.
	_, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: []byte(`{"amount": "five"}`)})
	if !errors.As(err, &dead) || dead.Code != "bad_payload" || !errors.Is(err, request.ErrDeadLetter) || !errors.Is(err, deadletter.ErrBadPayload) {
		t.Fatalf("bad payload: %v; want a *request.DeadLetterError of code bad_payload", err)
	}
	// An unknown command: dead-lettered too.
	_, err = h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "close"})
	if !errors.As(err, &dead) || dead.Code != "unknown_type" {
		t.Fatalf("unknown command: %v; want a dead letter of code unknown_type", err)
	}
	// One ID with another request: an idempotency conflict.
	if _, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: []byte(`{"amount": 1}`), ID: "k"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: []byte(`{"amount": 2}`), ID: "k"})
	if !errors.As(err, &dead) || dead.Code != "idempotency_conflict" || !errors.Is(err, deadletter.ErrIdempotencyConflict) {
		t.Fatalf("conflict: %v; want a dead letter of code idempotency_conflict", err)
	}
	// A record over the limit: refused before writing.
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = ' '
	}
	big[0], big[len(big)-1] = '{', '}'
	n := len(h.Records(h.Topic("account.commands")))
	if n == 0 {
		t.Fatal("no command records on app.account.commands")
	}
	if _, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a1", Command: "deposit", Data: big}); !errors.Is(err, request.ErrRecordTooLarge) {
		t.Fatalf("2 MiB command: %v; want ErrRecordTooLarge", err)
	}
	if m := len(h.Records(h.Topic("account.commands"))); m != n {
		t.Fatalf("the too-large command was written (%d records, was %d)", m, n)
	}
	// No such entity.
	if _, err := h.Request(ctx, request.Request{Entity: "nope", Subject: "a1", Command: "deposit"}); !errors.Is(err, request.ErrUnknownEntity) || !errors.Is(err, pt.ErrUnknown) {
		t.Fatalf("unknown entity: %v; want request.ErrUnknownEntity", err)
	}
	// A subject that cannot be one.
	if _, err := h.Request(ctx, request.Request{Entity: "account", Command: "deposit"}); !errors.Is(err, request.ErrInvalid) {
		t.Fatalf("empty subject: %v; want request.ErrInvalid", err)
	}
	// A context that ended: no reply, though the command was written (and
	// applied: its retry gets the reply).
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Request(done, request.Request{Entity: "account", Subject: "a2", Command: "deposit", Data: []byte(`{"amount": 7}`), ID: "late"}); !errors.Is(err, request.ErrNoReply) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v; want ErrNoReply", err)
	}
	r, err := h.Request(ctx, request.Request{Entity: "account", Subject: "a2", Command: "deposit", Data: []byte(`{"amount": 7}`), ID: "late"})
	if err != nil || string(r.Data) != `{"balance":7}` {
		t.Fatalf("retry after no reply: %s, %v; want balance 7", r.Data, err)
	}
}
