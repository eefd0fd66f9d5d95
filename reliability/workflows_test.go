//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/workflows"
)

// TestReliabilityWorkflows is the suite's workflow phase: three worker
// processes run the shop's order workflow (reserve the cart, charge the
// fake payment service, check the cart out) for many orders, a fifth of
// them declined, while workers are killed with SIGKILL and restarted.
// Every order ends (completed, or compensated when declined); the payment
// service's ledger, which keeps each idempotency key once, holds exactly
// the completed orders' charges; each cart's events are exactly those of
// its order's path: reserved and checked out, or reserved and released,
// once (sequence 3).
func TestReliabilityWorkflows(t *testing.T) {
	orders, kills := 150, 2
	if os.Getenv("RELIABILITY") == "full" {
		orders, kills = 1000, 6
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	_, env := suiteBroker(ctx, t)
	pay, err := shop.StartPayments("127.0.0.1:0", shop.PaymentLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer pay.Close()
	workers := startWorkers(t, fmt.Sprintf("rw%d", time.Now().UnixNano()), env.Plaintext, 3, "SHOP_PAYMENTS_URL="+pay.URL())

	// Chaos: kill a random worker every 10 s and start it again.
	var killed atomic.Int64
	done := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		r := rand.New(rand.NewPCG(3, 4))
		for killed.Load() < int64(kills) {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Second):
			}
			w := workers[r.IntN(len(workers))]
			w.kill()
			killed.Add(1)
			w.start(t)
		}
	}()

	declined := func(i int) bool { return i%5 == 0 }
	var retried atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, orders)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cart, order := fmt.Sprintf("wc-%d", i), fmt.Sprintf("wo-%d", i)
				amount := 40
				if declined(i) {
					amount = 5000
				}
				if !post(workers, i, "/entities/cart/"+cart+"/add-item", "add-"+cart, shop.AddItem{ProductID: "p", Name: "P", Quantity: 1}, &retried) ||
					!post(workers, i, "/entities/order/"+order+"/start", "start-"+order, shop.Order{Cart: cart, Amount: amount}, &retried) {
					errs <- fmt.Errorf("order %d: no answer from any worker in 3 minutes", i)
				}
			}
		}()
	}
	start := time.Now()
	pace := time.Duration(kills+1) * 10 * time.Second / time.Duration(orders) // the orders span the kills
	for i := range orders {
		next <- i
		time.Sleep(pace)
	}
	close(next)
	wg.Wait()
	close(done)
	chaos.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every order ends as its amount says.
	deadline := time.Now().Add(5 * time.Minute)
	var completed, compensated int
	for i := range orders {
		for {
			var st struct {
				State workflows.Instance[shop.Order] `json:"state"`
			}
			code, body := getJSON(workers, i, fmt.Sprintf("/entities/order/wo-%d", i), &st)
			want := workflows.Completed
			if declined(i) {
				want = workflows.Compensated
			}
			if code == http.StatusOK && st.State.Status == want {
				if want == workflows.Completed {
					completed++
				} else {
					compensated++
				}
				break
			}
			if code == http.StatusOK && (st.State.Status == workflows.Failed || st.State.Status == workflows.Compensated && want == workflows.Completed) {
				t.Fatalf("wo-%d ended %s: %s", i, st.State.Status, st.State.Reason)
			}
			if time.Now().After(deadline) {
				t.Fatalf("wo-%d did not end: %d %s", i, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The ledger holds each completed order's charge once, and nothing else.
	ledger := map[string]int{}
	for _, e := range pay.Ledger() {
		if e.Kind == "charge" {
			ledger[e.Key]++
		} else {
			t.Errorf("the ledger holds a %s: %+v (no completed order is refunded)", e.Kind, e)
		}
	}
	for i := range orders {
		key := fmt.Sprintf("order/wo-%d/charge", i)
		if n := ledger[key]; declined(i) && n != 0 || !declined(i) && n != 1 {
			t.Errorf("%s in the ledger %d times", key, n)
		}
	}
	if len(ledger) != completed {
		t.Errorf("the ledger holds %d charges for %d completed orders", len(ledger), completed)
	}
	// Each cart went through its order's path once.
	for i := range orders {
		var st struct {
			Seq   uint64    `json:"seq"`
			State shop.Cart `json:"state"`
		}
		deadline := time.Now().Add(time.Minute)
		for {
			code, _ := getJSON(workers, i, fmt.Sprintf("/entities/cart/wc-%d", i), &st)
			if code == http.StatusOK && st.Seq >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("wc-%d: %d, sequence %d", i, code, st.Seq)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if st.Seq != 3 || st.State.CheckedOut == declined(i) || st.State.Order != "" && declined(i) {
			t.Errorf("wc-%d: sequence %d, %+v (declined %v): a step or compensation applied twice, or not", i, st.Seq, st.State, declined(i))
		}
	}
	t.Logf("workflows: %d orders in %v, %d killed workers; %d completed, %d compensated; ledger %d charges; %d requests retried on another worker",
		orders, time.Since(start).Round(time.Second), killed.Load(), completed, compensated, len(ledger), retried.Load())
}

// post sends body to path with an Idempotency-Key, to the workers in
// turn, until one answers 200 (3 minutes at most).
func post(ws []*worker, from int, path, key string, body any, retried *atomic.Int64) bool {
	data, _ := json.Marshal(body)
	deadline := time.Now().Add(3 * time.Minute)
	for try := 0; time.Now().Before(deadline); try++ {
		w := ws[(from+try)%len(ws)]
		req, _ := http.NewRequest(http.MethodPost, "http://"+w.addr+path, bytes.NewReader(data))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := httpc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		retried.Add(1)
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// getJSON reads path from a worker that answers and decodes it into v.
func getJSON(ws []*worker, from int, path string, v any) (int, []byte) {
	for try := range len(ws) {
		resp, err := httpc.Get("http://" + ws[(from+try)%len(ws)].addr + path)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			_ = json.Unmarshal(body, v)
		}
		return resp.StatusCode, body
	}
	return 0, nil
}
