package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"

	"github.com/partita-dev/partita/internal/core"
	"github.com/partita-dev/partita/internal/murmur2"
	"github.com/partita-dev/partita/internal/tablestore"
	"github.com/partita-dev/partita/internal/topics"
	"github.com/partita-dev/partita/processor/broker"
)

// Part is an entity, a consumer or a view of the application: what
// entities.KeyValue, entities.EventSourced, entities.Consumer and views.New
// return. Definition is their runtime form, an opaque value.
type Part interface {
	Name() string
	Definition() any
}

// Config configures a Runtime. It is also the runtime part of the
// worker's YAML configuration (package worker embeds it): the yaml tags are
// the worker's keys, and fields tagged "-" are set in code only. The zero
// value of every field is the runtime's default; the worker fills in its
// own defaults before reading its file (create_topics and state_reads:
// true).
type Config struct {
	// App prefixes every topic name ("shop" -> "shop.cart.commands").
	App string `yaml:"app"`
	// DataDir holds the local LevelDB copies of the entity tables and the
	// view replicas (default "data").
	DataDir string `yaml:"data_dir"`
	// Partitions is the partition count of topics Partita creates (default 8).
	Partitions int32 `yaml:"partitions"`
	// Replication is the replication factor of topics Partita creates
	// (default: 3, or the number of brokers when fewer).
	Replication int16 `yaml:"replication"`
	// CreateTopics lets start-up create the application's missing topics.
	// Without it, start-up fails naming them: for clusters where the
	// application may not create topics (an operator creates them, see
	// Runtime.Topics and Runtime.CreateTopics).
	CreateTopics bool `yaml:"create_topics"`
	// HotStandby makes every worker keep a copy of all partitions' tables,
	// not only its own, so that taking over a partition needs no restore.
	HotStandby bool `yaml:"hot_standby"`
	// StateReads makes the worker keep a read copy of every entity's table
	// (all partitions) for State: reads of a subject's state that any
	// worker answers and that write nothing. It costs a second copy of
	// each table per worker, kept up to date beside the processors (CPU
	// the entities then lack: see docs/decisions.md#performance) and
	// restored at start-up.
	StateReads bool `yaml:"state_reads"`
	// TableCache is the budget in bytes of the read cache of each local
	// table partition, in front of LevelDB (default 4 MiB; negative: no
	// cache). See docs/decisions.md#local-tables.
	TableCache int `yaml:"table_cache"`
	// Kafka is the connection; it must name bootstrap servers.
	Kafka broker.Config `yaml:"kafka"`

	// Log receives the runtime's logs (default: discarded).
	Log *slog.Logger `yaml:"-"`
	// Observe, when set, receives handler latencies and rebalances.
	Observe Observer `yaml:"-"`
	// ViewApplyDelay holds back every batch a view replica applies: it
	// simulates a lagging view, for tests and demonstrations of stale reads.
	ViewApplyDelay time.Duration `yaml:"-"`
}

// Runtime runs entities on Kafka: one goka processor per entity.
type Runtime struct {
	cfg    Config
	topics topics.Names
	topo   *core.Topology
	timers map[string]*timers // each entity's current processor's schedule
	defs   []*core.Entity     // topo.Entities
	views  []*core.View       // topo.Views
	stats  Stats
	ready  chan struct{}
	// runners run handler calls on goroutines that outlive a call (see
	// core.Runners); closed when Run returns.
	runners *core.Runners

	// limits are the record size limits Run read from the cluster; set
	// before Run builds a processor.
	limits recordLimits

	mu       sync.Mutex
	replicas map[string]*replica // by view name, while running
	refused  error               // why Run stops: a view's start-up check failed
	procs    []*goka.Processor   // while running
	// states are the entities' read replicas by name, from Run on
	// (state.go); guarded by mu.
	states map[string]*stateReplica
	// parts are the supervised parts of the current or last Run (health.go);
	// procParts[i] is the part of procs[i]; running is true while Run
	// supervises them.
	parts     []*part
	procParts []*part
	running   bool
	// lastPartitions holds, by group, the partitions a processor last
	// reported, for Partitions while it restarts (stats.go).
	lastPartitions map[string][]PartitionStatus
}

// Stats counts what the runtime did since it started. Safe for concurrent use.
type Stats struct {
	Processed   atomic.Int64 // records handled (including duplicates)
	Duplicates  atomic.Int64 // redelivered commands answered from the record
	DeadLetters atomic.Int64 // dead letters written: acknowledged by the broker (a failed write is not counted; it stops the processor, which reads the record again)
	Rerouted    atomic.Int64 // records re-routed through a loop topic
	ViewApplied atomic.Int64 // view table records applied to this worker's replicas
	Restarts    atomic.Int64 // processors and replicas restarted after they stopped early (see Runtime.Health)
}

// ErrConfig is wrapped by New's error for an invalid runtime configuration.
var ErrConfig = errors.New("invalid runtime configuration")

// New checks cfg and the application's entities and views and returns a
// Runtime; Run starts it.
func New(cfg Config, parts ...Part) (*Runtime, error) {
	var problems []error
	if cfg.App == "" {
		problems = append(problems, errors.New("app name is empty"))
	}
	if cfg.Kafka.Embedded() {
		problems = append(problems, errors.New("no Kafka bootstrap servers"))
	}
	if err := cfg.Kafka.Validate(); err != nil {
		problems = append(problems, err)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 8
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.TableCache == 0 {
		cfg.TableCache = tablestore.DefaultCache
	}
	r := &Runtime{cfg: cfg, topics: topics.Names{App: cfg.App}, ready: make(chan struct{}), replicas: map[string]*replica{}, timers: map[string]*timers{},
		runners: core.NewRunners(64)}
	named := make([]interface{ Name() string }, len(parts))
	for i, p := range parts {
		named[i] = p
	}
	topo, err := core.NewTopology(cfg.App, named)
	if err != nil {
		problems = append(problems, err)
	} else {
		r.topo, r.defs, r.views = topo, topo.Entities, topo.Views
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(problems...))
	}
	return r, nil
}

// Stats returns the runtime's counters.
func (r *Runtime) Stats() *Stats { return &r.stats }

// Ready is closed once every entity processor has recovered its table and
// is processing, every view replica has caught up and every state replica
// has recovered, for the first time. It is never opened again: whether
// every part is running now is Healthy's answer.
func (r *Runtime) Ready() <-chan struct{} { return r.ready }

// Topics lists every topic the application uses, with the configuration
// Partita creates it with. replication is used for the topics it creates.
func (r *Runtime) Topics(replication int16) []TopicSpec {
	var specs []TopicSpec
	for _, t := range r.topo.Topics() {
		if t.External {
			specs = append(specs, TopicSpec{Name: t.Name, External: true})
		} else {
			specs = append(specs, TopicSpec{Name: t.Name, Partitions: r.cfg.Partitions, Replication: replication, Config: t.Config})
		}
	}
	return specs
}

// Run creates or checks the topics, then runs every entity until ctx ends
// or one fails. A partition-count mismatch or a missing topic fails start-up
// with a message naming the topics.
func (r *Runtime) Run(ctx context.Context) error {
	defer r.runners.Close()
	r.mu.Lock()
	r.parts, r.procParts, r.lastPartitions = nil, nil, map[string][]PartitionStatus{}
	r.mu.Unlock()
	log := r.cfg.Log
	client, err := broker.Connect(ctx, r.cfg.Kafka, log)
	if err != nil {
		return err
	}
	replication := r.cfg.Replication
	if replication == 0 {
		replication = int16(min(3, len(client.Brokers())))
	}
	specs := r.Topics(replication)
	counts, err := ensureTopics(client, specs, r.cfg.CreateTopics)
	if err == nil {
		err = r.startLatest(client)
	}
	if err == nil {
		names := make([]string, 0, len(specs))
		for _, s := range specs {
			names = append(names, s.Name)
		}
		r.limits = readLimits(client, names, r.producerLimit(), log)
	}
	client.Close()
	if err != nil {
		// The broker can go away between connecting and here (a restart):
		// named as such, the worker waits for it instead of exiting.
		return broker.Explain(ctx, r.cfg.Kafka, err)
	}
	var procs []*goka.Processor
	var builds []func() (*goka.Processor, error)
	partitions, err := r.topo.CheckPartitions(counts)
	if err != nil {
		return err
	}
	for _, g := range r.topo.Groups {
		build := func() (*goka.Processor, error) { return r.newProcessor(g, partitions[g.Name]) }
		p, err := build()
		if err != nil {
			return fmt.Errorf("%s: %w", g.ID, err)
		}
		procs, builds = append(procs, p), append(builds, build)
	}
	var reps []*replica
	for _, v := range r.views {
		rep, err := r.openReplica(v)
		if err != nil {
			return err
		}
		defer rep.store.Close()
		reps = append(reps, rep)
	}
	repClient, err := broker.Connect(ctx, r.cfg.Kafka, log)
	if err != nil {
		return err
	}
	defer repClient.Close()

	states := r.openStates() // entities' read replicas, for State (state.go)
	procParts := make([]*part, len(procs))
	parts := make([]*part, 0, len(procs)+len(reps)+len(states))
	for i, p := range procs {
		procParts[i] = newPart(KindProcessor, string(p.Graph().Group()))
		parts = append(parts, procParts[i])
	}
	repParts := make([]*part, len(reps))
	for i, rep := range reps {
		repParts[i] = newPart(KindViewReplica, "view replica "+rep.name)
		parts = append(parts, repParts[i])
	}
	stateParts := make([]*part, len(states))
	for i, s := range states {
		stateParts[i] = newPart(KindStateReplica, "state replica "+s.entity)
		parts = append(parts, stateParts[i])
	}
	r.mu.Lock()
	r.procs = append([]*goka.Processor(nil), procs...)
	r.parts, r.procParts, r.running = parts, procParts, true
	r.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every processor and replica is supervised: when one stops with an
	// error (the broker restarted, a rebalance failed) it is started again
	// with backoff, so the worker outlives what Kafka does to it. Each
	// reports to its part (Health) when it has recovered.
	var wg sync.WaitGroup
	caughtUp := make([]chan struct{}, len(reps))
	for i, rep := range reps {
		caughtUp[i] = make(chan struct{})
		var once sync.Once
		done := func() { once.Do(func() { close(caughtUp[i]) }) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := repParts[i]
			supervise(ctx, log, &r.stats, p, func() error {
				gen := p.generation()
				return rep.run(ctx, repClient, func() { done(); p.recovered(gen) }, &r.stats, log)
			})
		}()
	}
	r.runStates(ctx, &wg, states, stateParts)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, part := procs[i], procParts[i]
			supervise(ctx, log, &r.stats, part, func() error {
				if p == nil { // the previous run stopped: build a fresh processor
					np, err := builds[i]()
					if err != nil {
						return err
					}
					p = np
					r.mu.Lock()
					if r.procs != nil {
						r.procs[i] = np
					}
					r.mu.Unlock()
				}
				go watchProcessor(ctx, p, part, part.generation())
				err := p.Run(ctx)
				p = nil // a goka processor runs once
				return err
			})
		}()
	}
	go func() {
		// Wait on the current processor of each group: a supervised one
		// may have been replaced since.
		for i := range procs {
			for {
				r.mu.Lock()
				if r.procs == nil { // Run has returned
					r.mu.Unlock()
					return
				}
				p := r.procs[i]
				r.mu.Unlock()
				wait, cancel := context.WithTimeout(ctx, time.Second)
				err := p.WaitForReadyContext(wait)
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
			}
		}
		for _, c := range caughtUp {
			select {
			case <-c:
			case <-ctx.Done():
				return
			}
		}
		if !statesRecovered(ctx, states) {
			return
		}
		if err := r.checkViews(ctx, reps); err != nil {
			log.Error("refusing to run", "err", err)
			r.mu.Lock()
			r.refused = err
			r.mu.Unlock()
			cancel()
			return
		}
		log.Info("ready", "entities", len(r.defs), "views", len(r.views))
		close(r.ready)
	}()
	wg.Wait()
	r.mu.Lock()
	r.replicas = map[string]*replica{}
	r.procs, r.procParts, r.running = nil, nil, false
	refused := r.refused
	r.refused = nil
	r.mu.Unlock()
	return refused
}

// checkViews runs the views' start-up checks (core.View.Check) on their
// caught-up replicas (reps[i] is r.views[i]'s).
func (r *Runtime) checkViews(ctx context.Context, reps []*replica) error {
	var errs []error
	for i, v := range r.views {
		if v.Check != nil {
			errs = append(errs, v.Check(ctx, reps[i].store))
		}
	}
	return errors.Join(errs...)
}

// startLatest commits the newest offsets, for the partitions of topics
// subscribed with entities.Latest on which the group has no committed offset
// yet, so that a new group starts there instead of at the oldest record.
func (r *Runtime) startLatest(client sarama.Client) error {
	for _, d := range r.defs {
		group := r.topics.Group(d.Name)
		want := map[string][]int32{}
		for topic, latest := range d.StartLatest {
			if !latest {
				continue
			}
			parts, err := client.Partitions(topic)
			if err != nil {
				return fmt.Errorf("%s: partitions of %s: %w", group, topic, err)
			}
			want[topic] = parts
		}
		if len(want) == 0 {
			continue
		}
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			return err
		}
		committed, err := admin.ListConsumerGroupOffsets(group, want)
		if err != nil {
			return fmt.Errorf("%s: committed offsets: %w", group, err)
		}
		om, err := sarama.NewOffsetManagerFromClient(group, client)
		if err != nil {
			return err
		}
		for topic, parts := range want {
			for _, p := range parts {
				if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
					continue // the group has been here before: resume
				}
				newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				pom, err := om.ManagePartition(topic, p)
				if err != nil {
					return err
				}
				pom.MarkOffset(newest, "partita: subscription starts at the latest record")
				pom.AsyncClose()
			}
		}
		om.Commit()
		if err := om.Close(); err != nil {
			return fmt.Errorf("%s: commit start offsets: %w", group, err)
		}
		r.cfg.Log.Info("new subscriptions start at the latest record", "group", group, "topics", len(want))
	}
	return nil
}

// producerLimit is the producer's own limit on a record's size
// (Producer.MaxMessageBytes of the client configuration).
func (r *Runtime) producerLimit() int {
	sc, err := r.saramaConfig()
	if err != nil {
		return sarama.NewConfig().Producer.MaxMessageBytes
	}
	return sc.Producer.MaxMessageBytes
}

// recordLimits are the limits records must fit (limits.go): as Run read
// them, or the producer's alone for a processor built before.
func (r *Runtime) recordLimits() recordLimits {
	l := r.limits
	if l.producer == 0 {
		l.producer = r.producerLimit()
	}
	return l
}

// saramaConfig is the client configuration goka's builders get: a fresh copy
// each time, since goka's builders modify the one they are given.
func (r *Runtime) saramaConfig() (*sarama.Config, error) {
	sc, err := r.cfg.Kafka.Sarama(nil) // Validate and the skip-verify warning ran in Connect
	if err != nil {
		return nil, err
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.Interceptors = []sarama.ConsumerInterceptor{ambiguity{}}
	// A new group starts at the oldest record of framework topics: input
	// written while the group is being created must not be skipped.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.MaxProcessingTime = time.Second
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{goka.CopartitioningStrategy}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Compression = sarama.CompressionSnappy
	// goka's 100ms default flush is request/reply latency; 5ms batches well enough.
	sc.Producer.Flush.Frequency = 5 * time.Millisecond
	sc.Producer.Flush.Bytes = 64 * 1024
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 10
	return sc, nil
}

func (r *Runtime) newProcessor(g *core.Group, partitions int32) (*goka.Processor, error) {
	kind := "entity"
	if g.View != nil {
		kind = "view"
	}
	h := &handler{
		group:      g.ID,
		commands:   g.Commands,
		observe:    r.cfg.Observe,
		dlq:        r.topics.DeadLetters(),
		partitions: partitions,
		stateful:   g.Table != "",
		stats:      &r.stats,
		log:        r.cfg.Log.With(kind, g.Name),
	}
	// The group's edges, as the topology says.
	bytes := new(gcodec.Bytes)
	var edges []goka.Edge
	for _, t := range g.Inputs() {
		edges = append(edges, goka.Input(goka.Stream(t), bytes, h.handle))
	}
	if g.Table != "" {
		edges = append(edges, goka.Loop(bytes, h.handle), goka.Persist(bytes))
	}
	if g.IDs != "" {
		h.ids = newIDTables(g.IDs)
		edges = append(edges, goka.Join(goka.Table(g.IDs), bytes), goka.Output(goka.Stream(g.IDs), bytes))
	}
	for _, t := range g.Outputs {
		edges = append(edges, goka.Output(goka.Stream(t), bytes))
	}
	graph := goka.DefineGroup(goka.Group(g.ID), edges...)
	if ls := graph.LoopStream(); ls != nil {
		if ls.Topic() != g.Loop {
			return nil, fmt.Errorf("goka names the loop topic %s, the topology %s", ls.Topic(), g.Loop)
		}
		h.loop = g.Loop
	}
	// What the runtime writes is made to fit its topic's limit, so that
	// no input can make a write fail (see core.HandleEntity). Each
	// processor is a new epoch (see core.Env): supervision replaces a
	// failed one with a new processor, so a new epoch.
	lim := r.recordLimits()
	env := core.Env{Topics: r.topics, Now: time.Now, Epoch: rand.Uint64() | 1, Runners: r.runners,
		MaxRecord: lim.producer, MaxRecordOf: lim.forTopic}
	if g.Entity != nil && g.Table != "" {
		h.timers = newTimers(g.Name, r.topics, h.log, r.cfg.Observe)
		r.mu.Lock()
		r.timers[g.Name] = h.timers
		r.mu.Unlock()
	}
	if g.Entity != nil && g.Entity.Detached > 0 {
		h.slots = make(chan struct{}, g.Entity.Detached)
	}
	if obs, ok := r.cfg.Observe.(WorkflowObserver); ok {
		env.Step = func(s core.StepReport) { obs.WorkflowStep(s.Workflow, s.Step, s.Outcome, s.Took) }
	}
	if g.View != nil {
		h.decide = func(dl core.Delivery) core.Actions { return core.HandleView(env, g.View, g.ViewSources, dl) }
	} else {
		h.decide = func(dl core.Delivery) core.Actions { return core.HandleEntity(env, g.Entity, dl) }
	}
	return r.gokaProcessor(graph, g.Name, h, lim)
}

// gokaProcessor builds a goka processor with Partita's settings: the murmur2
// hasher, fresh client configurations, producers whose batches fit each
// topic's limit in lim (groupProducer), no topic creation (Run did it),
// local storage under DataDir, nil values passed to the callback, dead
// letters counted once written.
func (r *Runtime) gokaProcessor(graph *goka.GroupGraph, name string, h *handler, lim recordLimits) (*goka.Processor, error) {
	sc := func() *sarama.Config {
		c, _ := r.saramaConfig() // the configuration was validated in New
		return c
	}
	// The producer keeps one request in flight per broker: a retried batch
	// cannot land behind a later one, so a subject's events stay in
	// sequence order. Only the producer: on the consumers' connections one
	// request at a time would queue heartbeats and commits behind fetches
	// that wait up to Consumer.MaxWaitTime.
	producer := func(maxRecord int) *sarama.Config {
		c := sc()
		c.Net.MaxOpenRequests = 1
		// sarama bounds a record and the records it batches for a
		// partition by MaxMessageBytes: at the topic's limit, a batch fits
		// the topic (limits.go).
		c.Producer.MaxMessageBytes = maxRecord
		return c
	}
	producers := groupProducers(written(graph), lim.forTopic, producer, h.dlq, &r.stats)
	store := h.ids.builder(tablestore.Builder(r.groupDir(string(graph.Group())), r.cfg.TableCache))
	producers = h.producerBuilder(producers)
	if h.timers != nil {
		store = h.timers.builder(graph.GroupTable().Topic(), store)
	}
	tmc := goka.NewTopicManagerConfig()
	tmc.NoCreate = true
	// Run checked partition counts; settings of existing topics are the
	// operator's to choose.
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	opts := []goka.ProcessorOption{
		goka.WithHasher(murmur2.New),
		goka.WithClientID(r.cfg.Kafka.WithDefaults().ClientID + "-" + name),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc())),
		goka.WithProducerBuilder(producers),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc(), tmc)),
		goka.WithStorageBuilder(store),
		goka.WithLogger(gokaLogger{r.cfg.Log}),
		// goka drops records with a nil value by default: silently losing
		// them. Partita dead-letters them like any other bad record.
		goka.WithNilHandling(goka.NilProcess),
		goka.WithRebalanceCallback(func(a goka.Assignment) {
			h.rebalanced()
			if h.timers != nil {
				h.timers.rebalanced(a)
			}
			if r.cfg.Observe != nil {
				parts := make([]int32, 0, len(a))
				for p := range a {
					parts = append(parts, p)
				}
				r.cfg.Observe.Rebalanced(string(graph.Group()), parts)
			}
		}),
	}
	if r.cfg.HotStandby {
		opts = append(opts, goka.WithHotStandby())
	}
	return goka.NewProcessor(r.cfg.Kafka.BootstrapServers, graph, opts...)
}

// groupDir holds goka's local copy of a group's table.
func (r *Runtime) groupDir(group string) string { return filepath.Join(r.cfg.DataDir, "groups", group) }

// gokaLogger sends goka's logs to slog at debug level.
type gokaLogger struct{ log *slog.Logger }

func (g gokaLogger) Print(v ...any)   { g.log.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Println(v ...any) { g.log.Debug(fmt.Sprint(v...), "component", "goka") }
func (g gokaLogger) Printf(format string, v ...any) {
	g.log.Debug(fmt.Sprintf(format, v...), "component", "goka")
}

// Entities lists the application's entities (stateless consumers included)
// with their command names, sorted.
func (r *Runtime) Entities() map[string][]string {
	out := map[string][]string{}
	for _, d := range r.defs {
		var cmds []string
		for c := range d.Commands {
			cmds = append(cmds, c)
		}
		sort.Strings(cmds)
		if d.Kind == core.Stateless {
			cmds = nil
		}
		out[d.Name] = cmds
	}
	return out
}

// Views lists the application's views with their indexed fields.
func (r *Runtime) Views() map[string][]string {
	out := map[string][]string{}
	for _, v := range r.views {
		out[v.Name] = append([]string(nil), v.Indexes...)
	}
	return out
}

// TopicNames names the application's topics, for producers and consumers
// outside Partita.
func (r *Runtime) TopicNames() Topics { return Topics{t: r.topics} }

// Topics names an application's topics.
type Topics struct{ t topics.Names }

// Commands is the commands topic of entity: "<app>.<entity>.commands".
func (t Topics) Commands(entity string) string { return t.t.Commands(entity) }

// Events is the events topic of the event-sourced entity.
func (t Topics) Events(entity string) string { return t.t.Events(entity) }

// Replies is the topic of replies to commands that ask for one.
func (t Topics) Replies() string { return t.t.Replies() }

// DeadLetters is the dead-letter topic.
func (t Topics) DeadLetters() string { return t.t.DeadLetters() }

// CreateTopics connects and creates the application's missing topics (it
// does not check partition counts; Run does).
func (r *Runtime) CreateTopics(ctx context.Context) error {
	client, err := broker.Connect(ctx, r.cfg.Kafka, r.cfg.Log)
	if err != nil {
		return err
	}
	defer client.Close()
	replication := r.cfg.Replication
	if replication == 0 {
		replication = int16(min(3, len(client.Brokers())))
	}
	_, err = ensureTopics(client, r.Topics(replication), true)
	return err
}
