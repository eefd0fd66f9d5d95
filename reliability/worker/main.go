// Command worker is the sample application plus an entity whose handlers
// misbehave on purpose (panic, hang, fail), for the reliability suite.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/sample"
	"github.com/partita-dev/partita/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	boom := entities.KeyValue[struct{}]("boom", entities.HandlerTimeout(time.Second), entities.Retries(2, 10*time.Millisecond))
	entities.Command(boom, "panic", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] { panic("boom") })
	entities.Command(boom, "hang", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		time.Sleep(time.Minute)
		return ctx.Ignore()
	})
	entities.Command(boom, "fail", func(ctx *entities.Context[struct{}], _ struct{}) entities.Effect[struct{}] {
		return ctx.Fail(errors.New("downstream unavailable"))
	})
	app := worker.App{Name: "shop", Parts: []processor.Part{sample.NewCustomer(), sample.NewCart(), sample.NewCustomersByEmail(), sample.NewCarts(), boom}}
	code := worker.Main(ctx, app, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
