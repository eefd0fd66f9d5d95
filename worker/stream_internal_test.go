package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/views"
)

// fakeSubscription delivers its changes, then ends with err.
type fakeSubscription struct {
	ch  chan views.Change
	err error
}

func (f *fakeSubscription) Changes() <-chan views.Change { return f.ch }
func (f *fakeSubscription) Err() error                   { return f.err }
func (f *fakeSubscription) Close()                       {}

// A stream whose subscription the view ended (the client read too slowly)
// ends with an "error" event naming why, after the changes it had; one that
// ends because the subscription closed cleanly ends without one.
func TestAStreamEndedByTheViewSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("subscription: %w", views.ErrSlowSubscriber), `"code":"slow_subscriber"`},
		{errors.New("disk gone"), `"code":"internal"`},
		{nil, ""},
	} {
		sub := &fakeSubscription{ch: make(chan views.Change, 2), err: tc.err}
		sub.ch <- views.Change{Kind: views.Upserted, Row: views.Row{ID: "k1", Data: json.RawMessage(`{"n":1}`)}}
		sub.ch <- views.Change{Kind: views.Current}
		close(sub.ch)
		w := httptest.NewRecorder()
		serveChanges(w, httptest.NewRequest("GET", "/views/carts/stream", nil), sub, time.Second)
		body := w.Body.String()
		if !strings.HasPrefix(body, "event: row\ndata: {\"id\":\"k1\",\"row\":{\"n\":1}}\n\nevent: current\n") {
			t.Fatalf("%v: the changes:\n%s", tc.err, body)
		}
		got := strings.Contains(body, "event: error\n")
		if tc.want == "" && got || tc.want != "" && (!got || !strings.Contains(body, tc.want)) {
			t.Errorf("%v: want the error event %q:\n%s", tc.err, tc.want, body)
		}
	}
}

// A view read that fails is a client's mistake (400) only when the query
// is one the view cannot answer.
func TestViewErrors(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("index %q: %w", "nope", views.ErrBadQuery): `400 {"error":{"code":"invalid_argument"`,
		errors.New("leveldb: closed"):                         `500 {"error":{"code":"internal"`,
	} {
		w := httptest.NewRecorder()
		viewError(w, err)
		if got := fmt.Sprint(w.Code, " ", w.Body.String()); !strings.HasPrefix(got, want) {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}
