package worker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
	"github.com/partita-dev/partita/worker"
)

type acct struct{ N int }

type acctEvent struct{}

func (acctEvent) EventType() string { return "Changed" }

// TestHarnessAndWorkerRefuseTheSameApplications runs broken applications
// through the harness (partitatest.New) and the worker's plan (worker
// topics plan), and checks that both refuse each with the same problems.
func TestHarnessAndWorkerRefuseTheSameApplications(t *testing.T) {
	kv := func(name string, opts ...entities.Option) *entities.Entity[acct] {
		e := entities.KeyValue[acct](name, opts...)
		entities.Command(e, "set", func(ctx *entities.Context[acct], a acct) entities.Effect[acct] { return ctx.Update(a) })
		return e
	}
	es := entities.EventSourced[acct, acctEvent]("ledger", func(a acct, _ acctEvent) acct { return a })
	view := func(source string) *views.View[acct] {
		v := views.New[acct]("accounts")
		views.FromState(v, source, func(u views.Update[acct, acct]) views.Effect[acct] { return u.Set(u.Value) })
		return v
	}
	for name, c := range map[string]struct {
		parts []processor.Part
		want  string
	}{
		"a view reads a misspelt entity":     {[]processor.Part{kv("account"), view("acount")}, `view accounts reads entity "acount", which is not an entity of this application`},
		"a send to an entity not in the app": {[]processor.Part{kv("account", entities.SendsTo("audit"))}, `entity account sends to "audit", which is not an entity of this application`},
		"two parts of one name":              {[]processor.Part{kv("account"), kv("account")}, `"account" is defined twice`},
		"a consumer of nothing":              {[]processor.Part{entities.Consumer("mailer")}, "consumer mailer subscribes to no topic"},
		"the state of an event-sourced one":  {[]processor.Part{es, view("ledger")}, "view accounts reads the state of ledger, which is not a key-value entity"},
		"a view without sources":             {[]processor.Part{kv("account"), views.New[acct]("empty")}, "view empty has no source"},
	} {
		t.Run(name, func(t *testing.T) {
			parts := make([]partitatest.Part, len(c.parts))
			for i, p := range c.parts {
				parts[i] = p
			}
			_, herr := partitatest.New(parts...)
			var stdout, stderr bytes.Buffer
			code := worker.Main(context.Background(), worker.App{Name: "broken", Parts: c.parts}, []string{"topics", "plan"},
				func(string) (string, bool) { return "", false }, &stdout, &stderr)
			if herr == nil || code == 0 {
				t.Fatalf("harness: %v; worker plan exit %d %s; want both to refuse", herr, code, stderr.String())
			}
			if !strings.Contains(herr.Error(), c.want) || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("want %q from both:\nharness: %v\nworker:  %s", c.want, herr, stderr.String())
			}
			// Every problem the harness names, the worker names too.
			_, problems, _ := strings.Cut(herr.Error(), "invalid application: ")
			for _, p := range strings.Split(problems, "\n") {
				if !strings.Contains(stderr.String(), p) {
					t.Errorf("the worker does not say %q:\n%s", p, stderr.String())
				}
			}
		})
	}
}
