//go:build reliability

// Package reliability holds the suite that proves Partita's promises on the
// real broker and reports a figure for each: workers killed with SIGKILL
// while commands flow, the broker restarted mid-run, bad input mixed into
// normal traffic. The commands come the ways real clients send them:
// through the gateway, and straight onto the topic with sarama keyed by
// subject (murmur2, as Java), with kcat (librdkafka) unkeyed and keyed with
// its partitioners; some are sent again minutes later with the same id. It
// needs kcat. It runs its own broker (it restarts it) so that other test
// packages are not disturbed.
//
// `make test` runs the short form (about 75 s of commands); `make
// reliability` (RELIABILITY=full) the full one: 100,000 commands over four
// minutes at least, more kills and retries. The build tag keeps it out of
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
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/recordtest"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	gateway "github.com/partita-dev/partita/worker"
)

type params struct {
	commands  int           // total commands: half through the gateway, half straight onto the topic
	carts     int           // subjects
	kills     int           // workers killed with SIGKILL (and restarted)
	killEvery time.Duration // between kills
	pace      time.Duration // the commands are spread over at least this long

	// Retries: a share of the commands is sent again later, the same way and
	// with the same ce-id and ce-source (through the gateway: the same
	// Idempotency-Key), as a client that lost the answer would. A retry comes
	// between retryRounds[0] and retryRounds[1] rounds (a round: one command
	// per cart) after the command, so many commands of the same cart later,
	// and at least retryAfter after its first send was acknowledged. Once
	// every command is sent, the first `earliest` commands are sent again.
	// A quarter of the carts gets no retry (unretried), for comparison.
	retryShare  float64
	retryRounds [2]int
	retryAfter  time.Duration
	earliest    int
}

func config() params {
	if os.Getenv("RELIABILITY") == "full" {
		return params{commands: 100_000, carts: 1000, kills: 8, killEvery: 22 * time.Second, pace: 4 * time.Minute,
			retryShare: 0.05, retryRounds: [2]int{25, 75}, retryAfter: time.Minute, earliest: 1000}
	}
	// 60 commands a cart, so that a retry comes 20 to 40 of the cart's
	// commands after the first send.
	return params{commands: 3000, carts: 50, kills: 2, killEvery: 15 * time.Second, pace: 75 * time.Second,
		retryShare: 0.02, retryRounds: [2]int{20, 40}, retryAfter: 20 * time.Second, earliest: 20}
}

// worker is a worker process that can be killed and restarted on its data.
type worker struct {
	bin, app, brokers, dir, addr string
	env                          []string // more environment
	mu                           sync.Mutex
	cmd                          *exec.Cmd
	done                         chan struct{}
}

func (w *worker) start(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cmd = exec.Command(w.bin)
	w.cmd.Env = append(append(os.Environ(), w.env...), "PARTITA_APP="+w.app, "PARTITA_HTTP_ADDR="+w.addr, "PARTITA_DATA_DIR="+w.dir, "KAFKA_BOOTSTRAP_SERVERS="+w.brokers)
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

// suiteBroker brings up the suite's own broker (beside make test's, so
// that restarting it disturbs no other test), stopped when t ends.
func suiteBroker(ctx context.Context, t *testing.T) (kafkatest.Paths, *kafkatest.Env) {
	t.Helper()
	root, _ := filepath.Abs("..")
	paths := kafkatest.Paths{Home: filepath.Join(root, ".cache", "kafka-reliability"), Pom: filepath.Join(root, "internal", "kafkatest", "pom.xml")}
	env, err := kafkatest.Up(ctx, paths, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kafkatest.Down(paths) })
	return paths, env
}

// startWorkers builds the reliability worker and starts n of it for app
// on brokers, with env added to their environment, and waits until they
// are ready. When t ends they are stopped (SIGTERM, then SIGKILL), and
// their log tails shown if t failed.
func startWorkers(t *testing.T, app, brokers string, n int, env ...string) []*worker {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/shop/cmd/reliability-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	workers := make([]*worker, n)
	for i := range workers {
		workers[i] = &worker{bin: bin, app: app, brokers: brokers, dir: t.TempDir(), addr: freeAddr(t), env: env}
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
	return workers
}

func TestReliability(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is required (Debian package kcat; .ci/run installs it)")
	}
	p := config()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	paths, env := suiteBroker(ctx, t)
	app := fmt.Sprintf("r%d", time.Now().UnixNano())
	workers := startWorkers(t, app, env.Plaintext, 3)

	producer := newProducer(t, env.Plaintext)
	var (
		sent      = make([]atomic.Int64, p.carts) // per cart, commands acknowledged
		bySent    [nPaths]atomic.Int64            // per path, commands acknowledged
		retriable atomic.Int64
		kills     atomic.Int64
		restarts  atomic.Int64
		done      = make(chan struct{})
	)
	// Chaos: kill a random worker with SIGKILL every killEvery, restart it;
	// restart the broker once, after the first kill.
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

	// Bad input, mixed into the traffic: records straight onto the topics,
	// and client mistakes at the gateways.
	kinds := badInput(app)
	for _, b := range kinds {
		sendRaw(t, producer, b.Topic, b.Record)
	}
	gwKinds := gatewayBadInput(t, workers)

	// Normal traffic: half through the gateways (retried with one
	// Idempotency-Key until answered), half straight onto the topic the
	// ways other clients write it (see path); each cart gets commands by
	// every path, interleaved. Some commands are sent again later (retries,
	// see params): none may be applied twice, and a gateway retry must get
	// the answer the first send got.
	topic := app + ".cart.commands"
	cmds := make([]command, p.commands)
	for i := range cmds {
		cmds[i] = command{cart: i % p.carts, path: pathOf(i, p.carts), done: make(chan struct{})}
	}
	plan, planned := retryPlan(p)
	var (
		retries   retryStats
		gwRetried atomic.Int64 // gateway retries answered
		gwDiffer  atomic.Int64 // ... with another answer than the first send's
	)
	// first records the end of a command's first send; again, a retry's.
	first := func(i int, ok bool, reply gatewayReply) {
		c := &cmds[i]
		if ok {
			c.ok, c.at, c.reply = true, time.Now(), reply
			c.cartSent = sent[c.cart].Add(1)
			bySent[c.path].Add(1)
		}
		close(c.done)
	}
	again := func(i int, final bool) {
		c := &cmds[i]
		retries.add(c.path, final, time.Since(c.at), sent[c.cart].Load()-c.cartSent)
	}
	event := func(i int) codec.Event {
		return addItem(fmt.Sprintf("cart-%d", cmds[i].cart), commandID(app, i, cmds[i].path))
	}
	// The kcat paths: a writer each, many records per kcat process.
	writers := map[path]*kcatWriter{
		kcatUnkeyed: newKcatWriter(env.Plaintext, topic, false, ""),
		kcatCRC32:   newKcatWriter(env.Plaintext, topic, true, "consistent_random"),
		kcatMurmur2: newKcatWriter(env.Plaintext, topic, true, "murmur2_random"),
	}
	for _, k := range writers {
		go k.run(ctx, t, event, func(batch []job, ok bool) {
			for _, it := range batch {
				switch {
				case !it.retry:
					first(it.i, ok, gatewayReply{})
				case ok:
					again(it.i, it.final)
				}
			}
		}, &retriable)
	}
	var wg sync.WaitGroup
	jobs := make(chan job)
	for range 16 { // senders; a retry may wait in one for its time
		wg.Add(1)
		go func() {
			defer wg.Done()
			for jb := range jobs {
				c := &cmds[jb.i]
				if jb.retry {
					<-c.done
					if !c.ok {
						continue // its first send failed, and said so
					}
					if d := time.Until(c.at.Add(p.retryAfter)); d > 0 && !jb.final {
						time.Sleep(d)
					}
				}
				switch c.path {
				case viaGateway:
					from := jb.i
					if jb.retry {
						from++ // a retry goes to another worker first
					}
					reply, ok := sendViaGateway(workers, commandID(app, jb.i, c.path), fmt.Sprintf("cart-%d", c.cart), from, &retriable)
					switch {
					case !ok:
						t.Errorf("command %d (retry %v): no reply after retrying for 3 minutes", jb.i, jb.retry)
						if !jb.retry {
							first(jb.i, false, reply)
						}
					case !jb.retry:
						first(jb.i, true, reply)
					default:
						again(jb.i, jb.final)
						gwRetried.Add(1)
						if reply != c.reply {
							if gwDiffer.Add(1) <= 5 {
								t.Logf("command %d: the retry was answered %+v, the first send %+v", jb.i, reply, c.reply)
							}
						}
					}
				case saramaKeyed:
					err := sendDirect(producer, topic, event(jb.i), &retriable)
					switch {
					case err != nil:
						t.Errorf("command %d (retry %v): the broker did not take it: %v", jb.i, jb.retry, err)
						if !jb.retry {
							first(jb.i, false, gatewayReply{})
						}
					case !jb.retry:
						first(jb.i, true, gatewayReply{})
					default:
						again(jb.i, jb.final)
					}
				default:
					writers[c.path].in <- jb
				}
			}
		}()
	}
	start := time.Now()
	for i := range p.commands {
		for _, j := range plan[i] {
			jobs <- job{i: j, retry: true}
		}
		if d := time.Until(start.Add(p.pace * time.Duration(i) / time.Duration(p.commands))); d > 0 {
			time.Sleep(d)
		}
		jobs <- job{i: i}
	}
	for _, i := range earliest(p) {
		jobs <- job{i: i, retry: true, final: true}
	}
	close(jobs)
	wg.Wait()
	for _, k := range writers {
		close(k.in)
	}
	for _, k := range writers {
		<-k.done
	}
	close(done)
	chaos.Wait()
	sendDuration := time.Since(start)

	// Let every worker settle, then compare each cart with the ledger.
	for _, w := range workers {
		waitReady(t, w.addr, 3*time.Minute)
	}
	// The cart's state (its table topic) and the carts view (its table
	// topic, folded from the cart's events) must both match the ledger.
	// A cart's quantity nets a command lost against one applied twice; the
	// carts that get no retry (unretried) show what the crashes and
	// re-routing do without them.
	var lost, twice, viewOff, twiceUnretried int64
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
			if unretried(c) {
				twiceUnretried += have - want
			}
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
	var gwHandled int
	for _, g := range gwKinds {
		if reason, dead := routed[gatewayKind+g.kind]; dead {
			g.ok = false
			t.Errorf("gateway bad input %q reached the dead-letter topic: %s", g.kind, reason)
		}
		if g.ok {
			gwHandled++
		}
		rows = append(rows, fmt.Sprintf("| gateway bad input: %s | %v | %s |", g.kind, g.ok, g.got))
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
	var total, kcatRuns int64
	for i := range bySent {
		total += bySent[i].Load()
	}
	for _, k := range writers {
		kcatRuns += k.runs.Load()
	}
	fmt.Printf("| commands sent | %d in %v (%d carts) |\n", total, sendDuration.Round(time.Second), p.carts)
	fmt.Printf("| sent through the gateway | %d |\n", bySent[viaGateway].Load())
	fmt.Printf("| sent with sarama, keyed by subject, murmur2 (a Java producer's default) | %d |\n", bySent[saramaKeyed].Load())
	fmt.Printf("| sent with kcat (librdkafka), no key | %d |\n", bySent[kcatUnkeyed].Load())
	fmt.Printf("| sent with kcat, keyed by subject, consistent_random (CRC32, librdkafka's default) | %d |\n", bySent[kcatCRC32].Load())
	fmt.Printf("| sent with kcat, keyed by subject, murmur2_random | %d |\n", bySent[kcatMurmur2].Load())
	fmt.Printf("| kcat processes that wrote them (structured mode, many records each) | %d |\n", kcatRuns)
	fmt.Printf("| retries sent later, same ce-id and ce-source (gateway: same Idempotency-Key) | %s |\n", retries.summary(planned))
	fmt.Printf("| spread between a first send and its retry | %s |\n", retries.spread())
	fmt.Printf("| gateway retries answered otherwise than the first time | %d of %d |\n", gwDiffer.Load(), gwRetried.Load())
	fmt.Printf("| lost | %d |\n| applied twice | %d (%d in the quarter of the carts that got no retry) |\n", lost, twice, twiceUnretried)
	fmt.Printf("| carts view rows differing from the ledger | %d of %d |\n", viewOff, p.carts)
	fmt.Printf("| workers killed with SIGKILL (and restarted) | %d |\n| broker restarts | %d |\n", kills.Load(), restarts.Load())
	fmt.Printf("| retriable errors met and retried | %d |\n| workers that exited on their own | %d |\n", retriable.Load(), crashes)
	fmt.Printf("| bad-input kinds routed to the dead-letter topic with a reason | %d of %d |\n", kindsRouted, len(kinds))
	fmt.Printf("| gateway bad-input kinds refused with their 4xx before anything was written | %d of %d |\n", gwHandled, len(gwKinds))
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
	if lost != 0 || twice != 0 || gwDiffer.Load() != 0 || viewOff != 0 || crashes != 0 || kills.Load() != int64(p.kills) || restarts.Load() != 1 || authNamed != authCases || leaks != 0 {
		t.Errorf("a promise failed: lost %d, applied twice %d, gateway retries answered otherwise %d, view rows off %d, crashed workers %d, kills %d of %d, broker restarts %d, auth %d of %d, leaks %d",
			lost, twice, gwDiffer.Load(), viewOff, crashes, kills.Load(), p.kills, restarts.Load(), authNamed, authCases, leaks)
	}
}

// path is how a command reaches the commands topic.
type path int

const (
	// viaGateway: POST to a worker's gateway with an Idempotency-Key.
	viaGateway path = iota
	// saramaKeyed: sarama with Partita's murmur2 partitioner, keyed by
	// subject. A Java producer's default partitioner is murmur2 of the key
	// too, so this path also stands for Java clients keyed by subject.
	saramaKeyed
	// kcatUnkeyed: kcat (librdkafka) with no key. librdkafka spreads
	// unkeyed records over the partitions (sticky: one partition for
	// sticky.partitioning.linger.ms, then another), so most land on a
	// partition their subject does not hash to and are re-routed.
	kcatUnkeyed
	// kcatCRC32: kcat keyed by subject with librdkafka's default
	// partitioner, consistent_random (CRC32 of the key): most land on
	// another partition than murmur2's and are re-routed.
	kcatCRC32
	// kcatMurmur2: kcat keyed by subject with murmur2_random, which picks
	// the partition a Java producer and Partita pick.
	kcatMurmur2
	nPaths
)

var pathNames = [nPaths]string{"gateway", "sarama keyed", "kcat unkeyed", "kcat crc32", "kcat murmur2"}

// pathOf gives half of the commands to the gateway and the rest in equal
// parts to the other paths. The path turns with the round (i / carts), so
// every cart gets commands by every path, interleaved.
func pathOf(i, carts int) path {
	switch (i%carts + i/carts) % 8 {
	case 1:
		return saramaKeyed
	case 3:
		return kcatUnkeyed
	case 5:
		return kcatCRC32
	case 7:
		return kcatMurmur2
	}
	return viaGateway
}

// commandID is command i's ce-id (through the gateway: its
// Idempotency-Key); its first send and its retries share it.
func commandID(app string, i int, p path) string {
	return fmt.Sprintf("%s-%s-%d", app, strings.ReplaceAll(pathNames[p], " ", "-"), i)
}

// command is what the suite knows of one command's first send.
type command struct {
	cart     int
	path     path
	done     chan struct{} // closed once the first send ended
	ok       bool          // it was acknowledged (and counted in the ledger)
	at       time.Time     // when
	cartSent int64         // the cart's acknowledged commands then, this one included
	reply    gatewayReply  // through the gateway: the answer
}

// job is a command to send: for the first time, or again.
type job struct {
	i            int
	retry, final bool // final: the earliest commands, sent again at the end
}

// unretried tells the carts that get no retry: a quarter of them.
func unretried(cart int) bool { return cart%4 == 0 }

// retryPlan draws the commands sent again later: plan[j] lists those sent
// again just before command j; planned counts them with the earliest.
func retryPlan(p params) (plan map[int][]int, planned int) {
	r := rand.New(rand.NewPCG(3, 4))
	lo, hi := p.retryRounds[0]*p.carts, p.retryRounds[1]*p.carts
	n, eligible := int(p.retryShare*float64(p.commands)), 0
	for i := range max(p.commands-lo, 0) {
		if !unretried(i % p.carts) {
			eligible++
		}
	}
	plan = map[int][]int{}
	drawn := map[int]bool{}
	for len(drawn) < min(n, eligible) {
		i := r.IntN(p.commands - lo)
		if drawn[i] || unretried(i%p.carts) {
			continue
		}
		drawn[i] = true
		j := i + lo + r.IntN(min(hi, p.commands-1-i)-lo+1)
		plan[j] = append(plan[j], i)
	}
	return plan, len(drawn) + len(earliest(p))
}

// earliest lists the first p.earliest commands but the unretried carts':
// they are sent again once every command was.
func earliest(p params) []int {
	var out []int
	for i := range min(p.earliest, p.commands) {
		if !unretried(i % p.carts) {
			out = append(out, i)
		}
	}
	return out
}

// retryStats counts the retries acknowledged, and how far each came after
// its first send: in time, and in commands of the same cart acknowledged in
// between.
type retryStats struct {
	mu                     sync.Mutex
	n, final               int
	byPath                 [nPaths]int
	minSpread, maxSpread   time.Duration
	minBetween, maxBetween int64
}

func (r *retryStats) add(p path, final bool, spread time.Duration, between int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		r.minSpread, r.maxSpread, r.minBetween, r.maxBetween = spread, spread, between, between
	}
	r.minSpread, r.maxSpread = min(r.minSpread, spread), max(r.maxSpread, spread)
	r.minBetween, r.maxBetween = min(r.minBetween, between), max(r.maxBetween, between)
	r.n++
	r.byPath[p]++
	if final {
		r.final++
	}
}

func (r *retryStats) summary(planned int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for p, n := range r.byPath {
		parts = append(parts, fmt.Sprintf("%s %d", pathNames[p], n))
	}
	return fmt.Sprintf("%d of %d planned (%s); %d of them the earliest commands, again once every command was sent",
		r.n, planned, strings.Join(parts, ", "), r.final)
}

func (r *retryStats) spread() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("min %v, max %v; commands of the same cart acknowledged in between: min %d, max %d",
		r.minSpread.Round(100*time.Millisecond), r.maxSpread.Round(100*time.Millisecond), r.minBetween, r.maxBetween)
}

// kcatWriter writes commands with kcat (librdkafka), many records per
// process: kcat is slow to start. Headers given with -H apply to every
// record of a process, so each record carries its attributes in its value,
// a structured-mode CloudEvent (application/cloudevents+json), which
// Partita reads as it reads binary mode.
type kcatWriter struct {
	args  []string
	keyed bool
	in    chan job
	runs  atomic.Int64 // kcat processes that exited 0
	done  chan struct{}
}

// newKcatWriter writes to topic keyed by subject with partitioner (empty:
// librdkafka's default), or with no key.
func newKcatWriter(addr, topic string, keyed bool, partitioner string) *kcatWriter {
	args := []string{"-P", "-b", addr, "-t", topic, "-H", "content-type=application/cloudevents+json"}
	if keyed {
		args = append(args, "-K", "\t")
	}
	if partitioner != "" {
		args = append(args, "-X", "topic.partitioner="+partitioner)
	}
	return &kcatWriter{args: args, keyed: keyed, in: make(chan job, 1024), done: make(chan struct{})}
}

// run writes what comes in until in is closed, in batches of what came
// within a second (500 records at most), one kcat process each: kcat reads
// one record a line from stdin (key, tab, value with -K). written learns
// of each batch: ok once kcat exited 0 for it (librdkafka has then had
// every record acknowledged); a failed batch is written again whole, as a
// client would, so some of its records may be on the topic twice.
func (k *kcatWriter) run(ctx context.Context, t *testing.T, event func(i int) codec.Event, written func(batch []job, ok bool), retriable *atomic.Int64) {
	defer close(k.done)
	for open := true; open; {
		it, ok := <-k.in
		if !ok {
			return
		}
		batch := []job{it}
		flush := time.After(time.Second)
	collect:
		for len(batch) < 500 {
			select {
			case it, ok := <-k.in:
				if !ok {
					open = false
					break collect
				}
				batch = append(batch, it)
			case <-flush:
				break collect
			}
		}
		var stdin bytes.Buffer
		for _, it := range batch {
			ev := event(it.i)
			value, err := json.Marshal(ev) // one line: JSON escapes tabs and newlines
			if err != nil {
				t.Errorf("command %d: structured mode: %v", it.i, err)
				continue
			}
			if k.keyed {
				stdin.WriteString(ev.Subject() + "\t")
			}
			stdin.Write(value)
			stdin.WriteByte('\n')
		}
		for try := 1; ; try++ {
			c := exec.CommandContext(ctx, "kcat", k.args...)
			c.Stdin = bytes.NewReader(stdin.Bytes())
			out, err := c.CombinedOutput()
			if err == nil {
				k.runs.Add(1)
				written(batch, true)
				break
			}
			if try == 10 {
				t.Errorf("kcat %s: %d records not written after %d tries: %v\n%s", strings.Join(k.args, " "), len(batch), try, err, tail(string(out), 2000))
				written(batch, false)
				break
			}
			retriable.Add(1)
			time.Sleep(time.Second)
		}
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
	_ = e.SetData("application/json", shop.AddItem{ProductID: "p", Name: "P", Quantity: 1})
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

// gatewayReply is what the gateway answered a command: its position
// token (the subject's sequence number after it) and its body (the cart).
type gatewayReply struct{ position, body string }

// sendViaGateway posts one add-item to subject with Idempotency-Key key,
// to the workers in turn (from the one from picks) until one answers 200,
// for three minutes at most; it returns the answer and whether one came.
func sendViaGateway(ws []*worker, key, subject string, from int, retriable *atomic.Int64) (gatewayReply, bool) {
	body, _ := json.Marshal(shop.AddItem{ProductID: "p", Name: "P", Quantity: 1})
	deadline := time.Now().Add(3 * time.Minute)
	for try := 0; time.Now().Before(deadline); try++ {
		w := ws[(from+try)%len(ws)]
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/entities/cart/%s/add-item", w.addr, subject), bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return gatewayReply{position: resp.Header.Get(gateway.HeaderPosition), body: string(b)}, true
			}
		}
		retriable.Add(1)
		time.Sleep(200 * time.Millisecond)
	}
	return gatewayReply{}, false
}

// sendDirect writes ev with sarama (which retries on its own), trying 101
// times.
func sendDirect(prod sarama.SyncProducer, topic string, ev codec.Event, retriable *atomic.Int64) error {
	for try := 0; ; try++ {
		err := sendEvent(prod, topic, ev)
		if err == nil || try == 100 {
			return err
		}
		retriable.Add(1)
		time.Sleep(300 * time.Millisecond)
	}
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
	env, err := envelope.DecodeEnvelope(value)
	var cart shop.Cart
	if err != nil || !env.Exists || json.Unmarshal(env.State, &cart) != nil {
		return 0, false
	}
	return int64(cart.Items["p"].Quantity), true
}

// rowQuantity reads product p's quantity from a carts view table record.
func rowQuantity(value []byte) (int64, bool) {
	var env struct{ Row *shop.CartRow }
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

// gatewayKind prefixes the subjects of gatewayBadInput's requests: a dead
// letter keyed so is a client mistake that reached Kafka.
const gatewayKind = "gwbad-"

// gatewayCase is one kind of client mistake at the gateway and what it got.
type gatewayCase struct {
	kind string
	ok   bool   // answered with the status and code it must have
	got  string // the answer
}

// gatewayBadInput sends the gateway-side bad input (issue 14) to the
// workers, each kind to a subject named after it, retrying on another
// worker while one is down or starting: every kind must be refused with its
// 4xx and code before anything is written (deadLetters then checks that
// none reached the dead-letter topic).
func gatewayBadInput(t *testing.T, ws []*worker) []*gatewayCase {
	t.Helper()
	big := func(n int) string { return `{"productId":"p","name":"` + strings.Repeat("n", n) + `","quantity":1}` }
	type req struct {
		kind, method, cmd, body string
		headers                 []string
		status                  int
		code                    string
	}
	ct := []string{"Content-Type", "application/json"}
	with := func(h ...string) []string { return append(append([]string{}, ct...), h...) }
	reqs := []req{
		{"body over the entity's MaxValue (300 KB)", "POST", "add-item", big(300_000), ct, 413, "payload_too_large"},
		{"body of 1,048,000 bytes", "POST", "add-item", big(1_048_000), ct, 413, "payload_too_large"},
		{"Idempotency-Key of 1,000 bytes", "POST", "add-item", big(1), with("Idempotency-Key", strings.Repeat("k", 1000)), 400, "invalid_argument"},
		{"Idempotency-Key of 600 KB", "POST", "add-item", big(1), with("Idempotency-Key", strings.Repeat("k", 600_000)), 431, ""},
		{"Idempotency-Key with control characters", "POST", "add-item", big(1), with("Idempotency-Key", "a\tb"), 400, "invalid_argument"},
		{"a string for a number", "POST", "add-item", `{"productId":"p","name":"n","quantity":"2"}`, ct, 400, "invalid_argument"},
		{"a number for a string", "POST", "add-item", `{"productId":42,"name":"n","quantity":2}`, ct, 400, "invalid_argument"},
		{"an array for the object", "POST", "add-item", `[1,2]`, ct, 400, "invalid_argument"},
		{"trailing data after the JSON", "POST", "add-item", `{"productId":"p","name":"n","quantity":1} x`, ct, 400, "invalid_argument"},
		{"not JSON", "POST", "add-item", `hello`, ct, 400, "invalid_argument"},
		{"text/plain body (a cross-site form)", "POST", "add-item", big(1), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"form-encoded body", "POST", "add-item", "a=b", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"another origin", "POST", "add-item", big(1), with("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), 403, "cross_site"},
		{"unknown command", "POST", "frobnicate", big(1), ct, 404, "not_found"},
		{"GET on a command", "GET", "add-item", "", nil, 405, "method_not_allowed"},
		{"64 KB of headers", "POST", "add-item", big(1), with("X-Filler", strings.Repeat("f", 64<<10)), 431, ""},
	}
	var out []*gatewayCase
	for i, r := range reqs {
		c := &gatewayCase{kind: r.kind}
		out = append(out, c)
		subject := fmt.Sprintf("%s%d", gatewayKind, i)
		deadline := time.Now().Add(3 * time.Minute)
		for try := 0; ; try++ {
			w := ws[try%len(ws)]
			hr, _ := http.NewRequest(r.method, fmt.Sprintf("http://%s/entities/cart/%s/%s", w.addr, subject, r.cmd), strings.NewReader(r.body))
			for j := 0; j+1 < len(r.headers); j += 2 {
				hr.Header.Set(r.headers[j], r.headers[j+1])
			}
			resp, err := httpc.Do(hr)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var e struct {
					Error struct{ Code, Message string }
				}
				_ = json.Unmarshal(body, &e)
				if resp.StatusCode != http.StatusServiceUnavailable {
					c.got = fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code)
					c.ok = resp.StatusCode == r.status && e.Error.Code == r.code && len(body) < 1000
					if !c.ok {
						t.Errorf("gateway bad input %q: %d %.200s; want %d %s", r.kind, resp.StatusCode, body, r.status, r.code)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Errorf("gateway bad input %q: no answer in 3 minutes (%v)", r.kind, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return out
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
				if k := string(m.Key); strings.HasPrefix(k, gatewayKind) {
					out[k] = reason
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
