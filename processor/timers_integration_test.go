package processor_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/internal/envelope"
)

// reminder counts the fires of its timer "ring" and of "other".
type reminder struct {
	Rings  int
	Others int
	Fired  []string // the timers that delivered each ring
}

type setReminder struct {
	Name  string `json:"name"`
	After string `json:"after"` // a time.Duration
}

func newReminder() *entities.Entity[reminder] {
	r := entities.KeyValue[reminder]("reminder")
	entities.Command(r, "set", func(ctx *entities.Context[reminder], c setReminder) entities.Effect[reminder] {
		after, err := time.ParseDuration(c.After)
		if err != nil {
			return ctx.Error(entities.InvalidArgument, "after: %v", err)
		}
		return ctx.Reply(len(ctx.Timers())).StartTimer(c.Name, after, "ring", struct{}{})
	})
	entities.Command(r, "cancel", func(ctx *entities.Context[reminder], c setReminder) entities.Effect[reminder] {
		return ctx.Reply("ok").CancelTimer(c.Name)
	})
	entities.Command(r, "ring", func(ctx *entities.Context[reminder], _ struct{}) entities.Effect[reminder] {
		s := ctx.State()
		s.Rings++
		s.Fired = append(s.Fired, ctx.Command().Timer())
		return ctx.Update(s)
	})
	return r
}

// rings waits until every subject's state has the rings want says (and
// fails on more), reading the table topic.
func rings(a *app, want map[string]int, timeout time.Duration) map[string]reminder {
	a.t.Helper()
	got := map[string]reminder{}
	a.table("reminder", a.cfg.Partitions, timeout, func(latest map[string]*envelope.Envelope) bool {
		for subject, n := range want {
			env := latest[subject]
			if env == nil || !env.Exists {
				return false
			}
			var r reminder
			if err := json.Unmarshal(env.State, &r); err != nil {
				a.t.Fatal(err)
			}
			if r.Rings > n {
				a.t.Fatalf("%s rang %d times, want %d: %v", subject, r.Rings, n, r.Fired)
			}
			got[subject] = r
			if r.Rings < n {
				return false
			}
		}
		return true
	})
	return got
}

// Timers on the real broker: one fires once when due; one replaced by
// name fires once, at its new time; one cancelled never fires; and a
// timer pending while the worker is down fires once after it restarts
// (its schedule restored from the table).
func TestTimersOnTheBroker(t *testing.T) {
	a := newApp(t, newReminder())
	a.start()
	start := time.Now()
	a.send(
		message(a.topics.Commands("reminder"), cmd("r-once", "set", "c1", setReminder{Name: "ring", After: "1s"})),
		message(a.topics.Commands("reminder"), cmd("r-replaced", "set", "c2", setReminder{Name: "ring", After: "1h"})),
		message(a.topics.Commands("reminder"), cmd("r-replaced", "set", "c3", setReminder{Name: "ring", After: "2s"})),
		message(a.topics.Commands("reminder"), cmd("r-cancelled", "set", "c4", setReminder{Name: "ring", After: "2s"})),
		message(a.topics.Commands("reminder"), cmd("r-cancelled", "cancel", "c5", setReminder{Name: "ring"})),
		message(a.topics.Commands("reminder"), cmd("r-cancelled", "set", "c6", setReminder{Name: "other", After: "3s"})),
	)
	got := rings(a, map[string]int{"r-once": 1, "r-replaced": 1, "r-cancelled": 1}, time.Minute)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("the replaced timer fired %v after it was set for 2s", d)
	}
	if f := got["r-cancelled"].Fired; len(f) != 1 || f[0] != "other" {
		t.Errorf("r-cancelled rang by %v, want only by \"other\"", f)
	}
	if f := got["r-once"].Fired; len(f) != 1 || f[0] != "ring" {
		t.Errorf("r-once rang by %v", f)
	}

	// Down while a timer falls due: it fires once after the restart.
	a.send(message(a.topics.Commands("reminder"), cmd("r-down", "set", "c7", setReminder{Name: "ring", After: "3s"})))
	a.replies(time.Minute, "c7")
	a.stop()
	time.Sleep(4 * time.Second)
	a.renew()
	a.start()
	rings(a, map[string]int{"r-down": 1, "r-once": 1, "r-replaced": 1, "r-cancelled": 1}, time.Minute)
	time.Sleep(2 * time.Second) // a second fire would show now
	rings(a, map[string]int{"r-down": 1, "r-once": 1, "r-replaced": 1, "r-cancelled": 1}, 10*time.Second)
	if st := a.rt.TimerStats()["reminder"]; st.Pending != 0 || st.Overdue != 0 {
		t.Errorf("timer stats after every fire: %+v", st)
	}
}

type lookup struct {
	Owner string `json:"owner"`
}

// opener asks "holder" about an owner and records the one answer it gets.
type opener struct {
	Answers []string
}

func newHolder() *entities.Entity[struct{ Name string }] {
	h := entities.KeyValue[struct{ Name string }]("holder", entities.Retries(0, time.Millisecond))
	entities.Command(h, "register", func(ctx *entities.Context[struct{ Name string }], _ struct{}) entities.Effect[struct{ Name string }] {
		return ctx.Update(struct{ Name string }{Name: ctx.Subject()})
	})
	entities.Command(h, "get", func(ctx *entities.Context[struct{ Name string }], _ struct{}) entities.Effect[struct{ Name string }] {
		switch {
		case ctx.Subject() == "slow":
			time.Sleep(4 * time.Second)
			return ctx.Reply(struct{ Name string }{Name: "slow"})
		case ctx.Subject() == "broken":
			return ctx.Fail(entities.Permanent(fmt.Errorf("holder %s is broken", ctx.Subject())))
		case !ctx.Exists():
			return ctx.Error(entities.NotFound, "no holder %s", ctx.Subject())
		}
		return ctx.Reply(ctx.State())
	})
	return h
}

func newOpener(timeout time.Duration) *entities.Entity[opener] {
	o := entities.KeyValue[opener]("opener", entities.SendsTo("holder"))
	entities.Command(o, "open", func(ctx *entities.Context[opener], c lookup) entities.Effect[opener] {
		return ctx.Reply("asked").Ask(entities.Ask{Entity: "holder", Subject: c.Owner, Command: "get", Payload: struct{}{},
			OnReply: "found", OnError: "failed", OnTimeout: "timed-out", Timeout: timeout})
	})
	answer := func(kind string) func(ctx *entities.Context[opener], e json.RawMessage) entities.Effect[opener] {
		return func(ctx *entities.Context[opener], e json.RawMessage) entities.Effect[opener] {
			s := ctx.State()
			var ae entities.AskError
			_ = json.Unmarshal(e, &ae)
			s.Answers = append(s.Answers, kind+":"+string(ae.Code))
			return ctx.Update(s)
		}
	}
	entities.Command(o, "found", answer("reply"))
	entities.Command(o, "failed", answer("error"))
	entities.Command(o, "timed-out", answer("timeout"))
	return o
}

// Asks on the real broker: a reply, an error reply, a dead letter of the
// asked command (its error), and a target that answers too late (the
// timeout, and the late answer dropped); each asker applies exactly one
// answer.
func TestAsksOnTheBroker(t *testing.T) {
	a := newApp(t, newHolder(), newOpener(2*time.Second))
	a.start()
	a.send(message(a.topics.Commands("holder"), cmd("ada", "register", "h1", struct{}{})))
	a.replies(time.Minute, "h1")
	a.send(
		message(a.topics.Commands("opener"), cmd("o-found", "open", "o1", lookup{Owner: "ada"})),
		message(a.topics.Commands("opener"), cmd("o-missing", "open", "o2", lookup{Owner: "bob"})),
		message(a.topics.Commands("opener"), cmd("o-broken", "open", "o3", lookup{Owner: "broken"})),
	)
	answers := func(want map[string]string, timeout time.Duration) {
		t.Helper()
		a.table("opener", a.cfg.Partitions, timeout, func(latest map[string]*envelope.Envelope) bool {
			for subject, w := range want {
				env := latest[subject]
				if env == nil || !env.Exists {
					return false
				}
				var o opener
				if err := json.Unmarshal(env.State, &o); err != nil {
					t.Fatal(err)
				}
				if len(o.Answers) > 1 || len(o.Answers) == 1 && o.Answers[0] != w {
					t.Fatalf("%s: answers %v, want just %s", subject, o.Answers, w)
				}
				if len(o.Answers) == 0 {
					return false
				}
			}
			return true
		})
	}
	answers(map[string]string{"o-found": "reply:", "o-missing": "error:not_found", "o-broken": "error:dead_letter"}, time.Minute)

	// The target does not answer in time (its partition is held up by a
	// slow command, as when its worker is stopped): the ask times out, and
	// the late answer is dropped.
	a.send(message(a.topics.Commands("opener"), cmd("o-late", "open", "o4", lookup{Owner: "slow"})))
	answers(map[string]string{"o-late": "timeout:timeout"}, time.Minute)
	time.Sleep(5 * time.Second) // the holder answers meanwhile
	answers(map[string]string{"o-late": "timeout:timeout", "o-found": "reply:", "o-missing": "error:not_found", "o-broken": "error:dead_letter"}, 20*time.Second)
}
