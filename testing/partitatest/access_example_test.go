package partitatest_test

import (
	"errors"
	"fmt"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
)

type wallet struct {
	Balance int64 `json:"balance"`
}

type credit struct {
	Amount int64 `json:"amount"`
}

// Access rules and the caller, as the gateway applies them: As sends a
// command as an HTTP caller would, so a refused rule is Send's error, and
// an admitted command's handler sees the caller.
func Example_access() {
	w := entities.KeyValue[wallet]("wallet",
		entities.Access(access.Claim("roles", "customer")),
		entities.CommandAccess("credit", access.Internal()), // a saga step: never from the gateway
	)
	entities.Command(w, "deposit", func(ctx *entities.Context[wallet], c credit) entities.Effect[wallet] {
		s := wallet{Balance: ctx.State().Balance + c.Amount}
		return ctx.Update(s).Reply(fmt.Sprintf("%s deposited %d", ctx.Command().Caller().Subject, c.Amount))
	})
	entities.Command(w, "credit", func(ctx *entities.Context[wallet], c credit) entities.Effect[wallet] {
		return ctx.Update(wallet{Balance: ctx.State().Balance + c.Amount})
	})
	h, err := pt.New(w)
	if err != nil {
		panic(err)
	}
	alice := access.Caller{Subject: "alice", Method: access.MethodJWT, Claims: map[string]any{"roles": []any{"customer"}}}
	bob := access.Caller{Subject: "bob", Method: access.MethodJWT}

	r, err := h.Send("wallet", "w1", "deposit", credit{Amount: 5}, pt.As(alice))
	var said string
	_ = r.Decode(&said)
	fmt.Println(said, err)
	_, err = h.Send("wallet", "w1", "deposit", credit{Amount: 5}, pt.As(bob))
	fmt.Println(errors.Is(err, access.ErrForbidden))
	_, err = h.Send("wallet", "w1", "deposit", credit{Amount: 5}, pt.As(access.Caller{}))
	fmt.Println(errors.Is(err, access.ErrUnauthenticated))
	_, err = h.Send("wallet", "w1", "credit", credit{Amount: 100}, pt.As(alice))
	fmt.Println(errors.Is(err, access.ErrForbidden))
	// Inside the application (no As), the internal command is applied.
	_, err = h.Send("wallet", "w1", "credit", credit{Amount: 100})
	fmt.Println(err)
	// Output:
	// alice deposited 5 <nil>
	// true
	// true
	// true
	// <nil>
}
