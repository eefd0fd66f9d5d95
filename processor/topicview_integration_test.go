package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/views"
)

type kycChecked struct {
	Status string `json:"status"`
}

type kycRow struct {
	Status string `json:"status"`
	Checks int    `json:"checks"`
}

// A view fed from another producer's topic (events without partitaseq)
// skips an event redelivered behind newer ones: within its row's ids, and
// 40 events later from the view's id table; the row is as if it came once.
func TestTopicViewSkipsRedeliveredEvents(t *testing.T) {
	e := newApp(t) // for its broker, client and a unique prefix
	kyc := e.name + ".kyc"
	admin, err := sarama.NewClusterAdminFromClient(e.client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(kyc, &sarama.TopicDetail{NumPartitions: 8, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	v := views.New[kycRow]("kyc-status")
	views.FromTopic(v, kyc, "Checked", func(u views.Update[kycRow, kycChecked]) views.Effect[kycRow] {
		return u.Set(kycRow{Status: u.Value.Status, Checks: u.Row.Checks + 1})
	})
	a := newAppOn(t, e.kafka, v)
	a.start()
	check := func(id, status string) *sarama.ProducerMessage {
		ev := cmd("c-1", "Checked", id, kycChecked{Status: status})
		ev.SetSource("kyc-service")
		return message(kyc, ev)
	}
	store, _ := a.rt.View("kyc-status")
	waitFor := func(want kycRow) {
		t.Helper()
		var row kycRow
		eventually(t, time.Minute, fmt.Sprintf("row %+v", want), func() bool {
			row, _, _ = views.Get[kycRow](t.Context(), store, "c-1")
			return row == want
		})
	}
	a.send(check("k-1", "review"), check("k-2", "passed"))
	waitFor(kycRow{Status: "passed", Checks: 2})
	a.send(check("k-1", "review"), check("k-3", "passed")) // k-1 again, then a marker
	waitFor(kycRow{Status: "passed", Checks: 3})
	var more []*sarama.ProducerMessage
	for i := range 40 {
		more = append(more, check(fmt.Sprint("more-", i), "passed"))
	}
	a.send(more...)
	a.send(check("k-1", "review"), check("k-4", "passed"))
	waitFor(kycRow{Status: "passed", Checks: 44})
}

// What a command that changes no state publishes carries a sequence number
// of its own (real broker): two such commands publish sequences 1 and 2,
// and the first one delivered again, behind them, publishes nothing new.
func TestPublishWithoutStateChangeIsSequenced(t *testing.T) {
	e := newApp(t)
	audit := e.name + ".audit"
	notes := entities.KeyValue[kycRow]("auditor", entities.PublishesTo(audit))
	entities.Command(notes, "note", func(ctx *entities.Context[kycRow], n kycChecked) entities.Effect[kycRow] {
		return ctx.Ignore().Publish(audit, "Noted", n)
	})
	a := newAppOn(t, e.kafka, notes)
	a.start()
	topic := a.topics.Commands("auditor")
	first := message(topic, cmd("s", "note", "n-1", kycChecked{Status: "a"}))
	a.send(first, message(topic, cmd("s", "note", "n-2", kycChecked{Status: "b"})))
	a.replies(time.Minute, "n-1", "n-2")
	a.send(message(topic, cmd("s", "note", "n-1", kycChecked{Status: "a"})), message(topic, cmd("s", "note", "n-3", kycChecked{Status: "c"})))
	a.replies(time.Minute, "n-3")
	var seqs []string
	for _, r := range a.readAll(audit, 2*time.Second) {
		seqs = append(seqs, r.Headers["ce_partitaseq"])
	}
	if fmt.Sprint(seqs) != "[1 2 3]" {
		t.Fatalf("published sequence numbers %v, want [1 2 3]: n-1, n-2, n-3, nothing for n-1 again", seqs)
	}
}
