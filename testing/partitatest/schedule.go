package partitatest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
)

// Command is one command of a workload for RunSchedule.
type Command struct {
	Entity, Subject, Name string
	Payload               any
}

// Faults are the chances, per command sent, of each fault in a schedule,
// and how far its clock moves.
type Faults struct {
	Redeliver float64 // an earlier command is written again behind newer ones
	Duplicate float64 // the command is written twice
	Misroute  float64 // the command lands on another partition under another key
	Crash     float64 // a random group's worker dies (see Harness.Crash), restarting on the same worker or another
	Lag       float64 // a random view starts or stops lagging
	// LagEntity is the chance that a random entity starts or stops lagging
	// (see Harness.LagEntity): its commands, fires and answers wait while
	// its timers fall due, and the asks it should answer time out.
	LagEntity float64

	// Behind is the chance that an earlier command of the subject just sent
	// is written again behind BehindMin to BehindMax newer commands of that
	// subject (when it has had that many): further back than an entity's
	// dedup window (16 by default), where only its id table knows it.
	Behind               float64
	BehindMin, BehindMax int

	// Gap is the chance that the clock jumps ahead before a command, by an
	// amount drawn uniformly so that the jumps add up to about Span over
	// the workload; they never add up to more. Redeliveries and crash
	// replays then come hours after the command's first application: within
	// an entity's Retention they are duplicates, after it new commands.
	// A jump goes through the timers that fall due on the way, as
	// Harness.Advance does, but each fire is followed by a few deliveries
	// at random instead of everything.
	Gap  float64
	Span time.Duration
}

// DefaultFaults is a schedule that hits every fault often, over about 12
// hours: well inside the default retention of command ids (24 hours).
var DefaultFaults = Faults{
	Redeliver: 0.15, Duplicate: 0.1, Misroute: 0.1, Crash: 0.05, Lag: 0.1, LagEntity: 0.05,
	Behind: 0.05, BehindMin: 20, BehindMax: 200,
	Gap: 0.1, Span: 12 * time.Hour,
}

// Report is what a schedule did.
type Report struct {
	Seed                                                   uint64
	Commands, Deliveries                                   int
	Redelivered, Duplicated, Misrouted, Crashes, LagToggle int
	// EntityLag counts the toggles of Faults.LagEntity.
	EntityLag int
	// Behind counts the redeliveries behind Faults.BehindMin or more newer
	// commands of their subject (Redelivered does not include them).
	Behind int
	// Gaps counts the clock's jumps; Elapsed is how far it moved in all,
	// Drain included: how far it moved after the workload for the timers
	// still pending to fire.
	Gaps           int
	Elapsed, Drain time.Duration
	// Timers: Fires counts the fires the clock wrote (a timer still
	// pending at a later jump is fired again, as the runtime does), Fired
	// those applied (ask timeouts included), and Dropped the fires and
	// answers dropped because their timer was gone (replaced, cancelled,
	// fired or answered since). Asks counts the asks made (distinct asked
	// commands written), Answered and TimedOut how each ended.
	Fires, Fired, Dropped    int
	Asks, Answered, TimedOut int
	// Deduplicated counts the deliveries of an applied command that were
	// not applied again (redeliveries, duplicates, crash replays within the
	// entity's retention); BeyondWindow those of them behind more than the
	// entity's dedup window of newer applications of their subject.
	Deduplicated, BeyondWindow int
	// ReappliedBeyondWindow counts the re-applications after the retention
	// (see Reapplied) behind more than the dedup window of newer
	// applications: the id table forgot them.
	ReappliedBeyondWindow int
	// IDs are the ce-ids of the workload's commands, in workload order.
	IDs []string
	// Applied lists, per entity and subject ("<entity>/<subject>"), the ids
	// of the commands applied, in the order they were applied: the order an
	// exactly-once fold must follow. An id appears once, and once more for
	// each time it is in Reapplied.
	Applied map[string][]string
	// Reapplied lists, per entity and subject, the ids of the commands
	// applied again because they were delivered again after their entity's
	// Retention had passed since their previous application: a new command
	// then, as documented, and so folded again. Once per re-application.
	Reapplied map[string][]string
}

// Faults is the number of faults injected.
func (r Report) Faults() int {
	return r.Redelivered + r.Behind + r.Duplicated + r.Misrouted + r.Crashes + r.LagToggle + r.EntityLag
}

// Reapplications is the number of re-applications after the retention.
func (r Report) Reapplications() int {
	n := 0
	for _, ids := range r.Reapplied {
		n += len(ids)
	}
	return n
}

func (r Report) String() string {
	s := fmt.Sprintf("seed %d: %d commands, %d deliveries over %v; faults: %d redelivered, %d redelivered far behind, %d duplicated, %d misrouted, %d crashes, %d lag toggles (%d of entities); %d deduplicated (%d beyond the window), %d applied again after the retention (%d beyond the window)",
		r.Seed, r.Commands, r.Deliveries, r.Elapsed, r.Redelivered, r.Behind, r.Duplicated, r.Misrouted, r.Crashes, r.LagToggle+r.EntityLag, r.EntityLag,
		r.Deduplicated, r.BeyondWindow, r.Reapplications(), r.ReappliedBeyondWindow)
	if r.Fires+r.Asks > 0 {
		s += fmt.Sprintf("; timers: %d fires written, %d applied, %d fires and answers dropped, %v of drain; %d asks, %d answered, %d timed out",
			r.Fires, r.Fired, r.Dropped, r.Drain, r.Asks, r.Answered, r.TimedOut)
	}
	return s
}

// RunSchedule sends the workload with faults interleaved at random from
// seed: records are delivered in a random order across groups and
// partitions (in order within each), while earlier commands are redelivered
// behind newer ones (some far behind, see Faults.Behind), commands are
// duplicated or misrouted, groups crash back to their committed offsets,
// views and entities lag and the clock jumps ahead, firing the timers that
// fall due (and the timeouts of asks) in due order, each at its due time,
// with deliveries at random in between. At the end every view and entity
// catches up, everything is delivered, and the clock moves on through each
// timer still pending until none is. The same seed on a fresh harness with
// the same parts and workload replays the same run exactly; print the seed
// when a check fails.
//
// Besides the harness's own checks (Violations), the schedule holds each
// delivery of an applied command to the entity's retention of command ids
// (entities.Retention): within it the command must not be applied again,
// after it it must be (and is listed in Report.Reapplied). With
// Retention(0) (the dedup window alone) nothing expires and nothing is
// checked: a re-application then shows as an id applied twice.
//
// Timers and asks are held to theirs: a fire applied consumes a pending
// timer of its subject and comes no earlier than that timer's due time;
// no timer is left pending at the end (each fired and was applied, unless
// replaced or cancelled; a timer whose fire is dead-lettered stays
// pending, and is reported); and every ask made gets exactly one of its
// answer (reply, error reply or dead letter) and its timeout applied
// (not checked for an asking subject that had commands applied again
// after the retention: it asks again). A workload whose timers start
// timers forever cannot end: the drain stops after 1,000 rounds.
func (h *Harness) RunSchedule(seed uint64, workload []Command, f Faults) (Report, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rep := Report{Seed: seed, Commands: len(workload), Applied: map[string][]string{}, Reapplied: map[string][]string{}}
	h.sched = &ledger{apps: map[string][]application{}, last: map[string]int{}, consumes: map[string]string{}}
	defer func() { h.sched = nil }()
	var sent []sentCommand
	bySubject := map[string][]int{} // "<entity>/<subject>" -> indexes in sent
	var viewNames, entityNames, groupNames []string
	for _, g := range h.groups {
		groupNames = append(groupNames, g.name)
		if g.view != nil {
			viewNames = append(viewNames, g.name)
		} else {
			entityNames = append(entityNames, g.name)
		}
	}
	pick := func(cs []cursor) []cursor { return []cursor{cs[r.IntN(len(cs))]} }
	deliver := func(n int) {
		for ; n > 0; n-- {
			cs := h.pending(false)
			if len(cs) == 0 {
				return
			}
			h.step(pick(cs)[0])
		}
	}
	var maxGap int64 // the longest jump: twice the mean, for a total of about Span
	if f.Gap > 0 && f.Span > 0 && len(workload) > 0 {
		maxGap = int64(2*float64(f.Span)/(f.Gap*float64(len(workload)))) + 1
	}
	start := h.now
	before := h.delivered
	for i, c := range workload {
		if g := h.byName[c.Entity]; g == nil || g.entity == nil {
			return rep, fmt.Errorf("%w entity %q", ErrUnknown, c.Entity)
		}
		if r.Float64() < f.Gap && maxGap > 0 {
			d := min(time.Duration(r.Int64N(maxGap)), f.Span-h.now.Sub(start))
			if d > 0 {
				h.advance(d, nil, func() { deliver(r.IntN(4)) })
				rep.Gaps++
			}
		}
		o := sendOpts{id: fmt.Sprintf("s%d-%d", seed, i)}
		if r.Float64() < f.Misroute {
			o.misrouted = true
			rep.Misrouted++
		}
		if r.Float64() < f.Duplicate {
			o.duplicated = true
			rep.Duplicated++
		}
		ev, err := h.command(c.Subject, c.Name, c.Payload, o)
		if err != nil {
			return rep, err
		}
		h.write(h.topics.Commands(c.Entity), ev, o)
		rep.IDs = append(rep.IDs, ev.ID())
		sent = append(sent, h.sent[ev.Source()+"\x00"+ev.ID()])
		k := c.Entity + "/" + c.Subject
		bySubject[k] = append(bySubject[k], len(sent)-1)
		deliver(r.IntN(6))
		if r.Float64() < f.Redeliver {
			s := sent[r.IntN(len(sent))]
			h.append(s.topic, s.partition, s.record)
			rep.Redelivered++
		}
		if r.Float64() < f.Behind {
			// The command newer commands of its subject back, when there
			// are that many (the one just sent is the newest).
			if hist := bySubject[k]; len(hist)-1 >= f.BehindMin && f.BehindMin > 0 {
				n := f.BehindMin + r.IntN(min(max(f.BehindMax, f.BehindMin), len(hist)-1)-f.BehindMin+1)
				s := sent[hist[len(hist)-1-n]]
				h.append(s.topic, s.partition, s.record)
				rep.Behind++
			}
		}
		if r.Float64() < f.Crash {
			h.crash(h.byName[groupNames[r.IntN(len(groupNames))]], r.IntN(2) == 0)
			rep.Crashes++
		}
		if r.Float64() < f.Lag && len(viewNames) > 0 {
			g := h.byName[viewNames[r.IntN(len(viewNames))]]
			g.lagging = !g.lagging
			rep.LagToggle++
		}
		if f.LagEntity > 0 && r.Float64() < f.LagEntity {
			g := h.byName[entityNames[r.IntN(len(entityNames))]]
			g.lagging = !g.lagging
			rep.EntityLag++
		}
	}
	for _, g := range h.groups {
		g.lagging = false
	}
	h.settle(pick)
	workEnd := h.now
	h.drain(func() { deliver(r.IntN(4)) }, pick)
	rep.Drain = h.now.Sub(workEnd)
	h.checkDurable()
	rep.Deliveries = h.delivered - before
	rep.Elapsed = h.now.Sub(start)
	rep.Fires, rep.Dropped = h.sched.fires, h.sched.dropped
	rep.Deduplicated, rep.BeyondWindow = h.sched.deduplicated, h.sched.beyondWindow
	for k, apps := range h.sched.apps {
		ids := make([]string, len(apps))
		for i, a := range apps {
			ids[i] = a.id
			if a.again {
				rep.Reapplied[k] = append(rep.Reapplied[k], a.id)
				if a.beyondWindow {
					rep.ReappliedBeyondWindow++
				}
			}
		}
		if len(ids) > 0 {
			rep.Applied[k] = ids
		}
	}
	h.checkTimers(&rep)
	return rep, nil
}

// drainRounds bounds the timers fired after a schedule's workload.
const drainRounds = 1000

// drain moves the clock through the pending timers until none is left,
// each fired once (after: what to deliver after each fire), settling
// after each round; a timer still pending after its fire was delivered
// (dead-lettered, or dropped) is not fired again here (checkTimers reports
// it).
func (h *Harness) drain(after func(), pick func([]cursor) []cursor) {
	fired := map[string]bool{}
	for range drainRounds {
		_, _, t, ok := h.nextTimer(time.Unix(0, math.MaxInt64), fired)
		if !ok {
			return
		}
		h.advance(max(time.Unix(0, t.Due).Sub(h.now), 0), fired, after)
		h.settle(pick)
	}
}

// checkTimers records, after a schedule, a violation for every timer still
// pending and for every ask that did not get exactly one of its answer and
// its timeout applied; it counts the fires applied and how asks ended.
func (h *Harness) checkTimers(rep *Report) {
	for _, g := range h.groups {
		if g.entity == nil || g.entity.Kind == core.Stateless {
			continue
		}
		for _, subject := range slices.Sorted(maps.Keys(g.table)) {
			data := g.table[subject]
			if !envelope.HasTimers(data) {
				continue
			}
			env, err := envelope.DecodeEnvelope(data)
			if err != nil {
				continue
			}
			for _, t := range env.Timers {
				h.violations = append(h.violations, fmt.Sprintf("%s/%s: timer %s (due %v, command %s) is still pending after the schedule: its fires were not applied",
					g.name, subject, t.Name, time.Unix(0, t.Due).UTC(), t.Command))
			}
		}
	}
	// What each ask got: its timer's name -> applications consuming it.
	got := map[string]int{}
	for k, apps := range h.sched.apps {
		for _, a := range apps {
			if timer, ok := h.sched.consumes[k+"\x00"+a.id]; ok {
				got[k+"\x00"+timer]++
				if strings.HasPrefix(a.id, "answer:") {
					rep.Answered++
				} else {
					rep.Fired++
					if strings.HasPrefix(timer, "ask:") {
						rep.TimedOut++
					}
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, g := range h.groups {
		if g.entity == nil {
			continue
		}
		for _, e := range h.Published(h.topics.Commands(g.name)) {
			ext := e.Extensions()
			from, ok := ext[codec.ExtAskFrom]
			ref := e.Source() + "/" + e.ID()
			if !ok || seen[ref] {
				continue
			}
			seen[ref] = true
			rep.Asks++
			k := fmt.Sprint(from) + "/" + fmt.Sprint(ext[codec.ExtAskSubject])
			if n := got[k+"\x00"+core.AskTimer(ref)]; n != 1 && len(rep.Reapplied[k]) == 0 {
				h.violations = append(h.violations, fmt.Sprintf("%s: its ask %s (%s to %s/%s) got %d of its answer and its timeout applied, not exactly one",
					k, ref, e.Type(), g.name, e.Subject(), n))
			}
		}
	}
}

// ledger is what a schedule applied: per "<entity>/<subject>", each
// application of a command, in order, with the harness's clock then.
type ledger struct {
	apps                       map[string][]application
	last                       map[string]int // "<entity>/<subject>" NUL id -> index in apps of its latest application
	deduplicated, beyondWindow int
	// consumes: "<entity>/<subject>" NUL id of each fire or answer applied
	// -> the timer it consumed.
	consumes       map[string]string
	fires, dropped int // fires written; fires and answers dropped
}

type application struct {
	id           string
	at           time.Time
	again        bool // a re-application after the retention
	beyondWindow bool // again, behind more than the dedup window of newer applications
}

// deliver records a command delivery to g that reached the entity's
// decision (neither re-routed nor dead-lettered) and checks it against the
// entity's retention; it reports whether the command was applied.
func (l *ledger) deliver(h *Harness, g *group, k, id string, duplicate bool) bool {
	retention := g.entity.Retention
	i, seen := l.last[k+"\x00"+id]
	var since time.Duration
	var newer int
	if seen {
		since, newer = h.now.Sub(l.apps[k][i].at), len(l.apps[k])-1-i
	}
	expired := seen && retention > 0 && since > retention
	switch {
	case duplicate:
		if !seen {
			h.violations = append(h.violations, fmt.Sprintf("%s: command %s was dropped as a duplicate, but no application of it stands (none, or lost in a crash)", k, id))
		}
		if expired {
			h.violations = append(h.violations, fmt.Sprintf("%s: command %s delivered again %v after its application, past the retention of %v, was dropped as a duplicate; it should have been applied as a new command", k, id, since, retention))
		}
		l.deduplicated++
		if seen && newer >= g.entity.Window {
			l.beyondWindow++
		}
		return false
	case seen && retention > 0 && !expired:
		h.violations = append(h.violations, fmt.Sprintf("%s: command %s was applied again %v after its application, behind %d newer commands of its subject, within the retention of %v", k, id, since, newer, retention))
	}
	l.last[k+"\x00"+id] = len(l.apps[k])
	l.apps[k] = append(l.apps[k], application{id: id, at: h.now, again: expired, beyondWindow: expired && newer >= g.entity.Window})
	return true
}

// undo forgets the latest application to subject k, lost in a crash.
func (l *ledger) undo(k string) {
	apps := l.apps[k]
	if len(apps) == 0 {
		return
	}
	id := apps[len(apps)-1].id
	apps = apps[:len(apps)-1]
	l.apps[k] = apps
	delete(l.last, k+"\x00"+id)
	for i := len(apps) - 1; i >= 0; i-- {
		if apps[i].id == id {
			l.last[k+"\x00"+id] = i
			break
		}
	}
}

// Subjects lists the keys of Applied, sorted (for deterministic checks).
func (r Report) Subjects() []string {
	out := make([]string, 0, len(r.Applied))
	for k := range r.Applied {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
