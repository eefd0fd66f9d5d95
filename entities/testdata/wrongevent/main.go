// Package main must not compile: an event-sourced handler persists an
// event that is not of the entity's event type (entities/typesafety_test.go).
package main

import "github.com/partita-dev/partita/entities"

type Cart struct{ Items int }

// CartEvent is the cart's event type: only its own events implement it.
type CartEvent interface {
	entities.Event
	cartEvent()
}

type ItemAdded struct{}

func (ItemAdded) EventType() string { return "ItemAdded" }
func (ItemAdded) cartEvent()        {}

// Shipped is an event of another entity.
type Shipped struct{}

func (Shipped) EventType() string { return "Shipped" }

func main() {
	e := entities.EventSourced[Cart, CartEvent]("cart", func(c Cart, _ CartEvent) Cart { return c })
	entities.EventCommand(e, "ship", func(ctx *entities.EventContext[Cart, CartEvent], _ struct{}) entities.Effect[Cart] {
		return ctx.Persist(Shipped{})
	})
}
