package shop

import (
	"os"
	"time"

	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/worker"
)

// Name is the application's name, the prefix of its topics
// ("shop.cart.commands") unless PARTITA_APP or --app says otherwise.
const Name = "shop"

// Parts returns the application's entities and views, carts expiring
// after idle without a change (0: never).
func Parts(idle time.Duration) []processor.Part {
	return []processor.Part{NewCustomer(), NewCartIdle(idle), NewCustomersByEmail(), NewCarts()}
}

// App returns the application, for [worker.Run] or [worker.Main]. Carts
// expire after the environment's SHOP_CART_IDLE (a Go duration: "90s",
// "2h"), DefaultCartIdle when it is unset or unreadable.
func App() worker.App {
	idle := DefaultCartIdle
	if d, err := time.ParseDuration(os.Getenv("SHOP_CART_IDLE")); err == nil && d > 0 {
		idle = d
	}
	return worker.App{Name: Name, Parts: Parts(idle)}
}
