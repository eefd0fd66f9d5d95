package worker

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/partita-dev/partita/internal/viewstore"
)

// FuzzParseQuery: any query string either parses to a query the store
// accepts or rejects (never a panic), or is rejected with an error.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{"index=email&eq=a@b.c", "index=n&gte=5&lt=10&order=desc&limit=3", "index=email&prefix=al", "page=xyz", "limit=-1", "order=sideways", "eq=%7B%7D", "index=n&eq=null"} {
		f.Add(q)
	}
	store, err := viewstore.OpenMemory("email", "n")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := url.ParseQuery(raw); err != nil {
			return
		}
		q, err := parseQuery(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/views/v", RawQuery: raw}})
		if err != nil {
			return
		}
		_, _ = store.Query(t.Context(), q)
		_, _ = store.Count(t.Context(), q)
	})
}
