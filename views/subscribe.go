package views

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// ChangeKind says what a Change is.
type ChangeKind int

// Change kinds.
const (
	Upserted ChangeKind = iota // the row matches the query (new or changed)
	Removed                    // the row no longer matches, or was deleted
	Current                    // every row of the current result has been sent; live changes follow
)

// Change is one message of a subscription.
type Change struct {
	Kind ChangeKind
	Row  Row // empty for Current; for Removed, only the ID
}

// ErrSlowSubscriber ends a subscription whose reader fell too far behind.
var ErrSlowSubscriber = errors.New("subscriber fell behind: subscription closed")

// Subscription delivers a query's current result, then its changes.
type Subscription struct {
	C <-chan Change

	c      chan Change
	rng    *util.Range
	index  string
	store  *Store
	mu     sync.Mutex
	err    error
	closed bool
}

// SubscriptionBuffer is how many changes a subscriber may fall behind
// before its subscription is closed with ErrSlowSubscriber.
const SubscriptionBuffer = 4096

// Subscribe sends every row matching q (in q's order; Limit and Page are
// ignored), then Current, then each change to a matching row as it is
// applied, until ctx ends or Close is called. Changes applied while the
// current result is read may be sent twice, never lost.
func (s *Store) Subscribe(ctx context.Context, q Query) (*Subscription, error) {
	rng, err := s.bounds(q)
	if err != nil {
		return nil, err
	}
	c := make(chan Change, SubscriptionBuffer)
	sub := &Subscription{C: c, c: c, rng: rng, index: q.Index, store: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.subs[sub] = struct{}{} // register first: nothing applied from now on is missed
	s.mu.Unlock()
	go func() {
		defer sub.Close()
		q.Limit, q.Page = MaxLimit, ""
		for {
			page, err := s.Query(q)
			if err != nil {
				sub.fail(err)
				return
			}
			for _, r := range page.Rows {
				if !sub.send(Change{Kind: Upserted, Row: r}) {
					return
				}
			}
			if page.Next == "" {
				break
			}
			q.Page = page.Next
		}
		if !sub.send(Change{Kind: Current}) {
			return
		}
		<-ctx.Done()
	}()
	return sub, nil
}

// Err returns why the subscription ended, if it ended by failure.
func (sub *Subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// Close ends the subscription and closes C.
func (sub *Subscription) Close() {
	sub.store.mu.Lock()
	delete(sub.store.subs, sub)
	sub.store.mu.Unlock()
	sub.stop()
}

func (sub *Subscription) stop() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.c)
	}
}

func (sub *Subscription) fail(err error) {
	sub.mu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	sub.mu.Unlock()
}

// send delivers ch unless the subscription is closed or its buffer is full.
func (sub *Subscription) send(ch Change) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return false
	}
	select {
	case sub.c <- ch:
		return true
	default:
		sub.err = ErrSlowSubscriber
		sub.closed = true
		close(sub.c)
		return false
	}
}

// offer sends the changes that concern the subscription's query.
func (sub *Subscription) offer(changes []change) {
	for _, c := range changes {
		was, is := sub.matches(c.id, c.old), sub.matches(c.id, c.new)
		switch {
		case is:
			sub.send(Change{Kind: Upserted, Row: Row{ID: c.id, Data: c.new}})
		case was:
			sub.send(Change{Kind: Removed, Row: Row{ID: c.id}})
		}
	}
}

func (sub *Subscription) matches(id string, row json.RawMessage) bool {
	if row == nil {
		return false
	}
	key := rowKey(id)
	if sub.index != "" {
		k, ok := indexKey(sub.index, row, id)
		if !ok {
			return false
		}
		key = k
	}
	return bytes.Compare(key, sub.rng.Start) >= 0 && (sub.rng.Limit == nil || bytes.Compare(key, sub.rng.Limit) < 0)
}
