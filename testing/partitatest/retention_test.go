package partitatest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

type Deposit struct {
	Amount int `json:"amount"`
}

type Account struct {
	Balance int `json:"balance"`
}

func bank(opts ...entities.Option) *entities.Entity[Account] {
	account := entities.KeyValue[Account]("account", opts...)
	entities.Command(account, "deposit", func(ctx *entities.Context[Account], d Deposit) entities.Effect[Account] {
		s := Account{Balance: ctx.State().Balance + d.Amount}
		return ctx.Update(s).Reply(s)
	})
	return account
}

// A retried deposit is applied once however many commands its account took
// in between (the window keeps 16), for the retention; after it, the same
// id is a new command.
func TestRetentionOutlivesTheWindow(t *testing.T) {
	h := pt.Start(t, bank(entities.Retention(time.Hour)))
	first, err := h.Send("account", "acc-1", "deposit", Deposit{Amount: 100}, pt.ID("pay-42"))
	pt.Expect[Account](t)(first, err)
	for i := range 1000 {
		h.Advance(time.Second)
		if i%100 == 0 {
			if err := h.Crash("account"); err != nil { // restarts on the same worker
				t.Fatal(err)
			}
		}
		_, err := h.Send("account", "acc-1", "deposit", Deposit{Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
	}
	again, err := h.Redeliver("pay-42")
	if err != nil || !again.Duplicate || string(again.Data) != string(first.Data) {
		t.Fatalf("retry 1,000 commands later: %+v %v; want the first reply %s", again, err, first.Data)
	}
	var a Account
	_, _ = h.State("account", "acc-1", &a)
	if a.Balance != 1100 {
		t.Fatalf("balance %d, want 1100: the retry was applied again", a.Balance)
	}
	h.Advance(time.Hour)
	late, err := h.Redeliver("pay-42")
	if err != nil || late.Duplicate {
		t.Fatalf("retry after the retention: %+v %v; want it applied as a new command", late, err)
	}
	_, _ = h.State("account", "acc-1", &a)
	if a.Balance != 1200 {
		t.Fatalf("balance %d after the retention, want 1200", a.Balance)
	}
	h.ExpectHeld(t)
}

// Retention(0) keeps the window alone, as documented.
func TestWindowAloneForgetsBeyondIt(t *testing.T) {
	h := pt.Start(t, bank(entities.Retention(0)))
	_, _ = h.Send("account", "acc-1", "deposit", Deposit{Amount: 100}, pt.ID("pay-42"))
	for range entities.DefaultDedupWindow {
		_, _ = h.Send("account", "acc-1", "deposit", Deposit{Amount: 1})
	}
	if again, err := h.Redeliver("pay-42"); err != nil || again.Duplicate {
		t.Fatalf("window alone: %+v %v; want the retry applied again", again, err)
	}
}

// The same id with another request is refused, whether the first is in
// the window or in the id table.
func TestIdempotencyConflict(t *testing.T) {
	for _, between := range []int{0, 40} {
		t.Run(fmt.Sprint(between, " commands between"), func(t *testing.T) {
			h := pt.Start(t, bank())
			_, _ = h.Send("account", "acc-1", "deposit", Deposit{Amount: 100}, pt.ID("reuse-1"))
			for range between {
				_, _ = h.Send("account", "acc-1", "deposit", Deposit{Amount: 1})
			}
			_, err := h.Send("account", "acc-1", "deposit", Deposit{Amount: 999}, pt.ID("reuse-1"))
			d := h.ExpectDeadLettered(t, err, "idempotency_conflict")
			if code := string(d.Record.Headers["partita_dlq_code"]); code != "idempotency_conflict" {
				t.Fatalf("dead letter code %q", code)
			}
			var a Account
			_, _ = h.State("account", "acc-1", &a)
			if a.Balance != 100+between {
				t.Fatalf("balance %d, want %d", a.Balance, 100+between)
			}
		})
	}
}

type Noted struct {
	Text string `json:"text"`
}

// What a command that changes no state publishes carries a sequence number
// of its own, so a receiver can tell a redelivery from the next event.
func TestPublishWithoutStateChangeIsSequenced(t *testing.T) {
	h0, _ := pt.New()
	audit := h0.Topic("audit")
	notes := entities.KeyValue[Account]("notes", entities.PublishesTo(audit))
	entities.Command(notes, "note", func(ctx *entities.Context[Account], n Noted) entities.Effect[Account] {
		return ctx.Ignore().Publish(audit, "Noted", n)
	})
	h := pt.Start(t, notes)
	for _, id := range []string{"n1", "n2", "n1"} {
		if _, err := h.Send("notes", "s", "note", Noted{Text: id}, pt.ID(id)); err != nil && id != "n1" {
			t.Fatal(err)
		}
	}
	var seqs []string
	for _, e := range h.Published(audit) {
		seqs = append(seqs, fmt.Sprint(e.Extensions()["partitaseq"]))
	}
	if fmt.Sprint(seqs) != "[1 2]" {
		t.Fatalf("published sequences %v, want [1 2] (the redelivered n1 publishes nothing new)", seqs)
	}
}

type KYC struct {
	Status string `json:"status"`
}

type KYCRow struct {
	Status string `json:"status"`
	Checks int    `json:"checks"`
}

// A view fed from a topic skips an event redelivered behind newer ones,
// in its row's window and, 40 events later, in the view's id table.
func TestTopicViewSkipsRedeliveredEvents(t *testing.T) {
	h0, _ := pt.New()
	kyc := h0.Topic("kyc")
	v := views.New[KYCRow]("kyc-status")
	views.FromTopic(v, kyc, "Checked", func(u views.Update[KYCRow, KYC]) views.Effect[KYCRow] {
		return u.Set(KYCRow{Status: u.Value.Status, Checks: u.Row.Checks + 1})
	})
	h := pt.Start(t, v)
	publish := func(id, status string) {
		t.Helper()
		if err := h.Publish(kyc, "Checked", "c-1", KYC{Status: status}, pt.ID(id), pt.Source("kyc-service")); err != nil {
			t.Fatal(err)
		}
	}
	publish("k-1", "review")
	publish("k-2", "passed")
	if err := h.RedeliverEvent(kyc, "k-1"); err != nil {
		t.Fatal(err)
	}
	if row := pt.ExpectRow[KYCRow](t, h, "kyc-status", "c-1"); row != (KYCRow{Status: "passed", Checks: 2}) {
		t.Fatalf("after a redelivery: %+v, want passed after 2 checks", row)
	}
	for i := range 40 {
		publish(fmt.Sprint("more-", i), "passed")
	}
	if err := h.RedeliverEvent(kyc, "k-1"); err != nil {
		t.Fatal(err)
	}
	if row := pt.ExpectRow[KYCRow](t, h, "kyc-status", "c-1"); row != (KYCRow{Status: "passed", Checks: 42}) {
		t.Fatalf("after a redelivery 40 events later: %+v, want passed after 42 checks", row)
	}
	h.ExpectHeld(t)
}
