package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/workflows"
)

// Order is the state of an order workflow instance: the cart it buys and
// the amount to charge; Payment is the payment service's id of the charge.
type Order struct {
	Cart    string `json:"cart"`
	Amount  int    `json:"amount"`
	Payment string `json:"payment,omitempty"`
}

// NewOrder defines the order workflow: reserve the cart's items (the cart
// entity), charge the amount (an activity against the payment service at
// payments, a URL), confirm (check the cart out). A declined charge fails
// the order: the reservation is released. A charge that succeeded is
// refunded should a later step fail. Every step is retried: the cart
// recognises a repeated reserve or checkout of the same order, and the
// payment service a repeated idempotency key.
func NewOrder(payments string) *workflows.Workflow[Order] {
	w := workflows.New[Order]("order", workflows.SendsTo("cart"), workflows.Deadline(time.Hour))
	workflows.Call(w, "reserve",
		func(id string, o Order) (string, string, string, any) {
			return "cart", o.Cart, "reserve", Reserve{Order: id}
		},
		func(o Order, _ Cart) workflows.Next[Order] { return workflows.Goto(o, "charge") },
		workflows.Compensate("release"), workflows.Timeout(10*time.Second), workflows.Retry(3, time.Second))
	workflows.Activity(w, "charge",
		func(ctx context.Context, a workflows.Attempt[Order]) (string, error) {
			return post(ctx, payments+"/charge", a.Key, chargeRequest{Amount: a.State.Amount})
		},
		func(o Order, id string) workflows.Next[Order] {
			o.Payment = id
			return workflows.Goto(o, "confirm")
		},
		workflows.Retry(3, time.Second), workflows.Timeout(10*time.Second), workflows.Compensate("refund"))
	workflows.Call(w, "confirm",
		func(id string, o Order) (string, string, string, any) {
			return "cart", o.Cart, "checkout", Checkout{Order: id}
		},
		func(o Order, _ Cart) workflows.Next[Order] { return workflows.End(o) },
		workflows.Timeout(10*time.Second), workflows.Retry(3, time.Second))
	workflows.Call(w, "release",
		func(id string, o Order) (string, string, string, any) {
			return "cart", o.Cart, "release", Release{Order: id}
		},
		func(o Order, _ Cart) workflows.Next[Order] { return workflows.End(o) },
		workflows.Retry(5, time.Second))
	workflows.Activity(w, "refund",
		func(ctx context.Context, a workflows.Attempt[Order]) (string, error) {
			return post(ctx, payments+"/refund", a.Key, refundRequest{Payment: a.State.Payment})
		},
		func(o Order, _ string) workflows.Next[Order] { return workflows.End(o) },
		workflows.Retry(5, time.Second))
	return w
}

type chargeRequest struct {
	Amount int `json:"amount"`
}

type refundRequest struct {
	Payment string `json:"payment"`
}

// post sends body to url with an Idempotency-Key and returns the id the
// service answers; a 402 (declined) is a permanent failure.
func post(ctx context.Context, url, key string, body any) (string, error) {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	switch {
	case resp.StatusCode == http.StatusPaymentRequired:
		return "", entities.Permanent(fmt.Errorf("payment declined: %s", out.Error))
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("payment service: %s %s", resp.Status, out.Error)
	}
	return out.ID, nil
}

// Payments is the sample's fake payment service, over HTTP on loopback:
// POST /charge {"amount"} and POST /refund {"payment"}, each with an
// Idempotency-Key header, answer {"id"}; a key seen before answers the
// same id and charges nothing again. Amounts over Limit are declined
// (402); a refund of no charge of its own does nothing. GET /ledger lists
// what it did, by key.
type Payments struct {
	Limit int
	mu    sync.Mutex
	byKey map[string]Payment
	srv   *http.Server
	url   string
}

// Payment is an entry of the ledger.
type Payment struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Kind   string `json:"kind"` // charge, refund
	Amount int    `json:"amount,omitempty"`
}

// StartPayments starts the fake payment service on addr ("127.0.0.1:0"
// for any free port) and returns it; Close stops it.
func StartPayments(addr string, limit int) (*Payments, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("payment service: %w", err)
	}
	p := &Payments{Limit: limit, byKey: map[string]Payment{}, url: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charge", p.handle("charge"))
	mux.HandleFunc("POST /refund", p.handle("refund"))
	mux.HandleFunc("GET /ledger", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Ledger())
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// URL is where the service listens.
func (p *Payments) URL() string { return p.url }

// Close stops the service.
func (p *Payments) Close() error { return p.srv.Close() }

// Ledger lists every charge and refund, by key.
func (p *Payments) Ledger() []Payment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Payment, 0, len(p.byKey))
	for _, e := range p.byKey {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (p *Payments) handle(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		var req struct {
			Amount  int    `json:"amount"`
			Payment string `json:"payment"`
		}
		if key == "" || json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req) != nil {
			answer(w, http.StatusBadRequest, "", errors.New("an Idempotency-Key and a JSON body are required"))
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if e, ok := p.byKey[key]; ok {
			answer(w, http.StatusOK, e.ID, nil)
			return
		}
		if kind == "charge" && req.Amount > p.Limit {
			answer(w, http.StatusPaymentRequired, "", fmt.Errorf("%d is over the limit of %d", req.Amount, p.Limit))
			return
		}
		if kind == "refund" && !p.charged(req.Payment) {
			// Nothing to refund (a compensation of a charge that timed out
			// and never happened): done, and nothing recorded.
			answer(w, http.StatusOK, "", nil)
			return
		}
		e := Payment{Key: key, ID: fmt.Sprintf("%s-%d", kind, len(p.byKey)+1), Kind: kind, Amount: req.Amount}
		p.byKey[key] = e
		answer(w, http.StatusOK, e.ID, nil)
	}
}

// charged reports whether id is a charge of the ledger (p.mu held).
func (p *Payments) charged(id string) bool {
	for _, e := range p.byKey {
		if e.Kind == "charge" && e.ID == id {
			return true
		}
	}
	return false
}

func answer(w http.ResponseWriter, code int, id string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	out := map[string]string{"id": id}
	if err != nil {
		out = map[string]string{"error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(out)
}
