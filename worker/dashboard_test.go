package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/chromedp/chromedp"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/examples/shop"
	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/worker"
)

// TestDashboardInHeadlessChromium loads the dashboard in Debian's chromium
// (installed by .ci/run) against a worker on the embedded broker, with a
// view query in the URL, and reads the rendered page: the partitions, the
// views' lag and the query's rows.
func TestDashboardInHeadlessChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is required (Debian package chromium; .ci/run installs it)")
	}
	w := startWorker(t, fmt.Sprintf("d%d", time.Now().UnixNano()), "")
	for _, c := range []struct{ cart, product string }{{"k1", "pen"}, {"k2", "ink"}} {
		if code, body, err := post(w.addr, "/entities/cart/"+c.cart+"/add-item", "", shop.AddItem{ProductID: c.product, Name: c.product, Quantity: 1}); code != http.StatusOK {
			t.Fatalf("add-item: %d %s %v", code, body, err)
		}
	}
	if code, body, _ := post(w.addr, "/entities/cart/k2/checkout", "", struct{}{}); code != http.StatusOK {
		t.Fatalf("checkout: %d %s", code, body)
	}
	// Two orders (the order workflow): one completes, one is declined by
	// the fake payment service and compensated.
	for _, o := range []struct {
		id, cart string
		amount   int
	}{{"o-1", "k3", 40}, {"o-2", "k4", 5000}} {
		if code, body, err := post(w.addr, "/entities/cart/"+o.cart+"/add-item", "", shop.AddItem{ProductID: "pad", Name: "pad", Quantity: 1}); code != http.StatusOK {
			t.Fatalf("add-item: %d %s %v", code, body, err)
		}
		if code, body, err := post(w.addr, "/entities/order/"+o.id+"/start", "", shop.Order{Cart: o.cart, Amount: o.amount}); code != http.StatusOK {
			t.Fatalf("start %s: %d %s %v", o.id, code, body, err)
		}
	}
	wait := func(path, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, body := get(w.addr, path); strings.Contains(string(body), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not show %s", path, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("/views/carts?index=checkedOut&eq=false", `"k1"`)
	wait("/views/order-by-status?index=status&eq=completed", `"o-1"`)
	wait("/views/order-by-status?index=status&eq=compensated", `"o-2"`)
	if _, body := get(w.addr, "/metrics"); !strings.Contains(string(body), `partita_workflow_instances{status="compensated",workflow="order"} 1`) ||
		!strings.Contains(string(body), `partita_timers_pending{entity="cart"} 2`) ||
		!strings.Contains(string(body), `partita_workflow_step_seconds_count{outcome="done",step="reserve",workflow="order"} 2`) ||
		!strings.Contains(string(body), `partita_workflow_step_seconds_count{outcome="failed",step="charge",workflow="order"} 1`) ||
		!strings.Contains(string(body), `partita_workflow_step_seconds_count{outcome="done",step="release",workflow="order"} 1`) {
		t.Errorf("metrics:\n%s", grep(string(body), "partita_workflow")+"\n"+grep(string(body), "partita_timers"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom",
		"http://"+w.addr+"/?view=carts&index=checkedOut&eq=false").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	section := func(id string) string {
		i := strings.Index(dom, `id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no #%s in the page:\n%s", id, dom)
		}
		j := strings.Index(dom[i:], "</table>")
		return dom[i : i+j]
	}
	if p := section("partitions"); !strings.Contains(p, "<td>"+w.app+".cart</td>") || strings.Count(p, "<tr>") < 9 {
		t.Errorf("the page does not list the cart group's partitions:\n%s", p)
	}
	if v := section("views"); !strings.Contains(v, "<td>carts</td>") || !strings.Contains(v, "<td>0</td>") {
		t.Errorf("the page does not show the carts view with its lag:\n%s", v)
	}
	if wf := section("workflows"); !strings.Contains(wf, "<td>order</td>") || !strings.Contains(wf, "compensated 1") || !strings.Contains(wf, "completed 1") {
		t.Errorf("the page does not count the order workflow's instances:\n%s", wf)
	}
	if in := section("instances"); !strings.Contains(in, "<td>o-2</td><td>compensated</td>") || strings.Contains(in, "o-1") {
		t.Errorf("the page does not list the compensated instance (and only it):\n%s", in)
	}
	rows := section("rows")
	if !strings.Contains(rows, "<td>k1</td>") || strings.Contains(rows, "<td>k2</td>") {
		t.Errorf("the query checkedOut=false shows the wrong rows:\n%s", rows)
	}
	if !strings.Contains(dom, "2 rows") { // k1, and k4 (its order was declined: released, not checked out)
		t.Errorf("no row count shown")
	}
}

// TestDashboardUnreachableAfterWorkerStops keeps the dashboard of a real
// worker (embedded broker) open in headless chromium, runs a view query with
// the form, then stops the worker: the page shows the red "worker
// unreachable" banner and keeps the last data, greyed, and throws nothing.
func TestDashboardUnreachableAfterWorkerStops(t *testing.T) {
	w := startWorker(t, fmt.Sprintf("u%d", time.Now().UnixNano()), "")
	if code, body, err := post(w.addr, "/entities/cart/k1/add-item", "", shop.AddItem{ProductID: "pen", Name: "pen", Quantity: 1}); code != http.StatusOK {
		t.Fatalf("add-item: %d %s %v", code, body, err)
	}
	b := worker.NewDashboardBrowser(t)
	b.Do(t, 60*time.Second, chromedp.Navigate("http://"+w.addr+"/"))
	b.WaitFor(t, "status shown", `document.getElementById("app").textContent === "`+w.app+`" &&
		document.querySelectorAll("#partitions tbody tr").length > 0 && document.querySelectorAll("#view option").length > 0`, 30*time.Second)
	if worker.DashboardEval[bool](t, b, `!!document.getElementById("unreachable")`) {
		t.Fatal("the unreachable banner shows while the worker runs")
	}
	if got := worker.DashboardEval[string](t, b, `document.getElementById("ready").textContent`); got != "ready" {
		t.Errorf("ready marker %q", got)
	}

	// The view query form, against the worker.
	b.Do(t, 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#query select[name=view]`), "carts"),
		chromedp.SetValue(chromedp.CSS(`#query input[name=index]`), "checkedOut"),
		chromedp.SetValue(chromedp.CSS(`#query input[name=eq]`), "false"),
		chromedp.SetValue(chromedp.CSS(`#query input[name=limit]`), "5"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.Do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#query button[type=submit]`)))
		b.WaitFor(t, "query answered", `/rows|error/.test(document.getElementById("query-status").textContent)`, 10*time.Second)
		if got := worker.DashboardEval[string](t, b, `document.getElementById("query-status").textContent`); got == "1 rows" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the query form shows %q, want 1 rows\n%s", got, b.Snapshot())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rows := worker.DashboardRows(t, b, "rows"); len(rows) != 1 || rows[0].Cells[0] != "k1" {
		t.Errorf("query rows: %+v", rows)
	}
	partitions := len(worker.DashboardRows(t, b, "partitions"))

	// Stop the worker.
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop in 30 s")
	}
	b.Do(t, 20*time.Second, chromedp.WaitVisible(chromedp.ID("unreachable")))
	banner := worker.DashboardEval[string](t, b, `document.getElementById("unreachable").textContent`)
	if !strings.Contains(banner, "worker unreachable") {
		t.Errorf("banner %q", banner)
	}
	if bg := worker.DashboardEval[string](t, b, `getComputedStyle(document.getElementById("unreachable")).backgroundColor`); bg != "rgb(187, 0, 0)" {
		t.Errorf("banner background %s, want red", bg)
	}
	if !worker.DashboardEval[bool](t, b, `document.body.classList.contains("stale") && getComputedStyle(document.getElementById("status")).opacity < 1`) {
		t.Errorf("the last data is not greyed")
	}
	if got := worker.DashboardEval[string](t, b, `document.getElementById("app").textContent`); got != w.app {
		t.Errorf("the last data went: app %q", got)
	}
	if n := len(worker.DashboardRows(t, b, "partitions")); n != partitions {
		t.Errorf("the last data went: %d partition rows, had %d", n, partitions)
	}
	// A few more failed polls: the banner stays, nothing is thrown.
	time.Sleep(5 * time.Second)
	if !worker.DashboardEval[bool](t, b, `!!document.getElementById("unreachable")`) {
		t.Errorf("the banner went while the worker is down")
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestRestartLoopShowsInReadyzAndDashboard puts the account processor of a
// real worker (the bank application on the real broker) into a restart
// loop from outside (kafkatest.BreakLoop: its loop topic deleted and a
// command that must be re-routed through it), and checks that /readyz
// answers 503 naming the processor within 5 s of the loop starting, that
// the dashboard shows the group in red with its last error, and that both
// recover once the topic is back.
func TestRestartLoopShowsInReadyzAndDashboard(t *testing.T) {
	e := kafkatest.Require(t)
	bin, err := bankBinary()
	if err != nil {
		t.Fatal(err)
	}
	w := startProc(t, bin, fmt.Sprintf("loop%d", time.Now().UnixNano()), e.Plaintext)
	group := w.app + ".account"
	b := worker.NewDashboardBrowser(t)
	b.Do(t, 60*time.Second, chromedp.Navigate("http://"+w.addr+"/"))
	b.WaitFor(t, "health shown", `[...document.querySelectorAll("#groups tbody tr")].some((tr) => tr.cells[0].textContent === "`+group+`")`, 30*time.Second)

	ev := codec.NewEvent()
	ev.SetID("loop-1")
	ev.SetSource("fault")
	ev.SetType("ping")
	ev.SetSubject("a1")
	ev.SetDataContentType("application/json")
	ev.DataEncoded = []byte(`{}`)
	rec, err := codec.EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := &sarama.ProducerMessage{Topic: w.app + ".account.commands", Value: sarama.ByteEncoder(rec.Value)}
	for k, v := range rec.Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
	}
	f := kafkatest.BreakLoop(t, []string{e.Plaintext}, w.app+".account-loop", msg)
	var reason string
	for {
		code, body := get(w.addr, "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(string(body), group) {
			reason = string(body)
			break
		}
		// The processor stops about a second after the command is written.
		if time.Since(f.Sent) > 6*time.Second {
			t.Fatalf("/readyz %d %s %v after the loop began; want 503 naming %s within 5 s", code, body, time.Since(f.Sent), group)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("/readyz 503 %v after the misrouted command: %s", time.Since(f.Sent), reason)
	b.WaitFor(t, "the group in red", `[...document.querySelectorAll("#groups tbody tr")].some((tr) => tr.cells[0].textContent === "`+group+`" && tr.classList.contains("bad"))`, 10*time.Second)
	for _, r := range worker.DashboardRows(t, b, "groups") {
		if r.Cells[0] == group && (r.Color != "rgb(187, 0, 0)" || !strings.Contains(strings.Join(r.Cells, " "), "-loop")) {
			t.Errorf("dashboard row of %s: %+v; want red, with the last error naming the loop topic", group, r)
		}
	}
	if got := worker.DashboardEval[string](t, b, `document.getElementById("ready").textContent`); !strings.Contains(got, "not ready") {
		t.Errorf("ready marker %q while the processor restarts", got)
	}
	if rows := worker.DashboardRows(t, b, "partitions"); len(rows) == 0 {
		t.Errorf("the partitions table went empty while the group restarts")
	}

	f.Heal()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := get(w.addr, "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			_, body := get(w.addr, "/readyz")
			t.Fatalf("/readyz not 200 a minute after the topic came back: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.WaitFor(t, "the group running again", `[...document.querySelectorAll("#groups tbody tr")].some((tr) => tr.cells[0].textContent === "`+group+`" && !tr.classList.contains("bad"))`, 10*time.Second)
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems: %v", p)
	}
}
