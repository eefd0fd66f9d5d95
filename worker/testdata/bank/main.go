// Command bank is the application of the gateway's security suite
// (worker/security_integration_test.go): an account entity whose commands
// carry every kind of access rule, including an internal saga step that
// only the entity itself sends, and a handler whose reply is too large for
// Kafka. It is built by the test, not shipped.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/worker"
)

// Account is an account's state.
type Account struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
}

type (
	open struct {
		Owner string `json:"owner"`
	}
	amount struct {
		Amount int64 `json:"amount"`
	}
	transfer struct {
		To     string `json:"to"`
		Amount int64  `json:"amount"`
	}
	size struct {
		Bytes int `json:"bytes"`
	}
	empty struct{}
)

func account() *entities.Entity[Account] {
	e := entities.KeyValue[Account]("account",
		entities.Access(access.Authenticated()),
		entities.CommandAccess("open", access.Claim("roles", "teller")),
		entities.CommandAccess("credit", access.Internal()),
		entities.CommandAccess("ping", access.Public()),
		entities.SendsTo("account"),
	)
	entities.Command(e, "open", func(ctx *entities.Context[Account], c open) entities.Effect[Account] {
		s := Account{Owner: c.Owner}
		return ctx.Update(s).Reply(s)
	})
	entities.Command(e, "deposit", func(ctx *entities.Context[Account], c amount) entities.Effect[Account] {
		s := ctx.State()
		s.Balance += c.Amount
		return ctx.Update(s).Reply(s)
	})
	// transfer debits this account and credits another through the
	// internal command credit.
	entities.Command(e, "transfer", func(ctx *entities.Context[Account], c transfer) entities.Effect[Account] {
		s := ctx.State()
		if c.Amount <= 0 || c.Amount > s.Balance {
			return ctx.Error(entities.FailedPrecondition, "insufficient funds")
		}
		s.Balance -= c.Amount
		return ctx.Update(s).Reply(s).Send("account", c.To, "credit", amount{Amount: c.Amount})
	})
	entities.Command(e, "credit", func(ctx *entities.Context[Account], c amount) entities.Effect[Account] {
		s := ctx.State()
		s.Balance += c.Amount
		return ctx.Update(s)
	})
	// whoami replies with the caller the handler sees.
	entities.Command(e, "whoami", func(ctx *entities.Context[Account], _ empty) entities.Effect[Account] {
		return ctx.Reply(ctx.Command().Caller())
	})
	entities.Command(e, "ping", func(ctx *entities.Context[Account], _ empty) entities.Effect[Account] {
		return ctx.Reply("pong")
	})
	// echo replies with a string of the asked size: 2 MB is more than
	// Kafka takes.
	entities.Command(e, "echo", func(ctx *entities.Context[Account], c size) entities.Effect[Account] {
		return ctx.Reply(strings.Repeat("x", c.Bytes))
	})
	return e
}

// balances is a view that only auditors may query.
func balances() *views.View[Account] {
	v := views.New[Account]("balances", views.Access(access.Claim("roles", "auditor")))
	views.FromState(v, "account", func(u views.Update[Account, Account]) views.Effect[Account] {
		return u.Set(u.Value)
	})
	return v
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := worker.Main(ctx, worker.App{Name: "bank", Parts: []processor.Part{account(), balances()}}, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
