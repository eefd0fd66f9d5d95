package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"
)

// Kinds of the supervised parts of a runtime (GroupHealth.Kind).
const (
	KindProcessor    = "processor"     // a goka processor: an entity's or a view's group
	KindViewReplica  = "view replica"  // a worker's copy of a view's table (queries)
	KindStateReplica = "state replica" // a worker's copy of an entity's table (Runtime.State)
)

// States of a supervised part (GroupHealth.State).
const (
	// HealthStarting: started, not recovered yet (a processor whose
	// partitions are being restored, also after a rebalance; a replica
	// catching up for the first time).
	HealthStarting = "starting"
	// HealthRunning: processing (a processor whose goka processor is
	// running with every partition recovered; a replica caught up since
	// its last start).
	HealthRunning = "running"
	// HealthRestarting: stopped with an error, and either waiting for its
	// backoff or started again and not recovered yet.
	HealthRestarting = "restarting"
	// HealthStopped: Run has ended.
	HealthStopped = "stopped"
)

// GroupHealth is the state of one supervised part of this worker.
type GroupHealth struct {
	// Name is the goka group of a processor ("shop.cart"), or names a
	// replica by its kind and view or entity ("view replica carts",
	// "state replica cart").
	Name string `json:"name"`
	// Kind is KindProcessor, KindViewReplica or KindStateReplica.
	Kind string `json:"kind"`
	// State is HealthStarting, HealthRunning, HealthRestarting or
	// HealthStopped.
	State string `json:"state"`
	// Restarts counts the times the part stopped with an error and was
	// started again, since Run started.
	Restarts int64 `json:"restarts"`
	// LastError is the last error the part stopped with (one line, at most
	// maxErrorLen bytes): errors of goka and sarama name topics, groups,
	// partitions and broker addresses, never configuration values.
	LastError string `json:"lastError,omitempty"`
	// Since is when the part entered State.
	Since time.Time `json:"since"`
}

// ErrUnhealthy is wrapped by Healthy's error.
var ErrUnhealthy = errors.New("not running")

// Health lists every supervised part of this worker (each goka processor,
// view replica and state replica), sorted by kind and name. It is empty
// before Run has built them; after Run returns, every part is
// HealthStopped. Safe for concurrent use; it reads no broker.
func (r *Runtime) Health() []GroupHealth {
	r.mu.Lock()
	parts := append([]*part(nil), r.parts...)
	r.mu.Unlock()
	out := make([]GroupHealth, 0, len(parts))
	for _, p := range parts {
		out = append(out, p.health())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Healthy returns nil when every supervised part is HealthRunning. Otherwise
// its error wraps ErrUnhealthy and names each part that is not running and
// why ("processor shop.cart restarting after 3 failures, next attempt in
// 4s: <last error>"), parts separated by "; "; before Run has built its
// parts, and after Run returned, it is an error too. The worker's /readyz
// answers 503 with it. Safe for concurrent use; it reads no broker.
func (r *Runtime) Healthy() error {
	r.mu.Lock()
	running := r.running
	parts := append([]*part(nil), r.parts...)
	r.mu.Unlock()
	if !running {
		return fmt.Errorf("%w: the runtime has not started its processors and replicas, or has stopped", ErrUnhealthy)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].kind != parts[j].kind {
			return parts[i].kind < parts[j].kind
		}
		return parts[i].name < parts[j].name
	})
	var why []string
	for _, p := range parts {
		if w := p.why(); w != "" {
			why = append(why, w)
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnhealthy, strings.Join(why, "; "))
}

// maxErrorLen bounds GroupHealth.LastError: goka's errors nest the errors
// of every partition, and a panic in a callback carries its stack.
const maxErrorLen = 512

// errorLists matches the list headings and bullets of goka's errors
// (hashicorp/go-multierror: "1 error occurred:\n\t* ...").
var errorLists = regexp.MustCompile(`\d+ errors? occurred: \* |\s\* `)

// recordKey matches the key of the record goka could not commit, which is
// a subject: user data, not for a health answer.
var recordKey = regexp.MustCompile(`could not commit message with key '.*?': `)

// oneLine makes err one line of at most maxErrorLen bytes, without the
// headings of goka's error lists and the key of the record goka names.
func oneLine(err error) string {
	if err == nil {
		return "stopped without an error"
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = recordKey.ReplaceAllString(s, "could not commit message: ")
	s = errorLists.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasSuffix(m, "occurred: * ") {
			return ""
		}
		return "; "
	})
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && s[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// stableRun is how long a part must have run for a failure to count as a
// first one again: the supervisor's backoff then starts over at a second.
const stableRun = time.Minute

// part is the supervision record of one processor or replica.
type part struct {
	name, kind string

	mu       sync.Mutex
	state    string
	since    time.Time
	restarts int64
	lastErr  string
	// failures counts the failures since the part last ran for stableRun;
	// retry is when the supervisor starts it again (zero once started).
	failures int
	retry    time.Time
	// gen counts the part's runs: what a run reports is dropped once
	// the run has stopped (a late report must not undo "restarting").
	gen int
}

func newPart(kind, name string) *part {
	return &part{kind: kind, name: name, state: HealthStarting, since: time.Now()}
}

// label names the part in logs and errors ("processor shop.cart", "view
// replica carts").
func (p *part) label() string {
	if p.kind == KindProcessor {
		return p.kind + " " + p.name
	}
	return p.name
}

func (p *part) health() GroupHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return GroupHealth{Name: p.name, Kind: p.kind, State: p.state, Restarts: p.restarts, LastError: p.lastErr, Since: p.since}
}

// stopped records that the part will not run again.
func (p *part) stopped() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	p.retry = time.Time{}
	p.setLocked(HealthStopped)
}

func (p *part) setLocked(state string) {
	if p.state != state {
		p.state, p.since = state, time.Now()
	}
}

// generation names the part's current run, for recovered and recovering.
func (p *part) generation() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// recovered records that run gen of the part has recovered (or recovered
// again after a rebalance): it is running. A report of an earlier run is
// ignored.
func (p *part) recovered(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen && p.state != HealthStopped {
		p.setLocked(HealthRunning)
	}
}

// recovering records that run gen of a running part is recovering again
// (a processor in a rebalance): it is starting. A part that is restarting
// stays so until it recovers.
func (p *part) recovering(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen && p.state == HealthRunning {
		p.setLocked(HealthStarting)
	}
}

// failed records that the part's run stopped with err and will be started
// again at retry; stable says the run lasted stableRun or more.
func (p *part) failed(err error, stable bool, retry time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stable {
		p.failures = 0
	}
	p.gen++
	p.restarts++
	p.failures++
	p.lastErr = oneLine(err)
	p.retry = retry
	p.state, p.since = HealthRestarting, time.Now() // a new failure is a new state, even when restarting already
}

// restarted records that the supervisor started the part again.
func (p *part) restarted() {
	p.mu.Lock()
	p.retry = time.Time{}
	p.mu.Unlock()
}

// why says why the part is not running; "" when it is.
func (p *part) why() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := time.Since(p.since).Round(time.Second)
	switch p.state {
	case HealthRunning:
		return ""
	case HealthRestarting:
		next := "started again, recovering"
		if !p.retry.IsZero() {
			next = fmt.Sprintf("next attempt in %v", max(0, time.Until(p.retry)).Round(time.Second))
		}
		failures := "1 failure"
		if p.failures != 1 {
			failures = fmt.Sprintf("%d failures", p.failures)
		}
		return fmt.Sprintf("%s restarting after %s, %s: %s", p.label(), failures, next, p.lastErr)
	case HealthStarting:
		return fmt.Sprintf("%s starting (recovering for %v)", p.label(), d)
	default:
		return fmt.Sprintf("%s %s", p.label(), p.state)
	}
}

// supervise runs run until ctx ends, running it again with backoff (1s,
// doubling to 30s; back to 1s after a run of stableRun or more) whenever it
// returns early, and records in p what happens: run's caller marks p
// recovered, supervise marks it restarting when run returns early and
// stopped when ctx ends.
func supervise(ctx context.Context, log *slog.Logger, stats *Stats, p *part, run func() error) {
	defer p.stopped()
	backoff := time.Second
	for {
		started := time.Now()
		err := run()
		if ctx.Err() != nil {
			return
		}
		stable := time.Since(started) >= stableRun
		if stable {
			backoff = time.Second
		}
		stats.Restarts.Add(1)
		p.failed(err, stable, time.Now().Add(backoff))
		log.Warn("stopped; restarting", "what", p.label(), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		p.restarted()
		backoff = min(2*backoff, 30*time.Second)
	}
}

// watchPoll is how often a processor's state is looked at for its part.
const watchPoll = 250 * time.Millisecond

// watchProcessor follows goka processor gp, run gen of p, until gp stops
// or ctx ends: p is running while gp is processing with every partition
// recovered (goka's ProcStateRunning, reached once the assigned partitions
// are restored), starting while a rebalance restores partitions again.
func watchProcessor(ctx context.Context, gp *goka.Processor, p *part, gen int) {
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gp.Done():
			return
		case <-tick.C:
		}
		select {
		case <-gp.Done(): // stopped meanwhile: supervise records why
			return
		default:
		}
		if gp.Recovered() {
			p.recovered(gen)
		} else {
			p.recovering(gen)
		}
	}
}
