package partitatest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
)

// Command is one command of a workload for RunSchedule.
type Command struct {
	Entity, Subject, Name string
	Payload               any
}

// Faults are the chances, per command sent, of each fault in a schedule.
type Faults struct {
	Redeliver float64 // an earlier command is written again behind newer ones
	Duplicate float64 // the command is written twice
	Misroute  float64 // the command lands on another partition under another key
	Crash     float64 // a random group's worker dies (see Harness.Crash), restarting on the same worker or another
	Lag       float64 // a random view starts or stops lagging
}

// DefaultFaults is a schedule that hits every fault often.
var DefaultFaults = Faults{Redeliver: 0.15, Duplicate: 0.1, Misroute: 0.1, Crash: 0.05, Lag: 0.1}

// Report is what a schedule did.
type Report struct {
	Seed                                                   uint64
	Commands, Deliveries                                   int
	Redelivered, Duplicated, Misrouted, Crashes, LagToggle int
	// IDs are the ce-ids of the workload's commands, in workload order.
	IDs []string
	// Applied lists, per entity and subject ("<entity>/<subject>"), the ids
	// of the commands applied, in the order they were first applied: the
	// order an exactly-once fold must follow.
	Applied map[string][]string
}

// Faults is the number of faults injected.
func (r Report) Faults() int {
	return r.Redelivered + r.Duplicated + r.Misrouted + r.Crashes + r.LagToggle
}

func (r Report) String() string {
	return fmt.Sprintf("seed %d: %d commands, %d deliveries; faults: %d redelivered, %d duplicated, %d misrouted, %d crashes, %d lag toggles",
		r.Seed, r.Commands, r.Deliveries, r.Redelivered, r.Duplicated, r.Misrouted, r.Crashes, r.LagToggle)
}

// RunSchedule sends the workload with faults interleaved at random from
// seed: records are delivered in a random order across groups and
// partitions (in order within each), while earlier commands are redelivered
// behind newer ones, commands are duplicated or misrouted, groups crash
// back to their committed offsets and views lag. At the end every view
// catches up and everything is delivered. The same seed on a fresh harness
// with the same parts and workload replays the same run exactly; print the
// seed when a check fails.
func (h *Harness) RunSchedule(seed uint64, workload []Command, f Faults) (Report, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rep := Report{Seed: seed, Commands: len(workload), Applied: map[string][]string{}}
	h.applied = rep.Applied
	defer func() { h.applied = nil }()
	var sent []sentCommand
	var viewNames []string
	var groupNames []string
	for _, g := range h.groups {
		groupNames = append(groupNames, g.name)
		if g.view != nil {
			viewNames = append(viewNames, g.name)
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
	before := h.delivered
	for i, c := range workload {
		if g := h.byName[c.Entity]; g == nil || g.entity == nil {
			return rep, fmt.Errorf("%w entity %q", ErrUnknown, c.Entity)
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
		deliver(r.IntN(6))
		if r.Float64() < f.Redeliver {
			s := sent[r.IntN(len(sent))]
			h.append(s.topic, s.partition, s.record)
			rep.Redelivered++
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
	}
	for _, v := range viewNames {
		h.byName[v].lagging = false
	}
	h.settle(pick)
	h.checkDurable()
	rep.Deliveries = h.delivered - before
	for k := range rep.Applied {
		rep.Applied[k] = slices.Clip(rep.Applied[k])
	}
	return rep, nil
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
