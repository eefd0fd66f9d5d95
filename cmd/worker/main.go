// Command worker runs Partita's sample application (examples/shop: the
// customer and cart entities and their views) with the worker's
// configuration, HTTP gateway, metrics and dashboard. With no Kafka
// bootstrap servers configured it starts an embedded in-process broker, so
// `make run` needs no Kafka.
//
// It is also the template for a team's own worker: replace shop.App() with
// the team's worker.App.
package main

import (
	"os"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/worker"
)

func main() { os.Exit(worker.Run(shop.App())) }
