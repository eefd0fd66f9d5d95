package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/sample"
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
		if code, body, err := post(w.addr, "/entities/cart/"+c.cart+"/add-item", "", sample.AddItem{ProductID: c.product, Name: c.product, Quantity: 1}); code != http.StatusOK {
			t.Fatalf("add-item: %d %s %v", code, body, err)
		}
	}
	if code, body, _ := post(w.addr, "/entities/cart/k2/checkout", "", struct{}{}); code != http.StatusOK {
		t.Fatalf("checkout: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, body := get(w.addr, "/views/carts?index=checkedOut&eq=false"); strings.Contains(string(body), `"k1"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("carts view did not show k1")
		}
		time.Sleep(100 * time.Millisecond)
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
	rows := section("rows")
	if !strings.Contains(rows, "<td>k1</td>") || strings.Contains(rows, "<td>k2</td>") {
		t.Errorf("the query checkedOut=false shows the wrong rows:\n%s", rows)
	}
	if !strings.Contains(dom, "1 rows") {
		t.Errorf("no row count shown")
	}
}
