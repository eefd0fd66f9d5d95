package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Reader reads a view: the read side of the replica a worker keeps of the
// view's table. processor.Runtime.View and partitatest.Harness.View return
// one; the runtime alone writes to it. Safe for concurrent use.
//
// Every method honours ctx: a query or a count ends with ctx.Err() (or an
// error wrapping it) when ctx ends before it is done, a subscription when
// ctx ends, and WaitFor with [ErrStale] wrapping ctx.Err().
type Reader interface {
	// Get returns the row with id, and whether it exists.
	Get(ctx context.Context, id string) (Row, bool, error)
	// Query returns one page of the rows matching q. A query the view
	// cannot answer (an unindexed field, conditions that exclude each
	// other, a page token of another query) fails with [ErrBadQuery].
	Query(ctx context.Context, q Query) (Page, error)
	// Count returns how many rows match q (Limit and Page are ignored).
	Count(ctx context.Context, q Query) (int, error)
	// Subscribe sends every row matching q (in q's order; Limit and Page
	// are ignored), then Current, then each change to a matching row as it
	// is applied, until ctx ends or the subscription is closed. Changes
	// applied while the current result is read may be sent twice, never
	// lost.
	Subscribe(ctx context.Context, q Query) (Subscription, error)
	// WaitFor waits until the view has applied the position token of a
	// command's reply (read-your-writes): until it holds the row of the
	// token's subject at the token's sequence from the token's entity or
	// later. It fails with [ErrBadQuery] for a malformed token and with
	// [ErrStale] when ctx ends first; a position already applied returns
	// nil even with an ended ctx (so an ended ctx checks without waiting).
	// It holds for views whose rows are keyed by the source subject (all
	// views today).
	WaitFor(ctx context.Context, position string) error
}

// Errors of the read API.
var (
	// ErrBadQuery: the query names an unindexed field, mixes incompatible
	// conditions, or carries a page token from another query.
	ErrBadQuery = errors.New("bad view query")
	// ErrStale: a query given a position token timed out before the view
	// applied that position.
	ErrStale = errors.New("view has not caught up with the position in time")
	// ErrClosed: the view's replica was closed (its runtime stopped).
	ErrClosed = errors.New("view store closed")
	// ErrSlowSubscriber ends a subscription whose reader fell too far behind.
	ErrSlowSubscriber = errors.New("subscriber fell behind: subscription closed")
)

// Row is one row of a query result.
type Row struct {
	ID   string          `json:"id"`
	Data json.RawMessage `json:"row"`
}

// Query selects rows. With no Index it walks rows by id. With Index it walks
// the index of that field: Eq, or a range (Gt/Gte and Lt/Lte), or Prefix
// (strings). Desc reverses the order. Limit bounds a page (0: 100; at most
// 1,000); Page continues after the page that returned it.
//
// Paging is by key, not by position: a row added or changed ahead of the
// cursor shows on a later page, one behind it does not, and a row whose
// indexed value moves across the cursor between pages can be seen twice or
// not at all. Rows that do not change are visited exactly once.
type Query struct {
	Index  string
	Eq     any
	Gt     any
	Gte    any
	Lt     any
	Lte    any
	Prefix *string
	Desc   bool
	Limit  int
	Page   string
}

// Page is one page of a query result. Next is empty on the last page.
type Page struct {
	Rows []Row  `json:"rows"`
	Next string `json:"next,omitempty"`
}

// MaxLimit bounds a page.
const MaxLimit = 1000

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

// Subscription delivers a query's current result, then its changes
// ([Reader.Subscribe]).
type Subscription interface {
	// Changes delivers the changes in order; it is closed when the
	// subscription ends.
	Changes() <-chan Change
	// Err returns why the subscription ended, if it ended by failure
	// ([ErrSlowSubscriber], or the error of reading the current result).
	Err() error
	// Close ends the subscription and closes Changes.
	Close()
}

// SubscriptionBuffer is how many changes a subscriber may fall behind
// before its subscription is closed with [ErrSlowSubscriber].
const SubscriptionBuffer = 4096

// Get returns the row with id from r, decoded.
func Get[R any](ctx context.Context, r Reader, id string) (R, bool, error) {
	var v R
	row, ok, err := r.Get(ctx, id)
	if err != nil || !ok {
		return v, ok, err
	}
	return v, true, json.Unmarshal(row.Data, &v)
}

// Decode decodes query result rows.
func Decode[R any](rows []Row) ([]R, error) {
	out := make([]R, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Data, &out[i]); err != nil {
			return nil, fmt.Errorf("row %s: %w", r.ID, err)
		}
	}
	return out, nil
}
