package worker_test

import (
	"context"
	"os"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/worker"
)

// A team's worker is one call with its entities and views. Here it prints
// the topics the application needs, for an operator without create rights.
func ExampleMain() {
	app := worker.App{Name: "shop", Parts: []processor.Part{shop.NewCustomer(), shop.NewCustomersByEmail()}}
	env := map[string]string{"PARTITA_APP": "crm"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	worker.Main(context.Background(), app, []string{"topics", "plan", "--brokers", "kafka:9092"}, lookup, os.Stdout, os.Stderr)
	// Output:
	// # replication 3 unless the cluster has fewer brokers; set replication to choose
	// crm.customer-ids partitions=8 replication=3 cleanup.policy=compact,delete,retention.ms=90000000
	// crm.customer-loop partitions=8 replication=3 cleanup.policy=delete,retention.ms=604800000
	// crm.customer-table partitions=8 replication=3 cleanup.policy=compact
	// crm.customer.commands partitions=8 replication=3 cleanup.policy=delete,retention.ms=604800000
	// crm.customers-by-email-loop partitions=8 replication=3 cleanup.policy=delete,retention.ms=604800000
	// crm.customers-by-email-table partitions=8 replication=3 cleanup.policy=compact
	// crm.dlq partitions=8 replication=3 cleanup.policy=delete,retention.ms=1209600000
	// crm.replies partitions=8 replication=3 cleanup.policy=delete,retention.ms=3600000
}

// A worker binary's main is one line: Run reads the process's arguments and
// environment and stops on SIGINT or SIGTERM. (Not run here: it would start
// the worker.)
func ExampleRun() {
	os.Exit(worker.Run(shop.App()))
}
