package processor

import (
	"context"
	"sort"
	"time"

	"github.com/lovoo/goka"
)

// PartitionStatus is the state of one partition of an entity or view group
// in this worker.
type PartitionStatus struct {
	Group     string
	Partition int32
	// Recovered reports whether the group table's partition is restored
	// and the partition is processing; Restored and Total count the table
	// records restored so far out of the table's end offset.
	Recovered       bool
	Restored, Total int64
	// Lag is the number of input records not processed yet, summed over
	// the group's input topics.
	Lag int64
	// Stale marks a row of a group that is not running (restarting after
	// an error, or recovering its partitions) and reports no partitions of
	// its own meanwhile: the row is the partition as the group last
	// reported it while running, with Recovered false, and its Lag and
	// Restored as they were then (the true lag can only have grown since,
	// or stayed). A partition such a group is restoring is a fresh row,
	// with at least the lag it last had while running.
	Stale bool
}

// Partitions returns the partitions this worker owns, per group, sorted by
// group and partition. A group that is not running (see Health) and
// reports no partitions keeps its last reported rows, marked Stale, so that
// its lag does not vanish while it restarts. Empty before Run has started
// the processors and after Run returns. Safe for concurrent use.
func (r *Runtime) Partitions(ctx context.Context) []PartitionStatus {
	r.mu.Lock()
	procs := append([]*goka.Processor(nil), r.procs...)
	parts := append([]*part(nil), r.procParts...)
	r.mu.Unlock()
	var out []PartitionStatus
	for i, p := range procs {
		group := string(p.Graph().Group())
		var rows []PartitionStatus
		if stats := p.StatsWithContext(ctx); stats != nil {
			for part, ps := range stats.Group {
				s := PartitionStatus{Group: group, Partition: part}
				if ts := ps.TableStats; ts != nil {
					s.Recovered = ts.Status == goka.PartitionRunning
					if rs := ts.Recovery; rs != nil {
						s.Restored, s.Total = rs.Offset+1, rs.Hwm
						if s.Restored > s.Total {
							s.Restored = s.Total
						}
					}
				} else {
					s.Recovered = true // no table: nothing to restore
				}
				for _, in := range ps.Input {
					s.Lag += in.OffsetLag
				}
				rows = append(rows, s)
			}
		}
		running := i >= len(parts) || parts[i].health().State == HealthRunning
		r.mu.Lock()
		last := r.lastPartitions[group]
		switch {
		case running:
			if r.lastPartitions != nil {
				r.lastPartitions[group] = rows
			}
		case len(rows) == 0:
			for _, s := range last {
				s.Recovered, s.Stale = false, true
				rows = append(rows, s)
			}
		default:
			// Restoring partitions report no input lag yet: keep the last
			// known one (the last rows stay until the group runs).
			for j := range rows {
				for _, l := range last {
					if l.Partition == rows[j].Partition && !rows[j].Recovered {
						rows[j].Lag = max(rows[j].Lag, l.Lag)
					}
				}
			}
		}
		r.mu.Unlock()
		out = append(out, rows...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Observer receives measurements of the runtime, for metrics. Its methods
// are called from processing goroutines and must be quick and safe for
// concurrent use.
type Observer interface {
	// Handled reports one record handled by group, and how long it took.
	Handled(group string, d time.Duration)
	// Rebalanced reports a new assignment of group's partitions to this worker.
	Rebalanced(group string, partitions []int32)
}

// WorkflowObserver, implemented by a Config.Observe, also receives each
// workflow step's attempt that ended (package workflows): its outcome
// ("done"; "retried": it failed and another attempt follows; "failed": it
// failed and was the last) and how long it took from being issued. A
// command applied again after a crash may report its attempt again.
type WorkflowObserver interface {
	WorkflowStep(workflow, step, outcome string, took time.Duration)
}
