// Command worker runs a Partita application: its entities and views, and the
// HTTP door to them. With no Kafka bootstrap servers configured it starts an
// embedded in-process broker, so `make run` needs no Kafka.
//
//	worker [run]   start the worker (default)
//	worker check   connect to Kafka and report the cluster, the brokers, the
//	               auth in use and the topic permissions; exit 1 on failure
//
// Configuration, later sources overriding earlier ones: a YAML file
// (--config), the environment (KAFKA_*, PARTITA_*), flags. Secrets come from
// the environment or files only, never from flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
