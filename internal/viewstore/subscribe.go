package viewstore

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/partita-dev/partita/views"
)

// subscription is a views.Subscription on a Store.
type subscription struct {
	c      chan views.Change
	rng    *util.Range
	index  string
	store  *Store
	mu     sync.Mutex
	err    error
	closed bool
}

// Subscribe sends every row matching q (in q's order; Limit and Page are
// ignored), then views.Current, then each change to a matching row as it is
// applied, until ctx ends or Close is called. Changes applied while the
// current result is read may be sent twice, never lost.
func (s *Store) Subscribe(ctx context.Context, q views.Query) (views.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rng, err := s.bounds(q)
	if err != nil {
		return nil, err
	}
	sub := &subscription{c: make(chan views.Change, views.SubscriptionBuffer), rng: rng, index: q.Index, store: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, views.ErrClosed
	}
	s.subs[sub] = struct{}{} // register first: nothing applied from now on is missed
	s.mu.Unlock()
	go func() {
		defer sub.Close()
		q.Limit, q.Page = views.MaxLimit, ""
		for {
			page, err := s.Query(ctx, q)
			if err != nil {
				if ctx.Err() == nil {
					sub.fail(err)
				}
				return
			}
			for _, r := range page.Rows {
				if !sub.send(views.Change{Kind: views.Upserted, Row: r}) {
					return
				}
			}
			if page.Next == "" {
				break
			}
			q.Page = page.Next
		}
		if !sub.send(views.Change{Kind: views.Current}) {
			return
		}
		<-ctx.Done()
	}()
	return sub, nil
}

func (sub *subscription) Changes() <-chan views.Change { return sub.c }

func (sub *subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

func (sub *subscription) Close() {
	sub.store.mu.Lock()
	delete(sub.store.subs, sub)
	sub.store.mu.Unlock()
	sub.stop()
}

func (sub *subscription) stop() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.c)
	}
}

func (sub *subscription) fail(err error) {
	sub.mu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	sub.mu.Unlock()
}

// send delivers ch unless the subscription is closed or its buffer is full.
func (sub *subscription) send(ch views.Change) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return false
	}
	select {
	case sub.c <- ch:
		return true
	default:
		sub.err = views.ErrSlowSubscriber
		sub.closed = true
		close(sub.c)
		return false
	}
}

// offer sends the changes that concern the subscription's query.
func (sub *subscription) offer(changes []change) {
	for _, c := range changes {
		was, is := sub.matches(c.id, c.old), sub.matches(c.id, c.new)
		switch {
		case is:
			sub.send(views.Change{Kind: views.Upserted, Row: views.Row{ID: c.id, Data: c.new}})
		case was:
			sub.send(views.Change{Kind: views.Removed, Row: views.Row{ID: c.id}})
		}
	}
}

func (sub *subscription) matches(id string, row json.RawMessage) bool {
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
