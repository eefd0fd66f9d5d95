// Command reliability-worker is the sample application plus an entity whose
// handlers misbehave on purpose (panic, hang, fail), for the reliability
// suite (reliability/), which builds and runs it.
package main

import (
	"errors"
	"os"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/worker"
)

func main() {
	boom := entities.KeyValue[struct{}]("boom", entities.HandlerTimeout(time.Second), entities.Retries(2, 10*time.Millisecond))
	entities.Command(boom, "panic", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] { panic("boom") })
	entities.Command(boom, "hang", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		time.Sleep(time.Minute)
		return ctx.Ignore()
	})
	entities.Command(boom, "fail", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		return ctx.Fail(errors.New("downstream unavailable"))
	})
	// Carts never expire here: the suite's model of the shop (shopmodel)
	// has no idle timer, and its runs can outlast one. The order workflow
	// runs when the suite names a payment service (its workflow phase).
	app := worker.App{Name: shop.Name, Parts: append(shop.Parts(0, os.Getenv("SHOP_PAYMENTS_URL")), boom)}
	os.Exit(worker.Run(app))
}
