package shop_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/entities"
	pt "github.com/partita-dev/partita/testing/partitatest"
)

// The timers-asks workload: a small application of its own (the shop has
// no timers), run through the same seeded schedules. A reminder subject
// starts, replaces and cancels timers by name (some of which start the
// next when they fire) and asks a clerk, one ask at a time, to serve
// (a reply), refuse (an error reply) or break (a permanent failure: a dead
// letter, whose error the reminder gets). An ask times out when the clerk
// has not answered in time: the clock jumps (Faults.Gap) and lagging
// entities (Faults.LagEntity) make it happen, and the late answer is
// dropped. The handlers themselves check what they see (Reminder.Wrong);
// the test then folds the order of application the schedule reports and
// holds each state to it.

// Reminder is a reminder subject's state.
type Reminder struct {
	Armed  map[string]Armed `json:"armed,omitempty"` // timer name -> what started it, while pending
	Fired  []Fired          `json:"fired,omitempty"`
	Asking *Asking          `json:"asking,omitempty"` // the ask waiting for its answer
	Asked  []Asked          `json:"asked,omitempty"`
	Busy   int              `json:"busy,omitempty"` // asks not made: one was waiting
	// Wrong lists what a handler saw that breaks a promise.
	Wrong []string `json:"wrong,omitempty"`
}

// Armed is what started a pending timer, and when it is due.
type Armed struct {
	Tag  string        `json:"tag"`
	Due  time.Time     `json:"due"`
	Then time.Duration `json:"then,omitempty"`
}

// Ring is a timer's command: the timer's name, the tag of the command
// that started it, and how long after firing to start it once more (0:
// not).
type Ring struct {
	Name string        `json:"name"`
	Tag  string        `json:"tag"`
	Then time.Duration `json:"then,omitempty"`
}

// Fired is a timer that fired.
type Fired struct {
	Name string    `json:"name"`
	Tag  string    `json:"tag"`
	At   time.Time `json:"at"`
}

// Asking is an ask waiting for its answer.
type Asking struct {
	Tag     string        `json:"tag"`
	Command string        `json:"command"`
	Sent    time.Time     `json:"sent"`
	Timeout time.Duration `json:"timeout"`
}

// Asked is how an ask ended: Got is "reply", the error reply's code,
// "dead_letter" or "timeout".
type Asked struct {
	Tag string `json:"tag"`
	Got string `json:"got"`
}

// StartTimer starts (or replaces) the timer Name.
type StartTimer struct {
	Name  string        `json:"name"`
	Tag   string        `json:"tag"`
	After time.Duration `json:"after"`
	Then  time.Duration `json:"then,omitempty"`
}

// CancelTimer cancels the timer Name.
type CancelTimer struct {
	Name string `json:"name"`
}

// AskClerk asks the clerk subject Clerk to run Command ("serve",
// "refuse" or "break").
type AskClerk struct {
	Tag     string        `json:"tag"`
	Clerk   string        `json:"clerk"`
	Command string        `json:"command"`
	Timeout time.Duration `json:"timeout"`
}

// Job is what a clerk is asked, and its reply.
type Job struct {
	Tag string `json:"tag"`
}

// Clerk counts the jobs a clerk served and refused.
type Clerk struct {
	Served, Refused int
}

func newReminder() *entities.Entity[Reminder] {
	e := entities.KeyValue[Reminder]("reminder", entities.SendsTo("clerk"))
	wrong := func(s *Reminder, format string, args ...any) { s.Wrong = append(s.Wrong, fmt.Sprintf(format, args...)) }
	entities.Command(e, "start", func(ctx *entities.Context[Reminder], c StartTimer) entities.Effect[Reminder] {
		s := ctx.State()
		if s.Armed == nil {
			s.Armed = map[string]Armed{}
		}
		s.Armed[c.Name] = Armed{Tag: c.Tag, Due: ctx.Now().Add(c.After), Then: c.Then}
		return ctx.Update(s).StartTimer(c.Name, c.After, "ring", Ring{Name: c.Name, Tag: c.Tag, Then: c.Then})
	})
	entities.Command(e, "cancel", func(ctx *entities.Context[Reminder], c CancelTimer) entities.Effect[Reminder] {
		s := ctx.State()
		delete(s.Armed, c.Name)
		return ctx.Update(s).CancelTimer(c.Name)
	})
	entities.Command(e, "ring", func(ctx *entities.Context[Reminder], r Ring) entities.Effect[Reminder] {
		s := ctx.State()
		if got := ctx.Command().Timer(); got != r.Name {
			wrong(&s, "ring %s/%s delivered by timer %q", r.Name, r.Tag, got)
		}
		for _, t := range ctx.Timers() {
			if t.Name == r.Name {
				wrong(&s, "ring %s/%s: its timer is still pending", r.Name, r.Tag)
			}
		}
		a, ok := s.Armed[r.Name]
		switch {
		case !ok:
			wrong(&s, "timer %s fired (tag %s) at %v while none was armed: cancelled or fired before", r.Name, r.Tag, ctx.Now())
		case a.Tag != r.Tag:
			wrong(&s, "timer %s fired with tag %s at %v, but tag %s replaced it", r.Name, r.Tag, ctx.Now(), a.Tag)
		case ctx.Now().Before(a.Due):
			wrong(&s, "timer %s/%s fired at %v, %v before it was due", r.Name, r.Tag, ctx.Now(), a.Due.Sub(ctx.Now()))
		}
		s.Fired = append(s.Fired, Fired{Name: r.Name, Tag: r.Tag, At: ctx.Now()})
		delete(s.Armed, r.Name)
		eff := ctx.Update(s)
		if r.Then > 0 {
			// Once more, started by the fire itself.
			next := Ring{Name: r.Name, Tag: r.Tag + "+"}
			if s.Armed == nil {
				s.Armed = map[string]Armed{}
			}
			s.Armed[r.Name] = Armed{Tag: next.Tag, Due: ctx.Now().Add(r.Then)}
			eff = ctx.Update(s).StartTimer(r.Name, r.Then, "ring", next)
		}
		return eff
	})
	entities.Command(e, "ask", func(ctx *entities.Context[Reminder], c AskClerk) entities.Effect[Reminder] {
		s := ctx.State()
		if s.Asking != nil {
			s.Busy++
			return ctx.Update(s)
		}
		s.Asking = &Asking{Tag: c.Tag, Command: c.Command, Sent: ctx.Now(), Timeout: c.Timeout}
		return ctx.Update(s).Ask(entities.Ask{Entity: "clerk", Subject: c.Clerk, Command: c.Command, Payload: Job{Tag: c.Tag},
			OnReply: "served", OnError: "failed", OnTimeout: "timed-out", Timeout: c.Timeout})
	})
	// answer ends the waiting ask with got, checking what it says.
	answer := func(ctx *entities.Context[Reminder], got, tag string, timeout bool) entities.Effect[Reminder] {
		s := ctx.State()
		a := s.Asking
		switch {
		case a == nil:
			wrong(&s, "%s (tag %q) at %v, but no ask was waiting: a second answer", got, tag, ctx.Now())
			return ctx.Update(s)
		case timeout && ctx.Now().Before(a.Sent.Add(a.Timeout)):
			wrong(&s, "ask %s timed out at %v, %v before its timeout", a.Tag, ctx.Now(), a.Sent.Add(a.Timeout).Sub(ctx.Now()))
		case !timeout && tag != a.Tag:
			wrong(&s, "ask %s got the answer to %s", a.Tag, tag)
		case !timeout && got != map[string]string{"serve": "reply", "refuse": string(entities.Conflict), "break": string(entities.AskDeadLetter)}[a.Command]:
			wrong(&s, "ask %s to %s got %s", a.Tag, a.Command, got)
		}
		s.Asked = append(s.Asked, Asked{Tag: a.Tag, Got: got})
		s.Asking = nil
		return ctx.Update(s)
	}
	entities.Command(e, "served", func(ctx *entities.Context[Reminder], j Job) entities.Effect[Reminder] {
		return answer(ctx, "reply", j.Tag, false)
	})
	entities.Command(e, "failed", func(ctx *entities.Context[Reminder], e entities.AskError) entities.Effect[Reminder] {
		tag := e.Message[strings.LastIndexByte(e.Message, ' ')+1:] // "... <tag>", as the clerk words it
		if e.Code == entities.AskDeadLetter && e.Kind != deadletter.Code(deadletter.ErrPermanent) {
			tag = "(dead letter of kind " + e.Kind + ")"
		}
		return answer(ctx, string(e.Code), tag, false)
	})
	entities.Command(e, "timed-out", func(ctx *entities.Context[Reminder], e entities.AskError) entities.Effect[Reminder] {
		return answer(ctx, string(e.Code), "", true)
	})
	return e
}

func newClerk() *entities.Entity[Clerk] {
	e := entities.KeyValue[Clerk]("clerk")
	entities.Command(e, "serve", func(ctx *entities.Context[Clerk], j Job) entities.Effect[Clerk] {
		s := ctx.State()
		s.Served++
		return ctx.Update(s).Reply(j)
	})
	entities.Command(e, "refuse", func(ctx *entities.Context[Clerk], j Job) entities.Effect[Clerk] {
		return ctx.Error(entities.Conflict, "refused %s", j.Tag)
	})
	entities.Command(e, "break", func(ctx *entities.Context[Clerk], j Job) entities.Effect[Clerk] {
		return ctx.Fail(entities.Permanent(errors.New("broken " + j.Tag)))
	})
	return e
}

// timersWorkload makes n commands over 4 reminders and 2 clerks: timers
// started (45%; 1 minute to 3 hours, a fifth of them starting once more
// when they fire) and cancelled (20%) over 3 names, and asks (35%: 4 in 7
// serve, 2 refuse, 1 breaks) with timeouts of 1 minute to 2 hours.
const reminders = 4

func timersWorkload(r *rand.Rand, n int) []pt.Command {
	out := make([]pt.Command, 0, n)
	minutes := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Minute }
	for i := range n {
		c := pt.Command{Entity: "reminder", Subject: "rem-" + strconv.Itoa(r.IntN(reminders))}
		name := []string{"a", "b", "c"}[r.IntN(3)]
		switch x := r.IntN(100); {
		case x < 45:
			s := StartTimer{Name: name, Tag: "t" + strconv.Itoa(i), After: minutes(1, 180)}
			if r.IntN(5) == 0 {
				s.Then = minutes(1, 60)
			}
			c.Name, c.Payload = "start", s
		case x < 65:
			c.Name, c.Payload = "cancel", CancelTimer{Name: name}
		default:
			c.Name = "ask"
			c.Payload = AskClerk{Tag: "k" + strconv.Itoa(i), Clerk: "clerk-" + strconv.Itoa(r.IntN(2)),
				Command: []string{"serve", "serve", "serve", "serve", "refuse", "refuse", "break"}[r.IntN(7)], Timeout: minutes(1, 120)}
		}
		out = append(out, c)
	}
	return out
}

// timerStats is what the timers-asks schedules did, summed.
type timerStats struct {
	fires, fired, dropped, drain               int // drain: schedules whose clock moved after the workload
	started, replaced, cancelled, chained      int
	asks, busy, replies, errors, dead, timeout int
}

func (s *timerStats) add(o timerStats) {
	s.fires, s.fired, s.dropped, s.drain = s.fires+o.fires, s.fired+o.fired, s.dropped+o.dropped, s.drain+o.drain
	s.started, s.replaced, s.cancelled, s.chained = s.started+o.started, s.replaced+o.replaced, s.cancelled+o.cancelled, s.chained+o.chained
	s.asks, s.busy, s.replies, s.errors, s.dead, s.timeout = s.asks+o.asks, s.busy+o.busy, s.replies+o.replies, s.errors+o.errors, s.dead+o.dead, s.timeout+o.timeout
}

func (s timerStats) String() string {
	return fmt.Sprintf("timers: %d started (%d replaced pending, %d cancelled pending, %d started again by their fire), %d fires written, %d applied, %d fires and late answers dropped, %d schedules drained; asks: %d made (%d refused as busy), %d replies, %d error replies, %d dead letters, %d timeouts",
		s.started, s.replaced, s.cancelled, s.chained, s.fires, s.fired, s.dropped, s.drain, s.asks, s.busy, s.replies, s.errors, s.dead, s.timeout)
}

// runTimersSchedule runs one seeded schedule of the timers-asks workload
// and checks it: the harness's own checks (every timer fired and applied,
// none before its due time; every ask exactly one of answer and timeout;
// nothing applied twice), what the handlers saw, and each state against
// the fold of the order of application the schedule reports.
func runTimersSchedule(t *testing.T, seed uint64) (pt.Report, timerStats) {
	t.Helper()
	var st timerStats
	h, err := pt.NewWith([]pt.Option{pt.Partitions(3), pt.CommitEvery(1 + int(seed%4))}, newReminder(), newClerk())
	if err != nil {
		t.Fatal(err)
	}
	work := timersWorkload(rand.New(rand.NewPCG(seed, 2)), 100)
	rep, err := h.RunSchedule(seed, work, pt.DefaultFaults)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	st.fires, st.fired, st.dropped = rep.Fires, rep.Fired, rep.Dropped
	if rep.Drain > 0 {
		st.drain = 1
	}
	if v := h.Violations(); len(v) > 0 {
		t.Errorf("seed %d: %v", seed, v)
	}
	byID := map[string]pt.Command{}
	for i, id := range rep.IDs {
		byID[id] = work[i]
	}
	applied := map[string]int{}
	for _, ids := range rep.Applied {
		for _, id := range ids {
			applied[id]++
		}
	}
	for _, id := range rep.IDs {
		if applied[id] != 1 {
			t.Errorf("seed %d: command %s (%s) applied %d times", seed, id, byID[id].Name, applied[id])
		}
	}
	// The fold of each reminder's applications, in the order applied.
	clerks := map[string]Clerk{}
	breaks := map[string]bool{} // tags of the break asks made
	for r := range reminders {
		subject := "rem-" + strconv.Itoa(r)
		var want Reminder
		armed := map[string]Ring{} // what a fire of each pending timer delivers
		var asking *AskClerk
		for _, id := range rep.Applied["reminder/"+subject] {
			c, ok := byID[id]
			switch {
			case ok && c.Name == "start":
				s := c.Payload.(StartTimer)
				if _, ok := armed[s.Name]; ok {
					st.replaced++
				}
				st.started++
				armed[s.Name] = Ring{Name: s.Name, Tag: s.Tag, Then: s.Then}
			case ok && c.Name == "cancel":
				name := c.Payload.(CancelTimer).Name
				if _, ok := armed[name]; ok {
					st.cancelled++
				}
				delete(armed, name)
			case ok && c.Name == "ask":
				a := c.Payload.(AskClerk)
				if asking != nil {
					want.Busy++
					continue
				}
				asking = &a
				st.asks++
				k := clerks[a.Clerk]
				switch a.Command {
				case "serve":
					k.Served++
				case "break":
					breaks[a.Tag] = true
				}
				clerks[a.Clerk] = k
			case strings.HasPrefix(id, "timer:ask:") || strings.HasPrefix(id, "answer:"):
				if asking == nil {
					t.Errorf("seed %d: %s: %s applied with no ask waiting", seed, subject, id)
					continue
				}
				got := map[string]string{"serve": "reply", "refuse": string(entities.Conflict), "break": string(entities.AskDeadLetter)}[asking.Command]
				if strings.HasPrefix(id, "timer:") {
					got = string(entities.AskTimeout)
				}
				want.Asked = append(want.Asked, Asked{Tag: asking.Tag, Got: got})
				asking = nil
			case strings.HasPrefix(id, "timer:"):
				name := strings.TrimPrefix(id, "timer:")
				name = name[:strings.LastIndexByte(name, ':')]
				r, ok := armed[name]
				if !ok {
					t.Errorf("seed %d: %s: %s applied with no timer %s armed", seed, subject, id, name)
					continue
				}
				want.Fired = append(want.Fired, Fired{Name: name, Tag: r.Tag})
				delete(armed, name)
				if r.Then > 0 {
					armed[name] = Ring{Name: name, Tag: r.Tag + "+"}
					st.chained++
				}
			default:
				t.Errorf("seed %d: %s: %s applied, which is no command of the workload, fire or answer", seed, subject, id)
			}
		}
		for _, a := range want.Asked {
			switch a.Got {
			case "reply":
				st.replies++
			case string(entities.Conflict):
				st.errors++
			case string(entities.AskDeadLetter):
				st.dead++
			case string(entities.AskTimeout):
				st.timeout++
			}
		}
		st.busy += want.Busy
		if len(armed) > 0 || asking != nil {
			t.Errorf("seed %d: %s: timers %v still armed, ask %v still waiting after the schedule", seed, subject, armed, asking)
		}
		var got Reminder
		if _, err := h.State("reminder", subject, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Wrong) > 0 {
			t.Errorf("seed %d: %s: the handlers saw: %v", seed, subject, got.Wrong)
		}
		fired := make([]Fired, len(got.Fired))
		for i, f := range got.Fired {
			fired[i] = Fired{Name: f.Name, Tag: f.Tag}
		}
		if !slices.Equal(fired, want.Fired) || !slices.Equal(got.Asked, want.Asked) || got.Busy != want.Busy || len(got.Armed) > 0 || got.Asking != nil {
			t.Errorf("seed %d: %s is\n%+v\nthe fold of its applications is\n%+v", seed, subject, got, want)
		}
	}
	if st.asks != rep.Asks || rep.Answered+rep.TimedOut != rep.Asks || rep.TimedOut != st.timeout {
		t.Errorf("seed %d: %d asks made, the schedule saw %d asked, %d answered and %d timed out (the fold: %d timeouts)", seed, st.asks, rep.Asks, rep.Answered, rep.TimedOut, st.timeout)
	}
	for c, want := range clerks {
		var got Clerk
		if _, err := h.State("clerk", c, &got); err != nil || got != want {
			t.Errorf("seed %d: %s served %+v, want %+v (every ask applied once)", seed, c, got, want)
		}
	}
	// The dead letters are the break asks, each once or more (a crash
	// replays a dead letter).
	dead := map[string]bool{}
	for _, d := range h.DeadLetters() {
		typ := string(d.Record.Headers["ce_type"])
		if typ != "break" || !errors.Is(d.Err, deadletter.ErrPermanent) {
			t.Errorf("seed %d: dead letter of %s: %s", seed, typ, d.Reason)
			continue
		}
		dead[d.Reason[strings.LastIndexByte(d.Reason, ' ')+1:]] = true
	}
	if !reflect.DeepEqual(dead, breaks) && len(dead)+len(breaks) > 0 {
		t.Errorf("seed %d: dead letters of %v, want those of the break asks %v", seed, dead, breaks)
	}
	return rep, st
}
