package core

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/partita-dev/partita/internal/topics"
)

// ErrApplication is wrapped by NewTopology's error: the parts do not make
// an application.
var ErrApplication = errors.New("invalid application")

// ErrPartitionMismatch is wrapped by CheckPartitions's error.
var ErrPartitionMismatch = errors.New("co-partitioned topics have different partition counts")

// Topology is an application as the runtime and the harness run it: its
// parts, and for each the topics its group reads and writes. It is
// computed once from the definitions (NewTopology), and feeds the topic
// plan (Topics), the runtime's goka edges and the harness's logs, and the
// co-partitioning check (CheckPartitions), so that the two runners cannot
// read an application differently.
type Topology struct {
	Names    topics.Names
	Entities []*Entity
	Views    []*View
	Groups   []*Group
}

// Group is the consumer group of one part (an entity, a consumer or a
// view) and the topics it uses.
type Group struct {
	// Name is the part's name; ID its group's ("<app>.<name>").
	Name, ID string
	// One of Entity and View is set.
	Entity *Entity
	View   *View
	// Commands is the entity's commands topic ("" for consumers and views).
	Commands string
	// Sources are the topics the group reads besides its commands and its
	// loop: subscriptions, or a view's sources (by topic).
	Sources []string
	// ViewSources are a view's sources by topic.
	ViewSources map[string]*ViewSource
	// Table and Loop are the group's table and loop topics; IDs its id
	// table ("" when it keeps none). Consumers have none of them.
	Table, Loop, IDs string
	// Outputs are the stream topics the group writes to besides its loop
	// and its id table: the dead letters, and an entity's replies, events,
	// published topics, the commands of entities it sends to and the loop
	// topics of those that send to it (answers to their asks).
	Outputs []string
}

// Inputs are the topics the group consumes but its loop: its commands and
// sources, sorted.
func (g *Group) Inputs() []string {
	in := slices.Clone(g.Sources)
	if g.Commands != "" {
		in = append(in, g.Commands)
	}
	slices.Sort(in)
	return in
}

// Copartitioned are the topics whose partitions must match (records for
// one subject meet on one partition): inputs, table, loop and id table.
func (g *Group) Copartitioned() []string {
	out := g.Inputs()
	for _, t := range []string{g.Table, g.Loop, g.IDs} {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// NewTopology reads the parts of an application (entities, consumers,
// views and workflows, as DefinitionsOf reads them), checks them together and computes
// their topology. It is the one check the runtime (processor.New, hence
// the worker's run and plan) and the harness (partitatest.New) both make,
// so that they accept and refuse the same applications with the same
// messages. The error wraps ErrApplication and lists every problem.
func NewTopology(app string, parts []interface{ Name() string }) (*Topology, error) {
	t := &Topology{Names: topics.Names{App: app}}
	var problems []error
	names := map[string]bool{}
	kinds := map[string]Kind{}
	for _, p := range parts {
		es, vs, ok := DefinitionsOf(p)
		if !ok {
			problems = append(problems, fmt.Errorf("%q (%T) is neither an entity nor a view", p.Name(), p))
			continue
		}
		named := make([]string, 0, len(es)+len(vs))
		for _, e := range es {
			named = append(named, e.Name)
		}
		for _, v := range vs {
			named = append(named, v.Name)
		}
		twice := false
		for _, n := range named {
			if names[n] {
				problems = append(problems, fmt.Errorf("%q is defined twice (entities, views and workflows share one name space)", n))
				twice = true
			}
			names[n] = true
		}
		if twice {
			continue
		}
		for _, e := range es {
			t.Entities = append(t.Entities, e)
			kinds[e.Name] = e.Kind
		}
		t.Views = append(t.Views, vs...)
	}
	for _, d := range t.Entities {
		if d.Kind == Stateless && len(d.Subscriptions) == 0 {
			problems = append(problems, fmt.Errorf("consumer %s subscribes to no topic", d.Name))
		}
		for _, target := range d.SendsTo {
			if k, ok := kinds[target]; !ok || k == Stateless {
				problems = append(problems, fmt.Errorf("entity %s sends to %q, which is not an entity of this application (entities.SendsTo)", d.Name, target))
			}
		}
	}
	for _, v := range t.Views {
		if len(v.Sources) == 0 {
			problems = append(problems, fmt.Errorf("view %s has no source", v.Name))
		}
		for _, s := range v.Sources {
			k, ok := kinds[s.Entity]
			switch {
			case s.Kind == FromTopic:
			case !ok:
				problems = append(problems, fmt.Errorf("view %s reads entity %q, which is not an entity of this application", v.Name, s.Entity))
			case s.Kind == FromState && k != KeyValue:
				problems = append(problems, fmt.Errorf("view %s reads the state of %s, which is not a key-value entity (use FromEvent)", v.Name, s.Entity))
			case s.Kind == FromEvents && k != EventSourced:
				problems = append(problems, fmt.Errorf("view %s reads events of %s, which is not event-sourced (use FromState)", v.Name, s.Entity))
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrApplication, errors.Join(problems...))
	}
	for _, d := range t.Entities {
		t.Groups = append(t.Groups, t.entityGroup(d))
	}
	for _, v := range t.Views {
		t.Groups = append(t.Groups, t.viewGroup(v))
	}
	return t, nil
}

func (t *Topology) entityGroup(d *Entity) *Group {
	n := t.Names
	g := &Group{Name: d.Name, ID: n.Group(d.Name), Entity: d, Outputs: []string{n.DeadLetters()}}
	if d.Kind != Stateless {
		g.Commands, g.Table, g.Loop = n.Commands(d.Name), n.Table(d.Name), n.Loop(d.Name)
		if d.Retention > 0 {
			g.IDs = n.IDs(d.Name)
		}
		g.Outputs = append(g.Outputs, n.Replies())
	}
	for topic := range d.Subscriptions {
		g.Sources = append(g.Sources, topic)
	}
	slices.Sort(g.Sources)
	if d.Kind == EventSourced {
		g.Outputs = append(g.Outputs, n.Events(d.Name))
	}
	g.Outputs = append(g.Outputs, d.PublishTopics...)
	for _, e := range d.SendsTo {
		g.Outputs = append(g.Outputs, n.Commands(e))
	}
	// Entities that send to this one may ask it: it answers on their loop
	// topics.
	for _, o := range t.Entities {
		if slices.Contains(o.SendsTo, d.Name) && o.Name != d.Name {
			g.Outputs = append(g.Outputs, n.Loop(o.Name))
		}
	}
	return g
}

func (t *Topology) viewGroup(v *View) *Group {
	n := t.Names
	g := &Group{Name: v.Name, ID: n.Group(v.Name), View: v, Table: n.Table(v.Name), Loop: n.Loop(v.Name),
		Outputs: []string{n.DeadLetters()}, ViewSources: map[string]*ViewSource{}}
	for _, s := range v.Sources {
		topic := s.TopicIn(n)
		g.ViewSources[topic] = s
		g.Sources = append(g.Sources, topic)
	}
	slices.Sort(g.Sources)
	if v.KeepsIDs() {
		g.IDs = n.IDs(v.Name)
	}
	return g
}

// Group returns the group of the part named name, or nil.
func (t *Topology) Group(name string) *Group {
	for _, g := range t.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Topic is a topic of the plan: its name and the configuration Partita
// creates it with. External topics (subscriptions, view sources that are
// no entity's) are never created by Partita.
type Topic struct {
	Name     string
	Config   map[string]string
	External bool
}

// Topics lists every topic the application uses, each once.
func (t *Topology) Topics() []Topic {
	n := t.Names
	del := func(d time.Duration) map[string]string {
		return map[string]string{"cleanup.policy": "delete", "retention.ms": retention(d)}
	}
	compact := func() map[string]string { return map[string]string{"cleanup.policy": "compact"} }
	ids := func(d time.Duration) map[string]string {
		// Kafka deletes by segment; Partita ignores entries from the
		// retention on.
		return map[string]string{"cleanup.policy": "compact,delete", "retention.ms": retention(d + time.Hour)}
	}
	out := []Topic{{Name: n.Replies(), Config: del(time.Hour)}, {Name: n.DeadLetters(), Config: del(14 * 24 * time.Hour)}}
	seen := map[string]bool{}
	add := func(topic Topic) {
		if !seen[topic.Name] {
			seen[topic.Name] = true
			out = append(out, topic)
		}
	}
	for _, d := range t.Entities {
		if d.Kind != Stateless {
			add(Topic{Name: n.Commands(d.Name), Config: del(7 * 24 * time.Hour)})
			add(Topic{Name: n.Table(d.Name), Config: compact()})
			add(Topic{Name: n.Loop(d.Name), Config: del(7 * 24 * time.Hour)})
			if d.Retention > 0 {
				add(Topic{Name: n.IDs(d.Name), Config: ids(d.Retention)})
			}
		}
		if d.Kind == EventSourced {
			add(Topic{Name: n.Events(d.Name), Config: del(-1)})
		}
		for _, topic := range d.PublishTopics {
			add(Topic{Name: topic, Config: del(7 * 24 * time.Hour)})
		}
		for _, topic := range sortedKeys(d.Subscriptions) {
			add(Topic{Name: topic, External: true})
		}
	}
	for _, v := range t.Views {
		add(Topic{Name: n.Table(v.Name), Config: compact()})
		add(Topic{Name: n.Loop(v.Name), Config: del(7 * 24 * time.Hour)})
		if v.KeepsIDs() {
			add(Topic{Name: n.IDs(v.Name), Config: ids(v.Retention)})
		}
		for _, s := range v.Sources {
			if s.Kind == FromTopic {
				add(Topic{Name: s.Topic, External: true})
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func retention(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// CheckPartitions checks that each group's co-partitioned topics have
// equal partition counts (counts: by topic) and returns each group's
// count. The error wraps ErrPartitionMismatch and names every mismatched
// group with each topic and its count.
func (t *Topology) CheckPartitions(counts map[string]int32) (map[string]int32, error) {
	per := map[string]int32{}
	var problems []error
	for _, g := range t.Groups {
		topics := g.Copartitioned()
		n := counts[topics[0]]
		same := true
		desc := make([]string, 0, len(topics))
		for _, topic := range topics {
			desc = append(desc, fmt.Sprintf("%s has %d", topic, counts[topic]))
			same = same && counts[topic] == n
		}
		if !same {
			problems = append(problems, fmt.Errorf("%s: %s; they must be equal, since records for one subject must meet on one partition",
				g.ID, strings.Join(desc, ", ")))
			continue
		}
		per[g.Name] = n
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrPartitionMismatch, errors.Join(problems...))
	}
	return per, nil
}
