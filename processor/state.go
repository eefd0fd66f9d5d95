package processor

// Reads that write nothing: an entity's state, served by any
// worker.
//
// Design. Runtime.State (GET /entities/{entity}/{id} in the gateway) reads a
// subject's envelope from a read replica of its entity's group table topic
// (<app>.<entity>-table), not from the processor that owns the subject's
// partition: one goka View per key-value and event-sourced entity, over
// every partition, on every worker. The View uses the murmur2 hasher (its
// Get looks in the partition the processors write to), Partita's table
// storage (tablestore) in a directory of its own (DataDir/state/<group>),
// no topic creation, and Partita's client settings. A View joins no group,
// commits no offset and produces nothing, and the read path never reaches
// the entity's processor: a read writes nothing to Kafka and touches no
// dedup record (the worker test compares the end offsets of every topic of
// the application before and after reads). Like the view replicas it is
// eventually consistent: a read given a position token (a command reply's
// partitaposition, for this entity and subject) polls the replica every
// 5 ms until the subject's envelope has that sequence number or a later
// one, bounded by the caller's context (DefaultStateWait when it has no
// deadline), and fails with ErrNotYet. Run supervises the replicas like the
// processors (restart with backoff) and Ready waits until each has
// recovered once; reads wait for that too. Keys holding a NUL byte are not
// subjects (kept free for records of the framework's own) and are neither
// stored by the replica nor readable.
//
// Cost: each worker keeps a copy of every entity table, all partitions,
// beside its processors' copies of the partitions they own, and recovers
// it at start-up (resuming from its local offsets after a restart).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/tablestore"
	"github.com/partita-dev/partita/internal/topics"
)

// Errors of State, for errors.Is.
var (
	// ErrUnknownEntity: the name is no entity of the application, or a
	// stateless consumer (which has no state to read).
	ErrUnknownEntity = errors.New("no such entity")
	// ErrBadPosition: the position token does not decode, or is for
	// another entity or subject than the one read.
	ErrBadPosition = errors.New("bad position token")
	// ErrBadSubject: the subject is empty or holds a NUL byte.
	ErrBadSubject = errors.New("not a subject")
	// ErrStateReadsOff: the runtime keeps no read copies (Config.StateReads).
	ErrStateReadsOff = errors.New("state reads are off (processor.Config.StateReads)")
	// ErrNotYet: within the wait, the replica did not reach the position
	// asked for, or did not recover. The error also wraps the context's.
	ErrNotYet = errors.New("the state replica has not caught up")
)

// DefaultStateWait bounds State's wait when its context has no deadline.
const DefaultStateWait = 5 * time.Second

// statePoll is how often State looks at the replica while it waits.
const statePoll = 5 * time.Millisecond

// EntityState is a subject's state as the entity's table holds it.
type EntityState struct {
	Subject string `json:"subject"`
	// Exists is false for a subject that never had state (Seq 0) and for
	// one that was deleted (Seq > 0: deleting keeps the sequence number).
	Exists bool `json:"exists"`
	// Seq is the subject's sequence number: one per change (key-value) or
	// per event (event-sourced).
	Seq uint64 `json:"seq"`
	// State is the entity's JSON state; nil when there is none.
	State json.RawMessage `json:"state"`
}

// State returns the current state of entity's subject, read from this
// worker's replica of the entity's table, whichever worker owns the
// subject's partition. It writes nothing to Kafka and does not involve the
// entity's processor.
//
// after, when not "", is a position token from a command's reply (for this
// entity and subject): State then returns a state at that sequence number
// or later (read-your-writes), waiting until the replica has it. Every
// wait (for the position, and for the replica to have recovered once) is
// bounded by ctx, or by DefaultStateWait when ctx has no deadline; when it
// ends first the error wraps ErrNotYet and ctx's error.
//
// A subject that never had state is no error: its EntityState has Exists
// false and Seq 0. Errors wrap ErrUnknownEntity, ErrBadPosition,
// ErrBadSubject or ErrNotYet; any other is a failure to read the replica
// (an unreadable envelope). Safe for concurrent use.
func (r *Runtime) State(ctx context.Context, entity, subject, after string) (EntityState, error) {
	if !r.hasState(entity) {
		return EntityState{}, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	if !r.cfg.StateReads {
		return EntityState{}, ErrStateReadsOff
	}
	if subject == "" || strings.IndexByte(subject, 0) >= 0 {
		return EntityState{}, fmt.Errorf("%w: %q", ErrBadSubject, subject)
	}
	var want uint64
	if after != "" {
		pos, err := topics.ParsePosition(after)
		if err != nil {
			return EntityState{}, fmt.Errorf("%w: %w", ErrBadPosition, err)
		}
		if pos.Entity != entity || pos.Subject != subject {
			return EntityState{}, fmt.Errorf("%w: it is a position of %s %q, not of %s %q", ErrBadPosition, pos.Entity, pos.Subject, entity, subject)
		}
		want = pos.Seq
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStateWait)
		defer cancel()
	}
	var tick *time.Ticker
	var seen uint64
	why := ""
	for {
		r.mu.Lock()
		s := r.states[entity]
		r.mu.Unlock()
		if s != nil {
			st, unreadable, err := s.get(subject)
			switch {
			case err != nil:
				return EntityState{}, err
			case unreadable != "":
				why = unreadable
			case st.Seq >= want:
				return st, nil
			default:
				seen, why = st.Seq, ""
			}
		} else {
			why = "the runtime is not running"
		}
		if tick == nil {
			tick = time.NewTicker(statePoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			if why == "" {
				return EntityState{}, fmt.Errorf("%w: %s %q at sequence %d (the replica is at %d): %w", ErrNotYet, entity, subject, want, seen, ctx.Err())
			}
			return EntityState{}, fmt.Errorf("%w: %s %q: %s: %w", ErrNotYet, entity, subject, why, ctx.Err())
		case <-tick.C:
		}
	}
}

// hasState reports whether entity is an entity of the application with
// state (key-value or event-sourced).
func (r *Runtime) hasState(entity string) bool {
	for _, d := range r.defs {
		if d.Name == entity {
			return d.Kind != core.Stateless
		}
	}
	return false
}

// stateReplica is a worker's read replica of an entity's group table: a
// goka View, replaced by a fresh one when it stops (a View runs once).
type stateReplica struct {
	entity    string
	build     func() (*goka.View, func(), error)
	recovered chan struct{} // closed once the first View has recovered
	once      sync.Once

	mu   sync.Mutex
	view *goka.View // the running View; nil between runs
}

// openStates makes the read replicas of the application's stateful
// entities, for Run to run (runStates) and State to read.
func (r *Runtime) openStates() []*stateReplica {
	var out []*stateReplica
	if !r.cfg.StateReads {
		return nil
	}
	byName := map[string]*stateReplica{}
	for _, d := range r.defs {
		if d.Kind == core.Stateless {
			continue
		}
		s := &stateReplica{entity: d.Name, recovered: make(chan struct{})}
		s.build = func() (*goka.View, func(), error) { return r.stateView(d) }
		out = append(out, s)
		byName[d.Name] = s
	}
	r.mu.Lock()
	r.states = byName
	r.mu.Unlock()
	return out
}

// runStates runs each replica under supervise until ctx ends, adding each
// to wg; parts[i] is the part of states[i].
func (r *Runtime) runStates(ctx context.Context, wg *sync.WaitGroup, states []*stateReplica, parts []*part) {
	for i, s := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := parts[i]
			supervise(ctx, r.cfg.Log, &r.stats, p, func() error {
				gen := p.generation()
				return s.run(ctx, func() { p.recovered(gen) })
			})
		}()
	}
}

// statesRecovered waits until every replica has recovered once; false when
// ctx ended first.
func statesRecovered(ctx context.Context, states []*stateReplica) bool {
	for _, s := range states {
		select {
		case <-s.recovered:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// run builds a View and runs it until ctx ends or it fails, calling
// recovered once the View has recovered.
func (s *stateReplica) run(ctx context.Context, recovered func()) error {
	v, closeClients, err := s.build()
	if err != nil {
		return fmt.Errorf("state replica of %s: %w", s.entity, err)
	}
	defer closeClients()
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.view = nil
		s.mu.Unlock()
	}()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-v.WaitRunning():
			s.once.Do(func() { close(s.recovered) })
			recovered()
		case <-stopped:
		}
	}()
	if err := v.Run(ctx); err != nil {
		return fmt.Errorf("state replica of %s: %w", s.entity, err)
	}
	return nil
}

// get reads subject from the running View. unreadable says why it could
// not, before the replica first recovered and while no View can be read
// (between runs, or one not running yet); err is an envelope that does not
// decode.
func (s *stateReplica) get(subject string) (st EntityState, unreadable string, err error) {
	select {
	case <-s.recovered:
	default:
		return EntityState{}, "the replica has not recovered", nil
	}
	s.mu.Lock()
	v := s.view
	s.mu.Unlock()
	if v == nil {
		return EntityState{}, "the replica is restarting", nil
	}
	val, err := v.Get(subject)
	if err != nil {
		return EntityState{}, "the replica is not readable: " + err.Error(), nil
	}
	st.Subject = subject
	data, _ := val.([]byte)
	if data == nil {
		return st, "", nil
	}
	env, err := envelope.DecodeEnvelope(data)
	if err != nil {
		return EntityState{}, "", fmt.Errorf("state of %s %q: %w", s.entity, subject, err)
	}
	// The envelope aliases the storage's value, which is shared.
	st.Exists, st.Seq, st.State = env.Exists, env.Seq, bytes.Clone(env.State)
	return st, "", nil
}

// stateView builds the View of entity d's table, and a function that
// closes the clients the View opened (goka's View closes only its
// storage).
func (r *Runtime) stateView(d *core.Entity) (*goka.View, func(), error) {
	sc := func() *sarama.Config {
		c, _ := r.saramaConfig() // the configuration was validated in New
		return c
	}
	var mu sync.Mutex
	var opened []func() error
	track := func(close func() error) {
		mu.Lock()
		opened = append(opened, close)
		mu.Unlock()
	}
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range opened {
			_ = c() // a topic manager goka closed itself reports it closed
		}
		opened = nil
	}
	tmc := goka.NewTopicManagerConfig()
	tmc.NoCreate = true
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	topicManagers := goka.TopicManagerBuilderWithConfig(sc(), tmc)
	consumers := goka.SaramaConsumerBuilderWithConfig(sc())
	group := r.topics.Group(d.Name)
	v, err := goka.NewView(r.cfg.Kafka.BootstrapServers, goka.Table(r.topics.Table(d.Name)), new(gcodec.Bytes),
		goka.WithViewHasher(murmur2.New),
		goka.WithViewClientID(r.cfg.Kafka.WithDefaults().ClientID+"-"+d.Name+"-state"),
		goka.WithViewConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			c, err := consumers(brokers, clientID)
			if err == nil {
				track(c.Close)
			}
			return c, err
		}),
		goka.WithViewTopicManagerBuilder(func(brokers []string) (goka.TopicManager, error) {
			tm, err := topicManagers(brokers)
			if err == nil {
				track(tm.Close)
			}
			return tm, err
		}),
		goka.WithViewStorageBuilder(tablestore.Builder(r.stateDir(group), r.cfg.TableCache)),
		goka.WithViewLogger(gokaLogger{r.cfg.Log}),
		goka.WithViewCallback(storeSubjects),
	)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return v, closeAll, nil
}

// storeSubjects is the replicas' update callback: goka's default, except
// that keys holding a NUL byte are not subjects and are not kept.
func storeSubjects(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	if strings.IndexByte(key, 0) >= 0 {
		return nil
	}
	return goka.DefaultUpdate(ctx, s, key, value)
}

// stateDir holds a worker's replica of a group's table.
func (r *Runtime) stateDir(group string) string { return filepath.Join(r.cfg.DataDir, "state", group) }
