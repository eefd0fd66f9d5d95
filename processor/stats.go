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
}

// Partitions returns the partitions this worker owns, per group. Empty
// before Run has started the processors.
func (r *Runtime) Partitions(ctx context.Context) []PartitionStatus {
	r.mu.Lock()
	procs := append([]*goka.Processor(nil), r.procs...)
	r.mu.Unlock()
	var out []PartitionStatus
	for _, p := range procs {
		stats := p.StatsWithContext(ctx)
		if stats == nil {
			continue
		}
		for part, ps := range stats.Group {
			s := PartitionStatus{Group: string(p.Graph().Group()), Partition: part}
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
			out = append(out, s)
		}
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
