package shop

import (
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/worker"
)

// Name is the application's name, the prefix of its topics
// ("shop.cart.commands") unless PARTITA_APP or --app says otherwise.
const Name = "shop"

// Parts returns the application's entities and views.
func Parts() []processor.Part {
	return []processor.Part{NewCustomer(), NewCart(), NewCustomersByEmail(), NewCarts()}
}

// App returns the application, for [worker.Run] or [worker.Main].
func App() worker.App { return worker.App{Name: Name, Parts: Parts()} }
