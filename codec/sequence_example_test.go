package codec_test

import (
	"fmt"

	"github.com/partita-dev/partita/codec"
)

// A consumer of an entity's events topic that is not a Partita view: a
// worker crash can write an event again behind newer ones, with the same id
// and sequence number; Latest drops it.
func ExampleLatest() {
	event := func(id string, seq int) codec.Event {
		e := codec.NewEvent()
		e.SetID(id)
		e.SetSource("partita/shop/cart")
		e.SetType("ItemAdded")
		e.SetSubject("k-1")
		e.SetExtension(codec.ExtSequence, seq)
		return e
	}
	var latest codec.Latest
	for _, e := range []codec.Event{event("k-1:1", 1), event("k-1:2", 2), event("k-1:1", 1), event("k-1:3", 3)} {
		fmt.Println(e.ID(), latest.Newer(e))
	}
	// Output:
	// k-1:1 true
	// k-1:2 true
	// k-1:1 false
	// k-1:3 true
}
