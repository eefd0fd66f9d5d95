package core

import (
	"errors"
	"fmt"
)

// ErrApplication is wrapped by Application's error: the parts do not make
// an application.
var ErrApplication = errors.New("invalid application")

// Application reads the parts of an application (entities, consumers and
// views, as DefinitionOf reads them) and checks them together: the one
// check the runtime (processor.New, hence the worker's run and plan) and
// the harness (partitatest.New) both make, so that they accept and refuse
// the same applications with the same messages. The error wraps
// ErrApplication and lists every problem.
func Application(parts []interface{ Name() string }) ([]*Entity, []*View, error) {
	var (
		defs     []*Entity
		views    []*View
		problems []error
	)
	names := map[string]bool{}
	kinds := map[string]Kind{}
	for _, p := range parts {
		if names[p.Name()] {
			problems = append(problems, fmt.Errorf("%q is defined twice (entities and views share one name space)", p.Name()))
			continue
		}
		names[p.Name()] = true
		switch e, v, _ := DefinitionOf(p); {
		case e != nil:
			defs = append(defs, e)
			kinds[e.Name] = e.Kind
		case v != nil:
			views = append(views, v)
		default:
			problems = append(problems, fmt.Errorf("%q (%T) is neither an entity nor a view", p.Name(), p))
		}
	}
	for _, d := range defs {
		if d.Kind == Stateless && len(d.Subscriptions) == 0 {
			problems = append(problems, fmt.Errorf("consumer %s subscribes to no topic", d.Name))
		}
		for _, target := range d.SendsTo {
			if k, ok := kinds[target]; !ok || k == Stateless {
				problems = append(problems, fmt.Errorf("entity %s sends to %q, which is not an entity of this application (entities.SendsTo)", d.Name, target))
			}
		}
	}
	for _, v := range views {
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
		return nil, nil, fmt.Errorf("%w: %w", ErrApplication, errors.Join(problems...))
	}
	return defs, views, nil
}
