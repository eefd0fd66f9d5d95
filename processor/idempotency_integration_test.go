package processor_test

// Issue 13 (idempotency) at the Kafka level, on the real broker: the same
// command key (ce-source, ce-id) with another request is a dead letter with
// partita_dlq_code=idempotency_conflict, in the subject's window and
// beyond it (the id table); a record carrying a CloudEvents header twice is
// a dead letter and changes no state.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor"
)

type idemAccount struct {
	Balance int `json:"balance"`
}

type idemDeposit struct {
	Amount int `json:"amount"`
}

// idemBank is a key-value entity: deposit adds to the balance and replies
// with the account.
func idemBank() *entities.Entity[idemAccount] {
	e := entities.KeyValue[idemAccount]("bank")
	entities.Command(e, "deposit", func(ctx *entities.Context[idemAccount], d idemDeposit) entities.Effect[idemAccount] {
		next := idemAccount{Balance: ctx.State().Balance + d.Amount}
		return ctx.Update(next).Reply(next)
	})
	return e
}

// idemReplies waits for the replies to the commands of source "test" with
// the given ids, n of each, in order of arrival.
func (a *app) idemReplies(n int, ids ...string) map[string][]record {
	a.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string][]record{}
	done := 0
	a.read(a.topics.Replies(), time.Minute, func(r record) bool {
		id := r.Headers["ce_"+codec.ExtRequest]
		if want[id] && r.Headers["ce_"+codec.ExtRequestSource] == "test" && len(got[id]) < n {
			got[id] = append(got[id], r)
			if len(got[id]) == n {
				done++
			}
		}
		return done == len(want)
	})
	return got
}

// balance reads subject's state with the runtime's read path, at position
// after or later.
func (a *app) balance(subject, after string) (int, uint64) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := a.rt.State(ctx, "bank", subject, after)
	if err != nil {
		a.t.Fatalf("state of %s: %v", subject, err)
	}
	return decodeJSON[idemAccount](a.t, st.State).Balance, st.Seq
}

// Two records with the same ce-source and ce-id and other data, straight
// onto the commands topic: the second is a dead letter with the code
// idempotency_conflict and a reason saying so, in the window and behind 20
// newer commands (the id table); the state has the first applied only, and
// the same request again is a duplicate with the first reply.
func TestIdempotencyConflictOverKafkaIsADeadLetter(t *testing.T) {
	a := newApp(t, idemBank())
	a.cfg.StateReads = true
	a.renew()
	a.start()
	topic := a.topics.Commands("bank")
	const subject = "acct-k"
	a.send(message(topic, cmd(subject, "deposit", "c-1", idemDeposit{Amount: 5})),
		message(topic, cmd(subject, "deposit", "c-1", idemDeposit{Amount: 6})))
	var others []*sarama.ProducerMessage
	var otherIDs []string
	for i := range 20 {
		id := fmt.Sprintf("other-%d", i)
		others = append(others, message(topic, cmd(subject, "deposit", id, idemDeposit{Amount: 1})))
		otherIDs = append(otherIDs, id)
	}
	a.send(others...)
	a.send(message(topic, cmd(subject, "deposit", "c-1", idemDeposit{Amount: 7})), // beyond the window
		message(topic, cmd(subject, "deposit", "c-1", idemDeposit{Amount: 5})), // the same request: a duplicate
		message(topic, cmd(subject, "deposit", "last", idemDeposit{Amount: 0})))

	var dead []record
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool {
		if r.Headers["ce_id"] == "c-1" {
			dead = append(dead, r)
		}
		return len(dead) == 2
	})
	for i, want := range []string{`{"amount":6}`, `{"amount":7}`} {
		r := dead[i]
		reason := r.Headers[processor.HeaderDLQReason]
		if r.Headers[topics.HeaderDLQCode] != core.CodeIdempotencyConflict || !strings.HasPrefix(reason, core.CodeIdempotencyConflict+":") ||
			!strings.Contains(reason, "test/c-1 was applied before with another request") {
			t.Errorf("dead letter %d: code %q, reason %q", i, r.Headers[topics.HeaderDLQCode], reason)
		}
		if string(r.Value) != want || r.Headers["ce_source"] != "test" || r.Key != subject {
			t.Errorf("dead letter %d is not the conflicting record as sent: %s %v", i, r.Value, r.Headers)
		}
	}
	rs := a.idemReplies(1, append(otherIDs, "last")...)
	c1 := a.idemReplies(2, "c-1")["c-1"]
	if !bytes.Equal(c1[0].Value, c1[1].Value) || c1[0].Headers["ce_partitaposition"] != c1[1].Headers["ce_partitaposition"] ||
		string(c1[0].Value) != `{"balance":5}` {
		t.Errorf("c-1's replies: %s %v and %s %v, want the first twice", c1[0].Value, c1[0].Headers, c1[1].Value, c1[1].Headers)
	}
	if last := rs["last"]; string(last[0].Value) != `{"balance":25}` {
		t.Errorf("after the conflicts: %s, want balance 25", last[0].Value)
	}
	if b, seq := a.balance(subject, rs["last"][0].Headers["ce_partitaposition"]); b != 25 || seq != 22 {
		t.Errorf("state: balance %d seq %d, want 25 at 22 (c-1 applied once, its conflicts never)", b, seq)
	}
	if n := a.rt.Stats().DeadLetters.Load(); n != 2 {
		t.Errorf("%d dead letters counted, want 2", n)
	}
}

// A record with a CloudEvents header twice is a dead letter whose reason
// says the header appears more than once, and changes no subject's state:
// two ce_subject headers written by kcat (librdkafka) and by sarama, and
// ce_type twice in two cases (sarama).
func TestAmbiguousCloudEventIsADeadLetter(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is required (Debian package kcat; .ci/run installs it)")
	}
	a := newApp(t, idemBank())
	a.cfg.StateReads = true
	a.renew()
	a.start()
	topic := a.topics.Commands("bank")
	a.send(message(topic, cmd("amb-a", "deposit", "init-a", idemDeposit{Amount: 10})),
		message(topic, cmd("amb-b", "deposit", "init-b", idemDeposit{Amount: 20})))
	a.idemReplies(1, "init-a", "init-b")

	// kcat: amb-a's command, with a second ce_subject naming amb-b.
	r, err := codec.EncodeEvent(cmd("amb-a", "deposit", "amb-1", idemDeposit{Amount: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-P", "-b", a.env.Plaintext, "-t", topic, "-X", "partitioner=murmur2_random", "-K", "\t"}
	for k, v := range r.Headers {
		args = append(args, "-H", k+"="+string(v))
	}
	args = append(args, "-H", "ce_subject=amb-b")
	c := exec.Command("kcat", args...)
	c.Stdin = strings.NewReader("amb-a\t" + string(r.Value) + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}

	// sarama: duplicate RecordHeaders.
	dup := func(subject, id string, extra sarama.RecordHeader) *sarama.ProducerMessage {
		m := message(topic, cmd(subject, "deposit", id, idemDeposit{Amount: 1000}))
		m.Headers = append(m.Headers, extra)
		return m
	}
	a.send(dup("amb-b", "amb-2", sarama.RecordHeader{Key: []byte("ce_subject"), Value: []byte("amb-a")}),
		dup("amb-a", "amb-3", sarama.RecordHeader{Key: []byte("ce_type"), Value: []byte("deposit")}), // twice the same value
		dup("amb-b", "amb-4", sarama.RecordHeader{Key: []byte("CE_TYPE"), Value: []byte("deposit")}), // names are case-insensitive: named as first seen
	)
	names := map[string]string{"amb-1": "ce_subject", "amb-2": "ce_subject", "amb-3": "ce_type", "amb-4": "ce_type"}
	dead := map[string]record{}
	a.read(a.topics.DeadLetters(), time.Minute, func(r record) bool {
		if _, ok := names[r.Headers["ce_id"]]; ok {
			dead[r.Headers["ce_id"]] = r
		}
		return len(dead) == len(names)
	})
	for id, name := range names {
		reason := dead[id].Headers[processor.HeaderDLQReason]
		if !strings.Contains(reason, "more than once") || !strings.Contains(reason, name) ||
			!strings.HasPrefix(dead[id].Headers[topics.HeaderAmbiguous], name+"=") {
			t.Errorf("%s: dead-letter reason %q (%s %q), want it to name %s appearing more than once", id, reason, topics.HeaderAmbiguous, dead[id].Headers[topics.HeaderAmbiguous], name)
		}
		if !strings.Contains(string(dead[id].Value), "1000") {
			t.Errorf("%s: the dead letter lost its value: %s", id, dead[id].Value)
		}
	}

	// Neither subject changed: a deposit of 1 behind the ambiguous records
	// sees the initial balances, and the state agrees.
	a.send(message(topic, cmd("amb-a", "deposit", "after-a", idemDeposit{Amount: 1})),
		message(topic, cmd("amb-b", "deposit", "after-b", idemDeposit{Amount: 1})))
	rs := a.idemReplies(1, "after-a", "after-b")
	for s, want := range map[string]int{"amb-a": 11, "amb-b": 21} {
		rep := rs["after-"+strings.TrimPrefix(s, "amb-")][0]
		var acc idemAccount
		if err := json.Unmarshal(rep.Value, &acc); err != nil || acc.Balance != want {
			t.Errorf("%s after the ambiguous records: %s, want balance %d", s, rep.Value, want)
		}
		if b, seq := a.balance(s, rep.Headers["ce_partitaposition"]); b != want || seq != 2 {
			t.Errorf("state of %s: balance %d seq %d, want %d at 2", s, b, seq, want)
		}
	}
	// No reply to any ambiguous record: the replies topic holds the four
	// replies above and nothing else (each ambiguous record was handled
	// before the deposit behind it on its subject's partition).
	time.Sleep(time.Second)
	if err := a.client.RefreshMetadata(a.topics.Replies()); err != nil {
		t.Fatal(err)
	}
	parts, err := a.client.Partitions(a.topics.Replies())
	if err != nil {
		t.Fatal(err)
	}
	var replies int64
	for _, p := range parts {
		end, err := a.client.GetOffset(a.topics.Replies(), p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		replies += end
	}
	if replies != 4 {
		t.Errorf("%d replies on the topic, want 4 (none to the ambiguous records)", replies)
	}
	if n := a.rt.Stats().DeadLetters.Load(); n != int64(len(names)) {
		t.Errorf("%d dead letters counted, want %d", n, len(names))
	}
}
