package processor_test

// processor.Client on the real broker: the request/reply conversation the
// worker's gateway has with Kafka (replies, error replies, dead letters,
// idempotency conflicts, requests in flight, deadlines, record limits).

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/request"
)

// The client is a request.Requester, as the harness is
// (testing/partitatest/client_test.go).
var _ request.Requester = (*processor.Client)(nil)

type clAccount struct {
	Balance int `json:"balance"`
}

type clAmount struct {
	Amount int `json:"amount"`
	// SleepMS holds the handler up (the partition's goroutine too).
	SleepMS int `json:"sleep_ms,omitempty"`
}

// clBank: deposit adds (after sleep_ms), withdraw refuses more than the
// balance, whoami replies with the caller's subject.
func clBank() *entities.Entity[clAccount] {
	e := entities.KeyValue[clAccount]("bank")
	entities.Command(e, "deposit", func(ctx *entities.Context[clAccount], d clAmount) entities.Effect[clAccount] {
		time.Sleep(time.Duration(d.SleepMS) * time.Millisecond)
		next := clAccount{Balance: ctx.State().Balance + d.Amount}
		return ctx.Update(next).Reply(next)
	})
	entities.Command(e, "withdraw", func(ctx *entities.Context[clAccount], d clAmount) entities.Effect[clAccount] {
		if d.Amount > ctx.State().Balance {
			return ctx.Error(entities.FailedPrecondition, "balance %d is less than %d", ctx.State().Balance, d.Amount)
		}
		next := clAccount{Balance: ctx.State().Balance - d.Amount}
		return ctx.Update(next).Reply(next)
	})
	entities.Command(e, "whoami", func(ctx *entities.Context[clAccount], _ struct{}) entities.Effect[clAccount] {
		c := ctx.Command().Caller()
		if c == nil {
			return ctx.Reply("nobody")
		}
		return ctx.Reply(c.Subject + " " + c.Method)
	})
	return e
}

func TestClientRequestReply(t *testing.T) {
	a := newApp(t, clBank())
	c, err := a.rt.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	bank := func(command, subject, data, id string) request.Request {
		return request.Request{Entity: "bank", Subject: subject, Command: command, Data: []byte(data), ID: id}
	}
	wait := func(timeout time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), timeout)
	}

	// The runtime has not created the topics: the client cannot follow them.
	ctx, cancel := wait(10 * time.Second)
	defer cancel()
	if _, err := c.Request(ctx, bank("deposit", "early", `{"amount": 1}`, "")); !errors.Is(err, request.ErrNotFollowing) {
		t.Fatalf("before the topics exist: %v; want ErrNotFollowing", err)
	}
	a.start()
	select {
	case <-c.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the client does not follow the replies a minute after the runtime is ready")
	}

	t.Run("reply", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		r, err := c.Request(ctx, bank("deposit", "a1", `{"amount": 5}`, "dep-1"))
		if err != nil || r.Code != "" || string(r.Data) != `{"balance":5}` {
			t.Fatalf("deposit: %+v, %v; want {\"balance\":5}", r, err)
		}
		if want := processor.PositionToken("bank", "a1", 1); r.Position != want {
			t.Errorf("position %q, want %q (bank/a1 at 1)", r.Position, want)
		}
		again, err := c.Request(ctx, bank("deposit", "a1", `{"amount": 5}`, "dep-1"))
		if err != nil || !bytes.Equal(again.Data, r.Data) || again.Position != r.Position {
			t.Fatalf("retry with the same id: %+v, %v; want the recorded reply %+v", again, err, r)
		}
	})

	t.Run("error reply", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		r, err := c.Request(ctx, bank("withdraw", "a2", `{"amount": 50}`, ""))
		if err != nil || r.Code != "failed_precondition" || r.Message != "balance 0 is less than 50" {
			t.Fatalf("withdraw: %+v, %v; want failed_precondition", r, err)
		}
	})

	t.Run("caller", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		req := bank("whoami", "a3", "", "")
		req.Caller = &access.Caller{Subject: "alice", Method: access.MethodJWT}
		r, err := c.Request(ctx, req)
		if err != nil || string(r.Data) != `"alice jwt"` {
			t.Fatalf("whoami: %s, %v; want \"alice jwt\"", r.Data, err)
		}
		r, err = c.Request(ctx, bank("whoami", "a3", "", ""))
		if err != nil || string(r.Data) != `"nobody"` {
			t.Fatalf("whoami without a caller: %s, %v; want \"nobody\"", r.Data, err)
		}
	})

	t.Run("dead letter", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		_, err := c.Request(ctx, bank("deposit", "a4", `{"amount": "five"}`, "bad-1"))
		var dead *request.DeadLetterError
		if !errors.As(err, &dead) || dead.Code != "bad_payload" || dead.Reason == "" ||
			!errors.Is(err, request.ErrDeadLetter) || !errors.Is(err, deadletter.ErrBadPayload) {
			t.Fatalf("bad payload: %v; want a *request.DeadLetterError of code bad_payload", err)
		}
		found := false
		for _, d := range c.DeadLetters() {
			found = found || d.ID == "bad-1" && d.Code == "bad_payload" && d.Group == a.name+".bank" && d.Key == "a4"
		}
		if !found {
			t.Errorf("DeadLetters() = %+v; want the dead letter of bad-1", c.DeadLetters())
		}
	})

	t.Run("idempotency conflict", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		if _, err := c.Request(ctx, bank("deposit", "a5", `{"amount": 1}`, "key-1")); err != nil {
			t.Fatal(err)
		}
		_, err := c.Request(ctx, bank("deposit", "a5", `{"amount": 2}`, "key-1"))
		var dead *request.DeadLetterError
		if !errors.As(err, &dead) || dead.Code != "idempotency_conflict" || !errors.Is(err, deadletter.ErrIdempotencyConflict) {
			t.Fatalf("same id, other request: %v; want a dead letter of code idempotency_conflict", err)
		}
	})

	t.Run("in flight", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		first := make(chan error, 1)
		go func() {
			_, err := c.Request(ctx, bank("deposit", "a6", `{"amount": 1, "sleep_ms": 1500}`, "slow-1"))
			first <- err
		}()
		time.Sleep(500 * time.Millisecond) // the first is waiting for its reply
		if _, err := c.Request(ctx, bank("deposit", "a6", `{"amount": 1, "sleep_ms": 1500}`, "slow-1")); !errors.Is(err, request.ErrInFlight) {
			t.Fatalf("the same id while the first waits: %v; want ErrInFlight", err)
		}
		if err := <-first; err != nil {
			t.Fatalf("the first: %v", err)
		}
		// Another source's command of the same id is another request.
		req := bank("deposit", "a6", `{"amount": 1}`, "slow-1")
		req.Source = "another"
		if r, err := c.Request(ctx, req); err != nil || string(r.Data) != `{"balance":2}` {
			t.Fatalf("same id, other source: %s, %v; want balance 2", r.Data, err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		short, cancel := wait(200 * time.Millisecond)
		defer cancel()
		_, err := c.Request(short, bank("deposit", "a7", `{"amount": 3, "sleep_ms": 1500}`, "late-1"))
		if !errors.Is(err, request.ErrNoReply) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "late-1") {
			t.Fatalf("a reply after the deadline: %v; want ErrNoReply naming late-1", err)
		}
		// The command was applied; its retry gets the reply, applied once.
		ctx, cancel2 := wait(30 * time.Second)
		defer cancel2()
		r, err := c.Request(ctx, bank("deposit", "a7", `{"amount": 3, "sleep_ms": 1500}`, "late-1"))
		if err != nil || string(r.Data) != `{"balance":3}` {
			t.Fatalf("the retry: %s, %v; want balance 3", r.Data, err)
		}
	})

	t.Run("record too large", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		big := append(append([]byte(`{"amount": 1, "pad": "`), bytes.Repeat([]byte("x"), 1_100_000)...), `"}`...)
		start := time.Now()
		_, err := c.Request(ctx, bank("deposit", "a8", string(big), ""))
		if !errors.Is(err, request.ErrRecordTooLarge) || time.Since(start) > time.Second {
			t.Fatalf("1.1 MB command: %v after %v; want ErrRecordTooLarge at once", err, time.Since(start))
		}
	})

	t.Run("unknown entity", func(t *testing.T) {
		ctx, cancel := wait(30 * time.Second)
		defer cancel()
		req := bank("deposit", "a9", `{}`, "")
		req.Entity = "nope"
		if _, err := c.Request(ctx, req); !errors.Is(err, request.ErrUnknownEntity) || !errors.Is(err, processor.ErrUnknownEntity) {
			t.Fatalf("unknown entity: %v; want ErrUnknownEntity", err)
		}
	})
}

// NewClient fails as broker.Connect does while no broker is reachable, so
// the worker retries it.
func TestClientNoBroker(t *testing.T) {
	rt, err := processor.New(processor.Config{App: "nobroker", DataDir: t.TempDir(),
		Kafka: broker.Config{BootstrapServers: []string{kafkatest.ClosedAddr(t)}}}, clBank())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rt.NewClient(ctx)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, broker.ErrNoBroker) {
		t.Fatalf("NewClient with no broker: %v; want broker.ErrNoBroker", err)
	}
}
