package worker_test

// Issue 13 (idempotency), through a real worker and its gateway on the real
// broker: a command's key (ce-source, ce-id; the gateway's source and the
// Idempotency-Key header) is applied once within the entity's Retention,
// however many other commands its subject handles in between; the same key
// with another request is refused with 422 idempotency_conflict; a reply to
// another producer's command that reuses the id answers no gateway request.
//
// The worker runs in-process (worker.Main with an application of its own:
// a small bank-like key-value entity), so that one entity can have a short
// retention. Commands also go straight onto the commands topic with sarama.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/processor/broker"
	"github.com/partita-dev/partita/worker"
)

// idemAccount is the bank entity's state; each reply is the account too.
type idemAccount struct {
	Balance int `json:"balance"`
}

type idemDeposit struct {
	Amount int `json:"amount"`
}

type idemSlow struct {
	Millis int `json:"millis"`
}

// idemBank is a key-value entity: deposit adds to the balance and replies
// with the account; balance replies with it and changes nothing (a read
// that is a command); slow sleeps on the partition's goroutine, then
// replies {"slow":true}.
func idemBank(name string, opts ...entities.Option) *entities.Entity[idemAccount] {
	e := entities.KeyValue[idemAccount](name, opts...)
	entities.Command(e, "deposit", func(ctx *entities.Context[idemAccount], d idemDeposit) entities.Effect[idemAccount] {
		next := idemAccount{Balance: ctx.State().Balance + d.Amount}
		return ctx.Update(next).Reply(next)
	})
	entities.Command(e, "balance", func(ctx *entities.Context[idemAccount], _ struct{}) entities.Effect[idemAccount] {
		return ctx.Reply(ctx.State())
	})
	entities.Command(e, "slow", func(ctx *entities.Context[idemAccount], s idemSlow) entities.Effect[idemAccount] {
		time.Sleep(time.Duration(s.Millis) * time.Millisecond)
		return ctx.Reply(map[string]bool{"slow": true})
	})
	return e
}

// idemWorker is an in-process worker and a producer onto its topics.
type idemWorker struct {
	app    string
	addr   string
	topics topics.Names
	client sarama.Client
	prod   sarama.SyncProducer
}

// lockedBuffer is a bytes.Buffer safe for the worker's logger and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startIdemWorker runs worker.Main in-process with parts on the test broker
// (reply timeout 30 s, so that a gateway command queued behind thousands of
// others does not time out on a busy machine) and waits until it is ready.
func startIdemWorker(t *testing.T, parts ...processor.Part) *idemWorker {
	t.Helper()
	e := kafkatest.Require(t)
	w := &idemWorker{app: fmt.Sprintf("idem%d", time.Now().UnixNano()), addr: freeAddr(t)}
	w.topics = topics.Names{App: w.app}
	dir := t.TempDir()
	file := filepath.Join(dir, "partita.yaml")
	if err := os.WriteFile(file, []byte("reply_timeout: 30s\nread_timeout: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PARTITA_APP": w.app, "PARTITA_HTTP_ADDR": w.addr, "PARTITA_DATA_DIR": filepath.Join(dir, "data"),
		"KAFKA_BOOTSTRAP_SERVERS": e.Plaintext,
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- worker.Main(ctx, worker.App{Parts: parts}, []string{"run", "--config", file}, lookup, logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("worker exited with %d", code)
			}
		case <-time.After(60 * time.Second):
			t.Error("worker did not stop within 60s")
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", tail(logs.String(), 4000))
		}
	})

	sc, err := broker.Config{BootstrapServers: []string{e.Plaintext}}.Sarama(nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.Net.MaxOpenRequests = 1 // keep per-partition order across retries
	sc.Producer.Partitioner = sarama.NewCustomHashPartitioner(murmur2.New)
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	if w.client, err = sarama.NewClient([]string{e.Plaintext}, sc); err != nil {
		t.Fatal(err)
	}
	if w.prod, err = sarama.NewSyncProducerFromClient(w.client); err != nil {
		w.client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { w.prod.Close(); w.client.Close() })

	deadline := time.Now().Add(2 * time.Minute)
	for {
		if code, _ := get(w.addr, "/readyz"); code == http.StatusOK {
			return w
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("worker exited with %d during start-up:\n%s", code, tail(logs.String(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("worker not ready in 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// direct is a command for the topic, from source with id; reply asks for a
// reply on the replies topic.
func direct(topic, source, id, subject, typ string, data any, reply bool) *sarama.ProducerMessage {
	e := codec.NewEvent()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetTime(time.Now())
	if reply {
		e.SetExtension(codec.ExtReply, "true")
	}
	if err := e.SetData("application/json", data); err != nil {
		panic(err)
	}
	r, err := codec.EncodeEvent(e)
	if err != nil {
		panic(err)
	}
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
	for k, v := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	return m
}

// gatewayReply is a gateway command's answer.
type gatewayReply struct {
	code     int
	body     []byte
	position string
}

// command posts a raw JSON body to the gateway with an Idempotency-Key
// ("" for none).
func command(t *testing.T, addr, entity, subject, cmd, key, body string) gatewayReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/entities/"+entity+"/"+subject+"/"+cmd, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("POST %s %s/%s: %v", cmd, entity, subject, err)
		return gatewayReply{}
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return gatewayReply{code: resp.StatusCode, body: out, position: resp.Header.Get(worker.HeaderPosition)}
}

// balanceOf decodes a reply body or a state's JSON.
func balanceOf(t *testing.T, data []byte) int {
	t.Helper()
	var a idemAccount
	if err := json.Unmarshal(data, &a); err != nil {
		t.Errorf("not an account: %s: %v", data, err)
		return -1
	}
	return a.Balance
}

// readState reads GET /entities/{entity}/{subject}[?after=token].
func readState(t *testing.T, addr, entity, subject, after string) (int, entityState) {
	t.Helper()
	path := "/entities/" + entity + "/" + subject
	if after != "" {
		path += "?after=" + url.QueryEscape(after)
	}
	code, body := get(addr, path)
	var st entityState
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &st); err != nil {
			t.Errorf("GET %s: %s: %v", path, body, err)
		}
	}
	return code, st
}

// dedupHits is the worker's partita_dedup_hits_total.
func dedupHits(t *testing.T, addr string) float64 {
	t.Helper()
	_, metrics := get(addr, "/metrics")
	for _, l := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(l, "partita_dedup_hits_total "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	t.Errorf("no partita_dedup_hits_total in /metrics")
	return -1
}

// otherPartition returns a subject with prefix on another of 8 partitions
// than subject's.
func otherPartition(subject, prefix string) string {
	p := murmur2.Partition([]byte(subject), 8)
	for i := 0; ; i++ {
		s := fmt.Sprintf("%s-%d", prefix, i)
		if murmur2.Partition([]byte(s), 8) != p {
			return s
		}
	}
}

// TestIdempotencyThroughTheGateway is issue 13's done-when lines on one
// in-process worker (its start-up is most of the cost): see the subtests.
func TestIdempotencyThroughTheGateway(t *testing.T) {
	const retention = 3 * time.Second
	w := startIdemWorker(t, idemBank("bank"), idemBank("shortbank", entities.Retention(retention)))

	// A command with key K, then 10,000 other commands to the same subject
	// (straight onto the topic with sarama and through the gateway, writes
	// and reads mixed, GET reads interleaved), then K again: applied once,
	// the same reply (byte-identical body, same position), one dedup hit.
	// K is applied while the subject's window (16) has room; it reaches the
	// id table when the window overflows, and its retry is found there.
	t.Run("KeyAfter10000Commands", func(t *testing.T) {
		const subject = "acct-10k"
		start := time.Now()
		first := command(t, w.addr, "bank", subject, "deposit", "K-10k", `{"amount":1000000}`)
		if first.code != http.StatusOK || first.position == "" || balanceOf(t, first.body) != 1000000 {
			t.Fatalf("K: %d %s, position %q", first.code, first.body, first.position)
		}
		// The reads below ask for no position: they start once the state
		// copy has K (a read may otherwise come before it and get 404).
		if code, _ := readState(t, w.addr, "bank", subject, first.position); code != http.StatusOK {
			t.Fatalf("GET after K's position: %d", code)
		}
		topic := w.topics.Commands("bank")
		const rounds, directPerRound = 50, 194 // + 4 gateway deposits + 2 gateway balance commands = 200 a round
		var deposits, others int
		var mu sync.Mutex
		lastBalance, lastSeq := 1000000, uint64(1)
		for r := range rounds {
			batch := make([]*sarama.ProducerMessage, 0, directPerRound)
			for i := range directPerRound {
				id := fmt.Sprintf("direct-%d-%d", r, i)
				if i%5 == 4 { // a read: replies, changes nothing
					batch = append(batch, direct(topic, "loader", id, subject, "balance", struct{}{}, true))
				} else {
					batch = append(batch, direct(topic, "loader", id, subject, "deposit", idemDeposit{Amount: 1}, false))
					deposits++
				}
			}
			if err := w.prod.SendMessages(batch); err != nil {
				t.Fatal(err)
			}
			others += len(batch)
			floorBalance, floorSeq := lastBalance, lastSeq // what earlier rounds read
			var wg sync.WaitGroup
			for i := range 6 {
				typ, body := "deposit", `{"amount":1}`
				if i >= 4 {
					typ, body = "balance", `{}`
				}
				if typ == "deposit" {
					deposits++
				}
				others++
				wg.Add(1)
				go func() {
					defer wg.Done()
					rep := command(t, w.addr, "bank", subject, typ, fmt.Sprintf("gw-%d-%d", r, i), body)
					if rep.code != http.StatusOK || balanceOf(t, rep.body) <= 1000000 {
						t.Errorf("gateway %s %d/%d: %d %s", typ, r, i, rep.code, rep.body)
					}
				}()
			}
			for range 2 { // GET reads between the writes: never backwards
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, st := readState(t, w.addr, "bank", subject, "")
					if code != http.StatusOK {
						t.Errorf("GET in round %d: %d", r, code)
						return
					}
					b := balanceOf(t, st.State)
					mu.Lock()
					defer mu.Unlock()
					if b < floorBalance || st.Seq < floorSeq || uint64(b-1000000+1) != st.Seq {
						t.Errorf("GET in round %d: balance %d seq %d after balance %d seq %d", r, b, st.Seq, floorBalance, floorSeq)
					}
					lastBalance, lastSeq = max(lastBalance, b), max(lastSeq, st.Seq)
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
		}
		if others != 10000 {
			t.Fatalf("%d other commands, want 10000", others)
		}
		sent := time.Since(start)
		hits := dedupHits(t, w.addr)

		again := command(t, w.addr, "bank", subject, "deposit", "K-10k", `{"amount":1000000}`)
		if again.code != http.StatusOK || !bytes.Equal(again.body, first.body) || again.position != first.position {
			t.Errorf("K again after 10,000 commands: %d %q position %q; first: %d %q position %q",
				again.code, again.body, again.position, first.code, first.body, first.position)
		}
		if d := dedupHits(t, w.addr) - hits; d != 1 {
			t.Errorf("K again: %v dedup hits, want 1", d)
		}
		// Applied once: a read command behind K's retry, and the state.
		want := 1000000 + deposits
		bal := command(t, w.addr, "bank", subject, "balance", "", `{}`)
		if bal.code != http.StatusOK || balanceOf(t, bal.body) != want {
			t.Errorf("balance after K again: %d %s, want %d", bal.code, bal.body, want)
		}
		code, st := readState(t, w.addr, "bank", subject, bal.position)
		if code != http.StatusOK || balanceOf(t, st.State) != want || st.Seq != uint64(1+deposits) {
			t.Errorf("state after K again: %d %+v, want balance %d at seq %d", code, st, want, 1+deposits)
		}
		t.Logf("K, %d other commands (%d deposits) in %v, K again: %s", others, deposits, sent.Round(time.Millisecond), bytes.TrimSpace(again.body))
	})

	// The same key with another request (type or data) is 422
	// idempotency_conflict, in the window and beyond it (the id table); the
	// same request retried seconds later (its ce-time differs: the gateway
	// stamps each request) is the same command: 200, the same reply.
	t.Run("ConflictAndLateRetry", func(t *testing.T) {
		const subject = "acct-conflict"
		first := command(t, w.addr, "bank", subject, "deposit", "K-c", `{"amount":5}`)
		if first.code != http.StatusOK || balanceOf(t, first.body) != 5 {
			t.Fatalf("K: %d %s", first.code, first.body)
		}
		conflict := func(when, cmd, body string) {
			t.Helper()
			rep := command(t, w.addr, "bank", subject, cmd, "K-c", body)
			var eb errorBody
			_ = json.Unmarshal(rep.body, &eb)
			if rep.code != http.StatusUnprocessableEntity || eb.Error.Code != core.CodeIdempotencyConflict ||
				!strings.Contains(eb.Error.Message, "applied before with another request") {
				t.Errorf("%s: K with %s %s: %d %s, want 422 %s", when, cmd, body, rep.code, rep.body, core.CodeIdempotencyConflict)
			}
		}
		same := func(when string) {
			t.Helper()
			rep := command(t, w.addr, "bank", subject, "deposit", "K-c", `{"amount":5}`)
			if rep.code != http.StatusOK || !bytes.Equal(rep.body, first.body) || rep.position != first.position {
				t.Errorf("%s: K retried: %d %q %q; first %q %q", when, rep.code, rep.body, rep.position, first.body, first.position)
			}
		}
		conflict("in the window", "deposit", `{"amount":6}`)
		conflict("in the window", "deposit", `{"amount": 5}`) // the data's bytes, not its meaning
		conflict("in the window", "balance", `{"amount":5}`)  // another type
		time.Sleep(2 * time.Second)
		same("2 s later")

		for i := range 20 { // K leaves the window: the id table answers
			if rep := command(t, w.addr, "bank", subject, "deposit", fmt.Sprintf("c-other-%d", i), `{"amount":1}`); rep.code != http.StatusOK {
				t.Fatalf("other deposit %d: %d %s", i, rep.code, rep.body)
			}
		}
		conflict("beyond the window", "deposit", `{"amount":7}`)
		same("beyond the window")
		bal := command(t, w.addr, "bank", subject, "balance", "", `{}`)
		if balanceOf(t, bal.body) != 25 {
			t.Errorf("balance: %s, want 25: K applied once, conflicts not at all", bal.body)
		}
		if code, st := readState(t, w.addr, "bank", subject, bal.position); code != http.StatusOK || balanceOf(t, st.State) != 25 || st.Seq != 21 {
			t.Errorf("state: %d %+v, want balance 25 at seq 21", code, st)
		}
	})

	// After the retention, the same key is a new command and is applied
	// again: that is the documented behaviour (entities.Retention: "after
	// it, the same id is a new command"), not a bug. Entity shortbank keeps
	// ids 3 s, with the default window (16): K, then 20 other commands
	// (so K is in the id table only), K again within the retention (the
	// recorded reply), then past it (applied again: the balance grows), then
	// once more at once (the new application's reply). The same for a
	// subject whose window (16) never overflows.
	t.Run("KeyAgainAfterTheRetention", func(t *testing.T) {
		const subject = "acct-ret"
		first := command(t, w.addr, "shortbank", subject, "deposit", "K-ret", `{"amount":100}`)
		applied := time.Now()
		if first.code != http.StatusOK || balanceOf(t, first.body) != 100 {
			t.Fatalf("K: %d %s", first.code, first.body)
		}
		topic := w.topics.Commands("shortbank")
		var batch []*sarama.ProducerMessage
		for i := range 20 {
			batch = append(batch, direct(topic, "loader", fmt.Sprintf("ret-other-%d", i), subject, "deposit", idemDeposit{Amount: 1}, false))
		}
		if err := w.prod.SendMessages(batch); err != nil {
			t.Fatal(err)
		}
		within := command(t, w.addr, "shortbank", subject, "deposit", "K-ret", `{"amount":100}`)
		if d := time.Since(applied); d > retention-500*time.Millisecond {
			t.Logf("K's retry within the retention took until %v after K: not asserted", d)
		} else if within.code != http.StatusOK || !bytes.Equal(within.body, first.body) || within.position != first.position {
			t.Errorf("K within the retention (%v after): %d %q %q; first %q %q", d, within.code, within.body, within.position, first.body, first.position)
		}

		// The same within the window: K2, 2 other commands (the subject never
		// overflows its window, so it keeps no id table entries); past the
		// retention K2's window entry no longer counts.
		const inWindow = "acct-ret-window"
		first2 := command(t, w.addr, "shortbank", inWindow, "deposit", "K-ret-2", `{"amount":100}`)
		if first2.code != http.StatusOK || balanceOf(t, first2.body) != 100 {
			t.Fatalf("K2: %d %s", first2.code, first2.body)
		}
		if err := w.prod.SendMessages([]*sarama.ProducerMessage{
			direct(topic, "loader", "ret-w-1", inWindow, "deposit", idemDeposit{Amount: 1}, false),
			direct(topic, "loader", "ret-w-2", inWindow, "deposit", idemDeposit{Amount: 1}, false),
		}); err != nil {
			t.Fatal(err)
		}

		time.Sleep(time.Until(applied.Add(retention + time.Second)))
		late2 := command(t, w.addr, "shortbank", inWindow, "deposit", "K-ret-2", `{"amount":100}`)
		again2 := command(t, w.addr, "shortbank", inWindow, "deposit", "K-ret-2", `{"amount":100}`)
		if late2.code != http.StatusOK || balanceOf(t, late2.body) != 202 || !bytes.Equal(again2.body, late2.body) || again2.position != late2.position {
			t.Errorf("K2 past the retention, twice: %d %s %q, then %d %s %q; want balance 202 (applied again), then the same reply",
				late2.code, late2.body, late2.position, again2.code, again2.body, again2.position)
		}
		late := command(t, w.addr, "shortbank", subject, "deposit", "K-ret", `{"amount":100}`)
		if late.code != http.StatusOK || balanceOf(t, late.body) != 220 || late.position == first.position {
			t.Errorf("K past the retention: %d %s position %q, want balance 220 (applied again) and a new position", late.code, late.body, late.position)
		}
		again := command(t, w.addr, "shortbank", subject, "deposit", "K-ret", `{"amount":100}`)
		if again.code != http.StatusOK || !bytes.Equal(again.body, late.body) || again.position != late.position {
			t.Errorf("K once more: %d %q %q, want the reply of its new application %q %q", again.code, again.body, again.position, late.body, late.position)
		}
		if code, st := readState(t, w.addr, "shortbank", subject, again.position); code != http.StatusOK || balanceOf(t, st.State) != 220 || st.Seq != 22 {
			t.Errorf("state: %d %+v, want balance 220 at seq 22", code, st)
		}
	})

	// Another producer's command reusing a pending gateway request's id (on
	// another subject and partition): neither its reply nor its dead letter
	// (here an idempotency conflict of its own) answers the gateway request,
	// which gets its own reply.
	t.Run("AnotherSourcesReplyDoesNotAnswer", func(t *testing.T) {
		const id, slowSubject = "shared-id", "acct-slow"
		fast := otherPartition(slowSubject, "acct-fast")
		answered := make(chan gatewayReply, 1)
		sentAt := time.Now()
		go func() {
			answered <- command(t, w.addr, "bank", slowSubject, "slow", id, `{"millis":3000}`)
		}()
		time.Sleep(500 * time.Millisecond) // the request is pending, its command in the handler
		topic := w.topics.Commands("bank")
		if err := w.prod.SendMessages([]*sarama.ProducerMessage{
			direct(topic, "other-producer", id, fast, "deposit", idemDeposit{Amount: 1}, true),
			direct(topic, "other-producer", id, fast, "deposit", idemDeposit{Amount: 2}, true), // a conflict: a dead letter
		}); err != nil {
			t.Fatal(err)
		}
		// Both reached their topics while the gateway request waits.
		sawReply, sawDead := false, false
		idemConsume(t, w.client, []string{w.topics.Replies(), w.topics.DeadLetters()}, 20*time.Second, func(m *sarama.ConsumerMessage) bool {
			h := map[string]string{}
			for _, rh := range m.Headers {
				h[string(rh.Key)] = string(rh.Value)
			}
			switch {
			case m.Topic == w.topics.Replies() && h["ce_"+codec.ExtRequest] == id && h["ce_"+codec.ExtRequestSource] == "other-producer":
				sawReply = true
			case m.Topic == w.topics.DeadLetters() && h["ce_id"] == id && h["ce_source"] == "other-producer" && h[topics.HeaderDLQCode] == core.CodeIdempotencyConflict:
				sawDead = true
			}
			return sawReply && sawDead
		})
		t.Logf("the other producer's reply and dead letter read %v after the gateway request", time.Since(sentAt).Round(time.Millisecond))
		select {
		case rep := <-answered:
			t.Fatalf("the gateway request was answered before its own command finished: %d %s", rep.code, rep.body)
		default:
		}
		rep := <-answered
		if rep.code != http.StatusOK || strings.TrimSpace(string(rep.body)) != `{"slow":true}` {
			t.Errorf("the gateway request's answer: %d %s, want its own reply {\"slow\":true}", rep.code, rep.body)
		}
		if code, st := readState(t, w.addr, "bank", fast, ""); code != http.StatusOK || balanceOf(t, st.State) != 1 {
			t.Errorf("the other producer's subject: %d %+v, want balance 1", code, st)
		}
	})
}

// idemConsume reads topics from the oldest offsets, handing each record to
// next until it returns true; it fails the test after timeout.
func idemConsume(t *testing.T, cl sarama.Client, topics []string, timeout time.Duration, next func(*sarama.ConsumerMessage) bool) {
	t.Helper()
	consumer, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if err := cl.RefreshMetadata(topics...); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *sarama.ConsumerMessage, 1024)
	stop := make(chan struct{})
	defer close(stop)
	for _, topic := range topics {
		parts, err := cl.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.AsyncClose() // Close would wait for the partition's fetch: seconds for 16
			go func() {
				for m := range pc.Messages() { // until AsyncClose closes it; dropped after stop
					select {
					case ch <- m:
					case <-stop:
					}
				}
			}()
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ch:
			if next(m) {
				return
			}
		case <-deadline:
			t.Fatalf("%v: condition not met within %v", topics, timeout)
		}
	}
}
