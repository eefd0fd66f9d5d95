package shop_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/partita-dev/partita/entities"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/examples/shop/shopmodel"
	pt "github.com/partita-dev/partita/testing/partitatest"
	"github.com/partita-dev/partita/views"
)

// A workload of the seeded schedules: its commands, from a seed, and the
// options of both entities.
type workload struct {
	name     string
	commands func(r *rand.Rand) []shopmodel.Command
	opts     []entities.Option
	timers   bool // the timers-asks workload (timers_schedule_test.go) instead of the shop
}

var (
	// mixed: 40 commands over 4 customers and 4 carts, few per subject.
	mixed = workload{name: "mixed", commands: func(r *rand.Rand) []shopmodel.Command { return shopmodel.Workload(r, 40, 8) }}
	// hot: 200 commands over 3 carts and a customer, some 40 to 55 each:
	// redeliveries come behind more newer commands of their subject than
	// the dedup window (16) keeps, so the id table must know them.
	hot = workload{name: "hot", commands: func(r *rand.Rand) []shopmodel.Command { return hotWorkload(r, 200) }}
	// retention-1h: 150 commands over the hot subjects, with entities
	// remembering command ids for an hour over a schedule of some 12: a
	// redelivery within the hour is a duplicate, one after it (from the
	// window or from the id table) a new command.
	shortRetention = workload{name: "retention-1h", commands: func(r *rand.Rand) []shopmodel.Command { return hotWorkload(r, 150) },
		opts: []entities.Option{entities.Retention(time.Hour)}}
	// timers-asks: 100 commands of another application, reminders that
	// start, replace and cancel timers and ask clerks, which reply, refuse
	// or fail (dead letters); asks time out when a clerk lags or the clock
	// jumps before it answers.
	timersAsks = workload{name: "timers-asks", timers: true}
)

// TestSeededSchedules runs the sample domain through 1,000 random schedules
// per workload, of redeliveries (some far behind newer commands of their
// subject), duplicates, misrouting, crash-restarts, lagging views and jumps
// of the clock over some 12 hours, and checks after each: every command
// applied exactly once within its entity's retention and once more after
// each time it came again after the retention (each state equals the fold
// of the applications in the order they were applied), no view row ever
// moved backwards, both views equal the fold, no delivery broke the
// retention either way, and nothing was dead-lettered or lost. The
// timers-asks workload is checked for its timers and asks (see
// runTimersSchedule): every timer not replaced or cancelled fired and was
// applied once, none before its due time, and every ask got exactly one of
// its reply, error and timeout. A failure
// names its seed; run it alone with PARTITA_SEED (and -run
// TestSeededSchedules/<workload>).
func TestSeededSchedules(t *testing.T) {
	for _, w := range []workload{mixed, hot, shortRetention, timersAsks} {
		t.Run(w.name, func(t *testing.T) {
			first, schedules := uint64(1), uint64(1000)
			if s, err := strconv.ParseUint(os.Getenv("PARTITA_SEED"), 10, 64); err == nil {
				first, schedules = s, 1
			}
			var sum struct {
				commands, deliveries, faults, behind       int
				deduplicated, beyondWindow, reapplications int
				reappliedBeyondWindow                      int
				elapsed                                    time.Duration
			}
			ran, failed := uint64(0), pt.Report{}
			var timers timerStats
			for seed := first; seed < first+schedules && !t.Failed(); seed++ {
				var rep pt.Report
				if w.timers {
					var st timerStats
					rep, st = runTimersSchedule(t, seed)
					timers.add(st)
				} else {
					rep = runSchedule(t, seed, w)
				}
				ran++
				sum.commands += rep.Commands
				sum.deliveries += rep.Deliveries
				sum.faults += rep.Faults()
				sum.behind += rep.Behind
				sum.elapsed += rep.Elapsed
				sum.deduplicated += rep.Deduplicated
				sum.beyondWindow += rep.BeyondWindow
				sum.reapplications += rep.Reapplications()
				sum.reappliedBeyondWindow += rep.ReappliedBeyondWindow
				if t.Failed() {
					failed = rep
				}
			}
			// The summary (make test shows it), also of a run stopped by a
			// failing seed.
			line := fmt.Sprintf("%s: %d schedules: %d commands, %d deliveries, %d faults injected (%d redeliveries far behind), %v of clock per schedule; %d deliveries deduplicated (%d beyond the window), %d applied again after the retention (%d beyond the window)",
				w.name, ran, sum.commands, sum.deliveries, sum.faults, sum.behind,
				(sum.elapsed / time.Duration(ran)).Round(time.Minute), sum.deduplicated, sum.beyondWindow, sum.reapplications, sum.reappliedBeyondWindow)
			if w.timers {
				line += "; " + timers.String()
			}
			t.Log(line)
			if t.Failed() {
				t.Fatalf("%s stopped after %d of %d schedules, failing with %v", w.name, ran, schedules, failed)
			}
			if schedules < 1000 {
				return // one seed need not hit everything
			}
			// The schedules reach what they are for.
			switch w.name {
			case hot.name:
				if sum.beyondWindow == 0 {
					t.Error("no redelivery came behind more than the dedup window of newer commands")
				}
				if sum.reapplications > 0 {
					t.Error("commands were applied again under the default retention: the schedules span too long")
				}
			case shortRetention.name:
				if sum.reapplications == 0 || sum.deduplicated == 0 {
					t.Error("the schedules did not both redeliver within the retention and after it")
				}
				if sum.reappliedBeyondWindow == 0 {
					t.Error("no command was applied again after the retention from beyond the window: the id table's expiry went untested")
				}
			case timersAsks.name:
				for what, n := range map[string]int{"timer replaced while pending": timers.replaced, "timer cancelled while pending": timers.cancelled,
					"timer started by a fire": timers.chained, "fire or late answer dropped": timers.dropped, "schedule drained": timers.drain,
					"reply": timers.replies, "error reply": timers.errors, "dead letter": timers.dead, "timeout": timers.timeout} {
					if n == 0 {
						t.Errorf("no %s in the schedules", what)
					}
				}
			}
		})
	}
}

// The same seed replays the same run: same deliveries, same order of
// application, same outcome.
func TestScheduleReplaysExactly(t *testing.T) {
	run := func(seed uint64, w workload) pt.Report {
		if w.timers {
			rep, _ := runTimersSchedule(t, seed)
			return rep
		}
		return runSchedule(t, seed, w)
	}
	for _, w := range []workload{mixed, shortRetention, timersAsks} {
		a, b := run(42, w), run(42, w)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: seed 42 ran differently twice:\n%v\n%v", w.name, a, b)
		}
		if c := run(43, w); reflect.DeepEqual(a.Applied, c.Applied) && a.Deliveries == c.Deliveries {
			t.Errorf("%s: seeds 42 and 43 ran identically: the seed does not drive the schedule", w.name)
		}
	}
}

// hotWorkload makes n random commands over 3 carts (four fifths of them)
// and one customer, with invalid ones mixed in; carts check out only in
// the last tenth, so most of their commands change them.
func hotWorkload(r *rand.Rand, n int) []shopmodel.Command {
	out := make([]shopmodel.Command, 0, n)
	for i := range n {
		c := shopmodel.Command{Data: map[string]any{}}
		if r.IntN(5) == 0 {
			c.Entity, c.Subject = "customer", "cust-0"
			c.Type = []string{"create", "change-email", "change-email", "change-email", "change-email",
				"change-name", "change-name", "change-name", "change-name", "get"}[r.IntN(10)]
			c.Data["email"] = fmt.Sprintf("u%d@example.com", r.IntN(1000))
			if r.IntN(10) == 0 {
				c.Data["email"] = "not-an-address"
			}
			c.Data["name"] = fmt.Sprintf("Name %d", r.IntN(1000))
		} else {
			c.Entity, c.Subject = "cart", "cart-"+strconv.Itoa(2*r.IntN(3)+1)
			c.Type = []string{"add-item", "add-item", "add-item", "add-item", "remove-item", "remove-item", "get"}[r.IntN(7)]
			if i >= n*9/10 && r.IntN(10) == 0 {
				c.Type = "checkout"
			}
			p := "p" + strconv.Itoa(r.IntN(5))
			c.Data["productId"] = p
			if c.Type == "add-item" {
				c.Data["name"] = "Product " + p
				c.Data["quantity"] = float64(1 + r.IntN(3))
				if r.IntN(10) == 0 {
					c.Data["quantity"] = float64(0)
				}
			}
		}
		// Normalise through JSON, as the handlers will see it.
		js, _ := json.Marshal(c.Data)
		c.Data = nil
		_ = json.Unmarshal(js, &c.Data)
		out = append(out, c)
	}
	return out
}

func runSchedule(t *testing.T, seed uint64, w workload) pt.Report {
	t.Helper()
	h, err := pt.NewWith([]pt.Option{pt.Partitions(3), pt.CommitEvery(1 + int(seed%4))},
		// Carts never expire: the schedule's clock jumps hours, and the
		// model (shopmodel) has no idle timer.
		shop.NewCustomer(w.opts...), shop.NewCartIdle(0, w.opts...), shop.NewCustomersByEmail(), shop.NewCarts())
	if err != nil {
		t.Fatal(err)
	}
	cmds := w.commands(rand.New(rand.NewPCG(seed, 1)))
	work := make([]pt.Command, len(cmds))
	for i, c := range cmds {
		work[i] = pt.Command{Entity: c.Entity, Subject: c.Subject, Name: c.Type, Payload: c.Data}
	}
	rep, err := h.RunSchedule(seed, work, pt.DefaultFaults)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	byID := map[string]shopmodel.Command{}
	for i, id := range rep.IDs {
		byID[id] = cmds[i]
	}
	// Exactly once within the retention: each command applied once, and
	// once more each time it came again after the retention; folded in the
	// order applied.
	again := map[string]int{}
	for _, ids := range rep.Reapplied {
		for _, id := range ids {
			again[id]++
		}
	}
	m := shopmodel.New()
	applied := map[string]int{}
	for _, k := range rep.Subjects() {
		for _, id := range rep.Applied[k] {
			applied[id]++
			m.Apply(byID[id])
		}
	}
	for _, id := range rep.IDs {
		if n := applied[id]; n > 1+again[id] {
			t.Errorf("seed %d: command %s applied %d times, %d of them after the retention", seed, id, n, again[id])
		}
	}
	if len(applied) != len(cmds) {
		t.Errorf("seed %d: %d of %d commands applied: some were lost", seed, len(applied), len(cmds))
	}
	for s, c := range m.Customers {
		var got shop.Customer
		ok, err := h.State("customer", s, &got)
		if err != nil || ok != c.Exists || ok && got != (shop.Customer{Email: c.Email, Name: c.Name}) {
			t.Errorf("seed %d: customer %s is %+v (exists %v), want %+v", seed, s, got, ok, c)
		}
	}
	for s, k := range m.Carts {
		var got shop.Cart
		ok, err := h.State("cart", s, &got)
		if err != nil || ok != (k.Seq > 0) || ok && (got.CheckedOut != k.CheckedOut || !maps.Equal(got.Items, k.Items)) {
			t.Errorf("seed %d: cart %s is %+v, want %+v", seed, s, got, k)
		}
	}
	customers, _ := h.View("customers-by-email")
	carts, _ := h.View("carts")
	if got := rows[shop.CustomerRow](t, customers); !maps.Equal(got, m.CustomerRows()) {
		t.Errorf("seed %d: customers-by-email %v, want %v", seed, got, m.CustomerRows())
	}
	if got := rows[shop.CartRow](t, carts); !shopmodel.EqualCarts(got, m.CartRows()) {
		t.Errorf("seed %d: carts %v, want %v", seed, got, m.CartRows())
	}
	if v := h.Violations(); len(v) > 0 {
		t.Errorf("seed %d: %v", seed, v)
	}
	if d := h.DeadLetters(); len(d) > 0 {
		t.Errorf("seed %d: dead letters %v", seed, d)
	}
	return rep
}

func rows[R any](t *testing.T, s views.Reader) map[string]R {
	t.Helper()
	page, err := s.Query(t.Context(), views.Query{Limit: views.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := views.Decode[R](page.Rows)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]R{}
	for i, r := range page.Rows {
		out[r.ID] = decoded[i]
	}
	return out
}
