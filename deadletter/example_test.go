package deadletter_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/testing/partitatest"
)

type charge struct {
	Amount int `json:"amount"`
}

// Why a command was dead-lettered, tested with errors.Is: in the harness
// as in a consumer of the dead-letter topic (deadletter.FromCode of the
// partita_dlq_code and partita_dlq_reason headers).
func Example() {
	payment := entities.KeyValue[struct{}]("payment", entities.Retries(2, time.Millisecond))
	entities.Command(payment, "charge", func(ctx *entities.Context[struct{}], c charge) entities.Effect[struct{}] {
		switch {
		case c.Amount < 0:
			return ctx.Fail(entities.Permanent(errors.New("negative amount")))
		case c.Amount > 1000:
			return ctx.Fail(errors.New("the bank does not answer"))
		case c.Amount == 13:
			panic("unlucky")
		}
		return ctx.Reply("charged")
	})
	h, _ := partitatest.New(payment)
	_, _ = h.Send("payment", "p1", "charge", charge{Amount: -1})
	_, _ = h.Send("payment", "p2", "charge", charge{Amount: 5000})
	_, _ = h.Send("payment", "p3", "charge", charge{Amount: 13})
	_, _ = h.Send("payment", "p4", "refund", charge{Amount: 1})
	_, _ = h.Send("payment", "p5", "charge", map[string]string{"amount": "ten"})
	for _, d := range h.DeadLetters() {
		for _, kind := range []error{deadletter.ErrPermanent, deadletter.ErrRetriesExhausted, deadletter.ErrPanic,
			deadletter.ErrUnknownType, deadletter.ErrBadPayload} {
			if errors.Is(d.Err, kind) {
				fmt.Printf("%s: %s\n", d.Record.Key, deadletter.Code(d.Err))
			}
		}
	}
	// Unordered output:
	// p1: permanent
	// p2: retries_exhausted
	// p3: panic
	// p4: unknown_type
	// p5: bad_payload
}
