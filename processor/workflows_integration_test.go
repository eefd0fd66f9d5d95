package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/workflows"
)

type purchase struct {
	Item    string `json:"item"`
	Charged string `json:"charged"`
}

// A workflow on the real broker: 30 instances reserve stock (an entity
// call), charge a fake payment service over HTTP (an activity whose first
// attempt of every third instance fails) and confirm; the runtime is
// stopped and started again while they run. Every instance completes, the
// service's ledger holds each instance's idempotency key once, and the
// stock was reserved once per instance.
func TestWorkflowOnTheBroker(t *testing.T) {
	var mu sync.Mutex
	ledger := map[string]int{}
	attempts := map[string]int{}
	pay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		attempts[key]++
		var n int
		fmt.Sscanf(key, "buy/p%d/charge", &n)
		if n%3 == 0 && attempts[key] == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		ledger[key] = 1 // the service charges a key once
		fmt.Fprintf(w, "charge-%d", len(ledger))
	}))
	defer pay.Close()

	stockE := entities.KeyValue[int]("stock")
	entities.Command(stockE, "reserve", func(ctx *entities.Context[int], _ struct{}) entities.Effect[int] {
		return ctx.Update(ctx.State() + 1).Reply(ctx.State() + 1)
	})
	buy := workflows.New[purchase]("buy", workflows.SendsTo("stock"))
	workflows.Call(buy, "reserve", func(_ string, p purchase) (string, string, string, any) {
		return "stock", p.Item, "reserve", struct{}{}
	},
		func(p purchase, _ int) workflows.Next[purchase] { return workflows.Goto(p, "charge") })
	workflows.Activity(buy, "charge", func(ctx context.Context, a workflows.Attempt[purchase]) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pay.URL, nil)
		req.Header.Set("Idempotency-Key", a.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("payment service: %s", resp.Status)
		}
		return "ok", nil
	}, func(p purchase, id string) workflows.Next[purchase] { p.Charged = id; return workflows.End(p) },
		workflows.Retry(3, 500*time.Millisecond), workflows.Timeout(5*time.Second))

	a := newApp(t, stockE, buy)
	a.start()
	const n = 30
	for i := range n {
		a.send(message(a.topics.Commands("buy"), cmd(fmt.Sprintf("p%d", i), workflows.CommandStart, fmt.Sprintf("start-%d", i), purchase{Item: fmt.Sprintf("item-%d", i%3)})))
		if i == n/2 {
			a.stop()
			a.renew()
			a.start()
		}
	}
	a.table("buy", a.cfg.Partitions, 2*time.Minute, func(latest map[string]*envelope.Envelope) bool {
		for i := range n {
			env := latest[fmt.Sprintf("p%d", i)]
			if env == nil {
				return false
			}
			var in workflows.Instance[purchase]
			if err := json.Unmarshal(env.State, &in); err != nil {
				t.Fatal(err)
			}
			if in.Status == workflows.Compensated || in.Status == workflows.Failed {
				t.Fatalf("p%d: %s: %s", i, in.Status, in.Reason)
			}
			if in.Status != workflows.Completed {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ledger) != n {
		t.Errorf("the ledger holds %d keys, want %d", len(ledger), n)
	}
	for i := range n {
		if key := fmt.Sprintf("buy/p%d/charge", i); ledger[key] != 1 || i%3 == 0 && attempts[key] < 2 {
			t.Errorf("%s: ledger %d, attempts %d", key, ledger[key], attempts[key])
		}
	}
	a.table("stock", a.cfg.Partitions, time.Minute, func(latest map[string]*envelope.Envelope) bool {
		for i := range 3 {
			env := latest[fmt.Sprintf("item-%d", i)]
			if env == nil {
				return false
			}
			var got int
			_ = json.Unmarshal(env.State, &got)
			if got > n/3 {
				t.Fatalf("item-%d reserved %d times, want %d: a step applied twice", i, got, n/3)
			}
			if got < n/3 {
				return false
			}
		}
		return true
	})
}
