//go:build reliability

// Package reliability holds the suite that proves Partita's promises on the
// real broker and reports a figure for each: workers killed with SIGKILL
// while commands flow, the broker restarted mid-run, bad input mixed into
// normal traffic. It runs its own broker (it restarts it) so that other test
// packages are not disturbed.
//
// `make test` runs the short form; `make reliability` (RELIABILITY=full) the
// full one: 100,000 commands and more kills. The build tag keeps it out of
// `go test ./...`, which runs packages side by side: it runs alone.
package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/recordtest"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/sample"
)

type params struct {
	commands  int           // total commands: half through the gateway, half straight onto the topic
	carts     int           // subjects
	kills     int           // workers killed with SIGKILL (and restarted)
	killEvery time.Duration // between kills
}

func config() params {
	if os.Getenv("RELIABILITY") == "full" {
		return params{commands: 100_000, carts: 1000, kills: 8, killEvery: 5 * time.Second}
	}
	return params{commands: 3000, carts: 100, kills: 2, killEvery: 3 * time.Second}
}

// worker is a worker process that can be killed and restarted on its data.
type worker struct {
	bin, app, brokers, dir, addr string
	mu                           sync.Mutex
	cmd                          *exec.Cmd
	done                         chan struct{}
}

func (w *worker) start(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cmd = exec.Command(w.bin)
	w.cmd.Env = append(os.Environ(), "PARTITA_APP="+w.app, "PARTITA_HTTP_ADDR="+w.addr, "PARTITA_DATA_DIR="+w.dir, "KAFKA_BOOTSTRAP_SERVERS="+w.brokers)
	logf, err := os.OpenFile(filepath.Join(w.dir, "worker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	w.done = done
	cmd := w.cmd
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
}

func (w *worker) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

func (w *worker) exited() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

var httpc = &http.Client{Timeout: 15 * time.Second}

func waitReady(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := httpc.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("worker %s not ready within %v", addr, within)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestReliability(t *testing.T) {
	p := config()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root, _ := filepath.Abs("..")
	paths := kafkatest.Paths{Home: filepath.Join(root, ".cache", "kafka-reliability"), Pom: filepath.Join(root, "internal", "kafkatest", "pom.xml")}
	env, err := kafkatest.Up(ctx, paths, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kafkatest.Down(paths) })

	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "./worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	app := fmt.Sprintf("r%d", time.Now().UnixNano())
	workers := make([]*worker, 3)
	for i := range workers {
		workers[i] = &worker{bin: bin, app: app, brokers: env.Plaintext, dir: t.TempDir(), addr: freeAddr(t)}
		workers[i].start(t)
	}
	for _, w := range workers {
		waitReady(t, w.addr, 2*time.Minute)
	}
	t.Cleanup(func() {
		for _, w := range workers {
			if !w.exited() {
				_ = w.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-w.done:
				case <-time.After(20 * time.Second):
					w.kill()
				}
			}
			if t.Failed() {
				data, _ := os.ReadFile(filepath.Join(w.dir, "worker.log"))
				t.Logf("worker %s log tail:\n%s", w.addr, tail(string(data), 3000))
			}
		}
	})

	producer := newProducer(t, env.Plaintext)
	var (
		sent       = make([]atomic.Int64, p.carts) // per cart, commands acknowledged
		viaGateway atomic.Int64
		direct     atomic.Int64
		retriable  atomic.Int64
		kills      atomic.Int64
		restarts   atomic.Int64
		done       = make(chan struct{})
	)
	// Chaos: kill a random worker with SIGKILL every killEvery, restart it;
	// restart the broker once, mid-run.
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for kills.Load() < int64(p.kills) {
			select {
			case <-done:
				return
			case <-time.After(p.killEvery):
			}
			w := workers[r.IntN(len(workers))]
			w.kill()
			kills.Add(1)
			w.start(t)
			if kills.Load() == 1 {
				if _, err := kafkatest.Restart(ctx, paths); err != nil {
					t.Errorf("broker restart: %v", err)
					return
				}
				restarts.Add(1)
			}
		}
	}()

	// Bad input, mixed into the traffic.
	kinds := badInput(app)
	for _, b := range kinds {
		sendRaw(t, producer, b.Topic, b.Record)
	}

	// Normal traffic: half through the gateways (retried with one
	// Idempotency-Key until answered), half straight onto the topic.
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cart := i % p.carts
				if i%2 == 0 {
					if sendViaGateway(workers, app, i, cart, &retriable) {
						viaGateway.Add(1)
						sent[cart].Add(1)
					} else {
						t.Errorf("command %d: no reply after retrying for 3 minutes", i)
					}
					continue
				}
				ev := addItem(fmt.Sprintf("cart-%d", cart), fmt.Sprintf("%s-direct-%d", app, i))
				for try := 0; ; try++ {
					if err := sendEvent(producer, app+".cart.commands", ev); err == nil {
						break
					} else if try > 100 {
						t.Errorf("command %d: the broker did not take it: %v", i, err)
						break
					}
					retriable.Add(1)
					time.Sleep(300 * time.Millisecond)
				}
				direct.Add(1)
				sent[cart].Add(1)
			}
		}()
	}
	start := time.Now()
	for i := range p.commands {
		next <- i
	}
	close(next)
	wg.Wait()
	close(done)
	chaos.Wait()
	sendDuration := time.Since(start)

	// Let every worker settle, then compare each cart with the ledger.
	for _, w := range workers {
		waitReady(t, w.addr, 3*time.Minute)
	}
	// The cart's state (its table topic) and the carts view (its table
	// topic, folded from the cart's events) must both match the ledger.
	var lost, twice, viewOff int64
	state := settled(p.carts, sent, func() map[string]int64 {
		return latest(t, env.Plaintext, app+".cart-table", cartQuantity)
	})
	view := settled(p.carts, sent, func() map[string]int64 {
		return latest(t, env.Plaintext, app+".carts-table", rowQuantity)
	})
	for c := range p.carts {
		want, have := sent[c].Load(), state[fmt.Sprintf("cart-%d", c)]
		if have < want {
			lost += want - have
		}
		if have > want {
			twice += have - want
		}
		if view[fmt.Sprintf("cart-%d", c)] != want {
			viewOff++
		}
	}

	// Every bad record is in the dead-letter topic with a reason.
	routed := deadLetters(t, env.Plaintext, app+".dlq", len(kinds))
	var kindsRouted int
	var rows []string
	for _, b := range kinds {
		reason := routed[b.Kind]
		ok := strings.Contains(reason, b.Reason)
		if ok {
			kindsRouted++
		} else {
			t.Errorf("bad input %q: dead-letter reason %q, want it to say %q", b.Kind, reason, b.Reason)
		}
		rows = append(rows, fmt.Sprintf("| bad input: %s | %v | %s |", b.Kind, ok, strings.SplitN(reason, "\n", 2)[0]))
	}
	authNamed, authCases, authOutput := authFaults(t, env)
	crashes := 0
	for _, w := range workers {
		if w.exited() {
			crashes++
		}
	}
	sort.Strings(rows)
	fmt.Printf("\nreliability (%s form), real broker\n", map[bool]string{true: "full", false: "short"}[os.Getenv("RELIABILITY") == "full"])
	fmt.Printf("| figure | value |\n|---|---|\n")
	fmt.Printf("| commands sent | %d (%d through the gateway, %d straight onto the topic) in %v |\n", viaGateway.Load()+direct.Load(), viaGateway.Load(), direct.Load(), sendDuration.Round(time.Second))
	fmt.Printf("| lost | %d |\n| applied twice | %d |\n", lost, twice)
	fmt.Printf("| carts view rows differing from the ledger | %d of %d |\n", viewOff, p.carts)
	fmt.Printf("| workers killed with SIGKILL (and restarted) | %d |\n| broker restarts | %d |\n", kills.Load(), restarts.Load())
	fmt.Printf("| retriable errors met and retried | %d |\n| workers that exited on their own | %d |\n", retriable.Load(), crashes)
	fmt.Printf("| bad-input kinds routed to the dead-letter topic with a reason | %d of %d |\n", kindsRouted, len(kinds))
	fmt.Printf("| auth cases (each listener and mechanism, and each fault) that connected or failed naming the cause | %d of %d |\n", authNamed, authCases)
	leaks := 0
	for _, w := range workers {
		data, _ := os.ReadFile(filepath.Join(w.dir, "worker.log"))
		authOutput += string(data)
	}
	for _, secret := range []string{env.User.Password, env.SCRAM256Only.Password} {
		leaks += strings.Count(authOutput, secret)
	}
	fmt.Printf("| passwords found in any log, error or output of the suite | %d |\n", leaks)
	fmt.Println(strings.Join(rows, "\n"))
	if lost != 0 || twice != 0 || viewOff != 0 || crashes != 0 || kills.Load() != int64(p.kills) || restarts.Load() != 1 || authNamed != authCases || leaks != 0 {
		t.Errorf("a promise failed: lost %d, applied twice %d, view rows off %d, crashed workers %d, kills %d of %d, broker restarts %d, auth %d of %d, leaks %d",
			lost, twice, viewOff, crashes, kills.Load(), p.kills, restarts.Load(), authNamed, authCases, leaks)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func addItem(subject, id string) codec.Event {
	e := codec.NewEvent()
	e.SetID(id)
	e.SetSource("reliability")
	e.SetType("add-item")
	e.SetSubject(subject)
	_ = e.SetData("application/json", sample.AddItem{ProductID: "p", Name: "P", Quantity: 1})
	return e
}

func newProducer(t *testing.T, addr string) sarama.SyncProducer {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 250 * time.Millisecond
	prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	return prod
}

func sendEvent(prod sarama.SyncProducer, topic string, ev codec.Event) error {
	r, err := codec.EncodeEvent(ev)
	if err != nil {
		return err
	}
	return sendRecord(prod, topic, r)
}

func sendRecord(prod sarama.SyncProducer, topic string, r codec.Record) error {
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.Value)}
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	for k, v := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	_, _, err := prod.SendMessage(m)
	return err
}

func sendRaw(t *testing.T, prod sarama.SyncProducer, topic string, r codec.Record) {
	t.Helper()
	if err := sendRecord(prod, topic, r); err != nil {
		t.Fatalf("bad input to %s: %v", topic, err)
	}
}

// sendViaGateway posts one add-item with its own Idempotency-Key to the
// workers in turn until one answers 200; it reports whether one did.
func sendViaGateway(ws []*worker, app string, i, cart int, retriable *atomic.Int64) bool {
	key := fmt.Sprintf("%s-gw-%d", app, i)
	body, _ := json.Marshal(sample.AddItem{ProductID: "p", Name: "P", Quantity: 1})
	deadline := time.Now().Add(3 * time.Minute)
	for try := 0; time.Now().Before(deadline); try++ {
		w := ws[(i+try)%len(ws)]
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/entities/cart/cart-%d/add-item", w.addr, cart), bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		resp, err := httpc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		retriable.Add(1)
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// settled reads per-cart quantities with read until none is behind the
// ledger, or for at most three minutes.
func settled(carts int, sent []atomic.Int64, read func() map[string]int64) map[string]int64 {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := read()
		behind := 0
		for c := range carts {
			if got[fmt.Sprintf("cart-%d", c)] < sent[c].Load() {
				behind++
			}
		}
		if behind == 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Second)
	}
}

// cartQuantity reads product p's quantity from a cart table record.
func cartQuantity(value []byte) (int64, bool) {
	env, err := core.DecodeEnvelope(value)
	var cart sample.Cart
	if err != nil || !env.Exists || json.Unmarshal(env.State, &cart) != nil {
		return 0, false
	}
	return int64(cart.Items["p"].Quantity), true
}

// rowQuantity reads product p's quantity from a carts view table record.
func rowQuantity(value []byte) (int64, bool) {
	var env struct{ Row *sample.CartRow }
	if json.Unmarshal(value, &env) != nil || env.Row == nil {
		return 0, false
	}
	return int64(env.Row.Quantities["p"]), true
}

// latest reads a table topic to its end and returns, per key, what quantity
// makes of the latest record it can read.
func latest(t *testing.T, addr, topic string, quantity func([]byte) (int64, bool)) map[string]int64 {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			if q, ok := quantity(m.Value); ok {
				out[string(m.Key)] = q
			}
			if m.Offset+1 >= end {
				break
			}
		}
		pc.Close()
	}
	return out
}

// badInput is the shared corpus (internal/recordtest): every kind must end
// in the dead-letter topic with a reason naming what is wrong.
func badInput(app string) []recordtest.Bad {
	good := func(subject, id string) codec.Record {
		r, _ := codec.EncodeEvent(addItem(subject, id))
		return r
	}
	boom := func(typ, id string) codec.Record {
		e := addItem("b", id)
		e.SetType(typ)
		r, _ := codec.EncodeEvent(e)
		return r
	}
	return recordtest.Corpus(app+".cart.commands", good, app+".boom.commands", boom)
}

// deadLetters reads the dead-letter topic until it has n test kinds, and
// returns each kind's reason.
func deadLetters(t *testing.T, addr, topic string, n int) map[string]string {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var mu sync.Mutex
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				var kind, reason string
				for _, h := range m.Headers {
					switch string(h.Key) {
					case "test_kind":
						kind = string(h.Value)
					case processor.HeaderDLQReason:
						reason = string(h.Value)
					}
				}
				mu.Lock()
				if kind != "" {
					out[kind] = reason
				}
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(out)
		mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	cp := map[string]string{}
	for k, v := range out {
		cp[k] = v
	}
	return cp
}

// authFaults connects with every listener and mechanism of the broker, and
// with each auth fault, and counts the cases that connected (good ones) or
// failed with the error naming their cause (bad ones). It returns every log
// line and error it saw, for the secret scan.
func authFaults(t *testing.T, e *kafkatest.Env) (named, cases int, output string) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	user := func(addr string, auth broker.Auth, pw string, tls bool) broker.Config {
		c := broker.Config{BootstrapServers: []string{addr}, Auth: auth, Username: e.User.Name, Password: broker.Secret(pw)}
		if tls {
			c.TLS = broker.TLS{Enabled: true, CAFile: e.CAFile}
		}
		return c
	}
	mtls := func(cert, key string) broker.Config {
		return broker.Config{BootstrapServers: []string{e.SSL}, Auth: broker.AuthMTLS, TLS: broker.TLS{CAFile: e.CAFile, CertFile: cert, KeyFile: key}}
	}
	wrong := "wrong-" + e.User.Password
	mismatch := user(e.SASLSSL, broker.AuthPlain, e.User.Password, true)
	mismatch.TLS.ServerName = "kafka.wrong.example"
	untrusted := user(e.SASLSSL, broker.AuthPlain, e.User.Password, true)
	untrusted.TLS.CAFile = e.OtherCAFile
	list := []struct {
		name  string
		cfg   broker.Config
		cause error // nil: must connect
	}{
		{"PLAINTEXT", broker.Config{BootstrapServers: []string{e.Plaintext}}, nil},
		{"SASL_PLAINTEXT PLAIN", user(e.SASLPlaintext, broker.AuthPlain, e.User.Password, false), nil},
		{"SASL_PLAINTEXT SCRAM-SHA-256", user(e.SASLPlaintext, broker.AuthSCRAMSHA256, e.User.Password, false), nil},
		{"SASL_PLAINTEXT SCRAM-SHA-512", user(e.SASLPlaintext, broker.AuthSCRAMSHA512, e.User.Password, false), nil},
		{"SASL_SSL PLAIN", user(e.SASLSSL, broker.AuthPlain, e.User.Password, true), nil},
		{"SASL_SSL SCRAM-SHA-256", user(e.SASLSSL, broker.AuthSCRAMSHA256, e.User.Password, true), nil},
		{"SASL_SSL SCRAM-SHA-512", user(e.SASLSSL, broker.AuthSCRAMSHA512, e.User.Password, true), nil},
		{"SSL mTLS", mtls(e.ClientCertFile, e.ClientKeyFile), nil},
		{"wrong password", user(e.SASLPlaintext, broker.AuthSCRAMSHA512, wrong, false), broker.ErrAuthFailed},
		{"CA not trusted", untrusted, broker.ErrUntrustedServer},
		{"no client certificate", broker.Config{BootstrapServers: []string{e.SSL}, TLS: broker.TLS{Enabled: true, CAFile: e.CAFile}}, broker.ErrClientCertRequired},
		{"expired client certificate", mtls(e.ExpiredCertFile, e.ExpiredKeyFile), broker.ErrCertificateExpired},
		{"host-name mismatch", mismatch, broker.ErrServerNameMismatch},
		{"TLS to the plaintext port", broker.Config{BootstrapServers: []string{e.Plaintext}, TLS: broker.TLS{Enabled: true, CAFile: e.CAFile}}, broker.ErrTLSToPlaintext},
	}
	for _, c := range list {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		client, err := broker.Connect(ctx, c.cfg, log)
		cancel()
		if err == nil {
			client.Close()
		} else {
			fmt.Fprintln(&buf, "error:", err)
		}
		ok := c.cause == nil && err == nil || c.cause != nil && errors.Is(err, c.cause)
		if ok {
			named++
		} else {
			t.Errorf("auth case %s: got %v, want %v", c.name, err, c.cause)
		}
	}
	return named, len(list), buf.String()
}
