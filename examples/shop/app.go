package shop

import (
	"fmt"
	"os"
	"time"

	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/worker"
)

// Name is the application's name, the prefix of its topics
// ("shop.cart.commands") unless PARTITA_APP or --app says otherwise.
const Name = "shop"

// PaymentLimit is the largest amount the sample's fake payment service
// charges; more is declined.
const PaymentLimit = 1000

// Parts returns the application's entities, views and (with a payment
// service's URL) the order workflow; carts expire after idle without a
// change (0: never).
func Parts(idle time.Duration, payments string) []processor.Part {
	parts := []processor.Part{NewCustomer(), NewCartIdle(idle), NewCustomersByEmail(), NewCarts()}
	if payments != "" {
		parts = append(parts, NewOrder(payments))
	}
	return parts
}

// App returns the application, for [worker.Run] or [worker.Main]. Carts
// expire after the environment's SHOP_CART_IDLE (a Go duration: "90s",
// "2h"), DefaultCartIdle when it is unset or unreadable. The order
// workflow charges the payment service at SHOP_PAYMENTS_URL, or else a fake
// one App starts on a free loopback port (StartPayments; its ledger at
// /ledger).
func App() worker.App {
	idle := DefaultCartIdle
	if d, err := time.ParseDuration(os.Getenv("SHOP_CART_IDLE")); err == nil && d > 0 {
		idle = d
	}
	payments := os.Getenv("SHOP_PAYMENTS_URL")
	if payments == "" {
		p, err := StartPayments("127.0.0.1:0", PaymentLimit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "shop: no order workflow:", err)
		} else {
			payments = p.URL()
			fmt.Fprintln(os.Stderr, "shop: fake payment service at", payments)
		}
	}
	return worker.App{Name: Name, Parts: Parts(idle, payments)}
}
