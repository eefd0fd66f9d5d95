// Package main must not compile: a key-value handler returns Update with
// a state that is not the entity's (entities/typesafety_test.go).
package main

import "github.com/partita-dev/partita/entities"

type Customer struct{ Name string }
type Cart struct{ Items int }

func main() {
	e := entities.KeyValue[Customer]("customer")
	entities.Command(e, "create", func(ctx *entities.Context[Customer], _ struct{}) entities.Effect[Customer] {
		return ctx.Update(Cart{Items: 1})
	})
}
