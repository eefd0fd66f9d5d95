// Command worker runs Partita's sample application (the customer and cart
// entities and their views) with the worker's configuration, HTTP gateway,
// metrics and dashboard. With no Kafka bootstrap servers configured it
// starts an embedded in-process broker, so `make run` needs no Kafka.
//
// It is also the template for a team's own worker: replace the parts.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/sample"
	"github.com/partita-dev/partita/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := worker.App{Name: "shop", Parts: []processor.Part{
		sample.NewCustomer(), sample.NewCart(), sample.NewCustomersByEmail(), sample.NewCarts(),
	}}
	code := worker.Main(ctx, app, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
