package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/kafkatest"
)

// workerBinary builds cmd/worker once per test run.
var workerBinary = sync.OnceValues(func() (string, error) { return build("../cmd/worker") })

// build builds the main package at path into a temporary directory.
func build(path string) (string, error) {
	dir, err := os.MkdirTemp("", "partita-worker-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(path))
	out, err := exec.Command("go", "build", "-o", bin, path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", path, err, out)
	}
	return bin, nil
}

// proc is a worker process.
type proc struct {
	app  string
	cmd  *exec.Cmd
	addr string // host:port of its HTTP server
	log  *bytes.Buffer
	done chan struct{}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startWorker starts a worker process of application app on brokers ("" for
// the embedded broker) and waits until it is ready.
func startWorker(t testing.TB, app, brokers string) *proc {
	t.Helper()
	bin, err := workerBinary()
	if err != nil {
		t.Fatal(err)
	}
	return startProc(t, bin, app, brokers)
}

// startProc starts the worker binary bin with args as startWorker does.
func startProc(t testing.TB, bin, app, brokers string, args ...string) *proc {
	t.Helper()
	p := launch(t, bin, app, brokers, args...)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if code, _ := get(p.addr, "/readyz"); code == http.StatusOK {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("worker exited during start-up:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s not ready in 2 minutes:\n%s", p.addr, tail(p.log.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// launch starts the worker binary bin and returns at once; the process is
// stopped (SIGTERM) when the test ends.
func launch(t testing.TB, bin, app, brokers string, args ...string) *proc {
	t.Helper()
	p := &proc{app: app, addr: freeAddr(t), log: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), "PARTITA_APP="+app, "PARTITA_HTTP_ADDR="+p.addr, "PARTITA_DATA_DIR="+t.TempDir())
	if brokers != "" {
		p.cmd.Env = append(p.cmd.Env, "KAFKA_BOOTSTRAP_SERVERS="+brokers)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("worker %s log:\n%s", p.addr, tail(p.log.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var client = &http.Client{Timeout: 20 * time.Second}

func get(addr, path string) (int, []byte) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func post(addr, path, key string, body any) (int, []byte, error) {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// owned returns the partitions of group the worker owns.
func owned(addr, group string) []int32 {
	code, body := get(addr, "/api/status")
	if code != http.StatusOK {
		return nil
	}
	var s struct {
		Partitions []struct {
			Group     string
			Partition int32
		}
	}
	_ = json.Unmarshal(body, &s)
	var out []int32
	for _, p := range s.Partitions {
		if p.Group == group {
			out = append(out, p.Partition)
		}
	}
	return out
}

// waitSpread waits until the workers own every one of the 8 partitions of
// group between them, each owning at least one, and returns who owns what.
func waitSpread(t *testing.T, group string, ws ...*proc) map[string][]int32 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		all := map[int32]bool{}
		by := map[string][]int32{}
		spread := true
		for _, w := range ws {
			ps := owned(w.addr, group)
			by[w.addr] = ps
			spread = spread && len(ps) > 0
			for _, p := range ps {
				all[p] = true
			}
		}
		if spread && len(all) == 8 {
			return by
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions of %s not spread over %d workers in 2 minutes: %v", group, len(ws), by)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestThreeWorkersShareAndSurviveAKill(t *testing.T) {
	e := kafkatest.Require(t)
	app := fmt.Sprintf("k%d", time.Now().UnixNano())
	ws := []*proc{startWorker(t, app, e.Plaintext), startWorker(t, app, e.Plaintext), startWorker(t, app, e.Plaintext)}
	before := waitSpread(t, app+".cart", ws...)
	t.Logf("cart partitions before the kill: %v", before)

	const carts, perCart = 30, 10
	var (
		mu        sync.Mutex
		live      = []*proc{ws[0], ws[1], ws[2]}
		retriable = map[string]int{}
	)
	alive := func() []*proc {
		mu.Lock()
		defer mu.Unlock()
		return append([]*proc(nil), live...)
	}
	// send retries a command on the live workers with one Idempotency-Key
	// until it gets its reply; errors it retries must be retriable ones.
	send := func(i int) error {
		key := fmt.Sprintf("%s-cmd-%d", app, i)
		cart := fmt.Sprintf("cart-%d", i%carts)
		for try := 0; try < 30; try++ {
			l := alive()
			w := l[(i+try)%len(l)]
			code, body, err := post(w.addr, "/entities/cart/"+cart+"/add-item", key, shop.AddItem{ProductID: "p", Name: "P", Quantity: 1})
			switch {
			case err == nil && code == http.StatusOK:
				return nil
			case err != nil || code == http.StatusGatewayTimeout || code == http.StatusServiceUnavailable || code == http.StatusConflict:
				mu.Lock()
				reason := fmt.Sprint(code)
				if err != nil {
					reason = "connection"
				}
				retriable[reason]++
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			default:
				return fmt.Errorf("command %d: not retriable: %d %s", i, code, body)
			}
		}
		return fmt.Errorf("command %d: no reply after 30 tries", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, carts*perCart)
	next := make(chan int)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := send(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range carts * perCart {
		if i == carts*perCart/3 {
			victim := ws[1]
			_ = victim.cmd.Process.Signal(syscall.SIGKILL) // mid-flow, no goodbye
			mu.Lock()
			live = []*proc{ws[0], ws[2]}
			mu.Unlock()
			t.Logf("killed worker %s after %d commands", victim.addr, i)
		}
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after := waitSpread(t, app+".cart", ws[0], ws[2])
	t.Logf("cart partitions after the kill: %v; retriable errors met: %v", after, retriable)

	// Every cart holds exactly its commands: nothing lost, nothing twice.
	for c := range carts {
		code, body, err := post(ws[0].addr, fmt.Sprintf("/entities/cart/cart-%d/get", c), "", struct{}{})
		if err != nil || code != http.StatusOK {
			t.Fatalf("get cart-%d: %d %s %v", c, code, body, err)
		}
		var cart shop.Cart
		_ = json.Unmarshal(body, &cart)
		if q := cart.Items["p"].Quantity; q != perCart {
			t.Errorf("cart-%d holds %d, want %d", c, q, perCart)
		}
	}
}

func TestIdempotencyMetricsAndDeadLetters(t *testing.T) {
	e := kafkatest.Require(t)
	w := startWorker(t, fmt.Sprintf("m%d", time.Now().UnixNano()), e.Plaintext)
	for range 2 {
		code, body, err := post(w.addr, "/entities/cart/k1/add-item", "same-key", shop.AddItem{ProductID: "p", Name: "P", Quantity: 2})
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"quantity":2`) {
			t.Fatalf("add-item: %d %s %v", code, body, err)
		}
	}
	code, body, _ := post(w.addr, "/entities/cart/k1/get", "", struct{}{})
	if code != http.StatusOK || !strings.Contains(string(body), `"quantity":2`) {
		t.Fatalf("the same Idempotency-Key was applied twice: %s", body)
	}
	// A payload of the wrong type is the client's mistake: 400 naming the
	// field, and no dead letter.
	code, body, _ = post(w.addr, "/entities/cart/k1/add-item", "", map[string]any{"quantity": "two"})
	if code != http.StatusBadRequest || !strings.Contains(string(body), `\"quantity\" is a JSON string`) {
		t.Errorf("bad payload: %d %s", code, body)
	}
	code, body, _ = post(w.addr, "/entities/nope/k1/get", "", struct{}{})
	if code != http.StatusNotFound {
		t.Errorf("unknown entity: %d %s", code, body)
	}

	_, metrics := get(w.addr, "/metrics")
	value := func(series string) float64 {
		for _, l := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(l, series+" ") {
				var v float64
				_, _ = fmt.Sscan(strings.TrimPrefix(l, series+" "), &v)
				return v
			}
		}
		t.Errorf("no series %s in /metrics", series)
		return -1
	}
	group := w.app + ".cart"
	for series, check := range map[string]func(float64) bool{
		"partita_records_processed_total":                                     func(v float64) bool { return v >= 3 },
		"partita_dedup_hits_total":                                            func(v float64) bool { return v == 1 },
		"partita_dead_letters_total":                                          func(v float64) bool { return v == 0 },
		"partita_rerouted_total":                                              func(v float64) bool { return v == 0 },
		`partita_handler_duration_seconds_count{group="` + group + `"}`:       func(v float64) bool { return v >= 3 },
		`partita_consumer_lag_records{group="` + group + `",partition="0"}`:   func(v float64) bool { return v == 0 },
		`partita_partition_recovered{group="` + group + `",partition="0"}`:    func(v float64) bool { return v == 1 },
		`partita_recovery_total_records{group="` + group + `",partition="0"}`: func(v float64) bool { return v >= 0 },
		`partita_view_lag_records{partition="0",view="carts"}`:                func(v float64) bool { return v == 0 },
		`partita_rebalances_total{group="` + group + `"}`:                     func(v float64) bool { return v >= 1 },
		`partita_http_requests_total{code="200"}`:                             func(v float64) bool { return v >= 3 },
	} {
		if v := value(series); !check(v) {
			t.Errorf("%s = %v: implausible", series, v)
		}
	}
}

// Timers on worker processes and the real broker: carts expire after 4 s
// idle (SHOP_CART_IDLE). Their timers survive kill -9 of the only worker
// holding them (fired on recovery by the workers that take over, though
// overdue by then), and move to the remaining worker when another leaves
// the group. Each cart persists exactly one CartExpired: its sequence
// number is 2 (ItemAdded, CartExpired).
func TestTimersSurviveAKillAndMoveOnRebalance(t *testing.T) {
	e := kafkatest.Require(t)
	app := fmt.Sprintf("tm%d", time.Now().UnixNano())
	t.Setenv("SHOP_CART_IDLE", "4s")
	add := func(w *proc, cart string) {
		t.Helper()
		if code, body, err := post(w.addr, "/entities/cart/"+cart+"/add-item", "", shop.AddItem{ProductID: "p", Name: "P", Quantity: 1}); code != http.StatusOK {
			t.Fatalf("add-item %s: %d %s %v", cart, code, body, err)
		}
	}
	expired := func(w *proc, carts []string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for _, cart := range carts {
			for {
				code, body := get(w.addr, "/entities/cart/"+cart)
				var st struct {
					Seq   uint64    `json:"seq"`
					State shop.Cart `json:"state"`
				}
				_ = json.Unmarshal(body, &st)
				if code == http.StatusOK && st.State.Expired {
					if st.Seq != 2 {
						t.Errorf("%s: sequence %d after expiring, want 2: expired more than once", cart, st.Seq)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not expire within a minute: %d %s", cart, code, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}

	// Killed: a lone worker takes 12 carts' timers down with it.
	w1 := startWorker(t, app, e.Plaintext)
	var first []string
	for i := range 12 {
		first = append(first, fmt.Sprintf("kill-%d", i))
		add(w1, first[i])
	}
	_ = w1.cmd.Process.Signal(syscall.SIGKILL)
	<-w1.done
	w2, w3 := startWorker(t, app, e.Plaintext), startWorker(t, app, e.Plaintext)
	waitSpread(t, app+".cart", w2, w3)
	expired(w2, first)

	// Rebalanced: w3 leaves while 12 more carts' timers are pending; w2
	// takes its partitions and fires them.
	var second []string
	for i := range 12 {
		second = append(second, fmt.Sprintf("move-%d", i))
		add(w2, second[i])
	}
	_ = w3.cmd.Process.Signal(syscall.SIGTERM)
	<-w3.done
	expired(w2, second)
	if code, body := get(w2.addr, "/metrics"); code != http.StatusOK || !strings.Contains(string(body), `partita_timers_pending{entity="cart"} 0`) {
		t.Errorf("metrics after every timer fired: %d\n%s", code, grep(string(body), "partita_timer"))
	}
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
