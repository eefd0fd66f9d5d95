package worker

import (
	"context"
	"slices"

	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/workflows"
)

// workflowStatus is a workflow's instances as the dashboard and the
// metrics show them: counts by status, and the instances that have not
// completed (up to activeLimit of each status), from its status view.
type workflowStatus struct {
	Name   string          `json:"name"`
	Counts map[string]int  `json:"counts"`
	Active []workflows.Row `json:"active"`
}

// activeLimit bounds the instances of each status the dashboard lists.
const activeLimit = 20

// statuses are the statuses counted, in the order they are shown.
var statuses = []string{workflows.Running, workflows.Waiting, workflows.Paused, workflows.Compensating,
	workflows.Failed, workflows.Compensated, workflows.Cancelled, workflows.Completed}

// workflowStatuses reads every workflow's status view on this worker's
// replica (eventually consistent, as any view).
func workflowStatuses(ctx context.Context, rt *processor.Runtime) []workflowStatus {
	var out []workflowStatus
	for name, view := range rt.Workflows() {
		r, err := rt.View(view)
		if err != nil {
			continue
		}
		ws := workflowStatus{Name: name, Counts: map[string]int{}, Active: []workflows.Row{}}
		for _, st := range statuses {
			n, err := r.Count(ctx, views.Query{Index: "status", Eq: st})
			if err != nil {
				continue
			}
			ws.Counts[st] = n
			if st == workflows.Completed || n == 0 {
				continue
			}
			page, err := r.Query(ctx, views.Query{Index: "status", Eq: st, Limit: activeLimit})
			if err != nil {
				continue
			}
			rows, err := views.Decode[workflows.Row](page.Rows)
			if err == nil {
				ws.Active = append(ws.Active, rows...)
			}
		}
		out = append(out, ws)
	}
	slices.SortFunc(out, func(a, b workflowStatus) int { return compare(a.Name, b.Name) })
	return out
}
