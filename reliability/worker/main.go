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
	entities.Command(boom, "panic", func(*entities.Context[struct{}], struct{}) entities.Effect { panic("boom") })
	entities.Command(boom, "hang", func(*entities.Context[struct{}], struct{}) entities.Effect {
		time.Sleep(time.Minute)
		return entities.Ignore()
	})
	entities.Command(boom, "fail", func(*entities.Context[struct{}], struct{}) entities.Effect {
		return entities.Fail(errors.New("downstream unavailable"))
	})
	app := worker.App{Parts: []processor.Part{sample.NewCustomer(), sample.NewCart(), sample.NewCustomersByEmail(), sample.NewCarts(), boom}}
	code := worker.Main(ctx, app, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
